"""Reliability fixes of the Rust core (issue 10): objects used after fork(), and attaching the
built-in program without CAP_PERFMON. Each test failed on the code before the fix."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import select
import signal
import socket
import sys
import textwrap
import threading
import time
from collections.abc import Iterator

import pytest

afxdp = pytest.importorskip("afxdp")

from afxdp.testing import parse_numbered  # noqa: E402
from helpers import Pair, numbered, socket_pair, wait_until  # noqa: E402

privileged = pytest.mark.privileged

FRAMES = 256
FRAME_SIZE = 2048


@pytest.fixture
def pair(lab) -> Iterator[Pair]:
    with socket_pair(
        lab, mode="native", tx_frames=FRAMES, rx_frames=FRAMES, frame_size=FRAME_SIZE
    ) as made:
        yield made


def send_numbered(pair: Pair, first: int, count: int) -> None:
    """Sends `count` numbered frames a -> b and waits until the kernel completed them."""
    with pair.tx.alloc(count) as batch:
        assert len(batch) == count
        for i, frame in enumerate(batch):
            frame.write(numbered(pair.lab, first + i))
        assert pair.tx.send(batch) == count
    deadline = time.monotonic() + 5
    while pair.tx.in_flight:
        assert time.monotonic() < deadline, "tx frames never completed"
        pair.tx.complete()
        time.sleep(0.001)


def receive_numbered(pair: Pair, count: int, timeout: float = 5.0) -> list[int]:
    """Receives until `count` numbered frames arrived; checks each is intact."""
    got: list[int] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        with pair.rx.recv(64, timeout=0.05) as batch:
            for frame in batch:
                data = bytes(frame)
                seq = parse_numbered(data)
                if seq is None:
                    continue  # not ours (the lab keeps IPv6 off; ARP is possible)
                assert data == numbered(pair.lab, seq), f"frame {seq} corrupted"
                got.append(seq)
    return got


def in_child(body, timeout: float = 20) -> dict:
    """Forks; the child runs `body()` (which returns a JSON-able dict) and exits at once without
    returning into pytest. Returns the child's dict. A watchdog kills a child that hangs for
    `timeout` seconds (the test fails)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        code = 0
        try:
            os.close(read_end)
            result = body()
            os.write(write_end, json.dumps(result).encode())
        except BaseException as e:
            os.write(write_end, json.dumps({"crash": repr(e)}).encode())
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    chunks = []
    hung = True
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            assert left > 0, "the child hung"
            ready, _, _ = select.select([read_end], [], [], left)
            if not ready:
                continue
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            chunks.append(chunk)
        hung = False
    finally:
        os.close(read_end)
        if hung:
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    return json.loads(b"".join(chunks) or b'{"crash": "no output"}')


def attempt(what: str, call) -> dict:
    try:
        result = call()
    except Exception as e:
        return {"what": what, "type": type(e).__name__, "message": str(e)}
    return {"what": what, "type": None, "message": repr(result)[:200]}


