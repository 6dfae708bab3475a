"""afxdp.aio: awaiting frames on the event loop (the standard loop, and uvloop when installed).

Each test runs a coroutine on a fresh loop of the kind under test, on a socket pair in a private
lab (helpers.socket_pair); every wait is bounded by asyncio.wait_for or a timeout.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

pytest.importorskip("afxdp")

import afxdp.aio  # noqa: E402
from afxdp.testing import parse_numbered  # noqa: E402
from helpers import numbered_run, socket_pair  # noqa: E402

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

