"""The ``afxdp`` command: xdpsock's workloads, a capture tool and a generator, from Python.

    afxdp lab                      the main job in a private veth lab (no spare NIC needed)
    afxdp rxdrop IFACE             receive and drop, with live rates
    afxdp txonly IFACE             transmit a packet template as fast as possible
    afxdp l2fwd IFACE [IFACE2]     swap MACs and send back (or forward to IFACE2)
    afxdp rebroadcast IFACE        destination MAC := ff:ff:ff:ff:ff:ff, send back
    afxdp dump IFACE               capture what reaches the socket (pcap with --write)
    afxdp gen IFACE                kernel-speed traffic generator (BPF_PROG_TEST_RUN)
    afxdp info IFACE               driver, queues, XDP modes and zero-copy support

Every workload stops by itself (``--duration``, ``--count``), prints a line of rates each second
and a summary with the kernel's drop counters. Errors a user can cause are one line on stderr and
exit status 1 (2 for bad usage), never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import afxdp
from afxdp import packet

BROADCAST = b"\xff" * 6
#: The longest run any command accepts, in seconds.
MAX_DURATION = 24 * 3600.0
PROTOCOLS = {"icmp": 1, "tcp": 6, "udp": 17, "icmpv6": 58, "sctp": 132}


class UsageError(Exception):
    """A bad option value: reported as one line, exit status 2."""


# --- options ---------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, not {value}")
    return value


def _duration(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of seconds {text!r}") from None
    if not 0 < value <= MAX_DURATION:
        raise argparse.ArgumentTypeError(f"must be in (0, {MAX_DURATION:.0f}] seconds, not {text}")
    return value


def _protocol(text: str) -> int:
    if text.lower() in PROTOCOLS:
        return PROTOCOLS[text.lower()]
    try:
        value = int(text, 0)
    except ValueError:
        names = ", ".join(PROTOCOLS)
        raise argparse.ArgumentTypeError(f"unknown protocol {text!r} (use {names} or a number)") from None
    if not 0 <= value <= 255:
        raise argparse.ArgumentTypeError(f"protocol number must be 0..255, not {value}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0..65535, not {value}")
    return value


def _hex_packet(text: str) -> bytes:
    cleaned = text.replace(":", "").replace(" ", "")
    try:
        data = bytes.fromhex(cleaned)
    except ValueError:
        raise argparse.ArgumentTypeError("--packet must be hex digits (e.g. ffffffffffff0200...)") from None
    if len(data) < 14:
        raise argparse.ArgumentTypeError(f"--packet is {len(data)} bytes; a frame needs at least 14")
    return data


def _add_socket_options(p: argparse.ArgumentParser, *, rx: bool = True) -> None:
    """xdpsock's familiar options."""
    p.add_argument("ifname", metavar="IFACE", help="network interface")
    p.add_argument("-q", "--queue", type=int, default=0, help="queue id (default 0)")
    copy = p.add_mutually_exclusive_group()
    copy.add_argument("-c", "--copy", dest="zerocopy", action="store_const", const=False,
                      help="force copy mode")
    copy.add_argument("-z", "--zero-copy", dest="zerocopy", action="store_const", const=True,
                      help="force zero-copy mode (default: zero-copy when the driver has it)")
    if rx:
        mode = p.add_mutually_exclusive_group()
        mode.add_argument("-N", "--native", dest="mode", action="store_const", const="native",
                          help="attach the XDP program in native (driver) mode")
        mode.add_argument("-S", "--generic", dest="mode", action="store_const", const="generic",
                          help="attach the XDP program in generic (skb) mode (default: native, "
                               "else generic)")
        p.set_defaults(mode="auto")
        p.add_argument("--port", type=_port, action="append", default=[],
                       help="only packets to this destination port leave the kernel stack "
                            "(repeatable)")
        p.add_argument("--proto", type=_protocol, default=None,
                       help="only this IP protocol leaves the kernel stack (udp, tcp, icmp, N)")
    p.add_argument("-b", "--batch", type=_positive_int, default=64, help="frames per call (64)")
    p.add_argument("--frames", type=_positive_int, default=4096, help="UMEM frames (4096)")
    p.add_argument("-f", "--frame-size", type=_positive_int, default=4096,
                   help="UMEM frame size: 2048 or 4096 (4096)")
    p.add_argument("-m", "--no-need-wakeup", dest="need_wakeup", action="store_false",
                   help="bind without XDP_USE_NEED_WAKEUP")
    p.add_argument("-d", "--duration", type=_duration, default=10.0,
                   help="stop after this many seconds (default 10)")
    p.add_argument("-C", "--count", type=_positive_int, default=None,
                   help="stop after this many packets")
    p.add_argument("-i", "--interval", type=_duration, default=1.0,
                   help="seconds between rate lines (default 1)")


