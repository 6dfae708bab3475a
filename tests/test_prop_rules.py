"""The built-in program's rule matcher against a model of the README's semantics (hypothesis).

Random rule sets (up to the cap of 16, ``None`` fields) and random frames (Ethernet, zero to two
802.1Q/802.1ad tags, ARP, IPv4 with options and fragments, IPv6 with chains of extension headers
including AH and ESP, which the program does not walk, TCP/UDP/UDP-Lite/SCTP/DCCP/ICMP, truncated
headers, odd lengths) go through a veth in a lab: from namespace ``a`` through a raw AF_PACKET
socket, into ``b`` where the program runs with the rules. Each frame must then be seen exactly
where :func:`model_decision` says, by the AF_XDP socket (it matched) or by an AF_PACKET socket
on the same interface (it reached the kernel stack), and the program's per-rule hit counters
and unmatched count must equal the model's.

Every frame carries its sequence number in its source MAC address, which no rule looks at.
"""

from __future__ import annotations

import itertools
import socket
import struct
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from prop_support import examples

afxdp = pytest.importorskip("afxdp")

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
VLAN_TPIDS = (0x8100, 0x88A8)
#: Protocols whose destination port is at bytes 2..4 of the transport header (README).
PORT_PROTOCOLS = (6, 17, 33, 132, 136)  # TCP, UDP, DCCP, SCTP, UDP-Lite
#: IPv6 extension headers the program walks (README): hop-by-hop, routing, fragment, dest. opts.
WALKED = (0, 43, 44, 60)
MAX_WALKED = 4
#: A unicast address nobody in the lab has: frames passed to the stack are seen by AF_PACKET,
#: then dropped as PACKET_OTHERHOST, so the stack never answers them.
DST_MAC = bytes.fromhex("020000000099")
SRC_MAC_PREFIX = bytes.fromhex("0253")

# --- the model -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fields:
    """What the README says the rules look at; None where the frame does not carry it."""

    ethertype: int | None = None
    ip_proto: int | None = None
    dst_port: int | None = None


def be16(frame: bytes, at: int) -> int:
    return frame[at] << 8 | frame[at + 1]


def model_fields(frame: bytes) -> Fields:
    """The README's "Steering" semantics, written from the text, not from the program."""
    if len(frame) < 14:
        return Fields()
    ethertype, l3 = be16(frame, 12), 14
    if ethertype in VLAN_TPIDS:  # at most one tag is read
        if len(frame) < 18:
            return Fields()
        ethertype, l3 = be16(frame, 16), 18
    if ethertype == 0x0800:
        if len(frame) < l3 + 20:
            return Fields(ethertype)
        proto = frame[l3 + 9]
        ihl = (frame[l3] & 0x0F) * 4
        first_fragment = be16(frame, l3 + 6) & 0x1FFF == 0
        # A header length below 20 is no IPv4 header: no transport header follows it.
        l4 = l3 + ihl if ihl >= 20 else None
        end = l3 + be16(frame, l3 + 2)  # the packet's total length: what follows is padding
    elif ethertype == 0x86DD:
        if len(frame) < l3 + 40:
            return Fields(ethertype)
        proto, l4, first_fragment = frame[l3 + 6], l3 + 40, True
        end = l3 + 40 + be16(frame, l3 + 4)  # the payload length
        for _ in range(MAX_WALKED):
            if proto not in WALKED:
                break
            if len(frame) < l4 + 8:
                return Fields(ethertype)  # the extension header is cut off: no protocol
            if proto == 44:
                first_fragment = be16(frame, l4 + 2) & 0xFFF8 == 0
                proto, l4 = frame[l4], l4 + 8
                if not first_fragment:
                    break  # a later fragment carries data: what follows is no header
            else:
                proto, l4 = frame[l4], l4 + (frame[l4 + 1] + 1) * 8
    else:
        return Fields(ethertype)
    port = None
    if (
        first_fragment
        and proto in PORT_PROTOCOLS
        and l4 is not None
        and len(frame) >= l4 + 4
        and end >= l4 + 4
    ):
        port = be16(frame, l4 + 2)
    return Fields(ethertype, proto, port)


def rule_matches(rule: afxdp.Rule, fields: Fields) -> bool:
    return all(
        want is None or want == have
        for want, have in (
            (rule.ethertype, fields.ethertype),
            (rule.ip_proto, fields.ip_proto),
            (rule.dst_port, fields.dst_port),
        )
    )


def model_decision(rules: list[afxdp.Rule], frame: bytes) -> int | None:
    """Index of the first rule the frame matches (-1: no rules, everything matches), or None:
    the frame goes to the kernel stack."""
    if not rules:
        return -1
    fields = model_fields(frame)
    return next((i for i, rule in enumerate(rules) if rule_matches(rule, fields)), None)


