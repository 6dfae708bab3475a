"""Statistics, waiting and registration of sockets on a veth pair (privileged)."""

from __future__ import annotations

import select
import time

import pytest

from afxdp import packet

afxdp = pytest.importorskip("afxdp")

pytestmark = pytest.mark.privileged


def send_numbered(tx, lab, first: int, count: int) -> int:
    """Sends `count` numbered frames from `tx`; waits for their completion; returns count."""
    done = 0
    while done < count:
        batch = tx.alloc(min(64, count - done))
        for i, frame in enumerate(batch):
            frame.write(packet.numbered_frame(first + done + i, 64, lab.mac_a, lab.mac_b))
        done += tx.send(batch)
        tx.complete()
    deadline = time.monotonic() + 5
    while tx.in_flight and time.monotonic() < deadline:
        tx.complete()
    assert tx.in_flight == 0
    return done


def drain(sock, expect: int, timeout: float = 5.0) -> list[int]:
    got: list[int] = []
    deadline = time.monotonic() + timeout
    while len(got) < expect and time.monotonic() < deadline:
        with sock.recv(256, timeout=0.1) as batch:
            got += [packet.parse_numbered(memoryview(f)) for f in batch]
    return got


@pytest.fixture
def tx(lab):
    with lab.enter("a"):
        sock = afxdp.Socket(lab.if_a, 0, rx_size=0, umem=afxdp.Umem(1024, 2048))
    with sock:
        yield sock


@pytest.fixture
def prog(lab):
    with lab.enter("b"), afxdp.Program.attach(lab.if_b, mode="native") as p:
        yield p


def test_counters_match_what_was_done(lab, tx, prog) -> None:
    with lab.enter("b"):
        rx = afxdp.Socket(lab.if_b, 0, program=prog, tx_size=0, umem=afxdp.Umem(1024, 2048))
    with rx:
        filled_at_start = rx.stats().filled
        assert filled_at_start == rx.fill_target > 0
        send_numbered(tx, lab, 0, 500)
        assert sorted(drain(rx, 500)) == list(range(500))
        # The last batch was released after its receive; the next receive puts its frames
        # back on the fill ring.
        assert len(rx.recv(64)) == 0
        s, t = rx.stats(), tx.stats()
    assert (t.sent, t.completed, t.received, t.filled) == (500, 500, 0, 0)
    assert s.received == 500
    # autofill refilled every frame taken.
    assert s.filled == filled_at_start + 500
    assert s.rx_dropped == s.rx_ring_full == s.rx_fill_ring_empty_descs == 0


def test_empty_fill_ring_counts_rx_fill_ring_empty_descs(lab, tx, prog) -> None:
    with lab.enter("b"):
        rx = afxdp.Socket(lab.if_b, 0, program=prog, tx_size=0, autofill=False)
    with rx:
        assert rx.stats().filled == 0
        send_numbered(tx, lab, 0, 100)
        assert drain(rx, 1, timeout=0.5) == []
        s = rx.stats()
        assert s.received == 0
        assert s.rx_fill_ring_empty_descs > 0
        assert rx.fill(64) == 64
        send_numbered(tx, lab, 100, 10)
        assert sorted(drain(rx, 10)) == list(range(100, 110))


def test_undrained_rx_ring_counts_rx_ring_full(lab, tx, prog) -> None:
    with lab.enter("b"):
        rx = afxdp.Socket(lab.if_b, 0, program=prog, tx_size=0, rx_size=64, fill_size=512)
    with rx:
        send_numbered(tx, lab, 0, 300)
        s = rx.stats()
        assert s.rx_ring_full > 0
        assert s.received == 0
        got = drain(rx, 64, timeout=1.0)
        assert len(got) == 64  # exactly what the ring held
        assert rx.stats().rx_ring_full + 64 == 300


def test_poll_recv_timeout_and_select(lab, tx, prog) -> None:
    with lab.enter("b"):
        rx = afxdp.Socket(lab.if_b, 0, program=prog, tx_size=0)
    with rx:
        t0 = time.monotonic()
        assert rx.poll(0.2) == 0
        batch = rx.recv(64, timeout=0.2)
        elapsed = time.monotonic() - t0
        assert len(batch) == 0
        assert 0.3 <= elapsed < 3.0
        assert select.select([rx], [], [], 0)[0] == []
        send_numbered(tx, lab, 0, 5)
        assert rx.poll(2.0) & afxdp.POLLIN
        assert select.select([rx], [], [], 2.0)[0] == [rx]
        assert rx.rx_available == 5
        assert len(rx.recv(64, timeout=None)) == 5
        with pytest.raises(ValueError, match="timeout -1"):
            rx.recv(64, timeout=-1)


def test_socket_receives_only_while_registered(lab, tx, prog) -> None:
    with lab.enter("b"):
        rx = afxdp.Socket(lab.if_b, 0, tx_size=0)
    with rx:
        assert not rx.registered
        assert "unregistered" in repr(rx)
        send_numbered(tx, lab, 0, 20)
        assert drain(rx, 1, timeout=0.3) == []
        prog.register(rx)
        assert rx.registered and rx.program is prog
        send_numbered(tx, lab, 20, 20)
        assert sorted(drain(rx, 20)) == list(range(20, 40))
        prog.unregister(0)
        assert not rx.registered
        send_numbered(tx, lab, 40, 20)
        assert drain(rx, 1, timeout=0.3) == []
        prog.unregister(0)  # an empty slot is not an error
