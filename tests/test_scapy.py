"""afxdp.scapy: scapy's sniff() and sendp() over AF_XDP sockets, in a private lab.

scapy is optional for afxdp; the test suite installs it (scripts/install-deps.sh).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import warnings

import pytest

afxdp = pytest.importorskip("afxdp")

with warnings.catch_warnings():  # scapy's own imports may warn; not what is tested here
    warnings.simplefilter("ignore")
    scapy_all = pytest.importorskip("scapy.all")
    from afxdp.scapy import AfxdpScapySocket

from afxdp import packet  # noqa: E402
from test_cli import raw_sender  # noqa: E402

Ether, IP, UDP, Raw = scapy_all.Ether, scapy_all.IP, scapy_all.UDP, scapy_all.Raw


def test_importing_afxdp_does_not_import_scapy() -> None:
    code = "import sys, afxdp, afxdp.aio, afxdp.cli, afxdp.pcap; print('scapy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "False", out


def test_iface_or_sock_not_both() -> None:
    with pytest.raises(ValueError, match="either iface or sock"):
        AfxdpScapySocket()


@pytest.mark.privileged
def test_sniff_receives_exactly_the_matching_frames(lab) -> None:
    with lab.enter("b"):
        s = AfxdpScapySocket(lab.if_b, rules=[afxdp.Rule(dst_port=7777)], mode="native")
    with s:
        sent = []
        with raw_sender(lab) as sender:
            for seq in range(30):
                port = 7777 if seq % 3 else 7778  # the others stay with the kernel stack
                frame = packet.ipv4_udp(
                    lab.mac_a,
                    lab.mac_b,
                    lab.ip_a,
                    lab.ip_b,
                    5000 + seq,
                    port,
                    b"scapy" + bytes([seq]) * seq,
                )
                sender.send(frame)
                if port == 7777:
                    sent.append(frame)
        got = scapy_all.sniff(opened_socket=s, count=len(sent), timeout=10, store=True)
        assert [bytes(p) for p in got] == sent
        first = got[0]
        assert first[Ether].dst == lab.mac_b and first[IP].src == lab.ip_a
        assert first[UDP].sport == 5001 and first[UDP].dport == 7777
        assert first[Raw].load == b"scapy" + b"\x01"
        # Nothing more is waiting: a further sniff times out empty.
        assert len(scapy_all.sniff(opened_socket=s, timeout=0.3)) == 0
    assert s.closed and s.sock.closed


@pytest.mark.privileged
def test_sendp_reaches_the_peer_stack_and_an_afxdp_sniffer(lab) -> None:
    with lab.enter("a"):
        tx = AfxdpScapySocket(lab.if_a, rules=[afxdp.Rule(dst_port=1)], mode="native")
    with lab.enter("b"):
        rx = AfxdpScapySocket(lab.if_b, rules=[afxdp.Rule(dst_port=7777)], mode="native")
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with tx, rx, udp:
        udp.bind((lab.ip_b, 7778))
        udp.settimeout(0.5)

        def pkt(port: int, seq: int):
            return (
                Ether(src=lab.mac_a, dst=lab.mac_b)
                / IP(src=lab.ip_a, dst=lab.ip_b)
                / UDP(sport=6000 + seq, dport=port)
                / Raw(b"sendp" + bytes([seq]))
            )

        to_afxdp = [pkt(7777, seq) for seq in range(20)]
        to_stack = [pkt(7778, seq) for seq in range(20)]
        scapy_all.sendp(to_afxdp + to_stack, socket=tx, verbose=False)
        # The kernel stack of b got the datagrams to 7778 (so the frames on the wire are valid).
        datagrams = []
        deadline = time.monotonic() + 5
        while len(datagrams) < 20 and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                datagrams.append(udp.recvfrom(2048))
        assert sorted(datagrams) == sorted(
            (b"sendp" + bytes([seq]), (lab.ip_a, 6000 + seq)) for seq in range(20)
        )
        got = scapy_all.sniff(opened_socket=rx, count=20, timeout=10)
        assert [bytes(p) for p in got] == [bytes(p) for p in to_afxdp]
    assert tx.sock.closed and rx.sock.closed


@pytest.mark.privileged
def test_wraps_an_open_socket_and_leaves_it_open(lab) -> None:
    with (
        lab.enter("b"),
        afxdp.Program.attach(lab.if_b, mode="native") as prog,
        afxdp.Socket(lab.if_b, 0, program=prog) as sock,
    ):
        with AfxdpScapySocket(sock=sock) as s:
            assert s.fileno() == sock.fileno()
            with raw_sender(lab) as sender:
                sender.send(packet.ipv4_udp(lab.mac_a, lab.mac_b, lab.ip_a, lab.ip_b, 1, 2, b"x"))
            assert len(scapy_all.sniff(opened_socket=s, count=1, timeout=10)) == 1
        assert s.closed and not sock.closed
