"""Shared UMEM (XDP_SHARED_UMEM): one Umem behind several sockets (privileged).

The kernel's rule, which the core follows: each distinct (interface, queue) of a Umem has its own
fill and completion rings, made on the first socket bound there; further sockets on that
(interface, queue) share them. One frame table covers every socket of the Umem, so a frame
received on one socket can be sent on another with no copy, and ownership stays exact across all.

The labs run native XDP: there an AF_XDP socket sending on queue q of one veth end reaches rx
queue q of the peer (NOTES.md). Every loop has a deadline.
"""

from __future__ import annotations

import time
from contextlib import ExitStack

import pytest

afxdp = pytest.importorskip("afxdp")

from afxdp.testing import numbered_frame, parse_numbered  # noqa: E402

pytestmark = pytest.mark.privileged

BATCH = 64


def send_numbered(
    tx: afxdp.Socket, seqs: list[int], src: str, dst: str, timeout: float = 5.0
) -> None:
    """Sends numbered frames `seqs` on `tx` and waits until they are all completed."""
    sent = 0
    deadline = time.monotonic() + timeout
    while sent < len(seqs):
        assert time.monotonic() < deadline, f"send stalled after {sent} of {len(seqs)}"
        with tx.alloc(min(BATCH, len(seqs) - sent)) as batch:
            for i, frame in enumerate(batch):
                frame.write(numbered_frame(seqs[sent + i], 64, src, dst))
            sent += tx.send(batch)
        tx.complete()
    while tx.in_flight and time.monotonic() < deadline:
        tx.complete()
        time.sleep(0.001)
    assert tx.in_flight == 0


def receive(sock: afxdp.Socket, count: int, timeout: float = 3.0) -> list[afxdp.FrameBatch]:
    """Receives until `count` frames arrived; returns the batches (still owned)."""
    batches: list[afxdp.FrameBatch] = []
    got = 0
    deadline = time.monotonic() + timeout
    while got < count and time.monotonic() < deadline:
        batch = sock.recv(BATCH, timeout=0.05)
        if len(batch):
            batches.append(batch)
            got += len(batch)
    assert got == count, f"received {got} of {count}"
    return batches


def seqs_of(sock: afxdp.Socket, count: int, timeout: float = 3.0) -> list[int | None]:
    got: list[int | None] = []
    for batch in receive(sock, count, timeout):
        with batch:
            got += [parse_numbered(memoryview(f)) for f in batch]
    return got


def test_two_queues_of_one_interface_forward_with_no_copy(lab_factory) -> None:
    """Sockets of one Umem on queues 0 and 1 of end b: each receives its queue's frames, and a
    batch received on queue 0 goes out on queue 1 as the same UMEM frames (no copy, no frame
    taken from the pool), arriving intact at end a's queue 1."""
    lab = lab_factory(queues=2)
    with ExitStack() as stack:
        with lab.enter("a"):
            prog_a = stack.enter_context(afxdp.Program.attach(lab.if_a, mode="native"))
            umem_a = afxdp.Umem(2048, 2048)
            tx_a = [
                stack.enter_context(afxdp.Socket(lab.if_a, 0, umem=umem_a, rx_size=0)),
                stack.enter_context(afxdp.Socket(lab.if_a, 1, umem=umem_a, program=prog_a)),
            ]
            back = tx_a[1]
        with lab.enter("b"):
            prog_b = stack.enter_context(afxdp.Program.attach(lab.if_b, mode="native"))
            umem = afxdp.Umem(4096, 2048)
            b0 = stack.enter_context(afxdp.Socket(lab.if_b, 0, umem=umem, program=prog_b))
            b1 = stack.enter_context(afxdp.Socket(lab.if_b, 1, umem=umem, program=prog_b))
        assert b0.umem is b1.umem and umem.in_use
        # Each (interface, queue) has its own fill ring pair, so neither shares.
        assert not b0.shares_fill_ring and not b1.shares_fill_ring
        for q, sock in ((0, b0), (1, b1)):
            seqs = list(range(q * 1000, q * 1000 + 200))
            send_numbered(tx_a[q], seqs, lab.mac_a, lab.mac_b)
            assert seqs_of(sock, len(seqs)) == seqs, f"queue {q}"

        seqs = list(range(5000, 5300))
        send_numbered(tx_a[0], seqs, lab.mac_a, lab.mac_b)
        forwarded: list[int] = []
        free_before = None
        for batch in receive(b0, len(seqs)):
            addrs = [f.addr for f in batch]
            batch.swap_macs()
            free_before = umem.free_frames
            in_flight = b1.in_flight
            n = b1.send(batch)
            assert n == len(addrs) and batch.closed
            # The frames left for the wire from where they were received: b1 has them in
            # flight and nothing came out of the free pool (autofill aside, which only adds).
            assert b1.in_flight == in_flight + n
            assert umem.free_frames <= free_before
            forwarded += addrs
        assert len(set(forwarded)) == len(seqs), "a frame forwarded twice"
        got = seqs_of(back, len(seqs))
        assert got == seqs
        deadline = time.monotonic() + 3
        while b1.in_flight and time.monotonic() < deadline:
            b1.complete()
            time.sleep(0.001)
        assert b1.in_flight == 0
        assert (b0.stats().received, b1.stats().received) == (200 + len(seqs), 200)
        assert b1.stats().sent == len(seqs)


