"""The frame ownership state machine over one Umem behind several sockets and a Port (privileged).

The companion of ``test_prop_ownership.py`` (one socket, one Umem) for shared UMEM: one Umem of
``FRAMES`` frames backs, on a two-queue lab,

* ``b0`` and ``b1``: sockets on queues 0 and 1 of end b, registered with the built-in program,
  each with its own fill/completion ring pair; in half the runs they are the sockets of an
  ``afxdp.Port`` over the Umem (``port.recv``, ``port.send``, ``port.complete``, ``port.fill``
  and ``port.close`` join the rules);
* ``b0+``: a second socket on queue 0 of end b, sharing ``b0``'s fill and completion rings;
  unregistered until a rule moves queue 0's registration to it;
* ``a1``: a transmit-only socket on queue 1 of end a, in the other namespace, with a ring pair of
  its own: what it sends arrives on end b's queue 1, into frames of the same Umem.

A transmit-only socket of another Umem on end a's queue 0 injects frames into end b's queue 0,
and a raw AF_PACKET socket on end a injects through end a's stack (whichever queue that picks)
and records what end b's sockets transmit.

The rules: fill any socket's ring pair, recv on any socket (or the Port), alloc on any socket,
send a batch on any socket (one received on ``b0`` out of ``b1`` or ``a1``: zero-copy forwarding,
the same UMEM frames), complete per socket, release (by the batch, by any socket of the Umem, or
leaving ``with``), the batch edits and memoryview exports of ``prop_support.BatchRules``
(``copy_from`` between batches of different sockets included), moving queue 0's registration,
closing one socket while the others stay open, closing the Port, closing the Umem. Misuse:
sending a consumed batch, sending or releasing a batch of another Umem, sending or releasing
while a memoryview lives, ``port.send`` of an allocated batch, receiving on a socket without an
rx ring, using a closed socket or Port: each raises the documented exception and moves nothing.

The model knows where every frame is: the free pool, the kernel's side of each ring pair P (on
P's fill ring or on the rx ring of one of P's sockets: what P's sockets filled minus what they
received), each live batch, or in flight through P (sent by one of P's sockets, not completed).
After every step: those add up to ``frame_count``; the pool is ``umem.free_frames``, each open
socket's ``in_flight`` is its pair's and its counters are the model's; the Port's ``in_flight``
is its pairs' sum; every batch holds exactly the frames (``Frame.index``) and bytes the model
gives it, and no frame is in two batches. Every frame received is one sent to that queue,
unchanged; at the end every frame end b transmitted has reached end a unchanged, and once
everything is closed and released every frame is back in the pool.

Closing a socket while another of its (interface, queue) stays open: as the README says, the
frames it had on its rx or tx ring come back only when the last socket of that (interface,
queue) closes. The model keeps them where the frame table does (the pair's fill side and in
flight), the frames the kernel never took from its tx ring never reach the wire, and its pair's
``in_flight`` stays at least that count until the pair closes.
"""

from __future__ import annotations

import time
import warnings
from collections import Counter
from dataclasses import dataclass, field

import pytest
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, precondition, rule, run_state_machine_as_test

from prop_support import (
    FRAME_SIZE,
    INJECT_PREFIX,
    MAX_WIRE,
    BatchModel,
    BatchRules,
    Peer,
    examples,
    open_retrying,
)

afxdp = pytest.importorskip("afxdp")

FRAMES = 64
RING = 16  # rx and tx rings: smaller than the UMEM, so a large batch is sent in parts
FILL = 64  # fill rings hold the whole UMEM: only the pool limits a fill
SEND_TIMEOUT = 2.0


