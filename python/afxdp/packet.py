"""Build and parse the few packet kinds the examples and tests need (stdlib only).

* :func:`ipv4_udp` builds a full Ethernet/IPv4/UDP frame with valid checksums, padded to the
  60-byte Ethernet minimum (the 4-byte FCS is the NIC's business and never part of a frame here).
* :func:`dns_query_frame` builds the DNS query frames the DNS-flood example sends.
* :func:`numbered_frame` / :func:`parse_numbered` are the test oracle: a frame of an exact size that
  carries a sequence number and a pattern derived from it, so a receiver can check that every
  byte arrived intact and count losses, duplicates and reordering.
* :func:`parse_ethernet` and :func:`describe` give a one-line summary for dump tools.

Addresses may be given as text ("02:00:00:00:00:01", "10.11.0.1") or as packed bytes.

A veth quirk worth knowing when checking frames the *kernel stack* sent: with tx checksum offload
on (the veth default) the UDP/TCP checksum of such frames is only the pseudo-header sum
(CHECKSUM_PARTIAL), so XDP and AF_XDP receivers see an unfinished checksum. The IPv4 header
checksum is always complete. :func:`parse_numbered` therefore checks the IPv4 checksum and the
payload, and the UDP checksum only on request.

This module imports nothing else from the package, so it works without the compiled extension.
"""

from __future__ import annotations

import functools
import random
import socket
import struct
from collections.abc import Callable

__all__ = [
    "ETH_HLEN",
    "ETH_P_ARP",
    "ETH_P_IP",
    "ETH_P_IPV6",
    "ETH_ZLEN",
    "NUMBERED_MAGIC",
    "describe",
    "dns_query",
    "dns_query_frame",
    "ethernet",
    "ip4_bytes",
    "ipv4_checksum",
    "ipv4_udp",
    "mac_bytes",
    "numbered_frame",
    "parse_ethernet",
    "parse_numbered",
    "udp_checksum_ipv4",
]

Address = str | bytes
Buffer = bytes | bytearray | memoryview

ETH_HLEN = 14
#: Minimum Ethernet frame length without the FCS; shorter frames are zero-padded.
ETH_ZLEN = 60
ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
ETH_P_8021Q = 0x8100
IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPV4_HLEN = 20
UDP_HLEN = 8
_IPV4_DONT_FRAGMENT = 0x4000
_IPV4_MAX_TOTAL = 0xFFFF

_ETH = struct.Struct("!6s6sH")
_IPV4 = struct.Struct("!BBHHHBBH4s4s")  # ver/ihl, tos, total, id, frag, ttl, proto, csum, src, dst
_UDP = struct.Struct("!HHHH")
_PSEUDO = struct.Struct("!4s4sBBH")


# --- addresses -----------------------------------------------------------------------------------


def mac_bytes(mac: Address) -> bytes:
    """Pack a MAC address "aa:bb:cc:dd:ee:ff" (or "aa-bb-..") into 6 bytes; bytes pass through."""
    if isinstance(mac, (bytes, bytearray)):
        if len(mac) != 6:
            raise ValueError(f"a MAC address has 6 bytes, not {len(mac)}")
        return bytes(mac)
    return _mac_from_text(mac)


@functools.lru_cache(maxsize=256)
def _mac_from_text(mac: str) -> bytes:
    """Parse MAC text; cached because frame builders are called with the same few addresses."""
    parts = mac.replace("-", ":").split(":")
    if len(parts) != 6 or not all(1 <= len(p) <= 2 for p in parts):
        raise ValueError(f"not a MAC address: {mac!r}")
    try:
        return bytes(int(p, 16) for p in parts)
    except ValueError:
        raise ValueError(f"not a MAC address: {mac!r}") from None


def ip4_bytes(ip: Address) -> bytes:
    """Pack a dotted-quad IPv4 address into 4 bytes (strictly: no "10.1" shorthands)."""
    if isinstance(ip, (bytes, bytearray)):
        if len(ip) != 4:
            raise ValueError(f"an IPv4 address has 4 bytes, not {len(ip)}")
        return bytes(ip)
    return _ip4_from_text(ip)


