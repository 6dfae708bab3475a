#!/usr/bin/env python3
"""Flood DNS queries out of an interface, like asavie/xdp's sender example.

A complete Ethernet/IPv4/UDP/DNS query is written once into every frame of the UMEM; the loop
then only hands frames to the tx ring, reclaims completed ones and prints packets/s and bytes/s
every second. It stops by itself after --duration seconds or --count packets.

    python3 examples/dns_flood.py IFACE [--queue Q] --dst-mac MAC --dst-ip IP [--duration S]

Send only into networks you own: inside the lab, `python -m afxdp lab` shows the addresses, or
run `python3 examples/dns_flood.py --lab` to build a private veth lab and flood into it.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time

import afxdp
from afxdp import packet


def flood(sock: afxdp.Socket, frame: bytes, duration: float, count: int, batch: int) -> int:
    """Sends `frame` until `duration` seconds or `count` packets; returns packets sent."""
    everything = sock.alloc(sock.umem.frame_count)
    everything.write_all(frame)  # every frame of the UMEM carries the query
    everything.release()
    sent = last_sent = 0
    start = last = time.monotonic()
    while (now := time.monotonic()) - start < duration and sent < count:
        out = sock.alloc(min(batch, count - sent))
        if len(out):
            out.set_lengths(len(frame))  # the bytes are already there; only lengths are set
            sent += sock.send(out)
        sock.complete()
        if now - last >= 1.0:
            pps = (sent - last_sent) / (now - last)
            print(f"{pps:12,.0f} pkt/s {pps * len(frame):14,.0f} bytes/s", flush=True)
            last, last_sent = now, sent
    deadline = time.monotonic() + 1.0
    while sock.in_flight and time.monotonic() < deadline:
        sock.complete()
    elapsed = time.monotonic() - start
    print(f"sent {sent:,} DNS queries in {elapsed:.1f} s ({sent / elapsed:,.0f} pkt/s)", flush=True)
    return sent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("ifname", nargs="?", help="interface to send on")
    p.add_argument("--queue", "-q", type=int, default=0)
    p.add_argument("--src-mac", default="02:00:00:00:00:01")
    p.add_argument("--dst-mac", default="02:00:00:00:00:02")
    p.add_argument("--src-ip", default="10.11.0.1")
    p.add_argument("--dst-ip", default="10.11.0.2")
    p.add_argument("--name", default="example.com", help="the name queried")
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--count", type=int, default=10**9)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lab", action="store_true", help="build a private veth lab and flood into it")
    args = p.parse_args(argv)
    if not args.lab and not args.ifname:
        p.error("give an interface, or --lab")
    with contextlib.ExitStack() as stack:
        if args.lab:
            from afxdp.lab import Lab

            lab = stack.enter_context(Lab())
            stack.enter_context(lab.enter("a"))
            args.ifname, args.src_mac, args.dst_mac = lab.if_a, lab.mac_a, lab.mac_b
            args.src_ip, args.dst_ip = lab.ip_a, lab.ip_b
        frame = packet.dns_query_frame(
            args.src_mac, args.dst_mac, args.src_ip, args.dst_ip, name=args.name
        )
        umem = afxdp.Umem(frame_count=4096, frame_size=2048)
        sock = stack.enter_context(afxdp.Socket(args.ifname, args.queue, umem=umem, rx_size=0))
        print(
            f"flooding {len(frame)}-byte DNS queries for {args.name!r} to {args.dst_ip} "
            f"via {sock!r}",
            flush=True,
        )
        flood(sock, frame, args.duration, args.count, args.batch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
