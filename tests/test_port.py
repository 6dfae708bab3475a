"""afxdp.Port: a socket on every rx queue of an interface over one Umem (privileged).

The labs use veth pairs with several queues and native XDP, where an AF_XDP socket sending on
queue q of one end reaches rx queue q of the peer (NOTES.md): the senders are tx sockets of one
Umem on end a, one per queue, so the test knows which queue every frame arrives on. Every loop
has a deadline.
"""

from __future__ import annotations

import errno
import itertools
import selectors
import struct
import threading
import time
import warnings
from contextlib import ExitStack

import pytest

afxdp = pytest.importorskip("afxdp")

from afxdp.testing import numbered_frame, parse_numbered  # noqa: E402

pytestmark = pytest.mark.privileged

#: Sequence numbers of queue q start at q * STRIDE, so a frame says which queue it was sent to.
STRIDE = 1_000_000


def senders(lab, stack: ExitStack, queues: int) -> list[afxdp.Socket]:
    """A tx-only socket per queue of end a, all over one Umem."""
    with lab.enter("a"):
        umem = afxdp.Umem(4096, 2048)
        return [
            stack.enter_context(afxdp.Socket(lab.if_a, q, umem=umem, rx_size=0))
            for q in range(queues)
        ]


def send(tx: afxdp.Socket, seqs: list[int], lab, timeout: float = 5.0) -> None:
    sent = 0
    deadline = time.monotonic() + timeout
    while sent < len(seqs):
        assert time.monotonic() < deadline, f"send stalled after {sent} of {len(seqs)}"
        with tx.alloc(min(64, len(seqs) - sent)) as batch:
            for i, frame in enumerate(batch):
                frame.write(numbered_frame(seqs[sent + i], 64, lab.mac_a, lab.mac_b))
            sent += tx.send(batch)
        tx.complete()
    while tx.in_flight and time.monotonic() < deadline:
        tx.complete()
        time.sleep(0.001)


@pytest.mark.parametrize("queues", [2, 4])
def test_frames_into_every_queue_arrive_through_one_port(lab_factory, queues: int) -> None:
    lab = lab_factory(queues=queues)
    per_queue = 600
    with ExitStack() as stack:
        tx = senders(lab, stack, queues)
        with lab.enter("b"):
            port = stack.enter_context(afxdp.Port(lab.if_b, mode="native"))
        assert port.queues == list(range(queues)) and len(port) == queues
        assert [s.queue for s in port.sockets] == port.queues
        assert all(port[q].umem is port.umem for q in port.queues)
        assert all(port[q].registered for q in port.queues)
        # Interleaved, so every queue has frames waiting at once.
        for start in range(0, per_queue, 200):
            for q in range(queues):
                send(tx[q], [q * STRIDE + i for i in range(start, start + 200)], lab)
        got: dict[int, list[int]] = {q: [] for q in range(queues)}
        total = 0
        deadline = time.monotonic() + 5
        while total < queues * per_queue and time.monotonic() < deadline:
            with port.recv(64, timeout=0.1) as batch:
                seqs = [parse_numbered(memoryview(f)) for f in batch]
                for seq in seqs:
                    assert seq is not None, "a damaged frame"
                    assert seq // STRIDE == batch.queue, f"frame {seq} reported on {batch.queue}"
                if seqs:
                    got[batch.queue] += seqs
                    total += len(seqs)
        for q in range(queues):
            assert got[q] == [q * STRIDE + i for i in range(per_queue)], f"queue {q}"
        stats = port.stats(per_queue=True)
        assert sorted(stats) == port.queues
        assert [stats[q].received for q in port.queues] == [per_queue] * queues
        assert port.stats().received == queues * per_queue
        assert sum(stats[q].rx_dropped for q in port.queues) == port.stats().rx_dropped == 0


def test_no_queue_starves_while_another_is_flooded(lab_factory) -> None:
    """Queue 0 has a backlog of 1500 frames, queue 1 of 160: queue 1 is served every other
    batch, so it is drained after at most one queue-0 batch per queue-1 batch."""
    lab = lab_factory(queues=2)
    with ExitStack() as stack:
        tx = senders(lab, stack, 2)
        with lab.enter("b"):
            port = stack.enter_context(afxdp.Port(lab.if_b, mode="native"))
        send(tx[0], list(range(1500)), lab)
        send(tx[1], [STRIDE + i for i in range(160)], lab)
        order: list[int] = []
        left_on_1 = 160
        deadline = time.monotonic() + 5
        while left_on_1 and time.monotonic() < deadline:
            with port.recv(16, timeout=0.1) as batch:
                if len(batch):
                    order.append(batch.queue)
                    if batch.queue == 1:
                        left_on_1 -= len(batch)
        assert left_on_1 == 0
        assert order.count(1) == 10
        assert order.count(0) <= order.count(1) + 1, order
        assert all(a != b for a, b in itertools.pairwise(order)), order