def test_sockets_on_both_ends_share_one_umem(lab) -> None:
    """One Umem behind a socket on end a and one on end b (two interfaces, two namespaces):
    frames allocated from it go a -> b, and b sends the very frames it received back to a."""
    umem = afxdp.Umem(2048, 2048)
    with ExitStack() as stack:
        with lab.enter("a"):
            prog_a = stack.enter_context(afxdp.Program.attach(lab.if_a, mode="native"))
            a = stack.enter_context(afxdp.Socket(lab.if_a, 0, umem=umem, program=prog_a))
        with lab.enter("b"):
            prog_b = stack.enter_context(afxdp.Program.attach(lab.if_b, mode="native"))
            b = stack.enter_context(afxdp.Socket(lab.if_b, 0, umem=umem, program=prog_b))
        # Same ifindex and queue numbers may exist in both namespaces; these are two pairs.
        assert not a.shares_fill_ring and not b.shares_fill_ring
        seqs = list(range(400))
        send_numbered(a, seqs, lab.mac_a, lab.mac_b)
        for batch in receive(b, len(seqs)):
            addrs = [f.addr for f in batch]
            batch.swap_macs()
            # Addresses are offsets into the one Umem: b's frames are a's frames' neighbours.
            assert all(0 <= addr < len(umem) for addr in addrs)
            assert b.send(batch) == len(addrs)
        got = seqs_of(a, len(seqs))
        assert got == seqs
        assert b.stats().sent == len(seqs) and a.stats().received == len(seqs)


def test_misuse_still_raises_across_shared_sockets(lab_factory) -> None:
    lab = lab_factory(queues=2)
    with ExitStack() as stack:
        with lab.enter("a"):
            foreign = stack.enter_context(
                afxdp.Socket(lab.if_a, 0, umem=afxdp.Umem(64, 2048), rx_size=0)
            )
        with lab.enter("b"):
            prog = stack.enter_context(afxdp.Program.attach(lab.if_b, mode="native"))
            umem = afxdp.Umem(1024, 2048)
            s0 = stack.enter_context(afxdp.Socket(lab.if_b, 0, umem=umem, program=prog))
            # Sharing sockets inherit the first socket's bind mode; another one is refused.
            with pytest.raises(ValueError, match="need_wakeup"):
                afxdp.Socket(lab.if_b, 1, umem=umem, need_wakeup=False)
            with pytest.raises(ValueError, match="zerocopy"):
                afxdp.Socket(lab.if_b, 1, umem=umem, zerocopy=True)
            s1 = stack.enter_context(afxdp.Socket(lab.if_b, 1, umem=umem, zerocopy=False))
            # A socket of another Umem on a queue this Umem holds: the kernel says EBUSY.
            with pytest.raises(OSError):
                afxdp.Socket(lab.if_b, 0, umem=afxdp.Umem(64, 2048))
        # A batch of another Umem still cannot be sent, on either socket.
        alien = foreign.alloc(1)
        alien[0].write(numbered_frame(0, 64, lab.mac_b, lab.mac_a))
        for sock in (s0, s1):
            with pytest.raises(ValueError, match="another Umem"):
                sock.send(alien)
        alien.release()
        # A frame sent on one socket is gone from its batch: it cannot be sent on the other.
        batch = s0.alloc(2)
        for frame in batch:
            frame.write(numbered_frame(1, 64, lab.mac_b, lab.mac_a))
        frames = list(batch)
        assert s0.send(batch) == 2
        with pytest.raises(ValueError, match="sent"):
            s1.send(batch)
        with pytest.raises(ValueError):
            bytes(frames[0])
        # Released through the other socket of the same Umem: allowed (one frame table).
        kept = s1.alloc(3)
        s0.release(kept)
        assert kept.closed


