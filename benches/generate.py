#!/usr/bin/env python3
"""Packets/s of afxdp.generate() into a veth, and of a Python batch receive loop under that load.

Builds a private veth lab and, for each round, runs afxdp.generate() in namespace a (this
process) for --seconds into the veth, with end b set up three ways:

* ``no-xdp``: nothing on b. The veth refuses redirected frames unless its peer has an XDP
  program, so every copy is dropped at the redirect: the generator's own ceiling.
* ``xsk-sink``: the afxdp program (native) and an AF_XDP socket on b that nobody reads. Every
  copy is run through b's program and copied towards the socket, whose full rx ring drops it
  (counted in rx_ring_full): the generator with a receiver's kernel work.
* ``python-rx``: the same, read by a Python batch loop (benches/rxdrop.py: ``sock.recv(64)``,
  count, ``release``) in its own process in namespace b, which reports its receive rate.

The generator runs on one core; with 2 cores the receiver's softirq work (b's XDP program and the
copy into the UMEM) runs on the generator's core, the Python loop on the other. Reports the median
over the rounds, with the raw rounds. Needs root and an installed afxdp (scripts/install.sh).

    python3 benches/generate.py [--rounds 3] [--seconds 3] [--size 64]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import afxdp
from afxdp import packet
from afxdp.lab import Lab

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ("no-xdp", "xsk-sink", "python-rx")


def parse(line: str) -> dict[str, str]:
    return dict(kv.split("=", 1) for kv in line.split())


def generate(lab: Lab, frame: bytes, seconds: float) -> float:
    """Runs the generator in namespace a for `seconds`; returns its packets/s."""
    with lab.enter("a"):
        start = time.monotonic()
        sent = afxdp.generate(lab.if_a, frame, duration=seconds)
        elapsed = time.monotonic() - start
    # The duration excludes loading the program; the wall time includes it.
    return sent / min(seconds, elapsed)


def run_round(lab: Lab, scenario: str, frame: bytes, seconds: float) -> dict[str, float]:
    if scenario == "no-xdp":
        return {"gen_pps": generate(lab, frame, seconds)}
    if scenario == "xsk-sink":
        with lab.enter("b"):
            prog = afxdp.Program.attach(lab.if_b, mode="native")
            sock = afxdp.Socket(lab.if_b, 0, program=prog, tx_size=0)
        try:
            pps = generate(lab, frame, seconds)
            stats = sock.stats()
            return {"gen_pps": pps, "ring_full": stats.rx_ring_full, "received": stats.received}
        finally:
            sock.close()
            prog.detach()
    # python-rx: the receiver measures `seconds` from its first packet; the generator runs
    # a little longer so that the whole window is under load.
    rx = lab.popen(
        "b",
        [
            sys.executable,
            str(ROOT / "benches/rxdrop.py"),
            lab.if_b,
            str(seconds),
            "native",
            "64",
            "batch",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert rx.stdout is not None
        if rx.stdout.readline().strip() != "ready":
            raise RuntimeError("the receiver did not start")
        pps = generate(lab, frame, seconds + 1.0)
        out, _ = rx.communicate(timeout=seconds + 30)
    finally:
        if rx.poll() is None:
            rx.kill()
            rx.wait()
    res = parse(out.strip().splitlines()[-1])
    return {
        "gen_pps": pps,
        "rx_pps": float(res["pps"]),
        "ring_full": float(res["rx_ring_full"]),
        "rx_dropped": float(res["rx_dropped"]),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--size", type=int, default=64, help="frame length in bytes (no FCS)")
    args = p.parse_args()
    results: dict[str, list[dict[str, float]]] = {s: [] for s in SCENARIOS}
    with Lab() as lab:
        payload = bytes(max(0, args.size - 42))
        frame = packet.ipv4_udp(lab.mac_a, lab.mac_b, lab.ip_a, lab.ip_b, 40000, 9, payload)
        for r in range(args.rounds):
            for scenario in SCENARIOS:  # interleaved, so drift hits every scenario alike
                res = run_round(lab, scenario, frame, args.seconds)
                results[scenario].append(res)
                rx = f"  python rx {res['rx_pps'] / 1e6:6.3f} Mpps" if "rx_pps" in res else ""
                print(
                    f"round {r + 1} {scenario:10} generator {res['gen_pps'] / 1e6:6.3f} Mpps{rx}",
                    flush=True,
                )

    def median(scenario: str, key: str) -> str:
        values = [x[key] for x in results[scenario] if key in x]
        return f"{statistics.median(values) / 1e6:10.3f}" if values else f"{'-':>10}"

    def raw(scenario: str, key: str) -> str:
        return ", ".join(f"{x[key] / 1e6:.2f}" for x in results[scenario] if key in x) or "-"

    print(
        f"\nmedians over {args.rounds} rounds of {args.seconds:g} s, {len(frame)}-byte frames, "
        f"{os.cpu_count()} cores, in Mpps"
    )
    print(
        f"{'scenario':10} {'generator':>10} {'python rx':>10}   raw rounds (generator | python rx)"
    )
    for s in SCENARIOS:
        print(
            f"{s:10} {median(s, 'gen_pps')} {median(s, 'rx_pps')}   "
            f"{raw(s, 'gen_pps')} | {raw(s, 'rx_pps')}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
