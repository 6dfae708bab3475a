"""Property-based tests of the codecs: ``afxdp.packet`` (build, parse, describe), ``afxdp.pcap``
(write, then read by the module, by scapy and by tcpdump) and the generator's UDP source-port
rewrite (the XDP program in ``xdp-ebpf/src/gen.rs``, run for real in a lab).

Everything but the generator test is unprivileged and needs no compiled extension. Example counts
follow the hypothesis profile (see ``prop_support.py``).
"""

from __future__ import annotations

import importlib
import re
import shutil
import socket
import struct
import subprocess
import time
import warnings
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prop_support import checksum, examples, internet_sum

# conftest loads these from the source tree when the installed package does not import.
packet = importlib.import_module("afxdp.packet")
pcap = importlib.import_module("afxdp.pcap")

with warnings.catch_warnings():  # scapy's own imports may warn; not what is tested here
    warnings.simplefilter("ignore")
    from scapy.layers.dns import DNS
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.inet6 import (
        IPv6,
        IPv6ExtHdrDestOpt,
        IPv6ExtHdrFragment,
        IPv6ExtHdrHopByHop,
        IPv6ExtHdrRouting,
    )
    from scapy.layers.l2 import Ether
    from scapy.utils import rdpcap

# --- strategies ----------------------------------------------------------------------------------

macs = st.binary(min_size=6, max_size=6)
ip4s = st.binary(min_size=4, max_size=4)
ports = st.integers(0, 0xFFFF)
payloads = st.binary(max_size=300)


def mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def ip4_text(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET, raw)


# --- afxdp.packet: build -> parse/describe -> the same fields ------------------------------------


@settings(max_examples=examples(300))
@given(
    src_mac=macs,
    dst_mac=macs,
    src_ip=ip4s,
    dst_ip=ip4s,
    src_port=ports,
    dst_port=ports,
    payload=payloads,
    ttl=st.integers(0, 255),
    ident=st.integers(0, 0xFFFF),
    text_addresses=st.booleans(),
)
def test_ipv4_udp_round_trips(
    src_mac: bytes,
    dst_mac: bytes,
    src_ip: bytes,
    dst_ip: bytes,
    src_port: int,
    dst_port: int,
    payload: bytes,
    ttl: int,
    ident: int,
    text_addresses: bool,
) -> None:
    """What ipv4_udp builds, parse_ethernet, describe and scapy read back field for field, and
    both checksums verify with an independent RFC 1071 sum."""
    args = (
        (mac_text(src_mac), mac_text(dst_mac), ip4_text(src_ip), ip4_text(dst_ip))
        if text_addresses
        else (src_mac, dst_mac, src_ip, dst_ip)
    )
    frame = packet.ipv4_udp(*args, src_port, dst_port, payload, ttl, ident=ident)
    assert len(frame) == max(60, 14 + 20 + 8 + len(payload))

    dst, src, ethertype, l3 = packet.parse_ethernet(frame)
    assert (dst, src, ethertype) == (mac_text(dst_mac), mac_text(src_mac), 0x0800)
    assert internet_sum(l3[:20]) == 0xFFFF  # the IPv4 header checksum verifies
    udp = l3[20 : 20 + 8 + len(payload)]
    pseudo = src_ip + dst_ip + struct.pack("!BBH", 0, 17, len(udp))
    assert udp[6:8] != b"\0\0" and internet_sum(pseudo + udp) == 0xFFFF

    assert packet.describe(frame) == (
        f"{mac_text(src_mac)} > {mac_text(dst_mac)} IPv4 {ip4_text(src_ip)}:{src_port} > "
        f"{ip4_text(dst_ip)}:{dst_port} UDP len {len(payload)} ({len(frame)} bytes)"
    )

    parsed = Ether(frame)
    assert (parsed.src, parsed.dst) == (mac_text(src_mac), mac_text(dst_mac))
    ip = parsed[IP]
    assert (ip.src, ip.dst, ip.ttl, ip.id, ip.proto, ip.flags.DF) == (
        ip4_text(src_ip),
        ip4_text(dst_ip),
        ttl,
        ident,
        17,
        True,
    )
    assert (parsed[UDP].sport, parsed[UDP].dport, parsed[UDP].len) == (
        src_port,
        dst_port,
        8 + len(payload),
    )
    assert bytes(parsed[UDP].payload)[: len(payload)] == payload


