"""The per-second rate line and the summary every workload prints, for people or as JSON.

With ``--json`` every line on standard output is one JSON object (JSON Lines) whose ``"type"``
says what it is: ``"start"`` (the socket or generator is ready), ``"interval"`` (one per rate
line), ``"frame"`` (``afxdp dump``), ``"job_summary"`` (one per ``afxdp lab`` job) and a final
``"summary"``. Counts are raw integers; the field names are listed in README.md ("The afxdp
command", "--json") and stay stable. Notes meant for people go to standard error instead.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

import afxdp

#: What a Meter reads kernel counters from: a socket, or a Port (its queues' sum).
Receiver = afxdp.Socket | afxdp.Port


def emit(kind: str, command: str, /, **fields: Any) -> None:
    """Prints one JSON object ``{"type": kind, "command": command, **fields}`` to stdout."""
    # One write, newline included: an interrupt cannot separate a line from its end.
    sys.stdout.write(json.dumps({"type": kind, "command": command, **fields}) + "\n")
    sys.stdout.flush()


def say(
    args: Any, text: str, kind: str | None = "start", out: TextIO | None = None, **fields: Any
) -> None:
    """A line for people (on `out`, default stdout); with ``--json``, the object `kind` with
    `fields` on stdout instead (or, when `kind` is None, `text` on stderr, so stdout stays JSON
    only)."""
    if not getattr(args, "json", False):
        print(text, file=out or sys.stdout, flush=True)
    elif kind is None:
        print(text, file=sys.stderr, flush=True)
    else:
        emit(kind, args.command, **fields)


@dataclass
class Meter:
    """Counts packets and bytes and prints a rate line every `interval` seconds (a JSON object
    per interval and for the summary when `json` is set; `command` and `label` name them).
    With `queues` (a Port's), received packets are counted per queue too (``batch.queue``) and
    every line ends with each queue's rx rate."""

    sockets: Mapping[str, Receiver]
    interval: float = 1.0
    out: TextIO = field(default_factory=lambda: sys.stdout)
    label: str = ""
    json: bool = False
    command: str = ""
    rx: int = 0
    tx: int = 0
    rx_bytes: int = 0
    tx_bytes: int = 0
    start: float = field(default_factory=time.monotonic)
    queues: list[int] | None = None
    #: Set by :meth:`stop`: the summary's rates are over ``start`` to this.
    end: float | None = None

    def __post_init__(self) -> None:
        self._last = self.start
        self._last_counts = (0, 0, 0, 0)
        self.per_queue = dict.fromkeys(self.queues or [], 0)
        self._last_per_queue = dict(self.per_queue)
        if self.json:
            return
        prefix = f"{'job':<12} " if self.label else ""
        per_queue = "  rx pps per queue" if self.queues else ""
        print(
            f"{prefix}{'time':>6} {'rx pps':>12} {'tx pps':>12} "
            f"{'rx Mbit/s':>10} {'tx Mbit/s':>10} "
            f"{'rx_dropped':>10} {'ring_full':>9} {'fill_empty':>10} {'tx_invalid':>10}"
            f"{per_queue}",
            file=self.out,
            flush=True,
        )

    def _emit(self, kind: str, fields: dict[str, Any]) -> None:
        head: dict[str, Any] = {"type": kind, "command": self.command}
        if self.label:
            head["job"] = self.label
        print(json.dumps({**head, **fields}), file=self.out, flush=True)

    def kernel(self) -> tuple[int, int, int, int]:
        """rx_dropped, rx_ring_full, rx_fill_ring_empty_descs, tx_invalid_descs summed."""
        totals = [0, 0, 0, 0]
        for sock in self.sockets.values():
            if sock.closed:
                continue
            s = sock.stats()
            for i, v in enumerate(
                (s.rx_dropped, s.rx_ring_full, s.rx_fill_ring_empty_descs, s.tx_invalid_descs)
            ):
                totals[i] += v
        return totals[0], totals[1], totals[2], totals[3]

    def received(self, batch: afxdp.FrameBatch) -> int:
        """Counts a received batch; returns its length."""
        n = len(batch)
        self.rx += n
        self.rx_bytes += batch.nbytes
        if batch.queue in self.per_queue:
            self.per_queue[batch.queue] += n
        return n

    def sent(self, n: int, frame_len: int) -> None:
        """Counts `n` frames of `frame_len` bytes sent."""
        self.tx += n
        self.tx_bytes += n * frame_len

    def stop(self) -> None:
        """The load is over: the summary's time (and rates) end now, though packets still in
        flight may be counted after."""
        self.end = time.monotonic()

    def tick(self) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._line(now)

    def _line(self, now: float) -> None:
        dt = now - self._last
        rx, tx, rxb, txb = (self.rx, self.tx, self.rx_bytes, self.tx_bytes)
        lrx, ltx, lrxb, ltxb = self._last_counts
        k = self.kernel()
        self._last, self._last_counts = now, (rx, tx, rxb, txb)
        queue_pps = {q: (n - self._last_per_queue[q]) / dt for q, n in self.per_queue.items()}
        self._last_per_queue = dict(self.per_queue)
        if self.json:
            self._emit(
                "interval",
                {
                    "seconds": round(now - self.start, 3),
                    "interval": round(dt, 3),
                    "received": rx,
                    "sent": tx,
                    "rx_bytes": rxb,
                    "tx_bytes": txb,
                    "rx_pps": round((rx - lrx) / dt),
                    "tx_pps": round((tx - ltx) / dt),
                    **_kernel_fields(k),
                    **self._queue_fields("rx_pps_per_queue", queue_pps),
                },
            )
            return
        prefix = f"{self.label:<12} " if self.label else ""
        print(
            f"{prefix}{now - self.start:6.1f} {(rx - lrx) / dt:12,.0f} {(tx - ltx) / dt:12,.0f} "
            f"{(rxb - lrxb) * 8 / dt / 1e6:10,.1f} {(txb - ltxb) * 8 / dt / 1e6:10,.1f} "
            f"{k[0]:10} {k[1]:9} {k[2]:10} {k[3]:10}{_queue_text(queue_pps)}",
            file=self.out,
            flush=True,
        )

    def _queue_fields(self, name: str, values: dict[int, float]) -> dict[str, Any]:
        """``{name: {"0": value, ...}}`` with a Port, nothing without (JSON keys are strings)."""
        if not self.queues:
            return {}
        return {name: {str(q): round(v) for q, v in values.items()}}

    def summary(self, what: str) -> dict[str, Any]:
        elapsed = max((self.end or time.monotonic()) - self.start, 1e-9)
        k = self.kernel()
        totals = {
            "received": self.rx,
            "sent": self.tx,
            "seconds": round(elapsed, 3),
            **_kernel_fields(k),
        }
        if self.json:
            self._emit(
                "job_summary" if self.label else "summary",
                {
                    **totals,
                    "rx_bytes": self.rx_bytes,
                    "tx_bytes": self.tx_bytes,
                    "rx_pps": round(self.rx / elapsed),
                    "tx_pps": round(self.tx / elapsed),
                    **self._queue_fields("received_per_queue", dict(self.per_queue)),
                },
            )
            return totals
        print(
            f"summary{f' [{self.label}]' if self.label else ''}: {what}: received {self.rx:,} "
            f"({self.rx / elapsed:,.0f} pps, {self.rx_bytes * 8 / elapsed / 1e6:,.1f} Mbit/s), "
            f"sent {self.tx:,} ({self.tx / elapsed:,.0f} pps) in {elapsed:.1f} s; kernel: "
            f"rx_dropped={k[0]} rx_ring_full={k[1]} rx_fill_ring_empty_descs={k[2]} "
            f"tx_invalid_descs={k[3]}"
            + (f"; received per queue:{_queue_text(self.per_queue)}" if self.queues else ""),
            file=self.out,
            flush=True,
        )
        return totals


def _queue_text(values: dict[int, float] | dict[int, int]) -> str:
    """`` q0 1,234 q1 5,678`` (empty without queues)."""
    return "".join(f"  q{q} {v:,.0f}" for q, v in values.items())


def _kernel_fields(k: tuple[int, int, int, int]) -> dict[str, int]:
    return {
        "rx_dropped": k[0],
        "rx_ring_full": k[1],
        "rx_fill_ring_empty_descs": k[2],
        "tx_invalid_descs": k[3],
    }


def should_stop(start: float, duration: float, done: int, count: int | None) -> bool:
    """True once `duration` seconds have passed since `start` or `count` packets are done."""
    return time.monotonic() - start >= duration or (count is not None and done >= count)
