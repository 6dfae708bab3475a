#!/usr/bin/env bash
# Build the XDP programs (xdp-ebpf/) and install them as the objects the core embeds:
#   rust/core/bpf/afxdp.bpf.o      from bin `afxdp`      (src/main.rs, the redirect program)
#   rust/core/bpf/afxdp_gen.bpf.o  from bin `afxdp-gen`  (src/gen.rs, the traffic generator)
# Both programs take their map layouts, flags and names from xdp-ebpf/common, which rust/core
# uses too (a path dependency), so a layout change shows up on both sides at once.
# The objects are committed, so only people changing a program need this (and the toolchain
# from scripts/install-ebpf-toolchain.sh).
#
#   scripts/build-ebpf.sh           build and copy both objects to rust/core/bpf/
#   scripts/build-ebpf.sh --check   clean build in a temporary directory and compare it with the
#                                   committed objects: the disassembly plus the section and symbol
#                                   tables (llvm-objdump-22 -d -h -t). Exits 1 with the diff when
#                                   one differs, 0 when both match. For CI.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
crate="$root/xdp-ebpf"
bpf_dir="$root/rust/core/bpf"
# bin name in xdp-ebpf/Cargo.toml -> installed object name in rust/core/bpf/
objects=("afxdp:afxdp.bpf.o" "afxdp-gen:afxdp_gen.bpf.o")
objdump=llvm-objdump-22

check=0
case "${1:-}" in
    "") ;;
    --check) check=1 ;;
    -h | --help) sed -n '2,14s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
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
    mkdir -p "$bpf_dir"
    for entry in "${objects[@]}"; do
        bin="${entry%%:*}" object="$bpf_dir/${entry#*:}"
        cp "$crate/target/bpfel-unknown-none/release/$bin" "$object"
        echo "build-ebpf: wrote ${object#"$root"/} ($(stat -c %s "$object") bytes)"
    done
    exit 0
fi

for entry in "${objects[@]}"; do
    object="$bpf_dir/${entry#*:}"
    if [[ ! -f $object ]]; then
        echo "build-ebpf: ${object#"$root"/} is missing; run scripts/build-ebpf.sh" >&2
        exit 1
    fi
done
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
build "$tmp/target"
status=0
for entry in "${objects[@]}"; do
    bin="${entry%%:*}" object="$bpf_dir/${entry#*:}"
    fresh="$tmp/target/bpfel-unknown-none/release/$bin"
    describe "$object" >"$tmp/committed-$bin.txt"
    describe "$fresh" >"$tmp/fresh-$bin.txt"
    if diff -u --label "committed ${object#"$root"/}" --label "fresh build of bin $bin" \
        "$tmp/committed-$bin.txt" "$tmp/fresh-$bin.txt"; then
        echo "build-ebpf: ${object#"$root"/} matches a fresh build of xdp-ebpf/ (bin $bin)"
    else
        echo "build-ebpf: ${object#"$root"/} differs from a fresh build of xdp-ebpf/ (bin $bin);" \
            "run scripts/build-ebpf.sh and commit the object" >&2
        status=1
    fi
done
exit "$status"
