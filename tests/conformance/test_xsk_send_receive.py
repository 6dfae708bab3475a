"""Conformance, send/receive group: SEND_RECEIVE and its frame-size, single-packet, unaligned,
headroom, teardown, bidirectional and tx-consumer variants (kernel: test_xsk.h)."""

from __future__ import annotations

from typing import Any

from cases import Mode

from helpers import drain, numbered_run

# xskxceiver streams DEFAULT_PKT_CNT (4096) packets; this many keeps the suite quick on a
# shared machine while still wrapping every ring several times.
PACKETS = 2048


def _stream(pair: Any, count: int, size: int = 64) -> None:
    """Send ``count`` numbered frames from end a and check they arrive complete, in order and
    intact at end b."""
    sent = pair.tx.send_packets(numbered_run(pair.lab, 0, count, size))
    assert sent == count
    assert drain(pair.rx, count) == list(range(count))


def test_SEND_RECEIVE(xsk_pair: Any, mode: Mode) -> None:
    _stream(xsk_pair(), PACKETS)


def test_SEND_RECEIVE_SINGLE_PKT(xsk_pair: Any, mode: Mode) -> None:
    _stream(xsk_pair(), 1)