@privileged
def test_forked_child_cannot_use_the_parents_objects_and_the_parent_keeps_working(
    pair: Pair,
) -> None:
    rx, tx, prog = pair.rx, pair.tx, pair.prog
    # A received batch the parent keeps, and frames waiting on the rx ring for the parent.
    send_numbered(pair, 0, 4)
    held = rx.recv(64, timeout=2)
    assert [parse_numbered(bytes(f)) for f in held] == [0, 1, 2, 3]
    held_bytes = [bytes(f) for f in held]
    send_numbered(pair, 100, 8)
    time.sleep(0.05)
    waiting = rx.rx_available
    assert waiting == 8, waiting

    def child() -> dict:
        results = [
            attempt("rx.recv", lambda: len(rx.recv(64))),
            attempt("rx.fill", lambda: rx.fill()),
            attempt("rx.rx_available", lambda: rx.rx_available),
            attempt("rx.stats", lambda: rx.stats()),
            attempt("rx.poll", lambda: rx.poll(0)),
            attempt("bytes(frame)", lambda: bytes(held[0])),
            attempt("memoryview(umem)", lambda: len(memoryview(rx.umem))),
            attempt("tx.alloc", lambda: len(tx.alloc(1))),
            attempt("tx.complete", lambda: tx.complete()),
            attempt("prog.unregister", lambda: prog.unregister(0)),
            attempt("prog.rule_stats", lambda: prog.rule_stats()),
            attempt("prog.set_rules", lambda: prog.set_rules([])),
            # Reads of the parent's shared state (the frame table, the program's rules).
            attempt("tx.in_flight", lambda: tx.in_flight),
            attempt("tx.tx_timestamps", lambda: tx.tx_timestamps()),
            attempt("rx.fill_target", lambda: rx.fill_target),
            attempt("rx.registered", lambda: rx.registered),
            attempt("prog.rules", lambda: prog.rules),
            attempt("prog.map_size", lambda: prog.map_size),
        ]
        # Closing the child's copies must not touch what the parent uses.
        held.release()
        rx.close()
        tx.close()
        prog.close()
        return {"results": results}

    outcome = in_child(child)
    assert "crash" not in outcome, outcome
    parent = os.getpid()
    for result in outcome["results"]:
        assert result["type"] == "RuntimeError", result
        assert f"created in process {parent}" in result["message"], result
        assert "cannot be used after fork()" in result["message"], result

    # The parent's frames are intact, the waiting ones are still its own, and it still
    # receives and sends: the program is attached and its XSKMAP entry in place.
    assert [bytes(f) for f in held] == held_bytes
    held.release()
    assert sorted(receive_numbered(pair, 8)) == list(range(100, 108))
    send_numbered(pair, 200, 32)
    assert sorted(receive_numbered(pair, 32)) == list(range(200, 232))
    assert prog.attached
    assert rx.stats().rx_dropped == 0


@privileged
def test_a_batch_released_in_a_forked_child_hands_no_frame_to_the_kernel(lab) -> None:
    # A received batch let go of puts its frames straight back on its socket's fill ring. A
    # forked child has no mapping of the rings (MADV_DONTFORK; writing one crashed the child),
    # and the frames are the parent's: the child's release must go to its own copy of the
    # table only. Every frame of the receiving Umem is held, so the fill ring is empty: had
    # the release reached it, the next packets would land in the parent's held frames.
    frames = 64
    with socket_pair(
        lab, mode="native", rx_frames=frames, frame_size=FRAME_SIZE, tx_frames=FRAMES, tx_size=0
    ) as pair:
        assert pair.rx.fill_target == frames
        send_numbered(pair, 0, frames)
        held = []
        deadline = time.monotonic() + 5
        while sum(map(len, held)) < frames:
            assert time.monotonic() < deadline, "the frames never all arrived"
            held.append(pair.rx.recv(frames, timeout=0.05))
        assert pair.rx.umem.free_frames == 0
        snapshot = [bytes(f) for batch in held for f in batch]

        def child() -> dict:
            for batch in held:
                batch.release()
            return {}

        assert in_child(child) == {}
        empty_before = pair.rx.stats().rx_fill_ring_empty_descs
        send_numbered(pair, 100, 8)
        assert wait_until(lambda: pair.rx.stats().rx_fill_ring_empty_descs >= empty_before + 8)
        assert pair.rx.rx_available == 0
        assert [bytes(f) for batch in held for f in batch] == snapshot
        # Released in the parent, the frames go back to the kernel and receiving resumes.
        for batch in held:
            batch.release()
        send_numbered(pair, 200, 16)
        assert sorted(receive_numbered(pair, 16)) == list(range(200, 216))


@privileged
def test_a_child_forked_while_set_rules_waits_gets_runtimeerror_not_a_hang(lab) -> None:
    # set_rules holds its turn while it waits for RCU without the GIL; a child forked then
    # has a copy of the turn that nothing will ever free. Its set_rules must raise (the
    # program is the parent's), not wait for the turn forever.
    with lab.enter("b"), afxdp.Program.attach(lab.if_b, mode="native") as prog:
        stop = time.monotonic() + 3
        calls = 0

        def churn() -> None:
            nonlocal calls
            while time.monotonic() < stop:
                prog.set_rules([afxdp.Rule(ip_proto=17)] if calls % 2 else [])
                calls += 1

        worker = threading.Thread(target=churn)
        worker.start()
        try:
            time.sleep(0.1)
            outcomes = [
                in_child(lambda: attempt("set_rules", lambda: prog.set_rules([])), timeout=5)
                for _ in range(4)
            ]
        finally:
            worker.join(10)
        assert not worker.is_alive() and calls > 4
        for outcome in outcomes:
            assert outcome.get("type") == "RuntimeError", outcome
            assert "cannot be used after fork()" in outcome["message"], outcome
        # The parent's program is untouched and takes new rules.
        prog.set_rules([afxdp.Rule(ip_proto=6)])
        assert [r.ip_proto for r in prog.rules] == [6]


