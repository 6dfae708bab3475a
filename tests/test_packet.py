"""Unprivileged tests of afxdp.packet (checksums, frame layout, DNS, describe) and of the
numbered-frame oracle in afxdp.testing."""

from __future__ import annotations

import random
import re
import struct

import pytest

from afxdp.packet import (
    ETH_P_ARP,
    ETH_P_IP,
    describe,
    dns_query,
    dns_query_frame,
    ethernet,
    ip4_bytes,
    ipv4_checksum,
    ipv4_udp,
    mac_bytes,
    parse_ethernet,
    udp_checksum_ipv4,
)
from afxdp.testing import NUMBERED_MAGIC, arp_request, numbered_frame, parse_numbered

MAC_A, MAC_B = "02:00:00:00:00:01", "02:00:00:00:00:02"
IP_A, IP_B = "10.11.0.1", "10.11.0.2"


def reference_checksum(data: bytes) -> int:
    """RFC 1071 the slow, obvious way: add 16-bit words, fold carries, complement."""
    if len(data) % 2:
        data += b"\0"
    total = 0
    for (word,) in struct.iter_unpack("!H", data):
        total += word
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


# --- addresses -----------------------------------------------------------------------------------


def test_mac_bytes() -> None:
    assert mac_bytes("aa:bb:cc:dd:ee:ff") == bytes.fromhex("aabbccddeeff")
    assert mac_bytes("02-00-00-00-00-01") == bytes.fromhex("020000000001")
    assert mac_bytes(b"\x01" * 6) == b"\x01" * 6
    for bad in ("aa:bb:cc:dd:ee", "aa:bb:cc:dd:ee:fff", "zz:bb:cc:dd:ee:ff", b"\x01" * 5):
        with pytest.raises(ValueError):
            mac_bytes(bad)


def test_ip4_bytes() -> None:
    assert ip4_bytes("10.11.0.1") == bytes([10, 11, 0, 1])
    assert ip4_bytes(b"\x7f\0\0\1") == b"\x7f\0\0\1"
    for bad in ("10.1", "256.0.0.1", "::1", b"\1\2\3"):
        with pytest.raises(ValueError):
            ip4_bytes(bad)


# --- checksums -----------------------------------------------------------------------------------


def test_ipv4_checksum_known_vector() -> None:
    # The classic example header (Wikipedia "IPv4 header checksum"): checksum 0xb861.
    header = bytes.fromhex("450000730000400040110000c0a80001c0a800c7")
    assert ipv4_checksum(header) == 0xB861
    with_checksum = header[:10] + b"\xb8\x61" + header[12:]
    assert ipv4_checksum(with_checksum) == 0


def test_ipv4_checksum_rfc1071_example() -> None:
    # RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum (folded) to 0xddf2.
    assert ipv4_checksum(bytes.fromhex("0001f203f4f5f6f7")) == ~0xDDF2 & 0xFFFF


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\0",
        b"\0\0\0\0",
        b"\xff\xff",
        b"\xff\xff\xff\xff",
        b"\x01",
        b"\xab\xcd\xef",
        bytes(range(256)) * 6,
        b"\xff" * 1501,
    ],
)
def test_ipv4_checksum_matches_reference(data: bytes) -> None:
    assert ipv4_checksum(data) == reference_checksum(data)


def test_ipv4_checksum_matches_reference_random() -> None:
    rng = random.Random(1071)
    for _ in range(2000):
        data = rng.randbytes(rng.randrange(0, 200))
        assert ipv4_checksum(data) == reference_checksum(data)


def test_udp_checksum_known_vector() -> None:
    # Hand-checked: pseudo header 10.11.0.1 > 10.11.0.2 proto 17 len 10; UDP 1234 > 5678 "hi".
    udp = struct.pack("!HHHH", 1234, 5678, 10, 0) + b"hi"
    pseudo_words = [0x0A0B, 0x0001, 0x0A0B, 0x0002, 0x0011, 10, 1234, 5678, 10, 0, 0x6869]
    expected = reference_checksum(b"".join(w.to_bytes(2, "big") for w in pseudo_words))
    assert udp_checksum_ipv4(IP_A, IP_B, udp) == expected


