#!/usr/bin/env python3
"""Receive every frame, rewrite its destination MAC to ff:ff:ff:ff:ff:ff in place, send it back.

asavie/xdp's "rebroadcast" example, zero copy: the received frames themselves go to the tx ring.
Stops by itself after --duration seconds; prints packets/s every second.

    python3 examples/rebroadcast.py IFACE [--queue Q] [--duration S] [--mode native|generic]
"""

from __future__ import annotations

import argparse
import sys
import time

import afxdp

BROADCAST = b"\xff" * 6


def rebroadcast(sock: afxdp.Socket, duration: float, batch: int, per_frame: bool = False) -> int:
    """Runs the loop for `duration` seconds; returns frames rebroadcast."""
    done = last_done = 0
    start = last = time.monotonic()
    while (now := time.monotonic()) - start < duration:
        with sock.recv(batch, timeout=0.1) as frames:
            if len(frames):
                if per_frame:
                    for (
                        frame
                    ) in frames:  # the same edit frame by frame, through the buffer protocol
                        frame[0:6] = BROADCAST
                else:
                    frames.write_at(0, BROADCAST)
                done += sock.send(frames)
        sock.complete()
        if now - last >= 1.0:
            print(f"{(done - last_done) / (now - last):12,.0f} pkt/s rebroadcast", flush=True)
            last, last_done = now, done
    elapsed = time.monotonic() - start
    print(f"rebroadcast {done:,} frames in {elapsed:.1f} s", flush=True)
    return done


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("ifname")
    p.add_argument("--queue", "-q", type=int, default=0)
    p.add_argument("--mode", choices=["auto", "native", "generic"], default="auto")
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--per-frame", action="store_true", help="edit frame by frame in Python")
    args = p.parse_args(argv)
    with (
        afxdp.Program.attach(args.ifname, mode=args.mode) as prog,
        afxdp.Socket(args.ifname, args.queue, program=prog) as sock,
    ):
        print(f"rebroadcasting on {sock!r} ({prog.mode} XDP)", flush=True)
        rebroadcast(sock, args.duration, args.batch, args.per_frame)
    return 0


if __name__ == "__main__":
    sys.exit(main())
