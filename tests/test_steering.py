"""Steering: match rules of the built-in program, changed at run time, and custom XDP programs.

Frames are sent from namespace ``a`` through a raw AF_PACKET socket (any frame, VLAN tags inline)
and observed in namespace ``b`` twice: by the AF_XDP socket (what left the kernel stack) and by an
AF_PACKET socket on ``if_b`` (what the XDP program passed to the stack). Each test frame carries a
unique marker, so every one is accounted for exactly once on one side or the other.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

afxdp = pytest.importorskip("afxdp")

from afxdp import packet  # noqa: E402
from afxdp.testing import arp_request  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_C = ROOT / "tests" / "fixtures" / "custom_xdp.c"
BUILTIN_OBJECT = ROOT / "rust" / "core" / "bpf" / "afxdp.bpf.o"

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
PORT_P, PORT_Q, PORT_R = 7001, 7002, 7003
MARK = b"AFXDP-STEER"
DEADLINE = 20.0
OTHER_IP = "10.11.0.77"  # an address nobody in the lab has: the target of test ARP requests

# --- frames ---------------------------------------------------------------------------------------


def marked(seq: int) -> bytes:
    return MARK + struct.pack("!I", seq)


def seq_of(frame: bytes) -> int | None:
    at = frame.find(MARK)
    if at < 0:
        return None
    return struct.unpack_from("!I", frame, at + len(MARK))[0]


def udp4(lab, dst_port: int, seq: int, proto: int = 17, frag_offset: int = 0) -> bytes:
    """IPv4 with a UDP-shaped transport header (``proto`` 6 makes the same bytes look like TCP
    ports; the rules only read the ports). ``frag_offset`` (in 8-octet units) makes it a
    non-first fragment."""
    frame = bytearray(
        packet.ipv4_udp(lab.mac_a, lab.mac_b, lab.ip_a, lab.ip_b, 40000, dst_port, marked(seq))
    )
    if proto != 17 or frag_offset:
        ip = 14
        frame[ip + 9] = proto
        struct.pack_into("!H", frame, ip + 6, frag_offset & 0x1FFF)
        struct.pack_into("!H", frame, ip + 10, 0)
        struct.pack_into("!H", frame, ip + 10, packet.ipv4_checksum(frame[ip : ip + 20]))
    return bytes(frame)


def vlan(frame: bytes, tpid: int = 0x8100, vid: int = 42) -> bytes:
    """``frame`` with one VLAN tag inserted after the MAC addresses."""
    return frame[:12] + struct.pack("!HH", tpid, vid) + frame[12:]


def udp6(lab, dst_port: int, seq: int, ext: bytes = b"", first_next: int = 17) -> bytes:
    """IPv6/UDP between two link-local addresses; ``ext`` is a chain of extension headers
    whose first next-header value is ``first_next`` (17 without extensions)."""
    src = bytes.fromhex("fe800000000000000000000000000001")
    dst = bytes.fromhex("fe800000000000000000000000000002")
    payload = marked(seq)
    udp_len = 8 + len(payload)
    udp = struct.pack("!HHHH", 40000, dst_port, udp_len, 0) + payload
    pseudo = src + dst + struct.pack("!IxxxB", udp_len, 17)
    checksum = packet.ipv4_checksum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", checksum) + udp[8:]
    body = ext + udp
    ip6 = struct.pack("!IHBB", 6 << 28, len(body), first_next if ext else 17, 64) + src + dst
    return packet.ethernet(lab.mac_b, lab.mac_a, 0x86DD, ip6 + body)


def hop_by_hop(next_header: int) -> bytes:
    """An 8-octet hop-by-hop options header (PadN only)."""
    return struct.pack("!BBBB", next_header, 0, 1, 2) + b"\0\0\0\0"


def fragment_header(next_header: int, offset: int) -> bytes:
    """An IPv6 fragment header at ``offset`` 8-octet units, more fragments set."""
    return struct.pack("!BBHI", next_header, 0, (offset << 3) | 1, 0x1234)


def icmp_echo(lab, seq: int) -> bytes:
    body = struct.pack("!BBHHH", 8, 0, 0, 0x4242, seq & 0xFFFF) + marked(seq)
    body = body[:2] + struct.pack("!H", packet.ipv4_checksum(body)) + body[4:]
    frame = bytearray(udp4(lab, 0, seq))  # IPv4 header to patch
    ip = bytearray(frame[14:34])
    ip[9] = 1
    struct.pack_into("!H", ip, 2, 20 + len(body))
    struct.pack_into("!H", ip, 10, 0)
    struct.pack_into("!H", ip, 10, packet.ipv4_checksum(ip))
    return packet.ethernet(lab.mac_b, lab.mac_a, 0x0800, bytes(ip) + body)


# --- the two observers ----------------------------------------------------------------------------


@dataclass
class Observed:
    xsk: dict[int, bytes] = field(default_factory=dict)
    stack: dict[int, bytes] = field(default_factory=dict)
    duplicates: list[tuple[str, int]] = field(default_factory=list)

    def add(self, side: str, frame: bytes) -> None:
        seq = seq_of(frame)
        if seq is None:
            return
        if seq in self.xsk or seq in self.stack:
            self.duplicates.append((side, seq))
        (self.xsk if side == "xsk" else self.stack)[seq] = frame

    @property
    def total(self) -> int:
        return len(self.xsk) + len(self.stack)


@dataclass
class Steering:
    lab: object
    prog: afxdp.Program
    sock: afxdp.Socket
    tx: socket.socket
    sniffer: socket.socket
    observed: Observed = field(default_factory=Observed)

    def send(self, frames: list[bytes]) -> None:
        for frame in frames:
            self.tx.send(frame)

    def drain(self, expected: int, timeout: float = 5.0) -> Observed:
        """Collects frames on both sides until ``expected`` marked frames were seen (then a
        short grace period for strays)."""
        deadline = time.monotonic() + timeout
        settle: float | None = None
        while time.monotonic() < deadline:
            self.poll_once(0.02)
            if self.observed.total >= expected:
                settle = settle or time.monotonic() + 0.1
                if time.monotonic() > settle:
                    break
        return self.observed

    def poll_once(self, timeout: float) -> None:
        with self.sock.recv(256, timeout=timeout) as batch:
            for frame in batch:
                self.observed.add("xsk", bytes(frame))
        while True:
            try:
                data, addr = self.sniffer.recvfrom(4096, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            if addr[2] != PACKET_OUTGOING:
                self.observed.add("stack", data)


@contextmanager
def steering(lab, rules=None, mode: str = "native") -> Iterator[Steering]:
    with ExitStack() as stack:
        with lab.enter("b"):
            prog = stack.enter_context(afxdp.Program.attach(lab.if_b, mode=mode, rules=rules))
            sock = stack.enter_context(afxdp.Socket(lab.if_b, 0, program=prog, tx_size=0))
            sniffer = stack.enter_context(
                socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            )
            sniffer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
            sniffer.bind((lab.if_b, 0))
        with lab.enter("a"):
            tx = stack.enter_context(socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0))
            tx.bind((lab.if_a, 0))
        yield Steering(lab, prog, sock, tx, sniffer)


# --- unprivileged: the Rule type and argument checks ----------------------------------------------


def test_rule_fields_equality_and_repr():
    rule = afxdp.Rule(ethertype=0x0800, ip_proto=17, dst_port=53)
    assert (rule.ethertype, rule.ip_proto, rule.dst_port) == (0x0800, 17, 53)
    assert rule == afxdp.Rule(ip_proto=17, dst_port=53, ethertype=0x800)
    assert rule != afxdp.Rule(ip_proto=17, dst_port=54)
    assert len({rule, afxdp.Rule(ethertype=0x0800, ip_proto=17, dst_port=53)}) == 1
    assert repr(rule) == "Rule(ethertype=0x0800, ip_proto=17, dst_port=53)"
    assert repr(afxdp.Rule()) == "Rule(ethertype=None, ip_proto=None, dst_port=None)"
    assert afxdp.Rule().dst_port is None


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"ethertype": 0x05FF}, "ethertype 1535"),
        ({"ethertype": 0x10000}, "ethertype 65536"),
        ({"ip_proto": 256}, "ip_proto 256"),
        ({"ip_proto": -1}, "ip_proto -1"),
        ({"dst_port": 65536}, "dst_port 65536"),
        ({"dst_port": -5}, "dst_port -5"),
    ],
)
def test_rule_out_of_range_values_are_named(kwargs, named):
    with pytest.raises(ValueError, match=named):
        afxdp.Rule(**kwargs)


def test_bad_rules_are_refused_before_anything_is_attached():
    # These fail in argument checking, before any interface lookup or privilege check.
    with pytest.raises(TypeError, match=r"rules\[1\] is 53, not an afxdp.Rule"):
        afxdp.Program.attach("afxdp-none0", rules=[afxdp.Rule(), 53])
    too_many = [afxdp.Rule(dst_port=p) for p in range(17)]
    with pytest.raises(ValueError, match=r"too many rules: 17 .*at most 16"):
        afxdp.Program.attach("afxdp-none0", rules=too_many)
    with pytest.raises(TypeError):
        afxdp.Program.attach("afxdp-none0", rules=42)


# --- privileged: rules on a live interface --------------------------------------------------------


def assert_split(observed: Observed, frames: dict[int, bytes], to_xsk: set[int]) -> None:
    """Every frame arrived exactly once, intact, on the side the rules say."""
    assert observed.duplicates == []
    missing = set(frames) - set(observed.xsk) - set(observed.stack)
    assert not missing, f"lost frames: {sorted(missing)}"
    assert set(observed.xsk) == to_xsk, "frames the socket got that it should not, or missed"
    assert set(observed.stack) == set(frames) - to_xsk
    for seq, frame in observed.xsk.items():
        assert frame == frames[seq], f"frame {seq} changed on the way"
    for seq, frame in observed.stack.items():
        sent = frames[seq]
        if sent[12:14] in (b"\x81\x00", b"\x88\xa8"):
            # The stack moves the outer VLAN tag into skb metadata; AF_PACKET shows it untagged.
            sent = sent[:12] + sent[16:]
        assert frame == sent, f"frame {seq} changed on the way"


@pytest.mark.privileged
def test_udp_port_rule_sends_the_rest_to_the_kernel_stack(lab):
    rule = afxdp.Rule(ip_proto=17, dst_port=PORT_P)
    with steering(lab, rules=[rule]) as st:
        assert st.prog.rules == [rule]
        frames: dict[int, bytes] = {}
        to_xsk: set[int] = set()
        for i in range(50):
            base = i * 5
            frames[base] = udp4(lab, PORT_P, base)
            to_xsk.add(base)
            frames[base + 1] = udp4(lab, PORT_Q, base + 1)
            frames[base + 2] = arp_request(lab.mac_a, lab.ip_a, OTHER_IP, marked(base + 2))
            frames[base + 3] = icmp_echo(lab, base + 3)
            frames[base + 4] = udp4(lab, PORT_P, base + 4, proto=6)  # TCP to P: not UDP
        st.send(list(frames.values()))
        assert_split(st.drain(len(frames)), frames, to_xsk)
        assert st.prog.rule_stats() == [(rule, 50)]
        assert st.prog.unmatched() >= 200
        # The host stays on the network: ping through the interface works meanwhile.
        ping = lab.run("a", ["ping", "-c", "2", "-i", "0.2", "-W", "2", lab.ip_b], check=False)
        assert ping.returncode == 0, ping.stdout
        assert st.sock.stats().rx_dropped == 0


@pytest.mark.privileged
@pytest.mark.parametrize("mode", ["native", "generic"])
def test_no_rules_takes_everything_and_empty_rules_restore_it(lab, mode):
    with steering(lab, rules=None, mode=mode) as st:
        assert st.prog.rules == []
        frames = {
            0: udp4(lab, PORT_Q, 0),
            1: arp_request(lab.mac_a, lab.ip_a, OTHER_IP, marked(1)),
            2: icmp_echo(lab, 2),
        }
        st.send(list(frames.values()))
        assert_split(st.drain(3), frames, {0, 1, 2})
        assert st.prog.rule_stats() == []
        st.prog.set_rules([afxdp.Rule(dst_port=PORT_P)])
        more = {3: udp4(lab, PORT_P, 3), 4: udp4(lab, PORT_Q, 4)}
        st.send(list(more.values()))
        st.observed = Observed()
        assert_split(st.drain(2), more, {3})
        st.prog.set_rules([])
        last = {5: udp4(lab, PORT_Q, 5)}
        st.send(list(last.values()))
        st.observed = Observed()
        assert_split(st.drain(1), last, {5})


@pytest.mark.privileged
def test_ipv6_frames_match_as_documented(lab):
    rule = afxdp.Rule(ethertype=0x86DD, ip_proto=17, dst_port=PORT_P)
    with steering(lab, rules=[rule]) as st:
        frames = {
            0: udp6(lab, PORT_P, 0),
            1: udp6(lab, PORT_Q, 1),
            2: udp4(lab, PORT_P, 2),  # IPv4: wrong ethertype
            3: udp6(lab, PORT_P, 3, ext=hop_by_hop(17), first_next=0),
            4: udp6(lab, PORT_P, 4, ext=hop_by_hop(60) + hop_by_hop(17), first_next=0),
            5: udp6(lab, PORT_P, 5, ext=fragment_header(17, 0), first_next=44),  # first fragment
            6: udp6(lab, PORT_P, 6, ext=fragment_header(17, 100), first_next=44),  # not first
            7: vlan(udp6(lab, PORT_P, 7)),
        }
        st.send(list(frames.values()))
        assert_split(st.drain(len(frames)), frames, {0, 3, 4, 5, 7})
        assert st.prog.rule_stats() == [(rule, 5)]


@pytest.mark.privileged
def test_a_later_ipv6_fragment_is_not_walked_past_its_fragment_header(lab):
    # What follows the fragment header of a fragment other than the first is data, and the
    # program walked it as headers: here 8 data bytes that look like a destination-options
    # header naming UDP made the fragment's ip_proto 17 (a TCP packet's fragments went half to
    # the socket, half to the stack). Its ip_proto is the fragment header's next header.
    rule = afxdp.Rule(ethertype=0x86DD, ip_proto=60)
    with steering(lab, rules=[rule]) as st:
        looks_like_a_header = hop_by_hop(17)
        frames = {
            0: udp6(
                lab, PORT_P, 0, ext=fragment_header(60, 100) + looks_like_a_header, first_next=44
            ),
            # The first fragment's headers are walked: destination options, then UDP.
            1: udp6(
                lab, PORT_P, 1, ext=fragment_header(60, 0) + looks_like_a_header, first_next=44
            ),
        }
        st.send(list(frames.values()))
        assert_split(st.drain(len(frames)), frames, {0})
        assert st.prog.rule_stats() == [(rule, 1)]


@pytest.mark.privileged
def test_vlan_tagged_frames_match_on_the_inner_headers(lab):
    rules = [afxdp.Rule(ethertype=0x0800, dst_port=PORT_P)]
    with steering(lab, rules=rules) as st:
        frames = {
            0: vlan(udp4(lab, PORT_P, 0)),
            1: vlan(udp4(lab, PORT_P, 1), tpid=0x88A8),
            2: vlan(udp4(lab, PORT_Q, 2)),
            3: vlan(vlan(udp4(lab, PORT_P, 3)), tpid=0x88A8),  # two tags: only one is parsed
            4: udp4(lab, PORT_P, 4, proto=6),  # TCP: any protocol with ports
            5: udp4(lab, PORT_P, 5, frag_offset=185),  # non-first fragment: no ports
            6: udp4(lab, PORT_P, 6, proto=1),  # ICMP has no ports
        }
        st.send(list(frames.values()))
        assert_split(st.drain(len(frames)), frames, {0, 1, 4})


@pytest.mark.slow
@pytest.mark.privileged
def test_changing_rules_under_traffic_loses_and_misdelivers_nothing(lab):
    """A stream cycling through ports P, Q, R while the rules switch between sets: every frame
    arrives exactly once, and the decisions along the stream are those of one rule set at a
    time, in the order the sets were installed (no frame judged by a torn set)."""
    P, Q = afxdp.Rule(dst_port=PORT_P), afxdp.Rule(dst_port=PORT_Q)
    sets = [[P], [P, Q], [Q], [P, Q], [P], []]
    per_port = {PORT_P: 0, PORT_Q: 1, PORT_R: 2}
    ports = [PORT_P, PORT_Q, PORT_R]
    with steering(lab, rules=sets[0]) as st:
        frames = {seq: udp4(lab, ports[seq % 3], seq) for seq in range(30_000)}
        stop = threading.Event()

        def sender() -> None:
            for seq, frame in frames.items():
                if stop.is_set():
                    return
                st.tx.send(frame)
                if seq % 64 == 63:
                    time.sleep(0.002)  # ~30k frames/s: the receivers keep up

        def switcher() -> None:
            for rules in sets[1:]:
                time.sleep(0.15)
                st.prog.set_rules(rules)

        threads = [threading.Thread(target=sender), threading.Thread(target=switcher)]
        for t in threads:
            t.start()
        try:
            deadline = time.monotonic() + DEADLINE
            while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
                st.poll_once(0.01)
        finally:
            stop.set()
            for t in threads:
                t.join()
        observed = st.drain(len(frames))
        stats = st.sock.stats()
        assert (stats.rx_dropped, stats.rx_ring_full, stats.rx_fill_ring_empty_descs) == (0, 0, 0)
        assert observed.duplicates == []
        missing = sorted(set(frames) - set(observed.xsk) - set(observed.stack))
        assert not missing, f"{len(missing)} frames lost, first {missing[:5]}"

        # Walk the stream in order: the set in force may only move forward.
        current = 0
        switches = []
        for seq in range(len(frames)):
            port = ports[seq % 3]
            went_to_socket = seq in observed.xsk

            def decides(i: int, port: int = port, went_to_socket: bool = went_to_socket) -> bool:
                if not sets[i]:
                    return True  # no rules: everything goes to the socket
                return any(r.dst_port == port for r in sets[i]) == went_to_socket

            if decides(current):
                continue
            later = [i for i in range(current + 1, len(sets)) if decides(i)]
            assert later, (
                f"frame {seq} to port {port} went to the "
                f"{'socket' if went_to_socket else 'stack'}, "
                f"which no rule set from {sets[current]} on explains"
            )
            current = later[0]
            switches.append((seq, current))
        assert current >= 4, f"the stream saw too few rule changes: {switches}"
        assert per_port  # (ports are known: P, Q and R)


# --- custom programs ------------------------------------------------------------------------------


def find_clang() -> str | None:
    for name in ("clang-22", "clang"):
        if path := shutil.which(name):
            return path
    return None


@pytest.fixture(scope="module")
def custom_object(tmp_path_factory) -> Path:
    """tests/fixtures/custom_xdp.c compiled with clang, as a user would build their program."""
    clang = find_clang()
    if clang is None:
        message = (
            "clang is needed to build the custom XDP program "
            "(scripts/install-ebpf-toolchain.sh installs clang-22)"
        )
        if os.environ.get("AFXDP_REQUIRE_PRIVILEGED") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    out = tmp_path_factory.mktemp("bpf") / "custom_xdp.o"
    multiarch = subprocess.run(
        ["gcc", "-print-multiarch"], capture_output=True, text=True
    ).stdout.strip()
    subprocess.run(
        [
            clang,
            "-O2",
            "-g",
            "-target",
            "bpf",
            f"-I/usr/include/{multiarch or 'x86_64-linux-gnu'}",
            "-c",
            str(FIXTURE_C),
            "-o",
            str(out),
        ],
        check=True,
    )
    return out


@pytest.mark.privileged
@pytest.mark.parametrize("as_bytes", [False, True])
def test_custom_program_steers_by_its_own_logic(lab, custom_object, as_bytes):
    obj = custom_object.read_bytes() if as_bytes else custom_object
    with ExitStack() as stack:
        with lab.enter("b"):
            prog = stack.enter_context(
                afxdp.Program.load(
                    obj,
                    lab.if_b,
                    program="steer_even_ports",
                    xsk_map="xsks_by_queue",
                    mode="native",
                )
            )
            sock = stack.enter_context(afxdp.Socket(lab.if_b, 0, program=prog, tx_size=0))
            sniffer = stack.enter_context(
                socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            )
            sniffer.bind((lab.if_b, 0))
        with lab.enter("a"):
            tx = stack.enter_context(socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0))
            tx.bind((lab.if_a, 0))
        assert prog.program_name == "steer_even_ports"
        assert sock.registered
        st = Steering(lab, prog, sock, tx, sniffer)
        frames = {seq: udp4(lab, 8000 + seq, seq) for seq in range(40)}
        st.send(list(frames.values()))
        # The program's logic: UDP to an even port goes to the socket.
        assert_split(st.drain(len(frames)), frames, {seq for seq in frames if seq % 2 == 0})
        with pytest.raises(ValueError, match="match rules need the built-in program"):
            prog.set_rules([afxdp.Rule(dst_port=1)])
        assert prog.rules == []
        with pytest.raises(ValueError, match="no-socket counters need the built-in program"):
            prog.no_socket_counts()


@pytest.mark.privileged
def test_register_at_a_key_spreads_one_queue_over_sockets(lab, custom_object):
    """A program from an object picks the XSKMAP key its own way: two sockets bound to queue 0
    (one Umem, one fill ring) registered at keys 0 and 1 split its packets by port parity."""
    with ExitStack() as stack:
        with lab.enter("b"):
            prog = stack.enter_context(
                afxdp.Program.load(
                    custom_object,
                    lab.if_b,
                    program="steer_by_parity",
                    xsk_map="xsks_by_parity",
                    mode="native",
                )
            )
            umem = afxdp.Umem()
            even, odd = (
                stack.enter_context(afxdp.Socket(lab.if_b, 0, umem=umem, tx_size=0))
                for _ in range(2)
            )
        with lab.enter("a"):
            tx = stack.enter_context(socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0))
            tx.bind((lab.if_a, 0))
        assert prog.map_size == 2
        with pytest.raises(ValueError, match=r"key 2 is out of range: .* has 2 entries"):
            prog.register(even, key=2)
        with pytest.raises(ValueError, match="key"):
            prog.register(even, key=-1)
        assert not even.registered and not odd.registered
        prog.register(even, key=0)
        prog.register(odd, key=1)
        assert even.registered and odd.registered
        frames = {seq: udp4(lab, 8000 + seq, seq) for seq in range(40)}
        for frame in frames.values():
            tx.send(frame)
        got: dict[str, dict[int, bytes]] = {"even": {}, "odd": {}}
        deadline = time.monotonic() + DEADLINE
        while sum(map(len, got.values())) < len(frames) and time.monotonic() < deadline:
            for name, sock in (("even", even), ("odd", odd)):
                with sock.recv(64, timeout=0.02) as batch:
                    for frame in batch:
                        seq = seq_of(bytes(frame))
                        assert seq is not None and seq not in got[name], "a stray or a duplicate"
                        got[name][seq] = bytes(frame)
        assert set(got["even"]) == {seq for seq in frames if seq % 2 == 0}
        assert set(got["odd"]) == {seq for seq in frames if seq % 2 == 1}
        assert all(got[name][seq] == frames[seq] for name in got for seq in got[name])
        # Unregistering key 1 sends odd ports to the stack; the even socket keeps receiving.
        prog.unregister(1)
        assert even.registered and not odd.registered


@pytest.mark.privileged
def test_the_builtin_program_registers_at_the_queue_only(lab):
    with (
        lab.enter("b"),
        afxdp.Program.attach(lab.if_b, mode="native") as prog,
        afxdp.Socket(lab.if_b, 0, tx_size=0) as sock,
    ):
        with pytest.raises(ValueError, match=r"key 1: the built-in program redirects .* queue 0"):
            prog.register(sock, key=1)
        assert not sock.registered
        prog.register(sock, key=0)
        assert sock.registered


@pytest.mark.privileged
def test_custom_object_built_with_aya_loads_by_name(lab):
    """The built-in object is an aya-built object like any user's: load it by its names."""
    with (
        lab.enter("b"),
        afxdp.Program.load(
            BUILTIN_OBJECT, lab.if_b, program="afxdp_redirect", xsk_map="XSKS"
        ) as prog,
    ):
        assert prog.attached and prog.program_name == "afxdp_redirect"
        assert prog.map_size >= 1