def test_udp_checksum_zero_becomes_ffff() -> None:
    # A payload word equal to the checksum without it makes the sum 0xffff, i.e. the checksum 0,
    # which UDP must send as 0xffff (0 means "no checksum").
    header = struct.pack("!HHHH", 1, 2, 10, 0)
    word = udp_checksum_ipv4(IP_A, IP_B, header + b"\0\0")
    datagram = header + word.to_bytes(2, "big")
    pseudo = ip4_bytes(IP_A) + ip4_bytes(IP_B) + b"\0\x11" + (10).to_bytes(2, "big")
    assert reference_checksum(pseudo + datagram) == 0
    assert udp_checksum_ipv4(IP_A, IP_B, datagram) == 0xFFFF


# --- frames --------------------------------------------------------------------------------------


def test_ethernet_header_and_padding() -> None:
    frame = ethernet(MAC_B, MAC_A, ETH_P_ARP, b"xyz")
    assert len(frame) == 60
    assert frame[:6] == mac_bytes(MAC_B) and frame[6:12] == mac_bytes(MAC_A)
    assert frame[12:14] == b"\x08\x06" and frame[14:17] == b"xyz" and frame[17:] == bytes(43)
    assert len(ethernet(MAC_B, MAC_A, ETH_P_ARP, b"xyz", pad=False)) == 17
    assert parse_ethernet(frame) == (MAC_B, MAC_A, ETH_P_ARP, frame[14:])


def test_ipv4_udp_fields() -> None:
    frame = ipv4_udp(MAC_A, MAC_B, IP_A, IP_B, 1234, 5678, b"hello", ttl=7, ident=0x4242)
    assert len(frame) == 60  # 14 + 20 + 8 + 5 = 47, padded
    dst, src, ethertype, _ = parse_ethernet(frame)
    assert (dst, src, ethertype) == (MAC_B, MAC_A, ETH_P_IP)
    ver_ihl, tos, total, ident, frag, ttl, proto, _, sip, dip = struct.unpack_from(
        "!BBHHHBBH4s4s", frame, 14
    )
    assert (ver_ihl, tos, total, ident, frag, ttl, proto) == (0x45, 0, 33, 0x4242, 0x4000, 7, 17)
    assert (sip, dip) == (ip4_bytes(IP_A), ip4_bytes(IP_B))
    assert reference_checksum(frame[14:34]) == 0
    sport, dport, length, checksum = struct.unpack_from("!HHHH", frame, 34)
    assert (sport, dport, length) == (1234, 5678, 13)
    assert frame[42:47] == b"hello" and frame[47:] == bytes(13)
    pseudo = ip4_bytes(IP_A) + ip4_bytes(IP_B) + b"\0\x11" + (13).to_bytes(2, "big")
    assert checksum != 0 and reference_checksum(pseudo + frame[34:47]) == 0


def test_ipv4_udp_too_big() -> None:
    with pytest.raises(ValueError):
        ipv4_udp(MAC_A, MAC_B, IP_A, IP_B, 1, 2, bytes(65535 - 28 + 1))


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda: ipv4_udp(MAC_A, MAC_B, IP_A, IP_B, 70000, 9, b""), "70000"),
        (lambda: ipv4_udp(MAC_A, MAC_B, IP_A, IP_B, 9, -1, b""), "-1"),
        (lambda: ipv4_udp(MAC_A, MAC_B, IP_A, IP_B, 9, 9, b"", ttl=256), "256"),
        (lambda: ipv4_udp(MAC_A, MAC_B, IP_A, IP_B, 9, 9, b"", ttl=-1), "-1"),
        (lambda: ipv4_udp(MAC_A, MAC_B, IP_A, IP_B, 9, 9, bytes(100_000)), "100008"),
        (lambda: ethernet(MAC_A, MAC_B, 0x10000, b""), "65536"),
        (lambda: dns_query_frame(MAC_A, MAC_B, IP_A, IP_B, src_port=65536), "65536"),
        (lambda: dns_query_frame(MAC_A, MAC_B, IP_A, IP_B, dst_port=99999), "99999"),
    ],
    ids=[
        "src-port",
        "dst-port",
        "ttl-256",
        "ttl-negative",
        "payload",
        "ethertype",
        "dns-src-port",
        "dns-dst-port",
    ],
)
def test_builders_refuse_out_of_range_values_naming_them(call, named: str) -> None:
    """A ValueError naming the value, not struct.error (which `except ValueError` misses)."""
    with pytest.raises(ValueError, match=rf"(?<![\d-]){re.escape(named)}(?!\d)"):
        call()


