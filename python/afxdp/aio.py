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
are taken from the ring only by the synchronous ``recv`` after a wake-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
from collections.abc import AsyncIterator
from typing import Protocol

from afxdp._native import FrameBatch

__all__ = ["CLOSE_CHECK", "Receiver", "batches", "recv"]

#: Seconds between checks for a ``close()`` made while a coroutine waits.
CLOSE_CHECK = 0.1


class Receiver(Protocol):
    """What :func:`recv` and :func:`batches` need: :class:`afxdp.Socket` has it."""

    def recv(self, max: int = 64, timeout: float | None = 0.0) -> FrameBatch: ...

    def fileno(self) -> int: ...

    @property
    def closed(self) -> bool: ...


async def recv(sock: Receiver, max: int = 64, *, timeout: float | None = None) -> FrameBatch:
    """Waits for frames and returns a batch of 1 to `max` of them, like ``sock.recv(max,
    timeout)`` but awaiting instead of blocking the thread.

    Args:
        sock: an open :class:`afxdp.Socket` (or another :class:`Receiver`).
        max: at most this many frames, as for ``Socket.recv``.
        timeout: seconds to wait for the first frame; None (default) waits until one arrives.
            When it passes, the returned batch is empty.

    Raises:
        ValueError: the socket is closed, also by a ``close()`` while this waits; a bad `max`
            or a negative or NaN `timeout`.
        asyncio.CancelledError: the awaiting task was cancelled (no frame is lost).
    """
    if timeout is not None and (math.isnan(timeout) or timeout < 0):
        raise ValueError(f"timeout must be >= 0 or None, not {timeout}")
    batch = sock.recv(max, 0.0)
    if len(batch) or timeout == 0:
        return batch
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None or math.isinf(timeout) else loop.time() + timeout
    readable = asyncio.Event()
    fd = os.dup(sock.fileno())
    loop.add_reader(fd, readable.set)
    try:
        while True:
            wait = CLOSE_CHECK if deadline is None else min(CLOSE_CHECK, deadline - loop.time())
            if wait > 0 and not readable.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(readable.wait(), wait)
            readable.clear()
            batch = sock.recv(max, 0.0)  # ValueError once the socket is closed
            if len(batch) or (deadline is not None and loop.time() >= deadline):
                return batch
    finally:
        loop.remove_reader(fd)
        os.close(fd)


async def batches(sock: Receiver, max: int = 64) -> AsyncIterator[FrameBatch]:
    """``async for batch in batches(sock, max)``: each received batch (1 to `max` frames) as it
    arrives; the iteration ends when the socket is closed. The batches are the caller's to
    send, release or leave in a ``with batch:`` block, as from ``Socket.recv``.

    Raises:
        ValueError: a bad `max`.
    """
    while True:
        try:
            batch = await recv(sock, max)
        except ValueError:
            if sock.closed:
                return
            raise
        yield batch
