"""The frame ownership state machine (hypothesis ``RuleBasedStateMachine``) on a live veth pair.

Random sequences of the public API on one socket in namespace ``b`` (registered with the
built-in program, no rules): ``fill``, ``recv``, ``alloc``, ``write``/``write_all``/``write_at``/
``set_lengths``, ``copy_from``, ``send`` (partial sends included: the tx ring is smaller than the
UMEM), ``complete``, ``release`` (by the batch, the socket or leaving ``with``), memoryview
exports of frames and of the UMEM and their release, socket and UMEM ``close``; plus misuse:
sending or releasing a batch while a memoryview of it lives, touching a consumed batch, lengths
beyond a frame's capacity, using a closed socket. A peer in namespace ``a`` (a raw AF_PACKET
socket) injects frames for the socket to receive and records what it transmits.

The model knows where every frame is: the free pool, the kernel's side of the fill/rx rings
(``stats().filled - stats().received``), each live batch, or in flight (sent, not completed).
After every step: those add up to ``frame_count`` and each equals what the API reports
(``umem.free_frames``, ``sock.in_flight``, batch lengths, the socket's counters); no frame
(``Frame.index``) is in two batches; every frame received is one the peer injected, unchanged;
and at the end every frame sent has arrived at the peer unchanged.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, precondition, rule, run_state_machine_as_test

from prop_support import (
    FRAME_SIZE,
    INJECT_PREFIX,
    MAX_WIRE,
    WRITE_PREFIX,
    BatchModel,
    BatchRules,
    Peer,
    examples,
    open_retrying,
)

afxdp = pytest.importorskip("afxdp")

FRAMES = 48
TX_SIZE = 16  # smaller than the UMEM, so a large batch is sent in parts


class Ownership(BatchRules):
    def __init__(self, lab, prog: afxdp.Program) -> None:
        super().__init__(lab)
        self.prog = prog
        self.pool = FRAMES
        self.filled = self.received = self.sent = self.completed = 0
        self.injected: Counter[bytes] = Counter()
        self.transmitted: Counter[bytes] = Counter()
        self.sock_closed = False
        self.peer = Peer(lab)

    @initialize(autofill=st.booleans())
    def open_socket(self, autofill: bool) -> None:
        self.autofill = autofill
        self.umem = afxdp.Umem(FRAMES, FRAME_SIZE)
        with self.lab.enter("b"):
            self.sock = open_retrying(
                lambda: afxdp.Socket(
                    self.lab.if_b,
                    0,
                    umem=self.umem,
                    program=self.prog,
                    rx_size=16,
                    tx_size=TX_SIZE,
                    autofill=autofill,
                )
            )
        self.sync_counters()

    # --- helpers ---------------------------------------------------------------------------

    def stats_counters(self) -> tuple[int, int, int, int]:
        s = self.sock.stats()
        return s.filled, s.received, s.sent, s.completed

    def sync_counters(self) -> None:
        """Takes frames the library moved on its own (autofill, completions inside send) into
        the model: the pool gives what was filled and gets what was completed."""
        filled, received, sent, completed = self.stats_counters()
        assert received == self.received and sent == self.sent
        assert filled >= self.filled and completed >= self.completed
        self.pool -= filled - self.filled
        self.pool += completed - self.completed
        self.filled, self.completed = filled, completed

    # --- receiving -------------------------------------------------------------------------

    @precondition(lambda self: not self.sock_closed)
    @rule(n=st.integers(0, 64) | st.none())
    def fill(self, n: int | None) -> None:
        got = self.sock.fill(n)
        # The fill ring (64 entries) holds the whole UMEM: only the pool limits a fill.
        assert got == min(self.pool, FRAMES if n is None else n)
        self.pool -= got
        self.filled += got

    @precondition(lambda self: not self.sock_closed)
    @rule(count=st.integers(1, 8), size=st.integers(46, 300), data=st.data())
    def inject(self, count: int, size: int, data: st.DataObject) -> None:
        """The peer sends frames to the socket (dropped by the kernel when the fill ring is
        empty, so only some may arrive)."""
        for _ in range(count):
            payload = data.draw(st.binary(min_size=size, max_size=size), label="payload")
            frame = self.packet(INJECT_PREFIX, self.lab.mac_b, payload)
            self.injected[frame] += 1
            self.peer.send(frame)

    @precondition(lambda self: not self.sock_closed)
    @rule(n=st.integers(1, 64), wait=st.booleans())
    def recv(self, n: int, wait: bool) -> None:
        batch = self.sock.recv(n, timeout=0.02 if wait else 0)
        contents = [bytes(frame) for frame in batch]
        assert len(contents) <= n
        event("recv got frames" if contents else "recv got nothing")
        self.received += len(contents)
        self.sync_counters()  # autofill may have filled
        for frame in contents:
            assert self.injected[frame] > 0, f"received a frame nobody injected: {frame.hex()}"
            self.injected[frame] -= 1
        self.batches.append(BatchModel.of(batch, contents))

    # --- transmitting ------------------------------------------------------------------------

    @precondition(lambda self: not self.umem_closed)
    @rule(n=st.integers(0, 64))
    def alloc(self, n: int) -> None:
        if self.sock_closed:
            with pytest.raises(ValueError, match="closed"):
                self.sock.alloc(n)
            return
        batch = self.sock.alloc(n)
        self.sync_counters()  # alloc reclaims completed frames when the pool runs short
        assert len(batch) == min(n, self.pool)
        assert batch.lengths == [0] * len(batch)
        self.pool -= len(batch)
        self.batches.append(BatchModel.of(batch, [b""] * len(batch)))

    @precondition(lambda self: not self.sock_closed)
    @rule(n=st.integers(1, 40), size=st.integers(14, 200))
    def alloc_written(self, n: int, size: int) -> None:
        """alloc + write_all, the usual way to transmit (and a short path to partial sends)."""
        self.alloc(n)
        model = self.batches[-1]
        if model.contents:
            packet = self.packet(WRITE_PREFIX, self.lab.mac_a, bytes(size - 14))
            model.batch.write_all(packet)
            model.contents = [packet] * len(model.contents)

    @precondition(lambda self: not self.sock_closed and any(m.contents for m in self.batches))
    @rule(data=st.data())
    def send(self, data: st.DataObject) -> None:
        model = self.pick(data)
        if model.views:
            event("send refused: memoryview alive")
            with pytest.raises(BufferError):
                self.sock.send(model.batch)
            assert len(model.batch) == len(model.contents)
            return
        if any(len(c) == 0 for c in model.contents):
            event("send refused: empty frame")
            with pytest.raises(ValueError, match="empty"):
                self.sock.send(model.batch)
            assert len(model.batch) == len(model.contents)
            return
        n = self.sock.send(model.batch)
        assert 0 <= n <= min(len(model.contents), TX_SIZE)
        for packet in model.contents[:n]:
            if len(packet) <= MAX_WIRE:  # the peer's veth drops longer frames (MTU)
                self.transmitted[packet] += 1
        model.consumed(n)
        self.sent += n
        self.sync_counters()
        if model.contents:
            event("partial send")
            assert len(model.batch) == len(model.contents) and not model.batch.closed
            assert model.batch.to_list() == model.contents  # the rest, re-indexed from 0
        else:
            event("sent the whole batch")
            self.forget(model)

    @precondition(lambda self: not self.sock_closed)
    @rule(max_=st.none() | st.integers(0, 64), settle=st.booleans())
    def complete(self, max_: int | None, settle: bool) -> None:
        if settle:
            time.sleep(0.005)
        n = self.sock.complete(max_)
        assert max_ is None or n <= max_
        self.sync_counters()  # the completed counter includes n
        self.peer.drain()

    # --- releasing ---------------------------------------------------------------------------

    @precondition(lambda self: bool(self.batches))
    @rule(data=st.data(), how=st.sampled_from(["batch", "socket", "with"]))
    def release(self, data: st.DataObject, how: str) -> None:
        model = self.pick(data, empty_too=True)
        if how == "socket" and self.sock_closed:
            how = "batch"
        if model.views:
            event("release refused: memoryview alive")
            with pytest.raises(BufferError):
                if how == "batch":
                    model.batch.release()
                elif how == "socket":
                    self.sock.release(model.batch)
                else:
                    with model.batch:
                        pass
            assert len(model.batch) == len(model.contents) and not model.batch.closed
            return
        if how == "batch":
            model.batch.release()
            model.batch.release()  # idempotent
        elif how == "socket":
            self.sock.release(model.batch)
        else:
            with model.batch as same:
                assert same is model.batch
        self.pool += len(model.contents)
        self.forget(model)

    # --- closing -----------------------------------------------------------------------------

    @precondition(lambda self: not self.sock_closed)
    @rule(chance=st.integers(0, 7))
    def close_socket(self, chance: int) -> None:
        if chance:  # close late in most runs: nothing but releases is left to do afterwards
            return
        self.drain_until_sent()
        self.sync_counters()
        in_flight = self.sent - self.completed
        kernel_side = self.filled - self.received
        self.sock.close()
        self.sock.close()  # idempotent
        self.sock_closed = True
        assert self.sock.fileno() == -1
        # The frames the kernel held (fill/rx rings, in flight) return to the pool.
        self.pool += in_flight + kernel_side
        for call in (lambda: self.sock.fill(), lambda: self.sock.recv(1), self.sock.stats):
            with pytest.raises(ValueError, match="closed"):
                call()

    @precondition(lambda self: self.sock_closed and not self.umem_closed)
    @rule()
    def close_umem(self) -> None:
        self.close_umem_checked()

    @rule()
    def reprs(self) -> None:
        """Always possible (so a run can go on after everything is closed)."""
        assert ("[closed]" in repr(self.sock)) == self.sock_closed
        assert self.umem.closed == self.umem_closed

    # --- invariants --------------------------------------------------------------------------

    @invariant()
    def frames_add_up(self) -> None:
        if not hasattr(self, "sock"):
            return
        held = self.held()
        if not self.umem_closed:
            assert self.umem.free_frames == self.pool
        if self.sock_closed:
            assert self.pool + held == FRAMES
            return
        in_flight = self.sent - self.completed
        assert self.sock.in_flight == in_flight
        assert self.pool + (self.filled - self.received) + held + in_flight == FRAMES

    def drain_until_sent(self) -> None:
        """Lets the kernel finish transmitting and the peer read it (bounded wait)."""
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            self.sock.complete()
            self.peer.drain()
            if self.sock.in_flight == 0 and self.peer.arrived == self.transmitted:
                return
            time.sleep(0.005)

    def teardown(self) -> None:
        try:
            if hasattr(self, "sock") and not self.sock_closed:
                self.drain_until_sent()
                self.sync_counters()
                assert self.sock.in_flight == 0
                assert self.sock.stats().tx_invalid_descs == 0
            self.peer.drain()
            # Everything the socket transmitted arrived unchanged, and nothing else did.
            assert self.peer.arrived == self.transmitted
        finally:
            self.release_views()
            if hasattr(self, "sock"):
                self.sock.close()
                self.umem.close()
            self.peer.close()


@pytest.mark.privileged
def test_frame_ownership_state_machine(lab) -> None:
    with lab.enter("b"):
        prog = afxdp.Program.attach(lab.if_b, mode="native")
    try:
        run_state_machine_as_test(
            lambda: Ownership(lab, prog),
            settings=settings(max_examples=examples(100), stateful_step_count=40),
        )
    finally:
        prog.detach()
