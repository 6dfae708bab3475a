"""Classic pcap files and human views of frames, for ``afxdp dump`` and the examples (stdlib only).

* :class:`PcapWriter` writes libpcap files that tcpdump, Wireshark, tshark and scapy read.
* :func:`read_pcap` reads them back (both byte orders, microsecond and nanosecond files).
* :func:`summary` is :func:`afxdp.packet.describe` for any frame object; :func:`hexdump` the
  classic offset/hex/ASCII dump (the layout of ``hexdump -C`` and Go's ``hex.Dump``).

File format (https://www.tcpdump.org/manpages/pcap-savefile.5.html, and the IETF draft
"PCAP Capture File Format"): a 24-byte file header, then per frame a 16-byte record header
(seconds, fraction, captured length, original length) and the captured bytes.

Files are written with the *nanosecond* magic 0xa1b23c4d by default: ``time.time_ns()`` keeps
every digit, and libpcap (>= 1.5, 2013), tcpdump, Wireshark and scapy all read it (tcpdump shows
microseconds unless given ``--nano``). ``PcapWriter(..., nanosecond=False)`` writes the original
microsecond magic 0xa1b2c3d4 for tools older than that. Headers are always little-endian, so the
same frames give the same file on every machine; readers accept either byte order.

This module imports nothing from the compiled extension, so it works without it.
"""

from __future__ import annotations

import itertools
import math
import os
import struct
import time
from collections.abc import Iterable
from types import TracebackType
from typing import IO, SupportsBytes

from afxdp.packet import describe

__all__ = [
    "LINKTYPE_ETHERNET",
    "MAGIC_MICROSECONDS",
    "MAGIC_NANOSECONDS",
    "MAX_SNAPLEN",
    "PcapWriter",
    "hexdump",
    "read_pcap",
    "summary",
]

FrameBytes = bytes | bytearray | memoryview | SupportsBytes
"""Anything holding one frame: bytes-like objects, an afxdp ``Frame``."""

#: Magic number of a file with microsecond timestamps (the original format).
MAGIC_MICROSECONDS = 0xA1B2C3D4
#: Magic number of a file with nanosecond timestamps (what :class:`PcapWriter` writes by default).
MAGIC_NANOSECONDS = 0xA1B23C4D
#: DLT/LINKTYPE of Ethernet II frames (without FCS), what AF_XDP sockets receive.
LINKTYPE_ETHERNET = 1
#: libpcap's largest snapshot length (MAXIMUM_SNAPLEN); larger ones are clamped or refused.
MAX_SNAPLEN = 262144

_VERSION = (2, 4)
_FILE_HEADER = struct.Struct("<IHHiIII")  # magic, major, minor, thiszone, sigfigs, snaplen, network
_RECORD = struct.Struct("<IIII")  # ts_sec, ts_usec or ts_nsec, incl_len, orig_len
_U32 = 1 << 32
#: Record timestamps stay below 2**31 seconds (January 2038): the file format's seconds field is
#: unsigned, but libpcap (so tcpdump) reads it as a signed 32-bit number and cannot show later
#: times ("[Error converting time]"), so no reader would agree on them.
_MAX_SECONDS = 1 << 31


def _as_bytes(frame: FrameBytes) -> bytes:
    """The frame's bytes; an int is refused (``bytes(5)`` would be five zero bytes)."""
    if isinstance(frame, bytes):
        return frame
    if isinstance(frame, int):
        raise TypeError("a frame must be bytes-like or an afxdp Frame, not int")
    return bytes(frame)


# --- writing -------------------------------------------------------------------------------------