def test_builders_refuse_addresses_of_the_wrong_type_naming_it() -> None:
    with pytest.raises(TypeError, match="not int"):
        ipv4_udp(0x020000000001, MAC_B, IP_A, IP_B, 9, 9, b"")
    with pytest.raises(TypeError, match="not int"):
        ipv4_udp(MAC_A, MAC_B, 0x0A0B0001, IP_B, 9, 9, b"")


def test_dns_name_that_is_not_ascii_is_a_value_error_naming_it() -> None:
    with pytest.raises(ValueError, match="'bücher'"):
        dns_query("bücher.example")


# --- numbered frames -----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [60, 61, 64, 128, 1000, 1514, 3000, 9000])
@pytest.mark.parametrize("seq", [0, 1, 255, 256, 65537, 2**63 + 5, 2**64 - 1])
def test_numbered_round_trip(seq: int, size: int) -> None:
    frame = numbered_frame(seq, size, MAC_A, MAC_B)
    assert len(frame) == size
    assert frame[42:50] == NUMBERED_MAGIC and int.from_bytes(frame[50:58], "big") == seq
    start = 0
    for byte in seq.to_bytes(8, "big"):
        start ^= byte
    assert frame[58:] == bytes((start + i) & 0xFF for i in range(size - 58))
    assert parse_numbered(frame) == seq
    assert parse_numbered(memoryview(bytearray(frame))) == seq
    assert parse_numbered(frame, check_udp_checksum=True) == seq


def test_numbered_uses_addresses_and_ports() -> None:
    frame = numbered_frame(3, 100, MAC_B, MAC_A, IP_B, IP_A, 1111, 2222)
    assert describe(frame).startswith(f"{MAC_B} > {MAC_A} IPv4 {IP_B}:1111 > {IP_A}:2222 UDP")
    assert struct.unpack_from("!H", frame, 18)[0] == 3  # IPv4 identification = seq


def test_numbered_rejects_any_corruption() -> None:
    frame = numbered_frame(12345, 200, MAC_A, MAC_B)
    for position in range(12, len(frame)):
        if position in range(26, 38) or position in (40, 41):
            continue  # addresses and ports may be anything; the UDP checksum is checked on request
        corrupted = bytearray(frame)
        corrupted[position] ^= 0x01
        assert parse_numbered(corrupted) is None, position
    corrupted = bytearray(frame)
    corrupted[41] ^= 0x01
    assert parse_numbered(corrupted) == 12345
    assert parse_numbered(corrupted, check_udp_checksum=True) is None


def test_numbered_rejects_other_frames() -> None:
    frame = numbered_frame(7, 100, MAC_A, MAC_B)
    assert parse_numbered(frame[:-1]) is None  # truncated: IPv4 total length disagrees
    assert parse_numbered(frame + b"\0") is None
    assert parse_numbered(ethernet("ff:ff:ff:ff:ff:ff", MAC_A, ETH_P_ARP, bytes(28))) is None
    assert parse_numbered(ipv4_udp(MAC_A, MAC_B, IP_A, IP_B, 9000, 9000, b"x" * 60)) is None
    assert parse_numbered(b"") is None


def test_numbered_size_limits() -> None:
    with pytest.raises(ValueError):
        numbered_frame(0, 59, MAC_A, MAC_B)
    with pytest.raises(ValueError):
        numbered_frame(-1, 60, MAC_A, MAC_B)
    assert len(numbered_frame(0, 14 + 65535, MAC_A, MAC_B)) == 14 + 65535


# --- DNS -----------------------------------------------------------------------------------------


def test_dns_query_fields() -> None:
    message = dns_query("www.example.com", "AAAA", txid=0xBEEF)
    txid, flags, qd, an, ns, ar = struct.unpack_from("!HHHHHH", message)
    assert (txid, flags, qd, an, ns, ar) == (0xBEEF, 0x0100, 1, 0, 0, 0)
    assert message[12:29] == b"\x03www\x07example\x03com\x00"
    assert struct.unpack_from("!HH", message, 29) == (28, 1)
    assert len(message) == 33


