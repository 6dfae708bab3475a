"""The public API: Umem, bad input, missing privileges, misuse, the Frame API and leaks.

Umem tests are unprivileged. Everything that opens a socket or attaches a program is privileged and
runs in its own veth lab (two private namespaces, removed afterwards); every send is bounded and
every wait has a deadline, so a library bug fails a test instead of hanging it.
"""

from __future__ import annotations

import gc
import json
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest

afxdp = pytest.importorskip("afxdp")

from afxdp.testing import parse_numbered  # noqa: E402
from helpers import Pair, drain, numbered, socket_pair  # noqa: E402

privileged = pytest.mark.privileged

TX_FRAMES = 256
RX_FRAMES = 256
FRAME_SIZE = 2048


# --- Umem (unprivileged) -------------------------------------------------------------------------


def test_umem_defaults_and_properties() -> None:
    umem = afxdp.Umem()
    try:
        assert umem.frame_count == 4096
        assert umem.frame_size == 4096
        assert umem.headroom == 0
        assert umem.free_frames == 4096
        assert umem.in_use is False
        assert umem.closed is False
        assert 0 < umem.rx_capacity <= umem.frame_size
        assert 0 < umem.tx_capacity <= umem.frame_size
        assert len(umem) == 4096 * 4096
    finally:
        umem.close()


def test_umem_geometry_is_what_was_asked() -> None:
    with afxdp.Umem(frame_count=64, frame_size=2048, headroom=128) as umem:
        assert (umem.frame_count, umem.frame_size, umem.headroom) == (64, 2048, 128)
        assert umem.free_frames == 64
        assert len(umem) == 64 * 2048
        # headroom comes out of the frame's room for packets
        assert umem.tx_capacity <= 2048 - 128
        assert umem.rx_capacity <= 2048 - 128


def test_umem_memoryview_is_the_whole_writable_region() -> None:
    umem = afxdp.Umem(frame_count=16, frame_size=2048)
    view = memoryview(umem)
    assert not view.readonly
    assert view.nbytes == len(view) == 16 * 2048
    view[0:4] = b"abcd"
    view[-3:] = b"xyz"
    second = memoryview(umem)
    assert bytes(second[0:4]) == b"abcd"
    assert bytes(second[-3:]) == b"xyz"
    second[100] = 0x5A
    assert view[100] == 0x5A
    second.release()
    view.release()
    umem.close()


def test_umem_close_with_live_view_raises_buffererror_then_succeeds() -> None:
    umem = afxdp.Umem(frame_count=16, frame_size=2048)
    view = memoryview(umem)
    with pytest.raises(BufferError):
        umem.close()
    assert not umem.closed
    view[0] = 7  # still usable: the failed close changed nothing
    assert view[0] == 7
    view.release()
    umem.close()
    assert umem.closed
    assert "[closed]" in repr(umem)
    umem.close()  # idempotent


def test_umem_repr_shows_geometry() -> None:
    umem = afxdp.Umem(frame_count=32, frame_size=2048, headroom=256)
    assert repr(umem) == "<afxdp.Umem frame_count=32 frame_size=2048 headroom=256>"
    umem.close()
    assert repr(umem) == "<afxdp.Umem frame_count=32 frame_size=2048 headroom=256 [closed]>"


@pytest.mark.parametrize("frame_size", [1024, 3000, 8192, -1])
def test_umem_bad_frame_size_names_the_value(frame_size: int) -> None:
    with pytest.raises(ValueError, match=str(frame_size)):
        afxdp.Umem(frame_count=16, frame_size=frame_size)


def test_umem_aligned_odd_frame_size_says_unaligned_mode_takes_it() -> None:
    with pytest.raises(ValueError, match=r"invalid frame_size 3000: .*unaligned=True"):
        afxdp.Umem(16, 3000)


@pytest.mark.parametrize("frame_size", [2048, 2049, 3000, 4001, 4096])
def test_umem_unaligned_takes_any_frame_size_laid_end_to_end(frame_size: int) -> None:
    with afxdp.Umem(16, frame_size, unaligned=True) as umem:
        assert umem.unaligned and not umem.hugepages
        assert umem.frame_size == frame_size
        assert len(umem) == 16 * frame_size
        assert umem.frames.shape == (16, frame_size)
        assert umem.rx_capacity == frame_size - 256
        assert repr(umem) == (
            f"<afxdp.Umem frame_count=16 frame_size={frame_size} headroom=0 unaligned=True>"
        )
        view = memoryview(umem)
        view[-1] = 9  # the last byte of the last frame is in the region
        view.release()


