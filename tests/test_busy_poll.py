"""Preferred busy polling (``Socket(..., busy_poll_usecs=, busy_poll_budget=)``) and the
interface settings that go with it (``afxdp.napi``).

What is shown here, on veth pairs in private namespaces:

* the socket options are set at creation and read back through an independent path (CPython's
  ``socket`` module on a duplicate of the fd): SO_BUSY_POLL and SO_PREFER_BUSY_POLL directly;
  SO_BUSY_POLL_BUDGET, which the kernel cannot read back (ENOPROTOOPT), by the kernel's own rule
  that a process without CAP_NET_ADMIN may lower the budget but not raise it: such a process may
  set exactly the configured budget and gets EPERM for one more;
* without CAP_NET_ADMIN the socket refuses with PermissionError naming the option and the
  capability;
* ``recv()`` makes a ``recvfrom(MSG_DONTWAIT)`` per call and ``send()``/``complete()`` a
  ``sendto`` per call, whatever the rings' need_wakeup flags say (counted with strace; the same
  calls without busy polling make none resp. one per send, the control);
* bad values raise naming the value;
* ``afxdp.napi`` sets and restores ``napi_defer_hard_irqs`` and ``gro_flush_timeout``.

The datapath tests (tests/test_datapath.py) also run their stream, rebroadcast and statistics
cases with busy polling on.

A limit of the kernel, not of afxdp: an AF_XDP socket learns the NAPI it busy-polls at bind
(net/xdp/xsk.c `xsk_bind`), from the NAPI the driver registered on the bound rx queue; since
Linux 6.13 ("xsk: Bring back busy polling support") for zero-copy sockets, and for copy mode
too since "xsk: Bring back busy polling support in XDP_COPY" (2025). veth registers no NAPI on
its rx queues, so on veth the socket's NAPI id stays 0 and the busy-poll syscalls do not reach
a NAPI: the NAPI-driving itself can only be observed on a driver that registers its NAPIs.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

afxdp = pytest.importorskip("afxdp")

from helpers import socket_pair  # noqa: E402

SO_BUSY_POLL = 46
SO_INCOMING_NAPI_ID = 56
SO_PREFER_BUSY_POLL = 69
SO_BUSY_POLL_BUDGET = 70
AF_XDP = 44


def read_option(sock: afxdp.Socket, option: int) -> int:
    """A SOL_SOCKET int option of the AF_XDP socket, read through CPython's socket module."""
    dup = socket.socket(AF_XDP, socket.SOCK_RAW, 0, fileno=os.dup(sock.fileno()))
    try:
        return dup.getsockopt(socket.SOL_SOCKET, option)
    finally:
        dup.close()


# --- bad values (no privileges needed: they are refused before anything is opened) ---------


@pytest.mark.parametrize(
    ("kwargs", "error", "needle"),
    [
        ({"busy_poll_usecs": -1}, ValueError, "invalid busy_poll_usecs -1"),
        ({"busy_poll_usecs": 0}, ValueError, "invalid busy_poll_usecs 0"),
        ({"busy_poll_usecs": 2**31}, ValueError, "invalid busy_poll_usecs 2147483648"),
        ({"busy_poll_usecs": True}, TypeError, "invalid busy_poll_usecs True"),
        ({"busy_poll_usecs": 20, "busy_poll_budget": -1}, ValueError, "busy_poll_budget -1"),
        ({"busy_poll_usecs": 20, "busy_poll_budget": 0}, ValueError, "busy_poll_budget 0"),
        ({"busy_poll_usecs": 20, "busy_poll_budget": 65536}, ValueError, "budget 65536"),
        ({"busy_poll_usecs": 20, "busy_poll_budget": False}, TypeError, "budget False"),
        ({"busy_poll_budget": 64}, ValueError, "only applies with busy_poll_usecs"),
    ],
)
def test_bad_busy_poll_values_raise_naming_the_value(kwargs, error, needle) -> None:
    with pytest.raises(error) as caught:
        afxdp.Socket("afxdp-no-such-if", 0, **kwargs)
    assert needle in str(caught.value)


# --- options set and read back -------------------------------------------------------------

BUDGET_CHILD = textwrap.dedent(
    """
    import json, socket, sys
    fd, budget = int(sys.argv[1]), int(sys.argv[2])
    s = socket.socket(44, socket.SOCK_RAW, 0, fileno=fd)
    result = {}
    for value in (budget, budget + 1):
        try:
            s.setsockopt(socket.SOL_SOCKET, 70, value)  # SO_BUSY_POLL_BUDGET
            result[value] = 0
        except OSError as e:
            result[value] = e.errno
    s.detach()
    print(json.dumps(result))
    """
)


