"""asyncio for afxdp: await received frames without a thread and without busy polling.

::

    import afxdp.aio

    async def main() -> None:
        with afxdp.Socket("eth0", 0, program=prog) as sock:
            async for batch in afxdp.aio.batches(sock, 64):
                with batch:
                    ...                                  # the frames, as from Socket.recv
            # or one at a time, with a deadline:
            batch = await afxdp.aio.recv(sock, 64, timeout=1.0)

These are functions rather than methods, because :class:`afxdp.Socket` is a compiled, final
class; they take anything with ``recv(max, timeout)``, ``fileno()`` and ``closed``, so a future
``Port`` works the same way. Stdlib only; any asyncio event loop with ``add_reader`` works
(the standard loop and uvloop are tested).

How it waits: the receive ring is tried first (``recv(max, 0)``); only when it is empty does the
coroutine register the socket's file descriptor with ``loop.add_reader`` (the kernel reports an
AF_XDP socket readable while its rx ring holds frames) and sleep until then. It registers a
duplicate of the descriptor (``os.dup``), so the loop never holds a number that a concurrent
``close()`` frees and the system may hand to another file; the duplicate is closed when the wait
ends. A ``close()`` from elsewhere while a coroutine waits is noticed within
:data:`CLOSE_CHECK` seconds: :func:`recv` then raises ``ValueError`` (as ``Socket.recv`` does on
a closed socket) and :func:`batches` ends. Cancelling a waiting coroutine loses no frame: frames
are taken from the ring only by the synchronous ``recv`` after a wake-up. ``coalesce=``, as on
``Socket.recv``, first lets frames gather in an ``asyncio.sleep`` when fewer than `max` are
ready, so that one wake-up takes many.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import math
import os
from collections.abc import AsyncIterator
from typing import Protocol

from afxdp._native import FrameBatch

__all__ = ["CLOSE_CHECK", "Receiver", "batches", "recv"]

#: Seconds between checks for a ``close()`` made while a coroutine waits.
CLOSE_CHECK = 0.1

#: The longest ``coalesce`` (seconds), as for ``Socket.recv``.
MAX_COALESCE = 1.0

#: The largest ``max``, as for ``Socket.recv`` (a 32-bit count).
MAX_FRAMES = 2**32 - 1


class Receiver(Protocol):
    """What :func:`recv` and :func:`batches` need: :class:`afxdp.Socket` has it."""

    def recv(self, max: int = 64, timeout: float | None = 0.0) -> FrameBatch: ...

    def fileno(self) -> int: ...

    @property
    def closed(self) -> bool: ...


def _check_max(max: int) -> None:
    """Refuses a bad `max` as ``Socket.recv`` does, before any wait (a coalescing sleep would
    otherwise come first)."""
    if isinstance(max, bool) or not isinstance(max, int):
        raise TypeError(f"invalid max {max!r}: expected an int")
    if not 0 <= max <= MAX_FRAMES:
        raise ValueError(f"invalid max {max}: must be from 0 to {MAX_FRAMES}")


def _most_ready(sock: Receiver) -> int:
    """The frames one receive could take now: a Socket's rx ring, a Port's fullest queue (a
    Port's receive takes from one queue)."""
    sockets = getattr(sock, "sockets", None)
    if sockets is not None:
        return builtins.max((s.rx_available for s in sockets if not s.closed), default=0)
    ready: int = getattr(sock, "rx_available")  # noqa: B009 (not in the Receiver protocol)
    return ready


async def _linger(sock: Receiver, span: float) -> None:
    """Sleeps `span` seconds on the event loop, not woken by arriving frames, looking at
    ``sock.closed`` every :data:`CLOSE_CHECK` seconds (a close ends it)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + span
    while (left := end - loop.time()) > 0 and not sock.closed:
        await asyncio.sleep(builtins.min(left, CLOSE_CHECK))


async def recv(
    sock: Receiver, max: int = 64, *, timeout: float | None = None, coalesce: float | None = None
) -> FrameBatch:
    """Waits for frames and returns a batch of 1 to `max` of them, like ``sock.recv(max,
    timeout)`` but awaiting instead of blocking the thread.

    Args:
        sock: an open :class:`afxdp.Socket` (or another :class:`Receiver`).
        max: at most this many frames, as for ``Socket.recv`` (0: an empty batch at once).
        timeout: seconds to wait for the first frame; None (default) waits until one arrives.
            When it passes, the returned batch is empty.
        coalesce: as ``Socket.recv(coalesce=)`` (seconds, at most 1; None or 0: off): when
            fewer than `max` frames are ready, first let frames gather for that long (an
            ``asyncio.sleep`` that arriving frames do not end, never past the timeout), then
            take what is ready. Needs an :class:`afxdp.Socket` or :class:`afxdp.Port` (it reads
            how many frames are ready).

    Raises:
        ValueError: the socket is closed, also by a ``close()`` while this waits; a bad `max`,
            a negative or NaN `timeout`, a `coalesce` that is not from 0 to 1.
        asyncio.CancelledError: the awaiting task was cancelled (no frame is lost).
    """
    _check_max(max)
    if timeout is not None and (math.isnan(timeout) or timeout < 0):
        raise ValueError(f"timeout must be >= 0 or None, not {timeout}")
    if coalesce is not None:
        if isinstance(coalesce, bool) or not isinstance(coalesce, int | float):
            raise TypeError(f"coalesce must be seconds (a float) or None, not {coalesce!r}")
        if not 0 <= coalesce <= MAX_COALESCE:
            raise ValueError(
                f"coalesce must be from 0 to 1 second (0 or None: off), not {coalesce}"
            )
    if coalesce and timeout != 0 and _most_ready(sock) < max:
        span = coalesce if timeout is None else builtins.min(coalesce, timeout)
        started = asyncio.get_running_loop().time()
        await _linger(sock, span)
        if timeout is not None:
            timeout = builtins.max(0.0, timeout - (asyncio.get_running_loop().time() - started))
    batch = sock.recv(max, 0.0)
    if len(batch) or timeout == 0 or max == 0:
        # With max 0 nothing is ever taken: the ring stays readable, so waiting would spin.
        return batch
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None or math.isinf(timeout) else loop.time() + timeout
    readable = asyncio.Event()
    fd = _watch(sock)
    loop.add_reader(fd, readable.set)
    try:
        while True:
            wait = CLOSE_CHECK if deadline is None else min(CLOSE_CHECK, deadline - loop.time())
            if wait > 0 and not readable.is_set():
                # asyncio.timeout, not wait_for: Python 3.11's wait_for returned the wait's
                # result when the task was cancelled just after the wait had ended, and the
                # cancel was lost.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await readable.wait()
            readable.clear()
            batch = sock.recv(max, 0.0)  # ValueError once the socket is closed
            if len(batch) or (deadline is not None and loop.time() >= deadline):
                return batch
    finally:
        loop.remove_reader(fd)
        os.close(fd)


def _watch(sock: Receiver) -> int:
    """A duplicate of the socket's descriptor for the event loop to watch (the socket's own
    may close meanwhile). A socket closed by another thread since the last receive is the
    ValueError a receive raises, not the OSError (EBADF) of duplicating descriptor -1."""
    try:
        return os.dup(sock.fileno())
    except OSError:
        if sock.closed:
            raise ValueError(f"{type(sock).__name__} is closed") from None
        raise


async def batches(
    sock: Receiver, max: int = 64, *, coalesce: float | None = None
) -> AsyncIterator[FrameBatch]:
    """``async for batch in batches(sock, max)``: each received batch (1 to `max` frames) as it
    arrives; the iteration ends when the socket is closed (with `max` 0: at once). The batches
    are the caller's to send, release or leave in a ``with batch:`` block, as from
    ``Socket.recv``. `coalesce` is each receive's, as in :func:`recv`.

    Raises:
        ValueError: a bad `max` or `coalesce`.
    """
    _check_max(max)
    if max == 0:
        return  # no batch of 1 to 0 frames: ends at once, as ``Socket.batches(0)``
    while True:
        try:
            batch = await recv(sock, max, coalesce=coalesce)
        except ValueError:
            if sock.closed:
                return
            raise
        yield batch
