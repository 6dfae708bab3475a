"""numpy over afxdp without copies: `Umem.frames` (the region as frame rows) and a batch's
`lengths`, `indices`, `offsets` and `addresses` (UIntArray, buffer protocol), so a batch is
gathered into and scattered back from a numpy array in two vectorised steps.
"""

from __future__ import annotations

import ctypes
import hashlib
import socket
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

afxdp = pytest.importorskip("afxdp")
np = pytest.importorskip("numpy")

from afxdp.testing import parse_numbered  # noqa: E402
from helpers import drain, numbered, numbered_run, socket_pair  # noqa: E402
from test_cli import sniffer  # noqa: E402


def test_umem_frames_are_rows_of_the_region_without_a_copy() -> None:
    umem = afxdp.Umem(frame_count=16, frame_size=2048)
    frames_obj = umem.frames
    assert frames_obj.shape == (16, 2048) and len(frames_obj) == 16
    frames = np.asarray(frames_obj)
    assert frames.shape == (16, 2048) and frames.dtype == np.uint8
    assert frames.strides == (2048, 1) and frames.flags.writeable and frames.flags.c_contiguous
    view = memoryview(frames_obj)
    assert (view.ndim, view.format, view.shape, view.nbytes) == (2, "B", (16, 2048), 16 * 2048)
    view.release()
    frames[3, 10:14] = np.frombuffer(b"abcd", np.uint8)
    region = memoryview(umem)  # the flat byte view is unchanged: byte addresses index it
    assert bytes(region[3 * 2048 + 10 : 3 * 2048 + 14]) == b"abcd"
    region[5 * 2048] = 0x5A
    assert frames[5, 0] == 0x5A
    region.release()
    # The Umem cannot close under a live export, as with memoryview(umem).
    with pytest.raises(BufferError):
        umem.close()
    del frames
    umem.close()
    assert umem.closed
    with pytest.raises(ValueError, match="closed"):
        umem.frames  # noqa: B018
    with pytest.raises(ValueError, match="closed"):
        memoryview(frames_obj)  # an older UmemFrames of a closed Umem exports nothing


DESC = 16  # bytes per frame descriptor (index, offset, len, options: four u32)


@pytest.mark.privileged
def test_batch_arrays_are_strided_views_of_the_descriptors(lab) -> None:
    with socket_pair(lab) as pair, pair.tx.alloc(3) as batch:
        batch[0].write(b"x" * 60)
        batch[1].write(b"y" * 70)
        lengths = batch.lengths
        assert lengths == [60, 70, 0] and lengths == (60, 70, 0) and lengths != [60, 70]
        assert list(lengths) == [60, 70, 0] and lengths[-1] == 0 and len(lengths) == 3
        assert lengths.tolist() == [60, 70, 0] and lengths.format == "I"
        assert repr(lengths) == "UIntArray('I', [60, 70, 0])"
        with pytest.raises(IndexError):
            lengths[3]
        indices, offsets = batch.indices, batch.offsets
        for view, readonly in ((lengths, False), (indices, True), (offsets, True)):
            mv = memoryview(view)
            assert (mv.format, mv.itemsize, mv.ndim, mv.shape) == ("I", 4, 1, (3,))
            assert mv.strides == (DESC,) and mv.nbytes == 12 and mv.readonly is readonly
            assert not mv.c_contiguous and not mv.contiguous
            mv.release()
        lens = np.asarray(lengths)
        idx, offs = np.asarray(indices), np.asarray(offsets)
        assert lens.dtype == idx.dtype == offs.dtype == np.uint32
        assert lens.strides == idx.strides == offs.strides == (DESC,)
        assert lens.tolist() == [60, 70, 0] and idx.tolist() == [f.index for f in batch]
        assert lens.flags.writeable and not idx.flags.writeable and not offs.flags.writeable
        # No copy: the three arrays are the fields of the same descriptors, side by side.
        assert offs.ctypes.data == idx.ctypes.data + 4
        assert lens.ctypes.data == idx.ctypes.data + 8
        assert np.asarray(batch.lengths).ctypes.data == lens.ctypes.data
        with pytest.raises(ValueError):
            idx[0] = 1
        with pytest.raises(ValueError):
            offs[0] = 1
        with pytest.raises(TypeError):
            memoryview(indices)[0] = 1  # type: ignore[index]
        # A consumer that asks for contiguous memory (a simple request) is refused.
        with pytest.raises(BufferError, match="strided"):
            hashlib.sha256(lengths)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="not C contiguous"):
            (ctypes.c_uint32 * 3).from_buffer(lengths)  # ctypes checks the strides itself
        assert memoryview(lengths).tobytes() == np.array([60, 70, 0], np.uint32).tobytes()
        # Reads are live: a change through the frames shows in the view and the numpy array.
        batch[2].write(b"z" * 80)
        assert lengths[2] == 80 and lens[2] == 80 and lengths == [60, 70, 80]
        # Writes through numpy are the frames' lengths.
        lens[:] = 64
        assert [len(f) for f in batch] == [64, 64, 64]
        assert [f.length for f in batch] == [64, 64, 64] and batch.nbytes == 192
        assert batch.to_list() == [b"x" * 60 + b"\0" * 4, b"y" * 64, b"z" * 64]
        memoryview(lengths)[1] = 14
        assert batch[1].length == 14 and lengths == [64, 14, 64]
        # The addresses are a computed copy (u64): the descriptors do not hold them.
        frame_size = pair.tx.umem.frame_size
        addresses = np.asarray(batch.addresses)
        assert addresses.dtype == np.uint64 and memoryview(batch.addresses).format == "Q"
        assert memoryview(batch.addresses).strides == (8,) and not addresses.flags.writeable
        assert addresses.tolist() == [f.addr for f in batch]
        assert (addresses == idx.astype(np.uint64) * frame_size + offs).all()
        del lens, idx, offs, lengths, indices, offsets, view  # the views hold the batch
    assert batch.closed
    for name in ("lengths", "indices", "offsets", "addresses"):
        with pytest.raises(ValueError, match="released"):
            getattr(batch, name)  # the batch was released: no view of ended frames


