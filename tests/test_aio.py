"""afxdp.aio: awaiting frames on the event loop (the standard loop, and uvloop when installed).

Each test runs a coroutine on a fresh loop of the kind under test, on a socket pair in a private
lab (helpers.socket_pair); every wait is bounded by asyncio.wait_for or a timeout.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

pytest.importorskip("afxdp")

import afxdp.aio
from afxdp.testing import numbered_frame, parse_numbered
from helpers import numbered_run, socket_pair

pytestmark = pytest.mark.privileged


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    # uvloop is optional (not a dependency of afxdp): skip before the test makes a coroutine,
    # which would otherwise be left never awaited.
    factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
    if request.param == "uvloop":
        factory = pytest.importorskip("uvloop").new_event_loop

    def run(coro: Coroutine[Any, Any, Any]) -> Any:
        loop = factory()
        try:
            return loop.run_until_complete(asyncio.wait_for(coro, 30))
        finally:
            loop.close()

    return run


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def send(pair, first: int, count: int) -> None:
    with pair.tx.alloc(count) as out:
        for frame, data in zip(out, numbered_run(pair.lab, first, count), strict=True):
            frame.write(data)
        assert pair.tx.send(out) == count
    deadline = time.monotonic() + 3
    while pair.tx.in_flight and time.monotonic() < deadline:
        pair.tx.complete()
        time.sleep(0.001)


def test_async_for_receives_what_is_sent_without_busy_polling(lab, run) -> None:
    with socket_pair(lab) as pair:

        async def main() -> tuple[list[int | None], float]:
            got: list[int | None] = []

            async def consume() -> None:
                async for batch in afxdp.aio.batches(pair.rx, 64):
                    with batch:
                        got.extend(parse_numbered(memoryview(f)) for f in batch)
                    if len(got) >= 300:
                        return

            task = asyncio.create_task(consume())
            # Nothing arrives for half a second: the waiting consumer must cost (almost) no CPU.
            cpu = time.process_time()
            await asyncio.sleep(0.5)
            idle_cpu = time.process_time() - cpu
            assert not task.done()
            for first in (0, 100, 200):
                send(pair, first, 100)
                await asyncio.sleep(0.05)
            await asyncio.wait_for(task, 10)
            return got, idle_cpu

        got, idle_cpu = run(main())
        assert sorted(got) == list(range(300))  # type: ignore[type-var]
        assert idle_cpu < 0.1, f"{idle_cpu:.3f} s of CPU while waiting 0.5 s"


def test_recv_returns_a_batch_or_an_empty_one_at_the_timeout(lab, run) -> None:
    with socket_pair(lab) as pair:

        async def main() -> None:
            loop = asyncio.get_running_loop()
            start = loop.time()
            empty = await afxdp.aio.recv(pair.rx, 64, timeout=0.3)
            waited = loop.time() - start
            assert len(empty) == 0 and 0.29 <= waited < 1.0, waited
            assert len(await afxdp.aio.recv(pair.rx, 64, timeout=0)) == 0
            loop.call_later(0.1, send, pair, 0, 5)
            got: list[int | None] = []
            while len(got) < 5:
                with await afxdp.aio.recv(pair.rx, 64, timeout=5) as batch:
                    assert len(batch), "timed out"
                    got.extend(parse_numbered(memoryview(f)) for f in batch)
            assert got == list(range(5))
            with pytest.raises(ValueError, match="timeout"):
                await afxdp.aio.recv(pair.rx, 64, timeout=-1)

        run(main())


def test_max_zero_returns_at_once_with_frames_waiting(lab, run) -> None:
    # recv(sock, 0) took nothing off a readable ring and looped without awaiting (the event
    # loop stalled, not even wait_for could end it); batches(sock, 0) with it.
    with socket_pair(lab) as pair:
        send(pair, 0, 3)
        deadline = time.monotonic() + 5
        while pair.rx.rx_available < 3:
            assert time.monotonic() < deadline, "the frames never arrived"
            time.sleep(0.01)

        async def main() -> tuple[int, list[afxdp.FrameBatch]]:
            got = await afxdp.aio.recv(pair.rx, 0)
            return len(got), [b async for b in afxdp.aio.batches(pair.rx, 0)]

        outcome: list[Any] = []
        worker = threading.Thread(target=lambda: outcome.append(run(main())), daemon=True)
        worker.start()
        worker.join(5)
        if worker.is_alive():
            pair.rx.close()  # the spinning loop's next recv raises: the thread ends
            worker.join(5)
            pytest.fail("aio.recv(sock, 0) or aio.batches(sock, 0) did not return")
        assert outcome == [(0, [])]
        assert pair.rx.rx_available == 3


def test_cancelled_wait_loses_no_frame_and_leaks_no_fd(lab, run) -> None:
    with socket_pair(lab) as pair:

        async def main() -> None:
            before = open_fds()
            task = asyncio.create_task(afxdp.aio.recv(pair.rx, 64))
            await asyncio.sleep(0.2)
            assert open_fds() == before + 1  # the duplicate the loop watches
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert open_fds() == before
            # Frames sent after the cancellation all reach the next receiver.
            send(pair, 0, 50)
            got: list[int | None] = []
            while len(got) < 50:
                with await afxdp.aio.recv(pair.rx, 64, timeout=5) as batch:
                    assert len(batch), "timed out"
                    got.extend(parse_numbered(memoryview(f)) for f in batch)
            assert sorted(got) == list(range(50))  # type: ignore[type-var]

        run(main())


class PipeReceiver:
    """A Receiver over a pipe (aio's protocol: recv, fileno, closed): readable while bytes
    wait; recv(max, 0) takes up to `max` of them (its "batch" is bytes)."""

    def __init__(self) -> None:
        self.read, self.write = os.pipe()
        os.set_blocking(self.read, False)
        self.closed = False

    def fileno(self) -> int:
        return self.read

    def recv(self, max: int = 64, timeout: float | None = 0.0) -> bytes:
        try:
            return os.read(self.read, max) if max else b""
        except BlockingIOError:
            return b""

    def close(self) -> None:
        os.close(self.read)
        os.close(self.write)
        self.closed = True


@pytest.mark.parametrize("hops", [0, 1, 2, 3])
def test_a_cancel_as_the_wait_ends_is_never_lost(run, hops: int) -> None:
    # Python 3.11's asyncio.wait_for, around the wait for readability, returned the inner
    # result when the task was cancelled after that wait had finished: recv returned a batch
    # and batches() went on iterating, the cancel lost. The cancel comes from a reader of the
    # same pipe, `hops` loop turns after it became readable.
    receiver = PipeReceiver()
    try:

        async def main() -> tuple[bool, bool]:
            loop = asyncio.get_running_loop()
            victim = asyncio.ensure_future(afxdp.aio.recv(receiver, 64))  # type: ignore[arg-type]
            await asyncio.sleep(0.05)  # it waits for the pipe now
            watch = os.dup(receiver.read)
            accepted: list[bool] = []

            def hop(k: int) -> None:
                if k == 0:
                    accepted.append(victim.cancel())  # False: it had returned already
                else:
                    loop.call_soon(hop, k - 1)

            def readable() -> None:
                loop.remove_reader(watch)
                hop(hops)

            loop.add_reader(watch, readable)
            os.write(receiver.write, b"x")
            try:
                done, _ = await asyncio.wait({victim}, timeout=2)
            finally:
                os.close(watch)
            assert done, "the cancelled recv still waits"
            return accepted == [True], victim.cancelled()

        accepted, cancelled = run(main())
        assert cancelled == accepted, "cancel() took, but recv returned a batch all the same"
    finally:
        receiver.close()


def test_a_socket_closed_by_another_thread_before_the_wait_is_a_valueerror(lab, run) -> None:
    # The close could come between aio's first receive and its os.dup(sock.fileno()): the
    # fileno was then -1 and the dup raised OSError(EBADF), which batches() did not take for
    # the end of the iteration either.
    class ClosedAfterFirstRecv:
        def __init__(self, sock: afxdp.Socket) -> None:
            self.sock = sock

        def recv(self, max: int = 64, timeout: float | None = 0.0) -> afxdp.FrameBatch:
            batch = self.sock.recv(max, timeout)
            self.sock.close()
            return batch

        def fileno(self) -> int:
            return self.sock.fileno()

        @property
        def closed(self) -> bool:
            return self.sock.closed

    for ending in ("recv", "batches"):
        with socket_pair(lab) as pair:
            receiver = ClosedAfterFirstRecv(pair.rx)

            async def main(ending: str = ending, receiver: Any = receiver) -> list[Any]:
                if ending == "recv":
                    with pytest.raises(ValueError, match="closed"):
                        await afxdp.aio.recv(receiver, 64, timeout=1)
                    return []
                return [b async for b in afxdp.aio.batches(receiver, 64)]

            assert run(main()) == []


def test_close_while_awaiting_ends_recv_and_batches(lab, run) -> None:
    with socket_pair(lab) as pair:
        before = open_fds()

        async def main() -> None:
            loop = asyncio.get_running_loop()
            waiting = asyncio.create_task(afxdp.aio.recv(pair.rx, 64))

            async def iterate() -> int:
                n = 0
                async for _ in afxdp.aio.batches(pair.rx):
                    n += 1
                return n

            iterating = asyncio.create_task(iterate())
            await asyncio.sleep(0.2)
            start = loop.time()
            pair.rx.close()
            with pytest.raises(ValueError, match="closed"):
                await asyncio.wait_for(waiting, 5)
            assert await asyncio.wait_for(iterating, 5) == 0  # the iteration just ended
            assert loop.time() - start < 1.0

        run(main())
        assert open_fds() == before - 1  # the socket's own fd; no duplicate left behind
        # The kernel socket was released: the queue can be bound again.
        with lab.enter("b"):
            for attempt in range(50):  # the kernel releases a closed socket asynchronously
                try:
                    afxdp.Socket(lab.if_b, 0, program=pair.prog).close()
                    break
                except OSError:
                    if attempt == 49:
                        raise
                    time.sleep(0.05)


def test_coalesce_lets_frames_gather_and_close_ends_the_sleep(lab, run) -> None:
    with socket_pair(lab) as pair:

        async def main() -> None:
            loop = asyncio.get_running_loop()
            send(pair, 0, 5)
            while pair.rx.rx_available < 5:
                await asyncio.sleep(0.005)
            # 10 more arrive 0.05 s into a 0.4 s sleep, which they do not end.
            loop.call_later(0.05, send, pair, 5, 10)
            start = loop.time()
            with await afxdp.aio.recv(pair.rx, 64, timeout=2, coalesce=0.4) as batch:
                took = loop.time() - start
                assert [parse_numbered(memoryview(f)) for f in batch] == list(range(15))
            assert 0.39 <= took < 1.5, took  # (uvloop's clock counts whole milliseconds)
            # A full batch is taken at once; timeout 0 never sleeps.
            send(pair, 15, 8)
            while pair.rx.rx_available < 8:
                await asyncio.sleep(0.005)
            start = loop.time()
            assert len(await afxdp.aio.recv(pair.rx, 4, timeout=2, coalesce=1.0)) == 4
            assert len(await afxdp.aio.recv(pair.rx, 64, timeout=0, coalesce=1.0)) == 4
            assert loop.time() - start < 0.5
            for bad, error in (
                (-0.1, ValueError),
                (float("nan"), ValueError),
                (2.0, ValueError),
                ("0.1", TypeError),
                (True, TypeError),
            ):
                with pytest.raises(error, match="coalesce"):
                    await afxdp.aio.recv(pair.rx, 64, timeout=0.1, coalesce=bad)
            # A bad max is refused before the sleep, by name.
            start = loop.time()
            for bad, error in (
                (-1, ValueError),
                (2**32, ValueError),
                (True, TypeError),
                (1.5, TypeError),
                ("64", TypeError),
            ):
                with pytest.raises(error, match=r"invalid max"):
                    await afxdp.aio.recv(pair.rx, bad, timeout=2, coalesce=1.0)
            assert loop.time() - start < 0.5
            # A close() during a 1 s sleep ends the iteration within a CLOSE_CHECK or two.
            send(pair, 23, 3)
            loop.call_later(0.3, pair.rx.close)
            start = loop.time()
            async for _ in afxdp.aio.batches(pair.rx, 64, coalesce=1.0):
                raise AssertionError("a batch came out of a sleep that close() ended")
            assert 0.29 <= loop.time() - start < 0.8

        run(main())


def test_coalesce_on_a_port_waits_for_its_fullest_queue(lab_factory, run) -> None:
    lab = lab_factory(queues=2)
    with lab.enter("a"):
        tx = afxdp.Socket(lab.if_a, 1, umem=afxdp.Umem(256, 2048), rx_size=0)
    with lab.enter("b"):
        port = afxdp.Port(lab.if_b, mode="native")

    def send_q1(first: int, count: int) -> None:
        tx.send_packets(
            [numbered_frame(s, 64, lab.mac_a, lab.mac_b) for s in range(first, first + count)]
        )

    async def main() -> None:
        loop = asyncio.get_running_loop()
        send_q1(0, 5)
        while port[1].rx_available < 5:
            await asyncio.sleep(0.005)
        loop.call_later(0.05, send_q1, 5, 10)
        start = loop.time()
        with await afxdp.aio.recv(port, 64, timeout=2, coalesce=0.4) as batch:
            took = loop.time() - start
            assert batch.queue == 1
            assert [parse_numbered(memoryview(f)) for f in batch] == list(range(15))
        assert 0.39 <= took < 1.5, took  # (uvloop's clock counts whole milliseconds)

    with tx, port:
        run(main())
