#!/usr/bin/env python3
"""afxdp side by side with libxdp (C), the Rust core and AF_PACKET: receive, forward, transmit.

One command, as root, on an otherwise quiet machine with at least 2 cores:

    python3 benches/e2e.py [--rounds 3] [--seconds 5] [--sizes 64,1500]

It builds the C reference (benches/c/xsk_ref.c, libxdp's xsk API: `cc -O2 ... -lxdp -lbpf`) and
the Rust core's examples (`cargo build --release -p afxdp --examples`), creates a private veth
lab (afxdp.lab.Lab: namespaces a and b) and measures, round after round, interleaved:

rx     afxdp.generate() in namespace a offers load (pinned to the load core); a receiver in
       namespace b (pinned to the work core) receives and drops: the C reference (xsk_ref
       rxdrop), the same C loop doing afxdp's frame ownership bookkeeping (`--track`), the
       Rust core (rust/core/examples/rxdrop.rs; rust-lend: the same loop over frames lent in
       place, `Socket::recv_with`), Python batch (`recv(64)`/release), the same
       through `Socket.batches()` (python-iter: one call per batch), Python
       touching every frame (`frame[23]`), and Python's own AF_PACKET socket (`recv_into`).
       Delivered = what the receiver counted. The Rust and Python batch receivers run again
       over other Umems: rust-u3000/u4001 and python-batch-u3000/u4001 in unaligned chunk mode
       with 3000- and 4001-byte frames, rust-huge and python-batch-huge with the aligned
       4096-byte frames on 2 MiB huge pages (the harness reserves the 8 huge pages a receiver
       needs through /proc/sys/vm/nr_hugepages and sets it back afterwards).
rx-paced  the AF_XDP receivers again, under the same *paced* load for all (--paced-mpps, at a
       rate every one of them keeps up with): their CPU per packet at equal offered load;
       python-batch-busy is the Python batch receiver with preferred busy polling
       (`Socket(busy_poll_usecs=20)`: a recvfrom per recv call).
       The -coalesce rows (rx and rx-paced) wait differently: with fewer than 64 frames ready,
       each receive first lets frames gather for COALESCE_US µs (a sleep that arriving frames
       do not wake), so a wakeup takes several bursts: python-batch-coalesce and
       python-iter-coalesce (`recv`/`batches(..., coalesce=)`), rust-coalesce (rxdrop.rs
       `coalesce=`) and c-coalesce (xsk_ref rxdrop --coalesce, the same in C). They trade up
       to COALESCE_US (plus the kernel's 50 µs timer slack) of latency for CPU.
l2fwd  the same load; the receiver swaps the MAC addresses and sends the frames back out of its
       interface: C (xsk_ref l2fwd), Rust (rust/core/examples/l2fwd.rs), Python batch
       (`FrameBatch.swap_macs()`), Python per frame (`frame[0:6], frame[6:12] = ...`).
       Delivered = what a counting XDP sink (xsk_ref sink) on the other end saw come back.
tx     a sender in namespace a (pinned to the work core) transmits one template: C (xsk_ref
       txonly), Rust (rust/core/examples/txonly.rs), Python batch (alloc/set_lengths/send),
       Python AF_PACKET `send`. Delivered = what the counting XDP sink on b saw.
pingpong  (--pingpong COUNT) round-trip latency, one 64-byte frame at a time: a client in
       namespace a (load CPU) sends, a server in namespace b (work CPU) echoes it with the MAC
       addresses swapped: Python afxdp in softirq mode (the waits sleep in poll), Python afxdp
       with preferred busy polling on both sides (`busy_poll_usecs=20`: the waits spin first),
       their C twins (xsk_ref pp-server/pp-client, libxdp's xsk API making the same syscalls,
       behind afxdp's built-in program attached by the harness on both ends: c-softirq and
       c-busy-poll), and Python UDP sockets. p50/p99 of COUNT round trips and the client's CPU
       per ping; ratios against the C row of the same waiting (UDP against c-softirq).
       `--workloads '' --pingpong COUNT` runs the ping-pong alone.

jumbo  9000-byte frames through a lab of MTU 9000 (Lab(mtu=9000)), beside 1500-byte frames through
       the same lab: afxdp.generate() cannot send a 9000-byte packet (live frames take at most 3408
       bytes here), so the load is an afxdp multi-buffer sender in namespace a (benches/workers.py
       tx-packets: `send_packets`, flat out, load CPU), the same for every row. python-batch is the
       rx python-batch receiver (aligned 4096-byte frames, single buffer, `recv(64)`/release) on
       1500-byte frames: the 4096-byte aligned case. The -mb receivers are bound with XDP_USE_SG
       (`Socket(multi_buffer=True)`, the same 4096-byte aligned frames): python-batch-mb is the same
       loop (frames counted; one frame per packet at 1500 bytes), python-packets-mb counts
       `len(batch.packets())` (a chain of frames is one packet), on 1500-byte frames and on
       9000-byte frames (chains of 3 frames: the kernel puts at most 4096 - 256 bytes of headroom =
       3840 bytes in a received frame). Packets/s and Gbit/s (frame bytes without FCS), each against
       python-batch at 1500 bytes. There is no single-buffer 9000-byte row (say with 16384-byte
       frames): afxdp, like the kernel's XDP_UMEM_REG, refuses frames larger than the page (4096
       bytes), in either chunk mode, so 9000 bytes never fit one.

rx-port  (--port-queues 1,2,4) an afxdp.Port on every rx queue of a lab whose veth ends have
       N queues (benches/workers.py rx-port, pinned to the work CPU), under the same total load
       for every N (--port-mpps), spread evenly over the N queues by AF_XDP tx sockets of one
       Umem on end a, one per queue, taking turns (workers.py tx-queues, pinned to the load
       CPU; in native mode a socket sending on queue q of one veth end reaches rx queue q of the
       other, NOTES.md; afxdp.generate() would not do: its frames land on the queue of the
       sending CPU). The Port's CPU per packet at equal offered load must stay flat as N grows.

--append TITLE writes the tables as a section TITLE added to --output (replacing an earlier
section of that title), keeping what is there, instead of rewriting the file.

Every AF_XDP receiver runs behind the same XDP program (afxdp's built-in one; the harness
attaches it for the C reference, which inserts its socket into that program's XSKMAP), so only
the user-space side differs. Figures: medians over the rounds of offered and delivered
packets/s, the measured process's CPU time per packet (receivers wait in poll when idle, so
this is work, not spinning), and the kernel's drop counters; ratios against the C reference.
The table goes to stdout and to docs/benchmarks.md (with the machine), a chart to
docs/benchmarks.png when matplotlib is importable.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
import fcntl
import math
import os
import platform
import select
import shlex
import socket
import statistics
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import afxdp
import cref  # benches/cref.py
from afxdp import packet
from afxdp.lab import Lab
from cref import build_xsk_ref

ROOT = Path(__file__).resolve().parent.parent
XSK_REF = cref.BINARY
RUST_EXAMPLES = ROOT / "target" / "release" / "examples"
WORKERS = [sys.executable, str(ROOT / "benches" / "workers.py")]
WORKLOADS = ("rx", "rx-paced", "l2fwd", "tx", "jumbo")
#: Frames per batch of every implementation (xdpsock's default); --batch changes it.
BATCH = 64
#: Receivers count for this much longer than the load runs (from their first packet).
RX_MARGIN = 1.0
#: Upper bound on the packets of any sending loop (the loops are also bounded in time).
MAX_PACKETS_PER_SECOND = 50_000_000


@dataclass(frozen=True)
class Case:
    """One measured program: `argv(ifname, seconds, frame_hex)` runs in the measured namespace."""

    workload: str
    impl: str
    argv: Callable[[str, float, str], list[str]]
    #: The harness attaches afxdp's built-in program on the receiver's interface (C receivers).
    harness_program: bool = False


def cap(seconds: float) -> str:
    return str(int(seconds * MAX_PACKETS_PER_SECOND))


#: The -coalesce receivers' coalesce= (µs): at the paced 2 Mpps, about 3 bursts of 64 per wakeup.
COALESCE_US = 100


def cases() -> list[Case]:
    x, r = str(XSK_REF), RUST_EXAMPLES

    def py(mode: str, *extra: str) -> Callable[[str, float, str], list[str]]:
        return lambda ifn, s, hx: [
            *WORKERS,
            mode,
            ifn,
            str(s),
            "--packet",
            hx,
            "--max-count",
            cap(s),
            "--batch",
            str(BATCH),
            *extra,
        ]

    def c(mode: str, *extra: str) -> Callable[[str, float, str], list[str]]:
        return lambda ifn, s, hx: [x, mode, ifn, "-d", str(s), "-b", str(BATCH), *extra]

    def rust(example: str, *umem: str) -> Callable[[str, float, str], list[str]]:
        return lambda ifn, s, hx: [str(r / example), ifn, str(s), "native", str(BATCH), *umem]

    coalesce = [
        ("c-coalesce", c("rxdrop", "--coalesce", str(COALESCE_US)), True),
        ("rust-coalesce", rust("rxdrop", "4096", f"coalesce={COALESCE_US}"), False),
        ("python-batch-coalesce", py("rx-batch", "--coalesce", str(COALESCE_US / 1e6)), False),
        ("python-iter-coalesce", py("rx-iter", "--coalesce", str(COALESCE_US / 1e6)), False),
    ]
    paced = [
        Case("rx-paced", impl, argv, harness)
        for impl, argv, harness in (
            ("c", c("rxdrop"), True),
            ("c-tracked", c("rxdrop", "--track"), True),
            ("rust", rust("rxdrop"), False),
            ("rust-lend", rust("rxdrop", "4096", "lend"), False),
            ("python-batch", py("rx-batch"), False),
            ("python-iter", py("rx-iter"), False),
            ("python-batch-busy", py("rx-batch", "--busy-poll", "20"), False),
            ("python-touch", py("rx-touch"), False),
            *coalesce,
        )
    ]

    return [
        Case("rx", "c", c("rxdrop"), harness_program=True),
        Case("rx", "c-tracked", c("rxdrop", "--track"), harness_program=True),
        Case("rx", "rust", rust("rxdrop")),
        Case("rx", "rust-lend", rust("rxdrop", "4096", "lend")),
        Case("rx", "python-batch", py("rx-batch")),
        Case("rx", "python-iter", py("rx-iter")),
        Case("rx", "python-touch", py("rx-touch")),
        Case("rx", "rust-u3000", rust("rxdrop", "3000", "unaligned")),
        Case("rx", "rust-u4001", rust("rxdrop", "4001", "unaligned")),
        Case("rx", "rust-huge", rust("rxdrop", "4096", "hugepages")),
        Case("rx", "python-batch-u3000", py("rx-batch", "--frame-size", "3000", "--unaligned")),
        Case("rx", "python-batch-u4001", py("rx-batch", "--frame-size", "4001", "--unaligned")),
        Case("rx", "python-batch-huge", py("rx-batch", "--hugepages")),
        Case("rx", "python-afpacket", py("afpacket-rx")),
        *(Case("rx", impl, argv, harness) for impl, argv, harness in coalesce),
        Case("l2fwd", "c", c("l2fwd"), harness_program=True),
        Case("l2fwd", "rust", rust("l2fwd")),
        Case("l2fwd", "python-batch", py("l2fwd-batch")),
        Case("l2fwd", "python-perframe", py("l2fwd-perframe")),
        Case(
            "tx",
            "c",
            lambda ifn, s, hx: [
                x,
                "txonly",
                ifn,
                "-d",
                str(s),
                "--packet",
                hx,
                "-b",
                str(BATCH),
                "-C",
                cap(s),
            ],
        ),
        Case(
            "tx",
            "rust",
            lambda ifn, s, hx: [str(r / "txonly"), ifn, str(s), hx, str(BATCH), cap(s)],
        ),
        Case("tx", "python-batch", py("tx-batch")),
        Case("tx", "python-afpacket", py("afpacket-tx")),
        *paced,
    ]


#: The jumbo workload's lab MTU and its packet sizes: the jumbo frame (Ethernet frame length
#: without FCS, as --sizes) and the size of the 4096-byte aligned case it is compared with.
JUMBO_MTU = 9000
JUMBO_SIZE = 9000
JUMBO_BASE_SIZE = 1500


@dataclass(frozen=True)
class JumboCase:
    """One row of the jumbo workload: a receiver (benches/workers.py argv after the ifname and
    seconds) on frames of `size` bytes, loaded by the multi-buffer sender."""

    impl: str
    size: int
    receiver: tuple[str, ...]


#: The row every jumbo row's rates are divided by: the 4096-byte aligned case.
JUMBO_BASE = ("python-batch", JUMBO_BASE_SIZE)


def jumbo_cases() -> list[JumboCase]:
    return [
        JumboCase("python-batch", JUMBO_BASE_SIZE, ("rx-batch",)),
        JumboCase("python-batch-mb", JUMBO_BASE_SIZE, ("rx-batch", "--multi-buffer")),
        JumboCase("python-packets-mb", JUMBO_BASE_SIZE, ("rx-packets", "--multi-buffer")),
        JumboCase("python-packets-mb", JUMBO_SIZE, ("rx-packets", "--multi-buffer")),
    ]


# --- building ------------------------------------------------------------------------------------


def build(skip_c: bool, rust_examples: bool = True) -> bool:
    """Builds the Rust examples (unless no selected case runs one) and the C reference;
    returns whether the C reference exists."""
    if rust_examples:
        print("building the Rust examples (cargo build --release -p afxdp --examples)", flush=True)
        subprocess.run(
            ["cargo", "build", "--quiet", "--release", "-p", "afxdp", "--examples"],
            cwd=ROOT,
            check=True,
        )
    return not skip_c and build_xsk_ref() is not None


# --- huge pages ----------------------------------------------------------------------------------

NR_HUGEPAGES = Path("/proc/sys/vm/nr_hugepages")
FREE_HUGEPAGES = Path("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages")
#: Huge pages one huge-page receiver's Umem takes: 4096 frames of 4096 bytes in 2 MiB pages.
HUGE_PAGES_PER_RECEIVER = 4096 * 4096 // (2 << 20)


@contextlib.contextmanager
def reserved_huge_pages(pages: int) -> Iterator[None]:
    """At least `pages` free 2 MiB huge pages inside the block: nr_hugepages is raised by what
    is missing and set back afterwards, also on error."""
    old = int(NR_HUGEPAGES.read_text())
    missing = max(0, pages - int(FREE_HUGEPAGES.read_text()))
    if missing:
        NR_HUGEPAGES.write_text(str(old + missing))
        print(f"reserved {missing} huge pages (nr_hugepages {old} -> {old + missing})", flush=True)
    try:
        yield
    finally:
        if missing:
            NR_HUGEPAGES.write_text(str(old))


# --- veth counters -------------------------------------------------------------------------------

SIOCETHTOOL = 0x8946
ETHTOOL_GSSET_INFO, ETHTOOL_GSTRINGS, ETHTOOL_GSTATS, ETH_SS_STATS = 0x37, 0x1B, 0x1D, 1


def _ethtool(ifname: str, buf: ctypes.Array[ctypes.c_char]) -> None:
    ifreq = struct.pack("16sP", ifname.encode(), ctypes.addressof(buf)) + bytes(16)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        fcntl.ioctl(s.fileno(), SIOCETHTOOL, ifreq)


def ethtool_stats(ifname: str) -> dict[str, int]:
    """`ethtool -S IFNAME` through the SIOCETHTOOL ioctl (in the calling thread's netns)."""
    info = ctypes.create_string_buffer(
        struct.pack("IIQI", ETHTOOL_GSSET_INFO, 0, 1 << ETH_SS_STATS, 0)
    )
    _ethtool(ifname, info)
    n = struct.unpack_from("I", info, 16)[0]
    strings = ctypes.create_string_buffer(
        struct.pack("III", ETHTOOL_GSTRINGS, ETH_SS_STATS, n) + bytes(32 * n)
    )
    _ethtool(ifname, strings)
    names = [strings.raw[12 + 32 * i : 44 + 32 * i].split(b"\0")[0].decode() for i in range(n)]
    values = ctypes.create_string_buffer(struct.pack("II", ETHTOOL_GSTATS, n) + bytes(8 * n))
    _ethtool(ifname, values)
    return dict(zip(names, struct.unpack_from(f"{n}Q", values, 8), strict=True))


def veth_drops(lab: Lab) -> int:
    """Redirected frames the veth pair refused, both ways (`tx_queue_N_xdp_xmit_errors`: the
    peer's ring was full), i.e. frames the load pushed that no XDP program or socket ever saw.
    (`rx_queue_N_drops` is left out: it counts failed redirects, such as a full socket ring,
    which the socket counts itself.)"""
    total = 0
    for side in ("a", "b"):
        with lab.enter(side):  # type: ignore[arg-type]
            stats = ethtool_stats(lab.ifname(side))  # type: ignore[arg-type]
        total += sum(v for k, v in stats.items() if k.endswith("_xdp_xmit_errors"))
    return total


# --- running one case ----------------------------------------------------------------------------


def parse(line: str) -> dict[str, str]:
    return dict(kv.split("=", 1) for kv in line.split() if "=" in kv)


class Proc:
    """A child started in a lab namespace, pinned to one CPU, that prints `ready` when set up."""

    def __init__(self, lab: Lab, side: str, argv: list[str], cpu: int, name: str) -> None:
        self.name = name
        self.proc = lab.popen(
            side,
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if line.strip() != "ready":
            self.kill()
            raise RuntimeError(f"{self.name} did not start: {line.strip()} {self.stderr()}")

    def result(self, timeout: float) -> dict[str, str]:
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError(f"{self.name} did not finish in {timeout:.0f} s") from None
        lines = [ln for ln in out.splitlines() if ln.startswith("impl=")]
        if self.proc.returncode != 0 or not lines:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {err.strip()}")
        return parse(lines[-1])

    def stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return ""
        return self.proc.stderr.read().strip()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def run_case(
    lab: Lab,
    case: Case,
    frame: bytes,
    seconds: float,
    load_cpu: int,
    work_cpu: int,
    rate: float | None = None,
    observe: Callable[[int], contextlib.AbstractContextManager[object]] | None = None,
) -> dict[str, float]:
    """Runs one case once; returns offered, own and delivered packets/s, CPU ns/packet, drops.
    `observe(pid)` (rx workloads) is entered with the receiver's pid once the load starts and
    left when the receiver has exited (benches/cpu_split.py profiles it there).

    Every rate is a count over the load's own duration: the generator's (rx, l2fwd) or the
    sender's (tx). `rate` paces the generator (rx-paced), else it runs as fast as it can.
    The receivers and the sink start first and keep counting until after the
    load stops (receivers: `seconds + RX_MARGIN` from their first packet; the sink: until no
    packet came for 0.5 s), so they see all of it, and their CPU time covers the same packets.
    """
    hx = frame.hex()
    timeout = seconds + 60
    procs: list[Proc] = []
    prog = None

    def sink_on(side: str) -> Proc:
        sink = Proc(
            lab,
            side,
            [str(XSK_REF), "sink", lab.ifname(side), "-d", str(seconds + 30)],
            load_cpu,
            f"sink on {side}",
        )
        procs.append(sink)
        sink.wait_ready()
        return sink

    try:
        if case.workload == "tx":
            sink = sink_on("b")
            drops0 = veth_drops(lab)
            sender = Proc(lab, "a", case.argv(lab.if_a, seconds, hx), work_cpu, case.impl)
            procs.append(sender)
            sender.wait_ready()
            own = sender.result(timeout)
            load_seconds = float(own["seconds"])
            offered = float(own["packets"]) / load_seconds
            mine = offered
            delivered = float(sink.result(timeout)["packets"]) / load_seconds
            drops = veth_drops(lab) - drops0
        else:
            if case.harness_program:
                with lab.enter("b"):
                    prog = afxdp.Program.attach(lab.if_b, mode="native")
            sink = sink_on("a") if case.workload == "l2fwd" else None
            rx = Proc(lab, "b", case.argv(lab.if_b, seconds + RX_MARGIN, hx), work_cpu, case.impl)
            procs.append(rx)
            rx.wait_ready()
            drops0 = veth_drops(lab)
            gen = Proc(
                lab,
                "a",
                [
                    *WORKERS,
                    "gen",
                    lab.if_a,
                    str(seconds),
                    "--packet",
                    hx,
                    "--max-count",
                    cap(seconds),
                    *(["--rate", f"{rate:.0f}"] if rate else []),
                ],
                load_cpu,
                "generator",
            )
            procs.append(gen)
            gen.wait_ready()
            with observe(rx.proc.pid) if observe else contextlib.nullcontext():
                load = gen.result(timeout)
                own = rx.result(timeout)
            load_seconds = float(load["seconds"])
            offered = float(load["packets"]) / load_seconds
            mine = float(own["packets"]) / load_seconds
            delivered = float(sink.result(timeout)["packets"]) / load_seconds if sink else mine
            drops = veth_drops(lab) - drops0
        return {
            "offered": offered,
            "own": mine,
            "delivered": delivered,
            "cpu": float(own["cpu_ns_per_packet"]),
            "packets": float(own["packets"]),
            "user": float(own.get("user_ns_per_packet", "nan")),
            "ring_full": float(own.get("rx_ring_full", 0)),
            "fill_empty": float(own.get("fill_empty", 0)),
            "rx_dropped": float(own.get("rx_dropped", 0)),
            "veth_drops": float(drops),
        }
    finally:
        for p in procs:
            p.kill()
        if prog is not None:
            prog.detach()


def run_port(
    queues: int, size: int, seconds: float, rate: float, load_cpu: int, work_cpu: int
) -> dict[str, float | str]:
    """rx-port once: a lab with `queues` queues per veth end, the paced load spread over every
    queue, a Port receiving on all of them."""
    with Lab(queues=queues) as lab:
        frame = packet.ipv4_udp(
            lab.mac_a, lab.mac_b, lab.ip_a, lab.ip_b, 40000, 9, bytes(max(0, size - 42))
        )
        procs: list[Proc] = []
        try:
            rx = Proc(
                lab,
                "b",
                [*WORKERS, "rx-port", lab.if_b, str(seconds + RX_MARGIN), "--batch", str(BATCH)],
                work_cpu,
                f"rx-port {queues}",
            )
            procs.append(rx)
            rx.wait_ready()
            tx = Proc(
                lab,
                "a",
                [
                    *WORKERS,
                    "tx-queues",
                    lab.if_a,
                    str(seconds),
                    "--packet",
                    frame.hex(),
                    "--rate",
                    f"{rate:.0f}",
                    "--queues",
                    str(queues),
                    "--batch",
                    str(BATCH),
                    "--max-count",
                    cap(seconds),
                ],
                load_cpu,
                f"tx-queues {queues}",
            )
            procs.append(tx)
            tx.wait_ready()
            load = tx.result(seconds + 60)
            own = rx.result(seconds + 60)
        finally:
            for proc in procs:
                proc.kill()
    load_seconds = float(load["seconds"])
    return {
        "offered": float(load["packets"]) / load_seconds,
        "delivered": float(own["packets"]) / load_seconds,
        "cpu": float(own["cpu_ns_per_packet"]),
        "ring_full": float(own["rx_ring_full"]),
        "fill_empty": float(own["fill_empty"]),
        "sent_per_queue": load["per_queue"],
        "per_queue": own["per_queue"],
        "per_queue_mpps": "/".join(
            f"{int(n) / load_seconds / 1e6:.3f}" for n in own["per_queue"].split("/")
        ),
    }


def port_table(runs: dict[int, list[dict[str, float | str]]], size: int, rate: float) -> str:
    lines = [
        f"### rx through one Port on 1..N queues ({size}-byte frames, {rate / 1e6:g} Mpps "
        "offered in total, spread evenly over the queues)",
        "",
        "| queues | offered Mpps | delivered Mpps | delivered / offered | delivered Mpps per "
        "queue (last round) | Port CPU ns/packet | CPU vs 1 queue | ring full / fill empty |",
        "| ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    base = None
    for queues, rs in sorted(runs.items()):
        if not rs:
            continue
        med = {
            k: statistics.median(float(r[k]) for r in rs)
            for k in ("offered", "delivered", "cpu", "ring_full", "fill_empty")
        }
        share = statistics.median(float(r["delivered"]) / float(r["offered"]) for r in rs)
        base = base if base is not None else med["cpu"]
        lines.append(
            f"| {queues} | {med['offered'] / 1e6:.3f} | {med['delivered'] / 1e6:.3f} | "
            f"{share:.2f} | {rs[-1]['per_queue_mpps']} | {med['cpu']:.1f} | "
            f"{fmt_ratio(med['cpu'], base)} | {med['ring_full']:,.0f} / "
            f"{med['fill_empty']:,.0f} |"
        )
    return "\n".join(lines) + "\n"


def run_jumbo(
    lab: Lab, case: JumboCase, seconds: float, load_cpu: int, work_cpu: int
) -> dict[str, float]:
    """The jumbo workload once: the receiver in namespace b (work CPU), then the multi-buffer
    sender in namespace a (load CPU) for `seconds`; rates over the sender's window."""
    frame = packet.ipv4_udp(
        lab.mac_a, lab.mac_b, lab.ip_a, lab.ip_b, 40000, 9, bytes(case.size - 42)
    )
    procs: list[Proc] = []
    name = f"jumbo {case.impl} {case.size} B"
    try:
        rx = Proc(
            lab,
            "b",
            [
                *WORKERS,
                case.receiver[0],
                lab.if_b,
                str(seconds + RX_MARGIN),
                "--batch",
                str(BATCH),
                *case.receiver[1:],
            ],
            work_cpu,
            name,
        )
        procs.append(rx)
        rx.wait_ready()
        drops0 = veth_drops(lab)
        tx = Proc(
            lab,
            "a",
            [
                *WORKERS,
                "tx-packets",
                lab.if_a,
                str(seconds),
                "--packet",
                frame.hex(),
                "--batch",
                str(BATCH),
                "--max-count",
                cap(seconds),
                "--multi-buffer",
            ],
            load_cpu,
            f"{name} sender",
        )
        procs.append(tx)
        tx.wait_ready()
        load = tx.result(seconds + 60)
        own = rx.result(seconds + 60)
        drops = veth_drops(lab) - drops0
    finally:
        for proc in procs:
            proc.kill()
    load_seconds = float(load["seconds"])
    packets = float(own["packets"])
    return {
        "offered": float(load["packets"]) / load_seconds,
        "delivered": packets / load_seconds,
        "offered_gbps": float(load["bytes"]) * 8 / load_seconds / 1e9,
        "delivered_gbps": float(own["bytes"]) * 8 / load_seconds / 1e9,
        "frames_per_packet": float(own.get("frames", packets)) / max(packets, 1.0),
        "cpu": float(own["cpu_ns_per_packet"]),
        "ring_full": float(own["rx_ring_full"]),
        "fill_empty": float(own["fill_empty"]),
        "rx_dropped": float(own["rx_dropped"]),
        "veth_drops": float(drops),
    }


def jumbo_table(
    runs: dict[tuple[str, int], list[dict[str, float]]], generated: dict[str, float] | None = None
) -> str:
    """The jumbo workload's table: medians over the rounds; ratios against the 4096-byte
    aligned case (python-batch, single buffer, 1500-byte frames, same lab and load), each the
    median over the rounds of that round's ratio (a round runs its cases back to back, so the
    pairs share the host's load of the moment). `generated`: the medians of the rx workload's
    python-batch at JUMBO_BASE_SIZE in this run (MTU-1500 lab, afxdp.generate() load), if it ran:
    a line compares the 9000-byte rows with it too (a ratio of medians, not paired)."""
    med = {
        key: {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        for key, rs in runs.items()
        if rs
    }
    base_by_round = {r["round"]: r for r in runs.get(JUMBO_BASE, [])}

    def vs_base(key: tuple[str, int], metric: str) -> str:
        ratios = [
            r[metric] / base_by_round[r["round"]][metric]
            for r in runs[key]
            if r["round"] in base_by_round and base_by_round[r["round"]][metric]
        ]
        return f"{statistics.median(ratios):.2f}" if ratios else "-"

    lines = [
        f"### jumbo: {JUMBO_SIZE}-byte frames on multi-buffer sockets beside the 4096-byte "
        f"aligned case ({JUMBO_BASE_SIZE}-byte frames), lab MTU {JUMBO_MTU}",
        "",
        f"Every row: 4096-byte aligned frames; the same load (benches/workers.py "
        f"tx-packets, `send_packets` on a multi-buffer socket); -mb: the receiver is "
        f"bound with XDP_USE_SG (`multi_buffer=True`). *vs base*: this row's figure "
        f"divided by that of {JUMBO_BASE[0]} at {JUMBO_BASE[1]} bytes (single "
        f"buffer) in the same round, the median over the rounds. Gbit/s counts frame "
        f"bytes without FCS.",
        "",
        "| frame bytes | implementation | frames per packet | offered Mpps | "
        "delivered Mpps | delivered / offered | offered Gbit/s | delivered Gbit/s | "
        "Gbit/s vs base | Mpps vs base | CPU ns/packet | CPU ns/KB | CPU/packet vs base | "
        "socket drops: ring full / fill empty / rx_dropped | veth xmit errors |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | "
        "---: | ---: | ---: |",
    ]
    for (impl, size), m in med.items():
        share = statistics.median(
            r["delivered"] / r["offered"] if r["offered"] else 0.0 for r in runs[(impl, size)]
        )
        lines.append(
            f"| {size} | {impl} | "
            f"{m['frames_per_packet']:.2f} | {m['offered'] / 1e6:.3f} | "
            f"{m['delivered'] / 1e6:.3f} | {share:.2f} | {m['offered_gbps']:.2f} | "
            f"{m['delivered_gbps']:.2f} | "
            f"{vs_base((impl, size), 'delivered_gbps')} | "
            f"{vs_base((impl, size), 'delivered')} | "
            f"{m['cpu']:.1f} | {m['cpu'] * 1000 / size:.1f} | {vs_base((impl, size), 'cpu')} | "
            f"{m['ring_full']:,.0f} / {m['fill_empty']:,.0f} / {m['rx_dropped']:,.0f} | "
            f"{m['veth_drops']:,.0f} |"
        )
    if generated:
        gen_gbps = generated["delivered"] * JUMBO_BASE_SIZE * 8 / 1e9
        lines += [
            "",
            f"- The rx workload's {JUMBO_BASE[0]} at {JUMBO_BASE_SIZE} bytes in this "
            f"run (the same receiver and Umem, in the MTU-1500 lab, loaded by "
            f"afxdp.generate() instead of the AF_XDP sender): "
            f"{generated['delivered'] / 1e6:.3f} Mpps delivered, {gen_gbps:.2f} Gbit/s.",
        ]
        for (impl, size), m in med.items():
            if size == JUMBO_SIZE:
                lines.append(
                    f"- {impl} at {size} bytes delivered "
                    f"{fmt_ratio(m['delivered_gbps'], gen_gbps)} times its Gbit/s "
                    f"(ratio of medians)."
                )
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class PingPong:
    """One ping-pong implementation: `server(ifname)` runs in namespace b, `client(ifname,
    count, frame_hex, peer_ip)` in namespace a and prints the `impl=... p50_us=...` line."""

    name: str
    server: Callable[[str], list[str]]
    client: Callable[[str, int, str, str], list[str]]
    #: The row its p50, p99 and CPU are divided by in the table (None: no ratio).
    versus: str | None = None
    #: The harness attaches afxdp's built-in program on both ends (the C reference).
    harness_program: bool = False


def pingpong_impls(have_c: bool) -> list[PingPong]:
    x = str(XSK_REF)

    def py(
        server: str, client: str, *extra: str
    ) -> tuple[Callable[[str], list[str]], Callable[[str, int, str, str], list[str]]]:
        return (
            (lambda ifn: [*WORKERS, server, ifn, "600", *extra]),
            (
                lambda ifn, n, hx, peer: [
                    *WORKERS,
                    client,
                    ifn,
                    str(n),
                    "--packet",
                    hx,
                    "--peer",
                    peer,
                    *extra,
                ]
            ),
        )

    def c(
        *extra: str,
    ) -> tuple[Callable[[str], list[str]], Callable[[str, int, str, str], list[str]]]:
        return (
            (lambda ifn: [x, "pp-server", ifn, "-d", "600", *extra]),
            (lambda ifn, n, hx, peer: [x, "pp-client", ifn, "-C", str(n), "--packet", hx, *extra]),
        )

    busy = ("--busy-poll", "20")
    soft, spin = ("c-softirq", "c-busy-poll") if have_c else (None, None)
    rows = (
        [
            PingPong("c-softirq", *c(), harness_program=True),
            PingPong("c-busy-poll", *c(*busy), harness_program=True),
        ]
        if have_c
        else []
    )
    return [
        *rows,
        PingPong("python-softirq", *py("pp-server", "pp-client"), versus=soft),
        PingPong("python-busy-poll", *py("pp-server", "pp-client", *busy), versus=spin),
        PingPong("python-udp", *py("pp-udp-server", "pp-udp-client"), versus=soft),
    ]


def run_pingpong(
    lab: Lab, impls: list[PingPong], count: int, load_cpu: int, work_cpu: int
) -> dict[str, dict[str, str]]:
    """One ping-pong run of each implementation; the client's key=value result by name."""
    frame = packet.ipv4_udp(lab.mac_a, lab.mac_b, lab.ip_a, lab.ip_b, 40000, 9000, bytes(22))
    out: dict[str, dict[str, str]] = {}
    for pp in impls:
        progs: list[afxdp.Program] = []
        server = client = None
        try:
            if pp.harness_program:
                for side, ifname in (("a", lab.if_a), ("b", lab.if_b)):
                    with lab.enter(side):  # type: ignore[arg-type]
                        progs.append(afxdp.Program.attach(ifname, mode="native"))
            server = Proc(lab, "b", pp.server(lab.if_b), work_cpu, f"{pp.name} server")
            server.wait_ready()
            client = Proc(
                lab,
                "a",
                pp.client(lab.if_a, count, frame.hex(), lab.ip_b),
                load_cpu,
                f"{pp.name} client",
            )
            client.wait_ready()
            out[pp.name] = client.result(count / 100 + 120)
        except (RuntimeError, OSError) as e:
            print(f"pingpong {pp.name} FAILED: {e}", flush=True)
        finally:
            for proc in (client, server):
                if proc is not None:
                    proc.kill()
            for prog in progs:
                prog.detach()
    return out


def pingpong_table(
    rounds: list[dict[str, dict[str, str]]], impls: list[PingPong], count: int
) -> str:
    lines = [
        f"## Ping-pong round trip ({count} pings of one 64-byte frame, medians over "
        f"{len(rounds)} rounds)",
        "",
        "| implementation | p50 µs | p99 µs | client CPU µs/ping | compared with | "
        "p50 ratio | p99 ratio | CPU ratio |",
        "|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    keys = ("p50_us", "p99_us", "cpu_us_per_ping")
    med: dict[str, dict[str, float]] = {}
    for pp in impls:
        runs = [r[pp.name] for r in rounds if pp.name in r]
        if runs:
            med[pp.name] = {k: statistics.median(float(r[k]) for r in runs) for k in keys}
    for pp in impls:
        if pp.name not in med:
            continue
        m = med[pp.name]
        base = med.get(pp.versus) if pp.versus else None
        ratios = " | ".join(fmt_ratio(m[k], base[k] if base else None) for k in keys)
        lines.append(
            f"| {pp.name} | {m['p50_us']:.1f} | {m['p99_us']:.1f} | "
            f"{m['cpu_us_per_ping']:.1f} | {pp.versus if base else '-'} | {ratios} |"
        )
    return "\n".join(lines) + "\n"


# --- reporting -----------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    model = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            model = next(
                (ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), model
            )
    except OSError:
        pass
    commit = (
        subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        or "unknown"
    )
    return {
        "kernel": platform.release(),
        "cpu": model,
        "cores": str(os.cpu_count()),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit,
        "afxdp": getattr(afxdp, "__version__", "?"),
    }


def fmt_ratio(value: float, base: float | None) -> str:
    return f"{value / base:.2f}" if base else "-"


def fmt_split(m: dict[str, float]) -> str:
    """The CPU per packet in user space and in the kernel (`-` for a process that does not say)."""
    user = m.get("user", math.nan)
    if math.isnan(user):
        return "-"
    return f"{user:.1f} / {m['cpu'] - user:.1f}"


def table(
    results: dict[tuple[int, str, str], list[dict[str, float]]], sizes: list[int], base_impl: str
) -> tuple[str, dict[tuple[int, str, str], dict[str, float]]]:
    """The markdown table of medians, and the medians themselves."""
    med: dict[tuple[int, str, str], dict[str, float]] = {}
    for key, runs in results.items():
        if runs:
            med[key] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            # Offered load varies from run to run: the share of its own offered load each
            # implementation delivered, per run, is the fair comparison of throughput.
            med[key]["share"] = statistics.median(
                r["delivered"] / r["offered"] if r["offered"] else 0.0 for r in runs
            )
    out = []
    for size in sizes:
        out.append(f"\n### {size}-byte frames\n")
        out.append(
            f"| workload | implementation | offered Mpps | own Mpps | delivered Mpps | "
            f"delivered / offered | delivered vs {base_impl} | CPU ns/packet | "
            f"CPU vs {base_impl} | of it user / kernel | "
            f"socket drops: ring full / fill empty / rx_dropped | veth xmit errors |"
        )
        out.append(
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        )
        for workload in WORKLOADS:
            base = med.get((size, workload, base_impl))
            for (sz, wl, impl), m in med.items():
                if sz != size or wl != workload:
                    continue
                out.append(
                    f"| {workload} | {impl} | {m['offered'] / 1e6:.3f} | {m['own'] / 1e6:.3f} | "
                    f"{m['delivered'] / 1e6:.3f} | {m['share']:.2f} | "
                    f"{fmt_ratio(m['delivered'], base['delivered'] if base else None)} | "
                    f"{m['cpu']:.1f} | {fmt_ratio(m['cpu'], base['cpu'] if base else None)} | "
                    f"{fmt_split(m)} | "
                    f"{m['ring_full']:,.0f} / {m['fill_empty']:,.0f} / {m['rx_dropped']:,.0f} | "
                    f"{m['veth_drops']:,.0f} |"
                )
    return "\n".join(out), med


METHOD = """\
## How it is measured

- A private veth lab (`afxdp.lab.Lab`): namespaces a and b joined by one veth pair, MTU 1500,
  native XDP on the receiving end. Frames are Ethernet/IPv4/UDP (`afxdp.packet.ipv4_udp`, to
  port 9); the size is the frame length without FCS. veth supports AF_XDP in copy mode only.
- Two CPUs are used: the *load* CPU runs the offered load (`afxdp.generate()`, the kernel-speed
  generator, in namespace a) and the helper processes; the *work* CPU runs the measured process
  (pinned with `sched_setaffinity`). On a veth the receiving end's XDP program and the copy into
  the UMEM run in softirq on the sending CPU: for rx and l2fwd that is the load CPU, for tx it is
  the work CPU (the sender's), and then it may be charged to the sender.
- Every rate is a count divided by the load's own duration: the generator's for rx and l2fwd,
  the sender's sending window for tx. Whatever counts (the receiver, the forwarder, the sink)
  starts first and keeps counting until after the load stopped, so it sees all of it.
- *own* is what the measured process counted (received, forwarded or sent), per second.
- *delivered / offered* is the median over the rounds of each run's own ratio: the generator's
  rate differs from run to run (±15% here), so it compares throughput more fairly than
  *delivered vs c*, which divides medians of different offered loads.
- **rx-paced**: the generator is paced (`afxdp.generate(rate=...)`, ~1 ms steps) at the same
  rate for every receiver, so CPU per packet is compared at equal offered load. In **rx** the
  generator runs flat out and its rate depends on the receiver too (waking a receiver costs the
  load CPU), so the receivers there see different offered loads, and a receiver's CPU per
  packet depends on the load (the busier it is, the more packets each wakeup brings).
- **jumbo**: its own lab of MTU 9000 (`Lab(mtu=9000)`). `afxdp.generate()` cannot send a
  9000-byte packet (live frames take at most a page minus the kernel's headroom and tailroom,
  3408 bytes here), so the load is an
  afxdp sender bound with XDP_USE_SG in namespace a (benches/workers.py tx-packets:
  `send_packets` of the same packet, flat out, on the load CPU; a 9000-byte packet goes out as a
  chain of 3 frames), the same for every row. The receivers, all on Umems of 4096-byte aligned
  frames: **python-batch** on 1500-byte frames, single buffer, the loop of the rx python-batch
  row (the 4096-byte aligned case, the base); **python-batch-mb**, the same loop on a socket
  bound with XDP_USE_SG (`Socket(multi_buffer=True)`); **python-packets-mb** on such a socket
  counting `len(batch.packets())`, a chain of frames being one packet, on 1500-byte frames and
  on 9000-byte frames, which arrive as chains of 3 frames (at most 4096 - 256 bytes of XDP
  headroom = 3840 bytes of a packet per received frame). Rates are packets/s and Gbit/s of frame
  bytes without FCS; *vs base* is each round's ratio to python-batch at 1500 bytes in the same
  round, the median over the rounds. There is no single-buffer 9000-byte row (with, say,
  16384-byte frames): afxdp, like the kernel's XDP_UMEM_REG, refuses frames larger than the
  4096-byte page in either chunk mode.
- **rx-port** (`--port-queues`): a lab whose veth ends have N queues each, a new lab per N. The
  load is paced to the same total rate for every N (`--port-mpps`) and spread evenly over the
  queues by AF_XDP tx sockets of one Umem on end a, one per queue, taking turns
  (benches/workers.py tx-queues): in native mode a socket sending on queue q of one veth end
  reaches rx queue q of the other, so each queue gets 1/N of it (the table shows what each
  queue received). `afxdp.generate()` cannot spread it: its frames land on the rx queue of the
  CPU that sends them. The receiver is one process (benches/workers.py rx-port) with an
  `afxdp.Port` on all N queues, `port.recv(64)` in a loop; its CPU per packet at equal offered
  load is what must stay flat as N grows. The sender's softirq work (the receiving end's XDP
  program and the copy into the UMEM) runs on the load CPU.
- **Busy polling** (python-batch-busy, python-busy-poll, c-busy-poll): `Socket(busy_poll_usecs=20)`
  (`xsk_ref --busy-poll 20` for C) sets SO_PREFER_BUSY_POLL, SO_BUSY_POLL and
  SO_BUSY_POLL_BUDGET, makes a `recvfrom`/`sendto` per call and lets a waiting `recv` spin 20 µs
  before it sleeps. Those syscalls poll a NAPI only when the socket has a NAPI id, and an AF_XDP
  socket gets one in `xsk_bind()` (net/xdp/xsk.c: `__sk_mark_napi_id_once()` with the bound rx
  queue's `rxq->napi`), only if the driver registered a NAPI on that queue. The 6.13 commit
  "xsk: Bring back busy polling support" did that for zero-copy sockets only; "xsk: Bring back
  busy polling support in XDP_COPY" (May 2025, in 6.18's xsk_bind) dropped the `xs->zc`
  condition. veth, though, enables its NAPI instances (`__veth_napi_enable_range()`) without
  registering them on its rx queues, so on veth the socket's NAPI id stays 0 in either mode
  (`Socket.napi_id` reads 0 on this 6.18 kernel, before and after traffic), `sk_busy_loop()` in
  `__xsk_recvmsg()` finds nothing to poll, and the receiving end's XDP still runs in the
  sender's softirq. What busy polling changes here is the wait: spinning instead of sleeping,
  which is where the ping-pong's shorter round trip comes from, paid for in CPU time.
- Every implementation moves frames in batches of the same size (`--batch`, xdpsock's 64 by
  default): up to that many per ring peek and per `recv` call.
- **rx**: delivered = what the receiver counted. **l2fwd**: the forwarder swaps the MAC
  addresses and sends each frame back out of its interface; own = what it forwarded, delivered
  = what a counting XDP program on the other end saw come back (`xsk_ref sink`: count in a
  per-CPU array, XDP_DROP). **tx**: offered = what the sender pushed (completed frames for
  AF_XDP, successful `send` calls for AF_PACKET); delivered = what the counting XDP sink on b
  saw.
- Every AF_XDP receiver runs behind afxdp's built-in XDP program (the harness attaches it for the
  C reference, which inserts its socket into that program's XSKMAP; libxdp's own program loading
  is inhibited), so only the user-space side differs. The AF_PACKET receiver runs with the same
  program attached and no socket registered, so every frame is passed to the stack.
- The AF_PACKET receiver needs the kernel stack: each frame becomes an skb, goes through IPv4
  and UDP (port 9 has no listener; the ICMP errors are rate-limited) and is cloned to the packet
  socket, all in softirq on the load CPU, so there the offered load itself is lower.
- CPU ns/packet is the measured process's user + system time (getrusage) from its first packet
  (receivers) or send (senders) to its end, divided by its own packet count; *of it user /
  kernel* splits it into user and system time (getrusage's split, which the kernel apportions by
  tick samples: single runs scatter by several ns/packet here, read the medians). Receivers wait in
  poll when their ring is empty, so a receiver that keeps up shows its real cost per packet;
  one that is saturated shows about 1e9 / its rate.
- Drops: the socket's XDP_STATISTICS counters over its lifetime (rx_ring_full: the receiver
  fell behind; rx_fill_ring_empty_descs: no free frame to receive into; rx_dropped counts the
  latter too), for AF_PACKET PACKET_STATISTICS tp_drops (as rx_dropped); and the veth's
  `tx_queue_N_xdp_xmit_errors` (`ethtool -S`, both ends): frames the load pushed that the
  receiving end's ring had no room for, seen by no program and no socket.
- Implementations: **c** is benches/c/xsk_ref.c (libxdp's xsk API, xdpsock-style loops);
  **c-tracked** is the same rxdrop loop doing afxdp's per-frame ownership bookkeeping in plain C
  (`xsk_ref rxdrop --track`: a state byte per frame checked and changed on every move, a batch
  array, a free stack the fill ring is refilled from), which prices that bookkeeping;
  **rust** is the core crate alone (rust/core/examples/rxdrop.rs, l2fwd.rs, txonly.rs);
  **python-*** are benches/workers.py on the afxdp Python API (batch calls, or per-frame
  Python), and Python's `socket.AF_PACKET`.
"""


def with_section(doc: str, title: str, body: str) -> str:
    """`doc` with the section `title` set to `body`: replaced where an earlier run wrote it,
    else added at the end; the rest of `doc` is kept as it is."""
    begin, end = f"<!-- e2e.py --append: {title} -->", f"<!-- end of {title} -->"
    section = f"{begin}\n## {title}\n\n{body.strip()}\n{end}\n"
    if begin in doc and end in doc:
        head, rest = doc.split(begin, 1)
        return head + section + rest.split(end, 1)[1].lstrip("\n")
    return doc.rstrip("\n") + "\n\n" + section


def chart(med: dict[tuple[int, str, str], dict[str, float]], sizes: list[int], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not importable: no chart (pip install matplotlib for one)")
        return
    fig, axes = plt.subplots(len(sizes), 2, figsize=(13, 4.2 * len(sizes)), squeeze=False)
    for row, size in enumerate(sizes):
        keys = [k for k in med if k[0] == size]
        labels = [f"{wl} {impl}" for _, wl, impl in keys]
        colors = [
            {"rx": "tab:blue", "rx-paced": "tab:purple", "l2fwd": "tab:orange", "tx": "tab:green"}[
                k[1]
            ]
            for k in keys
        ]
        ypos = range(len(keys))
        for col, (metric, title) in enumerate(
            (
                ("delivered", "delivered Mpps (higher is better)"),
                ("cpu", "CPU ns per packet (lower is better)"),
            )
        ):
            ax = axes[row][col]
            values = [med[k][metric] / (1e6 if metric == "delivered" else 1) for k in keys]
            ax.barh(list(ypos), values, color=colors)
            ax.set_yticks(list(ypos), labels)
            ax.invert_yaxis()
            ax.set_title(f"{size}-byte frames: {title}")
            ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"chart written to {path}")


# --- main ----------------------------------------------------------------------------------------


def main() -> int:
    global BATCH
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=5.0, help="measured window of each run")
    p.add_argument("--sizes", default="64,1500", help="frame sizes in bytes, comma-separated")
    p.add_argument(
        "--workloads",
        default=",".join(WORKLOADS),
        help="subset of " + ",".join(WORKLOADS) + " ('': none, e.g. to run only "
        "--pingpong or --port-queues)",
    )
    p.add_argument(
        "--batch",
        type=int,
        default=BATCH,
        help="frames per batch, the same for every implementation",
    )
    p.add_argument(
        "--paced-mpps",
        default=None,
        help="rx-paced: the generator's rate in Mpps, one per size or one for all "
        "(default: 2 up to 512-byte frames, 1 above)",
    )
    p.add_argument(
        "--impls", default=None, help="only these implementations (comma-separated, e.g. c,rust)"
    )
    p.add_argument("--cpus", default="0,1", help="LOAD,WORK: the load CPU and the measured CPU")
    p.add_argument("--output", type=Path, default=ROOT / "docs/benchmarks.md")
    p.add_argument("--chart", type=Path, default=ROOT / "docs/benchmarks.png")
    p.add_argument("--no-c", action="store_true", help="skip the C reference")
    p.add_argument(
        "--pingpong",
        type=int,
        default=0,
        metavar="COUNT",
        help="also measure ping-pong round trips, COUNT per run (0: skip)",
    )
    p.add_argument(
        "--port-queues",
        default="",
        metavar="N,N,...",
        help="also measure rx-port: a Port on labs of N queues each (e.g. 1,2,4)",
    )
    p.add_argument(
        "--port-mpps",
        type=float,
        default=0.4,
        help="rx-port: the total offered load in Mpps, the same for every N (0.4)",
    )
    p.add_argument(
        "--append",
        metavar="TITLE",
        default=None,
        help="add the tables to --output as section TITLE instead of rewriting it",
    )
    args = p.parse_args()
    port_queues = [int(n) for n in args.port_queues.split(",") if n.strip()]
    if any(not 1 <= n <= 64 for n in port_queues) or args.port_mpps <= 0:
        p.error("--port-queues: 1 to 64 each; --port-mpps > 0")
    sizes = [int(s) for s in args.sizes.split(",")]
    BATCH = args.batch
    paced = (
        [float(m) * 1e6 for m in args.paced_mpps.split(",")]
        if args.paced_mpps
        else [2e6 if size <= 512 else 1e6 for size in sizes]
    )
    if len(paced) == 1:
        paced *= len(sizes)
    if len(paced) != len(sizes) or min(paced) <= 0:
        p.error("--paced-mpps: one rate per size, or one for all, each > 0")
    if not 1 <= BATCH <= 256:
        p.error("--batch: 1 to 256")
    workloads = [w for w in args.workloads.split(",") if w]
    load_cpu, work_cpu = (int(c) for c in args.cpus.split(","))
    if unknown := set(workloads) - set(WORKLOADS):
        p.error(f"unknown workloads: {', '.join(sorted(unknown))}")
    if not {load_cpu, work_cpu} <= os.sched_getaffinity(0) or load_cpu == work_cpu:
        p.error(f"--cpus {args.cpus}: two different CPUs of {sorted(os.sched_getaffinity(0))}")
    if any(not 60 <= s <= 1514 for s in sizes):
        p.error("--sizes: 60 to 1514 bytes")

    impls = args.impls.split(",") if args.impls else None
    jumbo_todo = (
        [c for c in jumbo_cases() if impls is None or c.impl in impls]
        if "jumbo" in workloads
        else []
    )
    have_c = build(
        args.no_c,
        rust_examples=any(
            c.impl.startswith("rust")
            and c.workload in workloads
            and (impls is None or c.impl in impls)
            for c in cases()
        ),
    )
    if not have_c and {"l2fwd", "tx"} & set(workloads):
        # The counting sink is part of the C reference program.
        print(
            "without the C build there is no counting sink: l2fwd and tx are skipped",
            file=sys.stderr,
        )
        workloads = [w for w in workloads if w.startswith("rx") or w == "jumbo"]
    todo = [
        c
        for c in cases()
        if c.workload in workloads
        and (have_c or not c.impl.startswith("c"))
        and (impls is None or c.impl in impls)
    ]
    base_impl = "c" if have_c else "rust"
    pp_impls = pingpong_impls(have_c)
    results: dict[tuple[int, str, str], list[dict[str, float]]] = {
        (size, c.workload, c.impl): [] for size in sizes for c in todo
    }
    failures: list[str] = []
    pingpongs: list[dict[str, dict[str, str]]] = []
    ports: dict[int, list[dict[str, float | str]]] = {n: [] for n in port_queues}
    jumbos: dict[tuple[str, int], list[dict[str, float]]] = {
        (c.impl, c.size): [] for c in jumbo_todo
    }
    load_before = os.getloadavg()

    for r in range(args.rounds):  # rx-port first: each N has a lab of its own
        for n in port_queues:
            try:
                res = run_port(n, sizes[0], args.seconds, args.port_mpps * 1e6, load_cpu, work_cpu)
            except (RuntimeError, OSError) as e:
                failures.append(f"round {r + 1} rx-port {n} queues: {e}")
                print(f"round {r + 1} rx-port {n} queues FAILED: {e}", flush=True)
                continue
            ports[n].append(res)
            print(
                f"round {r + 1} rx-port {n} queues: offered {float(res['offered']) / 1e6:.3f} "
                f"delivered {float(res['delivered']) / 1e6:.3f} Mpps, "
                f"{float(res['cpu']):.1f} ns CPU/packet, per queue received "
                f"{res['per_queue']} (sent {res['sent_per_queue']})",
                flush=True,
            )

    with Lab(mtu=JUMBO_MTU) if jumbo_todo else contextlib.nullcontext() as jlab:
        for r in range(args.rounds if jlab is not None else 0):
            assert jlab is not None
            for jc in jumbo_todo:  # interleaved, so drift hits every case alike
                try:
                    jres = run_jumbo(jlab, jc, args.seconds, load_cpu, work_cpu)
                except (RuntimeError, OSError) as e:
                    failures.append(f"round {r + 1} jumbo {jc.impl} {jc.size} B: {e}")
                    print(f"round {r + 1} jumbo {jc.impl} {jc.size} B FAILED: {e}", flush=True)
                    continue
                jres["round"] = r + 1
                jumbos[(jc.impl, jc.size)].append(jres)
                print(
                    f"round {r + 1} {jc.size:5} B jumbo    {jc.impl:16} "
                    f"offered {jres['offered'] / 1e6:6.3f} Mpps {jres['offered_gbps']:6.2f} "
                    f"Gbit/s delivered {jres['delivered'] / 1e6:6.3f} Mpps "
                    f"{jres['delivered_gbps']:6.2f} Gbit/s  {jres['cpu']:8.1f} ns CPU/packet  "
                    f"{jres['frames_per_packet']:.2f} frames/packet  drops: ring_full "
                    f"{jres['ring_full']:,.0f} fill_empty {jres['fill_empty']:,.0f} veth "
                    f"{jres['veth_drops']:,.0f}",
                    flush=True,
                )

    with contextlib.ExitStack() as stack:
        if any(c.impl.endswith("-huge") for c in todo):
            stack.enter_context(reserved_huge_pages(HUGE_PAGES_PER_RECEIVER))
        lab = stack.enter_context(Lab()) if todo or args.pingpong else None
        for r in range(args.rounds if lab is not None else 0):
            assert lab is not None
            if args.pingpong:
                pingpongs.append(run_pingpong(lab, pp_impls, args.pingpong, load_cpu, work_cpu))
                for name, res in pingpongs[-1].items():
                    print(
                        f"round {r + 1} pingpong {name:16} p50 {res['p50_us']} us "
                        f"p99 {res['p99_us']} us  client CPU {res['cpu_us_per_ping']} us/ping",
                        flush=True,
                    )
            for size, rate in zip(sizes, paced, strict=True):
                frame = packet.ipv4_udp(
                    lab.mac_a, lab.mac_b, lab.ip_a, lab.ip_b, 40000, 9, bytes(max(0, size - 42))
                )
                for case in todo:  # interleaved, so drift hits every case alike
                    try:
                        res = run_case(
                            lab,
                            case,
                            frame,
                            args.seconds,
                            load_cpu,
                            work_cpu,
                            rate if case.workload == "rx-paced" else None,
                        )
                    except (RuntimeError, OSError) as e:
                        failures.append(f"round {r + 1} {size} B {case.workload} {case.impl}: {e}")
                        print(
                            f"round {r + 1} {size:5} B {case.workload:8} {case.impl:16} "
                            f"FAILED: {e}",
                            flush=True,
                        )
                        continue
                    results[(size, case.workload, case.impl)].append(res)
                    print(
                        f"round {r + 1} {size:5} B {case.workload:8} {case.impl:16} "
                        f"offered {res['offered'] / 1e6:6.3f} own {res['own'] / 1e6:6.3f} "
                        f"delivered {res['delivered'] / 1e6:6.3f} Mpps  "
                        f"{res['cpu']:8.1f} ns CPU/packet  "
                        f"drops: ring_full {res['ring_full']:,.0f} "
                        f"fill_empty {res['fill_empty']:,.0f} veth {res['veth_drops']:,.0f}",
                        flush=True,
                    )

    load_after = os.getloadavg()
    text, med = table(results, sizes, base_impl) if todo else ("", {})
    info = machine()
    subset = ""
    if len(workloads) < len(WORKLOADS):
        subset += f" --workloads {','.join(workloads)}"
    if args.impls:
        subset += f" --impls {args.impls}"
    header = (
        f"# Benchmarks: afxdp side by side with libxdp (C), the Rust core and AF_PACKET\n\n"
        f"Written by `python3 benches/e2e.py --rounds {args.rounds} "
        f"--seconds {args.seconds:g} --sizes {args.sizes} --batch {BATCH} "
        f"--paced-mpps {','.join(f'{r / 1e6:g}' for r in paced)}{subset}`. "
        f"Medians over {args.rounds} rounds of {args.seconds:g} s; ratios against "
        f"**{base_impl}**.\n\n"
        f"Machine: Linux {info['kernel']}, {info['cpu']}, {info['cores']} cores; "
        f"{info['date']}; afxdp {info['afxdp']} (commit {info['commit']}); "
        f"load CPU {load_cpu}, work CPU {work_cpu}.\n"
    )
    if any(jumbos.values()):
        text += "\n\n" + jumbo_table(jumbos, med.get((JUMBO_BASE_SIZE, "rx", JUMBO_BASE[0])))
    if port_queues:
        text += "\n\n" + port_table(ports, sizes[0], args.port_mpps * 1e6)
    if pingpongs:
        text += "\n\n" + pingpong_table(pingpongs, pp_impls, args.pingpong)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    if args.append:
        header = (
            f"Written by `python3 benches/e2e.py {shlex.join(sys.argv[1:])}`. Medians over "
            f"{args.rounds} rounds of {args.seconds:g} s.\n\n"
            f"Machine: Linux {info['kernel']}, {info['cpu']}, {info['cores']} cores; "
            f"{info['date']}; afxdp {info['afxdp']} (commit {info['commit']}); "
            f"load CPU {load_cpu}, work CPU {work_cpu}; load average (1 min) "
            f"{load_before[0]:.2f} before, {load_after[0]:.2f} after.\n"
        )
        body = header + text
        if failures:
            body += "\n\nFailed runs:\n\n" + "\n".join(f"- {f}" for f in failures) + "\n"
        old_doc = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        doc = with_section(old_doc, args.append, body)
    else:
        doc = header + text + "\n\n" + METHOD
        if failures:
            doc += "\n## Failed runs\n\n" + "\n".join(f"- {f}" for f in failures) + "\n"
    print("\n" + header + text)
    args.output.write_text(doc, encoding="utf-8")
    print(f"\ntable written to {args.output}")
    if med and not args.append:  # the chart belongs to the whole-file run
        chart(med, sizes, args.chart)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
