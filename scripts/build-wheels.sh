#!/usr/bin/env bash
# Build the release artefacts into dist/: the abi3 wheel for manylinux2014 (manylinux_2_17,
# glibc >= 2.17) x86_64, stripped, and the sdist; then check the wheel with auditwheel.
#
#   scripts/build-wheels.sh             # x86_64 wheel + sdist (what CI and a release build)
#   scripts/build-wheels.sh --aarch64   # also the aarch64 wheel (see below)
#   scripts/build-wheels.sh --musl      # also the musllinux_1_2 x86_64 wheel (the same way)
#
# The wheel is linked by zig (PyPI's `ziglang`) against glibc 2.17's symbols, so it installs on
# RHEL/Rocky 8, Debian 10+, Ubuntu 18.04+ although this machine's glibc is newer; without --zig
# maturin would tag it with the build machine's glibc. One wheel serves every CPython >= 3.11
# (abi3). The tools come from PyPI into the Python that runs this script (PYTHON, default python3):
# maturin, ziglang, auditwheel. Cargo comes from PATH (rustup's, else Debian's rustc-web).
#
# aarch64: rustup cannot download the aarch64 standard library here, so the aarch64 wheel is
# built with Debian's rustc 1.96 (/usr/bin/rustc, from rustc-web) and its library source
# (rust-web-src, which scripts/install-ebpf-toolchain.sh installs): cargo's -Z build-std compiles
# std for aarch64-unknown-linux-gnu, zig links. It is optional (--aarch64), as it recompiles std.
# --musl builds x86_64-unknown-linux-musl the same way (rustup has no musl std here either).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source scripts/env.sh
py="${PYTHON:-python3}"
cross=()
for arg in "$@"; do
    case "$arg" in
        --aarch64) cross+=("aarch64-unknown-linux-gnu manylinux2014") ;;
        --musl) cross+=("x86_64-unknown-linux-musl musllinux_1_2") ;;
        *) echo "usage: $0 [--aarch64] [--musl]" >&2; exit 2 ;;
    esac
done

"$py" -m pip install -q "maturin>=1.10,<2" ziglang auditwheel
rm -rf dist
mkdir -p dist

build=(-m maturin build --release --locked --strip --zig -o dist)
"$py" "${build[@]}" --compatibility manylinux2014
for target_tag in "${cross[@]}"; do
    read -r target tag <<<"$target_tag"
    # Debian's cargo and rustc, std built from rust-web-src; a target dir per target, since
    # the compiler differs from the x86_64 glibc build's.
    [[ -d /usr/lib/rustlib/src/rust/library ]] || {
        echo "$0: $target needs Debian's rust-web-src (scripts/install-ebpf-toolchain.sh)" >&2
        exit 1
    }
    PATH="$(dirname "$(command -v "$py")"):/usr/bin:/bin" \
        RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 CARGO_UNSTABLE_BUILD_STD=std,panic_abort \
        CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}/$target-build-std" \
        "$py" "${build[@]}" --compatibility "$tag" --target "$target"
done
"$py" -m maturin sdist -o dist

# auditwheel: each manylinux wheel's symbols fit the policy its tag claims (manylinux_2_17).
# (auditwheel cannot inspect a musllinux wheel on a glibc machine.)
for whl in dist/*manylinux*.whl; do
    report="$("$py" -m auditwheel show "$whl")"
    printf '%s\n' "$report"
    arch="$(basename "$whl" .whl)"
    arch="${arch##*_2_17_}"
    if ! tr '\n' ' ' <<<"$report" | grep -Eq "consistent with the following platform tag: \"manylinux_2_17_$arch\""; then
        echo "$0: auditwheel does not accept $whl as manylinux_2_17_$arch" >&2
        exit 1
    fi
done
ls -l dist
