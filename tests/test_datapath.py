"""The AF_XDP datapath for real: AF_XDP socket to AF_XDP socket across a veth pair (privileged).

Every test builds its own lab (two private namespaces joined by a veth, removed afterwards), creates
the sending socket inside namespace ``a`` and the receiving socket and XDP program inside ``b``, and
sends a bounded number of numbered frames (``afxdp.testing.numbered_frame``), whose content the
receiver checks byte for byte (``afxdp.testing.parse_numbered`` and a comparison with what was
sent). Every loop has a deadline, so a library bug fails a test instead of hanging it. veth runs
AF_XDP in copy mode only.
"""

from __future__ import annotations

import select
import socket
import time
from contextlib import ExitStack

import pytest

afxdp = pytest.importorskip("afxdp")

from afxdp import packet  # noqa: E402
from afxdp.testing import parse_numbered  # noqa: E402
from helpers import Pair, drain, numbered_run, socket_pair, wait_until  # noqa: E402

pytestmark = pytest.mark.privileged

COUNT = 20_000
AHEAD = 1000  # flow control: the sender never runs more than this many frames ahead
BATCH = 64
DEADLINE = 30.0  # seconds for a whole stream; a stall fails the test instead of hanging it
XDP_PACKET_HEADROOM = 256  # the kernel's headroom in front of every received packet
BROADCAST = b"\xff" * 6
ETH_P_ALL = 0x0003
# Each case marked with it runs once as usual and once with preferred busy polling on both
# sockets (recv/send/complete then make a syscall per call; see tests/test_busy_poll.py), as
# the kernel's AF_XDP selftests run every case in a busy-poll mode too.
busy_poll = pytest.mark.parametrize("busy_poll_usecs", [None, 20], ids=["softirq", "busy-poll"])


def send_all(tx: afxdp.Socket, payloads: list[bytes], timeout: float = 5.0) -> int:
    """Sends every payload (in batches) and waits until all are completed; returns the count."""
    sent = 0
    deadline = time.monotonic() + timeout
    while sent < len(payloads):
        assert time.monotonic() < deadline, f"send stalled after {sent} of {len(payloads)}"
        with tx.alloc(min(BATCH, len(payloads) - sent)) as batch:
            for i, frame in enumerate(batch):
                frame.write(payloads[sent + i])
            sent += tx.send(batch)
        tx.complete()
    wait_completed(tx, deadline)
    return sent


def wait_completed(tx: afxdp.Socket, deadline: float) -> None:
    """Completions arrive asynchronously (skb destructor): drain until nothing is in flight."""
    while tx.in_flight and time.monotonic() < deadline:
        tx.complete()
        time.sleep(0.001)
    assert tx.in_flight == 0, f"{tx.in_flight} frames never completed"


def stream(pair: Pair, payloads: list[bytes], on_frame=None) -> list[int]:
    """Sends every payload in order with flow control and receives them; returns the sequence
    numbers in arrival order. Each frame must be intact (parse_numbered) and equal to what was
    sent. `on_frame(frame)` is called for every received frame (still owned by the batch)."""
    got: list[int] = []
    sent = 0
    deadline = time.monotonic() + DEADLINE
    while len(got) < len(payloads):
        assert time.monotonic() < deadline, f"stalled: sent {sent}, received {len(got)}"
        if sent < len(payloads) and sent - len(got) < AHEAD:
            with pair.tx.alloc(min(BATCH, len(payloads) - sent)) as batch:
                for i, frame in enumerate(batch):
                    frame.write(payloads[sent + i])
                sent += pair.tx.send(batch)  # frames that did not fit go back to the pool
        pair.tx.complete()
        with pair.rx.recv(256, timeout=0.0 if sent < len(payloads) else 0.05) as batch:
            for frame in batch:
                seq = parse_numbered(memoryview(frame))
                assert seq is not None, (
                    f"frame #{len(got)} is not intact: {bytes(frame)[:64].hex()}"
                )
                assert bytes(frame) == payloads[seq], f"frame {seq} differs from what was sent"
                if on_frame is not None:
                    on_frame(frame)
                got.append(seq)
    wait_completed(pair.tx, time.monotonic() + 5)
    return got