@pytest.mark.privileged
def test_a_live_view_blocks_send_and_release_until_it_is_gone(lab) -> None:
    with socket_pair(lab) as pair:
        tx = pair.tx
        batch = tx.alloc(2)
        for seq, frame in enumerate(batch):
            frame.write(numbered(lab, seq))
        free = tx.umem.free_frames
        view = batch.indices
        lens = np.asarray(batch.lengths)  # the view it came from lives as long as the array
        mv = memoryview(batch.offsets)
        for call in (lambda: tx.send(batch), batch.release, lambda: tx.release(batch)):
            with pytest.raises(BufferError, match="export"):
                call()
            assert not batch.closed and len(batch) == 2 and tx.umem.free_frames == free
        with pytest.raises(BufferError):
            batch.__exit__(None, None, None)
        del view
        mv.release()
        del mv
        with pytest.raises(BufferError, match="1 export"):
            tx.send(batch)  # the numpy array still holds a view
        assert tx.stats().sent == 0
        del lens
        assert tx.send(batch) == 2 and batch.closed
        with pytest.raises(ValueError, match="sent"):
            batch.lengths  # noqa: B018
        assert sorted(drain(pair.rx, 2)) == [0, 1]  # type: ignore[type-var]


@pytest.mark.privileged
def test_lengths_written_through_numpy_are_checked_at_send(lab) -> None:
    """A bad length written through the view raises at send naming the frame and the value;
    nothing is sent or lost, and the batch goes out once the length is fixed."""
    with socket_pair(lab) as pair:
        tx = pair.tx
        batch = tx.alloc(4)
        for seq, frame in enumerate(batch):
            frame.write(numbered(lab, seq))
        free = tx.umem.free_frames
        capacity = batch[2].capacity
        lens = np.asarray(batch.lengths)
        lens[2] = capacity + 1
        assert batch[2].length == capacity + 1  # stored as written: checked where it is used
        del lens
        bad = rf"frame length {capacity + 1}\b.*frame 2 of the batch"
        with pytest.raises(ValueError, match=bad):
            tx.send(batch)
        # Nothing went out, nothing was lost.
        assert tx.stats().sent == 0 and tx.in_flight == 0
        assert not batch.closed and len(batch) == 4 and tx.umem.free_frames == free
        # Every other use of the frame refuses the length too, and none crashes.
        frame = batch[2]
        with pytest.raises(ValueError, match=str(capacity + 1)):
            bytes(frame)
        with pytest.raises(ValueError, match=str(capacity + 1)):
            memoryview(frame)
        with pytest.raises(ValueError, match=str(capacity + 1)):
            frame[capacity] = 1
        with pytest.raises(ValueError, match=str(capacity + 1)):
            frame[capacity - 2 : capacity + 1] = b"abc"
        with pytest.raises(ValueError, match=str(capacity + 1)):
            batch.to_list()
        with pytest.raises(ValueError, match=str(capacity + 1)):
            batch.write_at(0, b"abc")
        with tx.alloc(4) as copy:
            with pytest.raises(ValueError, match=str(capacity + 1)):
                copy.copy_from(batch)
            assert copy.lengths == [0, 0, 0, 0]  # checked first: nothing copied
        assert bytes(batch[0]) == numbered(lab, 0)  # write_at wrote nothing either
        # Zero is refused as well (the kernel would skip the descriptor, never completing it).
        lengths = batch.lengths
        memoryview(lengths)[2] = 0
        del lengths
        with pytest.raises(ValueError, match=r"frame 2 of the batch is empty"):
            tx.send(batch)
        assert tx.stats().sent == 0 and len(batch) == 4
        lens = np.asarray(batch.lengths)
        lens[2] = 64
        del lens
        assert tx.send(batch) == 4 and batch.closed
        assert sorted(drain(pair.rx, 4)) == [0, 1, 2, 3]  # type: ignore[type-var]


