"""Misuse from Python raises a clear exception and corrupts nothing (privileged: real sockets)."""

from __future__ import annotations

import gc
import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from afxdp import packet

afxdp = pytest.importorskip("afxdp")

pytestmark = pytest.mark.privileged


@pytest.fixture
def pair(lab):
    """(tx socket on a, rx socket on b with the program), closed afterwards."""
    with lab.enter("a"):
        tx = afxdp.Socket(lab.if_a, 0, umem=afxdp.Umem(256, 2048), rx_size=0)
    with lab.enter("b"):
        prog = afxdp.Program.attach(lab.if_b, mode="native")
        rx = afxdp.Socket(lab.if_b, 0, umem=afxdp.Umem(256, 2048), program=prog, tx_size=0)
    with prog, tx, rx:
        yield tx, rx


def frame_bytes(lab, seq: int, size: int = 64) -> bytes:
    return packet.numbered_frame(seq, size, lab.mac_a, lab.mac_b)


def roundtrip(lab, tx, rx, first: int, count: int) -> list[int]:
    """Sends `count` numbered frames and returns what arrives intact."""
    out = tx.alloc(count)
    for i, frame in enumerate(out):
        frame.write(frame_bytes(lab, first + i))
    assert tx.send(out) == count
    got: list[int] = []
    deadline = time.monotonic() + 5
    while len(got) < count and time.monotonic() < deadline:
        tx.complete()
        with rx.recv(64, timeout=0.1) as batch:
            for f in batch:
                seq = packet.parse_numbered(bytes(f))
                assert seq is not None and bytes(f) == frame_bytes(lab, seq)
                got.append(seq)
    while tx.in_flight and time.monotonic() < deadline:
        tx.complete()
    return got


def test_sending_a_batch_twice_raises_and_counts_once(lab, pair) -> None:
    tx, _ = pair
    batch = tx.alloc(4)
    batch.write_all(frame_bytes(lab, 0))
    assert tx.send(batch) == 4
    assert batch.closed and len(batch) == 0
    with pytest.raises(ValueError, match="sent"):
        tx.send(batch)
    assert tx.stats().sent == 4


def test_live_memoryview_blocks_send_and_release(lab, pair) -> None:
    tx, _ = pair
    batch = tx.alloc(2)
    batch.write_all(frame_bytes(lab, 0))
    view = memoryview(batch[1])
    with pytest.raises(BufferError):
        tx.send(batch)
    with pytest.raises(BufferError):
        batch.release()
    with pytest.raises(BufferError):
        with batch:
            pass
    assert len(batch) == 2 and tx.stats().sent == 0
    view.release()
    assert tx.send(batch) == 2


def test_frames_of_a_sent_or_released_batch_are_gone(lab, pair) -> None:
    tx, _ = pair
    for end in ("send", "release"):
        batch = tx.alloc(1)
        frame = batch[0]
        frame.write(frame_bytes(lab, 1))
        tx.send(batch) if end == "send" else batch.release()
        for use in (len, bytes, memoryview, lambda f: f[0], lambda f: f.write(b"x" * 60),
                    lambda f: setattr(f, "length", 10)):
            with pytest.raises(ValueError):
                use(frame)
        with pytest.raises(ValueError):
            batch[0]


def test_packets_longer_than_the_frame_are_refused_and_change_nothing(lab, pair) -> None:
    tx, _ = pair
    batch = tx.alloc(2)
    frame = batch[0]
    frame.write(frame_bytes(lab, 3))
    before = bytes(frame)
    too_long = frame.capacity + 1
    assert frame.capacity == 2048
    with pytest.raises(ValueError, match=str(too_long)):
        frame.write(b"\x00" * too_long)
    with pytest.raises(ValueError, match=str(too_long)):
        batch.write_all(b"\x00" * too_long)
    with pytest.raises(ValueError, match=str(too_long)):
        frame.length = too_long
    assert bytes(frame) == before
    with pytest.raises(ValueError, match="empty"):
        tx.send(batch)  # frame 1 has length 0: nothing is queued
    assert len(batch) == 2 and tx.stats().sent == 0
    batch.release()


def test_frame_editing(lab, pair) -> None:
    tx, _ = pair
    with tx.alloc(1) as batch:
        frame = batch[0]
        frame.write(bytes(range(64)))
        frame[0:6] = b"\xff" * 6
        assert frame[0] == 0xFF and frame[-1] == 63 and frame[6:8] == bytes([6, 7])
        with pytest.raises(ValueError, match="keep the length"):
            frame[0:6] = b"\x00"
        with pytest.raises(IndexError):
            frame[64]
        frame[63] = 7
        assert bytes(frame)[-1] == 7
        with memoryview(frame) as view:
            assert not view.readonly and len(view) == 64
            view[1] = 0xAA
        assert frame[1] == 0xAA
        batch.write_at(60, b"\x01\x02\x03\x04")
        assert frame[60:64] == b"\x01\x02\x03\x04"
        with pytest.raises(ValueError, match="past the end"):
            batch.write_at(61, b"\x01\x02\x03\x04")
        batch.set_lengths(100)
        assert batch.lengths == [100]