@settings(max_examples=examples(200))
@given(
    dst_mac=macs,
    src_mac=macs,
    ethertype=st.integers(0, 0xFFFF),
    payload=payloads,
    pad=st.booleans(),
)
def test_ethernet_round_trips(
    dst_mac: bytes, src_mac: bytes, ethertype: int, payload: bytes, pad: bool
) -> None:
    frame = packet.ethernet(dst_mac, src_mac, ethertype, payload, pad=pad)
    padding = max(0, 60 - 14 - len(payload)) if pad else 0
    assert packet.parse_ethernet(frame) == (
        mac_text(dst_mac),
        mac_text(src_mac),
        ethertype,
        payload + bytes(padding),
    )


@settings(max_examples=examples(100))
@given(
    labels=st.lists(
        st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20),
        min_size=1,
        max_size=5,
    ),
    qtype=st.sampled_from(sorted(packet.DNS_QTYPES)) | st.integers(0, 0xFFFF),
    txid=st.integers(0, 0xFFFF),
    src_port=ports,
)
def test_dns_query_frame_round_trips(
    labels: list[str], qtype: str | int, txid: int, src_port: int
) -> None:
    name = ".".join(labels)
    frame = packet.dns_query_frame(
        "02:00:00:00:00:01",
        "02:00:00:00:00:02",
        "10.0.0.1",
        "10.0.0.2",
        src_port,
        name,
        qtype=qtype,
        txid=txid,
    )
    dns = Ether(frame)[DNS]
    code = packet.DNS_QTYPES[qtype] if isinstance(qtype, str) else qtype
    assert (dns.id, dns.rd, dns.qdcount, dns.qd[0].qtype, dns.qd[0].qclass) == (txid, 1, 1, code, 1)
    assert dns.qd[0].qname == (name + ".").encode()


# IPv6 extension headers scapy builds, and what describe shows for an upper layer behind them.
ext_headers = st.lists(st.sampled_from(["hop", "routing", "dest", "fragment"]), max_size=6)
EXT_LAYERS = {
    "hop": IPv6ExtHdrHopByHop,
    "routing": IPv6ExtHdrRouting,
    "dest": IPv6ExtHdrDestOpt,
    "fragment": lambda: IPv6ExtHdrFragment(offset=0, m=1, id=7),
}


@settings(max_examples=examples(200))
@given(
    chain=ext_headers,
    upper=st.sampled_from(["udp", "tcp"]),
    src_port=ports,
    dst_port=ports,
    payload=st.binary(max_size=64),
    vlans=st.lists(
        st.tuples(st.sampled_from([0x8100, 0x88A8]), st.integers(0, 0xFFFF)), max_size=2
    ),
)
def test_describe_reads_ipv6_ports_behind_extension_headers(
    chain: list[str],
    upper: str,
    src_port: int,
    dst_port: int,
    payload: bytes,
    vlans: list[tuple[int, int]],
) -> None:
    """Frames built by scapy: describe names every VLAN tag, and the ports behind up to four
    extension headers (as many as the XDP program walks); behind more, the next header number."""
    l4 = (UDP if upper == "udp" else TCP)(sport=src_port, dport=dst_port)
    ip = IPv6(src="2001:db8::1", dst="2001:db8::2")
    for name in chain:
        ip = ip / EXT_LAYERS[name]()
    raw_ip = bytes(ip / l4 / payload)
    tags = b"".join(struct.pack("!HH", tpid, tci) for tpid, tci in vlans)
    inner = packet.ethernet("02:00:00:00:00:02", "02:00:00:00:00:01", 0x86DD, raw_ip)
    frame = inner[:12] + tags + inner[12:]

    text = packet.describe(frame)
    shown_tags = re.findall(r"(802\.1ad )?vlan (\d+)", text)
    assert shown_tags == [
        ("802.1ad " if tpid == 0x88A8 else "", str(tci & 0xFFF)) for tpid, tci in vlans
    ]
    assert text.endswith(f"({len(frame)} bytes)")
    if len(chain) <= 4:
        proto = "UDP" if upper == "udp" else "TCP"
        assert f"[2001:db8::1]:{src_port} > [2001:db8::2]:{dst_port} {proto}" in text, text
    else:
        numbers = {"hop": 0, "routing": 43, "dest": 60, "fragment": 44}
        assert f"next-header {numbers[chain[4]]} " in text, text


