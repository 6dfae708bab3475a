"""The ``afxdp`` command as xdpsock and tcpdump users spell it: ``-i IFACE``, ``-n INTERVAL``,
``dump -w -`` into a pipe, ``--count 0``, ``gen``'s address options, and help without markup.

Privileged tests run inside a private lab, like tests/test_cli.py.
"""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import subprocess
import time

import pytest

afxdp = pytest.importorskip("afxdp")

from afxdp import packet  # noqa: E402
from afxdp.cli import COMMANDS, build_parser, options, workloads  # noqa: E402
from test_cli import AFXDP, raw_sender, summary  # noqa: E402


def run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AFXDP, *args], capture_output=True, text=True, timeout=30)


def parse(argv: list[str]):
    args = build_parser().parse_args(argv)
    options.check(args)
    return args


# --- the spelling (no privileges needed) ---------------------------------------------------------


@pytest.mark.parametrize("command", [c for c in COMMANDS if c != "lab"])
def test_interface_positional_or_dash_i(command) -> None:
    assert parse([command, "veth9"]).ifname == "veth9"
    assert parse([command, "-i", "veth9"]).ifname == "veth9"
    assert parse([command, "--interface", "veth9"]).ifname == "veth9"


def test_interval_is_dash_n_and_dash_i_is_the_interface() -> None:
    args = parse(["rxdrop", "-i", "veth9", "-n", "0.5"])
    assert (args.ifname, args.interval) == ("veth9", 0.5)
    assert parse(["txonly", "veth9", "--interval", "2"]).interval == 2.0
    # The interface given twice is refused, not silently resolved.
    out = run(["rxdrop", "veth8", "-i", "veth9"])
    assert out.returncode == 2
    assert "the interface is given twice ('veth8' and -i 'veth9')" in out.stderr
    out = run(["rxdrop", "-n", "1"])
    assert out.returncode == 2 and "which interface? give IFACE or -i IFACE" in out.stderr


def test_l2fwd_dash_i_then_the_second_interface() -> None:
    args = parse(["l2fwd", "-i", "veth8", "veth9"])
    assert (args.ifname, args.ifname2) == ("veth8", "veth9")
    args = parse(["l2fwd", "veth8", "veth9"])
    assert (args.ifname, args.ifname2) == ("veth8", "veth9")


def test_dump_count_zero_means_no_limit() -> None:
    assert parse(["dump", "veth9"]).count == 10
    args = parse(["dump", "veth9", "-C", "0"])
    assert args.count == 0 and args.duration is None
    out = run(["rxdrop", "afxdp-none0", "-C", "0"])  # other workloads still need a count > 0
    assert out.returncode == 2 and "must be > 0, not 0" in out.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["gen", "afxdp-none0", "--dst-mac", "02:00:00"], "not a MAC address: '02:00:00'"),
        (["gen", "afxdp-none0", "--dst-ip", "10.1"], "not an IPv4 address: '10.1'"),
        (["txonly", "afxdp-none0", "--src-ip", "fe80::1"], "not an IPv4 address: 'fe80::1'"),
        (["gen", "afxdp-none0", "--dst-port", "65536"], "port must be 0..65535, not 65536"),
        (
            ["gen", "afxdp-none0", "--packet", "ff" * 60, "--dst-ip", "10.0.0.1"],
            "--packet is the whole frame: leave out --dst-ip",
        ),
        (["dump", "afxdp-none0", "-w", "-", "--json"], "-w - writes the pcap to stdout"),
    ],
)
def test_bad_template_options_are_usage_errors(args, message) -> None:
    out = run(args)
    assert out.returncode == 2, out
    assert message in out.stderr.strip().splitlines()[-1]
    assert "Traceback" not in out.stderr


def test_template_from_the_address_options() -> None:
    args = parse(
        [
            "gen",
            "veth9",
            "--src-mac",
            "02:00:00:00:00:01",
            "--dst-mac",
            "52:54:00:12:34:56",
            "--src-ip",
            "192.0.2.1",
            "--dst-ip",
            "192.0.2.7",
            "--src-port",
            "1234",
            "--dst-port",
            "4789",
            "-s",
            "100",
        ]
    )
    frame = workloads.template(args)
    assert frame == packet.ipv4_udp(
        "02:00:00:00:00:01",
        "52:54:00:12:34:56",
        "192.0.2.1",
        "192.0.2.7",
        1234,
        4789,
        bytes(100 - 42),
    )
    dst, src, ethertype, _ = packet.parse_ethernet(frame)
    assert (dst, src, ethertype, len(frame)) == (
        "52:54:00:12:34:56",
        "02:00:00:00:00:01",
        0x800,
        100,
    )
    # Without them: the defaults; --packet as given.
    plain = workloads.template(parse(["gen", "veth9", "--src-mac", "02:00:00:00:00:01"]))
    assert plain == packet.ipv4_udp(
        "02:00:00:00:00:01",
        options.DEFAULT_DST_MAC,
        options.DEFAULT_SRC_IP,
        options.DEFAULT_DST_IP,
        9,
        9,
        bytes(22),
    )
    assert workloads.template(parse(["txonly", "veth9", "--packet", "ab" * 20])) == b"\xab" * 20


MARKUP = re.compile(r"``|:(mod|data|class|func|meth|attr):`")