def test_two_sockets_on_one_queue_share_its_fill_and_completion_rings(lab) -> None:
    """A second socket of the Umem on the same (interface, queue) makes no fill or completion
    ring of its own (the kernel refuses one there): it receives into frames the first socket put
    on their shared fill ring. The built-in program keys its XSKMAP by rx queue, so one socket per
    queue receives at a time: the test moves the registration from one to the other. Closing the
    first (the Umem's owner) leaves the second working on the rings they shared."""
    with ExitStack() as stack:
        with lab.enter("a"):
            tx = stack.enter_context(
                afxdp.Socket(lab.if_a, 0, umem=afxdp.Umem(512, 2048), rx_size=0)
            )
        with lab.enter("b"):
            prog = stack.enter_context(afxdp.Program.attach(lab.if_b, mode="native"))
            umem = afxdp.Umem(2048, 2048)
            first = stack.enter_context(afxdp.Socket(lab.if_b, 0, umem=umem, program=prog))
            # autofill=False and no fill(): every frame it receives was put there by `first`.
            second = stack.enter_context(afxdp.Socket(lab.if_b, 0, umem=umem, autofill=False))
        assert first.shares_fill_ring and second.shares_fill_ring
        on_fill = umem.frame_count - umem.free_frames
        assert on_fill == first.fill_target > 0
        send_numbered(tx, list(range(100)), lab.mac_a, lab.mac_b)
        assert seqs_of(first, 100) == list(range(100))
        assert second.stats().received == 0

        prog.register(second)
        assert second.registered and not first.registered
        send_numbered(tx, list(range(100, 200)), lab.mac_a, lab.mac_b)
        assert seqs_of(second, 100) == list(range(100, 200))
        assert second.stats().filled == 0, "second never filled, yet received: a shared ring"
        # A frame it sends completes on the shared completion ring, reaped by either socket.
        batch = second.alloc(1)
        batch[0].write(numbered_frame(7, 64, lab.mac_b, lab.mac_a))
        assert second.send(batch) == 1
        deadline = time.monotonic() + 3
        while first.in_flight and time.monotonic() < deadline:
            first.complete()
            time.sleep(0.001)
        assert first.in_flight == 0 == second.in_flight
        assert first.stats().completed == 1

        # The owner closes first; the second keeps the pair (and its fill ring) going.
        first.close()
        assert umem.in_use
        assert second.fill() > 0, "the pair's fill ring works through the second socket's mapping"
        send_numbered(tx, list(range(200, 300)), lab.mac_a, lab.mac_b)
        assert seqs_of(second, 100) == list(range(200, 300))
        second.close()
        # Everything the kernel held comes back once the last socket of the pair is gone.
        assert not umem.in_use
        assert umem.free_frames == umem.frame_count


THREADS_CHILD = """
import sys, threading, time
import afxdp
from afxdp._netns import _thread_in_netns
from afxdp.testing import numbered_frame, parse_numbered

ns_a, ns_b, if_a, if_b, mac_a, mac_b, total = sys.argv[1:8]
total = int(total)
WINDOW = 256
per_queue = total // 2
lock = threading.Lock()
received = []           # every sequence number that came back to end a
back = [0, 0]           # frames of queue q's range that came back
errors = []
stop = threading.Event()
deadline = time.monotonic() + 90

with _thread_in_netns(f"/run/netns/{ns_a}"):
    prog_a = afxdp.Program.attach(if_a, mode="native")
    umem_a = afxdp.Umem(8192, 2048)
    a = [afxdp.Socket(if_a, q, umem=umem_a, program=prog_a) for q in (0, 1)]
with _thread_in_netns(f"/run/netns/{ns_b}"):
    prog_b = afxdp.Program.attach(if_b, mode="native")
    umem_b = afxdp.Umem(4096, 2048)
    b = [afxdp.Socket(if_b, q, umem=umem_b, program=prog_b) for q in (0, 1)]

def end_a(q):
    # Sends range q on queue q (reaching b's queue q) and receives what b forwarded on queue q
    # (the other range: b crosses the queues).
    try:
        sock, sent, first = a[q], 0, q * per_queue
        while not stop.is_set() and time.monotonic() < deadline:
            with lock:
                room = WINDOW - (sent - back[q])
            if sent < per_queue and room > 0:
                with sock.alloc(min(64, room, per_queue - sent)) as batch:
                    for i, frame in enumerate(batch):
                        frame.write(numbered_frame(first + sent + i, 64, mac_a, mac_b))
                    sent += sock.send(batch)
            sock.complete()
            with sock.recv(64, timeout=0.002) as batch:
                seqs = [parse_numbered(memoryview(f)) for f in batch]
            if seqs:
                with lock:
                    received.extend(seqs)
                    for s in seqs:
                        back[0 if s is not None and s < per_queue else 1] += 1
                    if len(received) >= total:
                        stop.set()
    except BaseException as e:
        errors.append(e)
        stop.set()

def end_b(q):
    # Receives on b[q] and sends the same frames on b[1-q], whose own thread uses it meanwhile.
    try:
        src, dst = b[q], b[1 - q]
        while not stop.is_set() and time.monotonic() < deadline:
            batch = src.recv(64, timeout=0.002)
            if not len(batch):
                dst.complete()
                continue
            batch.swap_macs()
            while not batch.closed and time.monotonic() < deadline:
                dst.send(batch)
                dst.complete()
    except BaseException as e:
        errors.append(e)
        stop.set()

threads = [threading.Thread(target=f, args=(q,)) for f in (end_a, end_b) for q in (0, 1)]
start = time.monotonic()
for t in threads:
    t.start()
for t in threads:
    t.join(100)
assert not any(t.is_alive() for t in threads), "a thread hung"
elapsed = time.monotonic() - start
assert not errors, errors
assert None not in received, "a damaged frame"
assert len(received) == total, f"{len(received)} of {total} came back"
assert len(set(received)) == total, "a frame came back twice"
assert sorted(received) == list(range(total))
for s in a + b:
    s.close()
prog_a.detach(); prog_b.detach()
assert umem_b.free_frames == umem_b.frame_count, umem_b.free_frames
assert umem_a.free_frames == umem_a.frame_count, umem_a.free_frames
print(f"OK {total} frames in {elapsed:.1f} s")
"""


