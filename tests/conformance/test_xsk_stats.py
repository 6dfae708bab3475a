"""Conformance, statistics group: the kernel's XDP_STATISTICS counters, each provoked on purpose
and read back exactly (kernel: test_xsk.c ``testapp_stats_*`` and ``validate_*``).

afxdp reads them in ``Socket.stats()``. STAT_TX_INVALID needs descriptors afxdp refuses to
build, so it shows afxdp's refusal and then, through :mod:`rawxsk`, the kernel's own count for
the same descriptors. Every wait polls with a deadline; ``poll()`` on the receiver also drives
the queue in busy-poll mode (as the kernel's ``kick_rx`` does).
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable
from typing import Any

import pytest
from cases import Mode
from rawxsk import XDP_PACKET_HEADROOM, RawXsk
from test_xsk_invalid_desc import INVALID_LEN, MIN, Row, raw_to_afxdp, run_rounds

from helpers import drain, numbered, numbered_run

afxdp = pytest.importorskip("afxdp")

PACKETS = 256


def wait_for(sock: Any, done: Callable[[Any], bool], timeout: float = 3.0) -> Any:
    """Polls ``sock`` (without taking anything from its rx ring) until ``done(stats)``;
    returns the last stats."""
    deadline = time.monotonic() + timeout
    stats = sock.stats()
    while not done(stats) and time.monotonic() < deadline:
        sock.poll(0.01)
        stats = sock.stats()
    return stats


def test_STAT_RX_DROPPED(xsk_pair: Any, lab: Any, mode: Mode) -> None:
    # The kernel's case sets the headroom to frame - 256 - 3 * 64 (3648), so that 64-byte
    # packets fit and 256-byte ones do not. This 6.18.y kernel refuses that headroom (the end
    # of a frame must also hold an skb_shared_info): afxdp says so before registering, and a
    # raw registration gets the kernel's EINVAL. The largest headroom it takes leaves 448.
    with pytest.raises(ValueError, match="3648"):
        afxdp.Umem(64, 4096, 4096 - XDP_PACKET_HEADROOM - 3 * MIN)
    with lab.enter("a"), pytest.raises(OSError) as refused:
        RawXsk(lab.if_a, headroom=4096 - XDP_PACKET_HEADROOM - 3 * MIN)
    assert refused.value.errno == errno.EINVAL
    headroom = 3392
    pair = xsk_pair(headroom=headroom)
    capacity = pair.rx.umem.rx_capacity
    assert capacity == 4096 - XDP_PACKET_HEADROOM - headroom
    big = capacity + 1
    # Every other packet is one byte too long for the receiving frame, as in the kernel's case.
    packets = [numbered(pair.lab, seq, MIN if seq % 2 == 0 else big) for seq in range(PACKETS)]
    assert pair.tx.send_packets(packets) == PACKETS
    assert drain(pair.rx, PACKETS // 2) == list(range(0, PACKETS, 2))
    stats = wait_for(pair.rx, lambda s: s.rx_dropped >= PACKETS // 2)
    assert stats.rx_dropped == PACKETS // 2
    assert stats.rx_ring_full == 0 and stats.rx_fill_ring_empty_descs == 0
    assert drain(pair.rx, timeout=0.1) == [], "a packet too long for the frame arrived"


def test_STAT_TX_INVALID(lab: Any, mode: Mode) -> None:
    with raw_to_afxdp(lab, mode) as (raw, rx):
        # afxdp: a descriptor longer than its frame cannot be built, nor sent.
        with rx.alloc(1) as batch, pytest.raises(ValueError, match=str(INVALID_LEN)):
            batch[0].length = INVALID_LEN
        with pytest.raises(ValueError, match=str(INVALID_LEN)):
            rx.send_packets([numbered(lab, 0, 64), b"\x05" * INVALID_LEN])
        assert rx.in_flight == 0 and rx.stats().tx_invalid_descs == 0
        # The kernel: every other descriptor is 9001 bytes long (XSK_UMEM__INVALID_FRAME_SIZE);
        # tx_invalid_descs counts exactly those, the others arrive in order.
        rows = [Row(0, MIN, True), Row(0, INVALID_LEN, False)] * 10
        run_rounds(raw, rx, lab, rows, absolute_end=False, rounds=PACKETS // len(rows))
        assert raw.stats().tx_invalid_descs == PACKETS // len(rows) * 10


def test_STAT_RX_FULL(xsk_pair: Any, mode: Mode) -> None:
    # A small rx ring that nobody reads: what does not fit is counted in rx_ring_full, one per
    # packet; the frames that did fit are the first ones, intact.
    ring = 64
    pair = xsk_pair(rx_size=ring)
    assert pair.tx.send_packets(numbered_run(pair.lab, 0, PACKETS)) == PACKETS
    stats = wait_for(pair.rx, lambda s: s.rx_ring_full >= PACKETS - ring)
    assert pair.rx.rx_available == ring
    assert stats.rx_ring_full == PACKETS - ring
    assert stats.rx_dropped == 0 and stats.rx_fill_ring_empty_descs == 0
    assert drain(pair.rx, ring) == list(range(ring))


def test_STAT_FILL_EMPTY(xsk_pair: Any, mode: Mode) -> None:
    # autofill=False and no fill(): the fill ring stays empty, so every packet is dropped and
    # counted in rx_fill_ring_empty_descs (and, in copy mode, in rx_dropped).
    pair = xsk_pair(autofill=False)
    assert pair.rx.stats().filled == 0
    assert pair.tx.send_packets(numbered_run(pair.lab, 0, PACKETS)) == PACKETS
    stats = wait_for(pair.rx, lambda s: s.rx_fill_ring_empty_descs >= PACKETS)
    assert stats.rx_fill_ring_empty_descs == PACKETS
    assert stats.rx_dropped == PACKETS and stats.rx_ring_full == 0
    assert pair.rx.rx_available == 0
    # Filling by hand ends it: the next packets arrive and the counter stays put.
    assert pair.rx.fill() > 0
    assert pair.tx.send_packets(numbered_run(pair.lab, PACKETS, 16)) == 16
    assert drain(pair.rx, 16) == list(range(PACKETS, PACKETS + 16))
    assert pair.rx.stats().rx_fill_ring_empty_descs == PACKETS
