"""afxdp.pcap: pcap files written and read back (by our reader, scapy and tcpdump when present),
the one-line summary and hex dump of known frames, and examples/dumpframes.py in a lab.

Everything but the last tests is unprivileged and needs no compiled extension.
"""

from __future__ import annotations

import importlib
import io
import random
import re
import shutil
import socket
import struct
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

MAC_A, MAC_B = "02:00:00:00:00:01", "02:00:00:00:00:02"
IP_A, IP_B = "10.11.0.1", "10.11.0.2"
IP6_A, IP6_B = "2001:db8::1", "2001:db8::2"


# conftest loads these from the source tree when the installed package does not import.
packet = importlib.import_module("afxdp.packet")
#: The example of the afxdp under test (the installed package's, else the source tree's).
DUMPFRAMES = Path(packet.__file__).parent / "examples" / "dumpframes.py"
pcap = importlib.import_module("afxdp.pcap")


# --- frames --------------------------------------------------------------------------------------


def ipv6_frame(next_header: int, l4: bytes, src_mac: str = MAC_A, dst_mac: str = MAC_B) -> bytes:
    header = struct.pack("!IHBB", 6 << 28, len(l4), next_header, 64)
    header += socket.inet_pton(socket.AF_INET6, IP6_A) + socket.inet_pton(socket.AF_INET6, IP6_B)
    return packet.ethernet(dst_mac, src_mac, packet.ETH_P_IPV6, header + l4)


def ipv6_udp(sport: int, dport: int, payload: bytes) -> bytes:
    return ipv6_frame(17, struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload)


def ipv4_icmp_echo(ident: int, seq: int) -> bytes:
    icmp = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + b"ping"
    icmp = icmp[:2] + packet.ipv4_checksum(icmp).to_bytes(2, "big") + icmp[4:]
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(icmp),
        0,
        0x4000,
        64,
        1,
        0,
        packet.ip4_bytes(IP_A),
        packet.ip4_bytes(IP_B),
    )
    ip = ip[:10] + packet.ipv4_checksum(ip).to_bytes(2, "big") + ip[12:]
    return packet.ethernet(MAC_B, MAC_A, packet.ETH_P_IP, ip + icmp)


def arp_request() -> bytes:
    arp = struct.pack(
        "!HHBBH6s4s6s4s",
        1,
        packet.ETH_P_IP,
        6,
        4,
        1,
        packet.mac_bytes(MAC_A),
        packet.ip4_bytes(IP_A),
        bytes(6),
        packet.ip4_bytes(IP_B),
    )
    return packet.ethernet("ff:ff:ff:ff:ff:ff", MAC_A, packet.ETH_P_ARP, arp)


def vlan_tagged(frame: bytes, vid: int, tpid: int = 0x8100) -> bytes:
    return frame[:12] + struct.pack("!HH", tpid, vid) + frame[12:]


def udp4(sport: int = 9000, dport: int = 53, payload: bytes = b"hello world") -> bytes:
    return packet.ipv4_udp(MAC_A, MAC_B, IP_A, IP_B, sport, dport, payload)


def random_frames(n: int, seed: int = 7) -> list[bytes]:
    """``n`` random frames of 1 to 9000 bytes (an empty frame cannot be written to a pcap file:
    see test_prop_codecs.py)."""
    rng = random.Random(seed)
    return [
        rng.randbytes(rng.choice([1, 2, 14, 60, 61, 1514, 3000, 1 + rng.randrange(9000)]))
        for _ in range(n)
    ]


# --- writing and reading -------------------------------------------------------------------------


def test_file_header_is_classic_pcap_little_endian(tmp_path: Path) -> None:
    path = tmp_path / "h.pcap"
    with pcap.PcapWriter(path, snaplen=1600) as writer:
        assert path.read_bytes() == struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 1600, 1)
        assert not writer.closed
    assert writer.closed and "[closed]" in repr(writer)
    with pcap.PcapWriter(path, linktype=113, nanosecond=False):
        pass
    assert path.read_bytes() == struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 113)
    assert pcap.read_pcap(path) == []


