"""Build and parse the few packet kinds the examples and tests need (stdlib only).

* :func:`ipv4_udp` builds a full Ethernet/IPv4/UDP frame with valid checksums, padded to the
  60-byte Ethernet minimum (the 4-byte FCS is the NIC's business and never part of a frame here).
* :func:`dns_query_frame` builds the DNS query frames the DNS-flood example sends.
* :func:`parse_ethernet` and :func:`describe` give a one-line summary for dump tools.

Addresses may be given as text ("02:00:00:00:00:01", "10.11.0.1") or as packed bytes.

A veth quirk worth knowing when checking frames the *kernel stack* sent: with tx checksum offload
on (the veth default) the UDP/TCP checksum of such frames is only the pseudo-header sum
(CHECKSUM_PARTIAL), so XDP and AF_XDP receivers see an unfinished checksum. The IPv4 header
checksum is always complete.

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
    "describe",
    "dns_query",
    "dns_query_frame",
    "ethernet",
    "ip4_bytes",
    "ipv4_checksum",
    "ipv4_udp",
    "mac_bytes",
    "parse_ethernet",
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
ETH_P_8021AD = 0x88A8
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
    if not isinstance(mac, str):
        raise TypeError(f"a MAC address is text or 6 bytes, not {type(mac).__name__}")
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
    if not isinstance(ip, str):
        raise TypeError(f"an IPv4 address is text or 4 bytes, not {type(ip).__name__}")
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


def _check_range(name: str, value: int, low: int, high: int) -> None:
    """ValueError naming ``value`` unless ``low <= value <= high`` (struct.error, which packing
    would raise instead, is not a ValueError)."""
    if not low <= value <= high:
        raise ValueError(f"{name} must be in {low}..{high}, not {value}")


def ethernet(
    dst_mac: Address, src_mac: Address, ethertype: int, payload: Buffer, *, pad: bool = True
) -> bytes:
    """An Ethernet II frame (no FCS), zero-padded to :data:`ETH_ZLEN` bytes unless ``pad=False``.

    Raises ValueError naming ``ethertype`` when it does not fit 16 bits.
    """
    _check_range("ethertype", ethertype, 0, 0xFFFF)
    frame = _ETH.pack(mac_bytes(dst_mac), mac_bytes(src_mac), ethertype) + bytes(payload)
    if pad and len(frame) < ETH_ZLEN:
        frame += bytes(ETH_ZLEN - len(frame))
    return frame


def _ipv4_header(
    src: bytes, dst: bytes, proto: int, payload_len: int, ttl: int, ident: int
) -> bytes:
    """A 20-byte IPv4 header (DF set, no options) with its checksum filled in."""
    _check_range("ttl", ttl, 0, 255)
    total = IPV4_HLEN + payload_len
    if total > _IPV4_MAX_TOTAL:
        raise ValueError(f"IPv4 packet of {total} bytes exceeds {_IPV4_MAX_TOTAL}")
    header = _IPV4.pack(
        0x45, 0, total, ident & 0xFFFF, _IPV4_DONT_FRAGMENT, ttl, proto, 0, src, dst
    )
    return header[:10] + ipv4_checksum(header).to_bytes(2, "big") + header[12:]


def _udp_datagram(src: bytes, dst: bytes, src_port: int, dst_port: int, payload: bytes) -> bytes:
    """A UDP header plus ``payload`` with its checksum filled in."""
    _check_range("src_port", src_port, 0, 0xFFFF)
    _check_range("dst_port", dst_port, 0, 0xFFFF)
    length = UDP_HLEN + len(payload)
    if length > 0xFFFF:
        raise ValueError(f"UDP datagram of {length} bytes exceeds 65535 (payload too long)")
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

    Raises:
        ValueError: naming the value: a bad address, a port outside 0..65535, ``ttl`` outside
            0..255, a payload too long for one IPv4 packet.
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
        try:
            raw = label.encode("ascii")
        except UnicodeEncodeError:
            raise ValueError(
                f"DNS label {label!r} is not ASCII (encode it as IDNA first)"
            ) from None
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

    Raises:
        ValueError: ``qtype`` is neither a name in :data:`DNS_QTYPES` nor a number 0..65535, or
            ``name`` is not a valid DNS name.
    """
    if isinstance(qtype, str):
        code = DNS_QTYPES.get(qtype.upper())
        if code is None:
            names = ", ".join(DNS_QTYPES)
            raise ValueError(f"unknown DNS qtype {qtype!r} (use {names} or a number 0..65535)")
    elif 0 <= qtype <= 0xFFFF:
        code = qtype
    else:
        raise ValueError(f"DNS qtype {qtype!r} must be in 0..65535")
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
    """A one-line human summary of a frame's headers, for dump tools. Never raises on bad input.

    MACs, 802.1Q and 802.1ad VLAN tags, the ethertype (named IPv4, IPv6, ARP, else in hex),
    addresses, protocol, TCP/UDP ports, ICMP/ICMPv6 type, ARP operation, IPv6 extension headers
    (up to four, as many as the built-in XDP program walks), the frame's length. Examples, after
    the MACs (``02:00:00:00:00:01 > 02:00:00:00:00:02``)::

        IPv4 10.11.0.1:9000 > 10.11.0.2:53 UDP len 18 (60 bytes)
        vlan 5 IPv6 [2001:db8::1]:9000 > [2001:db8::2]:53 UDP len 5 (71 bytes)
        ARP who-has 10.11.0.2 tell 10.11.0.1 (60 bytes)
    """
    try:
        dst, src, ethertype, payload = parse_ethernet(frame)
    except ValueError:
        return f"truncated frame ({len(frame)} bytes)"
    parts = [f"{src} > {dst}"]
    while ethertype in (ETH_P_8021Q, ETH_P_8021AD) and len(payload) >= 4:
        tci, inner = struct.unpack_from("!HH", payload)
        parts.append(f"{'802.1ad ' if ethertype == ETH_P_8021AD else ''}vlan {tci & 0x0FFF}")
        ethertype, payload = inner, payload[4:]
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
    src_text, dst_text = _ip4_text(src), _ip4_text(dst)
    if ihl < _IPV4.size:
        # No transport header can be found: its "ports" would be bytes of the IPv4 header.
        return f"IPv4 {src_text} > {dst_text} malformed (header length {ihl}) proto {proto}"
    body = ip[ihl:total] if ihl <= total <= len(ip) else ip[ihl:]
    if frag & 0x1FFF:
        return f"IPv4 {src_text} > {dst_text} fragment proto {proto} ttl {ttl}"
    if proto == IPPROTO_UDP:
        sport, dport, length, _ = _UDP.unpack_from(body)
        return f"IPv4 {src_text}:{sport} > {dst_text}:{dport} UDP len {length - UDP_HLEN}"
    if proto == IPPROTO_TCP:
        sport, dport = struct.unpack_from("!HH", body)
        return f"IPv4 {src_text}:{sport} > {dst_text}:{dport} TCP {_tcp_text(body)}"
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


