"""Conformance, poll group: POLL_RX, POLL_TX, POLL_RXQ_FULL and POLL_TXQ_FULL (kernel:
test_xsk.h). ``Socket.poll`` waits without the GIL, so a sender thread runs meanwhile. The two
time-out cases run with busy polling as well: the poll then spins first, and still times out."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from cases import Mode

from helpers import numbered_run

afxdp = pytest.importorskip("afxdp")

from afxdp.testing import parse_numbered  # noqa: E402

PACKETS = 2048
POLL_TIMEOUT = 1.0  # the kernel's POLL_TMOUT (1000 ms) for a poll that must succeed
IDLE_TIMEOUT = 0.3  # for a poll that must time out: short, to keep the suite quick


def _send_in_thread(tx: afxdp.Socket, payloads: list[bytes], pause: float) -> threading.Thread:
    """Sends ``payloads`` from another thread, 64 at a time with ``pause`` seconds between
    batches; returns the started thread (its ``error`` attribute holds what it raised)."""

    def run() -> None:
        try:
            sent = 0
            deadline = time.monotonic() + 10
            while sent < len(payloads) and time.monotonic() < deadline:
                time.sleep(pause)
                sent += tx.send_packets(payloads[sent : sent + 64])
                tx.complete()
        except BaseException as exc:  # reported by the test
            thread.error = exc  # type: ignore[attr-defined]

    thread = threading.Thread(target=run, daemon=True)
    thread.error = None  # type: ignore[attr-defined]
    thread.start()
    return thread


def test_POLL_RX(xsk_pair: Any, mode: Mode) -> None:
    """The receiver waits in poll() for POLLIN before every recv while another thread sends:
    every wait ends with POLLIN (none times out) and the stream arrives whole, in order."""
    pair = xsk_pair()
    payloads = numbered_run(pair.lab, 0, PACKETS)
    assert pair.rx.poll(0.0, afxdp.POLLIN) == 0  # nothing yet: poll says so
    sender = _send_in_thread(pair.tx, payloads, pause=0.0005)
    got: list[int | None] = []
    waits = 0
    while len(got) < PACKETS:
        ready = pair.rx.poll(POLL_TIMEOUT, afxdp.POLLIN)
        assert ready & afxdp.POLLIN, f"poll timed out after {len(got)} packets"
        waits += 1
        with pair.rx.recv(256) as batch:
            assert len(batch), "POLLIN with an empty rx ring"
            got += [parse_numbered(memoryview(frame)) for frame in batch]
    sender.join(5)
    assert sender.error is None
    assert got == list(range(PACKETS))
    assert waits > 1  # the receiver did wait (more than once) while the stream came in


def test_POLL_TX(xsk_pair: Any, mode: Mode) -> None:
    """The sender waits in poll() for POLLOUT before every batch (the tx ring at most half
    full): every wait ends with POLLOUT, and the stream arrives whole, in order."""
    pair = xsk_pair(tx_options={"tx_size": 128})
    payloads = numbered_run(pair.lab, 0, PACKETS)
    sent = 0
    got: list[int | None] = []
    deadline = time.monotonic() + 10
    while len(got) < PACKETS:
        assert time.monotonic() < deadline, f"stalled: {sent} sent, {len(got)} received"
        if sent < PACKETS:
            ready = pair.tx.poll(POLL_TIMEOUT, afxdp.POLLOUT)
            assert ready & afxdp.POLLOUT, f"poll for POLLOUT timed out after {sent} sent"
            assert pair.tx.tx_pending <= 64  # POLLOUT: the ring is at most half full
            sent += pair.tx.send_packets(payloads[sent : sent + 64])
            pair.tx.complete()
        with pair.rx.recv(256, timeout=0.0 if sent < PACKETS else 0.05) as batch:
            got += [parse_numbered(memoryview(frame)) for frame in batch]
    assert got == list(range(PACKETS))


def test_POLL_RXQ_FULL(xsk_pair: Any, mode: Mode) -> None:
    """Nothing is sent to the socket: poll() for POLLIN times out after its timeout with no
    events (and recv with a timeout returns nothing after it); then one packet wakes it."""
    pair = xsk_pair()
    assert (pair.rx.busy_poll is None) == (mode.busy_poll_usecs is None)
    start = time.monotonic()
    assert pair.rx.poll(IDLE_TIMEOUT, afxdp.POLLIN) == 0
    assert time.monotonic() - start >= IDLE_TIMEOUT * 0.9
    start = time.monotonic()
    with pair.rx.recv(64, timeout=IDLE_TIMEOUT) as batch:
        assert len(batch) == 0
    assert time.monotonic() - start >= IDLE_TIMEOUT * 0.9
    # The same poll does report a packet that comes.
    assert pair.tx.send_packets(numbered_run(pair.lab, 0, 1)) == 1
    assert pair.rx.poll(POLL_TIMEOUT, afxdp.POLLIN) & afxdp.POLLIN
    with pair.rx.recv(64) as batch:
        assert [parse_numbered(memoryview(frame)) for frame in batch] == [0]


def test_POLL_TXQ_FULL(xsk_pair: Any, mode: Mode) -> None:
    """A full tx ring the kernel does not consume: poll() for POLLOUT times out. The kernel's
    case gets there by queueing faster than its budgeted consumption; here the completion
    ring is full and not drained (the kernel reserves a completion slot for every descriptor
    it takes, so it takes none), and the tx ring is then filled. Once the completions are
    reclaimed the kernel drains the ring, POLLOUT comes, and every packet arrives."""
    ring = 64
    pair = xsk_pair(tx_options={"tx_size": ring, "comp_size": ring})
    assert (pair.tx.busy_poll is None) == (mode.busy_poll_usecs is None)
    payloads = numbered_run(pair.lab, 0, 2 * ring)
    # First ring's worth: the kernel takes them all; their completions fill the ring.
    assert pair.tx.send_packets(payloads[:ring]) == ring
    deadline = time.monotonic() + 3
    while pair.tx.tx_pending:
        assert time.monotonic() < deadline, f"{pair.tx.tx_pending} never left the tx ring"
        pair.tx.kick()
    # Second: they stay on the tx ring (no completion slot), which is now full.
    assert pair.tx.send_packets(payloads[ring:]) == ring
    assert pair.tx.tx_pending == ring
    start = time.monotonic()
    assert pair.tx.poll(IDLE_TIMEOUT, afxdp.POLLOUT) == 0
    assert time.monotonic() - start >= IDLE_TIMEOUT * 0.9
    assert pair.tx.tx_pending == ring  # poll drove tx (copy mode) but nothing could go
    # Reclaiming the completions unblocks it.
    got: list[int | None] = []
    deadline = time.monotonic() + 5
    while pair.tx.tx_pending or pair.tx.in_flight or len(got) < 2 * ring:
        assert time.monotonic() < deadline, (pair.tx.tx_pending, pair.tx.in_flight, len(got))
        pair.tx.complete()
        with pair.rx.recv(256, timeout=0.01) as batch:
            got += [parse_numbered(memoryview(frame)) for frame in batch]
    assert pair.tx.poll(POLL_TIMEOUT, afxdp.POLLOUT) & afxdp.POLLOUT
    assert got == list(range(2 * ring))
