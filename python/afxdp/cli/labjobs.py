"""``afxdp lab``: the main job in a private veth lab, and ``--run SCRIPT`` under generated traffic.

Three jobs, each between the lab's two namespaces: the kernel generator into a Python receiver
(gen-rx), the Go library's DNS-query flood (dns-flood), and a rebroadcast round trip. With
``--queues N`` the veth ends have N queues, the receivers are Ports on all of them and the
senders spread their frames over all of them; the rate lines then show each queue's rate.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import afxdp
from afxdp import netdev, packet
from afxdp.cli.meter import Meter, Receiver, emit, say
from afxdp.cli.options import LAB_JOB_NAMES, UsageError
from afxdp.cli.workloads import BROADCAST

if TYPE_CHECKING:  # afxdp.lab is imported when a lab is made, not by every command
    from afxdp.lab import Lab

#: How the receivers' programs attach (``--mode``).
AttachMode = Literal["auto", "native", "generic"]

#: The examples shipped inside the package (the source tree's ``examples/`` links here), so that
#: ``afxdp lab --run examples/NAME.py`` works wherever afxdp was installed from.
EXAMPLES_DIR = Path(afxdp.__file__).resolve().parent / "examples"


def find_script(script: str) -> str:
    """The script ``--run`` names: `script` itself when that file exists, else the shipped
    example it names (``examples/NAME.py``, ``NAME.py`` or ``NAME``). Raises UsageError when
    there is neither, listing the shipped examples."""
    if os.path.isfile(script):
        return script
    head, name = os.path.split(script)
    if head in ("", "examples"):
        shipped = EXAMPLES_DIR / (name if name.endswith(".py") else f"{name}.py")
        if shipped.is_file():
            return str(shipped)
    known = ", ".join(sorted(p.name for p in EXAMPLES_DIR.glob("*.py")))
    raise UsageError(f"--run: no such script: {script!r} (the shipped examples: {known})")


def lab(args: argparse.Namespace) -> dict[str, Any]:
    from afxdp.lab import Lab

    if args.run:
        args.run[0] = find_script(args.run[0])
    with Lab(queues=args.queues) as the_lab:
        say(
            args,
            the_lab.summary(),
            namespaces={side: the_lab.netns(side) for side in ("a", "b")},
            interfaces={side: the_lab.ifname(side) for side in ("a", "b")},
        )
        if args.run:
            return _lab_run(the_lab, args)
        jobs = list(LAB_JOB_NAMES) if args.job == "all" else [args.job]
        share = args.duration / len(jobs)
        results = {}
        for job in jobs:
            results[job] = LAB_JOBS[job](the_lab, args, share)
    if args.json:
        emit("summary", "lab", jobs=results)
    else:
        print("lab: removed the namespaces, the veth pair and every XDP program", flush=True)
    return results


def _meter(args: argparse.Namespace, sockets: dict[str, Receiver], job: str) -> Meter:
    """The job's Meter; with a Port among `sockets`, per-queue rates of its queues."""
    queues = next((s.queues for s in sockets.values() if isinstance(s, afxdp.Port)), None)
    return Meter(sockets, label=job, json=args.json, command="lab", queues=queues)


def _lab_frame(the_lab: Lab, size: int, port: int = 9000) -> bytes:
    return packet.ipv4_udp(
        the_lab.mac_a,
        the_lab.mac_b,
        the_lab.ip_a,
        the_lab.ip_b,
        port,
        port,
        bytes(max(0, size - 42)),
    )


def _lab_receiver(
    the_lab: Lab, mode: AttachMode
) -> tuple[afxdp.Program, afxdp.Socket | afxdp.Port]:
    """The built-in program and a receive-only socket on the lab's end b (a Port on every
    queue when the lab has several)."""
    with the_lab.enter("b"):
        prog = afxdp.Program.attach(the_lab.if_b, mode=mode)
        if the_lab.queues > 1:
            return prog, afxdp.Port(the_lab.if_b, program=prog, tx_size=0)
        return prog, afxdp.Socket(the_lab.if_b, 0, program=prog, tx_size=0)


def _rx_waiting(rx: afxdp.Socket | afxdp.Port) -> int:
    """Frames waiting on the rx ring(s)."""
    if isinstance(rx, afxdp.Port):
        return sum(s.rx_available for s in rx.sockets if not s.closed)
    return rx.rx_available


def _lab_senders(the_lab: Lab, umem: afxdp.Umem) -> list[afxdp.Socket]:
    """Transmit-only sockets on end a over `umem`, one per queue: in native mode a frame sent
    on queue q arrives on queue q of end b, so sending on each in turn spreads the load."""
    with the_lab.enter("a"):
        return [afxdp.Socket(the_lab.if_a, q, umem=umem, rx_size=0) for q in range(the_lab.queues)]


