"""Bad input from Python raises an ordinary exception naming the value: never a Rust panic.

A Rust panic reaches Python as ``pyo3_runtime.PanicException``, a BaseException that
``except Exception`` does not catch, so ``pytest.raises(ValueError)`` does not catch it either:
these tests fail on a panic.
"""

from __future__ import annotations

import math
import threading
import time

import pytest

afxdp = pytest.importorskip("afxdp")

privileged = pytest.mark.privileged


# --- sockets: timeouts and int arguments of methods ----------------------------------------------


@pytest.fixture
def sock(lab):
    with lab.enter("b"):
        s = afxdp.Socket(lab.if_b, 0, umem=afxdp.Umem(256, 2048))
    with s:
        yield s


@privileged
@pytest.mark.parametrize("timeout", [-1.0, -1e300, math.nan, -math.inf])
@pytest.mark.parametrize("call", ["recv", "poll"])
def test_negative_or_nan_timeout_is_a_valueerror_naming_it(sock, call: str, timeout) -> None:
    with pytest.raises(ValueError, match="timeout") as raised:
        if call == "recv":
            sock.recv(64, timeout=timeout)
        else:
            sock.poll(timeout)
    named = float(str(raised.value).split("timeout ", 1)[1].split(":")[0])
    assert named == timeout or (math.isnan(named) and math.isnan(timeout)), raised.value


@privileged
@pytest.mark.parametrize("timeout", [1e19, 1e300, math.inf])
def test_huge_poll_timeout_waits_like_none(sock, timeout: float) -> None:
    # The tx ring is empty, so POLLOUT is ready at once: the call returns without waiting.
    assert sock.poll(timeout, afxdp.POLLOUT) & afxdp.POLLOUT


@privileged
@pytest.mark.parametrize("timeout", [1e19, 1e300, math.inf])
def test_huge_recv_timeout_waits_until_close(sock, timeout: float) -> None:
    closer = threading.Timer(0.3, sock.close)
    closer.start()
    started = time.monotonic()
    try:
        with pytest.raises(ValueError, match="closed"):
            sock.recv(64, timeout=timeout)
    finally:
        closer.cancel()
    assert 0.25 < time.monotonic() - started < 2.0


@privileged
def test_generate_rate_and_duration_extremes_never_panic(lab) -> None:
    packet = bytes(60)
    with lab.enter("a"):
        for rate in (math.nan, -1.0, 0.0, math.inf, -math.inf):
            with pytest.raises(ValueError, match="rate"):
                afxdp.generate(lab.if_a, packet, 10, rate=rate)
        for duration in (math.nan, -1.0, 1e300, math.inf):
            with pytest.raises(ValueError, match="duration"):
                afxdp.generate(lab.if_a, packet, 10, duration=duration)
        # Extreme but valid: a rate of one packet per 1e300 s sends the first packet only, and a
        # rate beyond any interface is just flat out. Each stops within its duration.
        started = time.monotonic()
        assert afxdp.generate(lab.if_a, packet, 5, duration=0.2, rate=1e-300) <= 1
        assert afxdp.generate(lab.if_a, packet, 5, duration=0.2, rate=1e300) == 5
        assert time.monotonic() - started < 5


# --- Program.register refuses a socket of another interface --------------------------------------


@privileged
@pytest.mark.parametrize("how", ["register", "constructor"])
def test_register_refuses_a_socket_bound_to_another_interface(lab, how: str) -> None:
    # A second veth pair inside the lab's own namespace b: removed with the namespace.
    other = f"{lab.if_b}x"
    lab.run("b", ["ip", "link", "add", other, "type", "veth", "peer", f"{lab.if_b}y"])
    lab.run("b", ["ip", "link", "set", other, "up"])
    lab.run("b", ["ip", "link", "set", f"{lab.if_b}y", "up"])
    with lab.enter("b"):
        with afxdp.Program.attach(lab.if_b, mode="native") as prog:
            pattern = rf"{other}.*{lab.if_b}|{lab.if_b}.*{other}"
            if how == "register":
                with afxdp.Socket(other, 0) as sock:
                    with pytest.raises(ValueError, match=pattern):
                        prog.register(sock)
                    assert not sock.registered
                    assert sock.program is None
            else:
                with pytest.raises(ValueError, match=pattern):
                    afxdp.Socket(other, 0, program=prog)
            # the program's own interface is still accepted
            with afxdp.Socket(lab.if_b, 0, program=prog) as sock:
                assert sock.registered
