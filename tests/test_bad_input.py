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


# --- bool is not an int here (unprivileged: refused before any system call) ---------------------


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: afxdp.Umem(True), "frame_count"),
        (lambda: afxdp.Umem(64, frame_size=False), "frame_size"),
        (lambda: afxdp.Umem(64, 2048, headroom=True), "headroom"),
        (lambda: afxdp.Rule(dst_port=True), "dst_port"),
        (lambda: afxdp.Rule(ethertype=True), "ethertype"),
        (lambda: afxdp.Rule(ip_proto=False), "ip_proto"),
        (lambda: afxdp.Socket("afxnosuchif0", True), "queue"),
        (lambda: afxdp.Socket("afxnosuchif0", 0, rx_size=True), "rx_size"),
        (lambda: afxdp.Socket("afxnosuchif0", 0, tx_size=True), "tx_size"),
        (lambda: afxdp.Socket("afxnosuchif0", 0, fill_size=True), "fill_size"),
        (lambda: afxdp.Socket("afxnosuchif0", 0, comp_size=True), "comp_size"),
        (lambda: afxdp.generate("afxnosuchif0", bytes(60), True), "count"),
        (lambda: afxdp.generate("afxnosuchif0", bytes(60), 1, src_ports=True), "src_ports"),
        (lambda: afxdp.generate("afxnosuchif0", bytes(60), 1, batch_size=True), "batch_size"),
    ],
)
def test_bool_for_an_int_argument_is_a_typeerror_naming_it(call, name: str) -> None:
    with pytest.raises(TypeError, match=rf"\b{name}\b.*bool"):
        call()


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: afxdp.generate("afxnosuchif0", bytes(60), 1, duration=True), "duration"),
        (lambda: afxdp.generate("afxnosuchif0", bytes(60), 1, rate=False), "rate"),
    ],
)
def test_bool_for_a_float_argument_is_a_typeerror_naming_it(call, name: str) -> None:
    # A bool is an int, and so a float to PyO3: `rate=True` sent at 1 packet/s.
    with pytest.raises(TypeError, match=rf"\b{name}\b.*bool"):
        call()


@pytest.mark.parametrize("value", [2**63, 2**64, -(2**63) - 1, 10**30])
@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda v: afxdp.Umem(v), "frame_count"),
        (lambda v: afxdp.Umem(64, frame_size=v), "frame_size"),
        (lambda v: afxdp.Rule(dst_port=v), "dst_port"),
        (lambda v: afxdp.Socket("afxnosuchif0", v), "queue"),
    ],
)
def test_an_int_beyond_64_bits_is_a_valueerror_naming_it_and_the_value(
    call, name: str, value: int
) -> None:
    # It was an OverflowError naming neither ("Python int too large to convert to C long").
    with pytest.raises(ValueError, match=rf"\b{name}\b.*{value}"):
        call(value)


@pytest.mark.parametrize("value", [2**64, -(2**63) - 1, 10**30])
def test_a_count_outside_u64_is_a_valueerror_naming_it_and_the_value(value: int) -> None:
    # The generator's count takes the whole u64 range (2**63 too: tests/test_generate.py).
    with pytest.raises(ValueError, match=rf"\bcount\b.*{value}"):
        afxdp.generate("afxnosuchif0", bytes(60), value)


def test_ints_still_work_where_bools_are_refused() -> None:
    with afxdp.Umem(64, 2048, headroom=0) as umem:
        assert umem.frame_count == 64
    assert afxdp.Rule(dst_port=53).dst_port == 53


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
@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda s: s.recv(True), "max"),
        (lambda s: s.fill(True), "max"),
        (lambda s: s.complete(True), "max"),
        (lambda s: s.alloc(True), "n"),
        (lambda s: s.poll(0, True), "events"),
    ],
)
def test_bool_for_a_socket_method_int_is_a_typeerror(sock, call, name: str) -> None:
    with pytest.raises(TypeError, match=rf"\b{name}\b.*bool"):
        call(sock)


@privileged
@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda s: s.recv(4, True), "timeout"),
        (lambda s: s.recv(4, 0.0, coalesce=True), "coalesce"),
        (lambda s: s.poll(True), "timeout"),
        (lambda s: s.batches(4, timeout=False), "timeout"),
        (lambda s: s.batches(4, coalesce=True), "coalesce"),
    ],
)
def test_bool_for_a_socket_method_float_is_a_typeerror(sock, call, name: str) -> None:
    # `recv(4, True)` waited a second, `coalesce=True` slept one.
    with pytest.raises(TypeError, match=rf"\b{name}\b.*bool"):
        call(sock)


@privileged
@pytest.mark.parametrize("index", [2**70, -(2**70), 2**63])
def test_an_index_beyond_64_bits_is_an_indexerror_naming_it(sock, index: int) -> None:
    # It was an OverflowError naming nothing ("Python int too large to convert to C long");
    # Python's own sequences raise IndexError.
    with sock.alloc(2) as batch:
        frame = batch[0]
        for index_it in (
            lambda: batch[index],
            lambda: frame[index],
            lambda: frame.__setitem__(index, 1),
            lambda: batch.lengths[index],
        ):
            with pytest.raises(IndexError, match=str(index)):
                index_it()


@privileged
def test_bool_for_a_batch_or_frame_int_is_a_typeerror(sock) -> None:
    with sock.alloc(2) as batch:
        with pytest.raises(TypeError, match=r"\blength\b.*bool"):
            batch.set_lengths(True)
        with pytest.raises(TypeError, match=r"\boffset\b.*bool"):
            batch.write_at(True, b"x")
        with pytest.raises(TypeError, match=r"\blength\b.*bool"):
            batch[0].length = True
        batch.set_lengths(60)
        assert batch.lengths == [60, 60]


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
    with lab.enter("b"), afxdp.Program.attach(lab.if_b, mode="native") as prog:
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