class PcapWriter:
    """Writes frames to a classic pcap file.

    Args:
        file_or_path: a path (the file is created or truncated, and closed by :meth:`close`), or
            a binary file object such as ``sys.stdout.buffer`` (flushed, not closed, by
            :meth:`close`).
        snaplen: frames longer than this are truncated to it; the record keeps their original
            length, as tcpdump ``-s`` does. 1 to :data:`MAX_SNAPLEN`.
        linktype: the LINKTYPE of every frame; :data:`LINKTYPE_ETHERNET` for AF_XDP.
        nanosecond: write the nanosecond magic (default) or the microsecond one.
        autoflush: flush after every :meth:`write` / :meth:`write_batch`, for a reader at the
            other end of a pipe (``afxdp dump -w - | tcpdump -r -``). The file header is always
            flushed at once.

    Each record goes to the file in one ``write()`` call, a batch's records in one call too, so
    a reader that follows the file sees whole records after each :meth:`flush`.

    Raises:
        ValueError: ``snaplen`` or ``linktype`` out of range.
        OSError: the file cannot be created.
    """

    def __init__(
        self,
        file_or_path: str | os.PathLike[str] | IO[bytes],
        snaplen: int = 65535,
        linktype: int = LINKTYPE_ETHERNET,
        *,
        nanosecond: bool = True,
        autoflush: bool = False,
    ) -> None:
        if not 1 <= snaplen <= MAX_SNAPLEN:
            raise ValueError(f"snaplen must be in 1..{MAX_SNAPLEN}, not {snaplen}")
        if not 0 <= linktype < _U32:
            raise ValueError(f"linktype must fit in 32 unsigned bits, not {linktype}")
        self.snaplen = snaplen
        self.linktype = linktype
        self.nanosecond = nanosecond
        self.autoflush = autoflush
        self.frames = 0  # records written so far
        self._scale = 1_000_000_000 if nanosecond else 1_000_000
        self._file: IO[bytes] | None = None
        if isinstance(file_or_path, (str, os.PathLike)):
            self.name = os.fspath(file_or_path)
            self._owns_file = True
            file: IO[bytes] = open(file_or_path, "wb")  # noqa: SIM115 - closed by close()
        else:
            if not callable(getattr(file_or_path, "write", None)):
                raise TypeError("file_or_path must be a path or a binary file object")
            self.name = str(getattr(file_or_path, "name", "<file>"))
            self._owns_file = False
            file = file_or_path
        try:
            magic = MAGIC_NANOSECONDS if nanosecond else MAGIC_MICROSECONDS
            file.write(_FILE_HEADER.pack(magic, *_VERSION, 0, 0, snaplen, linktype))
            file.flush()
        except BaseException:
            if self._owns_file:
                file.close()
            raise
        self._file = file

    @property
    def closed(self) -> bool:
        return self._file is None

    def _stamp(self, timestamp: float | None) -> tuple[int, int]:
        """(seconds, fraction in this file's unit) of ``timestamp`` (seconds since the epoch)."""
        if timestamp is None:
            seconds, ns = divmod(time.time_ns(), 1_000_000_000)
            return seconds, ns * self._scale // 1_000_000_000
        if math.isfinite(timestamp) and timestamp >= 0:
            seconds = math.floor(timestamp)
            fraction = round((timestamp - seconds) * self._scale)
            if fraction >= self._scale:  # rounded up to the next second
                seconds, fraction = seconds + 1, fraction - self._scale
            # Checked after rounding: 2**31 - 1e-10 rounds up to 2**31 seconds.
            if seconds < _MAX_SECONDS:
                return seconds, fraction
        raise ValueError(
            f"timestamp must be in 0..2**31 seconds since the epoch (libpcap reads the seconds "
            f"as a signed 32-bit number), not {timestamp}"
        )

    def _stamp_ns(self, ns: int) -> tuple[int, int]:
        """(seconds, fraction in this file's unit) of ``ns`` nanoseconds since the epoch,
        truncated to the file's unit (so times in one file never run backwards)."""
        seconds, rest = divmod(ns, 1_000_000_000)
        if not 0 <= seconds < _MAX_SECONDS:
            raise ValueError(
                f"timestamp must be in 0..2**31 seconds since the epoch (libpcap reads the "
                f"seconds as a signed 32-bit number), not {ns} ns"
            )
        return seconds, rest * self._scale // 1_000_000_000

    def _record(self, seconds: int, fraction: int, data: bytes, orig_len: int | None) -> bytes:
        if not data:
            # libpcap takes a record of 0 captured bytes for a corrupt header (tcpdump prints
            # "[Invalid header: caplen==0, len==0]" and no timestamp), so no reader would agree.
            raise ValueError("an empty frame cannot be written: pcap readers reject empty records")
        if orig_len is None:
            orig_len = len(data)
        elif not len(data) <= orig_len < _U32:
            raise ValueError(
                f"orig_len must be at least the frame's {len(data)} bytes and below 2**32, "
                f"not {orig_len}"
            )
        captured = data[: self.snaplen]
        return _RECORD.pack(seconds, fraction, len(captured), orig_len) + captured

    def _file_or_raise(self) -> IO[bytes]:
        if self._file is None:
            raise ValueError("I/O operation on a closed PcapWriter")
        return self._file

    def write(
        self, frame: FrameBytes, timestamp: float | None = None, orig_len: int | None = None
    ) -> None:
        """Append one frame.

        Args:
            frame: the frame's bytes (any bytes-like object or an afxdp ``Frame``).
            timestamp: seconds since the epoch, below 2**31 (libpcap's limit); None: now, to
                the nanosecond.
            orig_len: the frame's length on the wire when ``frame`` is already truncated;
                None: ``len(frame)``. Frames longer than ``snaplen`` are truncated here.

        Raises:
            ValueError: the writer is closed; ``timestamp`` or ``orig_len`` out of range; an
                empty frame.
        """
        file = self._file_or_raise()
        data = _as_bytes(frame)
        file.write(self._record(*self._stamp(timestamp), data, orig_len))
        self.frames += 1
        if self.autoflush:
            file.flush()

    def write_batch(
        self,
        batch: Iterable[FrameBytes],
        timestamp: float | None = None,
        *,
        timestamps_ns: Iterable[int] | None = None,
    ) -> int:
        """Append every packet of an afxdp ``FrameBatch`` (one record per packet: on a
        multi-buffer socket a chain of frames is one packet) or of any iterable of frames, all
        with one timestamp (None: now); returns how many records. The batch is only read, never
        released.

        ``timestamps_ns``: one time per record, in nanoseconds since the epoch (e.g. a batch's
        ``rx_timestamps``, the time the XDP program saw each packet; for a ``FrameBatch`` of
        chains, one per frame is taken too: each packet gets its first frame's); a 0 entry
        takes the batch's timestamp. Written to the file's resolution (ns, or us truncated).

        A ``FrameBatch`` is copied out in one call (``to_list()``), not frame by frame. Raises
        as :meth:`write` does, and ValueError when ``timestamps_ns`` does not have one entry per
        record (or per frame), before anything of the batch is written.
        """
        file = self._file_or_raise()
        to_list = getattr(batch, "to_list", None)
        frames = to_list() if callable(to_list) else [_as_bytes(frame) for frame in batch]
        seconds, fraction = self._stamp(timestamp)
        if timestamps_ns is None:
            stamps = [(seconds, fraction)] * len(frames)
        else:
            times = list(timestamps_ns)
            packets = getattr(batch, "packets", None)
            if len(times) != len(frames) and callable(packets):
                # Chains: one time per frame of the batch, one record per packet.
                spans = [len(p.frames) for p in packets()]
                if len(times) == sum(spans):
                    times = [times[start] for start in itertools.accumulate([0, *spans[:-1]])]
            if len(times) != len(frames):
                raise ValueError(
                    f"timestamps_ns has {len(times)} entries for a batch of {len(frames)} frames"
                )
            stamps = [self._stamp_ns(ns) if ns else (seconds, fraction) for ns in times]
        file.write(
            b"".join(
                self._record(sec, frac, data, None)
                for (sec, frac), data in zip(stamps, frames, strict=True)
            )
        )
        self.frames += len(frames)
        if self.autoflush:
            file.flush()
        return len(frames)

    def flush(self) -> None:
        """Push buffered records to the file (to the OS, not to the disk)."""
        self._file_or_raise().flush()

    def close(self) -> None:
        """Flush, and close the file if this writer opened it. Idempotent."""
        file, self._file = self._file, None
        if file is None:
            return
        if self._owns_file:
            file.close()
        else:
            file.flush()

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        unit = "ns" if self.nanosecond else "us"
        state = " [closed]" if self.closed else ""
        return (
            f"<PcapWriter {self.name!r} snaplen={self.snaplen} linktype={self.linktype} {unit} "
            f"frames={self.frames}{state}>"
        )


