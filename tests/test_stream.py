"""Streams of numbered frames across a veth pair, AF_XDP socket to AF_XDP socket (privileged)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import pytest

from afxdp import packet

afxdp = pytest.importorskip("afxdp")

pytestmark = pytest.mark.privileged

COUNT = 20_000
AHEAD = 1024  # the sender never runs more than this many frames ahead of the receiver


@dataclass
class Pair:
    tx: afxdp.Socket
    rx: afxdp.Socket
    prog: afxdp.Program


@contextmanager
def socket_pair(lab, mode: str, frame_size: int = 4096, headroom: int = 0) -> Iterator[Pair]:
    """A sending socket on end a and a receiving one (with the program) on end b."""
    with ExitStack() as stack:
        with lab.enter("a"):
            tx = stack.enter_context(afxdp.Socket(
                lab.if_a, 0, umem=afxdp.Umem(2048, frame_size, headroom), rx_size=0))
        with lab.enter("b"):
            prog = stack.enter_context(afxdp.Program.attach(lab.if_b, mode=mode))
            rx = stack.enter_context(afxdp.Socket(
                lab.if_b, 0, umem=afxdp.Umem(4096, frame_size, headroom), program=prog, tx_size=0))
        yield Pair(tx, rx, prog)


def frames(lab, size: int, count: int) -> list[bytes]:
    return [packet.numbered_frame(seq, size, lab.mac_a, lab.mac_b) for seq in range(count)]


def stream(pair: Pair, payloads: list[bytes], timeout: float = 30.0) -> list[int]:
    """Sends every payload in order with flow control; returns the sequence numbers received,
    checking each frame's content on the way."""
    got: list[int] = []
    sent = 0
    deadline = time.monotonic() + timeout
    while len(got) < len(payloads):
        assert time.monotonic() < deadline, f"stalled: sent {sent}, received {len(got)}"
        if sent < len(payloads) and sent - len(got) < AHEAD:
            batch = pair.tx.alloc(min(64, len(payloads) - sent))
            for i, frame in enumerate(batch):
                frame.write(payloads[sent + i])
            sent += pair.tx.send(batch)
            batch.release()  # frames that did not fit (none expected) go back to the pool
        pair.tx.complete()
        with pair.rx.recv(256, timeout=0.0 if sent < len(payloads) else 0.2) as batch:
            for frame in batch:
                seq = packet.parse_numbered(memoryview(frame))
                assert seq is not None, f"frame {len(got)} is not intact: {bytes(frame)[:64].hex()}"
                assert bytes(frame) == payloads[seq]
                got.append(seq)
    end = time.monotonic() + 5
    while pair.tx.in_flight and time.monotonic() < end:
        pair.tx.complete()
    return got


@pytest.mark.parametrize("mode", ["native", "generic"])
def test_20000_frames_arrive_complete_in_order_and_intact(lab, mode: str) -> None:
    payloads = frames(lab, 64, COUNT)
    with socket_pair(lab, mode) as pair:
        assert pair.prog.mode == mode
        got = stream(pair, payloads)
        assert got == list(range(COUNT))
        rx, tx = pair.rx.stats(), pair.tx.stats()
    assert (rx.received, rx.rx_dropped, rx.rx_ring_full) == (COUNT, 0, 0)
    assert tx.sent == tx.completed == COUNT
    assert tx.tx_invalid_descs == 0


def test_1500_byte_packets_in_2048_byte_frames(lab) -> None:
    payloads = [packet.numbered_frame(seq, 1514, lab.mac_a, lab.mac_b) for seq in range(COUNT)]
    with socket_pair(lab, "native", frame_size=2048) as pair:
        assert pair.rx.umem.rx_capacity >= 1514
        assert stream(pair, payloads) == list(range(COUNT))
        assert pair.rx.stats().rx_dropped == 0


def test_nonzero_headroom_keeps_frames_intact_after_it(lab) -> None:
    headroom, frame_size = 256, 4096
    payloads = frames(lab, 128, COUNT)
    with socket_pair(lab, "generic", frame_size=frame_size, headroom=headroom) as pair:
        assert stream(pair, payloads) == list(range(COUNT))
        # Received data starts after the user headroom and the kernel's 256-byte XDP headroom.
        batch = pair.tx.alloc(1)
        batch[0].write(payloads[7])
        pair.tx.send(batch)
        with pair.rx.recv(1, timeout=2.0) as got:
            assert len(got) == 1
            assert got[0].addr % frame_size == headroom + 256
            assert bytes(got[0]) == payloads[7]


@pytest.mark.parametrize("edit", ["write_at", "memoryview"])
def test_rebroadcast_edits_in_place_and_sends_back(lab, edit: str) -> None:
    """b receives, sets the destination MAC to broadcast in place and transmits the same frames;
    a checks every copy that comes back."""
    count = 3000
    payloads = frames(lab, 80, count)
    with ExitStack() as stack:
        with lab.enter("a"):
            prog_a = stack.enter_context(afxdp.Program.attach(lab.if_a, mode="native"))
            a = stack.enter_context(afxdp.Socket(lab.if_a, 0, program=prog_a))
        with lab.enter("b"):
            prog_b = stack.enter_context(afxdp.Program.attach(lab.if_b, mode="native"))
            b = stack.enter_context(afxdp.Socket(lab.if_b, 0, program=prog_b))
        back: list[int] = []
        sent = rebroadcast = 0
        deadline = time.monotonic() + 30
        while len(back) < count:
            assert time.monotonic() < deadline, f"stalled: sent {sent}, back {len(back)}"
            if sent < count and sent - len(back) < AHEAD:
                out = a.alloc(min(64, count - sent))
                for i, frame in enumerate(out):
                    frame.write(payloads[sent + i])
                sent += a.send(out)
            with b.recv(64) as batch:
                if len(batch):
                    if edit == "write_at":
                        batch.write_at(0, b"\xff" * 6)
                    else:
                        for frame in batch:
                            with memoryview(frame) as view:
                                view[0:6] = b"\xff" * 6
                    rebroadcast += b.send(batch)
                    assert batch.closed
            b.complete()
            a.complete()
            with a.recv(256) as batch:
                for frame in batch:
                    data = bytes(frame)
                    assert data[:6] == b"\xff" * 6
                    seq = packet.parse_numbered(packet.mac_bytes(lab.mac_b) + data[6:])
                    assert seq is not None
                    assert packet.mac_bytes(lab.mac_b) + data[6:] == payloads[seq]
                    back.append(seq)
        assert sorted(back) == list(range(count))
        assert rebroadcast == count
        assert b.stats().sent == count
