#!/usr/bin/env python3
"""How fast the tests' numbered-frame oracle builds and checks frames (no privileges needed).

    python3 benches/oracle.py [--count 20000] [--size 1500] [--rounds 3]

The datapath tests build every frame they send with ``afxdp.testing.numbered_frame`` and check
every frame they receive with ``parse_numbered``; when that costs more than the datapath, a test
measures the oracle instead of the library. Prints the fastest round's microseconds per frame.
"""

from __future__ import annotations

import argparse
import time

from afxdp.testing import numbered_frame, parse_numbered

MAC_A, MAC_B = "02:00:00:00:00:01", "02:00:00:00:00:02"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=20_000)
    p.add_argument("--size", type=int, default=1500)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    build, parse = [], []
    for _ in range(args.rounds):
        start = time.perf_counter()
        frames = [numbered_frame(seq, args.size, MAC_A, MAC_B) for seq in range(args.count)]
        built = time.perf_counter()
        seqs = [parse_numbered(frame) for frame in frames]
        parsed = time.perf_counter()
        if seqs != list(range(args.count)):
            raise SystemExit("parse_numbered disagrees with numbered_frame")
        build.append(built - start)
        parse.append(parsed - built)
    per = 1e6 / args.count
    print(
        f"{args.count} frames of {args.size} bytes: numbered_frame {min(build) * per:.2f} us, "
        f"parse_numbered {min(parse) * per:.2f} us per frame (fastest of {args.rounds})"
    )


if __name__ == "__main__":
    main()
