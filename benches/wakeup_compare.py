#!/usr/bin/env python3
"""One receive wakeup (a batch of 64 frames): the core's own loop against the Rust side of the
Python-facing path, in ns per frame and as a ratio.

Runs the criterion benchmarks of benches/benches/wakeup.rs: `Socket::recv`'s body over heap
rings (`afxdp::socket::RxPath`, no kernel, no privileges) driven as a Rust program drives it
(recv, drop the batch; and `recv_with`, the frames lent in place) and as the bindings drive it
(`Socket.batches()` steps, and `Socket.recv` + `FrameBatch.release`, through the bindings' own
locks and cells). The
difference is what the bindings add in Rust; CPython's share (objects, reference counts, the
call) is not in these figures.

    python3 benches/wakeup_compare.py [--measurement-time 5] [--cpu N]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys

from ring_compare import criterion

#: The criterion id of the core's own loop, the baseline of the ratios.
CORE = "wakeup/core loop: recv + drop, 64 frames"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--measurement-time", type=float, default=5.0, help="criterion, seconds")
    p.add_argument("--warm-up-time", type=float, default=2.0, help="criterion, seconds")
    p.add_argument("--cpu", type=int, default=None, help="pin the benchmark to this CPU")
    args = p.parse_args()
    args.filter = None
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})  # inherited by cargo and the bench

    print("running the criterion benches (cargo bench -p afxdp-benches --bench wakeup)", flush=True)
    results = criterion(args, "wakeup")
    found = {k: v for k, v in results.items() if k.startswith("wakeup/")}
    if CORE not in found:
        sys.exit(f"criterion wrote no estimate for {CORE!r}")
    core_ns, core_frames = found[CORE]
    core_each = core_ns / core_frames

    print(f"\none wakeup = one batch of 64 frames; criterion medians; {cpu_model()}")
    print(f"{'benchmark':62} {'ns/wakeup':>9} {'ns/frame':>8} {'vs core':>8} {'+ns/frame':>9}")
    for name in sorted(found, key=lambda n: (n != CORE, n)):
        ns, frames = found[name]
        each = ns / frames
        print(
            f"{name.removeprefix('wakeup/'):62} {ns:9.1f} {each:8.2f} "
            f"{each / core_each:8.2f} {each - core_each:+9.2f}"
        )
    for name, (ns, _) in sorted(results.items()):
        if name.startswith("idle"):
            print(f"\n{name}: {ns:.1f} ns per call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