def _rules(args: argparse.Namespace) -> list[afxdp.Rule] | None:
    ports = getattr(args, "port", [])
    proto = getattr(args, "proto", None)
    if ports:
        return [afxdp.Rule(ip_proto=proto, dst_port=port) for port in ports]
    if proto is not None:
        return [afxdp.Rule(ip_proto=proto)]
    return None


# --- interface checks --------------------------------------------------------------------------

_SIOCGIFFLAGS = 0x8913
_IFF_UP = 0x1


def check_interface(ifname: str, require_up: bool = True) -> None:
    """Raises OSError naming `ifname` when it does not exist (or, with `require_up`, is down)."""
    if not ifname or len(ifname) >= 16 or "/" in ifname or "\0" in ifname:
        raise OSError(errno.ENODEV, f"invalid interface name {ifname!r}")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH14x", ifname.encode(), 0)
        try:
            reply = fcntl.ioctl(s.fileno(), _SIOCGIFFLAGS, request)
        except OSError as e:
            if e.errno == errno.ENODEV:
                raise OSError(errno.ENODEV, f"no such network interface: {ifname!r}") from None
            raise
    flags = struct.unpack_from("H", reply, 16)[0]
    if require_up and not flags & _IFF_UP:
        raise OSError(errno.ENETDOWN, f"interface {ifname} is down (bring it up with: ip link set {ifname} up)")


# --- rates -------------------------------------------------------------------------------------


@dataclass
class Meter:
    """Counts packets and bytes and prints a rate line every `interval` seconds."""

    sockets: dict[str, afxdp.Socket]
    interval: float = 1.0
    out: TextIO = field(default_factory=lambda: sys.stdout)
    label: str = ""
    rx: int = 0
    tx: int = 0
    rx_bytes: int = 0
    tx_bytes: int = 0
    start: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self._last = self.start
        self._last_counts = (0, 0, 0, 0)
        prefix = f"{'job':<12} " if self.label else ""
        print(f"{prefix}{'time':>6} {'rx pps':>12} {'tx pps':>12} {'rx Mbit/s':>10} {'tx Mbit/s':>10} "
              f"{'rx_dropped':>10} {'ring_full':>9} {'fill_empty':>10} {'tx_invalid':>10}",
              file=self.out, flush=True)

    def kernel(self) -> tuple[int, int, int, int]:
        """rx_dropped, rx_ring_full, rx_fill_ring_empty_descs, tx_invalid_descs summed."""
        totals = [0, 0, 0, 0]
        for sock in self.sockets.values():
            if sock.closed:
                continue
            s = sock.stats()
            for i, v in enumerate((s.rx_dropped, s.rx_ring_full, s.rx_fill_ring_empty_descs, s.tx_invalid_descs)):
                totals[i] += v
        return totals[0], totals[1], totals[2], totals[3]

    def received(self, batch: afxdp.FrameBatch) -> int:
        """Counts a received batch; returns its length."""
        n = len(batch)
        self.rx += n
        self.rx_bytes += batch.nbytes
        return n

    def sent(self, n: int, frame_len: int) -> None:
        """Counts `n` frames of `frame_len` bytes sent."""
        self.tx += n
        self.tx_bytes += n * frame_len

    def tick(self) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._line(now)

    def _line(self, now: float) -> None:
        dt = now - self._last
        rx, tx, rxb, txb = (self.rx, self.tx, self.rx_bytes, self.tx_bytes)
        lrx, ltx, lrxb, ltxb = self._last_counts
        k = self.kernel()
        prefix = f"{self.label:<12} " if self.label else ""
        print(f"{prefix}{now - self.start:6.1f} {(rx - lrx) / dt:12,.0f} {(tx - ltx) / dt:12,.0f} "
              f"{(rxb - lrxb) * 8 / dt / 1e6:10,.1f} {(txb - ltxb) * 8 / dt / 1e6:10,.1f} "
              f"{k[0]:10} {k[1]:9} {k[2]:10} {k[3]:10}", file=self.out, flush=True)
        self._last, self._last_counts = now, (rx, tx, rxb, txb)

    def summary(self, what: str) -> dict[str, Any]:
        elapsed = max(time.monotonic() - self.start, 1e-9)
        k = self.kernel()
        totals = {"received": self.rx, "sent": self.tx, "seconds": round(elapsed, 3),
                  "rx_dropped": k[0], "rx_ring_full": k[1], "rx_fill_ring_empty_descs": k[2],
                  "tx_invalid_descs": k[3]}
        print(f"summary{f' [{self.label}]' if self.label else ''}: {what}: received {self.rx:,} "
              f"({self.rx / elapsed:,.0f} pps, {self.rx_bytes * 8 / elapsed / 1e6:,.1f} Mbit/s), "
              f"sent {self.tx:,} ({self.tx / elapsed:,.0f} pps) in {elapsed:.1f} s; kernel: "
              f"rx_dropped={k[0]} rx_ring_full={k[1]} rx_fill_ring_empty_descs={k[2]} "
              f"tx_invalid_descs={k[3]}", file=self.out, flush=True)
        return totals