def test_a_sharing_sockets_fill_target_is_cut_to_the_ring_it_shares(lab) -> None:
    """A socket joining a queue's pair maps that pair's fill ring, ignoring its own
    `fill_size`. Its larger target was taken as the pair's (1024 on a 64-entry ring): one the
    ring can never reach, so no receive ever found it topped up."""
    with lab.enter("b"):
        umem = afxdp.Umem(4096, 2048)
        first = afxdp.Socket(lab.if_b, 0, umem=umem, fill_size=64)
        second = afxdp.Socket(lab.if_b, 0, umem=umem, fill_size=1024)
    with first, second:
        assert second.shares_fill_ring
        assert first.fill_target == second.fill_target == 64
        assert umem.frame_count - umem.free_frames == 64
        assert second.fill() == 0  # the target is met


@pytest.mark.slow
def test_sockets_of_one_umem_in_threads_lose_and_duplicate_nothing(lab_factory) -> None:
    """Four threads: on end a one per queue sends its numbered range and receives; on end b one
    per queue receives and sends the same frames out on the other queue's socket (which its own
    thread drives meanwhile), so frames cross sockets and threads of one Umem. 10^5 frames each
    come back exactly once, intact, and every frame is back in the pools at the end. Runs in a
    child with a timeout, so a deadlock fails the test instead of hanging it."""
    import subprocess
    import sys

    lab = lab_factory(queues=2)
    total = 100_000
    argv = [sys.executable, "-c", THREADS_CHILD, lab.ns_a, lab.ns_b, lab.if_a, lab.if_b]
    argv += [lab.mac_a, lab.mac_b, str(total)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=150)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the child hung: {exc.stderr!r}")
    assert done.returncode == 0 and "OK" in done.stdout, done.stdout + done.stderr
    print(done.stdout)


def test_an_autofill_socket_refills_for_a_sharing_socket_without_autofill(lab) -> None:
    """`second` (autofill=False) receives from the fill ring it shares with `first` (autofill).
    Every empty `first.recv()` must put the frames `second` used and released back on that ring,
    though `first` itself received nothing: else the ring runs dry after `fill_target` frames."""
    with ExitStack() as stack:
        with lab.enter("a"):
            tx = stack.enter_context(
                afxdp.Socket(lab.if_a, 0, umem=afxdp.Umem(512, 2048), rx_size=0)
            )
        with lab.enter("b"):
            prog = stack.enter_context(afxdp.Program.attach(lab.if_b, mode="native"))
            umem = afxdp.Umem(512, 2048)
            first = stack.enter_context(afxdp.Socket(lab.if_b, 0, umem=umem))
            second = stack.enter_context(afxdp.Socket(lab.if_b, 0, umem=umem, autofill=False))
        prog.register(second)
        assert len(first.recv(64)) == 0  # the pair's fill ring is at its target now
        total = first.fill_target + 256
        for start in range(0, total, 64):
            send_numbered(tx, list(range(start, start + 64)), lab.mac_a, lab.mac_b)
            assert seqs_of(second, 64) == list(range(start, start + 64)), f"from {start}"
            assert len(first.recv(64)) == 0  # received nothing; tops the shared ring up
        assert second.stats().filled == 0 and first.stats().filled >= total
