"""The workloads: rxdrop, txonly, l2fwd, rebroadcast, dump, gen and info on a real interface.

Each takes the parsed options, stops by itself (``--duration``, ``--count``), prints a rate line
each second and a summary, and returns the summary's figures.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TextIO

import afxdp
from afxdp import ifinfo, netdev, packet
from afxdp._native import Interface
from afxdp.cli import options
from afxdp.cli.meter import Meter, Receiver, emit, say, should_stop

BROADCAST = b"\xff" * 6


def new_meter(args: argparse.Namespace, sockets: Mapping[str, Receiver]) -> Meter:
    """The command's Meter, printing rate lines (or JSON objects with ``--json``); with a
    Port (``--queues``) the lines have a rate per queue too."""
    queues = next((s.queues for s in sockets.values() if isinstance(s, afxdp.Port)), None)
    return Meter(sockets, args.interval, json=args.json, command=args.command, queues=queues)


class QueueSenders:
    """Tx-only sockets on another interface, one per queue of a Port and over its Umem:
    ``send(batch)`` sends out of the socket of ``batch.queue`` (zero copy)."""

    def __init__(self, sockets: dict[int, afxdp.Socket]) -> None:
        self.sockets = sockets

    def send(self, batch: afxdp.FrameBatch) -> int:
        assert batch.queue is not None  # batches of a Port know their queue
        return self.sockets[batch.queue].send(batch)

    def complete(self) -> int:
        return sum(s.complete() for s in self.sockets.values())

    @property
    def in_flight(self) -> int:
        return sum(s.in_flight for s in self.sockets.values())


Sender = afxdp.Socket | afxdp.Port | QueueSenders


def finish_tx(sock: Sender, timeout: float = 1.0) -> None:
    """Reclaims the frames still in flight, for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while sock.in_flight and time.monotonic() < deadline:
        sock.complete()
        time.sleep(0.001)


def busy_poll_note(sock: afxdp.Socket) -> tuple[str, dict[str, int] | None]:
    """The start line's words and the ``--json`` start field for the busy-poll settings the
    socket really has (``sock.busy_poll``): ``"; busy polling 20 us, budget 64"`` and
    ``{"usecs": 20, "budget": 64}``, or ``""`` and None when it is off."""
    settings = sock.busy_poll
    if settings is None:
        return "", None
    usecs, budget = settings
    return f"; busy polling {usecs} us, budget {budget}", {"usecs": usecs, "budget": budget}


def _port_queues(args: argparse.Namespace) -> list[int] | None:
    """The queues of ``--queues`` (every queue of the interface for ``all``); None without it."""
    queues: list[int] | str | None = getattr(args, "queues", None)
    if queues == "all":
        return list(range(Interface(args.ifname).rx_queues))
    return queues if isinstance(queues, list) else None


