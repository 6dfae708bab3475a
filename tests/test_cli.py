"""The ``afxdp`` command: each subcommand run briefly inside a private lab, its output checked.

The command is run as ``python -m afxdp`` (the same entry point as the installed ``afxdp``
script) in the lab's namespaces, so it only ever sees the lab's veth pair.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

afxdp = pytest.importorskip("afxdp")

from afxdp import packet  # noqa: E402
from afxdp.testing import parse_numbered  # noqa: E402
from helpers import EXAMPLES, lab_names, link_names, netns_names, numbered  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
AFXDP = [sys.executable, "-m", "afxdp"]
ETH_P_ALL = 0x0003


def number(text: str) -> int:
    return int(text.replace(",", ""))


def summary(out: str, word: str) -> int:
    m = re.search(rf"{word} ([\d,]+)", out)
    assert m, out
    return number(m.group(1))


def sniffer(lab, side: str) -> socket.socket:
    with lab.enter(side):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
        s.bind((lab.ifname(side), 0))
    s.settimeout(0.2)
    return s


def raw_sender(lab, side: str = "a") -> socket.socket:
    with lab.enter(side):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        s.bind((lab.ifname(side), 0))
    return s


def collect(
    sock: socket.socket, want: int, timeout: float = 5.0, incoming_only: bool = True
) -> list[bytes]:
    frames: list[bytes] = []
    deadline = time.monotonic() + timeout
    while len(frames) < want and time.monotonic() < deadline:
        try:
            data, addr = sock.recvfrom(4096)
        except TimeoutError:
            continue
        if incoming_only and addr[2] == socket.PACKET_OUTGOING:
            continue
        if parse_numbered(data) is not None:
            frames.append(data)
    return frames


def start(lab, side: str, args: list[str]) -> subprocess.Popen[str]:
    """Starts `afxdp ARGS` in namespace `side`; returns once it printed its first line (its
    socket is ready)."""
    proc = lab.popen(
        side, [*AFXDP, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert first, proc.stderr.read() if proc.stderr else ""
    proc.first_line = first  # type: ignore[attr-defined]
    return proc


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> str:
    # Not communicate(): it reads the raw pipes and would lose what readline() in start()
    # already buffered. The outputs are small, so waiting first cannot fill a pipe.
    proc.wait(timeout=timeout)
    assert proc.stdout is not None and proc.stderr is not None
    out, err = proc.stdout.read(), proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    assert proc.returncode == 0, err
    return proc.first_line + out  # type: ignore[attr-defined]


# --- usage errors (no privileges needed) ----------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["rxdrop", "eth0", "--proto", "bogus"], "unknown protocol 'bogus'"),
        (["rxdrop", "eth0", "--port", "70000"], "port must be 0..65535, not 70000"),
        (["rxdrop", "eth0", "-d", "0"], "must be in (0, 86400] seconds, not 0"),
        (["txonly", "eth0", "--packet", "zz"], "--packet must be hex digits"),
        (["gen", "eth0", "-C", "-5"], "must be > 0, not -5"),
        # Refused before anything is created; a name no host has, so a regression that got past
        # the check could not touch a real interface.
        (
            ["txonly", "afxdp-none0", "-s", "100000"],
            "--size must be at most 65549 bytes, not 100000",
        ),
        (["txonly", "afxdp-none0", "-s", "5000"], "--size 5000 does not fit a 4096-byte frame"),
        (["gen", "afxdp-none0", "-s", "70000"], "--size must be at most 65549 bytes, not 70000"),
        (
            ["lab", "-s", "9000"],
            "--size must be at most 1514 bytes (the lab's MTU is 1500), not 9000",
        ),
        (["rxdrop", "afxdp-none0", "-q", "-1"], "queue must be 0..4294967295, not -1"),
        (
            ["rxdrop", "afxdp-none0", "-q", "4294967296"],
            "queue must be 0..4294967295, not 4294967296",
        ),
        (
            ["rxdrop", "afxdp-none0", "--frames", "4294967296"],
            "must be 1..4294967295, not 4294967296",
        ),
        (["gen", "afxdp-none0", "--src-ports", "70000"], "must be 1..65536, not 70000"),
        # These the library refused only after the program was attached (exit status 1).
        (
            ["rxdrop", "afxdp-none0", "--frames", "20000000"],
            "--frames must be at most 16777216, not 20000000",
        ),
        (
            ["rxdrop", "afxdp-none0", "-f", "3000"],
            "--frame-size must be a power of two from 2048 to 4096 (the page size), not 3000",
        ),
        (
            ["l2fwd", "afxdp-none0", "-f", "8192"],
            "--frame-size must be a power of two from 2048 to 4096 (the page size), not 8192",
        ),
        (
            ["gen", "afxdp-none0", "--src-ports", "65536"],
            "--src-ports 65536 from source port 9 runs past 65535 (at most 65527)",
        ),
    ],
)
def test_bad_options_are_one_line_usage_errors(args, message) -> None:
    out = subprocess.run([*AFXDP, *args], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert message in out.stderr.strip().splitlines()[-1]
    assert "Traceback" not in out.stderr


def test_help_lists_every_subcommand() -> None:
    out = subprocess.run([*AFXDP, "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    for command in ("lab", "rxdrop", "txonly", "l2fwd", "rebroadcast", "dump", "gen", "info"):
        assert command in out.stdout


def test_console_script_is_installed() -> None:
    import importlib.metadata

    scripts = {e.name: e.value for e in importlib.metadata.entry_points(group="console_scripts")}
    assert scripts.get("afxdp") == "afxdp.cli:main"


# --- errors a user can cause: one line, nonzero exit ----------------------------------------------


@pytest.mark.privileged
def test_user_errors_are_one_clear_line(lab) -> None:
    cases = [
        (["rxdrop", "afxdp-none0"], "afxdp: no such network interface: 'afxdp-none0'"),
        (["txonly", "afxdp-none0"], "afxdp: no such network interface: 'afxdp-none0'"),
        (["rxdrop", lab.if_b, "-q", "7"], f'afxdp: queue 7 out of range for "{lab.if_b}"'),
        (["info", "afxdp-none0"], "afxdp: no such network interface: 'afxdp-none0'"),
        (
            ["txonly", lab.if_b, "-s", "20"],
            "afxdp txonly: --size must be at least 60 bytes, not 20",
        ),
    ]
    for args, message in cases:
        out = lab.run("b", [*AFXDP, *args], check=False, timeout=30)
        assert out.returncode != 0, args
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(message), (args, out.stderr)
    lab.run("b", ["ip", "link", "set", lab.if_b, "down"])
    out = lab.run("b", [*AFXDP, "rxdrop", lab.if_b], check=False, timeout=30)
    assert out.returncode == 1
    assert (
        out.stderr.strip()
        == f"afxdp: interface {lab.if_b} is down (bring it up with: ip link set {lab.if_b} up)"
    )


@pytest.mark.privileged
def test_missing_privileges_is_one_line_naming_the_capability(lab) -> None:
    child = textwrap.dedent(
        """
        import os, sys
        import afxdp.cli
        os.setgroups([]); os.setgid(65534); os.setuid(65534)
        sys.exit(afxdp.cli.main(sys.argv[1:]))
        """
    )
    for args in (["rxdrop", lab.if_b], ["txonly", lab.if_b]):
        out = lab.run("b", [sys.executable, "-c", child, *args], check=False, timeout=30)
        assert out.returncode == 1, out
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1, out.stderr
        assert any(w in lines[0] for w in ("CAP_NET_RAW", "CAP_BPF", "CAP_NET_ADMIN", "root")), (
            lines
        )


# --- the xdpsock workloads ------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.privileged
def test_txonly_to_rxdrop_counts_exactly(lab) -> None:
    rx = start(lab, "b", ["rxdrop", lab.if_b, "-N", "--port", "9", "-C", "50000", "-d", "8"])
    assert "rules: Rule(ethertype=None, ip_proto=None, dst_port=9)" in rx.first_line  # type: ignore[attr-defined]
    tx = lab.run(
        "a", [*AFXDP, "txonly", lab.if_a, "-C", "50000", "-d", "20", "-b", "32"], timeout=60
    )
    assert summary(tx.stdout, "sent") == 50_000
    out = finish(rx, timeout=60)
    # Every frame sent is received or counted by the kernel as dropped (a busy machine can
    # leave the receiver behind: rx_ring_full).
    kernel = {
        k: number(v)
        for k, v in re.findall(r"(rx_dropped|rx_ring_full|rx_fill_ring_empty_descs)=(\d+)", out)
    }
    assert summary(out, "received") + sum(kernel.values()) == 50_000, out
    assert summary(out, "received") > 25_000
    assert re.search(r"^ +time +rx pps +tx pps +rx Mbit/s", out, re.M), out


@pytest.mark.privileged
@pytest.mark.parametrize("command", ["l2fwd", "rebroadcast"])
def test_l2fwd_and_rebroadcast_send_each_frame_back_edited(lab, command) -> None:
    frames = [numbered(lab, seq) for seq in range(200)]
    proc = start(lab, "b", [command, lab.if_b, "-S", "-C", "200", "-d", "20"])
    with sniffer(lab, "a") as tap, raw_sender(lab) as sender:
        for frame in frames:
            sender.send(frame)
        back = collect(tap, 200)
    out = finish(proc)
    assert summary(out, "received") == 200 and summary(out, "sent") == 200
    assert sorted(parse_numbered(f) for f in back) == list(range(200))
    for data in back:
        sent = frames[parse_numbered(data)]
        if command == "l2fwd":
            assert data == sent[6:12] + sent[:6] + sent[12:]
        else:
            assert data == b"\xff" * 6 + sent[6:]


@pytest.mark.privileged
def test_l2fwd_forwards_to_a_second_interface(lab) -> None:
    # A second veth pair inside namespace b, created by this test: fwd0 -> fwd1.
    lab.run("b", ["ip", "link", "add", "fwd0", "type", "veth", "peer", "name", "fwd1"])
    try:
        for dev in ("fwd0", "fwd1"):
            lab.run("b", ["sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1"])
            lab.run("b", ["ip", "link", "set", dev, "up"])
        with lab.enter("b"):
            tap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        with tap, raw_sender(lab) as sender:
            tap.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
            tap.bind(("fwd1", 0))
            tap.settimeout(0.2)
            proc = start(lab, "b", ["l2fwd", lab.if_b, "fwd0", "-N", "-C", "100", "-d", "20"])
            frames = [numbered(lab, seq, 100) for seq in range(100)]
            for frame in frames:
                sender.send(frame)
            got = collect(tap, 100)
        out = finish(proc)
        assert "forwarding to" in out
        assert sorted(parse_numbered(f) for f in got) == list(range(100))
        for data in got:
            sent = frames[parse_numbered(data)]
            assert data == sent[6:12] + sent[:6] + sent[12:]
    finally:
        lab.run("b", ["ip", "link", "del", "fwd0"], check=False)


# --- dump -----------------------------------------------------------------------------------------


@pytest.mark.privileged
def test_dump_writes_a_pcap_matching_what_was_sent(lab, tmp_path) -> None:
    from afxdp import pcap

    path = tmp_path / "capture.pcap"
    proc = start(
        lab,
        "b",
        ["dump", lab.if_b, "--count", "30", "--port", "7777", "--write", str(path), "-d", "20"],
    )
    frames = []
    with raw_sender(lab) as sender:
        for seq in range(60):
            port = 7777 if seq % 2 == 0 else 7778  # only even ones match the rule
            frame = packet.ipv4_udp(
                lab.mac_a,
                lab.mac_b,
                lab.ip_a,
                lab.ip_b,
                5000,
                port,
                b"dump" + seq.to_bytes(4, "big") + bytes(seq),
            )
            frames.append(frame)
            sender.send(frame)
    out = finish(proc)
    assert summary(out, "captured") == 30
    records = pcap.read_pcap(path)
    assert [data for _, data, _ in records] == frames[0::2]
    assert all(orig == len(data) for _, data, orig in records)


@pytest.mark.privileged
def test_dump_pcap_has_per_packet_non_decreasing_times(lab, tmp_path) -> None:
    from afxdp import pcap

    path = tmp_path / "times.pcap"
    proc = start(
        lab,
        "b",
        ["dump", lab.if_b, "--count", "40", "--port", "7779", "--write", str(path), "-d", "20"],
    )
    bursts = []  # (time.time_ns() before the burst, its 8 frames), sent 20 ms apart
    with raw_sender(lab) as sender:
        for burst in range(5):
            frames = [
                packet.ipv4_udp(
                    lab.mac_a, lab.mac_b, lab.ip_a, lab.ip_b, 5000, 7779, b"ts" + bytes([burst, i])
                )
                for i in range(8)
            ]
            bursts.append((time.time_ns(), frames))
            for frame in frames:
                sender.send(frame)
            time.sleep(0.02)
    out = finish(proc)
    assert summary(out, "captured") == 40
    records = pcap.read_pcap(path)
    assert [data for _, data, _ in records] == [f for _, frames in bursts for f in frames]
    times = [t for t, _, _ in records]
    assert times == sorted(times), times  # one flow: non-decreasing
    for b, (sent_ns, _) in enumerate(bursts):
        stamps = times[8 * b : 8 * b + 8]
        # Per packet: the 8 frames of a burst (microseconds apart, likely one receive batch)
        # each have their own time, none before the burst was sent (read_pcap's float keeps
        # about 0.2 us of the file's nanoseconds).
        assert len(set(stamps)) == 8, stamps
        assert stamps[0] >= sent_ns / 1e9 - 1e-6, (stamps[0], sent_ns)
        if b + 1 < len(bursts):
            assert stamps[-1] <= bursts[b + 1][0] / 1e9 + 1e-6


@pytest.mark.privileged
def test_dump_without_write_prints_one_line_per_frame(lab) -> None:
    proc = start(lab, "b", ["dump", lab.if_b, "--count", "3", "--proto", "udp", "-d", "20"])
    with raw_sender(lab) as sender:
        for seq in range(3):
            sender.send(
                packet.ipv4_udp(lab.mac_a, lab.mac_b, lab.ip_a, lab.ip_b, 4000 + seq, 53, b"q")
            )
    out = finish(proc)
    lines = [line for line in out.splitlines() if "10.11.0.1" in line]
    assert len(lines) == 3, out
    for seq, line in enumerate(lines):
        assert f"{4000 + seq}" in line and "53" in line


# --- gen and info ---------------------------------------------------------------------------------


@pytest.mark.privileged
def test_gen_pushes_the_count_and_the_receiver_gets_it(lab) -> None:
    rx = start(lab, "b", ["rxdrop", lab.if_b, "-N", "-C", "20000", "-d", "20"])
    frame = packet.ipv4_udp(lab.mac_a, lab.mac_b, lab.ip_a, lab.ip_b, 1, 2, bytes(22))
    # 20k packets/s: the receiver's 2048-entry ring rides out a 100 ms stall of a busy machine
    # (at 50k/s CI lost 552 frames to rx_ring_full in one run with other jobs on both cores).
    out = lab.run(
        "a",
        [*AFXDP, "gen", lab.if_a, "-C", "20000", "--rate", "20000", "--packet", frame.hex()],
        timeout=60,
    ).stdout
    assert summary(out, "pushed") == 20_000
    assert summary(finish(rx), "received") == 20_000


@pytest.mark.privileged
def test_info_reports_the_driver_queues_and_programs(lab_factory) -> None:
    lab = lab_factory(queues=2)
    out = lab.run("b", [*AFXDP, "info", lab.if_b], timeout=30).stdout
    assert out.startswith(f"{lab.if_b} (ifindex {lab.ifindex('b')}, veth)"), out
    assert f"mac {lab.mac_b}  mtu 1500  up, running" in out
    assert "driver:     veth" in out
    assert "queues:     rx 2  tx 2  (from ethtool)" in out
    assert "programs:   none attached" in out
    with lab.enter("b"), afxdp.Program.attach(lab.if_b, mode="native"):
        attached = lab.run("b", [*AFXDP, "info", lab.if_b], timeout=30).stdout
    assert "afxdp_redirect" in attached


# --- lab ------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.privileged
def test_lab_runs_all_jobs_and_leaves_nothing_behind() -> None:
    out = subprocess.run(
        [*AFXDP, "lab", "--duration", "3"], capture_output=True, text=True, timeout=120, cwd="/"
    )
    assert out.returncode == 0, out.stderr
    namespaces, devices = lab_names(out.stdout)
    for job in ("gen-rx", "dns-flood", "rebroadcast"):
        m = re.search(rf"summary \[{job}\]: .*received ([\d,]+) .*sent ([\d,]+)", out.stdout)
        assert m, out.stdout
        received, sent = number(m.group(1)), number(m.group(2))
        assert received > 1000 and sent > 1000, m.group(0)
        if job == "dns-flood":
            assert received == sent, m.group(0)
    # Only what this run created: other labs may come and go beside it.
    assert not namespaces & netns_names()
    assert not devices & link_names()


@pytest.mark.slow
@pytest.mark.privileged
def test_lab_interrupted_leaves_nothing_behind() -> None:
    proc = subprocess.Popen(
        [*AFXDP, "lab", "--duration", "60", "--job", "dns-flood"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd="/",
    )
    assert proc.stdout is not None
    head = "".join(proc.stdout.readline() for _ in range(2))
    namespaces, devices = lab_names(head)
    assert namespaces <= netns_names()
    time.sleep(2.0)  # the job is running
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert (
        err.strip().splitlines()[-1] == "afxdp: interrupted; everything afxdp created was removed"
    )
    assert not namespaces & netns_names()
    assert not devices & link_names()


@pytest.mark.slow
@pytest.mark.privileged
def test_lab_run_executes_an_example_under_traffic() -> None:
    out = subprocess.run(
        [
            *AFXDP,
            "lab",
            "--duration",
            "2",
            "--rate",
            "2000",
            "--run",
            str(EXAMPLES / "rebroadcast.py"),
            "--duration",
            "3",
            "--mode",
            "native",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
    )
    assert out.returncode == 0, out.stderr
    offered = summary(out.stdout, "offered")
    m = re.search(r"rebroadcast ([\d,]+) frames", out.stdout)
    assert m, out.stdout
    assert offered > 1000 and number(m.group(1)) == offered
