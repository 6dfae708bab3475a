#!/usr/bin/env python3
"""Where each receiver's CPU per packet goes: the kernel, afxdp's core, the bindings, CPython.

    sudo python3 benches/cpu_split.py [--impls c,rust,rust-lend,python-batch,python-iter]
        [--sizes 64,1500] [--paced-mpps 2,1] [--workload rx-paced] [--rounds 3] [--seconds 4]
        [--frequency 4999] [--output FILE]

Each case runs twice per round (the cases of a round interleaved), in e2e.py's lab, load and
CPUs. The first run is plain: its CPU ns per packet and the kernel/user split are the worker's
own counts (getrusage), as in e2e.py's tables, and its *frames per wakeup* is packets over the
receiver's voluntary context switches (each a sleep in poll(2); read from /proc while it runs).
The second runs under ``perf record -e cpu-clock -p``, only to split the user time: a perf
event on a task makes each of its context switches dearer (on this VM a per-task event added
20-60 ns per packet to the kernel part at 2 Mpps), so the profile's kernel share is not used.
Its user-space samples are classed by where they fell:

* **core**: afxdp's Rust core (every symbol of the ``afxdp::`` crate, in the Rust example
  binary or compiled into the Python extension);
* **bindings**: the rest of the extension (``_native::``, ``pyo3::``, Rust's std and allocator);
* **interpreter**: CPython (``python3.x``, ``libpython``);
* **libc, loader**: libc (``poll``, mutexes, ``malloc``), the dynamic loader (``__tls_get_addr``:
  PyO3's thread-local GIL count) and the vDSO (``clock_gettime``);
* **app**: the program's own code and its other libraries (the C reference, libxdp, libbpf; the
  Rust example's main loop).

A class's share of the user-space samples times the plain run's user ns per packet is its ns
per packet; each cell is the median over the rounds (so a row's cells need not add up exactly).
Needs root and ``perf`` (Debian: linux-perf).
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import e2e  # benches/e2e.py
from afxdp import packet
from afxdp.lab import Lab

CLASSES = ("core", "bindings", "interpreter", "libc, loader", "app")
REPORT_LINE = re.compile(r"^\s*([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)$")


def classify(dso: str, kind: str, symbol: str) -> str:
    """The class of a sample in `dso` at `symbol` (`kind`: perf's k for kernel, . for user)."""
    if kind == "k" or dso.startswith("[kernel"):
        return "kernel"
    if "afxdp::" in symbol and "_native::" not in symbol:
        return "core"
    if dso.startswith("_native"):
        return "bindings"
    if dso.startswith(("python3", "libpython")):
        return "interpreter"
    if dso.startswith(("libc.", "libc-", "ld-linux", "[vdso]", "libm.", "libpthread")):
        return "libc, loader"
    return "app"


def split(data: Path) -> tuple[dict[str, float], list[tuple[float, str, str]]]:
    """Shares (0..1) of the user-space samples in `data` by class, and the user-space symbols
    by share of them, largest first (share, dso, symbol)."""
    out = subprocess.run(
        [
            "perf",
            "report",
            "-i",
            str(data),
            "--no-children",
            "--stdio",
            "-q",
            "-g",
            "none",
            "--percent-limit",
            "0",
            "--sort",
            "dso,sym",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    shares: dict[str, float] = dict.fromkeys(CLASSES, 0.0)
    user: list[tuple[float, str, str]] = []
    for line in out.splitlines():
        m = REPORT_LINE.match(line)
        if not m:
            continue
        share, dso, kind, symbol = float(m[1]) / 100, m[2], m[3], m[4].strip()
        cls = classify(dso, kind, symbol)
        if cls != "kernel":
            shares[cls] += share
            user.append((share, dso, symbol))
    total = sum(shares.values())
    if not total:
        raise RuntimeError(f"no user-space samples in {data}")
    return (
        {c: shares[c] / total for c in CLASSES},
        sorted(((share / total, dso, sym) for share, dso, sym in user), reverse=True),
    )


class Switches:
    """`observe(pid)` for e2e.run_case: the receiver's voluntary context switches, read from
    /proc every 20 ms until it exits (the last read falls in its idle tail after the load)."""

    def __init__(self) -> None:
        self.count = 0

    @staticmethod
    def read(pid: int) -> int | None:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return None
        m = re.search(r"^voluntary_ctxt_switches:\s+(\d+)", status, re.M)
        return int(m[1]) if m else None

    @contextlib.contextmanager
    def __call__(self, pid: int) -> Iterator[None]:
        self.count = 0
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                n = self.read(pid)
                if n is None:
                    return
                self.count = n
                stop.wait(0.02)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            yield
        finally:
            stop.set()
            watcher.join(5)


class Profile:
    """`observe(pid)` for e2e.run_case: perf record on the receiver until it exits."""

    def __init__(self, tmp: Path, frequency: int) -> None:
        self.frequency = frequency
        self.data = tmp / "perf.data"

    @contextlib.contextmanager
    def __call__(self, pid: int) -> Iterator[None]:
        record = subprocess.Popen(
            [
                "perf",
                "record",
                "-q",
                "-e",
                "cpu-clock",
                "-F",
                str(self.frequency),
                "-p",
                str(pid),
                "-o",
                str(self.data),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            yield
        finally:
            try:  # it ends by itself when the receiver exits; bounded all the same
                record.wait(timeout=30)
            except subprocess.TimeoutExpired:
                record.kill()
                record.wait()


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--impls", default="c,rust,rust-lend,python-batch,python-iter")
    p.add_argument("--sizes", default="64,1500")
    p.add_argument("--paced-mpps", default="2,1", help="one rate per size, or one for all")
    p.add_argument("--workload", default="rx-paced", choices=("rx", "rx-paced"))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--frequency", type=int, default=4999, help="perf samples per second")
    p.add_argument("--cpus", default="0,1", help="LOAD,WORK as in e2e.py")
    p.add_argument("--top", type=int, default=12, help="user-space symbols to print per case")
    p.add_argument("--output", type=Path, default=None, help="also write the tables here")
    args = p.parse_args()
    if shutil.which("perf") is None:
        p.error("perf is not installed (Debian: apt-get install linux-perf)")
    sizes = [int(s) for s in args.sizes.split(",")]
    rates = [float(m) * 1e6 for m in args.paced_mpps.split(",")]
    rates = rates * len(sizes) if len(rates) == 1 else rates
    if len(rates) != len(sizes):
        p.error("--paced-mpps: one rate per size, or one for all")
    impls = args.impls.split(",")
    load_cpu, work_cpu = (int(c) for c in args.cpus.split(","))
    todo = [c for c in e2e.cases() if c.workload == args.workload and c.impl in impls]
    if missing := set(impls) - {c.impl for c in todo}:
        p.error(f"no {args.workload} case for: {', '.join(sorted(missing))}")
    e2e.build(
        skip_c=not any(c.impl.startswith("c") for c in todo),
        rust_examples=any(c.impl.startswith("rust") for c in todo),
    )

    runs: dict[tuple[int, str], list[dict[str, float]]] = {
        (s, c.impl): [] for s in sizes for c in todo
    }
    tops: dict[tuple[int, str], list[tuple[float, str, str]]] = {}
    with Lab() as lab, tempfile.TemporaryDirectory() as tmp:
        switches, profile = Switches(), Profile(Path(tmp), args.frequency)
        for r in range(args.rounds):
            for size, rate in zip(sizes, rates, strict=True):
                frame = packet.ipv4_udp(
                    lab.mac_a, lab.mac_b, lab.ip_a, lab.ip_b, 40000, 9, bytes(max(0, size - 42))
                )
                pace = rate if args.workload == "rx-paced" else None
                for case in todo:  # interleaved, as in e2e.py
                    try:
                        res = e2e.run_case(
                            lab,
                            case,
                            frame,
                            args.seconds,
                            load_cpu,
                            work_cpu,
                            pace,
                            observe=switches,
                        )
                        e2e.run_case(
                            lab,
                            case,
                            frame,
                            args.seconds,
                            load_cpu,
                            work_cpu,
                            pace,
                            observe=profile,
                        )
                        shares, user = split(profile.data)
                    except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
                        print(f"round {r + 1} {size} B {case.impl} FAILED: {e}", flush=True)
                        continue
                    row = {cls: shares[cls] * res["user"] for cls in CLASSES}
                    row |= {
                        "cpu": res["cpu"],
                        "user": res["user"],
                        "kernel": res["cpu"] - res["user"],
                        "per_wakeup": res["packets"] / max(1, switches.count),
                    }
                    runs[(size, case.impl)].append(row)
                    tops[(size, case.impl)] = user
                    print(
                        f"round {r + 1} {size:5} B {case.impl:14} {res['cpu']:7.1f} ns/packet: "
                        f"kernel {row['kernel']:.1f}, user {row['user']:.1f} ("
                        + ", ".join(f"{cls} {row[cls]:.1f}" for cls in CLASSES)
                        + f"); {row['per_wakeup']:.1f} frames per wakeup",
                        flush=True,
                    )

    lines = []
    cols = ("cpu", "kernel", "user", *CLASSES, "per_wakeup")
    for size, rate in zip(sizes, rates, strict=True):
        lines += [
            f"### {size}-byte frames, {args.workload}"
            + (f" at {rate / 1e6:g} Mpps" if args.workload == "rx-paced" else ""),
            "",
            "| implementation | CPU ns/packet | kernel | user | of it: "
            + " | ".join(CLASSES)
            + " | frames per wakeup |",
            "| --- |" + " ---: |" * len(cols),
        ]
        for case in todo:
            got = runs[(size, case.impl)]
            if got:
                lines.append(
                    f"| {case.impl} | "
                    + " | ".join(f"{median([g[k] for g in got]):.1f}" for k in cols)
                    + " |"
                )
        lines.append("")
    text = "\n".join(lines)
    print(f"\nMedians over {args.rounds} rounds of {args.seconds:g} s, ns per packet.\n")
    print(text)
    for (size, impl), user in tops.items():
        print(f"{size} B {impl}, last round, user-space symbols by share of user samples:")
        for share, dso, symbol in user[: args.top]:
            print(f"  {share * 100:5.2f}%  {dso:22} {symbol[:100]}")
    if args.output:
        args.output.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
