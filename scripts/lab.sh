#!/usr/bin/env bash
# Install afxdp into this Python and run the main job: traffic through afxdp in a private veth lab
# (two network namespaces, one veth pair; everything removed on exit). Root needed.
# Options go to `afxdp lab` (--duration S, --job gen-rx|dns-flood|rebroadcast, --mode, --batch,
# --size, --rate, --run SCRIPT ARGS...).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/env.sh"
as_root "$@"
"$root/scripts/install-deps.sh"
"$root/scripts/install.sh" >&2
cd /
exec python3 -m afxdp lab "$@"  # the same as the installed `afxdp lab`
