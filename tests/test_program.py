"""afxdp.Program: attach modes, detach (explicitly, twice, by `with`, by garbage collection and by
SIGKILL of the owning process) and XSKMAP registration.

All privileged, each test in its own veth lab; the program goes on the veth end of side "b" and
what is attached is read back from the kernel with ``ip -d -j link show``. Every wait is bounded.
"""

from __future__ import annotations

import gc
import json
import select
import subprocess
import sys
import textwrap
import time

import pytest

from afxdp.testing import parse_numbered
from helpers import numbered

afxdp = pytest.importorskip("afxdp")

pytestmark = pytest.mark.privileged

#: "mode" of the "xdp" object in ``ip -j link``: XDP_ATTACHED_DRV / XDP_ATTACHED_SKB.
IP_XDP_MODE = {"native": 1, "generic": 2}


def xdp_of(lab) -> dict | None:
    """The "xdp" object of ``ip -d -j link show dev <if_b>``, or None when nothing is attached."""
    out = lab.run("b", ["ip", "-d", "-j", "link", "show", "dev", lab.if_b]).stdout
    return json.loads(out)[0].get("xdp")


def assert_attached(lab, mode: str) -> int:
    """Asserts one XDP program is attached in `mode`; returns its id."""
    xdp = xdp_of(lab)
    assert xdp is not None, "no XDP program attached"
    assert xdp.get("mode") == IP_XDP_MODE[mode], f"expected {mode} XDP, kernel says {xdp}"
    prog_id = xdp.get("prog", {}).get("id")
    assert isinstance(prog_id, int) and prog_id > 0, xdp
    return prog_id


def wait_detached(lab, timeout: float = 2.0) -> dict | None:
    """Polls until no XDP program is attached or `timeout`; returns what is still attached."""
    deadline = time.monotonic() + timeout
    while (xdp := xdp_of(lab)) is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    return xdp


def attach(lab, mode: str = "native"):
    with lab.enter("b"):
        return afxdp.Program.attach(lab.if_b, mode=mode)


@pytest.mark.parametrize("mode", ["native", "generic"])
def test_attach_shows_in_kernel_and_detach_removes_it(lab, mode: str) -> None:
    assert xdp_of(lab) is None
    prog = attach(lab, mode)
    assert prog.mode == mode
    assert prog.attached is True
    assert prog.closed is False
    assert prog.ifname == lab.if_b
    assert prog.map_size >= 1
    assert mode in repr(prog)
    assert_attached(lab, mode)
    prog.detach()
    assert prog.attached is False
    assert xdp_of(lab) is None
    prog.detach()  # twice is fine
    assert prog.attached is False
    assert xdp_of(lab) is None
    prog.close()
    prog.close()
    assert prog.closed


def test_auto_mode_picks_one(lab) -> None:
    prog = attach(lab, "auto")
    assert prog.mode in ("native", "generic")
    assert_attached(lab, prog.mode)
    prog.detach()
    assert xdp_of(lab) is None


@pytest.mark.parametrize("mode", ["native", "generic"])
def test_with_block_detaches(lab, mode: str) -> None:
    with attach(lab, mode) as prog:
        assert prog.attached and prog.mode == mode
        assert_attached(lab, mode)
    assert not prog.attached
    assert xdp_of(lab) is None


def test_with_block_detaches_on_exception(lab) -> None:
    with pytest.raises(RuntimeError, match="boom"), attach(lab) as prog:
        assert_attached(lab, "native")
        raise RuntimeError("boom")
    assert not prog.attached
    assert xdp_of(lab) is None


@pytest.mark.parametrize("mode", ["native", "generic"])
def test_garbage_collection_detaches(lab, mode: str) -> None:
    prog = attach(lab, mode)
    assert_attached(lab, mode)
    del prog
    gc.collect()
    assert wait_detached(lab) is None


def test_reattach_after_detach(lab) -> None:
    first = attach(lab, "native")
    first_id = assert_attached(lab, "native")
    first.detach()
    second = attach(lab, "generic")
    assert second.mode == "generic"
    assert assert_attached(lab, "generic") != first_id
    second.detach()
    assert xdp_of(lab) is None


SIGKILL_CHILD = textwrap.dedent(
    """
    import sys, time
    import afxdp
    ifname = sys.argv[1]
    prog = afxdp.Program.attach(ifname, mode="native")
    sock = afxdp.Socket(ifname, 0, umem=afxdp.Umem(64, 2048), program=prog)
    assert sock.registered
    print("ready", flush=True)
    time.sleep(60)
    """
)


def test_sigkill_of_owner_detaches(lab) -> None:
    child = lab.popen(
        "b",
        [sys.executable, "-c", SIGKILL_CHILD, lab.if_b],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready, _, _ = select.select([child.stdout], [], [], 15)
        line = child.stdout.readline() if ready else ""
        if line.strip() != "ready":
            child.kill()
            _, err = child.communicate(timeout=5)
            pytest.fail(f"child did not get ready: {line!r} {err}")
        assert_attached(lab, "native")
        # `ip netns exec` execs the command, so the pid is the python child itself.
        child.kill()
        child.wait(timeout=5)
        assert child.returncode == -9
        still = wait_detached(lab, timeout=2.0)
        assert still is None, f"XDP program still attached 2 s after SIGKILL of its owner: {still}"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=5)
        child.stdout.close()
        child.stderr.close()


