#!/usr/bin/env python3
"""The Python side of the end-to-end benchmark (benches/e2e.py): one process per measured loop.

    workers.py MODE IFNAME SECONDS [--packet HEX] [--batch 64] [--mode native|generic]
               [--max-count N] [--frame-size 4096] [--unaligned] [--hugepages]
               [--multi-buffer] [--coalesce SECONDS]

The AF_XDP receivers below receive into a Umem of 4096 frames of ``--frame-size`` bytes, in
unaligned chunk mode with ``--unaligned``, on 2 MiB huge pages with ``--hugepages``, and bound
with XDP_USE_SG (``Socket(multi_buffer=True)``: a packet longer than a frame arrives as a chain
of frames) with ``--multi-buffer``.

Receivers (they attach afxdp's built-in program themselves, count SECONDS from their first
packet, and wait in poll when nothing arrives, so their CPU time is work, not spinning; each mode
is one plain loop, ``with sock.recv(batch, 0.1) as got: ...``, that does not look at the mode per
batch):

* ``rx-batch``: ``sock.recv(64)``, count, ``release()``: the batch API, no per-frame Python.
* ``rx-iter``: the same through ``for got in sock.batches(64, 0.1)``: one call per batch
  instead of ``recv``, ``__enter__`` and ``__exit__``.
* ``--coalesce SECONDS`` (rx-batch, rx-iter): each receive with ``coalesce=SECONDS``: fewer
  than 64 frames ready first let frames gather for that long.
* ``rx-touch``: the same, and read one header byte of every frame from Python (``frame[23]``,
  the IPv4 protocol): what a per-frame Python loop costs.
* ``rx-packets``: ``sock.recv(64)``, count the batch's packets (``len(batch.packets())``: a
  chain of frames is one packet), release: the multi-buffer receive (with ``--multi-buffer``).
* ``l2fwd-batch``: ``batch.swap_macs()`` (one Rust call) and ``sock.send(batch)`` back out.
* ``l2fwd-perframe``: the same with the swap in Python,
  ``frame[0:6], frame[6:12] = frame[6:12], frame[0:6]``.
* ``afpacket-rx``: Python's own ``socket(AF_PACKET, SOCK_RAW)`` and a ``recv_into`` loop
  (blocking, SO_RCVTIMEO 100 ms). The built-in program is attached with no socket registered,
  so it passes every frame to the stack, as for the other receivers a veth needs a program.

Senders (SECONDS from the first send; every loop is bounded by --max-count too):

* ``tx-batch``: the template written into every UMEM frame once, then ``alloc(64)``,
  ``set_lengths``, ``send``, ``complete`` (as examples/dns_flood.py).
* ``afpacket-tx``: ``socket(AF_PACKET, SOCK_RAW).send(frame)`` in a loop.
* ``tx-packets``: ``sock.send_packets([packet] * n)``, ``complete``, flat out, with n packets
  per call taking about ``--batch`` frames; with ``--multi-buffer`` a packet longer than a frame
  goes out as a chain of frames (the load of e2e.py's jumbo workload: ``afxdp.generate()``
  cannot send packets longer than a page).

Every queue (``--queues N``, the lab's veth with N queues):

* ``rx-port``: an ``afxdp.Port`` on every rx queue (one shared Umem), ``port.recv(64)``,
  count per ``batch.queue``, release; reports ``per_queue=a/b/...`` too.
* ``tx-queues``: the load for it: N tx sockets of one Umem, one per queue (in native mode an
  AF_XDP socket sending on queue q of one veth end reaches rx queue q of the other), batches
  taking turns on the queues, paced to ``--rate`` packets/s in total (1 ms steps).

Ping-pong (round-trip latency; COUNT pings, one frame at a time; ``--busy-poll USECS`` turns
on preferred busy polling for the AF_XDP modes):

* ``pp-server``: afxdp in namespace b: ``recv(64, timeout)``, ``swap_macs()``, ``send`` back.
* ``pp-client``: afxdp in namespace a: send one numbered frame, ``recv(1, timeout)`` its echo;
  the round trip from before ``send`` to after ``recv``, p50/p99 over COUNT (SECONDS is COUNT).
* ``pp-udp-server`` / ``pp-udp-client``: the same with Python UDP sockets (blocking), between
  the lab's addresses (``--peer IP``).

Load:

* ``gen``: ``afxdp.generate(IFNAME, packet, count=--max-count, duration=SECONDS, rate=--rate)``.

Every mode prints ``ready`` once set up, then one ``key=value`` line like the Rust and C twins
(packets, bytes, seconds, pps, cpu_ns_per_packet, user_ns_per_packet: its user-space part, and
the kernel's drop counters).
"""