@pytest.mark.parametrize("nanosecond", [True, False])
def test_many_frames_round_trip(tmp_path: Path, nanosecond: bool) -> None:
    frames = random_frames(2000)
    stamps = [1_700_000_000 + i * 0.001234567 for i in range(len(frames))]
    path = tmp_path / "many.pcap"
    with pcap.PcapWriter(path, snaplen=pcap.MAX_SNAPLEN, nanosecond=nanosecond) as writer:
        for frame, stamp in zip(frames, stamps, strict=True):
            writer.write(frame, stamp)
        assert writer.frames == len(frames)
    records = pcap.read_pcap(path)
    assert [data for _, data, _ in records] == frames
    assert [orig for _, _, orig in records] == [len(f) for f in frames]
    resolution = 1e-9 if nanosecond else 1e-6
    for (got, _, _), want in zip(records, stamps, strict=True):
        assert abs(got - want) <= resolution / 2 + 2.5e-7  # + a float's resolution near 1.7e9


def test_snaplen_truncates_and_keeps_the_original_length(tmp_path: Path) -> None:
    path = tmp_path / "snap.pcap"
    long_frame, short_frame = bytes(range(256)) * 8, b"\xaa" * 60
    with pcap.PcapWriter(path, snaplen=100) as writer:
        writer.write(long_frame, 1.0)
        writer.write(short_frame, 2.0)
        writer.write(bytes(100), 3.0)
        writer.write(b"\x01" * 50, 4.0, orig_len=1500)  # already truncated by the caller
        writer.write(long_frame, 5.0, orig_len=9000)  # truncated by both
    assert pcap.read_pcap(path) == [
        (1.0, long_frame[:100], 2048),
        (2.0, short_frame, 60),
        (3.0, bytes(100), 100),
        (4.0, b"\x01" * 50, 1500),
        (5.0, long_frame[:100], 9000),
    ]


def test_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "t.pcap"
    before = time.time()
    with pcap.PcapWriter(path) as writer:
        writer.write(b"now")
        writer.write(b"exact", 1_700_000_000.25)
        writer.write(b"carry", 41.9999999999)  # rounds up into the next second
        writer.write(b"int", 1_234_567_890)
    after = time.time()
    (now, _, _), *rest = pcap.read_pcap(path)
    assert before - 1e-6 <= now <= after + 1e-6
    assert [t for t, _, _ in rest] == [1_700_000_000.25, 42.0, 1_234_567_890.0]
    raw = path.read_bytes()
    carry = raw.index(b"carry") - 16
    assert struct.unpack_from("<II", raw, carry) == (42, 0)


def test_write_batch_one_timestamp_for_the_batch(tmp_path: Path) -> None:
    class FakeBatch:  # what write_batch uses of an afxdp.FrameBatch
        def __init__(self, frames: list[bytes]) -> None:
            self.frames = frames

        def to_list(self) -> list[bytes]:
            return list(self.frames)

    frames = random_frames(100, seed=3)
    path = tmp_path / "b.pcap"
    with pcap.PcapWriter(path, snaplen=2000) as writer:
        assert writer.write_batch(FakeBatch(frames[:60]), 10.5) == 60
        assert writer.write_batch([bytearray(f) for f in frames[60:]]) == 40  # any iterable
        assert writer.write_batch([]) == 0
        assert writer.frames == 100
    records = pcap.read_pcap(path)
    assert [d for _, d, _ in records] == [f[:2000] for f in frames]
    assert [o for _, _, o in records] == [len(f) for f in frames]
    assert {t for t, _, _ in records[:60]} == {10.5}
    assert len({t for t, _, _ in records[60:]}) == 1


def _record_stamps(content: bytes) -> list[tuple[int, int]]:
    """(seconds, fraction) of every record of a little-endian pcap file in memory."""
    stamps, offset = [], 24
    while offset < len(content):
        seconds, fraction, captured, _ = struct.unpack_from("<IIII", content, offset)
        stamps.append((seconds, fraction))
        offset += 16 + captured
    return stamps