def assert_clean_stream_stats(pair: Pair, count: int) -> None:
    rx, tx = pair.rx.stats(), pair.tx.stats()
    assert rx.received == count
    assert rx.rx_dropped == 0
    assert tx.sent == tx.completed == count
    assert tx.tx_invalid_descs == rx.rx_invalid_descs == 0


# --- 1. a stream arrives complete, in order and intact ------------------------------------------


@busy_poll
@pytest.mark.parametrize("mode", ["native", "generic"])
def test_stream_of_20000_frames_arrives_complete_in_order_and_intact(
    lab, mode: str, busy_poll_usecs: int | None
) -> None:
    payloads = numbered_run(lab, 0, COUNT)
    with socket_pair(lab, mode=mode, tx_size=0, busy_poll_usecs=busy_poll_usecs) as pair:
        assert pair.prog.mode == mode
        assert (pair.rx.busy_poll is None) == (busy_poll_usecs is None)
        started = time.monotonic()
        got = stream(pair, payloads)
        elapsed = time.monotonic() - started
        assert got == list(range(COUNT))
        assert_clean_stream_stats(pair, COUNT)
    print(f"{mode}: {COUNT} frames in {elapsed:.2f} s, {COUNT / elapsed:,.0f} frames/s")


# --- 2. 1500-byte packets in 2048-byte frames ----------------------------------------------------


@pytest.mark.parametrize("size", [1500, 1514])  # 1514: MTU 1500 + Ethernet header
def test_1500_byte_frames_in_2048_byte_umem_frames_arrive_intact(lab, size: int) -> None:
    payloads = numbered_run(lab, 0, COUNT, size=size)
    with socket_pair(lab, mode="native", frame_size=2048, tx_size=0) as pair:
        assert pair.rx.umem.frame_size == pair.tx.umem.frame_size == 2048
        assert pair.rx.umem.rx_capacity == 2048 - XDP_PACKET_HEADROOM >= size
        assert pair.tx.umem.tx_capacity >= size

        def full_length(frame) -> None:
            assert len(frame) == size

        assert stream(pair, payloads, full_length) == list(range(COUNT))
        assert_clean_stream_stats(pair, COUNT)


# --- 3. UMEM headroom ----------------------------------------------------------------------------


def test_received_data_starts_after_umem_headroom_and_xdp_headroom(lab) -> None:
    headroom, frame_size, size = 256, 4096, 128
    payloads = numbered_run(lab, 0, COUNT, size=size)
    with socket_pair(
        lab, mode="native", frame_size=frame_size, headroom=headroom, tx_size=0
    ) as pair:
        rx_umem, tx_umem = pair.rx.umem, pair.tx.umem
        assert rx_umem.headroom == tx_umem.headroom == headroom
        assert rx_umem.rx_capacity == frame_size - headroom - XDP_PACKET_HEADROOM
        assert tx_umem.tx_capacity == frame_size - headroom
        with pair.tx.alloc(4) as batch:  # TX data starts right after the headroom
            assert [f.addr % frame_size for f in batch] == [headroom] * 4
        region = memoryview(rx_umem)
        offsets: set[int] = set()

        def check_position(frame) -> None:
            # The library's address is where the bytes really are in the UMEM...
            offsets.add(frame.addr % frame_size)
            assert frame.addr // frame_size == frame.index
            assert region[frame.addr : frame.addr + len(frame)] == bytes(frame)

        try:
            assert stream(pair, payloads, check_position) == list(range(COUNT))
        finally:
            region.release()
        # ... and that is after the UMEM headroom plus the kernel's XDP_PACKET_HEADROOM.
        assert offsets == {headroom + XDP_PACKET_HEADROOM}
        assert_clean_stream_stats(pair, COUNT)


