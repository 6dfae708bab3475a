#!/usr/bin/env python3
"""Receive frames on one queue and print each: a hex dump and its decoded headers.

asavie/xdp's "dumpframes" example: the built-in program redirects the queue to an AF_XDP socket
(only frames matching --port/--proto when given; the rest go on to the kernel stack), and every
frame that arrives is printed. Stops by itself after --count frames or --duration seconds.

    python3 examples/dumpframes.py IFACE [-q Q] [--count N] [--duration S]
        [--mode native|generic|auto] [--port P] [--proto udp|tcp|icmp|N]
"""

from __future__ import annotations

import argparse
import sys
import time

import afxdp
from afxdp.packet import describe
from afxdp.pcap import hexdump

PROTOCOLS = {"icmp": 1, "tcp": 6, "udp": 17, "icmpv6": 58}


def protocol(text: str) -> int:
    """--proto: a name from PROTOCOLS or an IP protocol number 0..255."""
    if text.lower() in PROTOCOLS:
        return PROTOCOLS[text.lower()]
    try:
        number = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a protocol name or number: {text!r}") from None
    if not 0 <= number <= 255:
        raise argparse.ArgumentTypeError(f"IP protocol numbers are 0..255, not {number}")
    return number


def dump(sock: afxdp.Socket, count: int, duration: float) -> int:
    """Prints every received frame until `count` frames or `duration` seconds; returns frames."""
    seen = 0
    start = time.monotonic()
    while seen < count and time.monotonic() - start < duration:
        with sock.recv(min(64, count - seen), timeout=0.1) as batch:  # released at the end
            for frame in batch:
                data = bytes(frame)
                print(f"frame {seen}: {describe(data)}\n{hexdump(data)}\n", flush=True)
                seen += 1
    return seen


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("ifname")
    p.add_argument("--queue", "-q", type=int, default=0)
    p.add_argument("--count", "-c", type=int, default=10, help="stop after N frames (10)")
    p.add_argument("--duration", "-d", type=float, default=10.0, help="stop after S seconds (10)")
    p.add_argument("--mode", choices=["auto", "native", "generic"], default="auto")
    p.add_argument("--port", type=int, help="only frames to this TCP/UDP/SCTP/DCCP port")
    p.add_argument("--proto", type=protocol, help="only this IP protocol: udp, tcp, icmp, N")
    args = p.parse_args(argv)
    if args.port is not None and not 0 <= args.port <= 0xFFFF:
        p.error(f"--port must be in 0..65535, not {args.port}")
    rules = None
    if args.port is not None or args.proto is not None:
        rules = [afxdp.Rule(ip_proto=args.proto, dst_port=args.port)]
    try:
        with (
            afxdp.Program.attach(args.ifname, mode=args.mode, rules=rules) as prog,
            afxdp.Socket(args.ifname, args.queue, program=prog, tx_size=0) as sock,
        ):
            only = "".join(
                f", {name} {value}"
                for name, value in (("ip proto", args.proto), ("dst port", args.port))
                if value is not None
            )
            print(f"dumping {sock!r} ({prog.mode} XDP{only})", flush=True)
            start = time.monotonic()
            seen = dump(sock, args.count, args.duration)
            stats = sock.stats()
    except (OSError, ValueError) as e:  # unknown interface, no privileges, queue out of range
        print(
            f"dumpframes: {e.strerror if isinstance(e, OSError) and e.strerror else e}",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        return 130
    print(
        f"dumped {seen} frames in {time.monotonic() - start:.1f} s "
        f"(kernel: rx_dropped={stats.rx_dropped} rx_ring_full={stats.rx_ring_full})",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
