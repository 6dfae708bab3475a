#!/usr/bin/env python3
"""The core's ring cursors next to libxdp's inline ring functions, in ns per descriptor.

Runs the criterion benchmarks of benches/benches/core.rs (rings, frame pool, batch edits; 64 at
a time) and the C reference's `ring` mode (benches/c/xsk_ref.c: the same produce-64 /
consume-64 loop over heap rings with libxdp's xsk_ring_prod__reserve/submit and
xsk_ring_cons__peek/release), and prints every figure per descriptor (or frame), with the Rust
ring against the C ring. No kernel and no privileges needed.

    python3 benches/ring_compare.py [--rounds 3] [--measurement-time 5] [--cpu N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from cref import ROOT, build_xsk_ref

#: Where criterion writes its estimates: under cargo's target directory (CARGO_TARGET_DIR,
#: relative to the checkout when relative, as cargo runs from there).
CRITERION = ROOT / os.environ.get("CARGO_TARGET_DIR", "target") / "criterion"
#: The criterion benchmark that does what `xsk_ref ring` does.
RUST_RING = "ring/produce+consume 64 descriptors"


def c_ring(binary: Path, rounds: int, descriptors: int) -> list[float]:
    out = []
    for _ in range(rounds):
        line = subprocess.run(
            [str(binary), "ring", "-n", str(descriptors), "-b", "64"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        fields = dict(kv.split("=", 1) for kv in line.split())
        out.append(float(fields["ns_per_desc"]))
    return out


def criterion(args: argparse.Namespace, bench: str = "core") -> dict[str, tuple[float, int]]:
    """Runs the criterion bench target `bench` (benches/benches/<bench>.rs); returns
    {id: (median ns per iteration, elements)}."""
    started = time.time()
    argv = [
        "cargo",
        "bench",
        "--quiet",
        "-p",
        "afxdp-benches",
        "--bench",
        bench,
        "--",
        "--warm-up-time",
        str(args.warm_up_time),
        "--measurement-time",
        str(args.measurement_time),
    ]
    if args.filter:
        argv.append(args.filter)
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{done.stderr}")
    found = {}
    for meta in CRITERION.glob("**/new/benchmark.json"):  # grouped and ungrouped benches
        if meta.stat().st_mtime < started:
            continue  # left over from an earlier run
        info = json.loads(meta.read_text())
        est = json.loads((meta.parent / "estimates.json").read_text())
        elements = (info.get("throughput") or {}).get("Elements", 1)
        found[info["full_id"]] = (est["median"]["point_estimate"], elements)
    return found


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3, help="runs of the C ring loop (median)")
    p.add_argument(
        "--descriptors", type=int, default=200_000_000, help="descriptors per C ring run"
    )
    p.add_argument("--measurement-time", type=float, default=5.0, help="criterion, seconds")
    p.add_argument("--warm-up-time", type=float, default=2.0, help="criterion, seconds")
    p.add_argument("--filter", default=None, help="criterion filter (e.g. ring)")
    p.add_argument("--cpu", type=int, default=None, help="pin both to this CPU")
    args = p.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})  # inherited by cargo, the bench and xsk_ref

    binary = build_xsk_ref()
    c = c_ring(binary, args.rounds, args.descriptors) if binary else []
    print("running the criterion benches (cargo bench -p afxdp-benches --bench core)", flush=True)
    rust = criterion(args)

    c_ns = statistics.median(c) if c else None
    print(
        f"\nns per descriptor (or frame), batches of 64; C: median of {args.rounds} runs "
        f"({', '.join(f'{x:.2f}' for x in c)}); Rust: criterion median"
    )
    print(f"{'benchmark':66} {'ns/batch':>9} {'ns/each':>8} {'vs C ring':>10}")
    if c_ns is not None:
        print(
            f"{'c (libxdp xsk.h) ring produce+consume 64 descriptors':66} {c_ns * 64:9.1f} "
            f"{c_ns:8.2f} {1:10.2f}"
        )
    for name in sorted(rust, key=lambda n: (n != RUST_RING, n)):
        ns, elements = rust[name]
        ratio = f"{ns / elements / c_ns:10.2f}" if c_ns and name == RUST_RING else f"{'':10}"
        print(f"{'rust ' + name:66} {ns:9.1f} {ns / elements:8.2f} {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