def _stop(start: float, duration: float, done: int, count: int | None) -> bool:
    return time.monotonic() - start >= duration or (count is not None and done >= count)


def _finish_tx(sock: afxdp.Socket, timeout: float = 1.0) -> None:
    """Reclaims the frames still in flight, for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while sock.in_flight and time.monotonic() < deadline:
        sock.complete()
        time.sleep(0.001)


# --- workloads ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _rx_socket(args: argparse.Namespace, *, tx: bool) -> Iterator[tuple[afxdp.Program, afxdp.Socket]]:
    check_interface(args.ifname)
    umem = afxdp.Umem(args.frames, args.frame_size)
    with afxdp.Program.attach(args.ifname, mode=args.mode, rules=_rules(args)) as prog, \
            afxdp.Socket(args.ifname, args.queue, umem=umem, program=prog, zerocopy=args.zerocopy,
                         need_wakeup=args.need_wakeup, tx_size=2048 if tx else 0) as sock:
        rules = ", ".join(map(repr, prog.rules)) or "none: every packet of the queue"
        print(f"{args.command} on {sock!r}; {prog.mode} XDP; rules: {rules}", flush=True)
        yield prog, sock


def rxdrop(args: argparse.Namespace) -> dict[str, Any]:
    with _rx_socket(args, tx=False) as (_prog, sock):
        meter = Meter({"rx": sock}, args.interval)
        while not _stop(meter.start, args.duration, meter.rx, args.count):
            want = args.batch if args.count is None else min(args.batch, args.count - meter.rx)
            with sock.recv(want, timeout=0.1) as batch:
                meter.received(batch)
            meter.tick()
        return meter.summary("rxdrop")


def _forward_loop(args: argparse.Namespace, sock: afxdp.Socket, edit: Callable[[afxdp.FrameBatch], None],
                  out: afxdp.Socket | None = None, what: str = "") -> dict[str, Any]:
    sockets = {"rx": sock} if out is None else {"rx": sock, "tx": out}
    meter = Meter(sockets, args.interval)
    tx = sock if out is None else out
    while not _stop(meter.start, args.duration, meter.rx, args.count):
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
    _finish_tx(tx)
    return meter.summary(what)


def l2fwd(args: argparse.Namespace) -> dict[str, Any]:
    with _rx_socket(args, tx=args.ifname2 is None) as (_prog, sock):
        if args.ifname2 is None:
            return _forward_loop(args, sock, afxdp.FrameBatch.swap_macs, what="l2fwd")
        check_interface(args.ifname2)
        with afxdp.Socket(args.ifname2, args.queue, umem=afxdp.Umem(args.frames, args.frame_size),
                          zerocopy=args.zerocopy, need_wakeup=args.need_wakeup, rx_size=0) as out:
            print(f"forwarding to {out!r} (copied: the two sockets have separate UMEMs)", flush=True)
            return _forward_loop(args, sock, afxdp.FrameBatch.swap_macs, out=out, what="l2fwd")


def rebroadcast(args: argparse.Namespace) -> dict[str, Any]:
    with _rx_socket(args, tx=True) as (_prog, sock):
        return _forward_loop(args, sock, lambda b: b.write_at(0, BROADCAST), what="rebroadcast")


def _default_template(ifname: str, size: int) -> bytes:
    src_mac = _mac_of(ifname)
    payload = bytes(max(0, size - 42))
    return packet.ipv4_udp(src_mac, "ff:ff:ff:ff:ff:ff", "10.255.255.1", "10.255.255.2", 9, 9, payload)


def _mac_of(ifname: str) -> str:
    try:
        with open(f"/sys/class/net/{ifname}/address") as f:
            return f.read().strip()
    except OSError:
        return "02:00:00:00:00:00"


def txonly(args: argparse.Namespace) -> dict[str, Any]:
    check_interface(args.ifname)
    template = args.packet if args.packet is not None else _default_template(args.ifname, args.size)
    umem = afxdp.Umem(args.frames, args.frame_size)
    with afxdp.Socket(args.ifname, args.queue, umem=umem, zerocopy=args.zerocopy,
                      need_wakeup=args.need_wakeup, rx_size=0) as sock:
        print(f"txonly on {sock!r}: {len(template)}-byte packets: {packet.describe(template)}", flush=True)
        # Like the Go library's sender: the template goes into every frame of the UMEM once;
        # sending then only sets lengths.
        with sock.alloc(umem.frame_count) as everything:
            everything.write_all(template)
        meter = Meter({"tx": sock}, args.interval)
        while not _stop(meter.start, args.duration, meter.tx, args.count):
            want = args.batch if args.count is None else min(args.batch, args.count - meter.tx)
            with sock.alloc(want) as out:
                if len(out):
                    out.set_lengths(len(template))
                    meter.sent(sock.send(out), len(template))
                else:
                    sock.poll(0.01, afxdp.POLLOUT)
            sock.complete()
            meter.tick()
        _finish_tx(sock)
        return meter.summary("txonly")


def gen(args: argparse.Namespace) -> dict[str, Any]:
    check_interface(args.ifname)
    if args.count is None and args.duration is None:
        args.duration = 10.0
    template = args.packet if args.packet is not None else _default_template(args.ifname, args.size)
    print(f"gen on {args.ifname}: {len(template)}-byte packets: {packet.describe(template)}", flush=True)
    start = time.monotonic()
    pushed = afxdp.generate(args.ifname, template, args.count, duration=args.duration, rate=args.rate,
                            src_ports=args.src_ports)
    elapsed = max(time.monotonic() - start, 1e-9)
    print(f"summary: gen: pushed {pushed:,} packets in {elapsed:.2f} s ({pushed / elapsed:,.0f} pps, "
          f"{pushed * len(template) * 8 / elapsed / 1e6:,.1f} Mbit/s)", flush=True)
    return {"pushed": pushed, "seconds": round(elapsed, 3)}


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
                    else:
                        now = time.time()
                        for frame in batch:
                            print(f"{now:.6f} {pcap.summary(bytes(frame))}", flush=True)
                    captured += len(batch)
            stats = sock.stats()
    finally:
        if writer is not None:
            writer.close()
    where = f" to {args.write}" if args.write else ""
    print(f"summary: dump: captured {captured:,} frames{where}; kernel: rx_dropped={stats.rx_dropped} "
          f"rx_ring_full={stats.rx_ring_full} rx_fill_ring_empty_descs={stats.rx_fill_ring_empty_descs}",
          file=sys.stderr if not args.write else sys.stdout, flush=True)
    return {"captured": captured}


def info(args: argparse.Namespace) -> dict[str, Any]:
    from afxdp import ifinfo

    check_interface(args.ifname, require_up=False)
    details = ifinfo.interface_info(args.ifname)
    print(ifinfo.format_info(details), flush=True)
    return {"ifname": args.ifname}


# --- the lab -----------------------------------------------------------------------------------


def lab(args: argparse.Namespace) -> dict[str, Any]:
    from afxdp.lab import Lab

    if args.size < 60:
        raise UsageError(f"--size must be at least 60 bytes, not {args.size}")
    with Lab() as the_lab:
        print(the_lab.summary(), flush=True)
        if args.run:
            return _lab_run(the_lab, args)
        jobs = ["gen-rx", "dns-flood", "rebroadcast"] if args.job == "all" else [args.job]
        share = args.duration / len(jobs)
        results = {}
        for job in jobs:
            results[job] = LAB_JOBS[job](the_lab, args, share)
        print("lab: removed the namespaces, the veth pair and every XDP program", flush=True)
        return results


def _lab_frame(the_lab: Any, size: int, port: int = 9000) -> bytes:
    return packet.ipv4_udp(the_lab.mac_a, the_lab.mac_b, the_lab.ip_a, the_lab.ip_b, port, port,
                           bytes(max(0, size - 42)))


def _lab_receiver(the_lab: Any, mode: str) -> tuple[afxdp.Program, afxdp.Socket]:
    """The built-in program and a receive-only socket on the lab's end b."""
    with the_lab.enter("b"):
        prog = afxdp.Program.attach(the_lab.if_b, mode=mode)
        return prog, afxdp.Socket(the_lab.if_b, 0, program=prog, tx_size=0)


