"""`coalesce=` on `Socket.recv`/`batches` and `Port.recv`/`batches` (privileged, on veth labs).

With fewer than `max` frames ready, a coalescing receive first sleeps `coalesce` seconds without
being woken by arriving frames, so they gather and one wakeup takes them all; a full batch is
taken at once; timeout 0 never sleeps; the sleep never runs past the timeout; with nothing
ready after it the receive waits for the first frame as usual; `close()` from another thread
ends the sleep. Every timing bound below has a margin of at least 0.2 s either way.
"""

from __future__ import annotations

import math
import threading
import time
from contextlib import ExitStack

import pytest

afxdp = pytest.importorskip("afxdp")

from afxdp.testing import numbered_frame, parse_numbered  # noqa: E402
from helpers import numbered_run, socket_pair, wait_until  # noqa: E402

pytestmark = pytest.mark.privileged


def later(delay: float, action) -> threading.Thread:
    """Runs `action()` in a thread after `delay` seconds (join it)."""

    def run() -> None:
        time.sleep(delay)
        action()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def seqs(batch: afxdp.FrameBatch) -> list[int | None]:
    return [parse_numbered(memoryview(frame)) for frame in batch]


def test_frames_arriving_during_the_sleep_come_in_the_same_batch(lab) -> None:
    with socket_pair(lab) as p:
        p.tx.send_packets(numbered_run(lab, 0, 10))
        assert wait_until(lambda: p.rx.rx_available == 10)
        # 20 more arrive 0.05 s into a 0.4 s sleep: without coalescing recv would return the
        # 10 ready ones at once.
        sender = later(0.05, lambda: p.tx.send_packets(numbered_run(lab, 10, 20)))
        start = time.monotonic()
        with p.rx.recv(64, timeout=2.0, coalesce=0.4) as batch:
            took = time.monotonic() - start
            assert seqs(batch) == list(range(30))
        sender.join(2)
        assert 0.4 <= took < 1.5, took


def test_a_full_batch_ready_is_taken_at_once(lab) -> None:
    with socket_pair(lab) as p:
        p.tx.send_packets(numbered_run(lab, 0, 64))
        assert wait_until(lambda: p.rx.rx_available == 64)
        start = time.monotonic()
        with p.rx.recv(32, timeout=2.0, coalesce=1.0) as first:
            assert seqs(first) == list(range(32))
        with p.rx.recv(32, timeout=2.0, coalesce=1.0) as second:
            assert seqs(second) == list(range(32, 64))
        assert time.monotonic() - start < 0.5


def test_timeout_zero_never_sleeps(lab) -> None:
    with socket_pair(lab) as p:
        start = time.monotonic()
        with p.rx.recv(64, timeout=0, coalesce=1.0) as empty:
            assert len(empty) == 0
        p.tx.send_packets(numbered_run(lab, 0, 5))
        assert wait_until(lambda: p.rx.rx_available == 5)
        with p.rx.recv(64, timeout=0, coalesce=1.0) as some:
            assert seqs(some) == list(range(5))
        assert list(p.rx.batches(64, timeout=0, coalesce=1.0)) == []
        assert time.monotonic() - start < 0.5


def test_the_sleep_never_runs_past_the_timeout(lab) -> None:
    with socket_pair(lab) as p:
        start = time.monotonic()
        with p.rx.recv(64, timeout=0.3, coalesce=1.0) as batch:
            assert len(batch) == 0
        assert 0.3 <= time.monotonic() - start < 0.8


def test_with_nothing_ready_after_the_sleep_the_first_frame_ends_the_wait(lab) -> None:
    with socket_pair(lab) as p:
        # The sleep (0.1 s) ends with nothing ready; the frame sent at 0.5 s must end the wait
        # long before the 5 s timeout.
        # The clock is read before the sender's sleep starts, so `took` cannot come out below
        # 0.5 s when the frame ends the wait.
        start = time.monotonic()
        sender = later(0.5, lambda: p.tx.send_packets(numbered_run(lab, 7, 1)))
        with p.rx.recv(64, timeout=5.0, coalesce=0.1) as batch:
            took = time.monotonic() - start
            assert seqs(batch) == [7]
        sender.join(2)
        assert 0.5 <= took < 2.0, took