def stack_sees(frame: bytes) -> bool:
    """Whether AF_PACKET sees a frame XDP passed to the stack. Before its taps the kernel moves
    the outer VLAN tag into the skb's metadata (a second one only later), and drops a frame whose
    outer tag, plus the two bytes after it, is cut off: not the program's business, but it
    decides where such a frame can be seen."""
    return be16(frame, 12) not in VLAN_TPIDS or len(frame) >= 14 + 4 + 2


# --- strategies ----------------------------------------------------------------------------------

#: Ports, protocols and ethertypes rules and frames both draw from, so that they meet often.
PORTS = st.sampled_from([0, 7, 53, 443, 4789, 0xFFFF]) | st.integers(0, 0xFFFF)
PROTOS = st.sampled_from([*PORT_PROTOCOLS, 1, 58, 0, 43, 44, 50, 51, 60, 255]) | st.integers(0, 255)
ETHERTYPES = st.sampled_from([0x0800, 0x86DD, 0x0806, *VLAN_TPIDS]) | st.integers(0x0600, 0xFFFF)

rules_strategy = st.lists(
    st.builds(
        afxdp.Rule,
        ethertype=st.none() | ETHERTYPES,
        ip_proto=st.none() | PROTOS,
        dst_port=st.none() | PORTS,
    ),
    max_size=16,
)


@st.composite
def transport(draw: st.DrawFn, proto: int) -> bytes:
    """A transport header for ``proto`` (ports first where it has them) and a short payload."""
    if proto in PORT_PROTOCOLS or draw(st.booleans()):
        header = struct.pack("!HH", draw(PORTS), draw(PORTS))
        header += draw(st.binary(min_size=0, max_size=16))
    else:  # ICMP and the rest: any bytes
        header = draw(st.binary(max_size=12))
    return header + draw(st.binary(max_size=24))


@st.composite
def ipv4(draw: st.DrawFn) -> bytes:
    proto = draw(PROTOS)
    ihl = draw(st.integers(5, 15) | st.integers(0, 4))
    options = draw(st.binary(min_size=max(0, ihl * 4 - 20), max_size=max(0, ihl * 4 - 20)))
    flags_offset = draw(
        st.sampled_from([0, 0x4000, 0x2000]) | st.integers(0, 0xFFFF)  # DF, MF, any offset
    )
    total = draw(PORTS)  # any value: the program must not read it as a port
    header = struct.pack(
        "!BBHHHBBH4s4s",
        draw(st.sampled_from([4, 6]) | st.integers(0, 15)) << 4 | ihl,
        0,
        total,
        1,
        flags_offset,
        64,
        proto,
        0,
        bytes(4),
        bytes(4),
    )
    return header + options + draw(transport(proto))


EXTENSIONS = st.sampled_from([0, 43, 44, 60, 51, 50])


@st.composite
def ipv6(draw: st.DrawFn) -> bytes:
    chain = draw(st.lists(EXTENSIONS, max_size=6))
    upper = draw(PROTOS)
    kinds = [*chain, upper]
    body = b""
    for kind, next_header in itertools.pairwise(kinds):
        if kind == 44:
            offset = draw(st.sampled_from([0, 1, 185]) | st.integers(0, 0x1FFF))
            body += struct.pack("!BBHI", next_header, 0, offset << 3 | draw(st.integers(0, 7)), 9)
        elif kind == 51:  # AH: length in 4-octet units minus 2
            length = draw(st.integers(1, 4))
            body += struct.pack("!BB", next_header, length) + bytes((length + 2) * 4 - 2)
        elif kind == 50:  # ESP: opaque from here on; the program stops before it anyway
            body += draw(st.binary(min_size=8, max_size=24))
            break
        else:
            length = draw(st.integers(0, 2))
            body += struct.pack("!BB", next_header, length) + bytes((length + 1) * 8 - 2)
    else:
        body += draw(transport(upper))
    first = kinds[0]
    length = draw(st.just(len(body)) | PORTS)  # mostly true; else the ports may lie beyond it
    return struct.pack("!IHBB", 6 << 28, length, first, 64) + bytes(32) + body


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["ipv4", "ipv6", "arp", "other"]))
    if kind == "ipv4":
        ethertype, l3 = 0x0800, draw(ipv4())
    elif kind == "ipv6":
        ethertype, l3 = 0x86DD, draw(ipv6())
    elif kind == "arp":
        ethertype, l3 = 0x0806, struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + bytes(20)
    else:
        ethertype, l3 = draw(ETHERTYPES), draw(st.binary(max_size=64))
    tags = b"".join(
        struct.pack("!HH", draw(st.sampled_from(VLAN_TPIDS)), draw(st.integers(0, 0xFFFF)))
        for _ in range(draw(st.integers(0, 2)))
    )
    frame = DST_MAC + bytes(6) + tags + struct.pack("!H", ethertype) + l3
    cut = draw(st.none() | st.integers(14, len(frame)))  # truncated anywhere after the MACs
    return frame if cut is None else frame[:cut]


# --- the lab -------------------------------------------------------------------------------------