THREADS = 1_000_000


@pytest.mark.slow
def test_one_thread_per_queue_receives_and_sends(lab_factory) -> None:
    """End b: a Port, one thread per queue receiving on its socket and sending the same frames
    back out (MACs swapped). End a: a Port too, one thread per queue sending its numbered range
    with flow control and receiving the echoes. 10^6 frames, each back exactly once, intact;
    every frame back in its Umem at the end (none left in two places or lost)."""
    lab = lab_factory(queues=2)
    lock = threading.Lock()
    echoed: list[list[int | None]] = [[], []]
    errors: list[BaseException] = []
    stop = threading.Event()
    per_queue = THREADS // 2
    window = 512
    deadline = time.monotonic() + 120

    with ExitStack() as stack:
        with lab.enter("a"):
            port_a = stack.enter_context(afxdp.Port(lab.if_a, mode="native"))
        with lab.enter("b"):
            port_b = stack.enter_context(afxdp.Port(lab.if_b, mode="native"))

        def sender(q: int) -> None:
            try:
                sock, sent, mine = port_a[q], 0, echoed[q]
                while len(mine) < per_queue and time.monotonic() < deadline:
                    room = window - (sent - len(mine))
                    if sent < per_queue and room > 0:
                        with sock.alloc(min(64, room, per_queue - sent)) as batch:
                            for i, frame in enumerate(batch):
                                seq = q * STRIDE + sent + i
                                frame.write(numbered_frame(seq, 64, lab.mac_a, lab.mac_b))
                            sent += sock.send(batch)
                    sock.complete()
                    with sock.recv(64, timeout=0.002) as batch:
                        assert batch.queue in (None, q) or not len(batch)
                        got = [parse_numbered(memoryview(f)) for f in batch]
                    with lock:
                        mine += got
            except BaseException as exc:
                errors.append(exc)

        def echo(q: int) -> None:
            try:
                sock = port_b[q]
                while not stop.is_set() and time.monotonic() < deadline:
                    batch = sock.recv(64, timeout=0.01)
                    if len(batch):
                        assert batch.queue == q
                        batch.swap_macs()
                        while not batch.closed and time.monotonic() < deadline:
                            sock.send(batch)
                            sock.complete()
                    sock.complete()
            except BaseException as exc:
                errors.append(exc)

        echoes = [threading.Thread(target=echo, args=(q,)) for q in (0, 1)]
        sends = [threading.Thread(target=sender, args=(q,)) for q in (0, 1)]
        start = time.monotonic()
        for t in echoes + sends:
            t.start()
        for t in sends:
            t.join(130)
        stop.set()
        for t in echoes:
            t.join(10)
        elapsed = time.monotonic() - start
        assert not any(t.is_alive() for t in echoes + sends), "a thread hung"
        assert not errors, errors
        for q in (0, 1):
            assert len(echoed[q]) == per_queue, f"queue {q}: {len(echoed[q])} of {per_queue}"
            assert echoed[q] == [q * STRIDE + i for i in range(per_queue)], f"queue {q}"
        print(f"{THREADS} frames echoed in {elapsed:.1f} s")
        umems = (port_a.umem, port_b.umem)
    assert all(u.free_frames == u.frame_count for u in umems)


def test_closing_the_port_wakes_waiting_threads(lab_factory) -> None:
    lab = lab_factory(queues=2)
    with lab.enter("b"):
        port = afxdp.Port(lab.if_b, mode="native")
    outcome: list[tuple[str, float]] = []

    def wait(target) -> None:
        try:
            target.recv(64, timeout=None)
            outcome.append(("returned", time.monotonic()))
        except ValueError as exc:
            outcome.append((str(exc), time.monotonic()))

    threads = [threading.Thread(target=wait, args=(port,)) for _ in range(2)]
    threads.append(threading.Thread(target=wait, args=(port[1],)))
    for t in threads:
        t.start()
    time.sleep(0.3)
    assert not outcome, "a waiter returned before close"
    closed_at = time.monotonic()
    port.close()
    for t in threads:
        t.join(5)
    assert not any(t.is_alive() for t in threads), "a waiter was not woken by close()"
    assert len(outcome) == 3
    for message, at in outcome:
        assert "closed" in message, message
        assert at - closed_at < 1.0
    assert port.closed and port.fileno() == -1
    assert not port.program.attached, "the program the Port attached is detached"
    assert all(s.closed for s in port.sockets)
    port.close()  # idempotent