def test_frame_works_with_numpy(pair) -> None:
    np = pytest.importorskip("numpy")
    tx, _ = pair
    with tx.alloc(1) as batch:
        batch[0].write(b"\x05" * 60)
        arr = np.frombuffer(batch[0], dtype=np.uint8)
        assert arr.sum() == 300
        del arr


def test_with_batch_returns_the_frames(pair) -> None:
    tx, _ = pair
    free = tx.umem.free_frames
    with tx.alloc(10) as batch:
        assert tx.umem.free_frames == free - 10
        assert len(batch) == 10
    assert batch.closed and tx.umem.free_frames == free
    dropped = tx.alloc(5)
    del dropped
    gc.collect()
    assert tx.umem.free_frames == free


def test_closed_socket_raises_and_fileno_is_minus_one(lab, pair) -> None:
    tx, _ = pair
    batch = tx.alloc(1)
    batch[0].write(frame_bytes(lab, 0))
    tx.close()
    tx.close()  # idempotent
    assert tx.closed and tx.fileno() == -1 and "[closed]" in repr(tx)
    for op in (lambda: tx.recv(1), lambda: tx.send(batch), lambda: tx.alloc(1), tx.fill,
               tx.complete, tx.stats):
        with pytest.raises(ValueError, match="closed"):
            op()
    # The batch outlives its socket; its frames still go back to the pool.
    free = tx.umem.free_frames
    batch.release()
    assert tx.umem.free_frames == free + 1


def test_batch_of_another_umem_is_refused(lab, pair) -> None:
    tx, rx = pair
    # rx and tx have distinct UMEMs: a batch received on rx cannot be sent by tx.
    out = tx.alloc(1)
    out[0].write(frame_bytes(lab, 9))
    tx.send(out)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        tx.complete()
        batch = rx.recv(1, timeout=0.1)
        if len(batch):
            break
    with pytest.raises(ValueError, match="another Umem"):
        tx.send(batch)
    assert len(batch) == 1
    batch.release()


def test_after_all_misuse_the_umem_is_intact_and_no_frame_leaked(lab, pair) -> None:
    tx, rx = pair
    total_tx, total_rx = tx.umem.free_frames, rx.umem.free_frames + rx.fill_target
    # A round of misuse.
    b = tx.alloc(3)
    b.write_all(frame_bytes(lab, 0))
    view = memoryview(b[0])
    with pytest.raises(BufferError):
        tx.send(b)
    view.release()
    tx.send(b)
    with pytest.raises(ValueError):
        tx.send(b)
    c = tx.alloc(1)
    with pytest.raises(ValueError):
        c[0].write(b"\x00" * 5000)
    c.release()
    got: list[int] = []
    deadline = time.monotonic() + 5
    while len(got) < 3 and time.monotonic() < deadline:  # the three frames sent above
        tx.complete()
        with rx.recv(64, timeout=0.1) as batch:
            got += [packet.parse_numbered(bytes(f)) for f in batch]
    assert got == [0, 0, 0]
    assert sorted(roundtrip(lab, tx, rx, 100, 100)) == list(range(100, 200))
    assert tx.complete() >= 0 and tx.in_flight == 0
    assert tx.umem.free_frames == total_tx
    assert len(rx.recv(64)) == 0  # refill what the last batch returned
    assert rx.umem.free_frames + rx.fill_target == total_rx


def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def _rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


QUEUES = 4  # one thread per queue: the kernel's ~10 ms close (an RCU grace period) overlaps


def test_10000_create_use_close_cycles_leak_nothing(lab_factory) -> None:
    lab = lab_factory(queues=QUEUES)
    umems = [afxdp.Umem(64, 2048) for _ in range(QUEUES)]
    payload = frame_bytes(lab, 0)

    def cycles(queue: int, n: int) -> None:
        with lab.enter("a"):
            for _ in range(n):
                sock = afxdp.Socket(lab.if_a, queue, umem=umems[queue], rx_size=64, tx_size=64,
                                    fill_size=64, comp_size=64)
                with sock:
                    batch = sock.alloc(1)
                    batch[0].write(payload)
                    assert sock.send(batch) == 1
                    sock.complete()

    def run(per_queue: int) -> None:
        with ThreadPoolExecutor(QUEUES) as pool:
            for f in [pool.submit(cycles, q, per_queue) for q in range(QUEUES)]:
                f.result()

    run(500 // QUEUES)  # warm-up: allocator pools, lazily created Python objects
    gc.collect()
    fds, rss = _fd_count(), _rss_kib()
    run(9_500 // QUEUES)
    gc.collect()
    assert _fd_count() == fds
    assert _rss_kib() - rss < 4096, f"RSS grew by {_rss_kib() - rss} KiB"
    for umem in umems:
        assert umem.free_frames == 64 and not umem.in_use
