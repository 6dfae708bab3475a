#!/usr/bin/env bash
# Check what scripts/build-wheels.sh put in dist/ the way users get it (scripts/test.sh runs this):
#
#   1. the wheel, installed into a fresh venv whose PATH has no Rust toolchain (cargo, rustc and
#      maturin there fail loudly; pip may use only the wheel), then the test suite against that
#      installed wheel (extra arguments go to pytest);
#   2. the documentation site, built with warnings as errors (scripts/build-docs.sh, in the
#      wheel's venv: the command reference comes from the installed afxdp's parser);
#   3. the sdist: its listing holds what rebuilding and checking needs, it installs into another
#      fresh venv (built by cargo), and the tests it carries run against that install.
#
# The venvs live in a world-readable temporary directory and come from the system interpreter
# (/usr/bin/python3): a test drops to uid 65534 and starts Python again, which must be able to
# read the interpreter's standard library and the venv (not so under /root, e.g. pyenv's).
# Set KEEP_VENVS=1 to keep them. Root (the suite's privileged tests).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source scripts/env.sh
step() { printf '\n== %s (%s s)\n' "$*" "$SECONDS" >&2; }

wheels=(dist/afxdp-*-manylinux*_x86_64.whl)
sdists=(dist/afxdp-*.tar.gz)
[[ -f ${wheels[0]} && -f ${sdists[0]} ]] || { echo "$0: run scripts/build-wheels.sh first" >&2; exit 1; }
wheel="$root/${wheels[0]}"
sdist="$root/${sdists[0]}"

base=/usr/bin/python3
if ! "$base" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    base="$(command -v python3)"
    echo "$0: no usable /usr/bin/python3 >= 3.11 with venv; using $base (the test that drops" \
        "to uid 65534 needs its standard library readable by that user)" >&2
fi
work="$(mktemp -d /tmp/afxdp-dist.XXXXXX)"
chmod 755 "$work"
[[ ${KEEP_VENVS:-0} == 1 ]] || trap 'rm -rf "$work"' EXIT
test_deps=("pytest>=7" hypothesis numpy scapy mypy)

step "the wheel in a fresh venv without Rust"
# No Rust on PATH: rustup's ~/.cargo/bin left out, and cargo/rustc/maturin (Debian's live in
# /usr/bin, used by the eBPF checks) shadowed by stubs that fail, so any attempt to build shows.
mkdir -p "$work/no-rust"
for tool in cargo rustc rustup maturin; do
    printf '#!/bin/sh\necho "%s: no Rust toolchain in this environment" >&2\nexit 127\n' "$tool" \
        >"$work/no-rust/$tool"
    chmod 755 "$work/no-rust/$tool"
done
"$base" -m venv "$work/wheel-venv"
wpath="$work/wheel-venv/bin:$work/no-rust:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
(
    export PATH="$wpath"
    unset VIRTUAL_ENV PYTHONPATH CARGO RUSTC
    py="$work/wheel-venv/bin/python"
    [[ $(command -v cargo) == "$work/no-rust/cargo" && $(command -v rustc) == "$work/no-rust/rustc" ]]
    "$py" -m pip install -q "${test_deps[@]}"
    # uvloop only where it installs (tests/test_aio.py runs the asyncio tests on it too, else skips).
    "$py" -m pip install -q --only-binary :all: uvloop || echo "uvloop did not install" >&2
    "$py" -m pip install -q --no-index --only-binary :all: "$wheel"
    cd "$root"
    # The suite must test the installed wheel, not the source tree.
    "$py" - "$work/wheel-venv" <<'EOF'
import sys, afxdp, afxdp._native
venv = sys.argv[1]
for module in (afxdp, afxdp._native):
    assert module.__file__.startswith(venv), f"{module.__name__} from {module.__file__}, not {venv}"
print("testing afxdp", afxdp.__version__, "from", afxdp.__file__)
EOF
    afxdp --help >/dev/null
    step "pytest against the installed wheel"
    "$py" -m pytest tests --conformance-table "$work/conformance.md" "$@"
    if [[ $# -eq 0 ]]; then
        # docs/conformance.md is what the conformance suite's run writes: a whole run must
        # write the same table (every line but the one naming the kernel).
        step "docs/conformance.md matches this run's conformance table"
        if ! diff -u <(grep -v '^Generated on kernel ' docs/conformance.md) \
            <(grep -v '^Generated on kernel ' "$work/conformance.md"); then
            echo "$0: docs/conformance.md differs from this run's table; regenerate it with" \
                "pytest tests/conformance --conformance-table docs/conformance.md" >&2
            exit 1
        fi
    fi
    step "the documentation site (mkdocs build --strict)"
    NO_MKDOCS_2_WARNING=1 PYTHON="$py" scripts/build-docs.sh
)

step "the sdist: contents"
listing="$(tar tzf "$sdist" | cut -d/ -f2-)"
for want in LICENSE-MIT LICENSE-APACHE README.md CHANGELOG.md Cargo.lock pyproject.toml \
    xdp-ebpf/Cargo.toml xdp-ebpf/Cargo.lock xdp-ebpf/src/main.rs xdp-ebpf/common/src/lib.rs \
    rust/core/bpf/afxdp.bpf.o rust/python/src/lib.rs python/afxdp/_native.pyi \
    python/afxdp/examples/l2fwd.py tests/conftest.py tests/test_packaging.py docs/index.md \
    docs/benchmarks.md mkdocs.yml scripts/build-ebpf.sh scripts/build-wheels.sh; do
    grep -qx -- "$want" <<<"$listing" || { echo "$0: the sdist lacks $want" >&2; exit 1; }
done

step "the sdist in a fresh venv (built by cargo)"
"$base" -m venv "$work/sdist-venv"
(
    py="$work/sdist-venv/bin/python"
    # A target dir of its own: the sdist's files carry one fixed old mtime, so in a target dir
    # that has built these crates before cargo would take them for up to date and reuse the
    # old build instead of compiling what the sdist holds.
    CARGO_TARGET_DIR="$work/sdist-target" "$py" -m pip install -q "$sdist"
    "$py" -m pip install -q "pytest>=7"
    mkdir "$work/sdist" && tar xzf "$sdist" -C "$work/sdist" --strip-components=1
    cd "$work/sdist"
    "$py" -c 'import afxdp, sys; assert "sdist-venv" in afxdp.__file__, afxdp.__file__'
    # The unprivileged checks the sdist carries, against the package built from it.
    "$py" -m pytest -q -p no:cacheprovider tests/test_packaging.py tests/test_packet.py \
        -m "not privileged"
)
step "dist checked"