def test_fileno_is_readable_when_any_queue_has_frames(lab_factory) -> None:
    lab = lab_factory(queues=2)
    with ExitStack() as stack:
        tx = senders(lab, stack, 2)
        with lab.enter("b"):
            port = stack.enter_context(afxdp.Port(lab.if_b, mode="native"))
        with selectors.DefaultSelector() as selector:
            selector.register(port, selectors.EVENT_READ)
            assert selector.select(0) == []
            send(tx[1], [STRIDE + i for i in range(5)], lab)
            assert len(selector.select(2.0)) == 1
            batch = port.recv(64)
            assert batch.queue == 1 and len(batch) == 5
            batch.release()
            assert selector.select(0) == []


def test_traffic_on_a_queue_without_a_socket_is_reported(lab_factory) -> None:
    lab = lab_factory(queues=2)
    with ExitStack() as stack:
        tx = senders(lab, stack, 2)
        with lab.enter("b"):
            port = stack.enter_context(afxdp.Port(lab.if_b, [0], mode="native"))
        assert port.queues == [0]
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            port.stats()  # nothing to report yet
        send(tx[1], [STRIDE + i for i in range(7)], lab)
        send(tx[0], list(range(3)), lab)
        with pytest.warns(RuntimeWarning, match="traffic on queue 1 .* has no socket: 7 packet"):
            total = port.stats()
        assert port.program.no_socket_counts()[:2] == [0, 7]
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            port.stats()  # reported once, until more arrives
        batch = port.recv(64, timeout=1)
        assert batch.queue == 0 and len(batch) == 3
        assert total.received == 0 and port.stats().received == 3


def test_port_arguments_and_misuse(lab_factory) -> None:
    lab = lab_factory(queues=2)
    with ExitStack() as stack, lab.enter("b"):
        with pytest.raises(ValueError, match="queue 2 out of range"):
            afxdp.Port(lab.if_b, [2])
        with pytest.raises(ValueError, match="listed twice"):
            afxdp.Port(lab.if_b, [1, 1])
        with pytest.raises(ValueError, match="at least one queue"):
            afxdp.Port(lab.if_b, [])
        with pytest.raises(ValueError, match="needs at least 4 frames"):
            afxdp.Port(lab.if_b, umem=afxdp.Umem(3, 2048))
        with pytest.raises(TypeError, match="queue="):
            afxdp.Port(lab.if_b, queue=1)
        prog = stack.enter_context(afxdp.Program.attach(lab.if_b, mode="native"))
        with pytest.raises(ValueError, match="rules and mode"):
            afxdp.Port(lab.if_b, program=prog, mode="generic")
        umem = afxdp.Umem(1024, 2048)
        with afxdp.Port(lab.if_b, program=prog, umem=umem, rx_size=256) as port:
            assert port.program is prog and port.umem is umem
            assert all(s.registered for s in port.sockets)
            assert port[0].fill_target == 256  # 1024 frames / (2 queues * 2)
            with pytest.raises(KeyError, match="queue 5"):
                port[5]
            batch = port[0].alloc(1)
            with pytest.raises(ValueError, match="no queue"):
                port.send(batch)
            batch.release()
            assert "afxdp.Port" in repr(port)
        # The given program stays attached (the Port only took its sockets out).
        assert prog.attached
        assert port.closed and "[closed]" in repr(port)
        with pytest.raises(ValueError, match="closed"):
            port.recv()
        assert umem.free_frames == umem.frame_count and not umem.in_use


def test_socket_options_reach_every_socket_busy_polling_included(lab_factory) -> None:
    """**socket_options go to every socket: busy polling on a Port is every queue's."""
    lab = lab_factory(queues=2)
    with ExitStack() as stack:
        tx = senders(lab, stack, 2)
        with lab.enter("b"):
            port = stack.enter_context(
                afxdp.Port(lab.if_b, mode="native", busy_poll_usecs=20, busy_poll_budget=16)
            )
        assert [s.busy_poll for s in port.sockets] == [(20, 16), (20, 16)]
        for q in (0, 1):
            send(tx[q], [q * STRIDE + i for i in range(50)], lab)
        got = 0
        deadline = time.monotonic() + 5
        while got < 100 and time.monotonic() < deadline:
            with port.recv(64, timeout=0.1) as batch:
                got += len(batch)
        assert got == 100


# --- Port.batches() ------------------------------------------------------------------------------