# --- 4. rebroadcast ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "busy_poll_usecs"),
    [("write_at", None), ("memoryview", None), ("write_at", 20)],
    ids=["write_at", "memoryview", "write_at-busy-poll"],
)
def test_rebroadcast_comes_back_with_broadcast_mac_and_unchanged_content(
    lab, edit: str, busy_poll_usecs: int | None
) -> None:
    """b receives each frame, sets its destination MAC to ff:ff:ff:ff:ff:ff in place and sends the
    same frames back from the same socket (zero copy); a sends the originals and receives the
    copies on one socket."""
    count = 3000
    payloads = numbered_run(lab, 0, count, size=100)
    original_dst = packet.mac_bytes(lab.mac_b)
    assert payloads[0][:6] == original_dst
    with ExitStack() as stack:
        with lab.enter("a"):
            prog_a = stack.enter_context(afxdp.Program.attach(lab.if_a, mode="native"))
            a = stack.enter_context(
                afxdp.Socket(lab.if_a, 0, program=prog_a, busy_poll_usecs=busy_poll_usecs)
            )
        with lab.enter("b"):
            prog_b = stack.enter_context(afxdp.Program.attach(lab.if_b, mode="native"))
            b = stack.enter_context(
                afxdp.Socket(lab.if_b, 0, program=prog_b, busy_poll_usecs=busy_poll_usecs)
            )
        back: list[int] = []
        sent = rebroadcast = 0
        checked_buffer_error = False
        deadline = time.monotonic() + DEADLINE
        while len(back) < count:
            assert time.monotonic() < deadline, (
                f"stalled: sent {sent}, rebroadcast {rebroadcast}, back {len(back)}"
            )
            if sent < count and sent - len(back) < AHEAD:
                with a.alloc(min(BATCH, count - sent)) as out:
                    for i, frame in enumerate(out):
                        frame.write(payloads[sent + i])
                    sent += a.send(out)
            # b: the rebroadcast pattern
            with b.recv(BATCH) as batch:
                if len(batch):
                    if edit == "write_at":
                        batch.write_at(0, BROADCAST)
                    else:
                        for frame in batch:
                            view = memoryview(frame)
                            view[0:6] = BROADCAST
                            if not checked_buffer_error:
                                # a live export pins the batch: it cannot be sent yet
                                with pytest.raises(BufferError):
                                    b.send(batch)
                                checked_buffer_error = True
                            view.release()
                    n = len(batch)
                    assert b.send(batch) == n
                    rebroadcast += n
            b.complete()
            a.complete()
            with a.recv(256, timeout=0.0 if sent < count else 0.05) as batch:
                for frame in batch:
                    data = bytes(frame)
                    assert data[:6] == BROADCAST, f"destination MAC is {data[:6].hex(':')}"
                    restored = original_dst + data[6:]
                    seq = parse_numbered(restored)
                    assert seq is not None, f"not intact: {data[:64].hex()}"
                    assert restored == payloads[seq], f"frame {seq} changed beyond the MAC"
                    back.append(seq)
        assert edit == "write_at" or checked_buffer_error
        assert sorted(back) == list(range(count))
        assert len(back) == len(set(back)) == count
        assert rebroadcast == count
        wait_completed(a, time.monotonic() + 5)
        wait_completed(b, time.monotonic() + 5)
        sa, sb = a.stats(), b.stats()
    assert (sa.sent, sa.completed, sa.received) == (count, count, count)
    assert (sb.received, sb.sent, sb.completed) == (count, count, count)
    assert sa.rx_dropped == sb.rx_dropped == 0


# --- 5. statistics -------------------------------------------------------------------------------