@pytest.mark.privileged
def test_custom_program_errors_name_what_is_wrong(lab, custom_object, tmp_path):
    with lab.enter("b"):
        with pytest.raises(
            ValueError, match=r'no program named "nope" \(its programs: .*steer_even_ports'
        ):
            afxdp.Program.load(custom_object, lab.if_b, program="nope", xsk_map="xsks_by_queue")
        with pytest.raises(ValueError, match=r'no map named "nope" \(its maps: .*xsks_by_queue'):
            afxdp.Program.load(custom_object, lab.if_b, program="steer_even_ports", xsk_map="nope")
        with pytest.raises(
            ValueError, match=r"map `even_count` .* is an array map .*not an XSKMAP"
        ):
            afxdp.Program.load(
                custom_object, lab.if_b, program="steer_even_ports", xsk_map="even_count"
            )
        with pytest.raises(
            ValueError,
            match=r"3 XDP programs \(steer_by_parity, steer_even_ports, unchecked_read\)",
        ):
            afxdp.Program.load(custom_object, lab.if_b, xsk_map="xsks_by_queue")
        with pytest.raises(afxdp.VerifierError) as rejected:
            afxdp.Program.load(
                custom_object, lab.if_b, program="unchecked_read", xsk_map="xsks_by_queue"
            )
        err = rejected.value
        assert isinstance(err, OSError) and err.errno is not None
        assert err.program == "unchecked_read"
        assert "invalid access to packet" in err.log
        assert "unchecked_read" in str(err) and "invalid access to packet" in str(err)
        with pytest.raises(FileNotFoundError, match=r"missing\.o"):
            afxdp.Program.load(tmp_path / "missing.o", lab.if_b)
        with pytest.raises(OSError, match="loading the XDP program failed"):
            afxdp.Program.load(b"not an ELF object", lab.if_b)
        with pytest.raises(TypeError, match=r"path .* or a bytes-like object"):
            afxdp.Program.load(12, lab.if_b)
        # Nothing of the failed loads stayed attached.
        assert "prog/xdp" not in lab.run("b", ["ip", "link", "show", "dev", lab.if_b]).stdout
        # The default names are used when the object has one candidate each.
        with afxdp.Program.load(BUILTIN_OBJECT, lab.if_b) as prog:
            assert prog.program_name == "afxdp_redirect"