from __future__ import annotations

import argparse
import errno
import resource
import socket
import struct
import sys
import time
from typing import NamedTuple

import afxdp

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_STATISTICS = 6


class Cpu(NamedTuple):
    """This process's CPU time in seconds: user + system, and user space alone."""

    total: float
    user: float

    def __sub__(self, other: object) -> Cpu:
        assert isinstance(other, Cpu)
        return Cpu(self.total - other.total, self.user - other.user)


def cpu_seconds() -> Cpu:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return Cpu(ru.ru_utime + ru.ru_stime, ru.ru_utime)


def report(
    mode: str, packets: int, nbytes: int, secs: float, cpu: Cpu, **counters: int | str
) -> None:
    """One line of figures; the CPU time per packet in all and in user space (the rest is the
    kernel's)."""
    extra = " ".join(f"{k}={v}" for k, v in counters.items())
    per = max(packets, 1)
    print(
        f"impl=python mode={mode} packets={packets} bytes={nbytes} seconds={secs:.3f} "
        f"pps={packets / secs:.0f} cpu_ns_per_packet={cpu.total * 1e9 / per:.1f} "
        f"user_ns_per_packet={cpu.user * 1e9 / per:.1f} {extra}",
        flush=True,
    )


def xsk_counters(sock: afxdp.Socket) -> dict[str, int]:
    s = sock.stats()
    return {
        "rx_dropped": s.rx_dropped,
        "rx_ring_full": s.rx_ring_full,
        "fill_empty": s.rx_fill_ring_empty_descs,
        "tx_invalid": s.tx_invalid_descs,
    }


def rx_batch_loop(
    sock: afxdp.Socket, batch: int, deadline: float, coalesce: float | None = None
) -> tuple[int, int, int]:
    """rx-batch: count the frames and bytes of each batch; leaving `with` releases it."""
    recv, clock = sock.recv, time.monotonic
    packets = nbytes = 0
    while clock() < deadline:
        with recv(batch, 0.1, coalesce=coalesce) as got:
            packets += len(got)
            nbytes += got.nbytes
    return packets, nbytes, 0


def rx_iter_loop(
    sock: afxdp.Socket, batch: int, deadline: float, coalesce: float | None = None
) -> tuple[int, int, int]:
    """rx-iter: the rx-batch loop through ``sock.batches()``: one Python call per batch (each
    step releases the batch before and receives the next)."""
    clock = time.monotonic
    packets = nbytes = 0
    while clock() < deadline:
        # Ends after 0.1 s with nothing received.
        for got in sock.batches(batch, 0.1, coalesce=coalesce):
            packets += len(got)
            nbytes += got.nbytes
            if clock() >= deadline:
                break
    return packets, nbytes, 0


def rx_touch_loop(sock: afxdp.Socket, batch: int, deadline: float) -> tuple[int, int, int]:
    """rx-touch: the same, reading one header field of every frame from Python."""
    recv, clock = sock.recv, time.monotonic
    packets = nbytes = acc = 0
    while clock() < deadline:
        with recv(batch, 0.1) as got:
            for frame in got:
                acc += frame[23]  # the IPv4 protocol
            packets += len(got)
            nbytes += got.nbytes
    return packets, nbytes, acc


def rx_packets_loop(sock: afxdp.Socket, batch: int, deadline: float) -> tuple[int, int, int]:
    """rx-packets: count the packets of each batch (a chain of frames is one), and the frames."""
    recv, clock = sock.recv, time.monotonic
    packets = nbytes = frames = 0
    while clock() < deadline:
        with recv(batch, 0.1) as got:
            packets += len(got.packets())
            frames += len(got)
            nbytes += got.nbytes
    return packets, nbytes, frames


