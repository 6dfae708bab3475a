"""Builds the C reference, benches/c/xsk_ref.c (libxdp's xsk API), for the benchmark scripts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "benches" / "c" / "xsk_ref.c"
BINARY = ROOT / "target" / "bench-c" / "xsk_ref"


def build_xsk_ref() -> Path | None:
    """`cc -O2 -o target/bench-c/xsk_ref benches/c/xsk_ref.c -lxdp -lbpf`; None (with a message
    on stderr) when there is no compiler or libxdp/libbpf (Debian: libxdp-dev, libbpf-dev)."""
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        print(f"no C compiler ({cc}): the C reference is skipped", file=sys.stderr)
        return None
    BINARY.parent.mkdir(parents=True, exist_ok=True)
    argv = [cc, "-O2", "-Wall", "-o", str(BINARY), str(SOURCE), "-lxdp", "-lbpf"]
    print(f"building the C reference: {cc} -O2 ... -lxdp -lbpf", flush=True)
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(
            f"{done.stderr.strip()}\nthe C reference did not build (it needs the Debian "
            "packages libxdp-dev and libbpf-dev): it is skipped",
            file=sys.stderr,
        )
        return None
    return BINARY
