"""``afxdp rxdrop|l2fwd|rebroadcast|dump IFACE --queues all|Q,Q``: the workloads on a Port.

Run as ``python -m afxdp`` inside a lab with several queues per veth end. The frames are sent by
AF_XDP tx sockets of one Umem on end a, one per queue: in native mode a socket sending on queue
q reaches rx queue q of end b (NOTES.md), so each queue's count is known.
"""

from __future__ import annotations

import re
import socket
import time
from contextlib import ExitStack

import pytest

afxdp = pytest.importorskip("afxdp")

from afxdp.testing import numbered_frame, parse_numbered  # noqa: E402
from test_cli import AFXDP, collect, finish, sniffer, start, summary  # noqa: E402


def send_per_queue(lab, counts: dict[int, int], queues: int) -> None:
    """Sends counts[q] numbered frames (64 bytes, a -> b) on queue q of end a."""
    with ExitStack() as stack:
        with lab.enter("a"):
            umem = afxdp.Umem(2048, 2048)
            tx = [
                stack.enter_context(afxdp.Socket(lab.if_a, q, umem=umem, rx_size=0))
                for q in range(queues)
            ]
        for q, count in counts.items():
            seq = q * 100_000
            deadline = time.monotonic() + 5
            sent = 0
            while sent < count:
                assert time.monotonic() < deadline
                with tx[q].alloc(min(64, count - sent)) as batch:
                    for i, frame in enumerate(batch):
                        frame.write(numbered_frame(seq + sent + i, 64, lab.mac_a, lab.mac_b))
                    sent += tx[q].send(batch)
                tx[q].complete()
            while tx[q].in_flight and time.monotonic() < deadline:
                tx[q].complete()
                time.sleep(0.001)


def seq_of(frame: bytes) -> int:
    seq = parse_numbered(frame)
    assert seq is not None, "a damaged frame"
    return seq


def per_queue(out: str) -> dict[int, int]:
    m = re.search(r"received per queue:((?:\s+q\d+ [\d,]+)+)", out)
    assert m, out
    return {int(q): int(n.replace(",", "")) for q, n in re.findall(r"q(\d+) ([\d,]+)", m.group(1))}


@pytest.mark.privileged
def test_rxdrop_on_every_queue_counts_each_queue(lab_factory) -> None:
    lab = lab_factory(queues=2)
    rx = start(lab, "b", ["rxdrop", lab.if_b, "-N", "--queues", "all", "-C", "700", "-d", "20"])
    assert "afxdp.Port" in rx.first_line and "queues=[0, 1]" in rx.first_line  # type: ignore[attr-defined]
    send_per_queue(lab, {0: 300, 1: 400}, 2)
    out = finish(rx, timeout=60)
    assert summary(out, "received") == 700, out
    assert per_queue(out) == {0: 300, 1: 400}
    assert re.search(r"rx pps per queue$", out, re.M), out


@pytest.mark.privileged
def test_rxdrop_on_some_queues_warns_about_traffic_on_the_others(lab_factory) -> None:
    lab = lab_factory(queues=2)
    rx = start(lab, "b", ["rxdrop", lab.if_b, "-N", "--queues", "0", "-d", "2.5"])
    send_per_queue(lab, {0: 50, 1: 30}, 2)
    rx.wait(timeout=30)
    assert rx.stderr is not None and rx.stdout is not None
    err = rx.stderr.read()
    out = rx.first_line + rx.stdout.read()  # type: ignore[attr-defined]
    rx.stdout.close()
    rx.stderr.close()
    assert rx.returncode == 0, err
    assert per_queue(out) == {0: 50}
    assert "traffic on queue 1" in err and "has no socket: 30 packet" in err, err
    # One line per report, like every other message of the command (it was Python's warning
    # format: the file and line of the library call, then the source line).
    reports = [line for line in err.splitlines() if "has no socket" in line]
    assert reports and all(line.startswith("afxdp: warning: traffic on queue") for line in reports)
    assert "RuntimeWarning" not in err and ".py:" not in err, err