# --- XSKMAP registration -------------------------------------------------------------------------


def exchange(lab, tx, rx, seq: int, timeout: float = 0.3) -> list[int | None]:
    """Sends one numbered frame a -> b; returns what rx receives within `timeout`."""
    with tx.alloc(1) as batch:
        batch[0].write(numbered(lab, seq))
        assert tx.send(batch) == 1
    got: list[int | None] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not got:
        tx.complete()
        with rx.recv(16, timeout=0.02) as frames:
            got += [parse_numbered(bytes(f)) for f in frames]
    tx.complete()
    return got


def test_register_and_unregister(lab) -> None:
    with lab.enter("a"):
        tx = afxdp.Socket(lab.if_a, 0, umem=afxdp.Umem(64, 2048), rx_size=0)
    with lab.enter("b"):
        prog = afxdp.Program.attach(lab.if_b, mode="native")
        rx = afxdp.Socket(lab.if_b, 0, umem=afxdp.Umem(256, 2048), tx_size=0)
    with tx, prog, rx:
        assert rx.program is None
        assert not rx.registered
        assert "unregistered" in repr(rx)
        assert exchange(lab, tx, rx, 1) == []  # not in the XSKMAP: the frame goes to the stack
        prog.register(rx)
        assert rx.registered
        assert exchange(lab, tx, rx, 2, timeout=3) == [2]
        prog.unregister(0)
        assert not rx.registered and rx.program is None
        assert exchange(lab, tx, rx, 3) == []
        prog.unregister(0)  # an empty slot: not an error
        assert not rx.registered
        prog.register(rx)  # and back again
        assert rx.registered
        assert exchange(lab, tx, rx, 4, timeout=3) == [4]


def test_socket_created_with_program_registers_itself(lab) -> None:
    with lab.enter("b"):
        prog = afxdp.Program.attach(lab.if_b, mode="generic")
        rx = afxdp.Socket(lab.if_b, 0, umem=afxdp.Umem(64, 2048), program=prog, tx_size=0)
    with prog, rx:
        assert rx.program is prog
        assert rx.registered
        prog.unregister(0)
        assert not rx.registered and rx.program is None


def test_a_socket_without_an_rx_ring_is_never_registered(lab) -> None:
    """The kernel drops every packet redirected to a socket without an rx ring: registering
    one (register, Socket(program=), a Port with rx_size=0, which now refuses) turned its queue
    into a black hole: pings to end b were lost, counted as rx_dropped."""

    def ping() -> int:
        argv = ["ping", "-c", "2", "-W", "1", "-i", "0.2", lab.ip("b")]
        return lab.run("a", argv, check=False).returncode

    with lab.enter("b"):
        prog = afxdp.Program.attach(lab.if_b, mode="native")
        tx_only = afxdp.Socket(lab.if_b, 0, umem=afxdp.Umem(64, 2048), rx_size=0)
    with prog, tx_only:
        with pytest.raises(ValueError, match=r"queue 0 .* no rx ring \(rx_size=0\)"):
            prog.register(tx_only)
        assert not tx_only.registered
        with lab.enter("b"), pytest.raises(ValueError, match="no rx ring"):
            afxdp.Socket(lab.if_b, 0, umem=tx_only.umem, rx_size=0, program=prog)
        assert ping() == 0, "traffic of the queue still reaches the kernel stack"
    with lab.enter("b"), pytest.raises(ValueError, match="rx_size=0: a Port receives"):
        afxdp.Port(lab.if_b, rx_size=0, mode="native")


def test_unregister_of_never_used_slots_is_fine(lab) -> None:
    """Unregistering empty XSKMAP slots raises nothing and leaves the program working: still
    attached, and a socket registered afterwards receives."""
    with lab.enter("a"):
        tx = afxdp.Socket(lab.if_a, 0, umem=afxdp.Umem(64, 2048), rx_size=0)
    with lab.enter("b"):
        rx = afxdp.Socket(lab.if_b, 0, umem=afxdp.Umem(256, 2048), tx_size=0)
    with tx, rx, attach(lab) as prog:
        program_id = assert_attached(lab, "native")
        for queue in range(min(prog.map_size, 4)):
            prog.unregister(queue)
        assert prog.attached and not rx.registered
        assert assert_attached(lab, "native") == program_id
        prog.register(rx)
        assert exchange(lab, tx, rx, 1, timeout=3) == [1]


def test_register_on_detached_program_raises(lab) -> None:
    with lab.enter("b"):
        prog = afxdp.Program.attach(lab.if_b, mode="native")
        rx = afxdp.Socket(lab.if_b, 0, umem=afxdp.Umem(64, 2048), tx_size=0)
    with rx:
        prog.detach()
        assert xdp_of(lab) is None
        with pytest.raises(ValueError):
            prog.register(rx)
        assert not rx.registered
        prog.close()
        with pytest.raises(ValueError):
            prog.register(rx)


def test_detach_unregisters_the_socket(lab) -> None:
    with lab.enter("b"):
        prog = afxdp.Program.attach(lab.if_b, mode="native")
        rx = afxdp.Socket(lab.if_b, 0, umem=afxdp.Umem(64, 2048), program=prog, tx_size=0)
    with rx:
        assert rx.registered
        prog.detach()
        assert not rx.registered
        assert xdp_of(lab) is None