@privileged
def test_a_child_letting_go_of_a_port_leaves_the_parents_port_waiting(lab) -> None:
    # The child's copy of a Port shares the parent's eventfd and epoll set: its close (or its
    # garbage collection at exit) must not signal them, or the parent's port.fileno() stays
    # readable for good and every wait of the parent's recv returns at once (a busy loop).
    with lab.enter("b"), afxdp.Port(lab.if_b, mode="native") as port:
        fd = port.fileno()
        assert not select.select([fd], [], [], 0)[0]

        def child() -> dict:
            close = attempt("port.close", port.close)
            return {"close": close, "closed": port.closed}

        outcome = in_child(child)
        assert outcome == {
            "close": {"what": "port.close", "type": None, "message": "None"},
            "closed": True,
        }, outcome
        assert not port.closed
        assert not select.select([fd], [], [], 0)[0], "the child's close woke the parent's port"
        cpu, wall = time.process_time(), time.monotonic()
        with port.recv(64, timeout=0.5) as batch:
            assert len(batch) == 0
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
        assert wall >= 0.45 and cpu < 0.25, (wall, cpu)


@privileged
def test_closing_one_of_two_sockets_on_a_queue_in_a_child_does_not_crash_it(lab) -> None:
    # Two sockets of one Umem on one queue share its fill and completion rings, whose cursors
    # run on the first socket's mapping. Closing that socket moves them to the next one's:
    # in a forked child, which has no mapping of the rings (MADV_DONTFORK), that read
    # crashed the child (SIGSEGV). The parent's sockets keep working.
    with lab.enter("b"):
        umem = afxdp.Umem(256, FRAME_SIZE)
        first = afxdp.Socket(lab.if_b, 0, umem=umem, rx_size=64, tx_size=64)
        second = afxdp.Socket(lab.if_b, 0, umem=umem, rx_size=64, tx_size=64)
    try:
        assert second.shares_fill_ring

        def child() -> dict:
            first.close()
            second.close()
            return {"closed": first.closed and second.closed}

        assert in_child(child) == {"closed": True}
        assert not first.closed and not second.closed
        assert first.fill_target > 0 and second.rx_available == 0
    finally:
        second.close()
        first.close()
        umem.close()


@privileged
@pytest.mark.parametrize("ending", ["close", "collect"])
def test_a_socket_let_go_while_a_forked_child_lives_leaves_no_stale_xskmap_entry(
    lab, ending: str
) -> None:
    # The kernel removes a socket's XSKMAP entry when the socket is released, and a forked
    # child's copy of its descriptor delays that until the child exits: meanwhile the program
    # redirected the queue's packets to a socket nobody reads. Closing (or collecting) the
    # socket removes its entry itself, so they reach the kernel stack again at once.
    with lab.enter("b"):
        prog = afxdp.Program.attach(lab.if_b, mode="native")
        sock = afxdp.Socket(lab.if_b, 0, program=prog)
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with lab.enter("a"):
        source = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    pid = os.fork()
    if pid == 0:  # holds copies of every descriptor, then exits without cleanup
        time.sleep(5)
        os._exit(0)
    try:
        sink.bind((lab.ip_b, 9999))
        sink.settimeout(0.1)
        if ending == "close":
            sock.close()
        else:
            del sock
            gc.collect()
        got = []
        deadline = time.monotonic() + 2
        while not got and time.monotonic() < deadline:
            source.sendto(b"to the stack", (lab.ip_b, 9999))
            with contextlib.suppress(TimeoutError):
                got.append(sink.recv(64))
        assert got == [b"to the stack"], "the queue still went to the socket let go of"
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        sink.close()
        source.close()
        prog.close()