def l2fwd_loop(
    sock: afxdp.Socket, batch: int, deadline: float, per_frame: bool
) -> tuple[int, int, int]:
    """l2fwd-batch / l2fwd-perframe: swap the MAC addresses, send the batch back out. Leaving
    `with` releases what the tx ring had no room for. With frames in flight, wait 1 ms at most
    so their completions are reclaimed soon."""
    recv, send, complete, clock = sock.recv, sock.send, sock.complete, time.monotonic
    packets = nbytes = 0
    while clock() < deadline:
        if sock.in_flight:
            complete()
        with recv(batch, 0.001 if sock.in_flight else 0.1) as got:
            nbytes += got.nbytes
            if per_frame:
                for frame in got:
                    frame[0:6], frame[6:12] = frame[6:12], frame[0:6]
            else:
                got.swap_macs()
            packets += send(got)
    return packets, nbytes, 0


def xsk_receiver(args: argparse.Namespace) -> int:
    """rx-batch, rx-touch, l2fwd-batch, l2fwd-perframe: one plain loop each (the mode is not
    looked at per batch), timed from the first packet."""
    forward = args.mode.startswith("l2fwd")
    loop = {
        "rx-batch": lambda s, b, d: rx_batch_loop(s, b, d, args.coalesce),
        "rx-iter": lambda s, b, d: rx_iter_loop(s, b, d, args.coalesce),
        "rx-touch": rx_touch_loop,
        "rx-packets": rx_packets_loop,
        "l2fwd-batch": lambda s, b, d: l2fwd_loop(s, b, d, per_frame=False),
        "l2fwd-perframe": lambda s, b, d: l2fwd_loop(s, b, d, per_frame=True),
    }[args.mode]
    umem = afxdp.Umem(4096, args.frame_size, unaligned=args.unaligned, hugepages=args.hugepages)
    with (
        afxdp.Program.attach(args.ifname, mode=args.xdp_mode) as prog,
        afxdp.Socket(
            args.ifname,
            0,
            umem=umem,
            program=prog,
            tx_size=2048 if forward else 0,
            busy_poll_usecs=args.busy_poll,
            multi_buffer=args.multi_buffer,
        ) as sock,
    ):
        print("ready", flush=True)
        give_up = time.monotonic() + args.seconds + 10
        while sock.rx_available == 0 and time.monotonic() < give_up:
            sock.poll(0.1)
        if sock.rx_available == 0:
            print("no packet received", file=sys.stderr)
            return 1
        start, c0 = time.monotonic(), cpu_seconds()
        packets, nbytes, acc = loop(sock, args.batch, start + args.seconds)
        secs, cpu = time.monotonic() - start, cpu_seconds() - c0
        extra = {"frames": acc} if args.mode == "rx-packets" else {"checksum": acc}
        report(args.mode, packets, nbytes, secs, cpu, **xsk_counters(sock), **extra)
    return 0


def rx_port(args: argparse.Namespace) -> int:
    """rx-port: the rx-batch loop on a Port over every queue, counting each queue."""
    with afxdp.Port(
        args.ifname, mode=args.xdp_mode, tx_size=0, busy_poll_usecs=args.busy_poll
    ) as port:
        counts = dict.fromkeys(port.queues, 0)
        print("ready", flush=True)
        give_up = time.monotonic() + args.seconds + 10
        recv, clock = port.recv, time.monotonic
        packets = nbytes = 0
        while packets == 0 and clock() < give_up:
            with recv(args.batch, 0.1) as got:
                if len(got):
                    start, c0 = clock(), cpu_seconds()
                    packets, nbytes = len(got), got.nbytes
                    counts[got.queue] += len(got)  # type: ignore[index]
        if packets == 0:
            print("no packet received", file=sys.stderr)
            return 1
        deadline = start + args.seconds
        while clock() < deadline:
            with recv(args.batch, 0.1) as got:
                n = len(got)
                if n:
                    packets += n
                    nbytes += got.nbytes
                    counts[got.queue] += n  # type: ignore[index]
        secs, cpu = clock() - start, cpu_seconds() - c0
        s = port.stats()
        report(
            "rx-port",
            packets,
            nbytes,
            secs,
            cpu,
            rx_dropped=s.rx_dropped,
            rx_ring_full=s.rx_ring_full,
            fill_empty=s.rx_fill_ring_empty_descs,
            per_queue="/".join(str(counts[q]) for q in port.queues),
        )
    return 0