def _lab_gen_rx(the_lab: Any, args: argparse.Namespace, duration: float) -> dict[str, Any]:
    """The kernel generator (namespace a) -> a Python batch receive loop (namespace b)."""
    print(f"\n== gen-rx: afxdp.generate() on {the_lab.if_a} -> Python batch rxdrop on {the_lab.if_b}", flush=True)
    frame = _lab_frame(the_lab, args.size)
    prog, rx = _lab_receiver(the_lab, args.mode)
    pushed = [0]
    failure: list[BaseException] = []

    def generator() -> None:
        # In slices of half a second, so the rate lines show what was generated so far.
        try:
            end = time.monotonic() + duration
            with the_lab.enter("a"):
                while (left := end - time.monotonic()) > 0.01:
                    pushed[0] += afxdp.generate(the_lab.if_a, frame, duration=min(left, 0.5), rate=args.rate)
        except BaseException as e:  # reported by the main thread
            failure.append(e)

    with prog, rx:
        meter = Meter({"rx": rx}, label="gen-rx")
        thread = threading.Thread(target=generator, name="afxdp-gen", daemon=True)
        thread.start()
        while thread.is_alive() or rx.rx_available:
            with rx.recv(256, timeout=0.05) as got:
                meter.received(got)
            meter.tx = pushed[0]
            meter.tx_bytes = meter.tx * len(frame)
            meter.tick()
        thread.join()
        if failure:
            raise failure[0]
        # What is still in flight arrives within a moment.
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            with rx.recv(256, timeout=0.05) as got:
                meter.received(got)
        meter.tx = pushed[0]
        meter.tx_bytes = meter.tx * len(frame)
        return meter.summary("generator -> Python receiver")