@pytest.mark.parametrize("nanosecond", [True, False])
def test_write_batch_per_frame_timestamps(nanosecond: bool) -> None:
    buffer = io.BytesIO()
    writer = pcap.PcapWriter(buffer, nanosecond=nanosecond)
    times = [1_700_000_000_123_456_789, 0, 1_700_000_000_123_457_999]
    assert writer.write_batch([b"a", b"bb", b"ccc"], 5.25, timestamps_ns=times) == 3
    # Exact to the file's unit: nanoseconds, or microseconds truncated (never later than the
    # packet, so one flow's times stay in order); 0 takes the batch's timestamp.
    if nanosecond:
        expected = [(1_700_000_000, 123_456_789), (5, 250_000_000), (1_700_000_000, 123_457_999)]
    else:
        expected = [(1_700_000_000, 123_456), (5, 250_000), (1_700_000_000, 123_457)]
    assert _record_stamps(buffer.getvalue()) == expected
    with pytest.raises(ValueError, match="2 entries for a batch of 3 frames"):
        writer.write_batch([b"a", b"b", b"c"], timestamps_ns=[1, 2])
    with pytest.raises(ValueError, match="2\\*\\*31"):
        writer.write_batch([b"a"], timestamps_ns=[(1 << 31) * 1_000_000_000])
    assert writer.frames == 3  # the refused batches wrote nothing


def test_file_objects_memoryviews_autoflush_and_closing(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    writer = pcap.PcapWriter(buffer, nanosecond=False)
    writer.write(memoryview(b"abcdef")[1:4], 7.0)
    writer.close()
    writer.close()  # idempotent
    assert not buffer.closed  # not ours to close
    buffer.seek(0)
    assert pcap.read_pcap(buffer) == [(7.0, b"bcd", 3)]
    with pytest.raises(ValueError, match="closed"):
        writer.write(b"x")
    with pytest.raises(ValueError, match="closed"):
        writer.flush()

    path = tmp_path / "live.pcap"
    with open(path, "wb") as file:
        live = pcap.PcapWriter(file, autoflush=True)
        assert pcap.read_pcap(path) == []  # the header is flushed at once
        live.write(b"first", 1.0)
        assert pcap.read_pcap(path) == [(1.0, b"first", 5)]  # and each record with autoflush


def test_writer_refuses_bad_arguments(tmp_path: Path) -> None:
    path = tmp_path / "bad.pcap"
    for options in ({"snaplen": 0}, {"snaplen": pcap.MAX_SNAPLEN + 1}, {"linktype": -1}):
        with pytest.raises(ValueError):
            pcap.PcapWriter(path, **options)
    with pcap.PcapWriter(path) as writer:
        with pytest.raises(ValueError, match="orig_len"):
            writer.write(b"12345", orig_len=4)
        for stamp in (-1.0, float("nan"), float("inf"), 2.0**32):
            with pytest.raises(ValueError, match="timestamp"):
                writer.write(b"x", stamp)
        with pytest.raises(TypeError):
            writer.write(5)  # type: ignore[arg-type]
    assert pcap.read_pcap(path) == []  # nothing half-written
    with pytest.raises(FileNotFoundError):
        pcap.PcapWriter(tmp_path / "no" / "such" / "dir.pcap")


def big_endian_file(magic: int, records: list[tuple[int, int, bytes, int]]) -> bytes:
    """A pcap file written the way a big-endian host's libpcap writes it."""
    out = struct.pack(">IHHiIII", magic, 2, 4, 0, 0, 65535, 1)
    for seconds, fraction, data, orig_len in records:
        out += struct.pack(">IIII", seconds, fraction, len(data), orig_len) + data
    return out


def test_reader_reads_both_byte_orders_and_both_magics(tmp_path: Path) -> None:
    records = [(1_700_000_000, 500_000, b"one", 3), (1_700_000_001, 1, b"two" * 30, 1500)]
    micro, nano = tmp_path / "be-us.pcap", tmp_path / "be-ns.pcap"
    micro.write_bytes(big_endian_file(0xA1B2C3D4, records))
    nano.write_bytes(big_endian_file(0xA1B23C4D, [(s, f * 1000, d, o) for s, f, d, o in records]))
    for path in (micro, nano):
        got = pcap.read_pcap(path)
        assert [(d, o) for _, d, o in got] == [(b"one", 3), (b"two" * 30, 1500)]
        assert got[0][0] == 1_700_000_000.5
        assert got[1][0] == pytest.approx(1_700_000_001.000001, abs=1e-7)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "shorter than the 24-byte file header"),
        (b"\xd4\xc3\xb2\xa1" + bytes(10), "shorter than the 24-byte file header"),
        (b"\x0a\x0d\x0d\x0a" + bytes(40), "pcapng"),
        (b"GIF89a" + bytes(40), "magic 0x47494638"),
        (struct.pack("<IHHiIII", 0xA1B2C3D4, 1, 0, 0, 0, 65535, 1), "version 1.0"),
        (
            struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1) + bytes(10),
            "record 0 at offset 24: truncated record header",
        ),
        (
            struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
            + struct.pack("<IIII", 0, 0, 100, 100)
            + bytes(40),
            "record 0 at offset 24: truncated: 40 of 100 bytes",
        ),
        (
            struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
            + struct.pack("<IIII", 0, 0, 0xFFFFFFF0, 0),
            "exceeds 262144",
        ),
    ],
)
def test_reader_explains_bad_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.pcap"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        pcap.read_pcap(path)
    assert str(path) in str(info.value)


