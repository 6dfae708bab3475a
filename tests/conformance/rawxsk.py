"""A raw AF_XDP socket in pure Python (ctypes), for the conformance tests only.

afxdp's ownership layer refuses descriptors the kernel would drop (a zero or too long length,
an address outside the Umem, a chain over ``max_frags``), so afxdp alone cannot show what the
kernel does with them. This module is a second, independent implementation of the AF_XDP ABI
(``linux/if_xdp.h``): it registers its own anonymous mmap as a UMEM, maps its own rings, puts
any ``(addr, len, options)`` descriptor a test asks for on the TX ring (and any address on the
fill ring), kicks the kernel with ``sendto(MSG_DONTWAIT)``, reads completions and receives, and
reads ``XDP_STATISTICS``. It shares no code and no memory with afxdp, so nothing it does can
touch an afxdp Umem. Create it inside the interface's network namespace
(``with lab.enter("a"): RawXsk(lab.if_a, ...)``) and use it as a context manager.

Ring indices are read and written through ctypes as plain 32-bit loads and stores: on x86-64
(the only architecture these tests run on) those are ordered as the kernel's ring protocol
needs (TSO); a port to a weakly ordered CPU would need barriers.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import socket
import time
from dataclasses import dataclass
from types import TracebackType
from typing import NamedTuple

AF_XDP = 44
SOL_XDP = 283

# setsockopt/getsockopt names (linux/if_xdp.h)
XDP_MMAP_OFFSETS = 1
XDP_RX_RING = 2
XDP_TX_RING = 3
XDP_UMEM_REG = 4
XDP_UMEM_FILL_RING = 5
XDP_UMEM_COMPLETION_RING = 6
XDP_STATISTICS = 7
XDP_OPTIONS = 8

# bind flags
XDP_SHARED_UMEM = 1 << 0
XDP_COPY = 1 << 1
XDP_ZEROCOPY = 1 << 2
XDP_USE_NEED_WAKEUP = 1 << 3
XDP_USE_SG = 1 << 4

# xdp_umem_reg.flags
XDP_UMEM_UNALIGNED_CHUNK_FLAG = 1 << 0

# xdp_desc.options
XDP_PKT_CONTD = 1 << 0
XDP_TX_METADATA = 1 << 1

XDP_RING_NEED_WAKEUP = 1 << 0
XSK_UNALIGNED_BUF_OFFSET_SHIFT = 48
XDP_PACKET_HEADROOM = 256

# mmap page offsets of the rings
XDP_PGOFF_RX_RING = 0
XDP_PGOFF_TX_RING = 0x80000000
XDP_UMEM_PGOFF_FILL_RING = 0x100000000
XDP_UMEM_PGOFF_COMPLETION_RING = 0x180000000

SO_BUSY_POLL = 46
SO_PREFER_BUSY_POLL = 69
SO_BUSY_POLL_BUDGET = 70
MSG_DONTWAIT = 0x40

_PROT_RW = mmap.PROT_READ | mmap.PROT_WRITE
_MAP_FAILED = ctypes.c_void_p(-1).value


class XdpUmemReg(ctypes.Structure):
    """struct xdp_umem_reg: 32 bytes since 6.8 (tx_metadata_len). An optlen below 32 makes the
    kernel parse the old layout and drop ``flags``, so the whole struct is always passed."""

    _fields_ = (
        ("addr", ctypes.c_uint64),
        ("len", ctypes.c_uint64),
        ("chunk_size", ctypes.c_uint32),
        ("headroom", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("tx_metadata_len", ctypes.c_uint32),
    )


class XdpRingOffset(ctypes.Structure):
    _fields_ = (
        ("producer", ctypes.c_uint64),
        ("consumer", ctypes.c_uint64),
        ("desc", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),
    )


class XdpMmapOffsets(ctypes.Structure):
    _fields_ = (
        ("rx", XdpRingOffset),
        ("tx", XdpRingOffset),
        ("fr", XdpRingOffset),
        ("cr", XdpRingOffset),
    )


class SockaddrXdp(ctypes.Structure):
    _fields_ = (
        ("sxdp_family", ctypes.c_uint16),
        ("sxdp_flags", ctypes.c_uint16),
        ("sxdp_ifindex", ctypes.c_uint32),
        ("sxdp_queue_id", ctypes.c_uint32),
        ("sxdp_shared_umem_fd", ctypes.c_uint32),
    )


class XdpDesc(ctypes.Structure):
    _fields_ = (
        ("addr", ctypes.c_uint64),
        ("len", ctypes.c_uint32),
        ("options", ctypes.c_uint32),
    )


class XdpStatistics(ctypes.Structure):
    _fields_ = (
        ("rx_dropped", ctypes.c_uint64),
        ("rx_invalid_descs", ctypes.c_uint64),
        ("tx_invalid_descs", ctypes.c_uint64),
        ("rx_ring_full", ctypes.c_uint64),
        ("rx_fill_ring_empty_descs", ctypes.c_uint64),
        ("tx_ring_empty_descs", ctypes.c_uint64),
    )


assert ctypes.sizeof(XdpUmemReg) == 32
assert ctypes.sizeof(XdpMmapOffsets) == 128
assert ctypes.sizeof(SockaddrXdp) == 16
assert ctypes.sizeof(XdpDesc) == 16
assert ctypes.sizeof(XdpStatistics) == 48


class Stats(NamedTuple):
    """The kernel's XDP_STATISTICS of a socket."""

    rx_dropped: int
    rx_invalid_descs: int
    tx_invalid_descs: int
    rx_ring_full: int
    rx_fill_ring_empty_descs: int
    tx_ring_empty_descs: int