@pytest.mark.privileged
def test_busy_poll_options_are_set_and_read_back(lab) -> None:
    budget = 16
    with socket_pair(lab, tx_size=0, busy_poll_usecs=50, busy_poll_budget=budget) as pair:
        rx = pair.rx
        assert rx.busy_poll == (50, budget)
        assert pair.tx.busy_poll == (50, 64)  # the default budget
        assert "busy_poll=50us/16" in repr(rx)
        assert read_option(rx, SO_BUSY_POLL) == 50
        assert read_option(rx, SO_PREFER_BUSY_POLL) == 1
        with pytest.raises(OSError) as caught:  # write-only on this kernel
            read_option(rx, SO_BUSY_POLL_BUDGET)
        assert caught.value.errno == errno.ENOPROTOOPT

        # The budget the kernel holds, shown by its own rule: without CAP_NET_ADMIN a process
        # may set a budget up to the current one, and gets EPERM above it.
        dup = os.dup(rx.fileno())
        try:
            done = subprocess.run(
                ["setpriv", "--bounding-set=-all,+net_raw", "--inh-caps=-all",
                 sys.executable, "-c", BUDGET_CHILD, str(dup), str(budget)],
                pass_fds=(dup,), capture_output=True, text=True, timeout=60, check=True,
            )  # fmt: skip
        finally:
            os.close(dup)
        assert json.loads(done.stdout) == {str(budget): 0, str(budget + 1): errno.EPERM}

        # The NAPI id is readable; on veth the kernel gives the socket none (veth registers no
        # NAPI on its rx queues), even after traffic (see the module docstring).
        with pair.tx.alloc(4) as batch:
            batch.write_all(b"\xff" * 60)
            pair.tx.send(batch)
        assert len(rx.recv(64, timeout=2.0)) > 0
        assert rx.napi_id == read_option(rx, SO_INCOMING_NAPI_ID) == 0


@pytest.mark.privileged
def test_without_busy_poll_the_options_stay_off(lab) -> None:
    with socket_pair(lab, tx_size=0) as pair:
        assert pair.rx.busy_poll is None
        assert read_option(pair.rx, SO_BUSY_POLL) == 0
        assert read_option(pair.rx, SO_PREFER_BUSY_POLL) == 0
        assert "busy_poll" not in repr(pair.rx)


NO_ADMIN_CHILD = textwrap.dedent(
    """
    import json, sys
    import afxdp
    try:
        afxdp.Socket(sys.argv[1], 0, busy_poll_usecs=20)
    except BaseException as e:
        print(json.dumps({"type": type(e).__name__, "errno": getattr(e, "errno", None),
                          "message": str(e)}))
    else:
        print(json.dumps({"type": None}))
    """
)


@pytest.mark.privileged
def test_busy_poll_without_cap_net_admin_raises_permissionerror_naming_it(lab) -> None:
    # CAP_NET_RAW is all an AF_XDP socket needs; preferred busy polling needs CAP_NET_ADMIN.
    argv = [
        "setpriv", "--bounding-set=-all,+net_raw", "--inh-caps=-all",
        sys.executable, "-c", NO_ADMIN_CHILD, lab.if_b,
    ]  # fmt: skip
    done = lab.run("b", argv, timeout=60)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["type"] == "PermissionError", result
    assert result["errno"] == errno.EPERM, result
    assert "setsockopt(SO_PREFER_BUSY_POLL)" in result["message"], result
    assert "CAP_NET_ADMIN" in result["message"], result


# --- recv/send poll the queue themselves ---------------------------------------------------

SYSCALL_CHILD = textwrap.dedent(
    """
    import sys
    import afxdp
    busy = int(sys.argv[2]) or None
    with afxdp.Socket(sys.argv[1], 0, busy_poll_usecs=busy) as s:
        print(s.fileno(), flush=True)
        for _ in range(30):
            s.recv(64).release()  # an empty rx ring, a full fill ring: no wakeup needed
        for _ in range(30):
            s.complete()  # nothing in flight
        for _ in range(10):
            with s.alloc(1) as batch:
                batch.write_all(bytes(60))
                s.send(batch)
    """
)


def count_syscalls(lab, tmp_path: Path, busy_usecs: int) -> tuple[int, int]:
    """(recvfrom, sendto) wakeup calls on the socket's fd made by SYSCALL_CHILD."""
    trace = tmp_path / f"trace-{busy_usecs}"
    done = lab.run(
        "b",
        ["strace", "-f", "-qq", "-e", "trace=recvfrom,sendto", "-o", str(trace),
         sys.executable, "-c", SYSCALL_CHILD, lab.if_b, str(busy_usecs)],
        timeout=60,
    )  # fmt: skip
    fd = int(done.stdout.split()[0])
    lines = trace.read_text().splitlines()
    recvfrom = sum(f"recvfrom({fd}, NULL, 0, MSG_DONTWAIT" in line for line in lines)
    sendto = sum(f"sendto({fd}, NULL, 0, MSG_DONTWAIT" in line for line in lines)
    return recvfrom, sendto