def _lab_dns_flood(the_lab: Any, args: argparse.Namespace, duration: float) -> dict[str, Any]:
    """The Go library's sender (a DNS query in every UMEM frame) -> a Python receiver."""
    print(f"\n== dns-flood: Python AF_XDP TX on {the_lab.if_a} -> Python batch rxdrop on {the_lab.if_b}", flush=True)
    query = packet.dns_query_frame(the_lab.mac_a, the_lab.mac_b, the_lab.ip_a, the_lab.ip_b)
    prog, rx = _lab_receiver(the_lab, args.mode)
    with the_lab.enter("a"):
        tx = afxdp.Socket(the_lab.if_a, 0, rx_size=0, umem=afxdp.Umem(4096, 2048))
    with prog, rx, tx:
        with tx.alloc(tx.umem.frame_count) as everything:
            everything.write_all(query)
        meter = Meter({"rx": rx, "tx": tx}, label="dns-flood")
        while time.monotonic() - meter.start < duration:
            with tx.alloc(args.batch) as out:
                if len(out):
                    out.set_lengths(len(query))
                    meter.sent(tx.send(out), len(query))
            tx.complete()
            with rx.recv(4 * args.batch) as got:
                meter.received(got)
            meter.tick()
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline and meter.rx < meter.tx:
            tx.complete()
            with rx.recv(4 * args.batch, timeout=0.05) as got:
                meter.received(got)
        return meter.summary("DNS-query flood -> Python receiver")


