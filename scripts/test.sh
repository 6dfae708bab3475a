#!/usr/bin/env bash
# The whole test suite, on a fresh Debian 12 machine, as root: installs what it needs (apt, pip,
# the eBPF toolchain), runs the linters (cargo fmt, clippy -D warnings, ruff, mypy --strict),
# checks the committed XDP objects against their source, runs the Rust core's unit tests (and
# Miri over the unsafe-heavy ones, where rustup can provide it), builds
# the release artefacts (scripts/build-wheels.sh: the manylinux_2_17 wheel, checked by auditwheel,
# and the sdist), installs the wheel into a fresh venv without Rust and runs pytest against it
# (pytest also runs mypy's stubtest on the stubs), installs the sdist into another fresh venv and
# builds the documentation site with warnings as errors (scripts/check-dist.sh).
#
# Privileged tests (AF_XDP sockets, XDP programs, network namespaces) run for real as root. Set
# AFXDP_REQUIRE_PRIVILEGED=1 (CI does) to make them fail instead of skip when they cannot run.
# Extra arguments go to pytest (e.g. scripts/test.sh -k ring -x).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source scripts/env.sh
as_root "$@"
step() { printf '\n== %s (%s s)\n' "$*" "$SECONDS" >&2; }

step "system packages"
scripts/install-deps.sh

step "lint: cargo fmt, clippy -D warnings, rustdoc, ruff, mypy --strict"
cargo fmt --all --check
(cd xdp-ebpf && cargo fmt --all --check)
cargo clippy --locked --workspace --all-targets -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps -p afxdp -p afxdp-python   # doc links resolve
python3 -m ruff check python/afxdp tests benches  # python/afxdp includes the examples
python3 -m ruff format --check python/afxdp tests benches
python3 -m mypy   # files and --strict from pyproject.toml

step "eBPF toolchain and the committed object"
SKIP_APT="${SKIP_APT:-0}" scripts/install-ebpf-toolchain.sh
scripts/build-ebpf.sh --check

step "Rust core tests"
# As root (CI), the core's privileged tests (netns, veth, XDP attach, SIGKILL) run too.
if [[ $(id -u) == 0 || ${AFXDP_REQUIRE_PRIVILEGED:-0} == 1 ]]; then
    cargo test --locked -p afxdp -- --include-ignored
else
    cargo test --locked -p afxdp
fi

step "Miri over the core's ring, UMEM and address tests (scripts/miri.sh; needs rustup's nightly)"
scripts/miri.sh

step "the wheel and the sdist (scripts/build-wheels.sh)"
scripts/build-wheels.sh

step "pytest against the installed wheel, the sdist, the docs (scripts/check-dist.sh)"
scripts/check-dist.sh "$@"
step "done"