@contextlib.contextmanager
def _rx_socket(
    args: argparse.Namespace,
    *,
    tx: bool,
    out: TextIO | None = None,
    timestamps: bool = False,
) -> Iterator[tuple[afxdp.Program, afxdp.Socket | afxdp.Port]]:
    """The program and the receiving socket, or with ``--queues`` a Port on those queues
    (``--frames`` frames per queue in its one Umem). ``timestamps``: the program stamps every
    packet (``Frame.rx_timestamp``)."""
    netdev.check_interface(args.ifname)
    queues = _port_queues(args)
    frames = args.frames * (len(queues) if queues else 1)
    umem = afxdp.Umem(frames, args.frame_size)
    options_ = {
        "umem": umem,
        "zerocopy": args.zerocopy,
        "need_wakeup": args.need_wakeup,
        "tx_size": 2048 if tx else 0,
    }
    busy_poll_usecs, busy_poll_budget = options.busy_poll(args)
    with contextlib.ExitStack() as stack:
        prog = stack.enter_context(
            afxdp.Program.attach(
                args.ifname,
                mode=args.mode,
                rules=options.rules(args),
                timestamps=timestamps,
            )
        )
        sock: afxdp.Socket | afxdp.Port
        if queues is None:
            sock = stack.enter_context(
                afxdp.Socket(
                    args.ifname,
                    args.queue,
                    program=prog,
                    busy_poll_usecs=busy_poll_usecs,
                    busy_poll_budget=busy_poll_budget,
                    **options_,
                )
            )
            queue: int | list[int] = sock.queue
            zerocopy = sock.zerocopy
        else:
            sock = stack.enter_context(
                afxdp.Port(
                    args.ifname,
                    queues,
                    program=prog,
                    busy_poll_usecs=busy_poll_usecs,
                    busy_poll_budget=busy_poll_budget,
                    **options_,
                )
            )
            queue, zerocopy = sock.queues, sock.sockets[0].zerocopy
        rules = ", ".join(map(repr, prog.rules)) or "none: every packet of the queue"
        first = sock if isinstance(sock, afxdp.Socket) else sock.sockets[0]
        busy, busy_poll = busy_poll_note(first)
        coalesce_usecs = getattr(args, "coalesce", None)
        coalescing = "" if coalesce_usecs is None else f"; coalescing {coalesce_usecs} us"
        say(
            args,
            f"{args.command} on {sock!r}; {prog.mode} XDP; rules: {rules}{busy}{coalescing}",
            out=out,
            ifname=sock.ifname,
            queue=queue,
            zerocopy=zerocopy,
            xdp_mode=prog.mode,
            rules=[repr(rule) for rule in prog.rules],
            busy_poll=busy_poll,
            coalesce_usecs=coalesce_usecs,
        )
        yield prog, sock


def rxdrop(args: argparse.Namespace) -> dict[str, Any]:
    with _rx_socket(args, tx=False) as (_prog, sock):
        meter = new_meter(args, {"rx": sock})
        coalesce = options.coalesce(args)
        while not should_stop(meter.start, args.duration, meter.rx, args.count):
            want = args.batch if args.count is None else min(args.batch, args.count - meter.rx)
            with sock.recv(want, timeout=0.1, coalesce=coalesce) as batch:
                meter.received(batch)
            meter.tick()
        return meter.summary("rxdrop")


def _forward_loop(
    args: argparse.Namespace,
    sock: afxdp.Socket | afxdp.Port,
    edit: Callable[[afxdp.FrameBatch], None],
    out: afxdp.Socket | QueueSenders | None = None,
    what: str = "",
) -> dict[str, Any]:
    sockets: dict[str, Receiver] = {"rx": sock}
    if isinstance(out, afxdp.Socket):
        sockets["tx"] = out
    elif isinstance(out, QueueSenders):
        sockets.update({f"tx{q}": s for q, s in out.sockets.items()})
    meter = new_meter(args, sockets)
    tx: Sender = sock if out is None else out
    coalesce = options.coalesce(args)
    while not should_stop(meter.start, args.duration, meter.rx, args.count):
        want = args.batch if args.count is None else min(args.batch, args.count - meter.rx)
        with sock.recv(want, timeout=0.1, coalesce=coalesce) as batch:
            n = len(batch)
            if n:
                nbytes = batch.nbytes
                meter.received(batch)
                edit(batch)
                # With `out`, the two sockets share one Umem: the frames leave from where they
                # were received (zero copy).
                sent = tx.send(batch)
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
        queues = sock.queues if isinstance(sock, afxdp.Port) else [sock.queue]
        busy_poll_usecs, busy_poll_budget = options.busy_poll(args)
        with contextlib.ExitStack() as stack:
            senders = {
                q: stack.enter_context(
                    afxdp.Socket(
                        args.ifname2,
                        q,
                        umem=sock.umem,
                        zerocopy=args.zerocopy,
                        need_wakeup=args.need_wakeup,
                        rx_size=0,
                        busy_poll_usecs=busy_poll_usecs,
                        busy_poll_budget=busy_poll_budget,
                    )
                )
                for q in queues
            }
            out: afxdp.Socket | QueueSenders = (
                QueueSenders(senders) if isinstance(sock, afxdp.Port) else senders[queues[0]]
            )
            say(
                args,
                f"forwarding to {list(senders.values())!r} (zero copy: the sockets share one Umem)",
                kind=None,
            )
            return _forward_loop(args, sock, afxdp.FrameBatch.swap_macs, out=out, what="l2fwd")