def test_help_has_no_markup_and_each_command_a_description_and_example() -> None:
    top = run(["--help"])
    assert top.returncode == 0 and not MARKUP.search(top.stdout), top.stdout
    assert "-i/--interface" in top.stdout
    for command, spec in options.SUBCOMMANDS.items():
        out = run([command, "--help"])
        assert out.returncode == 0
        assert not MARKUP.search(out.stdout), (command, out.stdout)
        # usage, then the description, then the arguments; the example closes the help.
        description = out.stdout.split("\n\n")[1]
        assert description.split()[:3] == spec.description.split()[:3], out.stdout
        assert re.search(rf"\nexample:\n  afxdp {command} .+\n", out.stdout), out.stdout
    dump = " ".join(run(["dump", "--help"]).stdout.split())
    assert "redirected to the socket and leave the kernel stack" in dump
    assert "--count 0 captures until interrupted" in dump


# --- in a lab ------------------------------------------------------------------------------------


def _dump_into(
    lab, reader: list[str], extra: list[str]
) -> tuple[subprocess.Popen[bytes], subprocess.Popen[str]]:
    """`afxdp dump -i IF_B --port 7777 -w - EXTRA | READER` in namespace b; returns once dump
    said on stderr that its socket is ready."""
    dump = lab.popen(
        "b",
        [*AFXDP, "dump", "-i", lab.if_b, "--port", "7777", "-w", "-", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert dump.stdout is not None and dump.stderr is not None
    tcpdump = subprocess.Popen(
        reader, stdin=dump.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    dump.stdout.close()  # the reader holds the only read end now
    first = dump.stderr.readline().decode()
    assert first.startswith("dump on "), first + dump.stderr.read().decode()
    return dump, tcpdump


def _frames(lab, ports: list[int]) -> list[bytes]:
    return [
        packet.ipv4_udp(lab.mac_a, lab.mac_b, lab.ip_a, lab.ip_b, 5000, port, b"dump" + bytes(seq))
        for seq, port in enumerate(ports)
    ]


@pytest.mark.privileged
def test_dump_to_stdout_is_read_by_tcpdump_from_a_pipe_until_interrupted(lab) -> None:
    dump, tcpdump = _dump_into(lab, ["tcpdump", "-n", "-r", "-"], ["-C", "0"])
    try:
        # 15 match: more than dump's default count of 10, so --count 0 lifted the limit.
        ports = [7777 if seq % 3 else 7778 for seq in range(23)]
        with raw_sender(lab) as sender:
            for frame in _frames(lab, ports):
                sender.send(frame)
        time.sleep(1.0)
        assert dump.poll() is None, "dump --count 0 stopped by itself"
        dump.send_signal(signal.SIGINT)
        assert dump.wait(timeout=20) == 0
        out, err = tcpdump.communicate(timeout=20)
    finally:
        for proc in (dump, tcpdump):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert tcpdump.returncode == 0, err
    lines = out.splitlines()
    matched = [seq for seq, port in enumerate(ports) if port == 7777]
    assert len(lines) == len(matched) == 15, out
    for seq, line in zip(matched, lines, strict=True):
        assert f"IP {lab.ip_a}.5000 > {lab.ip_b}.7777: UDP, length {4 + seq}" in line, line
    assert dump.stderr is not None
    tail = dump.stderr.read().decode()
    dump.stderr.close()
    assert "Traceback" not in tail
    assert summary(tail, "captured") == 15 and "to stdout" in tail


@pytest.mark.privileged
def test_dump_stops_quietly_when_the_reader_closes_the_pipe(lab) -> None:
    dump, tcpdump = _dump_into(
        lab, ["tcpdump", "-n", "-c", "3", "-r", "-"], ["-C", "0", "-d", "30"]
    )
    try:
        with raw_sender(lab) as sender:
            for frame in _frames(lab, [7777] * 3):
                sender.send(frame)
            out, _ = tcpdump.communicate(timeout=20)
            assert len(out.splitlines()) == 3
            # The next write finds the pipe closed: dump ends, with its summary and status 0.
            deadline = time.monotonic() + 10
            while dump.poll() is None and time.monotonic() < deadline:
                sender.send(_frames(lab, [7777])[0])
                time.sleep(0.1)
        assert dump.wait(timeout=10) == 0
    finally:
        for proc in (dump, tcpdump):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert dump.stderr is not None
    err = dump.stderr.read().decode()
    dump.stderr.close()
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert summary(err, "captured") == 3  # the frame that met the closed pipe is not counted


@pytest.mark.privileged
def test_gen_address_options_reach_a_udp_socket_on_the_peer(lab) -> None:
    # The peer needs an XDP program for redirected frames to arrive (NOTES.md); its rule takes
    # nothing that is sent here, so every datagram goes up the kernel stack to the UDP socket.
    with lab.enter("b"):
        prog = afxdp.Program.attach(lab.if_b, mode="native", rules=[afxdp.Rule(dst_port=1)])
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with prog, udp:
        udp.bind((lab.ip_b, 7777))
        udp.settimeout(0.5)
        out = lab.run(
            "a",
            [
                *AFXDP,
                "gen",
                "-i",
                lab.if_a,
                "--dst-mac",
                lab.mac_b,
                "--src-ip",
                lab.ip_a,
                "--dst-ip",
                lab.ip_b,
                "--src-port",
                "4321",
                "--dst-port",
                "7777",
                "-s",
                "80",
                "-C",
                "50",
                "--rate",
                "20000",
            ],
            timeout=60,
        ).stdout
        assert summary(out, "pushed") == 50
        got = []
        deadline = time.monotonic() + 5
        while len(got) < 50 and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                got.append(udp.recvfrom(2048))
    assert len(got) == 50
    assert all(addr == (lab.ip_a, 4321) and data == bytes(80 - 42) for data, addr in got)
