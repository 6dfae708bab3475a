#!/usr/bin/env python3
"""What one iteration of a Python batch receive loop costs, without traffic.

    sudo python3 benches/py_floor.py [--iterations 200000] [--rounds 5]

Opens an AF_XDP socket in a private veth lab (nothing is sent) and times, on its empty rx ring:

* ``minimal``: ``with recv(64) as got: n += len(got)``, the least a batch loop does;
* ``counting``: the body of the benchmark's rx-batch loop (benches/workers.py): the clock, then
  ``with recv(64, 0) as got:``, ``len`` and ``nbytes`` (timeout 0: on the empty ring a timeout
  would be waited for);
* ``empty``: a Python ``for`` loop doing nothing, for scale.

Each figure is the fastest round's ns per iteration, with warm caches: a receiver woken by
poll() pays more.
"""

from __future__ import annotations

import argparse
import time

import afxdp
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--iterations", type=int, default=200_000)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    with Lab() as lab, lab.enter("b"), afxdp.Socket(lab.if_b, 0, tx_size=0) as sock:
        for f in (minimal, counting, empty):
            best = min(f(sock, args.iterations) for _ in range(args.rounds))
            print(f"{f.__name__:9} {best:6.0f} ns per iteration")


if __name__ == "__main__":
    main()
