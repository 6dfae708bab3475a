"""Conformance, multi-buffer group: SEND_RECEIVE_9K_PACKETS and
SEND_RECEIVE_UNALIGNED_9K_PACKETS (kernel: test_xsk.h). Both ends are bound with XDP_USE_SG on
a veth pair with a 9000-byte MTU; afxdp sends every packet longer than a frame as a chain of
frames (``send_packets``), and the receiver puts the chains back together
(``FrameBatch.packets()``)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import pytest
from cases import Mode

afxdp = pytest.importorskip("afxdp")

from afxdp.testing import numbered_frame, parse_numbered  # noqa: E402

MTU = 9000  # the kernel's MAX_ETH_JUMBO_SIZE
JUMBO = 9000  # the kernel's packet length in these cases (Ethernet header included)
PACKETS = 256  # xskxceiver sends DEFAULT_PKT_CNT (4096); a quick suite sends fewer
XDP_PACKET_HEADROOM = 256
PAGE = os.sysconf("SC_PAGE_SIZE")


def _sizes(rx_capacity: int, tx_capacity: int) -> list[int]:
    """Packet lengths around every frame boundary of both ends, then the largest frame."""
    edges = [rx_capacity, tx_capacity, 2 * rx_capacity, 2 * tx_capacity]
    return [64, 1514, *(e + d for e in edges for d in (-1, 0, 1)), JUMBO, MTU + 14]


def _stream(
    pair: Any, payloads: list[bytes], on_packet: Callable[[Any], None], timeout: float = 10.0
) -> list[int | None]:
    """Sends ``payloads`` from end a (as chains) while receiving at end b; returns the
    sequence number of every packet received, in order (None for one that differs from its
    payload in any byte). Each received packet is shown to ``on_packet``; no batch may end in
    the middle of a packet."""
    sent = 0
    got: list[int | None] = []
    deadline = time.monotonic() + timeout
    while len(got) < len(payloads):
        assert time.monotonic() < deadline, f"stalled: {sent} sent, {len(got)} received"
        if sent < len(payloads):
            sent += pair.tx.send_packets(payloads[sent : sent + 32])
        pair.tx.complete()
        with pair.rx.recv(256, timeout=0.0 if sent < len(payloads) else 0.05) as batch:
            if len(batch):
                assert not batch[len(batch) - 1].more, "a batch ended in the middle of a packet"
            for packet in batch.packets():
                on_packet(packet)
                data = bytes(packet)
                seq = parse_numbered(data)
                got.append(seq if seq is not None and data == payloads[seq] else None)
    return got


def _check(pair: Any, payloads: list[bytes], frame_size: int) -> int:
    """Streams ``payloads`` and checks every chain; returns how many received frames straddle
    a page boundary."""
    rx_capacity = pair.rx.umem.rx_capacity
    tx_capacity = pair.tx.umem.tx_capacity
    assert rx_capacity == frame_size - XDP_PACKET_HEADROOM
    sent_before = pair.tx.stats().sent
    straddling = 0

    def on_packet(packet: Any) -> None:
        lengths = [len(frame) for frame in packet.frames]
        more = [frame.more for frame in packet.frames]
        count = -(-len(packet) // rx_capacity)  # frames the kernel needs for it
        assert len(lengths) == count, (len(packet), lengths)
        assert lengths[:-1] == [rx_capacity] * (count - 1)  # every frame but the last full
        assert more == [True] * (count - 1) + [False]
        nonlocal straddling
        for frame in packet.frames:
            assert frame.addr == frame.index * frame_size + XDP_PACKET_HEADROOM
            straddling += frame.addr // PAGE != (frame.addr + len(frame) - 1) // PAGE

    assert _stream(pair, payloads, on_packet) == list(range(len(payloads)))
    deadline = time.monotonic() + 5
    while pair.tx.in_flight:
        assert time.monotonic() < deadline, f"{pair.tx.in_flight} frames never completed"
        pair.tx.complete()
        time.sleep(0.001)
    tx, rx = pair.tx.stats(), pair.rx.stats()
    assert tx.tx_invalid_descs == rx.rx_dropped == rx.rx_invalid_descs == 0
    # Sent as chains: as many tx frames as the packets need.
    assert tx.sent - sent_before == sum(-(-len(p) // tx_capacity) for p in payloads)
    return straddling


def _pair(xsk_pair: Any, lab_factory: Any, **options: Any) -> Any:
    lab = lab_factory(mtu=MTU)
    pair = xsk_pair(lab=lab, multi_buffer=True, tx_options={"multi_buffer": True}, **options)
    assert pair.tx.multi_buffer and pair.rx.multi_buffer
    assert pair.tx.max_frags > 1
    return pair


def test_SEND_RECEIVE_9K_PACKETS(xsk_pair: Any, lab_factory: Any, mode: Mode) -> None:
    """9000-byte packets (3 frames of 4096 sent, 3 of 3840 received each), then packets of
    lengths around every frame boundary: all arrive in order, byte for byte, as chains whose
    frames are all full but the last."""
    pair = _pair(xsk_pair, lab_factory)
    lab = pair.lab
    payloads = [numbered_frame(i, JUMBO, lab.mac_a, lab.mac_b) for i in range(PACKETS)]
    _check(pair, payloads, 4096)
    sizes = _sizes(pair.rx.umem.rx_capacity, pair.tx.umem.tx_capacity) * 4
    mixed = [numbered_frame(i, size, lab.mac_a, lab.mac_b) for i, size in enumerate(sizes)]
    _check(pair, mixed, 4096)


def test_SEND_RECEIVE_UNALIGNED_9K_PACKETS(xsk_pair: Any, lab_factory: Any, mode: Mode) -> None:
    """The same in unaligned chunk mode (huge pages when free), with odd 3001-byte frames:
    the chains' frames sit end to end at odd addresses, straddling pages."""
    frame_size = 3001
    pair = _pair(xsk_pair, lab_factory, frame_size=frame_size, unaligned=True, hugepages=None)
    for umem in (pair.tx.umem, pair.rx.umem):
        assert umem.unaligned and umem.frame_size == frame_size
    lab = pair.lab
    payloads = [numbered_frame(i, JUMBO, lab.mac_a, lab.mac_b) for i in range(PACKETS)]
    assert _check(pair, payloads, frame_size) > PACKETS
    sizes = _sizes(pair.rx.umem.rx_capacity, pair.tx.umem.tx_capacity) * 4
    mixed = [numbered_frame(i, size, lab.mac_a, lab.mac_b) for i, size in enumerate(sizes)]
    _check(pair, mixed, frame_size)