@pytest.mark.privileged
def test_lengths_written_through_the_view_are_what_the_frames_report(lab) -> None:
    with socket_pair(lab) as pair:
        tx = pair.tx
        capacity = tx.umem.tx_capacity

        @settings(max_examples=40, deadline=None)
        @given(lengths=st.lists(st.integers(1, capacity), min_size=0, max_size=16))
        def check(lengths: list[int]) -> None:
            with tx.alloc(len(lengths)) as batch:
                view = np.asarray(batch.lengths)
                view[:] = np.array(lengths, dtype=np.uint32)
                del view
                assert batch.lengths == lengths
                assert [len(f) for f in batch] == lengths
                assert [f.length for f in batch] == lengths
                assert batch.nbytes == sum(lengths)
                assert [len(p) for p in batch.to_list()] == lengths

        check()


@pytest.mark.privileged
def test_gather_edit_scatter_round_trip(lab) -> None:
    """Received frames -> one (n, L) numpy array (gather) -> vectorised edit -> back into the
    frames (scatter) -> new lengths through the `lengths` view -> sent out of the same socket
    and read on the wire."""
    count, size, extra = 40, 100, 20
    sent = numbered_run(lab, 0, count, size=size)
    with socket_pair(lab) as pair, sniffer(lab, "a") as tap:
        with pair.tx.alloc(count) as out:
            for frame, data in zip(out, sent, strict=True):
                frame.write(data)
            assert pair.tx.send(out) == count
        # All of them in one batch, to gather at once.
        deadline = time.monotonic() + 5
        while pair.rx.rx_available < count and time.monotonic() < deadline:
            pair.tx.complete()
            time.sleep(0.01)
        batch = pair.rx.recv(64)
        assert len(batch) == count

        frames = np.asarray(pair.rx.umem.frames)
        rows = np.asarray(batch.indices)[:, None]
        lengths = np.asarray(batch.lengths)
        assert (lengths == size).all()
        cols = np.asarray(batch.offsets)[:, None] + np.arange(size + extra)
        block = frames[rows, cols]  # gather: one (count, size + extra) array, a copy
        assert [block[k, :size].tobytes() for k in range(count)] == batch.to_list()
        flat = frames.reshape(-1)  # the same bytes by UMEM address
        addresses = np.asarray(batch.addresses).astype(np.intp)[:, None]
        assert (flat[addresses + np.arange(size)] == block[:, :size]).all()

        block[:, 0:6], block[:, 6:12] = block[:, 6:12].copy(), block[:, 0:6].copy()  # swap MACs
        block[:, size:] = np.arange(extra, dtype=np.uint8)  # a trailer after each packet
        frames[rows, cols] = block  # scatter back
        lengths[:] = size + extra  # the new lengths, in place
        assert [len(frame) for frame in batch] == [size + extra] * count
        del frames, flat, rows, lengths  # release the exports: the batch can now be sent

        trailer = bytes(range(extra))
        expected = [data[6:12] + data[:6] + data[12:] + trailer for data in sent]
        order = [parse_numbered(p[:size]) for p in batch.to_list()]
        assert batch.to_list() == [expected[seq] for seq in order]  # type: ignore[index]
        assert pair.rx.send(batch) == count  # the edited frames, back out towards a
        wire = []
        deadline = time.monotonic() + 5
        while len(wire) < count and time.monotonic() < deadline:
            pair.rx.complete()
            try:
                data, addr = tap.recvfrom(4096)
            except TimeoutError:
                continue
            if addr[2] != socket.PACKET_OUTGOING and parse_numbered(data[:size]) is not None:
                wire.append(data)
    assert sorted(wire, key=lambda d: parse_numbered(d[:size])) == expected  # type: ignore[arg-type,return-value]
