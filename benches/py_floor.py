#!/usr/bin/env python3
"""What one iteration of a Python batch receive loop costs, without traffic.

    sudo python3 benches/py_floor.py [--iterations 200000] [--rounds 5] [--full 1984]

Opens an AF_XDP socket in a private veth lab (nothing is sent) and times, on its empty rx ring:

* ``minimal``: ``with recv(64) as got: n += len(got)``, the least a batch loop does;
* ``counting``: the body of the benchmark's rx-batch loop (benches/workers.py): the clock, then
  ``with recv(64, 0) as got:``, ``len`` and ``nbytes`` (timeout 0: on the empty ring a timeout
  would be waited for);
* ``empty``: a Python ``for`` loop doing nothing, for scale.

Each figure is the fastest round's ns per iteration, with warm caches: a receiver woken by
poll() pays more.

With ``--full N`` it also times receive loops on a ring that holds frames: an AF_XDP socket in
the lab's other namespace sends N frames (64 bytes, in batches of 64: ``send_packets``), the
receiver waits until all N are on its rx ring, then drains it, timed, once per round:

* ``drain-iter``: ``for got in sock.batches(64, 0): n += len(got); nbytes += got.nbytes``;
* ``drain-with``: ``with recv(64, 0) as got:`` and the same body, until a batch comes back empty.

These print the median round's ns per batch and per frame: beside the core's own loop over heap
rings (``cargo bench -p afxdp-benches --bench wakeup``, "core loop"), what the interpreter and
the bindings add per batch when their caches are warm.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import afxdp
from afxdp import packet
from afxdp.lab import Lab


def minimal(sock: afxdp.Socket, n: int) -> float:
    recv = sock.recv
    k = 0
    t = time.perf_counter()
    for _ in range(n):
        with recv(64) as got:
            k += len(got)
    return (time.perf_counter() - t) / n * 1e9


def counting(sock: afxdp.Socket, n: int) -> float:
    recv, clock = sock.recv, time.monotonic
    packets = nbytes = 0
    deadline = clock() + 3600
    t = time.perf_counter()
    for _ in range(n):
        if clock() > deadline:
            break
        with recv(64, 0) as got:
            packets += len(got)
            nbytes += got.nbytes
    return (time.perf_counter() - t) / n * 1e9


def empty(_sock: afxdp.Socket, n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        pass
    return (time.perf_counter() - t) / n * 1e9


def drain_iter(sock: afxdp.Socket) -> tuple[int, int, int]:
    """Drains the rx ring through ``batches()``; returns (ns, frames, batches)."""
    frames = nbytes = batches = 0
    t = time.perf_counter_ns()
    for got in sock.batches(64, 0):
        frames += len(got)
        nbytes += got.nbytes
        batches += 1
    return time.perf_counter_ns() - t, frames, batches


def drain_with(sock: afxdp.Socket) -> tuple[int, int, int]:
    """Drains the rx ring through ``with recv(64, 0)``; returns (ns, frames, batches)."""
    recv = sock.recv
    frames = nbytes = batches = 0
    t = time.perf_counter_ns()
    while True:
        with recv(64, 0) as got:
            k = len(got)
            if not k:
                break
            frames += k
            nbytes += got.nbytes
            batches += 1
    return time.perf_counter_ns() - t, frames, batches


def full_ring(lab: Lab, count: int, rounds: int) -> None:
    """Times draining a ring of `count` frames, sent by a socket in namespace a (bounded)."""
    frame = packet.ipv4_udp(lab.mac_a, lab.mac_b, lab.ip_a, lab.ip_b, 40000, 9, bytes(22))
    burst = [frame] * 64
    drains: dict[str, Callable[[afxdp.Socket], tuple[int, int, int]]] = {
        "drain-iter": drain_iter,
        "drain-with": drain_with,
    }
    with lab.enter("b"):
        prog = afxdp.Program.attach(lab.if_b, mode="native")
        rx = afxdp.Socket(lab.if_b, 0, tx_size=0, program=prog)
    with lab.enter("a"):
        tx = afxdp.Socket(lab.if_a, 0, rx_size=0)
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in drains}
    try:
        for _ in range(rounds):
            for name, drain in drains.items():  # interleaved
                sent = 0
                deadline = time.monotonic() + 2
                while sent < count and time.monotonic() < deadline:
                    sent += tx.send_packets(burst[: min(64, count - sent)])
                    tx.complete()
                while rx.rx_available < sent and time.monotonic() < deadline:
                    tx.complete()
                ns, frames, batches = drain(rx)
                if batches:
                    runs[name].append((ns / batches, ns / frames))
    finally:
        tx.close()
        rx.close()
        prog.detach()
    for name, got in runs.items():
        if not got:
            print(f"{name:10} nothing received")
            continue
        per_batch = statistics.median(g[0] for g in got)
        per_frame = statistics.median(g[1] for g in got)
        print(
            f"{name:10} {per_batch:6.0f} ns per batch of up to 64, {per_frame:5.1f} ns per frame "
            f"(median of {len(got)} drains of {count} frames)"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--iterations", type=int, default=200_000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument(
        "--full",
        type=int,
        default=0,
        metavar="N",
        help="also drain a ring holding N frames (at most the rx ring's 2048), "
        "--rounds times as many rounds",
    )
    args = p.parse_args()
    if not 0 <= args.full <= 2048:
        p.error(f"--full {args.full}: from 0 to 2048 (the rx ring's size)")
    with Lab() as lab:
        with lab.enter("b"), afxdp.Socket(lab.if_b, 0, tx_size=0) as sock:
            for f in (minimal, counting, empty):
                best = min(f(sock, args.iterations) for _ in range(args.rounds))
                print(f"{f.__name__:9} {best:6.0f} ns per iteration")
        if args.full:
            full_ring(lab, args.full, args.rounds * 60)


if __name__ == "__main__":
    main()