# --- reading -------------------------------------------------------------------------------------

_MAGICS = {
    # magic as read little-endian -> (byte order of the file, fraction units per second)
    MAGIC_MICROSECONDS: ("<", 1_000_000),
    MAGIC_NANOSECONDS: ("<", 1_000_000_000),
    int.from_bytes(MAGIC_MICROSECONDS.to_bytes(4, "little"), "big"): (">", 1_000_000),
    int.from_bytes(MAGIC_NANOSECONDS.to_bytes(4, "little"), "big"): (">", 1_000_000_000),
}
_PCAPNG_MAGIC = 0x0A0D0D0A


def read_pcap(path: str | os.PathLike[str] | IO[bytes]) -> list[tuple[float, bytes, int]]:
    """Every record of a classic pcap file as ``(timestamp, data, orig_len)``.

    ``timestamp`` is seconds since the epoch as a float (about 0.2 us resolution today; the file
    may hold nanoseconds), ``data`` the captured bytes, ``orig_len`` the length on the wire.
    Either byte order, microsecond or nanosecond magic; the whole file is read at once, so this
    is for tests and small captures. ``path`` may also be an open binary file.

    Raises:
        ValueError: not a classic pcap file (pcapng included), an unknown version, or a
            truncated or corrupt record; the message says where.
        OSError: the file cannot be read.
    """
    if isinstance(path, (str, os.PathLike)):
        name = os.fspath(path)
        with open(path, "rb") as file:
            content = file.read()
    else:
        name = str(getattr(path, "name", "<file>"))
        content = path.read()
    if len(content) < _FILE_HEADER.size:
        raise ValueError(
            f"{name}: not a pcap file: {len(content)} bytes, shorter than the "
            f"{_FILE_HEADER.size}-byte file header"
        )
    magic = int.from_bytes(content[:4], "little")
    if magic == _PCAPNG_MAGIC:
        raise ValueError(f"{name}: a pcapng file, not classic pcap (editcap -F pcap converts it)")
    if magic not in _MAGICS:
        raise ValueError(f"{name}: not a pcap file: magic 0x{content[:4].hex()}")
    order, scale = _MAGICS[magic]
    _, major, minor, _, _, snaplen, _ = struct.unpack_from(order + "IHHiIII", content)
    if major != _VERSION[0]:
        raise ValueError(f"{name}: pcap version {major}.{minor} is not supported (only 2.x)")
    record = struct.Struct(order + "IIII")
    longest = max(snaplen, MAX_SNAPLEN)
    records: list[tuple[float, bytes, int]] = []
    offset = _FILE_HEADER.size
    while offset < len(content):
        where = f"{name}: record {len(records)} at offset {offset}"
        if offset + record.size > len(content):
            raise ValueError(f"{where}: truncated record header")
        seconds, fraction, captured, orig_len = record.unpack_from(content, offset)
        if captured > longest:
            raise ValueError(f"{where}: captured length {captured} exceeds {longest} (corrupt)")
        start = offset + record.size
        data = content[start : start + captured]
        if len(data) < captured:
            raise ValueError(f"{where}: truncated: {len(data)} of {captured} bytes")
        records.append((seconds + fraction / scale, data, orig_len))
        offset = start + captured
    return records