def _lab_rebroadcast(the_lab: Any, args: argparse.Namespace, duration: float) -> dict[str, Any]:
    """a floods; b rewrites each frame's destination MAC to broadcast in place and sends it back;
    a counts the broadcasts that come back."""
    print(f"\n== rebroadcast: {the_lab.if_a} floods, {the_lab.if_b} rebroadcasts in place, "
          f"{the_lab.if_a} counts what comes back", flush=True)
    frame = _lab_frame(the_lab, args.size)
    with the_lab.enter("b"):
        prog_b = afxdp.Program.attach(the_lab.if_b, mode=args.mode)
        b = afxdp.Socket(the_lab.if_b, 0, program=prog_b)
    with the_lab.enter("a"):
        prog_a = afxdp.Program.attach(the_lab.if_a, mode=args.mode, rules=[afxdp.Rule(dst_port=9000)])
        a = afxdp.Socket(the_lab.if_a, 0, program=prog_a, umem=afxdp.Umem(4096, 2048))
    with prog_a, prog_b, a, b:
        meter = Meter({"a": a, "b": b}, label="rebroadcast")
        in_flight_limit = 1024  # keep the loop bounded: never more than this many unanswered
        while time.monotonic() - meter.start < duration:
            if meter.tx - meter.rx < in_flight_limit:
                with a.alloc(args.batch) as out:
                    if len(out):
                        out.write_all(frame)
                        meter.sent(a.send(out), len(frame))
            a.complete()
            with b.recv(4 * args.batch) as got:
                if len(got):
                    got.write_at(0, BROADCAST)
                    b.send(got)
            b.complete()
            with a.recv(4 * args.batch) as returned:
                for f in returned:
                    if f[0:6] == BROADCAST:
                        meter.rx += 1
                        meter.rx_bytes += len(f)
            meter.tick()
        return meter.summary("rebroadcast round trips (rx = broadcasts back at a)")


LAB_JOBS: dict[str, Callable[[Any, argparse.Namespace, float], dict[str, Any]]] = {
    "gen-rx": _lab_gen_rx,
    "dns-flood": _lab_dns_flood,
    "rebroadcast": _lab_rebroadcast,
}