def _lab_gen_rx(the_lab: Lab, args: argparse.Namespace, duration: float) -> dict[str, Any]:
    """The kernel generator (namespace a) -> a Python batch receive loop (namespace b)."""
    say(
        args,
        f"\n== gen-rx: afxdp.generate() on {the_lab.if_a} -> Python batch rxdrop on {the_lab.if_b}",
        kind=None,
    )
    frame = _lab_frame(the_lab, args.size)
    prog, rx = _lab_receiver(the_lab, args.mode)
    if args.mode == "generic":
        # The generator's frames reach a veth's peer only through a native program or GRO.
        the_lab.set_gro("b")
    # veth puts a frame redirected by XDP on the rx queue of the CPU that sent it: with several
    # queues, one generator per CPU (pinned) spreads the load over min(queues, CPUs) queues.
    cpus = sorted(os.sched_getaffinity(0))
    generators = cpus[: the_lab.queues] if the_lab.queues > 1 else [None]
    pushed = [0] * len(generators)
    failure: list[BaseException] = []

    def generator(i: int, cpu: int | None) -> None:
        # One run (one program load, one pacing schedule); its progress, every ~50 ms, is what
        # the rate lines show as sent.
        try:
            if cpu is not None:
                os.sched_setaffinity(0, {cpu})  # this thread only
            with the_lab.enter("a"):
                pushed[i] = afxdp.generate(
                    the_lab.if_a,
                    frame,
                    duration=duration,
                    rate=args.rate,
                    progress=lambda sent, _seconds: pushed.__setitem__(i, sent),
                )
        except BaseException as e:  # reported by the main thread
            failure.append(e)

    with prog, rx:
        meter = _meter(args, {"rx": rx}, "gen-rx")
        threads = [
            threading.Thread(target=generator, args=(i, cpu), name="afxdp-gen", daemon=True)
            for i, cpu in enumerate(generators)
        ]
        for thread in threads:
            thread.start()
        while any(t.is_alive() for t in threads) or _rx_waiting(rx):
            with rx.recv(256, timeout=0.05) as got:
                meter.received(got)
            meter.tx = sum(pushed)
            meter.tx_bytes = meter.tx * len(frame)
            meter.tick()
        for thread in threads:
            thread.join()
        if failure:
            raise failure[0]
        meter.stop()  # the rates are over the sending time, not the drain below
        # What is still in flight arrives within a moment.
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            with rx.recv(256, timeout=0.05) as got:
                meter.received(got)
        meter.tx = sum(pushed)
        meter.tx_bytes = meter.tx * len(frame)
        return meter.summary("generator -> Python receiver")


def _lab_dns_flood(the_lab: Lab, args: argparse.Namespace, duration: float) -> dict[str, Any]:
    """The Go library's sender (a DNS query in every UMEM frame) -> a Python receiver."""
    say(
        args,
        f"\n== dns-flood: Python AF_XDP TX on {the_lab.if_a} -> "
        f"Python batch rxdrop on {the_lab.if_b}",
        kind=None,
    )
    query = packet.dns_query_frame(the_lab.mac_a, the_lab.mac_b, the_lab.ip_a, the_lab.ip_b)
    prog, rx = _lab_receiver(the_lab, args.mode)
    senders = _lab_senders(the_lab, afxdp.Umem(4096, 2048))
    with prog, rx, contextlib.ExitStack() as stack:
        for tx in senders:
            stack.enter_context(tx)
        with senders[0].alloc(senders[0].umem.frame_count) as everything:
            everything.write_all(query)
        sockets: dict[str, Receiver] = {"rx": rx}
        sockets.update({f"tx{q}": tx for q, tx in enumerate(senders)})
        meter = _meter(args, sockets, "dns-flood")
        turn = 0
        while time.monotonic() - meter.start < duration:
            tx = senders[turn % len(senders)]
            turn += 1
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
            for tx in senders:
                tx.complete()
            with rx.recv(4 * args.batch, timeout=0.05) as got:
                meter.received(got)
        return meter.summary("DNS-query flood -> Python receiver")