@pytest.mark.privileged
@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_recv_send_and_complete_poll_the_queue_with_a_syscall_per_call(lab, tmp_path) -> None:
    recvfrom, sendto = count_syscalls(lab, tmp_path, 20)
    assert recvfrom == 30  # one per recv(), though the fill ring asked for no wakeup
    assert sendto >= 30 + 10  # one per complete() with nothing in flight, at least one per send
    # The control: the same calls without busy polling wake the kernel only when needed.
    recvfrom, sendto = count_syscalls(lab, tmp_path, 0)
    assert recvfrom == 0
    assert sendto == 10  # copy mode: the tx ring always asks for a wakeup


# --- afxdp.napi ----------------------------------------------------------------------------

NAPI_CHILD = textwrap.dedent(
    """
    import errno, json, sys
    import afxdp.napi as napi
    ifname = sys.argv[1]
    out = {"initial": napi.read(ifname)}
    with napi.deferral(ifname, defer_hard_irqs=2, gro_flush_timeout=200_000) as old:
        out["old"] = old
        out["inside"] = napi.read(ifname)
    out["after"] = napi.read(ifname)
    try:
        with napi.deferral(ifname, 5, 300_000):
            out["inside_failing"] = napi.read(ifname)
            raise KeyError("boom")
    except KeyError:
        out["after_error"] = napi.read(ifname)
    # A failing second write undoes the first.
    real_open = open
    def failing_open(path, mode="r", *args, **kwargs):
        if path.endswith("gro_flush_timeout") and "w" in mode:
            raise PermissionError(errno.EACCES, "refused by the test")
        return real_open(path, mode, *args, **kwargs)
    napi.open = failing_open
    try:
        napi.write(ifname, 7, 400_000)
    except PermissionError as e:
        out["partial_error"] = str(e)
    del napi.open
    out["after_partial"] = napi.read(ifname)
    try:
        napi.read("afxdp-no-such-if")
    except OSError as e:
        out["unknown"] = [e.errno, str(e)]
    print(json.dumps(out))
    """
)


@pytest.mark.privileged
def test_napi_deferral_sets_and_restores_the_interface_settings(lab) -> None:
    with lab.enter("b"), afxdp.Program.attach(lab.if_b, mode="native"):
        done = lab.run("b", [sys.executable, "-c", NAPI_CHILD, lab.if_b], timeout=60)
    out = json.loads(done.stdout)
    initial = out["initial"]
    assert initial == out["old"]
    assert out["inside"] == [2, 200_000] != initial
    assert out["after"] == initial
    assert out["inside_failing"] == [5, 300_000]
    assert out["after_error"] == initial
    assert "gro_flush_timeout" in out["partial_error"] and "400000" in out["partial_error"]
    assert out["after_partial"] == initial  # napi_defer_hard_irqs (written first) undone
    assert out["unknown"][0] == errno.ENODEV
    assert "afxdp-no-such-if" in out["unknown"][1]


@pytest.mark.privileged
def test_napi_refuses_an_interface_sysfs_does_not_show_as_this_threads(lab) -> None:
    import afxdp.napi as napi

    # The host's /sys does not show the lab's namespaces: from a thread inside one, the name
    # resolves but sysfs would be another namespace's, so it is refused rather than guessed.
    with lab.enter("b"), pytest.raises(OSError) as caught:
        napi.read(lab.if_b)
    assert caught.value.errno == errno.ENODEV
    assert "ip netns exec" in str(caught.value)
    with pytest.raises(OSError) as caught:  # and from the host, it does not exist at all
        napi.write(lab.if_b, 2, 200_000)
    assert caught.value.errno == errno.ENODEV


@pytest.mark.parametrize(
    ("kwargs", "error", "needle"),
    [
        ({"defer_hard_irqs": -1}, ValueError, "invalid defer_hard_irqs -1"),
        ({"defer_hard_irqs": 2**31}, ValueError, "invalid defer_hard_irqs 2147483648"),
        ({"defer_hard_irqs": True}, TypeError, "invalid defer_hard_irqs True"),
        ({"gro_flush_timeout": -5}, ValueError, "invalid gro_flush_timeout -5"),
        ({"gro_flush_timeout": 2**32}, ValueError, "invalid gro_flush_timeout 4294967296"),
        ({"gro_flush_timeout": 1.5}, TypeError, "invalid gro_flush_timeout 1.5"),
    ],
)
def test_napi_bad_values_raise_naming_the_value(kwargs, error, needle) -> None:
    import afxdp.napi as napi

    values = {"defer_hard_irqs": 2, "gro_flush_timeout": 200_000, **kwargs}
    with pytest.raises(error) as caught:
        napi.write("afxdp-no-such-if", **values)  # refused before the interface is looked at
    assert needle in str(caught.value)