@pytest.mark.parametrize(("frame_size", "unaligned"), [(2047, True), (4097, True), (8192, False)])
def test_umem_frame_sizes_beyond_the_kernels_range_are_refused_in_both_modes(
    frame_size: int, unaligned: bool
) -> None:
    for hugepages in (False, True):  # huge pages do not lift the page-size limit (6.18)
        with pytest.raises(ValueError, match=f"invalid frame_size {frame_size}: .*page size"):
            afxdp.Umem(16, frame_size, unaligned=unaligned, hugepages=hugepages)


def test_umem_flags_are_keyword_only_bools_or_none() -> None:
    with pytest.raises(TypeError):
        afxdp.Umem(16, 2048, 0, True)  # type: ignore[misc]
    with pytest.raises(TypeError, match="invalid unaligned 1: expected True or False"):
        afxdp.Umem(16, 2048, unaligned=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="invalid hugepages 'yes'"):
        afxdp.Umem(16, 2048, hugepages="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="invalid hugepages 0"):
        afxdp.Umem(16, 2048, hugepages=0)  # type: ignore[arg-type]
    with afxdp.Umem(16, 2048, unaligned=False, hugepages=False) as umem:
        assert not umem.unaligned and not umem.hugepages


def test_umem_zero_frames_raises() -> None:
    with pytest.raises(ValueError, match=r"\b0\b"):
        afxdp.Umem(frame_count=0, frame_size=2048)


@pytest.mark.parametrize("headroom", [2048, 4096, 65536])
def test_umem_headroom_too_big_names_the_value(headroom: int) -> None:
    with pytest.raises(ValueError, match=str(headroom)):
        afxdp.Umem(frame_count=16, frame_size=2048, headroom=headroom)


# --- helpers for the privileged tests ------------------------------------------------------------


@pytest.fixture
def pair(lab) -> Iterator[Pair]:
    """A transmit-only socket on end a (own Umem) and, on end b, the program and a receiving
    socket (own Umem, with a tx ring too)."""
    with socket_pair(
        lab, mode="native", tx_frames=TX_FRAMES, rx_frames=RX_FRAMES, frame_size=FRAME_SIZE
    ) as made:
        yield made


def wait_completed(sock: afxdp.Socket, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while sock.in_flight and time.monotonic() < deadline:
        sock.complete()
        time.sleep(0.001)
    assert sock.in_flight == 0, f"{sock.in_flight} frames never completed"


def check_healthy(pair: Pair, first: int = 1000, count: int = 50) -> None:
    """`count` numbered frames a -> b arrive intact, then no frame of either Umem is leaked."""
    lab, tx, rx = pair.lab, pair.tx, pair.rx
    drain(rx, timeout=0.05)  # nothing left over from the test itself
    sent = 0
    got: list[int] = []
    deadline = time.monotonic() + 5
    while len(got) < count:
        assert time.monotonic() < deadline, f"only {len(got)} of {count} arrived ({sent} sent)"
        if sent < count and sent - len(got) < 32:  # flow control: never overrun the fill ring
            with tx.alloc(min(32, count - sent)) as batch:
                for i, frame in enumerate(batch):
                    frame.write(numbered(lab, first + sent + i))
                sent += tx.send(batch) if len(batch) else 0
        tx.complete()
        with rx.recv(64, timeout=0.01) as batch:
            for frame in batch:
                data = bytes(frame)
                seq = parse_numbered(data)
                assert seq is not None, f"corrupt frame: {data[:64].hex()}"
                assert data == numbered(lab, seq), f"frame {seq} differs from what was sent"
                got.append(seq)
    assert sorted(got) == list(range(first, first + count))
    wait_completed(tx)
    assert tx.umem.free_frames == tx.umem.frame_count, "tx frames leaked"
    # Everything the rx side does not hold in the fill ring is back in the pool; closing the
    # socket returns the fill ring's frames too.
    assert rx.umem.free_frames + rx.fill_target >= rx.umem.frame_count
    tx_umem, rx_umem = tx.umem, rx.umem
    tx.close()
    rx.close()
    assert tx_umem.free_frames == tx_umem.frame_count, "tx frames leaked after close"
    assert rx_umem.free_frames == rx_umem.frame_count, "rx frames leaked after close"


# --- Socket / Program bad input (privileged) -----------------------------------------------------


@privileged
def test_socket_unknown_interface_names_it(lab) -> None:
    with lab.enter("b"), pytest.raises(OSError, match="afxnosuchif0"):
        afxdp.Socket("afxnosuchif0", 0)


@privileged
@pytest.mark.parametrize("queue", [1, 5])
def test_socket_queue_out_of_range_names_it(lab, queue: int) -> None:
    assert lab.queues == 1
    with lab.enter("b"), pytest.raises(ValueError, match=rf"\b{queue}\b"):
        afxdp.Socket(lab.if_b, queue, umem=afxdp.Umem(64, FRAME_SIZE))


@privileged
@pytest.mark.parametrize("option", ["rx_size", "tx_size", "fill_size", "comp_size"])
def test_socket_ring_size_not_power_of_two_names_it(lab, option: str) -> None:
    with lab.enter("b"), pytest.raises(ValueError, match="1000"):
        afxdp.Socket(lab.if_b, 0, umem=afxdp.Umem(64, FRAME_SIZE), **{option: 1000})


@privileged
def test_socket_without_rx_and_tx_ring_raises(lab) -> None:
    with lab.enter("b"), pytest.raises(ValueError):
        afxdp.Socket(lab.if_b, 0, umem=afxdp.Umem(64, FRAME_SIZE), rx_size=0, tx_size=0)


@privileged
@pytest.mark.parametrize(
    "options",
    [{"queue": -1}, {"rx_size": -64}, {"tx_size": -64}, {"fill_size": -64}, {"comp_size": -64}],
    ids=lambda o: next(iter(o)),
)
def test_socket_negative_values_are_named(lab, options: dict) -> None:
    (value,) = options.values()
    with lab.enter("b"), pytest.raises((ValueError, OverflowError), match=str(value)) as info:
        afxdp.Socket(lab.if_b, umem=afxdp.Umem(64, FRAME_SIZE), **options)
    assert info.type is ValueError, f"{info.type.__name__}, not ValueError: {info.value}"


@privileged
def test_program_bad_mode_names_it(lab) -> None:
    with lab.enter("b"), pytest.raises(ValueError, match="turbo"):
        afxdp.Program.attach(lab.if_b, mode="turbo")
    assert "xdp" not in link_info(lab)


@privileged
def test_program_unknown_interface_names_it(lab) -> None:
    with lab.enter("b"), pytest.raises(OSError, match="afxnosuchif0"):
        afxdp.Program.attach("afxnosuchif0", mode="native")


def link_info(lab) -> dict:
    out = lab.run("b", ["ip", "-d", "-j", "link", "show", "dev", lab.if_b]).stdout
    return json.loads(out)[0]


# --- missing privileges --------------------------------------------------------------------------

UNPRIVILEGED_CHILD = textwrap.dedent(
    """
    import json, os, sys
    import afxdp
    ifname, what = sys.argv[1], sys.argv[2]
    umem = afxdp.Umem(64, 2048)          # needs no privilege; created before dropping them
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
    try:
        if what == "socket":
            afxdp.Socket(ifname, 0, umem=umem)
        else:
            afxdp.Program.attach(ifname, mode="native")
    except BaseException as e:
        print(json.dumps({"type": type(e).__name__, "mro": [c.__name__ for c in type(e).__mro__],
                          "message": str(e)}))
    else:
        print(json.dumps({"type": None}))
    """
)


def run_unprivileged(lab, what: str) -> dict:
    done = lab.run("b", [sys.executable, "-c", UNPRIVILEGED_CHILD, lab.if_b, what], timeout=30)
    return json.loads(done.stdout.strip().splitlines()[-1])


@privileged
def test_socket_without_privileges_raises_permissionerror_naming_the_capability(lab) -> None:
    result = run_unprivileged(lab, "socket")
    assert result["type"] is not None, "an unprivileged process created an AF_XDP socket"
    assert "PermissionError" in result["mro"], result
    assert any(word in result["message"] for word in ("CAP_NET_RAW", "root")), result


@privileged
def test_program_without_privileges_raises_permissionerror_naming_the_capability(lab) -> None:
    result = run_unprivileged(lab, "program")
    assert result["type"] is not None, "an unprivileged process attached an XDP program"
    assert "PermissionError" in result["mro"], result
    assert any(w in result["message"] for w in ("CAP_BPF", "CAP_NET_ADMIN", "root")), result
    assert "xdp" not in link_info(lab)


# --- misuse raises and corrupts nothing ----------------------------------------------------------


@privileged
def test_send_batch_twice(pair: Pair) -> None:
    tx = pair.tx
    batch = tx.alloc(4)
    batch.write_all(numbered(pair.lab, 0))
    assert tx.send(batch) == 4
    with pytest.raises(ValueError):
        tx.send(batch)
    assert tx.stats().sent == 4
    wait_completed(tx)
    assert tx.stats().sent == 4
    drain(pair.rx, timeout=0.2)
    check_healthy(pair)


@privileged
def test_send_with_live_frame_view_raises_buffererror(pair: Pair) -> None:
    tx = pair.tx
    batch = tx.alloc(3)
    batch.write_all(numbered(pair.lab, 0))
    view = memoryview(batch[1])
    with pytest.raises(BufferError):
        tx.send(batch)
    assert len(batch) == 3 and not batch.closed
    assert tx.stats().sent == 0
    assert tx.umem.free_frames == TX_FRAMES - 3
    view.release()
    assert tx.send(batch) == 3
    wait_completed(tx)
    drain(pair.rx, timeout=0.2)
    check_healthy(pair)


@privileged
def test_release_with_live_frame_view_raises_buffererror(pair: Pair) -> None:
    tx = pair.tx
    batch = tx.alloc(2)
    batch.write_all(numbered(pair.lab, 0))
    view = memoryview(batch[0])
    with pytest.raises(BufferError):
        tx.release(batch)
    with pytest.raises(BufferError):
        batch.release()
    assert tx.umem.free_frames == TX_FRAMES - 2
    view[0:3] = b"abc"  # the view still works: the frames are still owned by the batch
    view.release()
    tx.release(batch)
    assert batch.closed
    assert tx.umem.free_frames == TX_FRAMES
    check_healthy(pair)


def frame_uses():
    return {
        "len": lambda f: len(f),
        "bytes": lambda f: bytes(f),
        "index": lambda f: f[0],
        "slice": lambda f: f[0:6],
        "setitem": lambda f: f.__setitem__(0, 1),
        "write": lambda f: f.write(b"x" * 60),
        "memoryview": lambda f: memoryview(f),
        "length": lambda f: f.length,
        "set_length": lambda f: setattr(f, "length", 60),
    }


@privileged
@pytest.mark.parametrize("how", ["send", "release"])
def test_frame_after_its_batch_is_gone_raises(pair: Pair, how: str) -> None:
    tx = pair.tx
    batch = tx.alloc(2)
    batch.write_all(numbered(pair.lab, 0))
    frame = batch[0]
    other = batch[1]
    if how == "send":
        assert tx.send(batch) == 2
    else:
        batch.release()
    for name, use in frame_uses().items():
        for f in (frame, other):
            with pytest.raises(ValueError):
                use(f)
                pytest.fail(f"{name} on a frame of a {how} batch did not raise")
    for name, use in {
        "len_batch": lambda b: b.lengths,
        "nbytes": lambda b: b.nbytes,
        "swap_macs": lambda b: b.swap_macs(),
        "getitem": lambda b: b[0],
        "write_all": lambda b: b.write_all(b"x" * 60),
        "write_at": lambda b: b.write_at(0, b"x"),
        "set_lengths": lambda b: b.set_lengths(60),
        "to_list": lambda b: b.to_list(),
    }.items():
        try:
            result = use(batch)
        except (ValueError, IndexError):
            continue
        # a consumed batch may also behave as empty, but it must not reach any frame
        assert result in (None, [], b"", 0), f"{name} on a {how} batch gave {result!r}"
    wait_completed(tx)
    drain(pair.rx, timeout=0.2)
    check_healthy(pair)


@privileged
def test_frames_and_packets_of_a_partly_sent_batch_still_reach_their_frames(lab) -> None:
    """A partial send (the tx ring holds 64 of 200) takes frames off the batch's front: the
    Frame and Packet objects of the frames still in it kept their old positions and raised
    "it was sent" for frames that were not."""
    with lab.enter("a"):
        tx = afxdp.Socket(
            lab.if_a, 0, umem=afxdp.Umem(512, 2048), rx_size=0, tx_size=64, comp_size=512
        )
    with tx:
        batch = tx.alloc(200)
        for i, frame in enumerate(batch):
            frame.write(numbered(lab, i))
        frames, packets = list(batch), batch.packets()
        assert tx.send(batch) == 64 and len(batch) == 136 and not batch.closed
        for i in (0, 63):
            with pytest.raises(ValueError, match=r"no longer in this batch \(it was sent"):
                len(frames[i])
            with pytest.raises(ValueError, match=r"no longer in this batch \(it was sent"):
                bytes(packets[i])
        for i in (64, 150, 199):
            assert bytes(frames[i]) == bytes(memoryview(frames[i])) == numbered(lab, i)
            assert bytes(packets[i]) == numbered(lab, i) and len(packets[i]) == len(frames[i])
            assert packets[i].frames[0].index == frames[i].index
        frames[199][0:6] = b"\xff" * 6  # an edit lands in the frame still in the batch
        assert bytes(batch[135])[:6] == b"\xff" * 6
        wait_completed(tx)
        assert tx.send(batch) == 64
        assert bytes(frames[199])[:6] == b"\xff" * 6
        with pytest.raises(ValueError, match="it was sent"):
            bytes(frames[64])
        batch.release()


@privileged
def test_packet_longer_than_frame_raises_and_changes_nothing(pair: Pair) -> None:
    tx = pair.tx
    batch = tx.alloc(2)
    original = numbered(pair.lab, 7)
    batch.write_all(original)
    frame = batch[0]
    too_long = frame.capacity + 1
    assert frame.capacity == tx.umem.tx_capacity
    with pytest.raises(ValueError, match=str(too_long)):
        frame.write(b"x" * too_long)
    assert bytes(frame) == original and frame.length == len(original)
    with pytest.raises(ValueError, match=str(too_long)):
        batch.write_all(b"y" * too_long)
    assert batch.to_list() == [original, original]
    with pytest.raises(ValueError, match=str(too_long)):
        frame.length = too_long
    assert bytes(frame) == original and len(frame) == len(original)
    # exactly the capacity is fine
    frame.write(b"z" * frame.capacity)
    assert len(frame) == frame.capacity
    batch.release()
    check_healthy(pair)


@privileged
def test_sending_an_empty_frame_raises(pair: Pair) -> None:
    tx = pair.tx
    batch = tx.alloc(2)
    batch[0].write(numbered(pair.lab, 0))  # frame 1 keeps length 0
    assert batch.lengths == [64, 0]
    with pytest.raises(ValueError):
        tx.send(batch)
    assert tx.stats().sent == 0
    assert not batch.closed and len(batch) == 2
    batch.release()
    assert tx.umem.free_frames == TX_FRAMES
    check_healthy(pair)


@privileged
def test_closed_socket_raises_and_umem_is_reusable(pair: Pair) -> None:
    lab, tx = pair.lab, pair.tx
    umem = tx.umem
    held = tx.alloc(1)
    tx.close()
    assert tx.closed
    assert "[closed]" in repr(tx)
    assert tx.fileno() == -1
    tx.close()  # idempotent
    for name, use in {
        "recv": lambda s: s.recv(1),
        "send": lambda s: s.send(held),
        "alloc": lambda s: s.alloc(1),
        "fill": lambda s: s.fill(),
        "complete": lambda s: s.complete(),
        "stats": lambda s: s.stats(),
    }.items():
        with pytest.raises(ValueError):
            use(tx)
            pytest.fail(f"{name} on a closed socket did not raise")
    held.release()
    assert umem.free_frames == TX_FRAMES
    # The Umem outlives the socket and serves a new one.
    with lab.enter("a"):
        pair.tx = afxdp.Socket(lab.if_a, 0, umem=umem, rx_size=0)
    check_healthy(pair)


@privileged
def test_batch_sent_on_the_wrong_socket_raises(pair: Pair) -> None:
    tx, rx = pair.tx, pair.rx
    batch = tx.alloc(2)
    batch.write_all(numbered(pair.lab, 0))
    with pytest.raises(ValueError):
        rx.send(batch)
    assert rx.stats().sent == 0 and tx.stats().sent == 0
    assert not batch.closed and len(batch) == 2
    assert tx.send(batch) == 2
    # Releasing through the wrong socket raises and leaves the batch as it was.
    other = tx.alloc(3)
    rx_free = rx.umem.free_frames
    with pytest.raises(ValueError, match="another UMEM"):
        rx.release(other)
    assert not other.closed and len(other) == 3
    tx.release(other)
    assert other.closed
    assert rx.umem.free_frames == rx_free, "frames of another Umem went into this one's pool"
    wait_completed(tx)
    drain(rx, timeout=0.2)
    check_healthy(pair)


@privileged
def test_all_misuse_in_a_row_corrupts_nothing(pair: Pair) -> None:
    """The misuse of the tests above on one pair of sockets, then the datapath still works."""
    lab, tx, rx = pair.lab, pair.tx, pair.rx
    frame_bytes = numbered(lab, 0)
    b = tx.alloc(2)
    b.write_all(frame_bytes)
    v = memoryview(b[0])
    with pytest.raises(BufferError):
        tx.send(b)
    with pytest.raises(BufferError):
        tx.release(b)
    with pytest.raises(ValueError):
        b[1].write(b"x" * (b[1].capacity + 1))
    v.release()
    with pytest.raises(ValueError):
        rx.send(b)
    f = b[0]
    assert tx.send(b) == 2
    with pytest.raises(ValueError):
        tx.send(b)
    with pytest.raises(ValueError):
        f.write(b"x" * 60)
    e = tx.alloc(1)
    with pytest.raises(ValueError):
        tx.send(e)
    e.release()
    assert tx.stats().sent == 2
    wait_completed(tx)
    drain(rx, timeout=0.2)
    check_healthy(pair, first=5000, count=200)


# --- the Frame API -------------------------------------------------------------------------------


@privileged
def test_frame_item_access(pair: Pair) -> None:
    tx = pair.tx
    original = numbered(pair.lab, 3, size=100)
    with tx.alloc(1) as batch:
        frame = batch[0]
        frame.write(original)
        assert len(frame) == frame.length == 100
        assert bytes(frame) == original
        assert frame[0] == original[0]
        assert frame[99] == original[99]
        assert frame[-1] == original[-1]
        assert frame[-100] == original[0]
        assert frame[0:6] == original[0:6]
        assert frame[6:12] == original[6:12]
        for bad in (100, -101, 10_000):
            with pytest.raises(IndexError):
                frame[bad]
        frame[0:6] = b"\xff" * 6
        assert bytes(frame)[0:6] == b"\xff" * 6
        assert bytes(frame)[6:] == original[6:]
        frame[0:6] = bytearray(b"\x01\x02\x03\x04\x05\x06")
        frame[6:12] = memoryview(b"abcdef")
        assert bytes(frame)[:12] == b"\x01\x02\x03\x04\x05\x06abcdef"
        before = bytes(frame)
        for bad in (b"\x00" * 5, b"\x00" * 7, b""):
            with pytest.raises(ValueError):
                frame[0:6] = bad
        assert bytes(frame) == before and len(frame) == 100
        frame[-1] = 0xAB
        frame[5] = 0x42
        assert frame[-1] == 0xAB and frame[5] == 0x42
        with pytest.raises((ValueError, OverflowError, TypeError)):
            frame[0] = 256
        with pytest.raises(IndexError):
            frame[100] = 1
        assert frame.capacity == tx.umem.tx_capacity
        assert 0 <= frame.index < tx.umem.frame_count
        assert frame.addr // tx.umem.frame_size == frame.index


@privileged
def test_frame_memoryview_is_zero_copy(pair: Pair) -> None:
    tx = pair.tx
    with tx.alloc(1) as batch:
        frame = batch[0]
        frame.length = 60
        view = memoryview(frame)
        assert not view.readonly and len(view) == 60
        view[0:6] = b"\xaa" * 6
        assert bytes(frame)[0:6] == b"\xaa" * 6
        frame[6] = 0x11
        assert view[6] == 0x11
        # the frame's bytes live in the Umem: a view of the whole region sees them
        region = memoryview(tx.umem)
        assert bytes(region[frame.addr : frame.addr + 6]) == b"\xaa" * 6
        region.release()
        view.release()


@privileged
def test_frame_numpy_view(pair: Pair) -> None:
    np = pytest.importorskip("numpy")
    tx = pair.tx
    with tx.alloc(1) as batch:
        frame = batch[0]
        frame.write(numbered(pair.lab, 1))
        arr = np.frombuffer(frame, dtype="uint8")
        assert arr.shape == (64,)
        assert arr.tobytes() == bytes(frame)
        arr[0:6] = 0xEE  # writable, zero copy
        assert bytes(frame)[0:6] == b"\xee" * 6
        with pytest.raises(BufferError):
            batch.release()
        del arr
        gc.collect()
    assert tx.umem.free_frames == TX_FRAMES


@privileged
def test_with_batch_releases_frames(pair: Pair) -> None:
    tx = pair.tx
    with tx.alloc(10) as batch:
        assert len(batch) == 10
        assert tx.umem.free_frames == TX_FRAMES - 10
    assert batch.closed
    assert tx.umem.free_frames == TX_FRAMES
    # sent inside the block: nothing to release on exit, nothing released twice
    with tx.alloc(5) as batch:
        batch.write_all(numbered(pair.lab, 0))
        assert tx.send(batch) == 5
    wait_completed(tx)
    assert tx.umem.free_frames == TX_FRAMES
    # released on exceptions too
    with pytest.raises(RuntimeError), tx.alloc(3):
        raise RuntimeError("boom")
    assert tx.umem.free_frames == TX_FRAMES
    drain(pair.rx, timeout=0.2)
    check_healthy(pair)


@privileged
def test_batch_lengths_write_at_and_set_lengths(pair: Pair) -> None:
    tx = pair.tx
    with tx.alloc(3) as batch:
        assert batch.lengths == [0, 0, 0]
        batch[0].write(b"a" * 60)
        batch[1].write(b"b" * 70)
        assert batch.lengths == [60, 70, 0]
        assert batch.nbytes == 130
        batch.set_lengths(64)
        assert batch.lengths == [64, 64, 64] and batch.nbytes == 192
        batch.write_at(2, b"XY")
        for f in batch:
            assert bytes(f)[2:4] == b"XY"
        assert batch.lengths == [64, 64, 64]
        batch.write_at(62, b"ZZ")  # ends exactly at the length
        before = batch.to_list()
        for offset, data in ((63, b"ZZ"), (64, b"Z"), (10_000, b"")):
            with pytest.raises(ValueError, match=f"offset={offset}"):
                batch.write_at(offset, data)
        with pytest.raises(ValueError, match="invalid offset -1"):
            batch.write_at(-1, b"Z")
        assert batch.to_list() == before
        with pytest.raises(ValueError):
            batch.set_lengths(batch[0].capacity + 1)
        with pytest.raises(ValueError, match="invalid length -1"):
            batch.set_lengths(-1)
        assert batch.lengths == [64, 64, 64]
        batch.set_lengths(batch[0].capacity)
        assert batch.lengths == [batch[0].capacity] * 3
        batch.write_all(b"q" * 61)
        assert batch.lengths == [61] * 3 and batch.to_list() == [b"q" * 61] * 3
        assert [f.index for f in batch] == [batch[i].index for i in range(3)]
        assert len({f.index for f in batch}) == 3
        with pytest.raises(IndexError):
            batch[3]
        assert batch[-1].index == batch[2].index


# The 10,000-cycle leak test is in test_leaks.py.


@privileged
def test_batch_swap_macs_and_copy_from(pair: Pair) -> None:
    tx, rx = pair.tx, pair.rx
    frames = [numbered(pair.lab, seq, 64 + seq) for seq in range(3)]
    with tx.alloc(3) as batch:
        for frame, data in zip(batch, frames, strict=True):
            frame.write(data)
        batch.swap_macs()
        for frame, data in zip(batch, frames, strict=True):
            assert bytes(frame) == data[6:12] + data[:6] + data[12:]
        batch.swap_macs()
        assert batch.to_list() == frames
        # Across UMEMs: tx and rx have their own.
        with rx.alloc(2) as copy:
            assert copy.copy_from(batch) == 2
            assert copy.to_list() == frames[:2]
            assert batch.to_list() == frames  # the source is untouched
            with pytest.raises(ValueError, match="the source is this batch"):
                copy.copy_from(copy)
        batch[1].length = 11
        before = batch.to_list()
        with pytest.raises(ValueError, match="frame 1 is shorter than two MAC addresses"):
            batch.swap_macs()
        assert batch.to_list() == before
    with rx.alloc(1) as copy, pytest.raises(ValueError, match="released"):
        copy.copy_from(batch)
    check_healthy(pair)
