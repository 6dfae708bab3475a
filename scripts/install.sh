#!/usr/bin/env bash
# Build the extension in release mode and install the afxdp package into this Python.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source scripts/env.sh
python3 -m pip install -q "maturin>=1.9,<2"
rm -rf target/wheels
python3 -m maturin build --release --locked -i python3 -o target/wheels
python3 -m pip install -q --force-reinstall --no-deps target/wheels/afxdp-*.whl
python3 -c 'import afxdp; print("installed afxdp", afxdp.__version__, "from", afxdp.__file__)'