@functools.lru_cache(maxsize=256)
def _ip4_from_text(ip: str) -> bytes:
    try:
        return socket.inet_pton(socket.AF_INET, ip)
    except OSError:
        raise ValueError(f"not an IPv4 address: {ip!r}") from None


def _mac_text(raw: Buffer) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def _ip4_text(raw: Buffer) -> str:
    return socket.inet_ntop(socket.AF_INET, bytes(raw))


# --- checksums -----------------------------------------------------------------------------------


def ipv4_checksum(data: Buffer) -> int:
    """Internet checksum (RFC 1071) of ``data``: ones' complement of the ones' complement sum.

    Over a header whose checksum field is zero it gives the value to store; over a header with a
    correct checksum it gives 0. Big-endian 16-bit words are summed modulo 0xffff by reducing the
    whole buffer as one integer (2**16 == 1 mod 0xffff), which runs in C and needs no loop.
    """
    if len(data) % 2:
        data = bytes(data) + b"\0"
    total = int.from_bytes(data, "big")
    folded = total % 0xFFFF
    if folded == 0 and total != 0:
        folded = 0xFFFF  # the ones' complement sum of non-zero data is never +0
    return ~folded & 0xFFFF


def udp_checksum_ipv4(src_ip: Address, dst_ip: Address, udp_bytes: Buffer) -> int:
    """UDP checksum over the IPv4 pseudo-header and ``udp_bytes`` (checksum field zeroed).

    Returns 0xffff where the sum gives 0, because 0 on the wire means "no checksum" (RFC 768).
    """
    pseudo = _PSEUDO.pack(ip4_bytes(src_ip), ip4_bytes(dst_ip), 0, IPPROTO_UDP, len(udp_bytes))
    return ipv4_checksum(pseudo + bytes(udp_bytes)) or 0xFFFF


# --- builders ------------------------------------------------------------------------------------


def ethernet(
    dst_mac: Address, src_mac: Address, ethertype: int, payload: Buffer, *, pad: bool = True
) -> bytes:
    """An Ethernet II frame (no FCS), zero-padded to :data:`ETH_ZLEN` bytes unless ``pad=False``."""
    frame = _ETH.pack(mac_bytes(dst_mac), mac_bytes(src_mac), ethertype) + bytes(payload)
    if pad and len(frame) < ETH_ZLEN:
        frame += bytes(ETH_ZLEN - len(frame))
    return frame


def _ipv4_header(
    src: bytes, dst: bytes, proto: int, payload_len: int, ttl: int, ident: int
) -> bytes:
    """A 20-byte IPv4 header (DF set, no options) with its checksum filled in."""
    total = IPV4_HLEN + payload_len
    if total > _IPV4_MAX_TOTAL:
        raise ValueError(f"IPv4 packet of {total} bytes exceeds {_IPV4_MAX_TOTAL}")
    header = _IPV4.pack(
        0x45, 0, total, ident & 0xFFFF, _IPV4_DONT_FRAGMENT, ttl, proto, 0, src, dst
    )
    return header[:10] + ipv4_checksum(header).to_bytes(2, "big") + header[12:]


def _udp_datagram(src: bytes, dst: bytes, src_port: int, dst_port: int, payload: bytes) -> bytes:
    """A UDP header plus ``payload`` with its checksum filled in."""
    length = UDP_HLEN + len(payload)
    datagram = _UDP.pack(src_port, dst_port, length, 0) + payload
    checksum = udp_checksum_ipv4(src, dst, datagram)
    return datagram[:6] + checksum.to_bytes(2, "big") + datagram[8:]


