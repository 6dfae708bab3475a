"""The workloads: rxdrop, txonly, l2fwd, rebroadcast, dump, gen and info on a real interface.

Each takes the parsed options, stops by itself (``--duration``, ``--count``), prints a rate line
each second and a summary, and returns the summary's figures.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import afxdp
from afxdp import ifinfo, netdev, packet
from afxdp.cli import options
from afxdp.cli.meter import Meter, emit, say, should_stop

BROADCAST = b"\xff" * 6


def new_meter(args: argparse.Namespace, sockets: dict[str, afxdp.Socket]) -> Meter:
    """The command's Meter, printing rate lines (or JSON objects with ``--json``)."""
    return Meter(sockets, args.interval, json=args.json, command=args.command)


def finish_tx(sock: afxdp.Socket, timeout: float = 1.0) -> None:
    """Reclaims the frames still in flight, for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while sock.in_flight and time.monotonic() < deadline:
        sock.complete()
        time.sleep(0.001)


@contextlib.contextmanager
def _rx_socket(
    args: argparse.Namespace, *, tx: bool
) -> Iterator[tuple[afxdp.Program, afxdp.Socket]]:
    netdev.check_interface(args.ifname)
    umem = afxdp.Umem(args.frames, args.frame_size)
    with (
        afxdp.Program.attach(args.ifname, mode=args.mode, rules=options.rules(args)) as prog,
        afxdp.Socket(
            args.ifname,
            args.queue,
            umem=umem,
            program=prog,
            zerocopy=args.zerocopy,
            need_wakeup=args.need_wakeup,
            tx_size=2048 if tx else 0,
        ) as sock,
    ):
        rules = ", ".join(map(repr, prog.rules)) or "none: every packet of the queue"
        say(
            args,
            f"{args.command} on {sock!r}; {prog.mode} XDP; rules: {rules}",
            ifname=sock.ifname,
            queue=sock.queue,
            zerocopy=sock.zerocopy,
            xdp_mode=prog.mode,
            rules=[repr(rule) for rule in prog.rules],
        )
        yield prog, sock


def rxdrop(args: argparse.Namespace) -> dict[str, Any]:
    with _rx_socket(args, tx=False) as (_prog, sock):
        meter = new_meter(args, {"rx": sock})
        while not should_stop(meter.start, args.duration, meter.rx, args.count):
            want = args.batch if args.count is None else min(args.batch, args.count - meter.rx)
            with sock.recv(want, timeout=0.1) as batch:
                meter.received(batch)
            meter.tick()
        return meter.summary("rxdrop")


def _forward_loop(
    args: argparse.Namespace,
    sock: afxdp.Socket,
    edit: Callable[[afxdp.FrameBatch], None],
    out: afxdp.Socket | None = None,
    what: str = "",
) -> dict[str, Any]:
    sockets = {"rx": sock} if out is None else {"rx": sock, "tx": out}
    meter = new_meter(args, sockets)
    tx = sock if out is None else out
    while not should_stop(meter.start, args.duration, meter.rx, args.count):
        want = args.batch if args.count is None else min(args.batch, args.count - meter.rx)
        with sock.recv(want, timeout=0.1) as batch:
            n = len(batch)
            if n:
                nbytes = batch.nbytes
                meter.rx += n
                meter.rx_bytes += nbytes
                if out is None:
                    edit(batch)
                    sent = sock.send(batch)
                else:
                    with out.alloc(n) as copy:
                        copy.copy_from(batch)
                        edit(copy)
                        sent = out.send(copy)
                meter.tx += sent
                meter.tx_bytes += nbytes if sent == n else 0
        tx.complete()
        meter.tick()
    finish_tx(tx)
    return meter.summary(what)


def l2fwd(args: argparse.Namespace) -> dict[str, Any]:
    with _rx_socket(args, tx=args.ifname2 is None) as (_prog, sock):
        if args.ifname2 is None:
            return _forward_loop(args, sock, afxdp.FrameBatch.swap_macs, what="l2fwd")
        netdev.check_interface(args.ifname2)
        with afxdp.Socket(
            args.ifname2,
            args.queue,
            umem=afxdp.Umem(args.frames, args.frame_size),
            zerocopy=args.zerocopy,
            need_wakeup=args.need_wakeup,
            rx_size=0,
        ) as out:
            say(
                args,
                f"forwarding to {out!r} (copied: the two sockets have separate UMEMs)",
                kind=None,
            )
            return _forward_loop(args, sock, afxdp.FrameBatch.swap_macs, out=out, what="l2fwd")


def rebroadcast(args: argparse.Namespace) -> dict[str, Any]:
    with _rx_socket(args, tx=True) as (_prog, sock):
        return _forward_loop(args, sock, lambda b: b.write_at(0, BROADCAST), what="rebroadcast")


def _default_template(ifname: str, size: int) -> bytes:
    src_mac = _mac_of(ifname)
    payload = bytes(max(0, size - 42))
    return packet.ipv4_udp(
        src_mac, "ff:ff:ff:ff:ff:ff", "10.255.255.1", "10.255.255.2", 9, 9, payload
    )


def _mac_of(ifname: str) -> str:
    mac = netdev.link(ifname).mac
    return mac if mac is not None and len(mac) == 17 else "02:00:00:00:00:00"


def txonly(args: argparse.Namespace) -> dict[str, Any]:
    netdev.check_interface(args.ifname)
    template = args.packet if args.packet is not None else _default_template(args.ifname, args.size)
    umem = afxdp.Umem(args.frames, args.frame_size)
    with afxdp.Socket(
        args.ifname,
        args.queue,
        umem=umem,
        zerocopy=args.zerocopy,
        need_wakeup=args.need_wakeup,
        rx_size=0,
    ) as sock:
        say(
            args,
            f"txonly on {sock!r}: {len(template)}-byte packets: {packet.describe(template)}",
            ifname=sock.ifname,
            queue=sock.queue,
            zerocopy=sock.zerocopy,
            length=len(template),
            packet=packet.describe(template),
        )
        # Like the Go library's sender: the template goes into every frame of the UMEM once;
        # sending then only sets lengths.
        with sock.alloc(umem.frame_count) as everything:
            everything.write_all(template)
        meter = new_meter(args, {"tx": sock})
        while not should_stop(meter.start, args.duration, meter.tx, args.count):
            want = args.batch if args.count is None else min(args.batch, args.count - meter.tx)
            with sock.alloc(want) as out:
                if len(out):
                    out.set_lengths(len(template))
                    meter.sent(sock.send(out), len(template))
                else:
                    sock.poll(0.01, afxdp.POLLOUT)
            sock.complete()
            meter.tick()
        finish_tx(sock)
        return meter.summary("txonly")


def gen(args: argparse.Namespace) -> dict[str, Any]:
    netdev.check_interface(args.ifname)
    if args.count is None and args.duration is None:
        args.duration = 10.0
    template = args.packet if args.packet is not None else _default_template(args.ifname, args.size)
    say(
        args,
        f"gen on {args.ifname}: {len(template)}-byte packets: {packet.describe(template)}",
        ifname=args.ifname,
        length=len(template),
        packet=packet.describe(template),
    )
    start = time.monotonic()
    pushed = afxdp.generate(
        args.ifname,
        template,
        args.count,
        duration=args.duration,
        rate=args.rate,
        src_ports=args.src_ports,
    )
    elapsed = max(time.monotonic() - start, 1e-9)
    totals = {"pushed": pushed, "seconds": round(elapsed, 3)}
    if args.json:
        emit(
            "summary",
            "gen",
            **totals,
            bytes=pushed * len(template),
            pps=round(pushed / elapsed),
        )
        return totals
    print(
        f"summary: gen: pushed {pushed:,} packets in {elapsed:.2f} s ({pushed / elapsed:,.0f} pps, "
        f"{pushed * len(template) * 8 / elapsed / 1e6:,.1f} Mbit/s)",
        flush=True,
    )
    return totals


def dump(args: argparse.Namespace) -> dict[str, Any]:
    from afxdp import pcap

    writer = pcap.PcapWriter(args.write) if args.write else None
    captured = 0
    try:
        with _rx_socket(args, tx=False) as (_prog, sock):
            start = time.monotonic()
            while captured < args.count and time.monotonic() - start < args.duration:
                with sock.recv(min(args.batch, args.count - captured), timeout=0.1) as batch:
                    if writer is not None:
                        writer.write_batch(batch)  # one timestamp (ns) per batch
                    elif args.json:
                        now = time.time()
                        for frame in batch:
                            data = bytes(frame)
                            emit(
                                "frame",
                                "dump",
                                time=now,
                                length=len(data),
                                summary=packet.describe(data),
                            )
                    else:
                        now = time.time()
                        for frame in batch:
                            print(f"{now:.6f} {packet.describe(bytes(frame))}", flush=True)
                    captured += len(batch)
            elapsed = time.monotonic() - start
            stats = sock.stats()
    finally:
        if writer is not None:
            writer.close()
    totals = {
        "captured": captured,
        "seconds": round(elapsed, 3),
        "rx_dropped": stats.rx_dropped,
        "rx_ring_full": stats.rx_ring_full,
        "rx_fill_ring_empty_descs": stats.rx_fill_ring_empty_descs,
    }
    if args.json:
        emit("summary", "dump", **totals, file=args.write)
        return totals
    where = f" to {args.write}" if args.write else ""
    print(
        f"summary: dump: captured {captured:,} frames{where}; "
        f"kernel: rx_dropped={stats.rx_dropped} rx_ring_full={stats.rx_ring_full} "
        f"rx_fill_ring_empty_descs={stats.rx_fill_ring_empty_descs}",
        file=sys.stderr if not args.write else sys.stdout,
        flush=True,
    )
    return totals


def info(args: argparse.Namespace) -> dict[str, Any]:
    netdev.check_interface(args.ifname, require_up=False)
    details = ifinfo.interface_info(args.ifname)
    if args.json:
        emit("summary", "info", **details.as_dict())
    else:
        print(ifinfo.format_info(details), flush=True)
    return {"ifname": args.ifname}