@privileged
@pytest.mark.parametrize("kind", ["socket", "port"])
def test_the_queue_is_free_again_when_the_parent_closes_while_a_forked_child_lives(
    lab, kind: str
) -> None:
    # The kernel unbinds an AF_XDP socket from its queue when the socket's last reference
    # goes, and a forked child's copy of the descriptor was one: a new socket on the queue
    # failed with EBUSY until the child exited. The child's fork handler now puts a
    # placeholder at the socket's descriptor number (its rings it never had).
    def open_it():
        if kind == "socket":
            return afxdp.Socket(lab.if_b, 0)
        return afxdp.Port(lab.if_b, mode="native")

    with lab.enter("b"):
        first = open_it()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # keeps its copies until the parent is done, then closes them itself
        code = 0
        try:
            os.close(done_w)
            os.read(done_r, 1)
            first.close()
        except BaseException:
            code = 1
        os._exit(code)
    os.close(done_r)
    try:
        first.close()
        with lab.enter("b"):
            again = open_it()  # EBUSY before the fix
        assert not again.closed
        again.close()
    finally:
        os.close(done_w)  # the child reads EOF and goes on
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child's close() of its copy failed"


@privileged
def test_program_close_detaches_it_while_a_forked_child_lives(lab) -> None:
    # A forked child holds a copy of the program's BPF link descriptor, and closing the last
    # copy is what detaches a link: the parent's close() left the program on the interface
    # until the child exited (a new attach failed with EBUSY). It now detaches it through the
    # kernel (BPF_LINK_DETACH).
    with lab.enter("b"):
        prog = afxdp.Program.attach(lab.if_b, mode="native")
        sock = afxdp.Socket(lab.if_b, 0, program=prog)
    pid = os.fork()
    if pid == 0:  # holds copies of every descriptor, then exits without cleanup
        time.sleep(5)
        os._exit(0)
    try:
        sock.close()
        prog.close()
        assert not prog.attached
        with lab.enter("b"), afxdp.Program.attach(lab.if_b, mode="native") as again:
            assert again.attached
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


# --- CAP_PERFMON -------------------------------------------------------------------------------

PERFMON_CHILD = textwrap.dedent(
    """
    import json, sys
    import afxdp
    try:
        afxdp.Program.attach(sys.argv[1], mode="native")
    except BaseException as e:
        print(json.dumps({"type": type(e).__name__, "mro": [c.__name__ for c in type(e).__mro__],
                          "errno": getattr(e, "errno", None), "message": str(e)}))
    else:
        print(json.dumps({"type": None}))
    """
)


@privileged
def test_attach_without_cap_perfmon_raises_permissionerror_naming_it(lab) -> None:
    # Root with only CAP_NET_ADMIN and CAP_BPF left (no CAP_PERFMON, no CAP_SYS_ADMIN): the
    # verifier then refuses the program's pointer arithmetic ("prohibited for !root").
    argv = [
        "setpriv", "--bounding-set=-all,+net_admin,+bpf", "--inh-caps=-all",
        sys.executable, "-c", PERFMON_CHILD, lab.if_b,
    ]  # fmt: skip
    done = lab.run("b", argv, timeout=60)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["type"] is not None, "attached without CAP_PERFMON"
    assert "PermissionError" in result["mro"], result
    assert result["type"] != "VerifierError", result
    assert result["errno"] == 1, result  # EPERM
    assert "CAP_PERFMON" in result["message"], result
    assert "prohibited for !root" in result["message"], result


# --- EBUSY wording ---------------------------------------------------------------------------


@privileged
def test_ebusy_from_our_own_program_does_not_blame_another_process(lab) -> None:
    with (
        lab.enter("b"),
        afxdp.Program.attach(lab.if_b, mode="native"),
        pytest.raises(OSError) as caught,
    ):
        afxdp.Program.attach(lab.if_b, mode="native")
    assert caught.value.errno == 16, caught.value  # EBUSY
    message = str(caught.value)
    assert "another process" not in message, message
    assert "this process already has" in message, message
