#!/usr/bin/env python3
"""Layer-2 forwarding: receive on IFACE, swap the MAC addresses, send out of IFACE2 (or back out
of IFACE), like xdpsock's l2fwd.

With one interface the received frames themselves go back out (zero copy). With two, the second
socket shares the first one's Umem (XDP_SHARED_UMEM), so the received frames go out of the second
interface from where they were received: zero copy too. Stops by itself after --duration seconds
or --count frames; prints packets/s every second and a summary.

    python3 examples/l2fwd.py IFACE [IFACE2] [--queue Q] [--duration S] [--count N]
                              [--mode native|generic|auto] [--per-frame]

Runs in the lab: ``afxdp lab --run examples/l2fwd.py --duration 3``.
"""

from __future__ import annotations

import argparse
import sys
import time

import afxdp


def swap_in_python(batch: afxdp.FrameBatch) -> None:
    """The same edit as `batch.swap_macs()`, frame by frame through the buffer protocol."""
    for frame in batch:
        view = memoryview(frame)
        dst = bytes(view[0:6])
        view[0:6] = view[6:12]
        view[6:12] = dst
        view.release()


def forward(
    rx: afxdp.Socket,
    tx: afxdp.Socket,
    duration: float,
    count: int | None,
    batch_size: int = 64,
    per_frame: bool = False,
) -> int:
    """Forwards for `duration` seconds or `count` frames; returns frames forwarded."""
    done = last_done = 0
    start = last = time.monotonic()
    while (now := time.monotonic()) - start < duration and (count is None or done < count):
        want = batch_size if count is None else min(batch_size, count - done)
        with rx.recv(want, timeout=0.1) as frames:
            if len(frames):
                if per_frame:
                    swap_in_python(frames)
                else:
                    frames.swap_macs()
                # Frames not sent (tx ring full) go back to the pool when the block ends.
                done += tx.send(frames)
        tx.complete()
        if now - last >= 1.0:
            print(f"{(done - last_done) / (now - last):12,.0f} pkt/s forwarded", flush=True)
            last, last_done = now, done
    deadline = time.monotonic() + 1.0
    while tx.in_flight and time.monotonic() < deadline:
        tx.complete()
    print(f"forwarded {done:,} frames in {time.monotonic() - start:.1f} s", flush=True)
    return done


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("ifname")
    p.add_argument("ifname2", nargs="?", default=None)
    p.add_argument("--queue", "-q", type=int, default=0)
    p.add_argument("--mode", choices=["auto", "native", "generic"], default="auto")
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--count", type=int, default=None)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--per-frame", action="store_true", help="swap MACs frame by frame in Python")
    args = p.parse_args(argv)
    try:
        with (
            afxdp.Program.attach(args.ifname, mode=args.mode) as prog,
            afxdp.Socket(args.ifname, args.queue, program=prog) as rx,
        ):
            if args.ifname2 is None:
                print(f"l2fwd on {rx!r} ({prog.mode} XDP), back out of {args.ifname}", flush=True)
                forward(rx, rx, args.duration, args.count, args.batch, args.per_frame)
            else:
                with afxdp.Socket(args.ifname2, args.queue, umem=rx.umem, rx_size=0) as tx:
                    print(f"l2fwd from {rx!r} ({prog.mode} XDP) to {tx!r}", flush=True)
                    forward(rx, tx, args.duration, args.count, args.batch, args.per_frame)
    except (OSError, ValueError) as e:
        print(f"l2fwd: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
