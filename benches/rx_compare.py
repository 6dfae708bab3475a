#!/usr/bin/env python3
"""Receive rate of the Rust core vs the Python batch API vs Python per-frame work, side by side.

Builds a private veth lab; for each round and each receiver (run in namespace b), a sender in
namespace a floods 64-byte UDP frames through AF_XDP (examples/dns_flood.py) for the same time,
so every receiver sees the same offered load. Reports per receiver the median delivered packets/s
and receiver CPU time per packet, and ratios against the Rust core. Needs root; builds the Rust
twin with cargo first.

    python3 benches/rx_compare.py [--rounds 3] [--seconds 4] [--mode native|generic]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

from afxdp.lab import Lab

ROOT = Path(__file__).resolve().parent.parent


def parse(line: str) -> dict[str, str]:
    return dict(kv.split("=", 1) for kv in line.split())


def run_one(lab: Lab, receiver: list[str], seconds: float) -> dict[str, str]:
    rx = lab.popen("b", receiver, stdout=subprocess.PIPE, text=True)
    try:
        assert rx.stdout is not None
        if rx.stdout.readline().strip() != "ready":
            raise RuntimeError(f"receiver {receiver} did not start")
        sender = [
            sys.executable,
            str(ROOT / "examples/dns_flood.py"),
            lab.if_a,
            "--src-mac",
            lab.mac_a,
            "--dst-mac",
            lab.mac_b,
            "--src-ip",
            lab.ip_a,
            "--dst-ip",
            lab.ip_b,
            "--duration",
            str(seconds + 1.5),
        ]
        lab.run("a", sender, timeout=seconds + 30)
        out, _ = rx.communicate(timeout=seconds + 30)
    finally:
        if rx.poll() is None:
            rx.kill()
            rx.wait()
    return parse(out.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--mode", choices=["native", "generic"], default="native")
    args = p.parse_args()
    subprocess.run(
        ["cargo", "build", "--quiet", "--release", "-p", "afxdp", "--example", "rxdrop"],
        cwd=ROOT,
        check=True,
    )
    rust = str(ROOT / "target/release/examples/rxdrop")
    py = [sys.executable, str(ROOT / "benches/rxdrop.py")]
    secs = str(args.seconds)
    receivers = {
        "rust": lambda ifb: [rust, ifb, secs, args.mode, "64"],
        "python-batch": lambda ifb: [*py, ifb, secs, args.mode, "64", "batch"],
        "python-perframe": lambda ifb: [*py, ifb, secs, args.mode, "64", "perframe"],
    }
    results: dict[str, list[dict[str, str]]] = {k: [] for k in receivers}
    with Lab() as lab:
        for r in range(args.rounds):
            for name, argv in receivers.items():  # interleaved, so drift hits every receiver alike
                res = run_one(lab, argv(lab.if_b), args.seconds)
                results[name].append(res)
                print(
                    f"round {r + 1} {name:16} {float(res['pps']):>12,.0f} pps "
                    f"{float(res['cpu_ns_per_packet']):8.1f} ns CPU/packet "
                    f"(drops: rx_dropped={res['rx_dropped']} ring_full={res['rx_ring_full']})",
                    flush=True,
                )
    base_pps = statistics.median(float(x["pps"]) for x in results["rust"])
    base_cpu = statistics.median(float(x["cpu_ns_per_packet"]) for x in results["rust"])
    print(
        f"\nmedians over {args.rounds} rounds ({args.mode} XDP, 64-byte frames, "
        f"{os.cpu_count()} cores, sender: Python AF_XDP TX in the other namespace)"
    )
    print(f"{'receiver':16} {'pps':>12} {'ns CPU/pkt':>11} {'pps vs rust':>12} {'CPU vs rust':>12}")
    for name, runs in results.items():
        pps = statistics.median(float(x["pps"]) for x in runs)
        cpu = statistics.median(float(x["cpu_ns_per_packet"]) for x in runs)
        print(f"{name:16} {pps:12,.0f} {cpu:11.1f} {pps / base_pps:12.2f} {cpu / base_cpu:12.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