def rebroadcast(args: argparse.Namespace) -> dict[str, Any]:
    with _rx_socket(args, tx=True) as (_prog, sock):
        return _forward_loop(args, sock, lambda b: b.write_at(0, BROADCAST), what="rebroadcast")


def template(args: argparse.Namespace) -> bytes:
    """The frame txonly and gen send: ``--packet``, or IPv4/UDP from ``--src-mac`` (default: the
    interface's), ``--dst-mac``, ``--src-ip``, ``--dst-ip``, ``--src-port``, ``--dst-port``
    (defaults in :mod:`afxdp.cli.options`), padded to ``--size``."""
    if args.packet is not None:
        return bytes(args.packet)

    def given(value: Any, default: Any) -> Any:
        return default if value is None else value

    return packet.ipv4_udp(
        given(args.src_mac, None) or _mac_of(args.ifname),
        given(args.dst_mac, options.DEFAULT_DST_MAC),
        given(args.src_ip, options.DEFAULT_SRC_IP),
        given(args.dst_ip, options.DEFAULT_DST_IP),
        given(args.src_port, options.DEFAULT_PORT),
        given(args.dst_port, options.DEFAULT_PORT),
        bytes(max(0, args.size - 42)),
    )


def _mac_of(ifname: str) -> str:
    mac = netdev.link(ifname).mac
    return mac if mac is not None and len(mac) == 17 else "02:00:00:00:00:00"


def txonly(args: argparse.Namespace) -> dict[str, Any]:
    netdev.check_interface(args.ifname)
    frame = template(args)
    umem = afxdp.Umem(args.frames, args.frame_size)
    busy_poll_usecs, busy_poll_budget = options.busy_poll(args)
    with afxdp.Socket(
        args.ifname,
        args.queue,
        umem=umem,
        zerocopy=args.zerocopy,
        need_wakeup=args.need_wakeup,
        rx_size=0,
        busy_poll_usecs=busy_poll_usecs,
        busy_poll_budget=busy_poll_budget,
    ) as sock:
        busy, busy_poll = busy_poll_note(sock)
        say(
            args,
            f"txonly on {sock!r}: {len(frame)}-byte packets: {packet.describe(frame)}{busy}",
            ifname=sock.ifname,
            queue=sock.queue,
            zerocopy=sock.zerocopy,
            length=len(frame),
            packet=packet.describe(frame),
            busy_poll=busy_poll,
        )
        # Like the Go library's sender: the template goes into every frame of the UMEM once;
        # sending then only sets lengths.
        with sock.alloc(umem.frame_count) as everything:
            everything.write_all(frame)
        meter = new_meter(args, {"tx": sock})
        while not should_stop(meter.start, args.duration, meter.tx, args.count):
            want = args.batch if args.count is None else min(args.batch, args.count - meter.tx)
            with sock.alloc(want) as out:
                if len(out):
                    out.set_lengths(len(frame))
                    meter.sent(sock.send(out), len(frame))
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
    frame = template(args)
    say(
        args,
        f"gen on {args.ifname}: {len(frame)}-byte packets: {packet.describe(frame)}",
        ifname=args.ifname,
        length=len(frame),
        packet=packet.describe(frame),
    )
    # The run's own time, as the generator measures it: loading and unloading its program
    # (20-100 ms) would make a short run's rate look lower than it was.
    run = [0.0]
    pushed = afxdp.generate(
        args.ifname,
        frame,
        args.count,
        duration=args.duration,
        rate=args.rate,
        src_ports=args.src_ports,
        progress=lambda _sent, seconds: run.__setitem__(0, seconds),
    )
    elapsed = max(run[0], 1e-9)
    totals = {"pushed": pushed, "seconds": round(elapsed, 3)}
    if args.json:
        emit(
            "summary",
            "gen",
            **totals,
            bytes=pushed * len(frame),
            pps=round(pushed / elapsed),
        )
        return totals
    print(
        f"summary: gen: pushed {pushed:,} packets in {elapsed:.2f} s ({pushed / elapsed:,.0f} pps, "
        f"{pushed * len(frame) * 8 / elapsed / 1e6:,.1f} Mbit/s)",
        flush=True,
    )
    return totals


