"""``-B``, ``--busy-poll USECS`` and ``--busy-budget N`` on the workloads (xdpsock's ``-B``).

The options are checked by the option tables; in a lab the running command's AF_XDP sockets are
fetched from the process (``pidfd_getfd``) and their SO_BUSY_POLL and SO_PREFER_BUSY_POLL read
back with getsockopt, so the test sees what the kernel holds, not what the command says.
SO_BUSY_POLL_BUDGET is write-only (NOTES.md): the budget is checked through ``--json``'s start
object, which reports the socket's own ``busy_poll`` property.
"""

from __future__ import annotations

import ctypes
import os
import socket
import subprocess
from contextlib import ExitStack

import pytest

afxdp = pytest.importorskip("afxdp")

from afxdp.cli import build_parser, options  # noqa: E402
from test_cli import AFXDP, finish, start  # noqa: E402
from test_cli_json import finish_json, of_type, start_json  # noqa: E402
from test_cli_queues import send_per_queue  # noqa: E402

AF_XDP = 44
SO_BUSY_POLL = 46
SO_PREFER_BUSY_POLL = 69
SYS_PIDFD_GETFD = 438  # the same number on every architecture

WORKLOADS = ("rxdrop", "txonly", "l2fwd", "rebroadcast", "dump")


# --- the options (no privileges needed) --------------------------------------------------------


@pytest.mark.parametrize("command", WORKLOADS)
def test_every_workload_takes_the_busy_poll_options(command) -> None:
    parse = build_parser().parse_args
    args = parse([command, "eth0", "--busy-poll", "50", "--busy-budget", "16"])
    assert options.busy_poll(args) == (50, 16)
    # -B is xdpsock's: 20 us, the batch size as the budget.
    args = parse([command, "eth0", "-B", "-b", "32"])
    assert options.busy_poll(args) == (20, 32)
    assert options.busy_poll(parse([command, "eth0"])) == (None, None)


def test_busy_poll_with_queues_and_a_large_batch() -> None:
    args = build_parser().parse_args(["rxdrop", "eth0", "--queues", "all", "-B", "-b", "100000"])
    assert args.queues == "all"
    assert options.busy_poll(args) == (20, 65535)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["rxdrop", "afxdp-none0", "--busy-poll", "0"], "must be > 0, not 0"),
        (["txonly", "afxdp-none0", "--busy-poll", "-3"], "must be > 0, not -3"),
        (
            ["l2fwd", "afxdp-none0", "--busy-poll", "2147483648"],
            "must be 1..2147483647, not 2147483648",
        ),
        (["dump", "afxdp-none0", "--busy-poll", "soon"], "invalid integer 'soon'"),
        (
            ["rebroadcast", "afxdp-none0", "-B", "--busy-budget", "65536"],
            "must be 1..65535, not 65536",
        ),
        (["rxdrop", "afxdp-none0", "-B", "--busy-budget", "0"], "must be > 0, not 0"),
        (
            ["rxdrop", "afxdp-none0", "--busy-budget", "8"],
            "--busy-budget 8 needs -B or --busy-poll USECS",
        ),
        (["rxdrop", "afxdp-none0", "-B", "--busy-poll", "5"], "not allowed with argument"),
    ],
)
def test_bad_busy_poll_values_exit_2_naming_the_value(args, message) -> None:
    out = subprocess.run([*AFXDP, *args], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr.strip().splitlines()[-1]
    assert "Traceback" not in out.stderr


# --- in a lab: the sockets really have the options --------------------------------------------


def xdp_sockets(pid: int) -> list[socket.socket]:
    """Copies of the AF_XDP sockets of process `pid` (pidfd_getfd; needs ptrace rights)."""
    libc = ctypes.CDLL(None, use_errno=True)
    found = []
    pidfd = os.pidfd_open(pid)
    try:
        for name in os.listdir(f"/proc/{pid}/fd"):
            try:
                if not os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:"):
                    continue
            except FileNotFoundError:
                continue
            fd = libc.syscall(SYS_PIDFD_GETFD, pidfd, int(name), 0)
            if fd < 0:
                raise OSError(ctypes.get_errno(), f"pidfd_getfd({pid}, {name})")
            # The family must be given: socket.socket's own probing fails on AF_XDP (NOTES.md).
            sock = socket.socket(AF_XDP, socket.SOCK_RAW, 0, fileno=fd)
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_DOMAIN) == AF_XDP:
                found.append(sock)
            else:
                sock.close()
    finally:
        os.close(pidfd)
    return found