class Desc(NamedTuple):
    """A TX or RX descriptor: ``addr`` as the ring carries it (unaligned mode: base | offset
    << 48), ``len``, ``options`` (XDP_PKT_CONTD, ...)."""

    addr: int
    len: int
    options: int = 0


_libc = ctypes.CDLL(None, use_errno=True)
_libc.socket.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int)
_libc.socket.restype = ctypes.c_int
_libc.setsockopt.argtypes = (
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_void_p,
    ctypes.c_uint32,
)
_libc.setsockopt.restype = ctypes.c_int
_libc.getsockopt.argtypes = (
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_void_p,
    ctypes.POINTER(ctypes.c_uint32),
)
_libc.getsockopt.restype = ctypes.c_int
_libc.bind.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_uint32)
_libc.bind.restype = ctypes.c_int
_libc.sendto.argtypes = (
    ctypes.c_int,
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_void_p,
    ctypes.c_uint32,
)
_libc.sendto.restype = ctypes.c_ssize_t
_libc.recvfrom.argtypes = (
    ctypes.c_int,
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_void_p,
    ctypes.c_void_p,
)
_libc.recvfrom.restype = ctypes.c_ssize_t
_libc.mmap.argtypes = (
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int64,  # off_t is 64 bits on x86-64: the ring offsets need it
)
_libc.mmap.restype = ctypes.c_void_p
_libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
_libc.munmap.restype = ctypes.c_int
_libc.close.argtypes = (ctypes.c_int,)
_libc.close.restype = ctypes.c_int


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def _mmap(length: int, flags: int, fd: int = -1, offset: int = 0, what: str = "mmap") -> int:
    addr = _libc.mmap(None, length, _PROT_RW, flags, fd, offset)
    if addr is None or addr == _MAP_FAILED:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return int(addr)