frame_starts = st.sampled_from(
    [
        b"",
        b"\x08\x00",
        b"\x86\xdd",
        b"\x08\x06",
        b"\x81\x00",
        b"\x88\xa8",
        b"\x81\x00\x00\x01\x08\x00",
    ]
)


@settings(max_examples=examples(1000))
@given(macs_and_type=st.binary(max_size=12), start=frame_starts, rest=st.binary(max_size=120))
def test_random_bytes_never_raise_but_valueerror(
    macs_and_type: bytes, start: bytes, rest: bytes
) -> None:
    """Any bytes: describe never raises and ends with the length; parse_ethernet raises only
    ValueError. The ethertype prefixes steer the bytes into every decoder."""
    frame = macs_and_type + (start + rest if len(macs_and_type) == 12 else rest)
    text = packet.describe(frame)
    assert isinstance(text, str) and text.endswith(f"({len(frame)} bytes)")
    assert pcap.summary(frame) == text
    try:
        packet.parse_ethernet(frame)
    except ValueError:
        assert len(frame) < 14
    pcap.hexdump(frame)


# --- afxdp.pcap: write -> read by the module, scapy and tcpdump ----------------------------------

U32 = 1 << 32
#: libpcap (tcpdump) reads a record's seconds as signed 32 bits; the writer refuses later times.
MAX_SECONDS = 1 << 31
timestamps = (
    st.floats(0, MAX_SECONDS, exclude_max=True) | st.floats(0, U32 + 1) | st.integers(0, U32)
)
frames = st.lists(st.binary(min_size=1, max_size=1600), min_size=1, max_size=8)


def expected_stamp(timestamp: float, scale: int) -> tuple[int, int] | None:
    """(seconds, fraction) of ``timestamp`` rounded exactly to the file's unit (half to even, as
    Python rounds), or None when that reaches 2**31 seconds, which libpcap cannot read."""
    units = round(Fraction(timestamp) * scale)
    seconds, fraction = divmod(units, scale)
    return None if seconds >= MAX_SECONDS else (seconds, fraction)


def raw_records(content: bytes) -> list[tuple[int, int, bytes, int]]:
    """(seconds, fraction, data, orig_len) of each record of a little-endian pcap file, parsed
    here rather than by the module under test."""
    records, offset = [], 24
    while offset < len(content):
        seconds, fraction, captured, orig_len = struct.unpack_from("<IIII", content, offset)
        records.append((seconds, fraction, content[offset + 16 : offset + 16 + captured], orig_len))
        offset += 16 + captured
    return records