def tx_queues(args: argparse.Namespace, frame: bytes) -> int:
    """tx-queues: paced load over every queue, a tx socket per queue over one Umem."""
    umem = afxdp.Umem(2048 * args.queues, 2048)
    socks = [afxdp.Socket(args.ifname, q, umem=umem, rx_size=0) for q in range(args.queues)]
    try:
        with socks[0].alloc(umem.frame_count) as everything:
            everything.write_all(frame)  # every frame carries the packet; sends set lengths
        print("ready", flush=True)
        sent = [0] * args.queues
        total, length, rate = 0, len(frame), args.rate or 1e6
        start, c0 = time.monotonic(), cpu_seconds()
        deadline, q = start + args.seconds, 0
        while (now := time.monotonic()) < deadline and total < args.max_count:
            due = min(int(rate * (now - start)), args.max_count) - total
            if due <= 0:
                for sock in socks:
                    sock.complete()
                time.sleep(0.001)
                continue
            sock = socks[q]
            with sock.alloc(min(args.batch, due)) as out:
                if len(out):
                    out.set_lengths(length)
                    n = sock.send(out)
                    sent[q] += n
                    total += n
            sock.complete()
            q = (q + 1) % args.queues
        secs = time.monotonic() - start
        for sock in socks:
            drain = time.monotonic() + 1.0
            while sock.in_flight and time.monotonic() < drain:
                sock.complete()
                time.sleep(0.0002)
        report(
            "tx-queues",
            total,
            total * length,
            secs,
            cpu_seconds() - c0,
            per_queue="/".join(map(str, sent)),
        )
    finally:
        for sock in socks:
            sock.close()
    return 0


def packet_stats(sock: socket.socket) -> tuple[int, int]:
    """(packets, drops) of an AF_PACKET socket since the last call (the kernel resets them)."""
    return struct.unpack("II", sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))


def afpacket_rx(args: argparse.Namespace) -> int:
    with (
        afxdp.Program.attach(args.ifname, mode=args.xdp_mode),
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL)) as sock,
    ):
        sock.bind((args.ifname, ETH_P_ALL))
        # Blocking with a receive timeout: one syscall per packet, sleeping in the kernel when
        # idle (a Python-level timeout would poll() before every recv).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 0, 100_000))
        buf = bytearray(4096)
        recv_into = sock.recv_into
        print("ready", flush=True)
        packets = nbytes = 0
        deadline = time.monotonic() + args.seconds + 10
        first: tuple[float, Cpu] | None = None
        while time.monotonic() < deadline:
            try:
                n = recv_into(buf)
            except BlockingIOError:
                continue
            if first is None:
                packet_stats(sock)  # reset the kernel's counters: count drops from here on
                first = (time.monotonic(), cpu_seconds())
                deadline = first[0] + args.seconds
            packets += 1
            nbytes += n
            # Check the clock every 64 packets only, as the batch loops do once per batch.
            for _ in range(63):
                try:
                    nbytes += recv_into(buf)
                    packets += 1
                except BlockingIOError:
                    break
        if first is None:
            print("no packet received", file=sys.stderr)
            return 1
        secs, cpu = time.monotonic() - first[0], cpu_seconds() - first[1]
        _, drops = packet_stats(sock)
        report(
            "afpacket-rx",
            packets,
            nbytes,
            secs,
            cpu,
            rx_dropped=drops,
            rx_ring_full=0,
            fill_empty=0,
        )
    return 0


def drain_completions(sock: afxdp.Socket, seconds: float = 1.0) -> int:
    """Reclaims what is still in flight after a sending window, for up to ``seconds``; returns
    how many frames completed meanwhile."""
    completed = 0
    drain = time.monotonic() + seconds
    while sock.in_flight and time.monotonic() < drain:
        completed += sock.complete()
        time.sleep(0.0002)
    return completed


def tx_batch(args: argparse.Namespace, frame: bytes) -> int:
    with afxdp.Socket(args.ifname, 0, rx_size=0) as sock:
        everything = sock.alloc(sock.umem.frame_count)
        everything.write_all(frame)  # every frame of the UMEM carries the packet
        everything.release()
        print("ready", flush=True)
        sent = completed = 0
        batch, length = args.batch, len(frame)
        start, c0 = time.monotonic(), cpu_seconds()
        deadline = start + args.seconds
        while time.monotonic() < deadline and sent < args.max_count:
            with sock.alloc(batch) as out:
                if len(out):
                    out.set_lengths(length)  # the bytes are already there
                    sent += sock.send(out)
            completed += sock.complete()
        secs = time.monotonic() - start  # the sending window; the drain adds CPU time only
        completed += drain_completions(sock)
        cpu = cpu_seconds() - c0
        report(
            "tx-batch", completed, completed * length, secs, cpu, sent=sent, **xsk_counters(sock)
        )
    return 0