@busy_poll
def test_empty_fill_ring_counts_rx_fill_ring_empty_descs_until_fill(
    lab, busy_poll_usecs: int | None
) -> None:
    with socket_pair(
        lab, mode="native", autofill=False, tx_size=0, busy_poll_usecs=busy_poll_usecs
    ) as pair:
        rx, tx = pair.rx, pair.tx
        assert rx.stats().filled == 0  # autofill=False: nothing on the fill ring yet
        assert send_all(tx, numbered_run(lab, 0, 100)) == 100
        assert wait_until(lambda: rx.stats().rx_fill_ring_empty_descs > 0), rx.stats()._asdict()
        assert drain(rx, 1, timeout=0.3) == []
        s = rx.stats()
        assert s.received == 0
        assert 0 < s.rx_fill_ring_empty_descs <= 100

        filled = rx.fill()
        assert filled > 0
        assert rx.stats().filled == filled
        assert send_all(tx, numbered_run(lab, 100, 10)) == 10
        assert drain(rx, 10) == list(range(100, 110))  # only the frames sent after fill()
        s, t = rx.stats(), tx.stats()
    assert (s.received, s.filled, s.sent, s.completed) == (10, filled, 0, 0)
    assert (t.sent, t.completed, t.received, t.filled) == (110, 110, 0, 0)


@busy_poll
def test_undrained_small_rx_ring_counts_rx_ring_full(lab, busy_poll_usecs: int | None) -> None:
    rx_size, count = 64, 300
    with socket_pair(
        lab,
        mode="native",
        rx_size=rx_size,
        fill_size=1024,
        tx_size=0,
        busy_poll_usecs=busy_poll_usecs,
    ) as pair:
        rx, tx = pair.rx, pair.tx
        filled_at_start = rx.stats().filled
        assert filled_at_start == rx.fill_target > rx_size
        assert send_all(tx, numbered_run(lab, 0, count)) == count  # the receiver does not recv
        assert wait_until(lambda: rx.stats().rx_ring_full > 0), rx.stats()._asdict()
        assert wait_until(lambda: rx.stats().rx_ring_full + rx_size >= count)
        s = rx.stats()
        assert s.received == 0
        assert s.rx_ring_full == count - rx_size  # everything beyond what the ring holds
        assert rx.rx_available == rx_size
        assert drain(rx, rx_size, timeout=1.0) == list(range(rx_size))
        assert len(rx.recv(BATCH)) == 0  # nothing more; also refills what was received
        s, t = rx.stats(), tx.stats()
    assert s.received == rx_size
    # autofill tops the fill ring up again (at most the frames taken; the test never fills)
    assert filled_at_start <= s.filled <= filled_at_start + rx_size
    assert s.rx_dropped == 0
    assert (s.sent, s.completed) == (0, 0)
    assert (t.sent, t.completed, t.received, t.filled) == (count, count, 0, 0)


# --- 6. waiting: poll, recv timeout, select ------------------------------------------------------


@busy_poll  # with busy polling, each wait slice spins first, then sleeps in poll(2)
def test_poll_recv_timeout_and_select(lab, busy_poll_usecs: int | None) -> None:
    with socket_pair(lab, mode="native", tx_size=0, busy_poll_usecs=busy_poll_usecs) as pair:
        rx, tx = pair.rx, pair.tx
        t0 = time.monotonic()
        assert rx.poll(0.2) == 0
        waited = time.monotonic() - t0
        assert 0.15 <= waited < 2.0, f"poll(0.2) returned after {waited:.3f} s"

        t0 = time.monotonic()
        batch = rx.recv(BATCH, timeout=0.2)
        waited = time.monotonic() - t0
        assert len(batch) == 0
        batch.release()
        assert 0.15 <= waited < 2.0, f"recv(timeout=0.2) returned after {waited:.3f} s"

        fd = rx.fileno()
        assert fd >= 0
        assert select.select([fd], [], [], 0) == ([], [], [])
        assert select.select([rx], [], [], 0.05)[0] == []

        assert send_all(tx, numbered_run(lab, 0, 5)) == 5
        assert rx.poll(2.0) & afxdp.POLLIN
        assert select.select([rx], [], [], 2.0)[0] == [rx]
        assert select.select([fd], [], [], 0)[0] == [fd]
        assert wait_until(lambda: rx.rx_available == 5)
        with rx.recv(BATCH, timeout=1.0) as got:
            assert [parse_numbered(memoryview(f)) for f in got] == list(range(5))
        assert rx.poll(0.0) & afxdp.POLLIN == 0
        assert select.select([rx], [], [], 0)[0] == []