@dataclass
class _Ring:
    """One mapped ring: its indices and entries, and the producer/consumer bookkeeping."""

    base: int
    length: int
    size: int
    producer: ctypes.c_uint32
    consumer: ctypes.c_uint32
    flags: ctypes.c_uint32
    desc: int  # address of entry 0
    entry: type[ctypes.c_uint64] | type[XdpDesc]

    @classmethod
    def map(
        cls, fd: int, off: XdpRingOffset, size: int, pgoff: int, entry: type, what: str
    ) -> _Ring:
        length = off.desc + size * ctypes.sizeof(entry)
        base = _mmap(length, mmap.MAP_SHARED | mmap.MAP_POPULATE, fd, pgoff, what)
        return cls(
            base,
            length,
            size,
            ctypes.c_uint32.from_address(base + off.producer),
            ctypes.c_uint32.from_address(base + off.consumer),
            ctypes.c_uint32.from_address(base + off.flags),
            base + off.desc,
            entry,
        )

    def slot(self, index: int) -> ctypes.c_uint64 | XdpDesc:
        at = self.desc + (index & (self.size - 1)) * ctypes.sizeof(self.entry)
        return self.entry.from_address(at)

    # producer side (TX, FILL): free = size - (producer - consumer), wrapping u32
    def free(self) -> int:
        return self.size - ((self.producer.value - self.consumer.value) & 0xFFFFFFFF)

    # consumer side (RX, COMP)
    def available(self) -> int:
        return (self.producer.value - self.consumer.value) & 0xFFFFFFFF

    def unmap(self) -> None:
        _libc.munmap(self.base, self.length)


