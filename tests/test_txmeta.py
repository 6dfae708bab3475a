"""Per-packet transmit metadata for real (privileged): ``Umem(tx_metadata=True)`` on veth.

The sender is an AF_XDP socket on end a over a Umem with tx metadata; the receiver is an AF_XDP
socket with the built-in program on end b (native or generic XDP), or the kernel stack of end
b (a UDP socket and an AF_PACKET socket) where the test is about what the stack does. AF_XDP on
veth is copy mode: these tests pin down what Linux 6.18's copy mode does with each request
(docs/timestamps.md, "Transmit metadata").

The checksum tests send numbered UDP frames whose UDP checksum field holds the checksum of the
pseudo-header only (the seed a CHECKSUM_PARTIAL packet carries): a correct checksum on arrival
means the kernel computed it, the seed means nobody did.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest

afxdp = pytest.importorskip("afxdp")

from afxdp.testing import parse_numbered  # noqa: E402
from helpers import numbered, numbered_run  # noqa: E402

modes = pytest.mark.parametrize("mode", ["native", "generic"])
privileged = pytest.mark.privileged
DEADLINE = 5.0  # seconds for one round
UDP_CSUM_START, UDP_CSUM_OFFSET = 34, 6  # UDP over IPv4 without options: the checksum field


def pseudo_seed(frame: bytes) -> bytes:
    """The folded (not inverted) one's-complement sum of the IPv4/UDP pseudo-header of a
    numbered frame: what the checksum field holds before a checksum offload completes it."""
    pseudo = frame[26:34] + bytes([0, 17]) + (len(frame) - 34).to_bytes(2, "big")
    total = sum(int.from_bytes(pseudo[i : i + 2], "big") for i in range(0, len(pseudo), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total.to_bytes(2, "big")


def seeded(frame: bytes) -> bytes:
    """``frame`` with its UDP checksum replaced by the pseudo-header seed."""
    return frame[:40] + pseudo_seed(frame) + frame[42:]


@contextmanager
def meta_sender(
    lab: Any, *, tx_sw_csum: bool = False, frame_count: int = 256, **umem_options: Any
) -> Iterator[Any]:
    """A transmit-only socket on end a over a Umem with tx metadata."""
    with lab.enter("a"):
        umem = afxdp.Umem(
            frame_count, 2048, 0, tx_metadata=True, tx_sw_csum=tx_sw_csum, **umem_options
        )
        with afxdp.Socket(lab.if_a, 0, umem=umem, rx_size=0) as tx:
            yield tx


@contextmanager
def xdp_receiver(lab: Any, mode: str) -> Iterator[Any]:
    """The built-in program and a receiving socket on end b."""
    with ExitStack() as stack, lab.enter("b"):
        prog = stack.enter_context(afxdp.Program.attach(lab.if_b, mode=mode))
        yield stack.enter_context(afxdp.Socket(lab.if_b, 0, program=prog))


def send_all(tx: Any, payloads: list[bytes], request: Any = None) -> list[int]:
    """Sends ``payloads``, calling ``request(position, frame)`` on each frame after writing it;
    waits for every completion; returns the frame index each payload went out in."""
    deadline = time.monotonic() + DEADLINE
    with tx.alloc(len(payloads)) as batch:
        assert len(batch) == len(payloads)
        indices = [frame.index for frame in batch]
        for i, (frame, payload) in enumerate(zip(batch, payloads, strict=True)):
            frame.write(payload)
            if request is not None:
                request(i, frame)
        while not batch.closed and len(batch):
            assert time.monotonic() < deadline, "send stalled"
            tx.send(batch)
    while tx.in_flight:
        assert time.monotonic() < deadline, f"{tx.in_flight} frames never completed"
        tx.complete()
    return indices


def receive(rx: Any, want: int) -> list[tuple[bytes, int]]:
    """``want`` frames from ``rx``: (bytes, time.time_ns() after their batch arrived)."""
    got: list[tuple[bytes, int]] = []
    deadline = time.monotonic() + DEADLINE
    while len(got) < want:
        assert time.monotonic() < deadline, f"received {len(got)} of {want}"
        with rx.recv(want - len(got), timeout=0.05) as batch:
            after = time.time_ns()
            got += [(bytes(frame), after) for frame in batch]
    return got


# --- (a) checksum offload -------------------------------------------------------------------


@privileged
@modes
def test_tx_sw_csum_completes_requested_checksums_and_only_those(lab, mode) -> None:
    """With tx_sw_csum the kernel computes the checksum of every frame that asked; the others
    leave with the seed untouched (one batch, requests on even positions)."""
    frames = numbered_run(lab, 0, 64, size=100)
    with meta_sender(lab, tx_sw_csum=True) as tx, xdp_receiver(lab, mode) as rx:

        def request(i: int, frame: Any) -> None:
            if i % 2 == 0:
                frame.request_checksum(UDP_CSUM_START, UDP_CSUM_OFFSET)
                assert frame.checksum_request == (UDP_CSUM_START, UDP_CSUM_OFFSET)
            else:
                assert frame.checksum_request is None

        send_all(tx, [seeded(f) for f in frames], request)
        got = receive(rx, len(frames))
        seqs = [parse_numbered(data) for data, _ in got]
        assert seqs == list(range(64))
        for seq, (data, _) in zip(seqs, got, strict=True):
            assert seq is not None
            if seq % 2 == 0:
                assert data[40:42] == frames[seq][40:42], f"frame {seq}: checksum not computed"
                assert parse_numbered(data, check_udp_checksum=True) == seq
            else:
                assert data[40:42] == pseudo_seed(frames[seq]), f"frame {seq} was changed"
                assert parse_numbered(data, check_udp_checksum=True) is None
        assert tx.stats().tx_invalid_descs == 0


@privileged
@modes
def test_without_tx_sw_csum_the_checksum_stays_partial_across_veth(lab, mode) -> None:
    """Measured on 6.18: without tx_sw_csum the request makes a CHECKSUM_PARTIAL skb, veth
    forwards it as it is, and XDP on the peer (native or generic) hands the bytes to AF_XDP
    with the checksum never computed: the seed arrives."""
    frames = numbered_run(lab, 0, 32, size=100)
    with meta_sender(lab) as tx, xdp_receiver(lab, mode) as rx:
        send_all(
            tx,
            [seeded(f) for f in frames],
            lambda _, frame: frame.request_checksum(UDP_CSUM_START, UDP_CSUM_OFFSET),
        )
        got = receive(rx, len(frames))
        assert [parse_numbered(data) for data, _ in got] == list(range(32))
        for (data, _), frame in zip(got, frames, strict=True):
            assert data[40:42] == pseudo_seed(frame)


@privileged
def test_the_peer_stack_trusts_a_partial_checksum_and_drops_an_unrequested_seed(lab) -> None:
    """Without XDP on the peer, the stack of end b takes the CHECKSUM_PARTIAL skb as verified:
    a UDP socket receives the requested frames although their checksum field holds only the
    seed (AF_PACKET shows it), and drops the same frames sent without a request."""
    frames = numbered_run(lab, 0, 8, size=100)
    with ExitStack() as stack:
        with lab.enter("b"):
            udp = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
            udp.bind((lab.ip_b, 9000))
            udp.settimeout(0.3)
            raw = stack.enter_context(
                socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
            )
            raw.bind((lab.if_b, 0))
            raw.settimeout(0.3)
        tx = stack.enter_context(meta_sender(lab))

        def drain(sock: socket.socket) -> list[bytes]:
            out = []
            try:
                while True:
                    out.append(sock.recv(2048))
            except TimeoutError:
                return out

        for request in (True, False):
            send_all(
                tx,
                [seeded(f) for f in frames],
                (lambda _, frame: frame.request_checksum(UDP_CSUM_START, UDP_CSUM_OFFSET))
                if request
                else None,
            )
            datagrams = drain(udp)
            captured = drain(raw)
            assert [parse_numbered(d) for d in captured] == list(range(8))
            assert all(d[40:42] == pseudo_seed(f) for d, f in zip(captured, frames, strict=True))
            if request:
                assert len(datagrams) == 8, "the stack refused a CHECKSUM_PARTIAL datagram"
                assert [int.from_bytes(d[8:16], "big") for d in datagrams] == list(range(8))
            else:
                assert datagrams == [], "a datagram with a bad checksum was delivered"


# --- (b) completion timestamps ----------------------------------------------------------------


@privileged
@modes
def test_completion_timestamps_for_the_frames_that_asked(lab, mode) -> None:
    """Each frame that requested one gets a timestamp between the send and the end of its
    completion (the clock of time.time_ns()), in completion order; the others get none."""
    with meta_sender(lab) as tx, xdp_receiver(lab, mode) as rx:
        previous = 0
        for first in range(0, 4 * 48, 48):
            payloads = numbered_run(lab, first, 48)
            asked: list[int] = []

            def request(i: int, frame: Any, asked: list[int] = asked) -> None:
                if i % 3 != 1:
                    frame.request_tx_timestamp()
                    assert frame.tx_timestamp_requested
                    asked.append(frame.index)
                else:
                    assert not frame.tx_timestamp_requested

            before = time.time_ns()
            send_all(tx, payloads, request)
            after = time.time_ns()
            stamps = tx.tx_timestamps()
            assert [index for index, _ in stamps] == asked
            for index, stamp in stamps:
                assert before <= stamp <= after, (index, before, stamp, after)
                assert stamp >= previous
                previous = stamp
            assert tx.tx_timestamps() == [], "tx_timestamps() drains"
            assert [parse_numbered(d) for d, _ in receive(rx, 48)] == list(range(first, first + 48))


@privileged
def test_batch_wide_requests(lab) -> None:
    """FrameBatch.request_checksum / request_tx_timestamps ask on every frame."""
    frames = numbered_run(lab, 0, 16, size=100)
    with meta_sender(lab, tx_sw_csum=True) as tx, xdp_receiver(lab, "native") as rx:
        deadline = time.monotonic() + DEADLINE
        with tx.alloc(16) as batch:
            for frame, payload in zip(batch, frames, strict=True):
                frame.write(seeded(payload))
            batch.request_checksum(UDP_CSUM_START, UDP_CSUM_OFFSET)
            batch.request_tx_timestamps()
            indices = list(batch.indices)
            tx.send(batch)
        while tx.in_flight:
            assert time.monotonic() < deadline
            tx.complete()
        assert [index for index, _ in tx.tx_timestamps()] == indices
        got = [parse_numbered(d, check_udp_checksum=True) for d, _ in receive(rx, 16)]
        assert got == list(range(16))


# --- (c) launch time ----------------------------------------------------------------------------


@privileged
@modes
def test_launch_time_is_accepted_and_ignored_in_copy_mode(lab, mode) -> None:
    """Copy mode puts launch_time into skb->skb_mstamp_ns but transmits with
    __dev_direct_xmit, past any qdisc: packets asked to leave 2 s from now arrive at once."""
    with meta_sender(lab) as tx, xdp_receiver(lab, mode) as rx:
        launch = time.time_ns() + 2_000_000_000

        def request(_: int, frame: Any) -> None:
            frame.launch_time = launch
            assert frame.launch_time == launch
            frame.request_tx_timestamp()

        send_all(tx, numbered_run(lab, 0, 16), request)
        got = receive(rx, 16)
        assert [parse_numbered(d) for d, _ in got] == list(range(16))
        for _, arrived in got:
            assert arrived < launch - 1_000_000_000, "launch time delayed a copy-mode packet"
        assert all(stamp < launch for _, stamp in tx.tx_timestamps())


# --- (d) bad input and stale requests ---------------------------------------------------------


def test_umem_options_are_checked() -> None:
    with pytest.raises(TypeError, match="tx_metadata"):
        afxdp.Umem(4, 2048, 0, tx_metadata=1)
    with pytest.raises(TypeError, match="tx_sw_csum"):
        afxdp.Umem(4, 2048, 0, tx_metadata=True, tx_sw_csum="yes")
    with pytest.raises(ValueError, match=r"invalid tx_sw_csum True.*tx_metadata=True"):
        afxdp.Umem(4, 2048, 0, tx_sw_csum=True)
    with afxdp.Umem(4, 2048, 13, tx_metadata=True, tx_sw_csum=True) as umem:
        assert umem.tx_metadata and umem.tx_sw_csum
        # The room starts at the headroom rounded up to 8: 16 + 24 bytes before the packet.
        assert umem.tx_capacity == 2048 - 40
        assert "tx_metadata=True tx_sw_csum=True" in repr(umem)
    with afxdp.Umem(4, 2048, 13) as umem:
        assert not umem.tx_metadata and not umem.tx_sw_csum
        assert umem.tx_capacity == 2048 - 13


@privileged
def test_requests_need_a_tx_metadata_umem(lab) -> None:
    with lab.enter("a"), afxdp.Socket(lab.if_a, 0, rx_size=0) as tx, tx.alloc(1) as batch:
        frame = batch[0]
        frame.write(numbered(lab, 0))
        for ask in (
            lambda: frame.request_checksum(34, 6),
            frame.request_tx_timestamp,
            lambda: setattr(frame, "launch_time", 1),
            lambda: frame.checksum_request,
            batch.request_tx_timestamps,
        ):
            with pytest.raises(ValueError, match=r"invalid tx_metadata False.*tx_metadata=True"):
                ask()
        assert tx.tx_timestamps() == []


@privileged
def test_bad_requests_name_the_value(lab) -> None:
    with meta_sender(lab) as tx, tx.alloc(2) as batch:
        assert list(batch.offsets) == [24, 24]
        frame = batch[0]
        with pytest.raises(ValueError, match=r"checksum start 34.*0-byte packet"):
            frame.request_checksum(34, 6)  # nothing written yet
        frame.write(b"\0" * 42)
        frame.request_checksum(34, 6)  # the field is the last two bytes
        with pytest.raises(ValueError, match="invalid checksum offset 7"):
            frame.request_checksum(34, 7)
        with pytest.raises(ValueError, match="invalid start -1"):
            frame.request_checksum(-1, 6)
        with pytest.raises(ValueError, match=f"invalid offset {1 << 40}"):
            frame.request_checksum(34, 1 << 40)
        with pytest.raises(TypeError):
            frame.request_checksum(True, 6)
        with pytest.raises(ValueError, match="invalid launch_time -5"):
            frame.launch_time = -5
        assert frame.checksum_request == (34, 6), "failed requests changed nothing"
        frame.launch_time = 10**18
        assert frame.launch_time == 10**18
        # The whole u64 range of the kernel's field (from 2**63 it was an OverflowError).
        frame.launch_time = 2**64 - 1
        assert frame.launch_time == 2**64 - 1
        with pytest.raises(ValueError, match=f"invalid launch_time {2**64}"):
            frame.launch_time = 2**64
        frame.launch_time = None
        assert frame.launch_time is None
        # The batch-wide request is all or nothing: frame 1 is empty.
        with pytest.raises(ValueError, match=r"checksum start 34.*frame 1"):
            batch.request_checksum(34, 6)
        assert batch[1].checksum_request is None
        # Shortened after the request: send refuses, naming the frame, and queues nothing.
        batch[1].write(b"\0" * 60)
        frame.length = 41
        with pytest.raises(ValueError, match="frame 0's 41-byte packet"):
            tx.send(batch)
        assert len(batch) == 2 and tx.tx_pending == 0 and tx.in_flight == 0
        frame.clear_tx_requests()
        assert frame.checksum_request is None and not frame.tx_timestamp_requested
        assert tx.send(batch) == 2


@privileged
def test_stale_requests_never_reach_the_next_use_of_a_frame(lab) -> None:
    """Requests belong to the batch that made them: frames released unsent, or sent and
    completed, come back from alloc without a request, and are sent without one. The Umem has
    8 frames, so every round uses every frame."""
    frames = numbered_run(lab, 0, 8, size=100)
    with meta_sender(lab, tx_sw_csum=True, frame_count=8) as tx, xdp_receiver(lab, "native") as rx:
        # Requests on every frame of the Umem, then released unsent.
        with tx.alloc(8) as batch:
            assert len(batch) == 8
            for frame in batch:
                frame.write(seeded(frames[0]))
                frame.request_checksum(UDP_CSUM_START, UDP_CSUM_OFFSET)
                frame.request_tx_timestamp()
                frame.launch_time = time.time_ns()
        # Sent with requests and completed.
        asked = send_all(
            tx,
            [seeded(f) for f in frames],
            lambda _, frame: (
                frame.request_checksum(UDP_CSUM_START, UDP_CSUM_OFFSET),
                frame.request_tx_timestamp(),
            ),
        )
        assert len(tx.tx_timestamps()) == 8
        assert all(
            parse_numbered(d, check_udp_checksum=True) is not None for d, _ in receive(rx, 8)
        )
        # Every frame again, now without asking: no request shows, none is sent.
        with tx.alloc(8) as batch:
            assert len(batch) == 8
            for frame in batch:
                assert frame.checksum_request is None
                assert not frame.tx_timestamp_requested
                assert frame.launch_time is None
        indices = send_all(tx, [seeded(f) for f in frames])
        assert tx.tx_timestamps() == [], "a reused frame completed with an old request"
        got = receive(rx, 8)
        assert [parse_numbered(d) for d, _ in got] == list(range(8))
        assert all(d[40:42] == pseudo_seed(f) for (d, _), f in zip(got, frames, strict=True))
        assert sorted(indices) == sorted(asked) == list(range(8))


@privileged
def test_received_frames_forwarded_with_a_request(lab) -> None:
    """A received frame (its packet 256 bytes into the frame) can carry a request when sent
    back: end b receives the seeded frames and returns them with a checksum request."""
    frames = numbered_run(lab, 0, 8, size=100)
    with ExitStack() as stack:
        with lab.enter("a"):
            prog_a = stack.enter_context(afxdp.Program.attach(lab.if_a, mode="native"))
            a = stack.enter_context(afxdp.Socket(lab.if_a, 0, program=prog_a))
        with lab.enter("b"):
            umem = afxdp.Umem(512, 2048, 0, tx_metadata=True, tx_sw_csum=True)
            prog_b = stack.enter_context(afxdp.Program.attach(lab.if_b, mode="native"))
            b = stack.enter_context(afxdp.Socket(lab.if_b, 0, umem=umem, program=prog_b))
        assert a.send_packets([seeded(f) for f in frames]) == 8
        deadline = time.monotonic() + DEADLINE
        back = 0
        while back < 8:
            assert time.monotonic() < deadline
            with b.recv(8 - back, timeout=0.05) as batch:
                if not len(batch):
                    continue
                assert all(offset >= 24 for offset in batch.offsets)
                batch.swap_macs()
                batch.request_checksum(UDP_CSUM_START, UDP_CSUM_OFFSET)
                back += b.send(batch)
        got = [d for d, _ in receive(a, 8)]
        assert [parse_numbered(d, check_udp_checksum=True) for d in got] == list(range(8))


@privileged
def test_a_chain_carries_its_request_on_the_first_frame(lab_factory) -> None:
    """Multi-buffer: the kernel reads a request only on a packet's first frame, so a request
    on a later frame is refused, and a chain's timestamp comes back with its first frame. Copy
    mode applies the request while the skb holds only that first frame, so with tx_sw_csum
    it computes the checksum over the first frame alone (measured on 6.18): send() refuses a
    checksum request on a chain there."""
    lab = lab_factory(mtu=9000)
    data = seeded(numbered(lab, 5, 6000))
    with ExitStack() as stack:
        with lab.enter("a"):
            umem = afxdp.Umem(64, 4096, 0, tx_metadata=True, tx_sw_csum=True)
            tx = stack.enter_context(
                afxdp.Socket(lab.if_a, 0, umem=umem, rx_size=0, multi_buffer=True)
            )
        with lab.enter("b"):
            prog = stack.enter_context(afxdp.Program.attach(lab.if_b, mode="native"))
            rx = stack.enter_context(
                afxdp.Socket(lab.if_b, 0, program=prog, tx_size=0, multi_buffer=True)
            )
        with tx.alloc(2) as batch:
            batch[0].write(data[:2500])
            batch[0].more = True
            batch[1].write(data[2500:])
            batch[1].request_tx_timestamp()
            with pytest.raises(ValueError, match="frame 1 of the batch continues a packet"):
                tx.send(batch)
            batch[1].clear_tx_requests()
            batch.request_checksum(UDP_CSUM_START, UDP_CSUM_OFFSET)
            batch.request_tx_timestamps()
            assert batch[1].checksum_request is None and not batch[1].tx_timestamp_requested
            with pytest.raises(ValueError, match="over the first frame only"):
                tx.send(batch)
            assert tx.tx_pending == 0 and len(batch) == 2
            batch[0].clear_tx_requests()
            batch[0].request_tx_timestamp()
            first = batch[0].index
            assert tx.send(batch) == 2
        deadline = time.monotonic() + DEADLINE
        while tx.in_flight:
            assert time.monotonic() < deadline
            tx.complete()
        assert [index for index, _ in tx.tx_timestamps()] == [first]
        got: list[bytes] = []
        while not got:
            assert time.monotonic() < deadline
            with rx.recv(8, timeout=0.05) as received:
                got += [bytes(p) for p in received.packets()]
        assert got == [data]


@privileged
def test_port_collects_every_queues_timestamps(lab_factory) -> None:
    lab = lab_factory(queues=2)
    with (
        lab.enter("a"),
        afxdp.Port(
            lab.if_a, mode="native", umem=afxdp.Umem(512, 2048, 0, tx_metadata=True)
        ) as port,
    ):
        asked = []
        for queue in port.queues:
            with port[queue].alloc(4) as batch:
                for seq, frame in enumerate(batch):
                    frame.write(numbered(lab, seq))
                batch[0].request_tx_timestamp()
                batch[2].request_tx_timestamp()
                asked += [batch[0].index, batch[2].index]
                assert port[queue].send(batch) == 4
        deadline = time.monotonic() + DEADLINE
        while port.in_flight:
            assert time.monotonic() < deadline
            port.complete()
        stamps = port.tx_timestamps()
        assert sorted(index for index, _ in stamps) == sorted(asked)
        assert [ns for _, ns in stamps] == sorted(ns for _, ns in stamps)
        assert port.tx_timestamps() == []


@privileged
def test_requests_in_unaligned_mode_with_odd_frame_starts(lab) -> None:
    """Unaligned 3001-byte frames: every other frame starts at an odd byte, where afxdp moves
    one byte of the address into the offset (rust/core/src/addr.rs); the metadata must still
    be found before the packet, and the timestamp read back from the completion address."""
    frames = numbered_run(lab, 0, 8, size=100)
    with ExitStack() as stack:
        with lab.enter("a"):
            umem = afxdp.Umem(8, 3001, 0, unaligned=True, tx_metadata=True, tx_sw_csum=True)
            tx = stack.enter_context(afxdp.Socket(lab.if_a, 0, umem=umem, rx_size=0))
        rx = stack.enter_context(xdp_receiver(lab, "native"))
        indices = send_all(
            tx,
            [seeded(f) for f in frames],
            lambda _, frame: (
                frame.request_checksum(UDP_CSUM_START, UDP_CSUM_OFFSET),
                frame.request_tx_timestamp(),
            ),
        )
        assert any(index % 2 for index in indices), "no frame at an odd byte"
        assert [index for index, _ in tx.tx_timestamps()] == indices
        got = [parse_numbered(d, check_udp_checksum=True) for d, _ in receive(rx, 8)]
        assert got == list(range(8))