@pytest.mark.privileged
def test_l2fwd_on_every_queue_sends_each_frame_back_on_its_queue(lab_factory) -> None:
    lab = lab_factory(queues=2)
    proc = start(lab, "b", ["l2fwd", lab.if_b, "-N", "--queues", "all", "-C", "300", "-d", "20"])
    with sniffer(lab, "a") as tap:
        send_per_queue(lab, {0: 100, 1: 200}, 2)
        back = collect(tap, 300)
    out = finish(proc)
    assert summary(out, "received") == 300 and summary(out, "sent") == 300
    assert per_queue(out) == {0: 100, 1: 200}
    seqs = sorted(seq_of(f) for f in back)
    assert seqs == [*range(100), *range(100_000, 100_200)]
    for data in back:
        assert data[:6] == bytes.fromhex(lab.mac_a.replace(":", "")), "MACs swapped"


@pytest.mark.privileged
def test_l2fwd_with_queues_forwards_to_the_same_queue_of_a_second_interface(lab_factory) -> None:
    lab = lab_factory(queues=2)
    queues = "numtxqueues 2 numrxqueues 2"
    lab.run("b", ["sh", "-c", f"ip link add fwd0 {queues} type veth peer name fwd1 {queues}"])
    try:
        for dev in ("fwd0", "fwd1"):
            lab.run("b", ["sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1"])
            lab.run("b", ["ip", "link", "set", dev, "up"])
        with lab.enter("b"):
            tap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        with tap:
            tap.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
            tap.bind(("fwd1", 0))
            tap.settimeout(0.2)
            args = ["l2fwd", lab.if_b, "fwd0", "-N", "--queues", "all", "-C", "150", "-d", "20"]
            proc = start(lab, "b", args)
            send_per_queue(lab, {0: 50, 1: 100}, 2)
            got = collect(tap, 150)
        out = finish(proc)
        assert "zero copy" in out
        assert per_queue(out) == {0: 50, 1: 100}
        assert sorted(seq_of(f) for f in got) == [
            *range(50),
            *range(100_000, 100_100),
        ]
    finally:
        lab.run("b", ["ip", "link", "del", "fwd0"], check=False)


@pytest.mark.privileged
def test_dump_on_listed_queues(lab_factory) -> None:
    lab = lab_factory(queues=2)
    proc = start(lab, "b", ["dump", lab.if_b, "-N", "--queues", "0,1", "-C", "6", "-d", "20"])
    send_per_queue(lab, {0: 3, 1: 3}, 2)
    out = finish(proc)
    # One line per frame on stdout (the summary goes to stderr).
    assert len(re.findall(r"UDP len 22 \(64 bytes\)$", out, re.M)) == 6, out


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1,1", "a queue is listed twice in '1,1'"),
        ("x", "invalid integer 'x'"),
        (",", "expected 'all'"),
    ],
)
def test_bad_queue_lists_are_usage_errors(value: str, message: str) -> None:
    import subprocess

    out = subprocess.run(
        [*AFXDP, "rxdrop", "afxdp-none0", "--queues", value],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode != 0
    assert message in out.stderr, out.stderr


@pytest.mark.slow
@pytest.mark.privileged
def test_lab_with_queues_spreads_the_load_over_every_queue() -> None:
    import subprocess

    from helpers import lab_names, link_names, netns_names

    out = subprocess.run(
        [*AFXDP, "lab", "--queues", "2", "--duration", "3"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
    )
    assert out.returncode == 0, out.stderr
    assert "queues 2" in out.stdout
    for job in ("gen-rx", "dns-flood", "rebroadcast"):
        m = re.search(rf"^summary \[{job}\]: .*$", out.stdout, re.M)
        assert m, out.stdout
        line = m.group(0)
        queues = per_queue(line)
        assert sorted(queues) == [0, 1], line
        assert sum(queues.values()) == summary(line, "received"), line
        if job != "gen-rx":
            # AF_XDP senders take turns on the two queues: both carry load, evenly.
            assert min(queues.values()) > 0.4 * summary(line, "received"), line
    assert re.search(r"rx pps per queue$", out.stdout, re.M)
    namespaces, devices = lab_names(out.stdout)
    assert not namespaces & netns_names()
    assert not devices & link_names()
