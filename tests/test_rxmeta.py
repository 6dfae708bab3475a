"""Per-packet receive metadata for real (privileged): the built-in program's timestamps
(``Program.attach(..., timestamps=True)``) on veth, native and generic mode.

Each test builds its own lab; the sender is an AF_XDP socket on end a, the receiver a socket
and the program on end b. Sending and receiving alternate in bounded rounds, each with a
deadline, so every received packet can be checked against the sender's clock reading before
its round was sent and the receiver's right after it was received.
"""

from __future__ import annotations

import time

import pytest

afxdp = pytest.importorskip("afxdp")

from afxdp.testing import parse_numbered  # noqa: E402
from helpers import numbered_run, socket_pair  # noqa: E402

pytestmark = pytest.mark.privileged

modes = pytest.mark.parametrize("mode", ["native", "generic"])
ROUND = 32
DEADLINE = 5.0  # seconds for one round


def send_round(tx: afxdp.Socket, payloads: list[bytes]) -> None:
    """Sends ``payloads`` (at most a batch) and waits for their completion."""
    deadline = time.monotonic() + DEADLINE
    with tx.alloc(len(payloads)) as batch:
        for frame, payload in zip(batch, payloads, strict=True):
            frame.write(payload)
        while not batch.closed and len(batch):
            assert time.monotonic() < deadline, "send stalled"
            tx.send(batch)
    while tx.in_flight and time.monotonic() < deadline:
        tx.complete()
    tx.complete()


def receive_round(rx: afxdp.Socket, want: int) -> list[tuple[int | None, list, int]]:
    """Receives ``want`` frames: (sequence number, [rx_timestamp, rx_hw_timestamp, rx_hash,
    the batch's rx_timestamps entry], the receiver's time.time_ns() after the batch arrived)."""
    got: list[tuple[int | None, list, int]] = []
    deadline = time.monotonic() + DEADLINE
    while len(got) < want:
        assert time.monotonic() < deadline, f"received {len(got)} of {want}"
        with rx.recv(want - len(got), timeout=0.05) as batch:
            after = time.time_ns()
            stamps = list(batch.rx_timestamps)
            for frame, stamp in zip(batch, stamps, strict=True):
                meta = [frame.rx_timestamp, frame.rx_hw_timestamp, frame.rx_hash, stamp]
                got.append((parse_numbered(memoryview(frame)), meta, after))
    return got


@modes
def test_every_redirected_packet_is_stamped_between_send_and_receive(lab, mode) -> None:
    with socket_pair(lab, mode=mode, timestamps=True) as pair:
        assert pair.prog.timestamps
        previous = 0
        for first in range(0, 10 * ROUND, ROUND):
            before = time.time_ns()
            send_round(pair.tx, numbered_run(lab, first, ROUND))
            got = receive_round(pair.rx, ROUND)
            assert [seq for seq, _, _ in got] == list(range(first, first + ROUND))
            for seq, (stamp, hw, rx_hash, in_array), after in got:
                assert stamp is not None, f"packet {seq} has no rx_timestamp"
                assert before <= stamp <= after, (seq, before, stamp, after)
                # One flow, one queue: the program saw the packets in order.
                assert stamp >= previous, (seq, previous, stamp)
                previous = stamp
                assert in_array == stamp
                # veth implements the rx metadata kfuncs only for skb-backed packets, and the
                # built-in program does not call them (docs/timestamps.md): none recorded.
                assert hw is None and rx_hash is None


@modes
def test_without_timestamps_frames_have_no_metadata(lab, mode) -> None:
    with socket_pair(lab, mode=mode) as pair:
        assert not pair.prog.timestamps
        send_round(pair.tx, numbered_run(lab, 0, ROUND))
        got = receive_round(pair.rx, ROUND)
        assert [seq for seq, _, _ in got] == list(range(ROUND))
        assert all(meta == [None, None, None, 0] for _, meta, _ in got), got


def test_a_program_without_timestamps_never_shows_an_earlier_packets_metadata(lab) -> None:
    # A small rx Umem, so the second program's packets land in frames that carried the first
    # program's metadata for packets of the same length (which the length check cannot tell).
    with socket_pair(lab, rx_frames=128, fill_size=64, rx_size=64, timestamps=True) as pair:
        for first in range(0, 8 * ROUND, ROUND):
            send_round(pair.tx, numbered_run(lab, first, ROUND))
            got = receive_round(pair.rx, ROUND)
            assert all(meta[0] is not None for _, meta, _ in got)
        pair.prog.close()
        with lab.enter("b"):
            plain = afxdp.Program.attach(lab.if_b, mode="native")
        with plain:
            plain.register(pair.rx)
            for first in range(0, 8 * ROUND, ROUND):
                send_round(pair.tx, numbered_run(lab, first, ROUND))
                got = receive_round(pair.rx, ROUND)
                assert [seq for seq, _, _ in got] == list(range(first, first + ROUND))
                stale = [(seq, meta) for seq, meta, _ in got if meta != [None, None, None, 0]]
                assert not stale, stale