def ipv4_udp(
    src_mac: Address,
    dst_mac: Address,
    src_ip: Address,
    dst_ip: Address,
    src_port: int,
    dst_port: int,
    payload: Buffer,
    ttl: int = 64,
    *,
    ident: int = 0,
) -> bytes:
    """A complete Ethernet/IPv4/UDP frame with valid checksums, padded to 60 bytes when short.

    The IPv4 header has no options, DF set, TOS 0 and identification ``ident``.
    """
    src, dst = ip4_bytes(src_ip), ip4_bytes(dst_ip)
    udp = _udp_datagram(src, dst, src_port, dst_port, bytes(payload))
    ip = _ipv4_header(src, dst, IPPROTO_UDP, len(udp), ttl, ident)
    return ethernet(dst_mac, src_mac, ETH_P_IP, ip + udp)


# --- DNS -----------------------------------------------------------------------------------------

DNS_QTYPES = {
    "A": 1,
    "NS": 2,
    "CNAME": 5,
    "SOA": 6,
    "PTR": 12,
    "MX": 15,
    "TXT": 16,
    "AAAA": 28,
    "SRV": 33,
    "ANY": 255,
}
_DNS_FLAG_RD = 0x0100
_DNS_CLASS_IN = 1


def _dns_name(name: str) -> bytes:
    """Encode a domain name as DNS labels (RFC 1035 4.1.2); ASCII names only."""
    labels = name.rstrip(".").split(".") if name.strip(".") else []
    encoded = b""
    for label in labels:
        raw = label.encode("ascii")
        if not 1 <= len(raw) <= 63:
            raise ValueError(f"DNS label {label!r} must be 1..63 bytes")
        encoded += bytes([len(raw)]) + raw
    encoded += b"\0"
    if len(encoded) > 255:
        raise ValueError(f"DNS name {name!r} is longer than 255 bytes encoded")
    return encoded


def dns_query(name: str = "example.com", qtype: str | int = "A", txid: int | None = None) -> bytes:
    """A DNS query message: header with RD set and one question (``name``, ``qtype``, class IN).

    ``txid`` defaults to a random 16-bit id, as a resolver would use.
    """
    code = DNS_QTYPES[qtype.upper()] if isinstance(qtype, str) else qtype
    if txid is None:
        txid = random.getrandbits(16)
    header = struct.pack("!HHHHHH", txid & 0xFFFF, _DNS_FLAG_RD, 1, 0, 0, 0)
    return header + _dns_name(name) + struct.pack("!HH", code, _DNS_CLASS_IN)


def dns_query_frame(
    src_mac: Address,
    dst_mac: Address,
    src_ip: Address,
    dst_ip: Address,
    src_port: int = 40000,
    name: str = "example.com",
    dst_port: int = 53,
    *,
    qtype: str | int = "A",
    txid: int | None = None,
) -> bytes:
    """An Ethernet/IPv4/UDP frame carrying :func:`dns_query` (the DNS-flood example's frame)."""
    return ipv4_udp(
        src_mac, dst_mac, src_ip, dst_ip, src_port, dst_port, dns_query(name, qtype, txid)
    )


# --- numbered frames -----------------------------------------------------------------------------

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


# --- parsing and describing ----------------------------------------------------------------------


def parse_ethernet(frame: Buffer) -> tuple[str, str, int, bytes]:
    """Split an Ethernet II frame into (dst MAC text, src MAC text, ethertype, payload bytes).

    Raises ValueError when the frame is shorter than an Ethernet header. VLAN tags are not
    removed: the ethertype is then 0x8100 and the payload starts with the tag's TCI.
    """
    if len(frame) < ETH_HLEN:
        raise ValueError(f"frame of {len(frame)} bytes is shorter than an Ethernet header")
    dst, src, ethertype = _ETH.unpack_from(frame)
    return _mac_text(dst), _mac_text(src), ethertype, bytes(frame[ETH_HLEN:])