@dataclass
class Steering:
    prog: afxdp.Program
    sock: afxdp.Socket
    tx: socket.socket
    sniffer: socket.socket
    seq: int = 0

    def run(self, sent: dict[int, bytes], expect: dict[int, str]) -> dict[int, list[str]]:
        """Sends the frames; returns where each was seen (a list, so duplicates show) once every
        frame expected somewhere was seen, or after a deadline, and a short grace period."""
        for frame in sent.values():
            self.tx.send(frame)
        seen: dict[int, list[str]] = {}
        visible = {seq for seq, side in expect.items() if side != "nowhere"}
        deadline, grace = time.monotonic() + 5.0, None
        while time.monotonic() < (grace or deadline):
            with self.sock.recv(256, timeout=0.01) as batch:
                for frame in batch:
                    self._add(seen, "xsk", bytes(frame))
            while True:
                try:
                    data, addr = self.sniffer.recvfrom(4096, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    break
                if addr[2] != PACKET_OUTGOING:
                    self._add(seen, "stack", data)
            if grace is None and visible <= set(seen):
                grace = time.monotonic() + 0.03
        return seen

    def _add(self, seen: dict[int, list[str]], side: str, frame: bytes) -> None:
        if frame[6:8] == SRC_MAC_PREFIX and len(frame) >= 12:
            seen.setdefault(struct.unpack_from("!I", frame, 8)[0], []).append(side)

    def number(self, frame: bytes) -> tuple[int, bytes]:
        """A new sequence number and the frame carrying it in its source MAC."""
        self.seq += 1
        return self.seq, frame[:6] + SRC_MAC_PREFIX + struct.pack("!I", self.seq) + frame[12:]


@contextmanager
def steering(lab, mode: str) -> Iterator[Steering]:
    with ExitStack() as stack:
        with lab.enter("b"):
            prog = stack.enter_context(afxdp.Program.attach(lab.if_b, mode=mode))
            sock = stack.enter_context(afxdp.Socket(lab.if_b, 0, program=prog, tx_size=0))
            sniffer = stack.enter_context(
                socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            )
            sniffer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            sniffer.bind((lab.if_b, 0))
        with lab.enter("a"):
            tx = stack.enter_context(socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0))
            tx.bind((lab.if_a, 0))
        yield Steering(prog, sock, tx, sniffer)


def check_rules(st_: Steering, rules: list[afxdp.Rule], batch: list[bytes]) -> None:
    st_.prog.set_rules(rules)
    sent: dict[int, bytes] = dict(st_.number(frame) for frame in batch)
    decisions = {seq: model_decision(rules, frame) for seq, frame in sent.items()}
    expect = {
        seq: "xsk" if decision is not None else "stack" if stack_sees(sent[seq]) else "nowhere"
        for seq, decision in decisions.items()
    }
    seen = st_.run(sent, expect)
    wrong = {
        seq: (expect[seq], seen.get(seq, []), sent[seq].hex(), model_fields(sent[seq]))
        for seq in sent
        if seen.get(seq, []) != ([] if expect[seq] == "nowhere" else [expect[seq]])
    }
    assert not wrong, f"frames not where the model says (expected, seen, frame, fields): {wrong}"
    if rules:
        hits = [0] * len(rules)
        for decision in decisions.values():
            if decision is not None:
                hits[decision] += 1
        assert [n for _, n in st_.prog.rule_stats()] == hits
        assert st_.prog.unmatched() == sum(d is None for d in decisions.values())


# Shrunk examples the suite found, kept as explicit examples.
#: IPv4 with a header length (IHL) of 0 and a total length of 0, protocol TCP: the program read
#: the "ports" at l3 + IHL, i.e. inside the IPv4 header, so Rule(dst_port=0) took this frame.
IHL_ZERO = bytes.fromhex(
    "0200000000990000000000000800400000000001000040060000000000000000000000000000"
)


#: IPv4 UDP whose total length (20) ends with its IPv4 header, padded to Ethernet's 60 bytes with
#: zeros: the program read the padding as the ports, so Rule(dst_port=0) took this frame.
PADDED = bytes.fromhex("020000000099000000000000080045000014000100004011000000000000000000000000")
PADDED += bytes(60 - len(PADDED))


@pytest.mark.privileged
@pytest.mark.parametrize("mode", ["native", "generic"])
def test_rule_matcher_agrees_with_the_model(lab, mode: str) -> None:
    with steering(lab, mode) as steer:

        @settings(max_examples=examples(60))
        @given(rules=st.none() | rules_strategy, batch=st.lists(frames(), min_size=1, max_size=24))
        @example(rules=[afxdp.Rule(dst_port=0)], batch=[IHL_ZERO])
        @example(rules=[afxdp.Rule(dst_port=0)], batch=[PADDED])
        def check(rules: list[afxdp.Rule] | None, batch: list[bytes]) -> None:
            check_rules(steer, rules or [], batch)

        check()