def busy_options(sock: socket.socket) -> tuple[int, int]:
    return (
        sock.getsockopt(socket.SOL_SOCKET, SO_BUSY_POLL),
        sock.getsockopt(socket.SOL_SOCKET, SO_PREFER_BUSY_POLL),
    )


@pytest.mark.privileged
def test_rxdrop_busy_poll_sets_the_socket_options_and_still_counts_exactly(lab) -> None:
    rx, first = start_json(
        lab,
        "b",
        [
            "rxdrop",
            lab.if_b,
            "-N",
            "--busy-poll",
            "50",
            "--busy-budget",
            "16",
            "-C",
            "300",
            "-d",
            "20",
        ],
    )
    assert first["busy_poll"] == {"usecs": 50, "budget": 16}
    with ExitStack() as stack:
        socks = [stack.enter_context(s) for s in xdp_sockets(rx.pid)]
        assert [busy_options(s) for s in socks] == [(50, 1)]
    send_per_queue(lab, {0: 300}, 1)
    summary = of_type(finish_json(rx, first), "summary")[0]
    assert summary["received"] == 300


@pytest.mark.privileged
def test_without_busy_poll_the_sockets_do_not_busy_poll(lab) -> None:
    rx, first = start_json(lab, "b", ["rxdrop", lab.if_b, "-N", "-d", "1"])
    assert first["busy_poll"] is None
    with ExitStack() as stack:
        socks = [stack.enter_context(s) for s in xdp_sockets(rx.pid)]
        assert [busy_options(s) for s in socks] == [(0, 0)]
    finish_json(rx, first)


@pytest.mark.privileged
def test_busy_poll_reaches_every_socket_of_a_port(lab_factory) -> None:
    lab = lab_factory(queues=2)
    rx, first = start_json(
        lab, "b", ["rxdrop", lab.if_b, "-N", "--queues", "all", "-B", "-C", "500", "-d", "20"]
    )
    assert first["queue"] == [0, 1]
    assert first["busy_poll"] == {"usecs": 20, "budget": 64}
    with ExitStack() as stack:
        socks = [stack.enter_context(s) for s in xdp_sockets(rx.pid)]
        assert [busy_options(s) for s in socks] == [(20, 1), (20, 1)]
    send_per_queue(lab, {0: 200, 1: 300}, 2)
    summary = of_type(finish_json(rx, first), "summary")[0]
    assert summary["received"] == 500
    assert summary["received_per_queue"] == {"0": 200, "1": 300}


@pytest.mark.privileged
@pytest.mark.parametrize("command", ["txonly", "rebroadcast", "l2fwd", "dump"])
def test_the_other_workloads_busy_poll_too(lab, command) -> None:
    args = [command, lab.if_b, "--busy-poll", "30", "--busy-budget", "8", "-d", "1.5"]
    if command == "txonly":
        args += ["--dst-mac", lab.mac_a]
    proc, first = start_json(lab, "b", args)
    assert first["busy_poll"] == {"usecs": 30, "budget": 8}
    with ExitStack() as stack:
        socks = [stack.enter_context(s) for s in xdp_sockets(proc.pid)]
        assert socks and all(busy_options(s) == (30, 1) for s in socks)
    finish_json(proc, first)


@pytest.mark.privileged
def test_the_text_start_line_names_the_settings(lab) -> None:
    rx = start(lab, "b", ["rxdrop", lab.if_b, "-B", "-b", "16", "-d", "0.5"])
    assert "busy polling 20 us, budget 16" in rx.first_line  # type: ignore[attr-defined]
    finish(rx)