def test_batches_bring_every_queues_stream_and_give_each_batch_back(lab_factory) -> None:
    lab = lab_factory(queues=2)
    per_queue = 600
    with ExitStack() as stack:
        tx = senders(lab, stack, 2)
        with lab.enter("b"):
            port = stack.enter_context(afxdp.Port(lab.if_b, mode="native"))
        free_before = port.umem.free_frames
        for start in range(0, per_queue, 200):
            for q in range(2):
                send(tx[q], [q * STRIDE + i for i in range(start, start + 200)], lab)
        got: dict[int, list[int]] = {0: [], 1: []}
        previous = old_frame = None
        it = port.batches(64, timeout=0.5)
        for batch in it:
            # The batch handed out before is back with the Port: the object is reused (its
            # queue follows each batch, checked below), a frame taken from it is gone.
            assert previous is None or previous is batch
            if old_frame is not None:
                with pytest.raises(ValueError, match="released"):
                    len(old_frame)
            assert batch.queue in got and 1 <= len(batch) <= 64
            seqs = [parse_numbered(memoryview(f)) for f in batch]
            assert all(seq is not None and seq // STRIDE == batch.queue for seq in seqs), seqs
            got[batch.queue] += seqs
            previous, old_frame = batch, batch[0]
        assert it.closed and previous is not None and previous.closed
        for q in range(2):
            assert got[q] == [q * STRIDE + i for i in range(per_queue)], f"queue {q}"
        assert port.umem.free_frames == free_before
        with pytest.raises(StopIteration):
            next(it)


def test_batches_end_when_the_port_is_closed_from_another_thread(lab_factory) -> None:
    lab = lab_factory(queues=2)
    with ExitStack() as stack:
        tx = senders(lab, stack, 2)
        with lab.enter("b"):
            port = afxdp.Port(lab.if_b, mode="native")
        steps: list[int] = []
        done = threading.Event()

        def loop() -> None:
            for batch in port.batches(64, timeout=None):
                steps.append(len(batch))
            done.set()

        waiter = threading.Thread(target=loop, daemon=True)
        waiter.start()
        send(tx[1], [STRIDE + i for i in range(10)], lab)
        deadline = time.monotonic() + 3
        while sum(steps) < 10 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sum(steps) == 10
        port.close()
        assert done.wait(2.0), "Port.batches() kept waiting on a closed Port"
        waiter.join(1.0)
        assert list(port.batches()) == []


def test_batches_timeout_zero_and_bad_arguments(lab_factory) -> None:
    lab = lab_factory(queues=2)
    with lab.enter("b"), afxdp.Port(lab.if_b, mode="native") as port:
        assert list(port.batches(64, timeout=0)) == []
        with pytest.raises(ValueError, match="max"):
            port.batches(-1)
        with pytest.raises(TypeError, match="max"):
            port.batches(True)
        with pytest.raises(ValueError, match="timeout"):
            port.batches(64, timeout=float("nan"))


def sender_and_port(lab, stack: ExitStack) -> tuple[afxdp.Socket, afxdp.Port]:
    """A tx socket on queue 0 of end a, and a Port on every queue of end b."""
    (tx,) = senders(lab, stack, 1)
    with lab.enter("b"):
        return tx, stack.enter_context(afxdp.Port(lab.if_b, mode="native"))


def test_max_zero_returns_an_empty_batch_at_once_with_frames_waiting(lab_factory) -> None:
    # Port.recv(0) found "nothing" on every queue, and epoll (level-triggered, the frames
    # still there) woke it at once: it spun until its timeout, and forever with None.
    lab = lab_factory(queues=2)
    with ExitStack() as stack:
        tx, port = sender_and_port(lab, stack)
        send(tx, [1, 2, 3], lab)
        deadline = time.monotonic() + 5
        while port.sockets[0].rx_available < 3:
            assert time.monotonic() < deadline, "the frames never arrived"
            time.sleep(0.01)
        closer = threading.Timer(5, port.close)  # ends a spinning recv(0, None)
        closer.start()
        try:
            started = time.monotonic()
            assert len(port.recv(0, timeout=None)) == 0
            assert list(port.batches(0, timeout=None)) == []
            assert time.monotonic() - started < 2
        finally:
            closer.cancel()
        with port.recv(64, timeout=1) as got:
            assert len(got) == 3


def test_recv_after_the_umem_handle_is_closed_times_out_with_an_empty_batch(lab_factory) -> None:
    # Umem.close() lets go of the handle only; the sockets keep the region. The timeout path
    # made its empty batch through the handle: ValueError "Umem is closed", frames or not.
    lab = lab_factory(queues=2)
    with ExitStack() as stack:
        tx, port = sender_and_port(lab, stack)
        port.umem.close()
        assert len(port.recv(4, timeout=0.05)) == 0
        assert list(port.batches(4, timeout=0.05)) == []
        send(tx, [7], lab)
        with port.recv(4, timeout=5) as got:
            assert [parse_numbered(memoryview(f)) for f in got] == [7]


def test_coalescing_serves_a_queue_short_of_a_batch_in_its_turn(lab_factory) -> None:
    """With `coalesce`, the fast path took the first queue holding a whole batch: under a
    backlog on queue 0, queue 1's 10 frames (fewer than `max`) waited for all of queue 0's
    (93 batches). A queue with frames waits at most one batch of the other, as without it."""
    lab = lab_factory(queues=2)
    with ExitStack() as stack:
        tx = senders(lab, stack, 2)
        with lab.enter("b"):
            port = stack.enter_context(afxdp.Port(lab.if_b, mode="native"))
        send(tx[0], list(range(1500)), lab)
        send(tx[1], [STRIDE + i for i in range(10)], lab)
        deadline = time.monotonic() + 5
        while sum(s.rx_available for s in port.sockets) < 1510:
            assert time.monotonic() < deadline, "the frames never arrived"
            time.sleep(0.01)
        order: list[int] = []
        while 1 not in order and time.monotonic() < deadline:
            with port.recv(16, timeout=0.1, coalesce=0.001) as batch:
                order.append(batch.queue)
        assert order.index(1) <= 1, order


def set_channels(lab, side: str, count: int) -> None:
    """`ethtool -L IF rx N tx N` (veth: rx and tx channels)."""
    from afxdp import netdev

    request = bytearray(struct.pack("=9I", 0x3D, 0, 0, 0, 0, count, count, 0, 0))  # SCHANNELS
    with lab.enter(side):
        assert netdev._ethtool(lab.ifname(side), request) is not None


def test_a_port_opens_on_the_queues_in_use_not_the_maximum(lab_factory) -> None:
    """A NIC's channel count may be below its maximum (`ethtool -L`): the Port took the
    maximum and failed to bind the queues beyond the count (EINVAL), and a socket there got the
    kernel's bare EINVAL instead of the queue range error."""
    lab = lab_factory(queues=4)
    for side in ("a", "b"):  # native XDP on veth wants the peer's tx queues <= its rx queues
        set_channels(lab, side, 2)
    with lab.enter("b"):
        iface = afxdp._native.Interface(lab.if_b)
        assert (iface.queue_count, iface.rx_queues, iface.tx_queues) == (4, 2, 2)
        with afxdp.Port(lab.if_b, mode="native") as port:
            assert port.queues == [0, 1]
        for queue in (2, 3):
            with pytest.raises(ValueError, match=f"queue {queue} out of range.*2 queue"):
                afxdp.Socket(lab.if_b, queue)
            with pytest.raises(ValueError, match=f"queue {queue} out of range"):
                afxdp.Port(lab.if_b, [queue])
    set_channels(lab, "b", 4)
    set_channels(lab, "a", 4)
    with lab.enter("b"), afxdp.Port(lab.if_b, mode="native") as port:
        assert port.queues == [0, 1, 2, 3]


def test_a_port_that_fails_to_open_leaves_registered_sockets_registered(lab_factory) -> None:
    """Port(program=) registered each socket as it bound it: when a later queue was taken
    (EBUSY), its queue-0 socket had already replaced the user's there, and closing it emptied
    the slot, so queue 0's traffic went to the kernel stack."""
    lab = lab_factory(queues=2)
    with ExitStack() as stack:
        tx = senders(lab, stack, 2)
        with lab.enter("b"):
            prog = stack.enter_context(afxdp.Program.attach(lab.if_b, mode="native"))
            umem = afxdp.Umem(1024, 2048)
            mine = stack.enter_context(afxdp.Socket(lab.if_b, 0, umem=umem, program=prog))
            stack.enter_context(afxdp.Socket(lab.if_b, 1))  # queue 1 taken by another Umem
            with pytest.raises(OSError) as failed:
                afxdp.Port(lab.if_b, [0, 1], umem=umem, program=prog)
        assert failed.value.errno == errno.EBUSY
        assert mine.registered
        send(tx[0], list(range(10)), lab)
        got: list[int | None] = []
        deadline = time.monotonic() + 3
        while len(got) < 10 and time.monotonic() < deadline:
            with mine.recv(64, timeout=0.1) as batch:
                got += [parse_numbered(memoryview(f)) for f in batch]
        assert got == list(range(10))
        assert prog.no_socket_counts()[0] == 0