# --- 7. registration -----------------------------------------------------------------------------


def test_socket_receives_only_while_registered_and_stack_gets_the_rest(lab) -> None:
    with ExitStack() as stack:
        with lab.enter("a"):
            tx = stack.enter_context(afxdp.Socket(lab.if_a, 0, rx_size=0))
        with lab.enter("b"):
            prog = stack.enter_context(afxdp.Program.attach(lab.if_b, mode="native"))
            rx = stack.enter_context(afxdp.Socket(lab.if_b, 0, tx_size=0))  # no program
            tap = stack.enter_context(
                socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            )
            tap.bind((lab.if_b, 0))
        tap.setblocking(False)

        def stack_saw(expect: int, timeout: float) -> list[int]:
            """Numbered frames the kernel stack of b handed to the AF_PACKET tap (incoming)."""
            seen: list[int] = []
            deadline = time.monotonic() + timeout
            while len(seen) < expect and time.monotonic() < deadline:
                if not select.select([tap], [], [], 0.05)[0]:
                    continue
                data, address = tap.recvfrom(4096)
                seq = parse_numbered(data)
                if seq is not None and address[2] != socket.PACKET_OUTGOING:
                    seen.append(seq)
            return seen

        assert rx.program is None and not rx.registered
        assert send_all(tx, numbered_run(lab, 0, 20)) == 20
        assert stack_saw(20, 3.0) == list(range(20))  # XDP_PASS: the stack got them
        assert drain(rx, 1, timeout=0.3) == []

        prog.register(rx)
        assert rx.registered and rx.program is prog
        assert send_all(tx, numbered_run(lab, 20, 20)) == 20
        assert drain(rx, 20) == list(range(20, 40))
        assert stack_saw(1, 0.3) == []  # redirected: the stack saw none of them

        prog.unregister(0)
        assert not rx.registered
        assert send_all(tx, numbered_run(lab, 40, 20)) == 20
        assert stack_saw(20, 3.0) == list(range(40, 60))  # back to the kernel stack
        assert drain(rx, 1, timeout=0.3) == []
        assert rx.stats().received == 20


def test_sending_while_the_link_is_down_queues_the_frames_and_they_go_out_once(lab) -> None:
    """ENETDOWN from the tx wakeup is not an error: the frames were queued (send says so) and
    wait on the tx ring; once the link is up a kick sends each of them exactly once. (Raising
    after queueing made a caller that retried send every packet twice.)"""
    with socket_pair(lab) as p:
        lab.run("a", ["ip", "link", "set", "dev", lab.if_a, "down"])
        try:
            assert p.tx.send_packets(numbered_run(lab, 0, 10)) == 10
            batch = p.tx.alloc(5)
            for i, frame in enumerate(batch):
                frame.write(numbered_run(lab, 10 + i, 1)[0])
            assert p.tx.send(batch) == 5
            assert p.tx.complete() == 0
            assert p.tx.tx_pending == 15
        finally:
            lab.run("a", ["ip", "link", "set", "dev", lab.if_a, "up"])
        deadline = time.monotonic() + 5
        while p.tx.tx_pending and time.monotonic() < deadline:
            p.tx.kick()
            time.sleep(0.01)
        assert drain(p.rx, 15) == list(range(15))
        assert drain(p.rx, None, timeout=0.3) == []  # nothing twice
