"""Threads: no binding holds a lock across Python code or a GIL release, and close() wakes waiters.

A lock held across a GIL release deadlocks the whole interpreter (the waiting thread holds the GIL,
the lock holder needs it back), so a thread join with a timeout cannot catch it. Each scenario runs
in a child process inside the lab's namespace ``b`` instead: the child arms
``faulthandler.dump_traceback_later`` (a C thread that needs no GIL: it prints every thread's stack
and exits with status 1), and the parent also kills it after a timeout. A regression therefore
fails the test, with the stacks in the message, instead of hanging the run.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

afxdp = pytest.importorskip("afxdp")

pytestmark = pytest.mark.privileged

#: Seconds before the child dumps its stacks and exits; every scenario needs well under 5 s.
WATCHDOG = 15
PRELUDE = textwrap.dedent(
    f"""
    import errno, faulthandler, sys, threading, time
    import afxdp
    faulthandler.dump_traceback_later({WATCHDOG}, exit=True)
    ifname = sys.argv[1]

    # Runs call() in a thread, lets it block for 0.3 s, then runs close(); returns call's
    # value, its exception and the seconds from close() to its return.
    def woken_by(call, close):
        result = {{}}

        def waiter():
            try:
                result["value"] = call()
            except BaseException as e:
                result["error"] = e
            result["at"] = time.monotonic()

        t = threading.Thread(target=waiter, daemon=True)
        t.start()
        time.sleep(0.3)
        assert t.is_alive(), result
        closed_at = time.monotonic()
        close()
        t.join(3)
        assert not t.is_alive(), "the waiter is still blocked 3 s after close()"
        return result.get("value"), result.get("error"), result["at"] - closed_at
    """
)


def run_child(lab, body: str) -> str:
    """Runs PRELUDE + `body` in namespace b; fails the test unless it prints OK and exits 0."""
    code = PRELUDE + textwrap.dedent(body)
    try:
        done = lab.run(
            "b", [sys.executable, "-c", code, lab.if_b], timeout=WATCHDOG + 15, check=False
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the child hung (killed after {exc.timeout} s): {exc.stderr!r}")
    assert done.returncode == 0 and "OK" in done.stdout, (
        f"child exited {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    )
    return done.stdout


# --- Program.set_rules waits for RCU without holding the program's lock -------------------------


def test_program_is_usable_from_other_threads_while_set_rules_waits(lab) -> None:
    run_child(
        lab,
        """
        prog = afxdp.Program.attach(ifname, mode="native")
        sock = afxdp.Socket(ifname, 0, program=prog)
        done = threading.Event()
        errors = []

        def setter():
            try:
                for i in range(15):
                    prog.set_rules([afxdp.Rule(ip_proto=17, dst_port=1000 + i)])
            except BaseException as e:
                errors.append(e)
            finally:
                done.set()

        threading.Thread(target=setter, daemon=True).start()
        rounds = 0
        while not done.is_set():
            # each of these takes the program's lock (sock.* through the program it holds)
            prog.rule_stats()
            prog.unmatched()
            prog.rules
            prog.attached
            prog.mode
            repr(prog)
            repr(sock)
            assert sock.registered
            assert sock.program is prog
            rounds += 1
        assert not errors, errors
        assert prog.rules == [afxdp.Rule(ip_proto=17, dst_port=1014)]
        assert rounds > 0
        print("OK", rounds)
        """,
    )


def test_concurrent_set_rules_calls_all_complete(lab) -> None:
    run_child(
        lab,
        """
        prog = afxdp.Program.attach(ifname, mode="native")
        last = {}
        errors = []

        def setter(port):
            try:
                for i in range(8):
                    rules = [afxdp.Rule(dst_port=port + i)]
                    prog.set_rules(rules)
                last[port] = rules
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=setter, args=(p,), daemon=True) for p in (100, 200)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        # the rules in force are whole sets: the last set of one of the two threads
        assert prog.rules in (last[100], last[200]), prog.rules
        assert len(prog.rule_stats()) == 1
        print("OK")
        """,
    )


# --- Frame item access converts its arguments before locking the batch ---------------------------


def test_frame_item_access_runs_user_code_before_locking_the_batch(lab) -> None:
    run_child(
        lab,
        """
        sock = afxdp.Socket(ifname, 0)
        batch = sock.alloc(2)
        batch.set_lengths(60)
        frame = batch[0]
        touched = []

        class Index:
            def __init__(self, value):
                self.value = value
            def __index__(self):
                # takes the batch's lock (twice: the view, then its values); a copy, since a
                # live view would keep the batch from being released below
                touched.append((len(batch), batch.lengths.tolist()))
                return self.value

        frame[Index(3)] = Index(7)
        assert frame[Index(3)] == 7
        frame[Index(4):Index(6)] = b"ab"
        assert frame[Index(3):Index(6)] == b"\\x07ab"
        frame[Index(-1)] = 9
        assert frame[59] == 9
        assert len(touched) == 8, touched

        class Releasing:
            def __index__(self):
                batch.release()   # the frame leaves its batch while its index is converted
                return 0

        try:
            frame[Releasing()]
        except ValueError as e:
            assert "released" in str(e), e
        else:
            raise AssertionError("a frame of a released batch was read")
        print("OK")
        """,
    )


# --- close() from another thread wakes a waiter and frees the queue -----------------------------


@pytest.mark.parametrize("call", ["sock.recv(64, timeout=None)", "sock.poll(None)"])
def test_close_wakes_a_thread_waiting_forever(lab, call: str) -> None:
    run_child(
        lab,
        f"""
        sock = afxdp.Socket(ifname, 0)  # registered nowhere: nothing ever arrives
        value, error, took = woken_by(lambda: {call}, sock.close)
        assert isinstance(error, ValueError) and "closed" in str(error), (value, error)
        assert took < 1.0, took
        # The fd is closed: the same queue can be bound again (the kernel frees a queue
        # asynchronously, so EBUSY for a few ms is normal; forever is not).
        for attempt in range(100):
            try:
                afxdp.Socket(ifname, 0).close()
                break
            except OSError as e:
                if e.errno != errno.EBUSY:
                    raise
                time.sleep(0.02)
        else:
            raise AssertionError("queue 0 still busy 2 s after close()")
        print("OK")
        """,
    )


@pytest.mark.parametrize("coalesce", [None, 1.0])
@pytest.mark.parametrize("source", ["afxdp.Socket(ifname, 0)", "afxdp.Port(ifname)"])
def test_iterator_close_wakes_a_thread_iterating_forever(lab, source: str, coalesce) -> None:
    # BatchIterator.close() from another thread ends a step that waits (in poll or epoll, or
    # in a coalescing sleep) within a slice, as closing the socket or Port does; the source
    # stays open and usable.
    run_child(
        lab,
        f"""
        src = {source}  # registered nowhere: nothing ever arrives
        it = src.batches(64, timeout=None, coalesce={coalesce})
        batches, error, took = woken_by(lambda: sum(1 for _ in it), it.close)
        assert error is None and batches == 0, (batches, error)
        assert took < 0.6, took
        assert it.closed and not src.closed
        with src.recv(64, timeout=0) as batch:
            assert len(batch) == 0
        src.close()
        print("OK")
        """,
    )
