"""`Socket.batches()`: a receive loop with one call per wakeup (privileged, on a veth lab).

Each step must give back the previous batch's frames (unless the user sent or released it, or a
view of one of its frames is alive), the stream must arrive complete and in order, and the
iteration must end on a timeout, on the socket's close (also from another thread) and on the
iterator's close().
"""

from __future__ import annotations

import gc
import threading
import time

import pytest

afxdp = pytest.importorskip("afxdp")

from afxdp.testing import parse_numbered  # noqa: E402
from helpers import numbered_run, socket_pair  # noqa: E402

pytestmark = pytest.mark.privileged

COUNT = 3000


def test_a_stream_arrives_complete_and_in_order_and_every_step_ends_the_previous_batch(
    lab,
) -> None:
    with socket_pair(lab, rx_frames=1024) as p:
        frames = numbered_run(lab, 0, COUNT)
        got: list[int | None] = []
        previous = old_frame = None
        sent = p.tx.send_packets(frames[:256])
        it = p.rx.batches(64, timeout=0.5)
        for batch in it:
            # The frames of the batch handed out before are back with the socket: a frame
            # taken from it is gone, though the object is reused for this batch.
            assert previous is None or previous is batch
            if old_frame is not None:
                with pytest.raises(ValueError, match="released"):
                    bytes(old_frame)
            assert not batch.closed and 1 <= len(batch) <= 64
            got += [parse_numbered(memoryview(frame)) for frame in batch]
            previous, old_frame = batch, batch[-1]
            # More than the receiver's 1024 frames in all, so they must come back; never more
            # than 256 ahead of the receiver (its rings hold them all).
            if sent < COUNT and sent - len(got) < 256:
                sent += p.tx.send_packets(frames[sent : len(got) + 256])
                p.tx.complete()
        assert it.closed and previous is not None and previous.closed
        assert sent == COUNT
        assert got == list(range(COUNT))
        with pytest.raises(StopIteration):
            next(it)
        assert p.rx.stats().rx_ring_full == 0


def test_a_batch_the_user_sent_or_released_is_left_alone(lab) -> None:
    with socket_pair(lab) as p:
        p.tx.send_packets(numbered_run(lab, 0, 200))
        kept = []
        received = 0
        for i, batch in enumerate(p.rx.batches(16, timeout=0.5)):
            received += len(batch)
            if i % 2:
                batch.release()  # the next step must not release it again (no error)
            kept.append(batch)
        assert received == 200
        assert len(kept) >= 200 // 16 and all(batch.closed for batch in kept)


def test_a_viewed_batch_stays_alive_until_the_view_goes(lab) -> None:
    with socket_pair(lab, rx_frames=256) as p:
        p.tx.send_packets(numbered_run(lab, 0, 8))
        it = p.rx.batches(8, timeout=1.0)
        first = next(it)
        view = memoryview(first[0])
        seq = parse_numbered(view)
        free_before = p.rx.umem.free_frames
        # The next step cannot give back a batch whose frame is viewed: it stays the user's.
        p.tx.send_packets(numbered_run(lab, 8, 1))
        second = next(it)
        assert second is not first  # not reused: it is still the user's
        assert not first.closed and parse_numbered(view) == seq == 0
        assert parse_numbered(memoryview(second[0])) == 8
        view.release()
        del first, view
        gc.collect()
        it.close()
        assert it.closed and second.closed
        # Both batches' frames are back: the viewed one's when its last reference went.
        assert p.rx.umem.free_frames >= free_before


def wait_rx(sock, count: int) -> None:
    deadline = time.monotonic() + 3
    while sock.rx_available < count and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sock.rx_available >= count


def test_the_batch_object_is_reused_and_its_earlier_frames_stay_gone(lab) -> None:
    # One frame in the receiver's Umem: the second packet lands in the very frame (same
    # index, same position) the first one did, so only the object's generation tells a Frame
    # or Packet taken from the first batch from the second batch's frame.
    with socket_pair(lab, rx_frames=1) as p:
        it = p.rx.batches(1, timeout=1.0)
        p.tx.send_packets(numbered_run(lab, 0, 1))
        wait_rx(p.rx, 1)
        first = next(it)
        frame, packet = first[0], first.packets()[0]
        index, queue = frame.index, first.queue
        assert parse_numbered(memoryview(frame)) == 0
        first.release()  # frame 0 back on the fill ring, for the second packet
        p.tx.send_packets(numbered_run(lab, 1, 1))
        wait_rx(p.rx, 1)
        second = next(it)
        assert second is first and not second.closed and len(second) == 1
        assert second[0].index == index and second.queue == queue
        assert parse_numbered(memoryview(second[0])) == 1
        for stale in (lambda: bytes(frame), lambda: len(packet), lambda: frame.length):
            with pytest.raises(ValueError, match="released"):
                stale()
        it.close()
        assert second.closed


def test_timeout_zero_takes_what_is_ready_and_stops(lab) -> None:
    with socket_pair(lab) as p:
        assert list(p.rx.batches(64, timeout=0)) == []
        p.tx.send_packets(numbered_run(lab, 0, 100))
        wait_rx(p.rx, 100)
        sizes = [len(batch) for batch in p.rx.batches(64, timeout=0)]
        assert sum(sizes) == 100 and sizes[0] == 64


def test_closing_the_socket_from_another_thread_ends_the_iteration(lab) -> None:
    with socket_pair(lab) as p:
        steps = []
        done = threading.Event()

        def loop() -> None:
            for batch in p.rx.batches(64, timeout=None):
                steps.append(len(batch))
            done.set()

        waiter = threading.Thread(target=loop, daemon=True)
        waiter.start()
        p.tx.send_packets(numbered_run(lab, 0, 10))
        deadline = time.monotonic() + 3
        while sum(steps) < 10 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sum(steps) == 10
        p.rx.close()
        assert done.wait(2.0), "batches() kept waiting on a closed socket"
        waiter.join(1.0)


def test_an_iterator_of_a_closed_socket_is_empty(lab) -> None:
    with socket_pair(lab) as p:
        it = p.rx.batches()
        p.rx.close()
        assert list(it) == [] and it.closed


@pytest.mark.parametrize(
    ("kwargs", "error", "names"),
    [
        ({"max": -1}, ValueError, "max"),
        ({"max": True}, TypeError, "max"),
        ({"max": 1.5}, TypeError, "max"),
        ({"timeout": -1.0}, ValueError, "timeout"),
        ({"timeout": float("nan")}, ValueError, "timeout"),
    ],
)
def test_bad_arguments_name_the_value(lab, kwargs, error, names) -> None:
    with socket_pair(lab) as p, pytest.raises(error, match=names):
        p.rx.batches(**kwargs)