def test_dns_query_known_bytes() -> None:
    # What `dig +noedns example.com A` sends, with its txid replaced by 0x1234.
    expected = bytes.fromhex("123401000001000000000000076578616d706c6503636f6d0000010001")
    assert dns_query("example.com", "A", txid=0x1234) == expected
    assert dns_query("example.com.", 1, txid=0x1234) == expected


def test_dns_query_validation() -> None:
    assert dns_query(".", "NS", txid=0)[12:] == b"\x00\x00\x02\x00\x01"
    for bad in ("a..b", "x" * 64 + ".com", ".".join(["abcdefghi"] * 26), "exämple.com"):
        with pytest.raises(ValueError):
            dns_query(bad)
    assert 0 <= struct.unpack_from("!H", dns_query())[0] <= 0xFFFF


@pytest.mark.parametrize("qtype", ["BOGUS", "", 65536, -1])
def test_dns_query_unknown_qtype_is_a_value_error_naming_it(qtype: str | int) -> None:
    with pytest.raises(ValueError, match=f"qtype {qtype!r}"):
        dns_query("example.com", qtype)
    with pytest.raises(ValueError, match=f"qtype {qtype!r}"):
        dns_query_frame(MAC_A, MAC_B, IP_A, IP_B, qtype=qtype)


def test_dns_query_frame() -> None:
    frame = dns_query_frame(MAC_A, MAC_B, IP_A, IP_B, src_port=40001, name="example.org", txid=9)
    assert struct.unpack_from("!HH", frame, 34) == (40001, 53)
    assert frame[42:] == dns_query("example.org", "A", txid=9)
    assert reference_checksum(frame[14:34]) == 0
    pseudo = ip4_bytes(IP_A) + ip4_bytes(IP_B) + b"\0\x11" + (len(frame) - 34).to_bytes(2, "big")
    assert reference_checksum(pseudo + frame[34:]) == 0


# --- describe ------------------------------------------------------------------------------------


def test_describe() -> None:
    assert describe(arp_request(MAC_A, IP_A, IP_B)) == (
        f"{MAC_A} > ff:ff:ff:ff:ff:ff ARP who-has {IP_B} tell {IP_A} (60 bytes)"
    )
    udp = ipv4_udp(MAC_A, MAC_B, IP_A, IP_B, 1234, 53, b"abc")
    assert describe(udp) == f"{MAC_A} > {MAC_B} IPv4 {IP_A}:1234 > {IP_B}:53 UDP len 3 (60 bytes)"
    icmp = bytearray(udp)
    icmp[23] = 1
    icmp[34:42] = struct.pack("!BBHHH", 8, 0, 0, 77, 3)
    assert describe(icmp).endswith(f"IPv4 {IP_A} > {IP_B} ICMP echo-request id 77 seq 3 (60 bytes)")
    tcp = bytearray(udp) + bytes(20)
    tcp[16:18] = (40).to_bytes(2, "big")
    tcp[23] = 6
    tcp[34:48] = struct.pack("!HHIIH", 80, 443, 1000, 0, 0x5012)
    assert "IPv4 10.11.0.1:80 > 10.11.0.2:443 TCP [SA] seq 1000" in describe(tcp)


@pytest.mark.parametrize("ihl", [0, 2, 4])
def test_describe_calls_an_ipv4_header_shorter_than_20_bytes_malformed(ihl: int) -> None:
    # It showed ports and a UDP length read from inside the IPv4 header.
    udp = bytearray(ipv4_udp(MAC_A, MAC_B, IP_A, IP_B, 1111, 2222, b""))
    udp[14] = 0x40 | ihl
    assert describe(bytes(udp)).endswith(
        f"IPv4 {IP_A} > {IP_B} malformed (header length {ihl * 4}) proto 17 (60 bytes)"
    )


def test_describe_never_raises() -> None:
    frame = numbered_frame(1, 100, MAC_A, MAC_B)
    for cut in range(len(frame)):
        assert isinstance(describe(frame[:cut]), str)
    assert describe(frame[:5]) == "truncated frame (5 bytes)"
    assert "ethertype 0x88cc" in describe(ethernet(MAC_B, MAC_A, 0x88CC, b""))
    vlan = ethernet(
        MAC_B,
        MAC_A,
        0x8100,
        struct.pack("!HH", 42, ETH_P_ARP) + arp_request(MAC_A, IP_A, IP_B)[14:],
    )
    assert "vlan 42 ARP who-has" in describe(vlan)