def test_reader_reports_the_record_that_is_cut_short(tmp_path: Path) -> None:
    path = tmp_path / "cut.pcap"
    with pcap.PcapWriter(path) as writer:
        for i in range(5):
            writer.write(bytes([i]) * 100, float(i))
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ValueError, match=r"record 4 at offset 488: truncated: 99 of 100 bytes"):
        pcap.read_pcap(path)


# --- other readers -------------------------------------------------------------------------------


def write_reference_files(tmp_path: Path) -> tuple[list[bytes], dict[str, Path]]:
    """The same frames (one longer than the snaplen) in a nanosecond and a microsecond file."""
    frames = [udp4(40000 + i, 53, b"q" * i * 37) for i in range(40)]
    paths = {"ns": tmp_path / "ns.pcap", "us": tmp_path / "us.pcap"}
    for unit, path in paths.items():
        with pcap.PcapWriter(path, snaplen=1000, nanosecond=unit == "ns") as writer:
            for i, frame in enumerate(frames):
                writer.write(frame, 1_700_000_000 + i + 0.125)
    return frames, paths


def test_scapy_reads_our_files(tmp_path: Path) -> None:
    with warnings.catch_warnings():  # scapy's own imports may warn; not what is tested here
        warnings.simplefilter("ignore")
        pytest.importorskip("scapy")
        from scapy.layers.inet import UDP
        from scapy.layers.l2 import Ether  # noqa: F401 - registers linktype 1 -> Ether
        from scapy.utils import rdpcap
    frames, paths = write_reference_files(tmp_path)
    for path in paths.values():
        packets = rdpcap(str(path))
        assert [bytes(p) for p in packets] == [f[:1000] for f in frames]
        assert [p.wirelen for p in packets] == [len(f) for f in frames]
        assert [float(p.time) for p in packets] == [1_700_000_000 + i + 0.125 for i in range(40)]
        assert [p[UDP].sport for p in packets] == [40000 + i for i in range(40)]


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump is not installed")
def test_tcpdump_reads_our_files(tmp_path: Path) -> None:
    frames, paths = write_reference_files(tmp_path)
    for path in paths.values():
        # -Z root: as root, Debian's tcpdump would otherwise switch to a user that may not exist.
        out = subprocess.run(
            ["tcpdump", "-Z", "root", "-r", str(path), "-nn", "-tt", "--nano", "-xx"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        stamps = re.findall(r"^(\d+\.\d{9}) IP 10\.11\.0\.1\.(\d+) > 10\.11\.0\.2\.53: ", out, re.M)
        assert stamps == [(f"{1_700_000_000 + i}.125000000", str(40000 + i)) for i in range(40)]
        dumps = [
            bytes.fromhex(
                "".join(re.findall(r"^\t0x[0-9a-f]{4}:  ([0-9a-f ]+)", block, re.M)).replace(
                    " ", ""
                )
            )
            for block in re.split(r"^\d+\.\d{9} ", out, flags=re.M)[1:]
        ]
        assert dumps == [f[:1000] for f in frames]


# --- summary and hexdump -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (
            udp4(),
            "02:00:00:00:00:01 > 02:00:00:00:00:02 IPv4 10.11.0.1:9000 > 10.11.0.2:53 "
            "UDP len 11 (60 bytes)",
        ),
        (
            ipv6_udp(9000, 53, b"hello"),
            "02:00:00:00:00:01 > 02:00:00:00:00:02 IPv6 [2001:db8::1]:9000 > [2001:db8::2]:53 "
            "UDP len 5 (67 bytes)",
        ),
        (
            arp_request(),
            "02:00:00:00:00:01 > ff:ff:ff:ff:ff:ff ARP who-has 10.11.0.2 tell 10.11.0.1 (60 bytes)",
        ),
        (
            vlan_tagged(udp4(), 42),
            "02:00:00:00:00:01 > 02:00:00:00:00:02 vlan 42 IPv4 "
            "10.11.0.1:9000 > 10.11.0.2:53 UDP len 11 (64 bytes)",
        ),
        (
            vlan_tagged(udp4(), 7, 0x88A8),
            "02:00:00:00:00:01 > 02:00:00:00:00:02 802.1ad vlan 7 IPv4 10.11.0.1:9000 > "
            "10.11.0.2:53 UDP len 11 (64 bytes)",
        ),
        (
            vlan_tagged(ipv6_udp(1, 2, b""), 4095),
            "02:00:00:00:00:01 > 02:00:00:00:00:02 vlan 4095 "
            "IPv6 [2001:db8::1]:1 > [2001:db8::2]:2 UDP len 0 "
            "(66 bytes)",
        ),
        (
            ipv4_icmp_echo(77, 3),
            "02:00:00:00:00:01 > 02:00:00:00:00:02 IPv4 10.11.0.1 > "
            "10.11.0.2 ICMP echo-request id 77 seq 3 (60 bytes)",
        ),
        (
            ipv6_frame(58, struct.pack("!BBHHH", 128, 0, 0, 5, 6)),
            "02:00:00:00:00:01 > 02:00:00:00:00:02 IPv6 2001:db8::1 > 2001:db8::2 ICMPv6 "
            "echo-request id 5 seq 6 (62 bytes)",
        ),
        (
            ipv6_frame(6, struct.pack("!HHIIHHHH", 443, 50000, 99, 0, 0x5012, 0, 0, 0)),
            "02:00:00:00:00:01 > 02:00:00:00:00:02 IPv6 [2001:db8::1]:443 > [2001:db8::2]:50000 "
            "TCP [SA] seq 99 (74 bytes)",
        ),
        (
            ipv6_frame(0, bytes([17, 0]) + bytes(6) + struct.pack("!HHHH", 5, 4789, 8, 0)),
            "02:00:00:00:00:01 > 02:00:00:00:00:02 IPv6 [2001:db8::1]:5 > [2001:db8::2]:4789 "
            "UDP len 0 (70 bytes)",
        ),
        (
            packet.ethernet(MAC_B, MAC_A, 0x88CC, b"lldp"),
            "02:00:00:00:00:01 > 02:00:00:00:00:02 ethertype 0x88cc (60 bytes)",
        ),
    ],
    ids=[
        "ipv4-udp",
        "ipv6-udp",
        "arp",
        "vlan",
        "802.1ad",
        "vlan-ipv6",
        "icmp",
        "icmpv6",
        "ipv6-tcp",
        "ipv6-hop-by-hop",
        "other",
    ],
)
def test_summary_of_known_frames(frame: bytes, expected: str) -> None:
    assert pcap.summary(frame) == expected
    assert pcap.summary(bytearray(frame)) == expected
    assert pcap.summary(memoryview(frame)) == expected


