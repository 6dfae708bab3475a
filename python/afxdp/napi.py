"""An interface's NAPI deferral settings, the companions of busy polling.

Preferred busy polling (``Socket(..., busy_poll_usecs=...)``) keeps the kernel's own softirq
processing of a queue out of the way only while the interface defers it: the kernel's recipe
(``Documentation/networking/napi.rst``, "Preferred busy polling") sets the interface's
``napi_defer_hard_irqs`` (how many empty polls may pass before interrupts come back) and
``gro_flush_timeout`` (nanoseconds of the watchdog that takes over meanwhile), e.g. 2 and
200000 as the kernel's AF_XDP selftests and xdpsock's documentation do::

    import afxdp.napi
    with afxdp.napi.deferral("eth0", defer_hard_irqs=2, gro_flush_timeout=200_000):
        ...  # busy-polling sockets on eth0; the old values come back afterwards

Both live in ``/sys/class/net/IFACE/``; writing them needs CAP_NET_ADMIN. sysfs shows the
network namespace that mounted /sys, not the calling thread's: in another namespace, run the
code inside it (``ip netns exec NS ...`` remounts /sys). An interface that /sys does not show
as the thread's own (checked by its ifindex) is refused with ``OSError(ENODEV)``, so a
same-named interface of another namespace is never touched. Standard library only.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from collections.abc import Iterator
from typing import NamedTuple

__all__ = ["MAX_DEFER_HARD_IRQS", "MAX_GRO_FLUSH_TIMEOUT", "Settings", "deferral", "read", "write"]

SYSFS_NET = "/sys/class/net"
#: The kernel keeps ``napi_defer_hard_irqs`` in an s32 (larger values: ERANGE).
MAX_DEFER_HARD_IRQS = 2**31 - 1
#: ``gro_flush_timeout`` is an unsigned long of nanoseconds; afxdp keeps it to 32 bits (4.3 s),
#: the range the kernel's per-NAPI netlink interface takes.
MAX_GRO_FLUSH_TIMEOUT = 2**32 - 1


class Settings(NamedTuple):
    """An interface's NAPI deferral settings."""

    defer_hard_irqs: int
    gro_flush_timeout: int  # nanoseconds


#: The sysfs file of each field of :class:`Settings`, in order.
_FILES = ("napi_defer_hard_irqs", "gro_flush_timeout")


def _directory(ifname: str) -> str:
    """The interface's sysfs directory, if it is the calling thread's interface of that name."""
    if not isinstance(ifname, str):
        raise TypeError(f"invalid ifname {ifname!r}: expected a str")
    try:
        index = socket.if_nametoindex(ifname)
    except OSError:
        raise OSError(errno.ENODEV, f"no such network interface: {ifname!r}") from None
    path = os.path.join(SYSFS_NET, ifname)
    try:
        with open(os.path.join(path, "ifindex"), encoding="ascii") as f:
            shown = int(f.read())
    except (OSError, ValueError):
        shown = None
    if shown != index:
        raise OSError(
            errno.ENODEV,
            f"{SYSFS_NET} does not show network interface {ifname!r} of this thread's network "
            "namespace (it shows the namespace that mounted /sys; run inside the interface's "
            "namespace, e.g. with ip netns exec)",
        )
    return path


def _check(name: str, value: object, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"invalid {name} {value!r}: expected an int")
    if not 0 <= value <= maximum:
        raise ValueError(f"invalid {name} {value}: must be from 0 to {maximum}")
    return value


def read(ifname: str) -> Settings:
    """The interface's current ``napi_defer_hard_irqs`` and ``gro_flush_timeout``."""
    path = _directory(ifname)
    values = []
    for name in _FILES:
        with open(os.path.join(path, name), encoding="ascii") as f:
            values.append(int(f.read()))
    return Settings(*values)


def _write(path: str, settings: Settings) -> None:
    for name, value in zip(_FILES, settings, strict=True):
        file = os.path.join(path, name)
        try:
            with open(file, "w", encoding="ascii") as f:
                f.write(f"{value}\n")
        except OSError as e:
            raise type(e)(e.errno, f"cannot set {file} to {value}: {e.strerror}") from None


def write(ifname: str, defer_hard_irqs: int, gro_flush_timeout: int) -> Settings:
    """Sets both values; returns the previous ones. If the second write fails, the first is
    undone before the error propagates."""
    defer_hard_irqs = _check("defer_hard_irqs", defer_hard_irqs, MAX_DEFER_HARD_IRQS)
    gro_flush_timeout = _check("gro_flush_timeout", gro_flush_timeout, MAX_GRO_FLUSH_TIMEOUT)
    path = _directory(ifname)
    old = read(ifname)
    try:
        _write(path, Settings(defer_hard_irqs, gro_flush_timeout))
    except BaseException:
        with contextlib.suppress(OSError):
            _write(path, old)
        raise
    return old


@contextlib.contextmanager
def deferral(
    ifname: str, defer_hard_irqs: int = 2, gro_flush_timeout: int = 200_000
) -> Iterator[Settings]:
    """Sets the interface's NAPI deferral for the body of the ``with`` and restores the previous
    values afterwards, also when the body raises. Yields the previous settings. An interface
    deleted meanwhile took its settings with it: nothing is restored then."""
    path = _directory(ifname)
    old = write(ifname, defer_hard_irqs, gro_flush_timeout)
    try:
        yield old
    finally:
        with contextlib.suppress(FileNotFoundError):
            _write(path, old)
