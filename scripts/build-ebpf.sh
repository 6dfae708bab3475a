#!/usr/bin/env bash
# Build the XDP program (xdp-ebpf/) and install it as rust/core/bpf/afxdp.bpf.o, the object the
# core embeds. The object is committed, so only people changing the program need this (and the
# toolchain from scripts/install-ebpf-toolchain.sh).
#
#   scripts/build-ebpf.sh           build and copy the object to rust/core/bpf/afxdp.bpf.o
#   scripts/build-ebpf.sh --check   clean build in a temporary directory and compare it with the
#                                   committed object: the disassembly plus the section and symbol
#                                   tables (llvm-objdump-22 -d -h -t). Exits 1 with the diff when
#                                   they differ, 0 when they match. For CI.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
crate="$root/xdp-ebpf"
committed="$root/rust/core/bpf/afxdp.bpf.o"
objdump=llvm-objdump-22

check=0
case "${1:-}" in
    "") ;;
    --check) check=1 ;;
    -h | --help) sed -n '2,10s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

# bpf-linker lives in ~/.cargo/bin (cargo install).
export PATH="$HOME/.cargo/bin:$PATH"
for tool in /usr/bin/rustc /usr/bin/cargo bpf-linker "$objdump"; do
    if ! command -v "$tool" >/dev/null; then
        echo "build-ebpf: $tool not found; run scripts/install-ebpf-toolchain.sh" >&2
        exit 1
    fi
done

# Debian's rustc (its rust-src matches it, which build-std needs); RUSTC_BOOTSTRAP=1 unlocks
# -Z build-std and trim-paths (both set in xdp-ebpf/.cargo/config.toml). Any RUSTFLAGS from
# the environment would replace the config's rustflags, so drop them.
build() { # $1: target dir
    (
        cd "$crate"
        unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS
        RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$1" \
            /usr/bin/cargo build --release --locked --quiet
    )
}

# What is compared: the instructions, the section table (names, sizes, types) and the symbol
# table. The first lines name the file; drop them so the path of the object doesn't matter.
describe() { # $1: object
    "$objdump" -d -h -t "$1" | sed -e '1,/file format/d'
}

if [[ $check == 0 ]]; then
    build "$crate/target"
    mkdir -p "$(dirname "$committed")"
    cp "$crate/target/bpfel-unknown-none/release/afxdp" "$committed"
    echo "build-ebpf: wrote ${committed#"$root"/} ($(stat -c %s "$committed") bytes)"
    exit 0
fi

if [[ ! -f $committed ]]; then
    echo "build-ebpf: ${committed#"$root"/} is missing; run scripts/build-ebpf.sh" >&2
    exit 1
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
build "$tmp/target"
fresh="$tmp/target/bpfel-unknown-none/release/afxdp"
describe "$committed" >"$tmp/committed.txt"
describe "$fresh" >"$tmp/fresh.txt"
if diff -u --label "committed ${committed#"$root"/}" --label "fresh build of xdp-ebpf/" \
    "$tmp/committed.txt" "$tmp/fresh.txt"; then
    echo "build-ebpf: ${committed#"$root"/} matches a fresh build of xdp-ebpf/"
else
    echo "build-ebpf: ${committed#"$root"/} differs from a fresh build of xdp-ebpf/;" \
        "run scripts/build-ebpf.sh and commit the object" >&2
    exit 1
fi