def tx_packets(args: argparse.Namespace, frame: bytes) -> int:
    """tx-packets: send_packets (a copy of each packet into as many frames as it needs)."""
    with afxdp.Socket(args.ifname, 0, rx_size=0, multi_buffer=args.multi_buffer) as sock:
        frags = -(-len(frame) // sock.umem.frame_size)  # frames per packet
        burst = [frame] * max(1, args.batch // frags)
        print("ready", flush=True)
        sent = completed = 0
        start, c0 = time.monotonic(), cpu_seconds()
        deadline = start + args.seconds
        while time.monotonic() < deadline and sent < args.max_count:
            sent += sock.send_packets(burst)
            completed += sock.complete()
        secs = time.monotonic() - start  # the sending window; the drain adds CPU time only
        completed += drain_completions(sock)
        cpu = cpu_seconds() - c0
        # Frames completed, in packets (every packet takes `frags` frames).
        packets = completed // frags
        report(
            "tx-packets",
            packets,
            packets * len(frame),
            secs,
            cpu,
            sent=sent,
            frames_per_packet=frags,
            **xsk_counters(sock),
        )
    return 0


def afpacket_tx(args: argparse.Namespace, frame: bytes) -> int:
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
        sock.bind((args.ifname, 0))
        send = sock.send
        print("ready", flush=True)
        sent = failed = 0
        start, c0 = time.monotonic(), cpu_seconds()
        deadline = start + args.seconds
        while time.monotonic() < deadline and sent < args.max_count:
            for _ in range(64):  # the clock is read once per 64 sends
                try:
                    send(frame)
                    sent += 1
                except OSError as e:  # a full device queue: ENOBUFS/EAGAIN, counted as failed
                    if e.errno not in (errno.ENOBUFS, errno.EAGAIN):
                        raise
                    failed += 1
        secs, cpu = time.monotonic() - start, cpu_seconds() - c0
        report("afpacket-tx", sent, sent * len(frame), secs, cpu, tx_failed=failed)
    return 0


def gen(args: argparse.Namespace, frame: bytes) -> int:
    print("ready", flush=True)
    start = time.monotonic()
    n = afxdp.generate(
        args.ifname,
        frame,
        count=args.max_count,
        duration=args.seconds,
        rate=args.rate,
        batch_size=args.batch,
    )
    secs = min(time.monotonic() - start, args.seconds)  # the wall time includes loading
    print(f"impl=gen mode=gen packets={n} seconds={secs:.3f} pps={n / secs:.0f}", flush=True)
    return 0


RECEIVERS = ("rx-batch", "rx-iter", "rx-touch", "rx-packets", "l2fwd-batch", "l2fwd-perframe")
MODES = (
    *RECEIVERS,
    "rx-port",
    "tx-queues",
    "afpacket-rx",
    "tx-batch",
    "tx-packets",
    "afpacket-tx",
    "gen",
    "pp-server",
    "pp-client",
    "pp-udp-server",
    "pp-udp-client",
)


def pp_server(args: argparse.Namespace) -> int:
    """Echoes every frame back with the MAC addresses swapped until SECONDS pass."""
    with (
        afxdp.Program.attach(args.ifname, mode=args.xdp_mode) as prog,
        afxdp.Socket(args.ifname, 0, program=prog, busy_poll_usecs=args.busy_poll) as sock,
    ):
        print("ready", flush=True)
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            with sock.recv(64, 0.1) as got:
                if len(got):
                    got.swap_macs()
                    sock.send(got)
            sock.complete()
    return 0


def percentiles(rtts_ns: list[int], count: int, name: str, cpu: Cpu) -> None:
    rtts_ns.sort()
    p50, p99 = rtts_ns[len(rtts_ns) // 2], rtts_ns[min(len(rtts_ns) - 1, len(rtts_ns) * 99 // 100)]
    print(
        f"impl={name} count={count} answered={len(rtts_ns)} p50_us={p50 / 1e3:.2f} "
        f"p99_us={p99 / 1e3:.2f} cpu_us_per_ping={cpu.total / max(1, count) * 1e6:.2f}",
        flush=True,
    )


def pp_client(args: argparse.Namespace, frame: bytes) -> int:
    """COUNT pings of one frame each (after 100 unmeasured), each waited for before the next."""
    count, warmup = int(args.seconds), 100
    rtts: list[int] = []
    with (
        afxdp.Program.attach(args.ifname, mode=args.xdp_mode) as prog,
        afxdp.Socket(args.ifname, 0, program=prog, busy_poll_usecs=args.busy_poll) as sock,
    ):
        print("ready", flush=True)
        c0 = cpu_seconds()
        for i in range(warmup + count):
            with sock.alloc(1) as out:
                out[0].write(frame)
                t0 = time.perf_counter_ns()
                sock.send(out)
            with sock.recv(1, 1.0) as back:
                t1 = time.perf_counter_ns()
                answered = len(back)
            sock.complete()
            if answered and i >= warmup:
                rtts.append(t1 - t0)
        cpu = cpu_seconds() - c0
    if not rtts:
        print("no echo came back", file=sys.stderr)
        return 1
    percentiles(rtts, count, "pp-busy" if args.busy_poll else "pp-softirq", cpu)
    return 0


def pp_udp_server(args: argparse.Namespace) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("0.0.0.0", 9000))
        s.settimeout(0.1)
        print("ready", flush=True)
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            try:
                data, peer = s.recvfrom(2048)
            except TimeoutError:
                continue
            s.sendto(data, peer)
    return 0


def pp_udp_client(args: argparse.Namespace, frame: bytes) -> int:
    count, warmup = int(args.seconds), 100
    payload = frame[42:] or b"x"
    rtts: list[int] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(1.0)
        s.connect((args.peer, 9000))
        print("ready", flush=True)
        c0 = cpu_seconds()
        for i in range(warmup + count):
            t0 = time.perf_counter_ns()
            s.send(payload)
            try:
                s.recv(2048)
            except TimeoutError:
                continue
            if i >= warmup:
                rtts.append(time.perf_counter_ns() - t0)
        cpu = cpu_seconds() - c0
    if not rtts:
        print("no echo came back", file=sys.stderr)
        return 1
    percentiles(rtts, count, "pp-udp", cpu)
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", choices=MODES)
    p.add_argument("ifname")
    p.add_argument("seconds", type=float)
    p.add_argument("--packet", help="the frame to send, in hex (senders and gen)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--mode", dest="xdp_mode", choices=["native", "generic"], default="native")
    p.add_argument("--max-count", type=int, default=10**9)
    p.add_argument(
        "--busy-poll",
        type=int,
        default=None,
        metavar="USECS",
        help="AF_XDP receivers: preferred busy polling (Socket(busy_poll_usecs=))",
    )
    p.add_argument(
        "--coalesce",
        type=float,
        default=None,
        metavar="SECONDS",
        help="rx-batch, rx-iter: recv()/batches() with coalesce=SECONDS",
    )
    p.add_argument(
        "--rate", type=float, help="gen: packets per second (default: as fast as it can)"
    )
    p.add_argument("--peer", help="pp-udp-client: the server's address")
    p.add_argument("--queues", type=int, default=1, help="tx-queues: send on queues 0..N-1")
    p.add_argument(
        "--frame-size",
        type=int,
        default=4096,
        help="AF_XDP receivers: the Umem's frame size (4096 frames of it)",
    )
    p.add_argument(
        "--unaligned",
        action="store_true",
        help="AF_XDP receivers: the Umem in unaligned chunk mode",
    )
    p.add_argument(
        "--hugepages", action="store_true", help="AF_XDP receivers: the Umem on 2 MiB huge pages"
    )
    p.add_argument(
        "--multi-buffer",
        action="store_true",
        help="AF_XDP receivers and tx-packets: Socket(multi_buffer=True)",
    )
    args = p.parse_args()
    if args.mode == "pp-server":
        return pp_server(args)
    if args.mode == "pp-udp-server":
        return pp_udp_server(args)
    if args.mode in RECEIVERS:
        return xsk_receiver(args)
    if args.mode == "afpacket-rx":
        return afpacket_rx(args)
    if args.mode == "rx-port":
        return rx_port(args)
    if not args.packet:
        p.error(f"{args.mode} needs --packet")
    frame = bytes.fromhex(args.packet)
    return {
        "tx-batch": tx_batch,
        "tx-packets": tx_packets,
        "afpacket-tx": afpacket_tx,
        "gen": gen,
        "tx-queues": tx_queues,
        "pp-client": pp_client,
        "pp-udp-client": pp_udp_client,
    }[args.mode](args, frame)


if __name__ == "__main__":
    sys.exit(main())