def test_summary_never_raises_on_short_or_odd_frames() -> None:
    samples = [
        b"",
        b"\x01" * 13,
        udp4()[:20],
        ipv6_udp(1, 2, b"x")[:30],
        ipv6_udp(1, 2, b"x")[:55],
        vlan_tagged(b"", 1)[:16],
        arp_request()[:20],
        ipv4_icmp_echo(1, 1)[:35],
    ]
    for frame in samples + random_frames(300, seed=11):
        line = pcap.summary(frame)
        assert isinstance(line, str) and "\n" not in line
    assert "truncated" in pcap.summary(ipv6_udp(1, 2, b"x")[:55])
    assert pcap.summary(5) == "not a frame: int"  # type: ignore[arg-type]


def test_hexdump_layout() -> None:
    frame = udp4()
    assert pcap.hexdump(frame).splitlines() == [
        "00000000  02 00 00 00 00 02 02 00  00 00 00 01 08 00 45 00  |..............E.|",
        "00000010  00 27 00 00 40 00 40 11  26 ae 0a 0b 00 01 0a 0b  |.'..@.@.&.......|",
        "00000020  00 02 23 28 00 35 00 13  36 84 68 65 6c 6c 6f 20  |..#(.5..6.hello |",
        "00000030  77 6f 72 6c 64 00 00 00  00 00 00 00              |world.......|",
    ]
    assert pcap.hexdump(b"") == ""
    assert pcap.hexdump(b"ABC") == "00000000  41 42 43" + " " * 42 + "|ABC|"
    assert pcap.hexdump(bytes(range(256)))[-18:] == "|................|"
    assert pcap.hexdump(b"0123456789") == (
        "00000000  30 31 32 33 34 35 36 37  38 39                    |0123456789|"
    )


