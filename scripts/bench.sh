#!/usr/bin/env bash
# Install what the benchmarks need and run the side-by-side benchmark (benches/e2e.py): afxdp's
# Python API and Rust core against libxdp's C xsk API and AF_PACKET, in a private veth lab.
# Writes docs/benchmarks.md (and docs/benchmarks.png). Root; run it on an otherwise quiet machine.
# Options go to benches/e2e.py (--rounds N, --seconds S, --sizes 64,1500).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/env.sh"
as_root "$@"
"$root/scripts/install-deps.sh"
if ! [[ -f /usr/include/xdp/xsk.h && -f /usr/include/bpf/libbpf.h ]]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q libxdp-dev libbpf-dev   # the C reference (benches/c/xsk_ref.c)
fi
python3 -m pip install -q matplotlib               # the chart; optional for e2e.py itself
"$root/scripts/install.sh" >&2
exec python3 "$root/benches/e2e.py" "$@"