def _lab_run(the_lab: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Runs a script in namespace b with the lab's interface as first argument, while the
    generator offers UDP traffic from namespace a."""
    script, *rest = args.run
    argv = [sys.executable, script, the_lab.if_b, *rest]
    print(f"running {' '.join(argv[1:])} in {the_lab.netns('b')} for {args.duration:g} s, "
          f"{args.rate or 10_000:,} pps of UDP from {the_lab.if_a}", flush=True)
    child = the_lab.popen("b", argv)
    try:
        _wait_for_program(the_lab, child, timeout=10.0)
        frame = _lab_frame(the_lab, args.size)
        with the_lab.enter("a"):
            pushed = afxdp.generate(the_lab.if_a, frame, duration=args.duration,
                                    rate=args.rate or 10_000)
        try:
            code = child.wait(timeout=10.0)
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGINT)
            code = child.wait(timeout=5.0)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    print(f"summary: lab --run: offered {pushed:,} packets; {os.path.basename(script)} exited with {code}",
          flush=True)
    if code != 0:
        raise RuntimeError(f"{script} exited with status {code}")
    return {"pushed": pushed, "returncode": code}


def _wait_for_program(the_lab: Any, child: subprocess.Popen[Any], timeout: float) -> None:
    """Waits until an XDP program is attached to the lab's interface b (frames the generator
    redirects into a veth are dropped until its peer has one), the child exits, or `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and child.poll() is None:
        shown = the_lab.run("b", ["ip", "link", "show", "dev", the_lab.if_b], check=False).stdout
        if "prog/xdp" in shown:
            return
        time.sleep(0.05)


# --- the command -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="afxdp", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n")[1])
    p.add_argument("--version", action="version", version=f"afxdp {afxdp.__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    q = sub.add_parser("lab", help="the main job in a private veth lab (no spare NIC needed)")
    q.add_argument("-d", "--duration", type=_duration, default=9.0,
                   help="total seconds, shared by the jobs (default 9)")
    q.add_argument("--job", choices=["all", *LAB_JOBS], default="all",
                   help="run one job only (default: all three, one after the other)")
    q.add_argument("--mode", choices=["auto", "native", "generic"], default="native",
                   help="XDP attach mode of the receivers (default native)")
    q.add_argument("-b", "--batch", type=_positive_int, default=64, help="frames per call (64)")
    q.add_argument("-s", "--size", type=int, default=64, help="frame size in bytes, >= 60 (64)")
    q.add_argument("--rate", type=_positive_int, default=None,
                   help="generator packets/s (default: as fast as it goes; 10,000 with --run)")
    q.add_argument("--run", nargs=argparse.REMAINDER, metavar="SCRIPT ARGS",
                   help="run SCRIPT IFACE ARGS... in namespace b under generated traffic "
                        "(e.g. --run examples/dumpframes.py --count 5)")
    q.set_defaults(func=lab)

    for name, func, text in (
        ("rxdrop", rxdrop, "receive and drop"),
        ("rebroadcast", rebroadcast, "destination MAC := broadcast, send back out"),
    ):
        q = sub.add_parser(name, help=text)
        _add_socket_options(q)
        q.set_defaults(func=func)

    q = sub.add_parser("l2fwd", help="swap MAC addresses and send back (or forward to IFACE2)")
    _add_socket_options(q)
    q.add_argument("ifname2", metavar="IFACE2", nargs="?", default=None,
                   help="forward to this interface instead (frames are copied)")
    q.set_defaults(func=l2fwd)

    q = sub.add_parser("txonly", help="transmit a packet template as fast as possible")
    _add_socket_options(q, rx=False)
    q.add_argument("-s", "--size", type=int, default=64, help="packet size, >= 60 (64)")
    q.add_argument("--packet", type=_hex_packet, default=None, help="the frame to send, in hex")
    q.set_defaults(func=txonly)

    q = sub.add_parser("dump", help="capture frames that reach the socket (pcap with --write)")
    _add_socket_options(q)
    q.set_defaults(count=10)
    q.add_argument("-w", "--write", metavar="FILE", default=None,
                   help="write a pcap file (tcpdump, Wireshark, scapy read it)")
    q.set_defaults(func=dump)

    q = sub.add_parser("gen", help="kernel-speed traffic generator (BPF_PROG_TEST_RUN)")
    q.add_argument("ifname", metavar="IFACE")
    q.add_argument("-C", "--count", type=_positive_int, default=None, help="packets to push")
    q.add_argument("-d", "--duration", type=_duration, default=None,
                   help="seconds (default 10 when --count is not given)")
    q.add_argument("-r", "--rate", type=_positive_int, default=None, help="packets/s limit")
    q.add_argument("-s", "--size", type=int, default=64, help="packet size, >= 60 (64)")
    q.add_argument("--packet", type=_hex_packet, default=None, help="the frame to send, in hex")
    q.add_argument("--src-ports", type=_positive_int, default=1,
                   help="vary the UDP source port over N values (flows for multi-queue receivers)")
    q.set_defaults(func=gen)

    q = sub.add_parser("info", help="driver, queues, XDP modes and zero-copy support")
    q.add_argument("ifname", metavar="IFACE")
    q.set_defaults(func=info)
    return p


def _one_line(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror and e.args and isinstance(e.args[0], int):
        text = e.strerror
        if e.filename is not None and str(e.filename) not in text:
            text = f"{text}: {e.filename}"
    else:
        text = str(e) or type(e).__name__
    return text.splitlines()[0] if isinstance(e, afxdp.VerifierError) else " ".join(text.split())


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    size = getattr(args, "size", None)
    if size is not None and size < 60 and args.command != "lab":  # lab reports it itself
        print(f"afxdp {args.command}: --size must be at least 60 bytes, not {size}", file=sys.stderr)
        return 2
    try:
        args.func(args)
    except KeyboardInterrupt:
        print("afxdp: interrupted; everything afxdp created was removed", file=sys.stderr)
        return 130
    except UsageError as e:
        print(f"afxdp: {e}", file=sys.stderr)
        return 2
    except (OSError, ValueError, TypeError, RuntimeError) as e:
        print(f"afxdp: {_one_line(e)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