def undump(lines: list[str]) -> bytes:
    """The bytes of a hexdump(), checking that its offsets follow each other."""
    data = b""
    for line in lines:
        assert int(line[:8], 16) == len(data), line
        data += bytes.fromhex(line[10:58])
    return data


def test_hexdump_round_trips() -> None:
    for frame in random_frames(200, seed=5):
        assert undump(pcap.hexdump(frame).splitlines()) == frame


# --- examples/dumpframes.py in a lab (privileged) ------------------------------------------------


@pytest.mark.privileged
def test_dumpframes_prints_each_matching_frame(lab) -> None:
    pytest.importorskip("afxdp._native")
    dumper = lab.popen(
        "b",
        [
            sys.executable,
            str(DUMPFRAMES),
            lab.if_b,
            "--count",
            "3",
            "--duration",
            "20",
            "--proto",
            "udp",
            "--port",
            "7777",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert dumper.stdout is not None
    first = dumper.stdout.readline()
    assert first.startswith("dumping "), first + dumper.communicate(timeout=30)[1]
    assert "ip proto 17, dst port 7777" in first
    with lab.enter("a"):
        sender = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        sender.bind((lab.if_a, 0))
    sent = []
    with sender:
        for seq in range(6):  # odd ones go to port 7778: no rule matches, the kernel gets them
            frame = packet.ipv4_udp(
                lab.mac_a,
                lab.mac_b,
                lab.ip_a,
                lab.ip_b,
                5000 + seq,
                7777 + seq % 2,
                b"dumpframes" + bytes([seq]) * (seq * 45),
            )
            if seq % 2 == 0:
                sent.append(frame)
            sender.send(frame)
    out, err = dumper.communicate(timeout=30)
    assert dumper.returncode == 0, err
    assert "dumped 3 frames" in out, out
    blocks = [block.splitlines() for block in out.split("\n\n") if block.startswith("frame ")]
    assert len(blocks) == 3, out
    for i, (block, frame) in enumerate(zip(blocks, sent, strict=True)):
        assert block[0].startswith(f"frame {i}: ")
        assert f"10.11.0.1:{5000 + 2 * i} > 10.11.0.2:7777 UDP" in block[0], block[0]
        assert f"({len(frame)} bytes)" in block[0]
        assert undump(block[1:]) == frame


@pytest.mark.privileged
def test_dumpframes_unknown_interface_is_one_line(lab) -> None:
    pytest.importorskip("afxdp._native")
    out = lab.run(
        "b",
        [sys.executable, str(DUMPFRAMES), "nosuch0", "--duration", "1"],
        check=False,
        timeout=60,
    )
    assert out.returncode == 1
    assert out.stderr.strip() == 'dumpframes: no such network interface: "nosuch0"', out.stderr
    assert out.stdout == ""


@pytest.mark.privileged
def test_write_batch_of_a_real_frame_batch(lab, tmp_path: Path) -> None:
    afxdp = pytest.importorskip("afxdp")
    frames = [
        packet.ipv4_udp(lab.mac_a, lab.mac_b, lab.ip_a, lab.ip_b, 1, 2, bytes([i]) * i * 10)
        for i in range(8)
    ]
    with lab.enter("a"):
        sock = afxdp.Socket(lab.if_a, 0, rx_size=0)
    with (
        sock,
        sock.alloc(len(frames)) as batch,
        pcap.PcapWriter(tmp_path / "batch.pcap", snaplen=80) as writer,
    ):
        for frame, data in zip(batch, frames, strict=True):
            frame.write(data)
        assert writer.write_batch(batch, 3.5) == len(frames)
        assert not batch.closed  # read, not consumed
    records = pcap.read_pcap(tmp_path / "batch.pcap")
    assert records == [(3.5, f[:80], len(f)) for f in frames]
