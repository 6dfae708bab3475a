#!/usr/bin/env bash
# Install the toolchain that builds the eBPF object (xdp-ebpf/ -> rust/core/bpf/afxdp.bpf.o).
#
# Only needed to rebuild or check the committed object (scripts/build-ebpf.sh); `pip install`
# and the core's own build never need it.
#
#   - Debian bookworm-security's rustc 1.96 + its exact library source (rust-web-src), so
#     `-Z build-std=core --target bpfel-unknown-none` works (/usr/bin/rustc, /usr/bin/cargo);
#   - LLVM 22 (the same LLVM as that rustc) for bpf-linker and llvm-objdump-22;
#   - bpf-linker 0.10.4 built against Debian's LLVM 22 (later releases dropped loading rustc's
#     own LLVM; an LLVM older than the bitcode's fails with "Invalid record");
#   - clang-22, which the test-suite uses to compile a user's C XDP program
#     (tests/fixtures/custom_xdp.c) for the Program.load tests.
#
# Idempotent and non-interactive; run as root on Debian 12. Set SKIP_APT=1 to skip apt.
set -euo pipefail

BPF_LINKER_VERSION=0.10.4
LLVM_PREFIX=/usr/lib/llvm-22

log() { printf '[install-ebpf-toolchain] %s\n' "$*" >&2; }

if [[ "${SKIP_APT:-0}" != 1 ]]; then
    export DEBIAN_FRONTEND=noninteractive
    apt_start=$SECONDS
    apt-get update -q
    # rustc-web/cargo-web/rust-web-src/llvm-22-dev only exist in bookworm-security.
    # Nothing else is needed to build bpf-linker: without its llvm-link-static feature it links
    # /usr/lib/llvm-22/lib/libLLVM.so (rpath set), so no zlib/zstd development packages.
    apt-get install -y -q -t bookworm-security rustc-web cargo-web rust-web-src llvm-22-dev clang-22
    if ! command -v llvm-objdump-22 >/dev/null; then
        apt-get install -y -q -t bookworm-security llvm-22
    fi
    log "apt took $((SECONDS - apt_start)) s"
fi

# bpf-linker is built with the rustup toolchain (the project's Rust), against Debian's LLVM 22.
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v cargo >/dev/null; then
    log "cargo not found (rustup's ~/.cargo/bin/cargo or a system cargo is needed)"
    exit 1
fi

if bpf-linker --version 2>/dev/null | grep -q " ${BPF_LINKER_VERSION}\b"; then
    log "bpf-linker ${BPF_LINKER_VERSION} already installed: $(command -v bpf-linker)"
else
    build_start=$SECONDS
    LLVM_PREFIX="$LLVM_PREFIX" cargo install bpf-linker --version "$BPF_LINKER_VERSION" \
        --locked --no-default-features --features llvm-22
    log "bpf-linker build took $((SECONDS - build_start)) s"
fi

bpf-linker --version
/usr/bin/rustc --version
llvm-objdump-22 --version | head -n 2
