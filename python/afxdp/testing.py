"""Test oracles for afxdp's own tests, benches and examples (stdlib only; not the public API).

* :func:`numbered_frame` / :func:`parse_numbered`: a frame of an exact size that carries a
  sequence number and a pattern derived from it, so a receiver can check that every byte arrived
  intact and count losses, duplicates and reordering.
* :func:`arp_request`: an Ethernet/ARP who-has frame, optionally with bytes after the ARP body
  (a marker a test can find again).

A veth quirk worth knowing when checking frames the *kernel stack* sent: with tx checksum offload
on (the veth default) the UDP checksum of such frames is only the pseudo-header sum
(CHECKSUM_PARTIAL). :func:`parse_numbered` therefore checks the IPv4 checksum and the payload,
and the UDP checksum only on request.

This module imports only :mod:`afxdp.packet` from the package, so it works without the compiled
extension (tests/conftest.py loads both from the source tree when the package does not import).
"""

from __future__ import annotations

import struct

from afxdp.packet import (
    ETH_HLEN,
    ETH_P_ARP,
    ETH_P_IP,
    ETH_ZLEN,
    IPPROTO_UDP,
    IPV4_HLEN,
    UDP_HLEN,
    Address,
    Buffer,
    ethernet,
    ip4_bytes,
    ipv4_checksum,
    ipv4_udp,
    mac_bytes,
)

__all__ = ["NUMBERED_MAGIC", "arp_request", "numbered_frame", "parse_numbered"]

_IPV4_MAX_TOTAL = 0xFFFF
_PSEUDO = struct.Struct("!4s4sBBH")


#: First 8 bytes of the UDP payload of every numbered frame.
NUMBERED_MAGIC = b"AFXDPSEQ"
_NUMBERED_OFFSET = ETH_HLEN + IPV4_HLEN + UDP_HLEN  # where the UDP payload starts
_NUMBERED_HEAD = len(NUMBERED_MAGIC) + 8  # magic + u64 sequence number
_NUMBERED_MIN = max(ETH_ZLEN, _NUMBERED_OFFSET + _NUMBERED_HEAD)
_NUMBERED_MAX = ETH_HLEN + _IPV4_MAX_TOTAL
_pattern_source = bytes(range(256))


def _pattern_start(seq: int) -> int:
    """The first pattern byte: the 8 bytes of ``seq`` XORed together (``seq`` itself below 256).

    Folding in every byte makes a corrupted bit anywhere in the sequence number show up as a
    pattern mismatch, not as a valid frame with another number.
    """
    folded = seq ^ seq >> 32
    folded ^= folded >> 16
    return (folded ^ folded >> 8) & 0xFF


def _pattern(seq: int, length: int) -> bytes:
    """``bytes((start + i) & 0xff for i in range(length))`` with ``start = _pattern_start(seq)``,
    by slicing a cached repeating buffer instead of looping per byte."""
    global _pattern_source
    start = _pattern_start(seq)
    if start + length > len(_pattern_source):
        _pattern_source = bytes(range(256)) * ((start + length) // 256 + 1)
    return _pattern_source[start : start + length]


def numbered_frame(
    seq: int,
    size: int,
    src_mac: Address,
    dst_mac: Address,
    src_ip: Address = "10.11.0.1",
    dst_ip: Address = "10.11.0.2",
    src_port: int = 9000,
    dst_port: int = 9000,
) -> bytes:
    """A UDP frame of exactly ``size`` bytes carrying sequence number ``seq``.

    UDP payload: :data:`NUMBERED_MAGIC`, ``seq`` as big-endian u64, then byte ``i`` of the rest is
    ``(x + i) & 0xff``, where ``x`` is the XOR of the 8 bytes of ``seq`` (so ``x == seq`` below
    256). The IPv4 identification is ``seq & 0xffff``; all checksums are valid.
    """
    if not _NUMBERED_MIN <= size <= _NUMBERED_MAX:
        raise ValueError(f"size must be in {_NUMBERED_MIN}..{_NUMBERED_MAX}, not {size}")
    if not 0 <= seq < 1 << 64:
        raise ValueError(f"seq must fit in 64 unsigned bits, not {seq}")
    payload = (
        NUMBERED_MAGIC
        + seq.to_bytes(8, "big")
        + _pattern(seq, size - _NUMBERED_OFFSET - _NUMBERED_HEAD)
    )
    return ipv4_udp(src_mac, dst_mac, src_ip, dst_ip, src_port, dst_port, payload, ident=seq)


def parse_numbered(frame: Buffer, *, check_udp_checksum: bool = False) -> int | None:
    """The sequence number of a frame made by :func:`numbered_frame`, or None.

    None means the frame is not an intact numbered frame: another protocol (ARP, ...), a wrong
    magic, a bad IPv4 header checksum, a frame length that disagrees with the IPv4 or UDP length,
    an IPv4 identification or payload byte that differs from what ``seq`` implies. Addresses and
    ports are not checked. With ``check_udp_checksum`` a non-zero UDP checksum must verify too
    (do not ask for it on frames the kernel stack sent over veth; see the module doc).
    """
    data = bytes(frame)
    if len(data) < _NUMBERED_MIN or data[12:14] != b"\x08\x00" or data[14] != 0x45:
        return None
    if data[23] != IPPROTO_UDP or int.from_bytes(data[16:18], "big") != len(data) - ETH_HLEN:
        return None
    if int.from_bytes(data[38:40], "big") != len(data) - ETH_HLEN - IPV4_HLEN:
        return None
    if ipv4_checksum(data[ETH_HLEN : ETH_HLEN + IPV4_HLEN]) != 0:
        return None
    head = data[_NUMBERED_OFFSET : _NUMBERED_OFFSET + _NUMBERED_HEAD]
    if head[:8] != NUMBERED_MAGIC:
        return None
    seq = int.from_bytes(head[8:], "big")
    if int.from_bytes(data[18:20], "big") != seq & 0xFFFF:
        return None
    rest = data[_NUMBERED_OFFSET + _NUMBERED_HEAD :]
    if rest != _pattern(seq, len(rest)):
        return None
    if check_udp_checksum and data[40:42] != b"\0\0":
        pseudo = _PSEUDO.pack(data[26:30], data[30:34], 0, IPPROTO_UDP, len(data) - 34)
        if ipv4_checksum(pseudo + data[34:]) != 0:
            return None
    return seq


# --- ARP -----------------------------------------------------------------------------------------

_ARP_REQUEST = 1
_ARP_HTYPE_ETHERNET = 1


def arp_request(
    src_mac: Address, src_ip: Address, target_ip: Address, trailer: bytes = b""
) -> bytes:
    """A broadcast ARP request "who-has ``target_ip`` tell ``src_ip``", ``trailer`` appended to
    the 28-byte ARP body (the frame is padded to 60 bytes when shorter)."""
    arp = struct.pack(
        "!HHBBH6s4s6s4s",
        _ARP_HTYPE_ETHERNET,
        ETH_P_IP,
        6,
        4,
        _ARP_REQUEST,
        mac_bytes(src_mac),
        ip4_bytes(src_ip),
        bytes(6),
        ip4_bytes(target_ip),
    )
    return ethernet("ff:ff:ff:ff:ff:ff", src_mac, ETH_P_ARP, arp + trailer)