def test_close_from_another_thread_ends_the_sleep(lab) -> None:
    with socket_pair(lab) as p:
        outcome: list[tuple[str, float]] = []

        def receive() -> None:
            try:
                p.rx.recv(64, timeout=None, coalesce=1.0)
                outcome.append(("returned", time.monotonic()))
            except ValueError as exc:
                outcome.append((str(exc), time.monotonic()))

        steps: list[int] = []
        ended = threading.Event()

        def iterate(sock: afxdp.Socket) -> None:
            for batch in sock.batches(64, timeout=None, coalesce=1.0):
                steps.append(len(batch))
            ended.set()

        # Fewer than 64 ready: both threads sleep a full second, which frames do not cut short.
        p.tx.send_packets(numbered_run(lab, 0, 3))
        assert wait_until(lambda: p.rx.rx_available == 3)
        threads = [
            threading.Thread(target=receive, daemon=True),
            threading.Thread(target=iterate, args=(p.rx,), daemon=True),
        ]
        for t in threads:
            t.start()
        time.sleep(0.3)
        assert not outcome and not ended.is_set() and not steps
        closed_at = time.monotonic()
        p.rx.close()
        for t in threads:
            t.join(3)
        assert not any(t.is_alive() for t in threads), "close() did not end a coalescing sleep"
        assert ended.is_set()
        assert len(outcome) == 1 and "closed" in outcome[0][0], outcome
        assert outcome[0][1] - closed_at < 0.6


def test_a_paced_stream_arrives_complete_in_few_batches(lab) -> None:
    chunks, chunk = 40, 16
    with socket_pair(lab) as p:
        frames = numbered_run(lab, 0, chunks * chunk)

        def pace() -> None:
            # One chunk every 5 ms: without coalescing, a wakeup per chunk.
            for i in range(chunks):
                sent = 0
                deadline = time.monotonic() + 2
                while sent < chunk and time.monotonic() < deadline:
                    sent += p.tx.send_packets(frames[i * chunk + sent : (i + 1) * chunk])
                    p.tx.complete()
                time.sleep(0.005)

        sender = later(0.0, pace)
        got: list[int | None] = []
        sizes: list[int] = []
        it = p.rx.batches(1024, timeout=1.0, coalesce=0.05)
        assert "coalesce=0.05" in repr(it)
        for batch in it:
            sizes.append(len(batch))
            got += seqs(batch)
        sender.join(5)
        assert got == list(range(chunks * chunk))
        # 0.05 s gathers about 10 chunks; at least 2 per batch on average however slow the
        # sender thread runs.
        assert len(sizes) <= chunks // 2, sizes


@pytest.mark.parametrize("bad", [-1.0, float("nan"), math.inf, 1.5])
def test_bad_coalesce_values_are_refused_by_name(lab, bad: float) -> None:
    with socket_pair(lab) as p:
        with pytest.raises(ValueError, match="coalesce"):
            p.rx.recv(64, 0.1, coalesce=bad)
        with pytest.raises(ValueError, match="coalesce"):
            p.rx.batches(64, coalesce=bad)
        with pytest.raises(TypeError, match="coalesce"):
            p.rx.recv(64, 0.1, coalesce="0.1")  # type: ignore[arg-type]
        # 0 and None are off, 1 second the most.
        for fine in (0, 0.0, None, 1.0):
            with p.rx.recv(64, 0, coalesce=fine) as empty:
                assert len(empty) == 0


def test_a_port_lets_frames_gather_and_close_ends_its_sleep(lab_factory) -> None:
    lab = lab_factory(queues=2)
    with ExitStack() as stack:
        with lab.enter("a"):
            tx = stack.enter_context(
                afxdp.Socket(lab.if_a, 1, umem=afxdp.Umem(1024, 2048), rx_size=0)
            )
        with lab.enter("b"):
            port = afxdp.Port(lab.if_b, mode="native")
        stack.callback(port.close)

        def send(first: int, count: int) -> None:
            tx.send_packets(
                [numbered_frame(s, 64, lab.mac_a, lab.mac_b) for s in range(first, first + count)]
            )

        send(0, 5)
        assert wait_until(lambda: port[1].rx_available == 5)
        sender = later(0.05, lambda: send(5, 10))
        start = time.monotonic()
        with port.recv(64, timeout=2.0, coalesce=0.4) as batch:
            took = time.monotonic() - start
            assert batch.queue == 1 and seqs(batch) == list(range(15))
        sender.join(2)
        assert 0.4 <= took < 1.5, took
        with pytest.raises(ValueError, match="coalesce"):
            port.batches(64, coalesce=-0.5)

        outcome: list[str] = []

        def receive() -> None:
            try:
                port.recv(64, timeout=None, coalesce=1.0)
                outcome.append("returned")
            except ValueError as exc:
                outcome.append(str(exc))

        waiter = threading.Thread(target=receive, daemon=True)
        waiter.start()
        time.sleep(0.3)
        assert not outcome
        closed_at = time.monotonic()
        port.close()
        waiter.join(3)
        assert not waiter.is_alive() and time.monotonic() - closed_at < 0.6
        assert len(outcome) == 1 and "closed" in outcome[0], outcome
