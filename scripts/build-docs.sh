#!/usr/bin/env bash
# Build the documentation site (mkdocs.yml, docs/) into target/site with `mkdocs build --strict`:
# any warning (a broken link or anchor, a page missing from the nav, a docstring mkdocstrings
# cannot read) fails the build. The docs tools are installed here, into the Python that builds
# (PYTHON, default python3); they are never dependencies of the package.
#
# The API reference comes from the docstrings and the stubs of the compiled module, read
# statically from python/. docs/cli-reference.md is generated from the installed afxdp's own
# parser (so PYTHON must have afxdp installed: scripts/install.sh, or the wheel's venv in CI).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source scripts/env.sh
py="${PYTHON:-python3}"
"$py" -m pip install -q "mkdocs>=1.6,<2" "mkdocs-material>=9.5,<10" "mkdocstrings[python]>=0.26"
"$py" - >docs/cli-reference.md <<'PY'
import argparse, os
os.environ["COLUMNS"] = "100"  # argparse wraps to this width, the same on every machine
from afxdp.cli import build_parser

parser = build_parser()
print("# Command reference\n")
print("Generated from `afxdp --help` and each command's `--help` by `scripts/build-docs.sh`.\n")
print("## afxdp\n\n```text\n" + parser.format_help().rstrip() + "\n```\n")
sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
for name, command in sub.choices.items():
    print(f"## afxdp {name}\n\n```text\n" + command.format_help().rstrip() + "\n```\n")
PY
"$py" -m mkdocs build --strict --clean
echo "the site is in $root/target/site (open index.html)" >&2