def dump(args: argparse.Namespace) -> dict[str, Any]:
    """Captures to a pcap file (``-w FILE``, ``-w -`` for stdout), one line per frame, or JSON.

    ``--count 0`` means no limit: without ``--duration`` it runs until interrupted. Ctrl-C (and
    a pcap reader closing the pipe) ends the capture normally, with the summary, as in tcpdump.
    """
    from afxdp import pcap
    from afxdp._netns import _sigint_deferred

    to_stdout = args.write == "-"
    count = args.count or None
    duration = args.duration
    if duration is None:
        duration = float("inf") if count is None else 10.0
    # With -w - stdout is the pcap stream: everything for people goes to stderr.
    notes = sys.stderr if to_stdout or (not args.write and not args.json) else sys.stdout
    writer: pcap.PcapWriter | None = None
    if to_stdout:
        writer = pcap.PcapWriter(sys.stdout.buffer, autoflush=True)
    elif args.write:
        writer = pcap.PcapWriter(args.write)
    captured = 0
    try:
        with _rx_socket(
            args, tx=False, out=sys.stderr if to_stdout else sys.stdout, timestamps=True
        ) as (
            _prog,
            sock,
        ):
            start = time.monotonic()
            coalesce = options.coalesce(args)
            try:
                while (count is None or captured < count) and (time.monotonic() - start < duration):
                    want = args.batch if count is None else min(args.batch, count - captured)
                    # Ctrl-C waits for the batch: no line cut short, no frame uncounted.
                    with (
                        sock.recv(want, timeout=0.1, coalesce=coalesce) as batch,
                        _sigint_deferred(),
                    ):
                        _dump_batch(args, writer, batch)
                        captured += len(batch)
            except KeyboardInterrupt:
                pass  # the normal end of --count 0
            except BrokenPipeError:
                # The reader went away (tcpdump -c N): stop; the rest of stdout goes nowhere.
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            elapsed = time.monotonic() - start
            stats = sock.stats()
    finally:
        if writer is not None:
            with contextlib.suppress(BrokenPipeError):
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
    where = " to stdout" if to_stdout else f" to {args.write}" if args.write else ""
    print(
        f"summary: dump: captured {captured:,} frames{where}; "
        f"kernel: rx_dropped={stats.rx_dropped} rx_ring_full={stats.rx_ring_full} "
        f"rx_fill_ring_empty_descs={stats.rx_fill_ring_empty_descs}",
        file=notes,
        flush=True,
    )
    return totals


def _dump_batch(args: argparse.Namespace, writer: Any, batch: afxdp.FrameBatch) -> None:
    # Each packet's own time, taken by the XDP program (it stamps in dump); 0 falls back to
    # the time the batch was read.
    stamps = batch.rx_timestamps
    if writer is not None:
        writer.write_batch(batch, timestamps_ns=stamps)
        return
    now = time.time_ns()
    for frame, ns in zip(batch, stamps, strict=True):
        data = bytes(frame)
        seconds = (ns or now) / 1e9
        if args.json:
            emit("frame", "dump", time=seconds, length=len(data), summary=packet.describe(data))
        else:
            print(f"{seconds:.6f} {packet.describe(data)}", flush=True)


def info(args: argparse.Namespace) -> dict[str, Any]:
    netdev.check_interface(args.ifname, require_up=False)
    details = ifinfo.interface_info(args.ifname)
    if args.json:
        emit("summary", "info", **details.as_dict())
    else:
        print(ifinfo.format_info(details), flush=True)
    return {"ifname": args.ifname}