def describe(frame: Buffer) -> str:
    """A one-line human summary of a frame, e.g. for a dump tool. Never raises on bad input.

    Example: ``02:00:00:00:00:01 > 02:00:00:00:00:02 IPv4 10.11.0.1:9000 > 10.11.0.2:9000 UDP
    len 18 (60 bytes)``.
    """
    try:
        dst, src, ethertype, payload = parse_ethernet(frame)
    except ValueError:
        return f"truncated frame ({len(frame)} bytes)"
    parts = [f"{src} > {dst}"]
    while ethertype == ETH_P_8021Q and len(payload) >= 4:
        tci, ethertype = struct.unpack_from("!HH", payload)
        parts.append(f"vlan {tci & 0x0FFF}")
        payload = payload[4:]
    describer = _DESCRIBERS.get(ethertype)
    if describer is None:
        parts.append(f"ethertype 0x{ethertype:04x}")
    else:
        try:
            parts.append(describer(payload))
        except (ValueError, struct.error, IndexError):
            parts.append(f"{_ETHERTYPE_NAMES[ethertype]} truncated")
    parts.append(f"({len(frame)} bytes)")
    return " ".join(parts)


def _describe_arp(arp: bytes) -> str:
    htype, ptype, hlen, plen, op = struct.unpack_from("!HHBBH", arp)
    if (htype, ptype, hlen, plen) != (1, ETH_P_IP, 6, 4):
        return f"ARP op {op} (not Ethernet/IPv4)"
    sha, spa, tha, tpa = arp[8:14], arp[14:18], arp[18:24], arp[24:28]
    if len(tpa) < 4:
        raise ValueError("short ARP")
    if op == 1:
        return f"ARP who-has {_ip4_text(tpa)} tell {_ip4_text(spa)}"
    if op == 2:
        return f"ARP reply {_ip4_text(spa)} is-at {_mac_text(sha)}"
    return f"ARP op {op} {_ip4_text(spa)} > {_ip4_text(tpa)} ({_mac_text(tha)})"


def _describe_ipv4(ip: bytes) -> str:
    ver_ihl, _tos, total, _ident, frag, ttl, proto, _csum, src, dst = _IPV4.unpack_from(ip)
    ihl = (ver_ihl & 0x0F) * 4
    body = ip[ihl:total] if ihl <= total <= len(ip) else ip[ihl:]
    src_text, dst_text = _ip4_text(src), _ip4_text(dst)
    if frag & 0x1FFF:
        return f"IPv4 {src_text} > {dst_text} fragment proto {proto} ttl {ttl}"
    if proto == IPPROTO_UDP:
        sport, dport, length, _ = _UDP.unpack_from(body)
        return f"IPv4 {src_text}:{sport} > {dst_text}:{dport} UDP len {length - UDP_HLEN}"
    if proto == IPPROTO_TCP:
        sport, dport, seq, _ack, offset_flags = struct.unpack_from("!HHIIH", body)
        flags = "".join(name for bit, name in enumerate("FSRPAU") if offset_flags >> bit & 1)
        return f"IPv4 {src_text}:{sport} > {dst_text}:{dport} TCP [{flags or '.'}] seq {seq}"
    if proto == IPPROTO_ICMP:
        icmp_type, code = body[0], body[1]
        name = {0: "echo-reply", 3: "unreachable", 8: "echo-request", 11: "time-exceeded"}.get(
            icmp_type, f"type {icmp_type} code {code}"
        )
        if icmp_type in (0, 8):
            ident, seq = struct.unpack_from("!HH", body, 4)
            name += f" id {ident} seq {seq}"
        return f"IPv4 {src_text} > {dst_text} ICMP {name}"
    return f"IPv4 {src_text} > {dst_text} proto {proto} ttl {ttl}"


def _describe_ipv6(ip: bytes) -> str:
    _vtf, length, next_header, _hop_limit = struct.unpack_from("!IHBB", ip)
    src = socket.inet_ntop(socket.AF_INET6, ip[8:24])
    dst = socket.inet_ntop(socket.AF_INET6, ip[24:40])
    return f"IPv6 {src} > {dst} next-header {next_header} len {length}"


_DESCRIBERS: dict[int, Callable[[bytes], str]] = {
    ETH_P_ARP: _describe_arp,
    ETH_P_IP: _describe_ipv4,
    ETH_P_IPV6: _describe_ipv6,
}
_ETHERTYPE_NAMES = {ETH_P_ARP: "ARP", ETH_P_IP: "IPv4", ETH_P_IPV6: "IPv6"}
