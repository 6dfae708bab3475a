#!/usr/bin/env bash
# Miri over the core's unsafe-heavy unit tests: the ring cursors over raw memory (model tests,
# the two-thread test), the UMEM, its frame table (the random-operation model test), the
# frames lent in place by recv_with (the slices it makes over the UMEM) and the
# address decoding. Miri needs a nightly toolchain with its component, which only rustup
# provides: where rustup is absent (Debian's rustc-web) or cannot fetch it, this says why and
# exits 0 without running, so CI on such a machine is not held up by a tool it cannot have.
# MIRI_REQUIRED=1 makes that a failure instead.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source scripts/env.sh
cannot() {
    if [[ ${MIRI_REQUIRED:-0} == 1 ]]; then echo "miri: $*" >&2; exit 1; fi
    echo "miri: NOT RUN: $*" >&2
    exit 0
}
command -v rustup >/dev/null || cannot "no rustup (Miri ships only as a rustup component)"
if ! cargo +nightly miri --version >/dev/null 2>&1; then
    timeout 600 rustup toolchain install nightly --profile minimal --component miri,rust-src \
        >&2 || cannot "rustup could not install a nightly toolchain with miri"
fi
timeout 600 cargo +nightly miri setup >&2 || cannot "cargo miri setup failed"
# Isolation off: the tests read the clock (stall deadlines) and the pid (the fork guard).
export MIRIFLAGS="${MIRIFLAGS:--Zmiri-disable-isolation}"
export CARGO_TARGET_DIR="$root/target/miri"
exec cargo +nightly miri test -p afxdp --lib -- ring::tests umem::tests addr:: socket::lend::tests