def _lab_rebroadcast(the_lab: Lab, args: argparse.Namespace, duration: float) -> dict[str, Any]:
    """a floods; b rewrites each frame's destination MAC to broadcast in place and sends it back;
    a counts the broadcasts that come back."""
    say(
        args,
        f"\n== rebroadcast: {the_lab.if_a} floods, {the_lab.if_b} rebroadcasts in place, "
        f"{the_lab.if_a} counts what comes back",
        kind=None,
    )
    frame = _lab_frame(the_lab, args.size)
    n = the_lab.queues
    b: afxdp.Socket | afxdp.Port
    a: afxdp.Socket | afxdp.Port
    with the_lab.enter("b"):
        prog_b = afxdp.Program.attach(the_lab.if_b, mode=args.mode)
        b = (
            afxdp.Port(the_lab.if_b, program=prog_b)
            if n > 1
            else afxdp.Socket(the_lab.if_b, 0, program=prog_b)
        )
    with the_lab.enter("a"):
        prog_a = afxdp.Program.attach(
            the_lab.if_a, mode=args.mode, rules=[afxdp.Rule(dst_port=9000)]
        )
        umem_a = afxdp.Umem(4096 * n, 2048)
        a = (
            afxdp.Port(the_lab.if_a, program=prog_a, umem=umem_a)
            if n > 1
            else afxdp.Socket(the_lab.if_a, 0, program=prog_a, umem=umem_a)
        )
    senders = a.sockets if isinstance(a, afxdp.Port) else [a]
    with prog_a, prog_b, a, b:
        meter = _meter(args, {"a": a, "b": b}, "rebroadcast")
        in_flight_limit = 1024 * n  # keep the loop bounded: never more than this many unanswered
        turn = 0
        while time.monotonic() - meter.start < duration:
            if meter.tx - meter.rx < in_flight_limit:
                tx = senders[turn % n]
                turn += 1
                with tx.alloc(args.batch) as out:
                    if len(out):
                        out.write_all(frame)
                        meter.sent(tx.send(out), len(frame))
            a.complete()
            with b.recv(4 * args.batch) as got:
                if len(got):
                    got.write_at(0, BROADCAST)
                    b.send(got)
            b.complete()
            with a.recv(4 * args.batch) as returned:
                back = [len(f) for f in returned if f[0:6] == BROADCAST]
                meter.rx += len(back)
                meter.rx_bytes += sum(back)
                if returned.queue in meter.per_queue:
                    meter.per_queue[returned.queue] += len(back)
            meter.tick()
        return meter.summary("rebroadcast round trips (rx = broadcasts back at a)")


LAB_JOBS: dict[str, Callable[[Lab, argparse.Namespace, float], dict[str, Any]]] = {
    "gen-rx": _lab_gen_rx,
    "dns-flood": _lab_dns_flood,
    "rebroadcast": _lab_rebroadcast,
}
assert tuple(LAB_JOBS) == LAB_JOB_NAMES, "the parser's --job choices and the jobs must agree"


def _lab_run(the_lab: Lab, args: argparse.Namespace) -> dict[str, Any]:
    """Runs a script in namespace b with the lab's interface as first argument, while the
    generator offers UDP traffic from namespace a."""
    script, *rest = args.run
    argv = [sys.executable, script, the_lab.if_b, *rest]
    say(
        args,
        f"running {' '.join(argv[1:])} in {the_lab.netns('b')} for {args.duration:g} s, "
        f"{args.rate or 10_000:,} pps of UDP from {the_lab.if_a}",
        kind=None,
    )
    # With --json the script's own output goes to stderr: stdout stays JSON only.
    child = the_lab.popen("b", argv, stdout=sys.stderr if args.json else None)
    try:
        _wait_for_program(the_lab, child, timeout=10.0)
        frame = _lab_frame(the_lab, args.size)
        with the_lab.enter("a"):
            pushed = afxdp.generate(
                the_lab.if_a, frame, duration=args.duration, rate=args.rate or 10_000
            )
        try:
            code = child.wait(timeout=10.0)
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGINT)
            code = child.wait(timeout=5.0)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    if args.json:
        emit("summary", "lab", pushed=pushed, returncode=code, script=script)
    else:
        print(
            f"summary: lab --run: offered {pushed:,} packets; "
            f"{os.path.basename(script)} exited with {code}",
            flush=True,
        )
    if code != 0:
        raise RuntimeError(f"{script} exited with status {code}")
    return {"pushed": pushed, "returncode": code}


def _wait_for_program(the_lab: Lab, child: subprocess.Popen[Any], timeout: float) -> None:
    """Waits until an XDP program is attached to the lab's interface b (frames the generator
    redirects into a veth are dropped until its peer has one), the child exits, or `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and child.poll() is None:
        with the_lab.enter("b"):
            if netdev.attached_programs(the_lab.if_b):
                return
        time.sleep(0.05)
