"""Moving the calling thread into a network namespace and back (``setns``), never left half
done by a KeyboardInterrupt; and holding a KeyboardInterrupt back around work that must not be
cut in half (an ``ip`` command, a batch of output). For :mod:`afxdp.lab` and the command.
Stdlib only."""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # the C half of signal: no Python frames
import contextlib
import ctypes
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType, TracebackType
from typing import Any

_CLONE_NEWNET = 0x4000_0000

_libc = ctypes.CDLL(None, use_errno=True)
_libc.setns.argtypes = (ctypes.c_int, ctypes.c_int)
_libc.setns.restype = ctypes.c_int


def _setns(fd: int) -> None:
    """Move the calling OS thread into the network namespace that ``fd`` refers to."""
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns(CLONE_NEWNET): {os.strerror(err)}")


class _SigintGuard:
    """Holds a KeyboardInterrupt back while the main thread is where it must not land, and
    raises it (or does whatever the SIGINT handler did) once that is over.

    Python raises a KeyboardInterrupt only in the main thread, between any two bytecodes: in
    the middle of ``subprocess.run`` (after the fork, before run() has the process to kill or
    wait for: an ``ip netns add`` then finishes after close() looked for its namespace), or
    between a ``setns`` and the code that switches back (even at the first instruction of an
    ``__exit__``). The guard's handler, installed by a C call (``_signal.signal``: nothing in
    Python runs between the installation and the next check), holds the interrupt back
    everywhere (``everywhere``), or only when it lands in one of :data:`_GUARDED` (the
    namespace switch's own code), else passes it on at once. In other threads it does nothing.
    """

    def __init__(self, everywhere: bool) -> None:
        self.everywhere = everywhere
        self.previous: Any = None
        self.installed = False
        self.held = False
        self.frame: FrameType | None = None

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        try:
            self.previous = _signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # the main thread of a subinterpreter
            return
        self.installed = True

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.everywhere or (frame is not None and frame.f_code in _GUARDED):
            self.held, self.frame = True, frame
        else:
            self._deliver(frame)

    def _deliver(self, frame: FrameType | None) -> None:
        """Does what the handler before this guard does with a SIGINT."""
        previous = self.previous
        if callable(previous):
            previous(signal.SIGINT, frame)
        elif previous in (signal.SIG_DFL, None):
            # None: a handler not installed from Python; treated as the default (death).
            _signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)

    def uninstall(self) -> None:
        """Puts the previous handler back (unless the body replaced this one), then delivers
        a SIGINT held back."""
        if not self.installed:
            return
        self.installed = False
        if _signal.getsignal(signal.SIGINT) == self._handle:
            previous = signal.SIG_DFL if self.previous is None else self.previous
            _signal.signal(signal.SIGINT, previous)
        if self.held:
            self.held = False
            self._deliver(self.frame)


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Holds a KeyboardInterrupt back until the body has ended (:class:`_SigintGuard`). One that
    comes before the body starts is raised before it starts."""
    guard = _SigintGuard(everywhere=True)
    guard.install()
    try:
        yield
    finally:
        guard.uninstall()


class _NetnsSwitch:
    """The body of the ``with`` with the current thread in the netns at ``path``, always switched
    back, also when a KeyboardInterrupt comes at any moment: one during the switch undoes it
    and is raised before the body, one during the switch back is raised after it."""

    def __init__(self, path: str, value: Any) -> None:
        self._path = path
        self._value = value
        self._original = -1
        self._switched = False
        self._guard = _SigintGuard(everywhere=False)

    def __enter__(self) -> Any:
        self._guard.install()
        try:
            self._original = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            target = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                _setns(target)
                self._switched = True
            finally:
                os.close(target)
            if self._guard.held:  # an interrupt while switching: no body, back at once
                self._switch_back()
        except BaseException:
            self._switch_back()
            raise
        return self._value

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._switch_back()

    def _switch_back(self) -> None:
        try:
            if self._switched:
                self._switched = False
                _setns(self._original)
        finally:
            if self._original >= 0:
                os.close(self._original)
                self._original = -1
            self._guard.uninstall()


def _thread_in_netns(path: str) -> _NetnsSwitch:
    """A ``with`` whose body runs with the current thread in the netns at ``path``."""
    return _NetnsSwitch(path, None)


#: Code where a KeyboardInterrupt would leave the thread in the wrong namespace.
_GUARDED = frozenset(
    f.__code__
    for f in (
        _SigintGuard.install,
        _SigintGuard._handle,
        _SigintGuard._deliver,
        _SigintGuard.uninstall,
        _NetnsSwitch.__enter__,
        _NetnsSwitch.__exit__,
        _NetnsSwitch._switch_back,
        _setns,
    )
)
