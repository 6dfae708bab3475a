#!/usr/bin/env python3
"""Instructions per receive wakeup of the core (64 frames), counted by callgrind: exact and
repeatable, whatever else the machine runs, so two builds compare without noise.

Builds benches/examples/rx_instructions.rs, runs it under `valgrind --tool=callgrind` and
prints, per wakeup and per frame, the instructions of its `wakeup` function (one `RxPath::recv`
of 64 frames and the batch's drop, callees included) and of `wakeup_lent` (the same 64 frames
lent by `RxPath::recv_with`, their lengths summed).

    python3 benches/rx_instructions.py [--wakeups 10000]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BATCH = 64


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--wakeups", type=int, default=10_000)
    args = p.parse_args()
    subprocess.run(
        [
            "cargo",
            "build",
            "-q",
            "--release",
            "-p",
            "afxdp-benches",
            "--example",
            "rx_instructions",
        ],
        cwd=ROOT,
        check=True,
    )
    binary = ROOT / "target" / "release" / "examples" / "rx_instructions"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                str(binary),
                str(args.wakeups),
            ],
            check=True,
            capture_output=True,
        )
        report = subprocess.run(
            ["callgrind_annotate", "--inclusive=yes", str(out)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    for name, what in (("wakeup", "recv + drop"), ("wakeup_lent", "recv_with")):
        m = re.search(rf"^\s*([\d,]+)\s.*rx_instructions::{name}\b", report, re.M)
        if not m:
            sys.exit(f"callgrind_annotate shows no rx_instructions::{name}")
        per = int(m.group(1).replace(",", "")) / args.wakeups
        print(
            f"{what}: {per:,.0f} instructions per wakeup of {BATCH} frames, "
            f"{per / BATCH:.1f} per frame ({args.wakeups} wakeups)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