def tcpdump_read(path: Path, nanosecond: bool) -> list[tuple[str, bytes]]:
    """(timestamp text, captured bytes) of each frame, as tcpdump prints them."""
    precision = "nano" if nanosecond else "micro"
    # -Z root: as root, Debian's tcpdump would otherwise switch to a user that may not exist.
    out = subprocess.run(
        [
            "tcpdump",
            "-Z",
            "root",
            "-r",
            str(path),
            "-nn",
            "-tt",
            "-q",
            "-xx",
            f"--time-stamp-precision={precision}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    digits = 9 if nanosecond else 6
    blocks = re.split(rf"^(\d+\.\d{{{digits}}}) ", out, flags=re.M)[1:]
    return [
        (stamp, last_hex_dump(body)) for stamp, body in zip(blocks[::2], blocks[1::2], strict=True)
    ]


def last_hex_dump(text: str) -> bytes:
    """The bytes of the last ``0x0000:``-numbered hex dump in tcpdump's text for one frame: some
    decoders (LLC) print a dump of their own before the ``-xx`` one."""
    lines = re.findall(r"^\t0x([0-9a-f]{4}):  ([0-9a-f ]+)", text, re.M)
    starts = [i for i, (offset, _) in enumerate(lines) if offset == "0000"]
    tail = lines[starts[-1] :] if starts else []
    return bytes.fromhex("".join(hex_part for _, hex_part in tail).replace(" ", ""))


@settings(max_examples=examples(60))
@given(
    frames=frames,
    stamps=st.lists(timestamps, min_size=8, max_size=8),
    snaplen=st.sampled_from([1, 14, 60, 100, 1514, 65535, pcap.MAX_SNAPLEN]),
    nanosecond=st.booleans(),
    batch=st.booleans(),
)
def test_pcap_round_trips_through_every_reader(
    tmp_path_factory: pytest.TempPathFactory,
    frames: list[bytes],
    stamps: list[float],
    snaplen: int,
    nanosecond: bool,
    batch: bool,
) -> None:
    """Frames written with explicit timestamps (one per frame, or one per batch) read back the
    same from the module, scapy and tcpdump: the captured bytes (cut at snaplen), the original
    lengths, and the timestamp rounded exactly to the file's unit. A timestamp that rounds to
    2**31 seconds or more is refused with ValueError, and nothing is written for it."""
    scale = 1_000_000_000 if nanosecond else 1_000_000
    path = tmp_path_factory.mktemp("pcap") / "frames.pcap"
    stamps = stamps[: len(frames)] if not batch else [stamps[0]] * len(frames)
    expected = [expected_stamp(t, scale) for t in stamps]
    written: list[tuple[tuple[int, int], bytes]] = []
    with pcap.PcapWriter(path, snaplen, nanosecond=nanosecond) as writer:
        if batch:
            if expected[0] is None:
                with pytest.raises(ValueError, match="timestamp"):
                    writer.write_batch(frames, stamps[0])
            else:
                assert writer.write_batch(frames, stamps[0]) == len(frames)
                written = [(expected[0], frame) for frame in frames]
        else:
            for frame, stamp, want in zip(frames, stamps, expected, strict=True):
                if want is None:
                    with pytest.raises(ValueError, match="timestamp"):
                        writer.write(frame, stamp)
                else:
                    writer.write(frame, stamp)
                    written.append((want, frame))
        assert writer.frames == len(written)
    content = path.read_bytes()

    assert raw_records(content) == [
        (seconds, fraction, frame[:snaplen], len(frame)) for (seconds, fraction), frame in written
    ]
    assert pcap.read_pcap(path) == [
        (seconds + fraction / scale, frame[:snaplen], len(frame))
        for (seconds, fraction), frame in written
    ]

    packets = rdpcap(str(path))
    assert [(p.original, p.wirelen) for p in packets] == [
        (frame[:snaplen], len(frame)) for _, frame in written
    ]
    assert [Decimal(p.time) for p in packets] == [
        Decimal(seconds) + Decimal(fraction) / scale for (seconds, fraction), _ in written
    ]

    if shutil.which("tcpdump") is not None:
        digits = 9 if nanosecond else 6
        assert tcpdump_read(path, nanosecond) == [
            (f"{seconds}.{fraction:0{digits}d}", frame[:snaplen])
            for (seconds, fraction), frame in written
        ]


# Shrunk examples the round trip found, kept as plain regression tests.


@pytest.mark.parametrize(
    "stamp",
    [
        4294967295.9999995,  # rounded up to 2**32 seconds: struct.error, not ValueError
        2147483648.0,  # tcpdump printed "[Error converting time]": libpcap's seconds are signed
        2147483647.9999995,  # rounds up to 2**31 in a microsecond file
    ],
)
def test_timestamps_libpcap_cannot_read_are_refused(tmp_path: Path, stamp: float) -> None:
    path = tmp_path / "late.pcap"
    with pcap.PcapWriter(path, nanosecond=False) as writer:
        with pytest.raises(ValueError, match=r"timestamp must be in 0..2\*\*31 seconds"):
            writer.write(b"x", stamp)
        with pytest.raises(ValueError, match=r"timestamp must be in 0..2\*\*31 seconds"):
            writer.write_batch([b"x", b"y"], stamp)
        writer.write(b"last", 2147483647.999999)  # the last microsecond libpcap can show
    assert pcap.read_pcap(path) == [(2147483647.999999, b"last", 4)]


def test_empty_frames_are_refused(tmp_path: Path) -> None:
    """An empty record made tcpdump print "[Invalid header: caplen==0, len==0]" without its
    timestamp; nothing of a batch holding an empty frame is written."""
    path = tmp_path / "empty.pcap"
    with pcap.PcapWriter(path) as writer:
        with pytest.raises(ValueError, match="empty frame"):
            writer.write(b"", 1.0)
        with pytest.raises(ValueError, match="empty frame"):
            writer.write_batch([b"a", b"", b"c"], 1.0)
        assert writer.frames == 0
    assert pcap.read_pcap(path) == []


@settings(max_examples=examples(300))
@given(
    header=st.sampled_from(
        [
            struct.pack("<IHHiIII", pcap.MAGIC_NANOSECONDS, 2, 4, 0, 0, 65535, 1),
            struct.pack(">IHHiIII", pcap.MAGIC_MICROSECONDS, 2, 4, 0, 0, 65535, 1),
            b"",
        ]
    ),
    body=st.binary(max_size=200),
)
def test_read_pcap_of_random_bytes_raises_only_valueerror(
    tmp_path_factory: pytest.TempPathFactory, header: bytes, body: bytes
) -> None:
    path = tmp_path_factory.mktemp("pcap") / "random.pcap"
    path.write_bytes(header + body)
    try:
        records = pcap.read_pcap(path)
    except ValueError:
        return
    for stamp, data, _ in records:
        assert stamp >= 0 and isinstance(data, bytes)


# --- the generator's UDP source-port rewrite, in a lab -------------------------------------------


@st.composite
def udp_templates(draw: st.DrawFn) -> tuple[bytes, int, int]:
    """(template frame, offset of its UDP header, offset of its IP header): IPv4 (with options,
    checksum computed or none) or IPv6, untagged or with one 802.1Q/802.1ad tag."""
    version = draw(st.sampled_from([4, 6]))
    tpid = draw(st.sampled_from([None, 0x8100, 0x88A8]))
    src_port = draw(st.integers(0, 0xFFFE))  # the base of at least two ports
    dst_port = draw(ports)
    payload = draw(st.binary(max_size=200))
    udp_len = 8 + len(payload)
    udp = struct.pack("!HHHH", src_port, dst_port, udp_len, 0) + payload
    if version == 4:
        options = draw(st.binary(max_size=40).map(lambda b: b + bytes(-len(b) % 4)))
        src, dst = draw(ip4s), draw(ip4s)
        ihl = (20 + len(options)) // 4
        ip = struct.pack(
            "!BBHHHBBH4s4s", 0x40 | ihl, 0, ihl * 4 + udp_len, 1, 0x4000, 64, 17, 0, src, dst
        )
        ip += options
        ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
        pseudo = src + dst + struct.pack("!BBH", 0, 17, udp_len)
        ethertype = 0x0800
        with_checksum = draw(st.booleans())
    else:
        src, dst = (
            draw(st.binary(min_size=16, max_size=16)),
            draw(st.binary(min_size=16, max_size=16)),
        )
        ip = struct.pack("!IHBB", 6 << 28, udp_len, 17, 64) + src + dst
        pseudo = src + dst + struct.pack("!I3xB", udp_len, 17)
        ethertype = 0x86DD
        with_checksum = True  # IPv6 requires one
    if with_checksum:
        udp = udp[:6] + struct.pack("!H", checksum(pseudo + udp) or 0xFFFF) + udp[8:]
    frame = packet.ethernet("02:00:00:00:00:02", "02:00:00:00:00:01", ethertype, ip + udp)
    tag = b"" if tpid is None else struct.pack("!HH", tpid, draw(st.integers(0, 0xFFFF)))
    l3 = 14 + len(tag)
    return frame[:12] + tag + frame[12:], l3 + len(ip), l3


def udp_checksum_verifies(frame: bytes, l3: int, udp_at: int) -> bool:
    udp_len = struct.unpack_from("!H", frame, udp_at + 4)[0]
    udp = frame[udp_at : udp_at + udp_len]
    if frame[l3] >> 4 == 4:
        pseudo = frame[l3 + 12 : l3 + 20] + struct.pack("!BBH", 0, 17, udp_len)
    else:
        pseudo = frame[l3 + 8 : l3 + 40] + struct.pack("!I3xB", udp_len, 17)
    return internet_sum(pseudo + udp) == 0xFFFF


@pytest.mark.privileged
def test_generator_src_port_rewrite_keeps_the_udp_checksum_valid(lab) -> None:
    """afxdp.generate(src_ports=n) on random templates: every copy that arrives has a source port
    in base..base+n-1, a UDP checksum that verifies from scratch (a zero one stays zero), and
    every other byte of the template unchanged."""
    import afxdp

    with lab.enter("b"):
        prog = afxdp.Program.attach(lab.if_b, mode="native")
        sock = afxdp.Socket(lab.if_b, 0, program=prog, tx_size=0)
    try:

        @settings(max_examples=examples(40))
        @given(template=udp_templates(), data=st.data())
        def check(template: tuple[bytes, int, int], data: st.DataObject) -> None:
            frame, udp_at, l3 = template
            base = struct.unpack_from("!H", frame, udp_at)[0]
            count_ports = data.draw(st.integers(2, min(64, 0x10000 - base)), label="src_ports")
            copies = data.draw(st.integers(count_ports, 3 * count_ports), label="copies")
            with lab.enter("a"):
                sent = afxdp.generate(lab.if_a, frame, copies, rate=100_000, src_ports=count_ports)
            assert sent == copies
            got: list[bytes] = []
            deadline = time.monotonic() + 5
            while len(got) < copies and time.monotonic() < deadline:
                with sock.recv(256, timeout=0.05) as batch:
                    got += [bytes(f) for f in batch]
            assert len(got) == copies
            had_checksum = frame[udp_at + 6 : udp_at + 8] != b"\0\0"
            for copy in got:
                port = struct.unpack_from("!H", copy, udp_at)[0]
                assert base <= port < base + count_ports, (port, copy.hex())
                assert copy[:udp_at] == frame[:udp_at] and copy[udp_at + 8 :] == frame[udp_at + 8 :]
                assert copy[udp_at + 2 : udp_at + 6] == frame[udp_at + 2 : udp_at + 6]
                if had_checksum:
                    assert udp_checksum_verifies(copy, l3, udp_at), copy.hex()
                else:
                    assert copy[udp_at + 6 : udp_at + 8] == b"\0\0", copy.hex()

        check()
    finally:
        sock.close()
        prog.detach()