class RawXsk:
    """An AF_XDP socket bound to ``queue`` of ``ifname`` (in the calling thread's netns), with
    its own UMEM of ``frame_count`` chunks of ``frame_size`` bytes (unaligned chunk mode with
    ``unaligned=True``). No XSKMAP: it transmits, and receives only if a test registers it.

    ``rx_size=0`` makes it transmit-only. Bind flags: XDP_COPY (veth has no zero-copy) and
    XDP_USE_NEED_WAKEUP, plus XDP_USE_SG with ``sg=True``. ``busy_poll_usecs`` sets the busy
    poll socket options the kernel's BUSY-POLL runs set."""

    def __init__(
        self,
        ifname: str,
        queue: int = 0,
        *,
        frame_count: int = 256,
        frame_size: int = 4096,
        headroom: int = 0,
        unaligned: bool = False,
        rx_size: int = 0,
        tx_size: int = 512,
        fill_size: int = 512,
        comp_size: int = 512,
        sg: bool = False,
        busy_poll_usecs: int | None = None,
    ) -> None:
        self.frame_count = frame_count
        self.frame_size = frame_size
        self.unaligned = unaligned
        self.umem_size = frame_count * frame_size
        self._rings: list[_Ring] = []
        self._umem_len = -(-self.umem_size // mmap.PAGESIZE) * mmap.PAGESIZE
        self.umem = _mmap(self._umem_len, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, what="umem")
        self.fd = -1
        try:
            self.fd = _check(
                _libc.socket(AF_XDP, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0), "socket"
            )
            reg = XdpUmemReg(
                addr=self.umem,
                len=self.umem_size,
                chunk_size=frame_size,
                headroom=headroom,
                flags=XDP_UMEM_UNALIGNED_CHUNK_FLAG if unaligned else 0,
                tx_metadata_len=0,
            )
            self._setsockopt(XDP_UMEM_REG, reg, "XDP_UMEM_REG")
            for name, value, what in (
                (XDP_UMEM_FILL_RING, fill_size, "XDP_UMEM_FILL_RING"),
                (XDP_UMEM_COMPLETION_RING, comp_size, "XDP_UMEM_COMPLETION_RING"),
                (XDP_RX_RING, rx_size, "XDP_RX_RING"),
                (XDP_TX_RING, tx_size, "XDP_TX_RING"),
            ):
                if value:
                    self._setsockopt(name, ctypes.c_uint32(value), what)
            off = XdpMmapOffsets()
            optlen = ctypes.c_uint32(ctypes.sizeof(off))
            _check(
                _libc.getsockopt(
                    self.fd, SOL_XDP, XDP_MMAP_OFFSETS, ctypes.byref(off), ctypes.byref(optlen)
                ),
                "getsockopt(XDP_MMAP_OFFSETS)",
            )
            assert optlen.value == ctypes.sizeof(off), "pre-5.4 v1 ring offsets"
            u64 = ctypes.c_uint64
            self.fill = self._map(off.fr, fill_size, XDP_UMEM_PGOFF_FILL_RING, u64, "fill")
            self.comp = self._map(off.cr, comp_size, XDP_UMEM_PGOFF_COMPLETION_RING, u64, "comp")
            self.rx = (
                self._map(off.rx, rx_size, XDP_PGOFF_RX_RING, XdpDesc, "rx") if rx_size else None
            )
            self.tx = (
                self._map(off.tx, tx_size, XDP_PGOFF_TX_RING, XdpDesc, "tx") if tx_size else None
            )
            if busy_poll_usecs is not None:
                for opt, value in (
                    (SO_PREFER_BUSY_POLL, 1),
                    (SO_BUSY_POLL, busy_poll_usecs),
                    (SO_BUSY_POLL_BUDGET, 64),
                ):
                    self._setsockopt(opt, ctypes.c_int(value), f"SO {opt}", socket.SOL_SOCKET)
            flags = XDP_COPY | XDP_USE_NEED_WAKEUP | (XDP_USE_SG if sg else 0)
            addr = SockaddrXdp(AF_XDP, flags, socket.if_nametoindex(ifname), queue, 0)
            deadline = time.monotonic() + 3
            while True:  # the queue's previous socket is released by a workqueue: retry EBUSY
                if _libc.bind(self.fd, ctypes.byref(addr), ctypes.sizeof(addr)) == 0:
                    break
                err = ctypes.get_errno()
                if err != errno.EBUSY or time.monotonic() > deadline:
                    raise OSError(err, f"bind({ifname}, {queue}): {os.strerror(err)}")
                time.sleep(0.01)
        except BaseException:
            self.close()
            raise

    def _setsockopt(self, name: int, value: ctypes._CData, what: str, level: int = SOL_XDP) -> None:
        size = ctypes.sizeof(value)
        _check(_libc.setsockopt(self.fd, level, name, ctypes.byref(value), size), what)

    def _map(self, off: XdpRingOffset, size: int, pgoff: int, entry: type, what: str) -> _Ring:
        ring = _Ring.map(self.fd, off, size, pgoff, entry, f"mmap({what} ring)")
        self._rings.append(ring)
        return ring

    # --- UMEM -----------------------------------------------------------------------------------

    def write(self, addr: int, data: bytes) -> None:
        """Copy ``data`` into the UMEM at byte ``addr`` (a plain offset, not ring-encoded)."""
        assert addr >= 0 and addr + len(data) <= self.umem_size, (addr, len(data))
        ctypes.memmove(self.umem + addr, data, len(data))

    def read(self, addr: int, length: int) -> bytes:
        assert addr >= 0 and addr + length <= self.umem_size, (addr, length)
        return ctypes.string_at(self.umem + addr, length)

    def ring_addr(self, addr: int) -> int:
        """``addr`` as the rings carry it: unaligned mode puts the offset into the chunk in the
        top 16 bits (base | offset << 48); aligned mode takes the plain address."""
        if not self.unaligned:
            return addr
        base = addr - addr % self.frame_size
        return base | (addr - base) << XSK_UNALIGNED_BUF_OFFSET_SHIFT

    # --- TX -------------------------------------------------------------------------------------

    def tx_put(self, descs: list[Desc] | list[tuple[int, int, int]]) -> None:
        """Put the descriptors on the TX ring, verbatim, and publish them (no kick)."""
        assert self.tx is not None, "no tx ring"
        assert len(descs) <= self.tx.free(), (len(descs), self.tx.free())
        prod = self.tx.producer.value
        for i, (addr, length, options) in enumerate(descs):
            slot = self.tx.slot(prod + i)
            slot.addr, slot.len, slot.options = addr, length, options
        self.tx.producer.value = (prod + len(descs)) & 0xFFFFFFFF

    def kick(self) -> None:
        """sendto(MSG_DONTWAIT): the kernel transmits what is on the TX ring, up to its budget
        and up to the first invalid descriptor, which it skips. EAGAIN, EBUSY, ENOBUFS and
        ENETDOWN mean "try again" (as in the kernel's selftests); anything else raises."""
        if _libc.sendto(self.fd, None, 0, MSG_DONTWAIT, None, 0) < 0:
            err = ctypes.get_errno()
            if err not in (errno.EAGAIN, errno.EBUSY, errno.ENOBUFS, errno.ENETDOWN):
                raise OSError(err, f"sendto: {os.strerror(err)}")

    def tx_pending(self) -> int:
        assert self.tx is not None
        return (self.tx.producer.value - self.tx.consumer.value) & 0xFFFFFFFF

    def flush(self, timeout: float = 3.0) -> list[int]:
        """Kick until the kernel consumed the whole TX ring (one sendto stops at each invalid
        descriptor), reading completions meanwhile; returns the completed addresses."""
        done: list[int] = []
        deadline = time.monotonic() + timeout
        while self.tx_pending():
            assert time.monotonic() < deadline, f"{self.tx_pending()} descriptors never consumed"
            self.kick()
            done += self.completions()
        return done

    def completions(self) -> list[int]:
        """Take every address on the completion ring."""
        n = self.comp.available()
        cons = self.comp.consumer.value
        done = [int(self.comp.slot(cons + i).value) for i in range(n)]
        self.comp.consumer.value = (cons + n) & 0xFFFFFFFF
        return done

    def wait_completions(self, count: int, timeout: float = 3.0) -> list[int]:
        """Kick and read completions until ``count`` arrived or ``timeout`` passed."""
        done: list[int] = []
        deadline = time.monotonic() + timeout
        while len(done) < count and time.monotonic() < deadline:
            self.kick()
            done += self.completions()
        return done

    # --- RX -------------------------------------------------------------------------------------

    def fill_put(self, addrs: list[int]) -> None:
        """Put the (ring-encoded) addresses on the fill ring, verbatim."""
        assert len(addrs) <= self.fill.free(), (len(addrs), self.fill.free())
        prod = self.fill.producer.value
        for i, addr in enumerate(addrs):
            self.fill.slot(prod + i).value = addr
        self.fill.producer.value = (prod + len(addrs)) & 0xFFFFFFFF

    def rx_take(self) -> list[Desc]:
        """Take every descriptor on the RX ring (after a recvfrom(MSG_DONTWAIT), which drives
        busy polling)."""
        assert self.rx is not None, "no rx ring"
        _libc.recvfrom(self.fd, None, 0, MSG_DONTWAIT, None, None)
        n = self.rx.available()
        cons = self.rx.consumer.value
        got = []
        for i in range(n):
            slot = self.rx.slot(cons + i)
            got.append(Desc(int(slot.addr), int(slot.len), int(slot.options)))
        self.rx.consumer.value = (cons + n) & 0xFFFFFFFF
        return got

    # --- statistics, teardown -------------------------------------------------------------------

    def stats(self) -> Stats:
        """getsockopt(XDP_STATISTICS) with the full 48-byte struct (a 24-byte one folds
        rx_ring_full into rx_dropped)."""
        st = XdpStatistics()
        optlen = ctypes.c_uint32(ctypes.sizeof(st))
        _check(
            _libc.getsockopt(
                self.fd, SOL_XDP, XDP_STATISTICS, ctypes.byref(st), ctypes.byref(optlen)
            ),
            "getsockopt(XDP_STATISTICS)",
        )
        assert optlen.value == ctypes.sizeof(st), optlen.value
        return Stats(*(getattr(st, name) for name, _ in XdpStatistics._fields_))

    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        """Unmap the rings, close the socket, unmap the UMEM (in that order). Idempotent."""
        while self._rings:
            self._rings.pop().unmap()
        if self.fd >= 0:
            _libc.close(self.fd)
            self.fd = -1
        if self.umem:
            _libc.munmap(self.umem, self._umem_len)
            self.umem = 0

    def __enter__(self) -> RawXsk:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