# --- human views ---------------------------------------------------------------------------------


def summary(frame: FrameBytes) -> str:
    """A one-line decode of an Ethernet frame (:func:`afxdp.packet.describe`); never raises on
    bad input, and also takes an afxdp ``Frame``."""
    try:
        data = _as_bytes(frame)
    except TypeError:
        return f"not a frame: {type(frame).__name__}"
    return describe(data)


_PRINTABLE = bytes(b if 0x20 <= b < 0x7F else ord(".") for b in range(256))


def hexdump(frame: FrameBytes) -> str:
    """The classic dump: 16 bytes a line, hex offset, hex bytes in two groups of 8, ASCII.

    The layout of ``hexdump -C`` and Go's ``hex.Dump`` (what the Go dumpframes example prints),
    without a trailing newline; "" for an empty frame::

        00000000  02 00 00 00 00 02 02 00  00 00 00 01 08 00 45 00  |..............E.|
    """
    data = _as_bytes(frame)
    lines = []
    for offset in range(0, len(data), 16):
        line = data[offset : offset + 16]
        hex_part = f"{line[:8].hex(' '):<23}  {line[8:].hex(' '):<23}"
        lines.append(f"{offset:08x}  {hex_part}  |{line.translate(_PRINTABLE).decode('ascii')}|")
    return "\n".join(lines)