@dataclass
class SockModel:
    """One socket of the Umem and the counters the model expects of it."""

    name: str
    sock: afxdp.Socket
    pair: str  # its fill/completion ring pair: the first socket's name on that (interface, queue)
    side: str  # lab end
    queue: int
    rx: bool
    in_port: bool = False
    closed: bool = False
    filled: int = 0
    received: int = 0
    sent: int = 0
    completed: int = 0
    #: The last packets sent (at most a tx ring's worth), and where each was expected to arrive:
    #: the frames still on the tx ring when the socket closes never leave.
    recent: list[tuple[bytes, Counter[bytes] | None]] = field(default_factory=list)


class SharedOwnership(BatchRules):
    def __init__(self, lab, prog: afxdp.Program, injector: afxdp.Socket) -> None:
        super().__init__(lab)
        self.prog, self.injector = prog, injector
        self.pool = FRAMES
        self.socks: list[SockModel] = []
        self.port: afxdp.Port | None = None
        self.port_closed = False
        self.fill_side: Counter[str] = Counter()  # per pair: on its fill ring or an rx ring
        self.in_flight: Counter[str] = Counter()  # per pair: sent, not completed
        self.stranded: Counter[str] = Counter()  # per pair: left on a closed socket's tx ring
        #: What may arrive on end b's queue q (counted by content): injected frames on queue 0,
        #: frames a1 sends on queue 1.
        self.expected: list[Counter[bytes]] = [Counter(), Counter()]
        self.expected_any: Counter[bytes] = Counter()  # sent through end a's stack: any queue
        self.transmitted: Counter[bytes] = Counter()  # what end b's sockets sent to end a
        self.ended: list[afxdp.FrameBatch] = []  # a few consumed batches, for misuse
        self.peer = Peer(lab)

    @initialize(use_port=st.booleans(), autofill=st.lists(st.booleans(), min_size=3, max_size=3))
    def open_sockets(self, use_port: bool, autofill: list[bool]) -> None:
        self.umem = afxdp.Umem(FRAMES, FRAME_SIZE)
        rings = {"rx_size": RING, "tx_size": RING, "fill_size": FILL}
        lab = self.lab
        with lab.enter("b"):
            if use_port:
                self.port = port = open_retrying(
                    lambda: afxdp.Port(
                        lab.if_b,
                        [0, 1],
                        umem=self.umem,
                        program=self.prog,
                        autofill=autofill[0],
                        **rings,
                    )
                )
                b0, b1 = port[0], port[1]
            else:
                b0, b1 = (
                    open_retrying(
                        lambda q=q: afxdp.Socket(
                            lab.if_b,
                            q,
                            umem=self.umem,
                            program=self.prog,
                            autofill=autofill[q],
                            **rings,
                        )
                    )
                    for q in (0, 1)
                )
            self.add(SockModel("b0", b0, "b0", "b", 0, True, in_port=use_port))
            self.add(SockModel("b1", b1, "b1", "b", 1, True, in_port=use_port))
            shared = afxdp.Socket(lab.if_b, 0, umem=self.umem, autofill=autofill[2], **rings)
            self.add(SockModel("b0+", shared, "b0", "b", 0, True))
        with lab.enter("a"):
            a1 = open_retrying(
                lambda: afxdp.Socket(
                    lab.if_a,
                    1,
                    umem=self.umem,
                    rx_size=0,
                    tx_size=RING,
                    fill_size=FILL,
                    autofill=False,
                )
            )
            self.add(SockModel("a1", a1, "a1", "a", 1, False))
        assert b0.shares_fill_ring and shared.shares_fill_ring
        assert not b1.shares_fill_ring and not a1.shares_fill_ring
        assert b0.registered and b1.registered and not shared.registered
        self.sync()

    # --- helpers ---------------------------------------------------------------------------

    def add(self, s: SockModel) -> None:
        self.socks.append(s)

    def open_socks(self) -> list[SockModel]:
        return [s for s in self.socks if not s.closed]

    def pick_sock(self, data: st.DataObject, *, closed_too: bool = False) -> SockModel:
        choices = self.socks if closed_too else self.open_socks()
        return data.draw(st.sampled_from(choices), label="socket")

    def port_open(self) -> bool:
        return self.port is not None and not self.port_closed

    def sync(self) -> None:
        """Takes the frames the library moved on its own (autofill in recv and at creation,
        completions inside alloc and send) into the model: every open socket's counters. What
        the model did itself (received, sent) must match exactly."""
        for s in self.open_socks():
            st_ = s.sock.stats()
            assert (st_.received, st_.sent) == (s.received, s.sent), s.name
            assert st_.filled >= s.filled and st_.completed >= s.completed, s.name
            filled, completed = st_.filled - s.filled, st_.completed - s.completed
            self.pool += completed - filled
            self.fill_side[s.pair] += filled
            self.in_flight[s.pair] -= completed
            s.filled, s.completed = st_.filled, st_.completed

    def by_queue(self, queue: int) -> SockModel:
        """The Port's socket of `queue`."""
        return next(s for s in self.socks if s.in_port and s.queue == queue)

    def take_received(self, s: SockModel, batch: afxdp.FrameBatch, n: int) -> None:
        contents = [bytes(frame) for frame in batch]
        assert len(contents) <= n
        event("recv got frames" if contents else "recv got nothing")
        for frame in contents:
            expected = self.expected[s.queue]
            if expected[frame] <= 0:
                expected = self.expected_any
            assert expected[frame] > 0, f"{s.name} received a frame nobody sent: {frame.hex()}"
            expected[frame] -= 1
        s.received += len(contents)
        self.fill_side[s.pair] -= len(contents)
        self.batches.append(BatchModel.of(batch, contents, queue=s.queue))

    def drain_tx(self, s: SockModel) -> None:
        """Lets the kernel take everything from the socket's tx ring (bounded)."""
        deadline = time.monotonic() + SEND_TIMEOUT
        while s.sock.tx_pending and time.monotonic() < deadline:
            s.sock.complete()
            time.sleep(0.001)

    def closing(self, s: SockModel) -> int:
        """Before closing `s`: syncs and returns how many frames wait on its tx ring."""
        self.sync()
        return s.sock.tx_pending

    def closed(self, s: SockModel, left_on_tx: int) -> None:
        """`s` was closed with `left_on_tx` frames the kernel never took from its tx ring."""
        s.closed = True
        assert s.sock.closed and s.sock.fileno() == -1
        for packet, where in s.recent[len(s.recent) - left_on_tx :]:
            if where is not None:  # it never left: expect it nowhere
                where[packet] -= 1
        if any(o.pair == s.pair for o in self.open_socks()):
            # The pair lives on: the frames on s's rings stay where the frame table has them.
            self.stranded[s.pair] += left_on_tx
            if left_on_tx:
                event("closed a sharing socket with frames on its tx ring")
        else:
            # The last socket of its (interface, queue): the kernel let go of everything.
            self.pool += self.fill_side[s.pair] + self.in_flight[s.pair]
            self.fill_side[s.pair] = self.in_flight[s.pair] = self.stranded[s.pair] = 0
        for call in (lambda: s.sock.fill(), lambda: s.sock.alloc(1), s.sock.stats):
            with pytest.raises(ValueError, match="closed"):
                call()

    def consumed(self, model: BatchModel) -> None:
        self.forget(model)
        self.ended = [*self.ended[-3:], model.batch]

    # --- receiving -------------------------------------------------------------------------

    @precondition(lambda self: bool(self.open_socks()))
    @rule(data=st.data(), n=st.integers(0, 64) | st.none())
    def fill(self, data: st.DataObject, n: int | None) -> None:
        s = self.pick_sock(data)
        got = s.sock.fill(n)
        assert got == min(self.pool, FRAMES if n is None else n)
        self.pool -= got
        self.fill_side[s.pair] += got
        s.filled += got
        self.sync()

    @rule(
        count=st.integers(1, 8),
        size=st.integers(46, 300),
        stack=st.booleans(),
        data=st.data(),
    )
    def inject(self, count: int, size: int, stack: bool, data: st.DataObject) -> None:
        """End a sends frames to end b: through its stack (the raw socket; the queue they reach
        is the stack's choice), or through the injector (another Umem, end a's queue 0, so end
        b's queue 0). The kernel drops them when the registered socket's fill ring is empty,
        and passes them to end b's stack when no socket is registered for the queue."""
        packets = []
        for _ in range(count):
            payload = data.draw(st.binary(min_size=size, max_size=size), label="payload")
            packets.append(self.packet(INJECT_PREFIX, self.lab.mac_b, payload))
        if stack:
            for packet in packets:
                self.expected_any[packet] += 1
                self.peer.send(packet)
            return
        deadline = time.monotonic() + SEND_TIMEOUT
        with self.injector.alloc(count) as batch:
            assert len(batch) == count
            for frame, packet in zip(batch, packets, strict=True):
                frame.write(packet)
                self.expected[0][packet] += 1
            while not batch.closed and time.monotonic() < deadline:
                self.injector.send(batch)
                self.injector.complete()
            assert batch.closed, "the injector could not send"
        while self.injector.in_flight and time.monotonic() < deadline:
            self.injector.complete()
            time.sleep(0.001)

    @precondition(lambda self: any(s.rx for s in self.open_socks()))
    @rule(data=st.data(), n=st.integers(1, 64), wait=st.booleans())
    def recv(self, data: st.DataObject, n: int, wait: bool) -> None:
        s = data.draw(st.sampled_from([s for s in self.open_socks() if s.rx]), label="socket")
        batch = s.sock.recv(n, timeout=0.02 if wait else 0)
        assert batch.queue == s.queue
        self.take_received(s, batch, n)
        self.sync()  # autofill may have filled

    @precondition(lambda self: self.port is not None)
    @rule(n=st.integers(1, 64), wait=st.booleans())
    def port_recv(self, n: int, wait: bool) -> None:
        assert self.port is not None
        if self.port_closed:
            with pytest.raises(ValueError, match="closed"):
                self.port.recv(n)
            return
        batch = self.port.recv(n, timeout=0.02 if wait else 0)
        if len(batch):
            assert batch.queue in (0, 1)
            self.take_received(self.by_queue(batch.queue), batch, n)
        else:
            batch.release()
        self.sync()  # every queue's recv may have filled

    # --- transmitting ------------------------------------------------------------------------

    @precondition(lambda self: not self.umem_closed)
    @rule(data=st.data(), n=st.integers(0, 64))
    def alloc(self, data: st.DataObject, n: int) -> None:
        s = self.pick_sock(data, closed_too=True)
        if s.closed:
            with pytest.raises(ValueError, match="closed"):
                s.sock.alloc(n)
            return
        batch = s.sock.alloc(n)
        self.sync()  # alloc reclaims completed frames when the pool runs short
        assert len(batch) == min(n, self.pool)
        assert batch.lengths == [0] * len(batch) and batch.queue is None
        self.pool -= len(batch)
        self.batches.append(BatchModel.of(batch, [b""] * len(batch)))

    @precondition(lambda self: bool(self.open_socks()))
    @rule(data=st.data(), n=st.integers(1, 40), size=st.integers(14, 200))
    def alloc_written(self, data: st.DataObject, n: int, size: int) -> None:
        """alloc + write_all, the usual way to transmit (and a short path to partial sends)."""
        before = len(self.batches)
        self.alloc(data, n)
        if len(self.batches) > before and self.batches[-1].contents:
            model = self.batches[-1]
            packet = self.packet(b"\x02\x5c", self.lab.mac_a, bytes(size - 14))
            model.batch.write_all(packet)
            model.contents = [packet] * len(model.contents)

    @precondition(lambda self: bool(self.open_socks()) and any(m.contents for m in self.batches))
    @rule(data=st.data())
    def send(self, data: st.DataObject) -> None:
        """A batch out of any socket of the Umem: a received one out of another socket is
        zero-copy forwarding (its frames go to the tx ring where they are)."""
        model, s = self.pick(data), self.pick_sock(data)
        self.transmit(model, s, s.sock.send)

    @precondition(lambda self: self.port_open() and any(m.contents for m in self.batches))
    @rule(data=st.data())
    def port_send(self, data: st.DataObject) -> None:
        """``port.send``: a received batch out of its own queue; an allocated one is refused."""
        assert self.port is not None
        model = self.pick(data)
        if model.queue is None:
            event("port.send refused: no queue")
            with pytest.raises(ValueError, match="no queue"):
                self.port.send(model.batch)
            return
        s = self.by_queue(model.queue)
        if s.closed:  # port[q].close() alone: the Port cannot send there any more
            with pytest.raises(BufferError if model.views else ValueError):
                self.port.send(model.batch)
            return
        self.transmit(model, s, self.port.send)

    def transmit(self, model: BatchModel, s: SockModel, send) -> None:
        before = (model.batch.to_list(), model.batch.indices.tolist())
        if model.views:
            event("send refused: memoryview alive")
            with pytest.raises(BufferError):
                send(model.batch)
            assert (model.batch.to_list(), model.batch.indices.tolist()) == before
            return
        if any(len(c) == 0 for c in model.contents):
            event("send refused: empty frame")
            with pytest.raises(ValueError, match="empty"):
                send(model.batch)
            assert (model.batch.to_list(), model.batch.indices.tolist()) == before
            return
        n = send(model.batch)
        assert 0 <= n <= min(len(model.contents), RING)
        for packet in model.contents[:n]:
            # Longer than the lab's MTU: the receiving veth drops it.
            where = None
            if len(packet) <= MAX_WIRE:
                where = self.transmitted if s.side == "b" else self.expected[s.queue]
                where[packet] += 1
            s.recent.append((packet, where))
        del s.recent[:-RING]
        if (model.queue is not None and model.queue != s.queue) or s.side == "a":
            event("forwarded across sockets")
        model.consumed(n)
        s.sent += n
        self.in_flight[s.pair] += n
        self.sync()
        if model.contents:
            event("partial send")
            assert not model.batch.closed
            assert model.batch.to_list() == model.contents  # the rest, re-indexed from 0
        else:
            self.consumed(model)

    @precondition(lambda self: bool(self.open_socks()))
    @rule(data=st.data(), max_=st.none() | st.integers(0, 64), settle=st.booleans())
    def complete(self, data: st.DataObject, max_: int | None, settle: bool) -> None:
        s = self.pick_sock(data)
        if settle:
            time.sleep(0.005)
        n = s.sock.complete(max_)
        assert max_ is None or n <= max_
        self.sync()
        self.peer.drain()

    @precondition(lambda self: self.port_open())
    @rule(what=st.sampled_from(["complete", "fill"]))
    def port_all_queues(self, what: str) -> None:
        assert self.port is not None
        pool = self.pool
        if what == "complete":
            self.port.complete()
        else:
            # Each queue's fill ring takes what the pool has: the first open one takes it all.
            open_queues = any(s.in_port for s in self.open_socks())
            assert self.port.fill() == (pool if open_queues else 0)
        self.sync()

    # --- releasing ---------------------------------------------------------------------------

    @precondition(lambda self: bool(self.batches))
    @rule(data=st.data(), how=st.sampled_from(["batch", "socket", "with"]))
    def release(self, data: st.DataObject, how: str) -> None:
        """Released by the batch, by any open socket of the Umem (one frame table), or by
        leaving ``with``; releasing again is a no-op."""
        model = self.pick(data, empty_too=True)
        socks = self.open_socks()
        if how == "socket" and not socks:
            how = "batch"

        def release() -> None:
            if how == "batch":
                model.batch.release()
            elif how == "socket":
                data.draw(st.sampled_from(socks), label="via").sock.release(model.batch)
            else:
                with model.batch as same:
                    assert same is model.batch

        if model.views:
            event("release refused: memoryview alive")
            with pytest.raises(BufferError):
                release()
            assert len(model.batch) == len(model.contents) and not model.batch.closed
            return
        release()
        release()  # idempotent
        self.pool += len(model.contents)
        self.consumed(model)

    # --- misuse ------------------------------------------------------------------------------

    @precondition(lambda self: bool(self.open_socks()))
    @rule(data=st.data(), what=st.sampled_from(["consumed", "foreign", "no rx ring"]))
    def misuse(self, data: st.DataObject, what: str) -> None:
        """Sending a consumed batch; sending or releasing a batch of another Umem (the
        injector's); receiving on a socket without an rx ring (a1). Each raises and moves
        nothing (the invariants check)."""
        s = self.pick_sock(data)
        if what == "consumed" and self.ended:
            batch = data.draw(st.sampled_from(self.ended), label="ended")
            with pytest.raises(ValueError, match=r"FrameBatch was (sent|released)"):
                s.sock.send(batch)
        elif what == "no rx ring" and not s.rx:
            with pytest.raises(ValueError, match="rx_size"):
                s.sock.recv(1)
        elif what == "foreign":
            with self.injector.alloc(1) as alien:
                alien[0].write(self.packet(INJECT_PREFIX, self.lab.mac_a, bytes(46)))
                with pytest.raises(ValueError, match="another Umem"):
                    s.sock.send(alien)
                with pytest.raises(ValueError, match="another UMEM"):
                    s.sock.release(alien)
                assert len(alien) == 1 and not alien.closed
        else:
            return
        event(f"misuse: {what}")

    # --- registration and closing --------------------------------------------------------------

    @precondition(lambda self: any(s.queue == 0 and s.side == "b" for s in self.open_socks()))
    @rule(data=st.data())
    def register_queue0(self, data: st.DataObject) -> None:
        """Moves end b's queue 0 to b0 or b0+ (the program keys its XSKMAP by queue)."""
        choices = [s for s in self.open_socks() if s.queue == 0 and s.side == "b"]
        s = data.draw(st.sampled_from(choices), label="register")
        self.prog.register(s.sock)
        assert s.sock.registered
        for other in choices:
            assert other.sock.registered == (other is s)

    @precondition(lambda self: bool(self.open_socks()))
    @rule(data=st.data(), chance=st.integers(0, 11), drain=st.booleans())
    def close_socket(self, data: st.DataObject, chance: int, drain: bool) -> None:
        """Closes one socket (a Port's too) while the others stay open; with ``drain`` the
        kernel takes its tx ring first, without it frames may be left there."""
        if chance:  # close late in most runs
            return
        s = self.pick_sock(data)
        if drain:
            self.drain_tx(s)
        left = self.closing(s)
        s.sock.close()
        s.sock.close()  # idempotent
        self.closed(s, left)

    @precondition(lambda self: self.port_open())
    @rule(chance=st.integers(0, 7))
    def close_port(self, chance: int) -> None:
        if chance:
            return
        assert self.port is not None
        members = [s for s in self.open_socks() if s.in_port]
        left = [self.closing(s) for s in members]
        self.port.close()
        self.port.close()  # idempotent
        self.port_closed = True
        assert self.port.closed and self.port.fileno() == -1
        for s, n in reversed(list(zip(members, left, strict=True))):  # the order Port.close uses
            self.closed(s, n)
        for call in (self.port.recv, self.port.complete, self.port.fill):
            with pytest.raises(ValueError, match="closed"):
                call()

    @precondition(lambda self: not self.open_socks() and not self.umem_closed)
    @rule()
    def close_umem(self) -> None:
        self.close_umem_checked()

    @rule()
    def reprs(self) -> None:
        """Always possible (so a run can go on after everything is closed)."""
        for s in self.socks:
            assert ("[closed]" in repr(s.sock)) == s.closed
        assert self.umem.closed == self.umem_closed

    # --- invariants --------------------------------------------------------------------------

    @invariant()
    def frames_add_up(self) -> None:
        if not self.socks:
            return
        if not self.umem_closed:
            assert self.umem.free_frames == self.pool
        for s in self.open_socks():
            assert s.sock.in_flight == self.in_flight[s.pair], s.name
            st_ = s.sock.stats()  # nothing moved that the model does not know of
            assert (st_.filled, st_.received, st_.sent, st_.completed) == (
                s.filled,
                s.received,
                s.sent,
                s.completed,
            ), s.name
        if self.port_open():
            assert self.port is not None
            pairs = {s.pair for s in self.open_socks() if s.in_port}
            assert self.port.in_flight == sum(self.in_flight[p] for p in pairs)
            with warnings.catch_warnings():  # a closed port socket leaves its queue unserved
                warnings.simplefilter("ignore", RuntimeWarning)
                assert self.port.stats().received == sum(
                    s.received for s in self.open_socks() if s.in_port
                )
        for counts in (self.fill_side, self.in_flight, self.stranded):
            assert min(counts.values(), default=0) >= 0
        assert all(self.in_flight[p] >= self.stranded[p] for p in self.stranded)
        kernel = sum(self.fill_side.values()) + sum(self.in_flight.values())
        assert self.pool + kernel + self.held() == FRAMES

    def drain_until_sent(self) -> None:
        """Lets the kernel finish transmitting and the peer read it (bounded wait): every open
        pair's in_flight down to what closed sockets left on their tx rings."""
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            for s in self.open_socks():
                s.sock.complete()
            self.sync()
            self.peer.drain()
            pairs = {s.pair for s in self.open_socks()}
            if (
                all(self.in_flight[p] == self.stranded[p] for p in pairs)
                and self.peer.arrived == +self.transmitted
            ):
                return
            time.sleep(0.005)

    def teardown(self) -> None:
        try:
            if not self.socks:
                return
            self.drain_until_sent()
            for s in self.open_socks():
                assert s.sock.in_flight == self.stranded[s.pair], s.name
                assert s.sock.stats().tx_invalid_descs == 0, s.name
            self.peer.drain()
            # Everything end b transmitted arrived unchanged, and nothing else did.
            assert self.peer.arrived == +self.transmitted
            # Once every batch is released and every socket closed, every frame is free.
            self.release_views()
            for model in list(self.batches):
                model.batch.release()
                self.pool += len(model.contents)
                self.batches.remove(model)
            if self.port is not None:
                self.port.close()
            for s in reversed(self.socks):
                s.sock.close()
            if not self.umem_closed:
                assert self.umem.free_frames == FRAMES
        finally:
            self.release_views()
            if self.port is not None:
                self.port.close()
            for s in reversed(self.socks):
                s.sock.close()
            if hasattr(self, "umem"):
                self.umem.close()
            self.peer.close()


@pytest.mark.privileged
def test_shared_umem_ownership_state_machine(lab_factory) -> None:
    lab = lab_factory(queues=2)
    with lab.enter("b"):
        prog = afxdp.Program.attach(lab.if_b, mode="native")
    with lab.enter("a"):
        injector = afxdp.Socket(lab.if_a, 0, umem=afxdp.Umem(256, FRAME_SIZE), rx_size=0)
    try:
        run_state_machine_as_test(
            lambda: SharedOwnership(lab, prog, injector),
            settings=settings(max_examples=examples(150), stateful_step_count=50),
        )
    finally:
        injector.close()
        prog.detach()