def _tcp_text(body: bytes) -> str:
    """``[flags] seq N`` of a TCP header."""
    seq, offset_flags = struct.unpack_from("!I4xH", body, 4)
    flags = "".join(name for bit, name in enumerate("FSRPAU") if offset_flags >> bit & 1)
    return f"[{flags or '.'}] seq {seq}"


_IPV6_HLEN = 40
_IPV6_EXTENSIONS = (0, 43, 60)  # hop-by-hop, routing, destination options: (len + 1) * 8 bytes
_IPV6_FRAGMENT = 44
_IPV6_MAX_EXTENSIONS = 4  # as many as the built-in XDP program walks
_ICMPV6_NAMES = {
    1: "unreachable",
    2: "packet-too-big",
    3: "time-exceeded",
    4: "parameter-problem",
    128: "echo-request",
    129: "echo-reply",
    133: "router-solicitation",
    134: "router-advertisement",
    135: "neighbor-solicitation",
    136: "neighbor-advertisement",
}


def _describe_ipv6(ip: bytes) -> str:
    """``IPv6 ...`` of an IPv6 packet: addresses, ports or ICMPv6 type, payload length."""
    if len(ip) < _IPV6_HLEN:
        raise ValueError("short IPv6 header")
    length, next_header = struct.unpack_from("!HB", ip, 4)
    src = socket.inet_ntop(socket.AF_INET6, ip[8:24])
    dst = socket.inet_ntop(socket.AF_INET6, ip[24:40])
    body = ip[_IPV6_HLEN : _IPV6_HLEN + length]
    for _ in range(_IPV6_MAX_EXTENSIONS):
        if next_header in _IPV6_EXTENSIONS:
            next_header, body = body[0], body[(body[1] + 1) * 8 :]
        elif next_header == _IPV6_FRAGMENT:
            (offset,) = struct.unpack_from("!H", body, 2)
            if offset >> 3:
                return f"IPv6 {src} > {dst} fragment next-header {body[0]}"
            next_header, body = body[0], body[8:]
        else:
            break
    if next_header == 17:
        sport, dport, udp_len = struct.unpack_from("!HHH", body)
        return f"IPv6 [{src}]:{sport} > [{dst}]:{dport} UDP len {udp_len - 8}"
    if next_header == 6:
        sport, dport = struct.unpack_from("!HH", body)
        return f"IPv6 [{src}]:{sport} > [{dst}]:{dport} TCP {_tcp_text(body)}"
    if next_header == 58:
        icmp_type, code = body[0], body[1]
        name = _ICMPV6_NAMES.get(icmp_type, f"type {icmp_type} code {code}")
        if icmp_type in (128, 129):
            ident, seq = struct.unpack_from("!HH", body, 4)
            name += f" id {ident} seq {seq}"
        elif icmp_type in (135, 136):
            name += f" {socket.inet_ntop(socket.AF_INET6, body[8:24])}"
        return f"IPv6 {src} > {dst} ICMPv6 {name}"
    return f"IPv6 {src} > {dst} next-header {next_header} len {length}"


_DESCRIBERS: dict[int, Callable[[bytes], str]] = {
    ETH_P_ARP: _describe_arp,
    ETH_P_IP: _describe_ipv4,
    ETH_P_IPV6: _describe_ipv6,
}
_ETHERTYPE_NAMES = {ETH_P_ARP: "ARP", ETH_P_IP: "IPv4", ETH_P_IPV6: "IPv6"}
