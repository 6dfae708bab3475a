"""numpy over afxdp without copies: `Umem.frames` (the region as frame rows) and a batch's
`lengths`, `indices`, `offsets` and `addresses` (UIntArray, buffer protocol), so a batch is
gathered into and scattered back from a numpy array in two vectorised steps.
"""

from __future__ import annotations

import socket
import time

import pytest

afxdp = pytest.importorskip("afxdp")
np = pytest.importorskip("numpy")

from afxdp.testing import parse_numbered  # noqa: E402
from helpers import numbered_run, socket_pair  # noqa: E402
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


@pytest.mark.privileged
def test_batch_arrays_are_read_only_uint_buffers(lab) -> None:
    with socket_pair(lab) as pair, pair.tx.alloc(3) as batch:
        batch[0].write(b"x" * 60)
        batch[1].write(b"y" * 70)
        lengths = batch.lengths
        assert lengths == [60, 70, 0] and lengths == (60, 70, 0) and lengths != [60, 70]
        assert list(lengths) == [60, 70, 0] and lengths[-1] == 0 and len(lengths) == 3
        assert lengths.tolist() == [60, 70, 0] and lengths.format == "I"
        assert repr(lengths) == "UIntArray('I', [60, 70, 0])"
        arr = np.asarray(lengths)
        assert arr.dtype == np.uint32 and arr.tolist() == [60, 70, 0]
        # Zero copy: numpy wraps the array's own memory, read-only.
        assert np.asarray(lengths).ctypes.data == arr.ctypes.data
        assert not arr.flags.writeable
        with pytest.raises(ValueError):
            arr[0] = 1
        with pytest.raises(TypeError):
            memoryview(lengths)[0] = 1  # type: ignore[index]
        frame_size = pair.tx.umem.frame_size
        indices, offsets = np.asarray(batch.indices), np.asarray(batch.offsets)
        addresses = np.asarray(batch.addresses)
        assert indices.dtype == np.uint32 and addresses.dtype == np.uint64
        assert indices.tolist() == [f.index for f in batch]
        assert addresses.tolist() == [f.addr for f in batch]
        assert (addresses == indices.astype(np.uint64) * frame_size + offsets).all()
        assert memoryview(batch.addresses).format == "Q"
    with pytest.raises(ValueError):
        batch.lengths  # noqa: B018 - the batch was released: no snapshot of ended frames


@pytest.mark.privileged
def test_gather_edit_scatter_round_trip(lab) -> None:
    """Received frames -> one (n, L) numpy array (gather) -> vectorised edit -> back into the
    frames (scatter) -> sent out of the same socket and read on the wire."""
    count = 40
    sent = numbered_run(lab, 0, count, size=100)
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
        assert (lengths == 100).all()
        cols = np.asarray(batch.offsets)[:, None] + np.arange(100)
        block = frames[rows, cols]  # gather: one (count, 100) array, a copy
        assert [block[k].tobytes() for k in range(count)] == batch.to_list()
        flat = frames.reshape(-1)  # the same bytes by UMEM address
        addresses = np.asarray(batch.addresses).astype(np.intp)[:, None]
        assert (flat[addresses + np.arange(100)] == block).all()

        block[:, 0:6], block[:, 6:12] = block[:, 6:12].copy(), block[:, 0:6].copy()  # swap MACs
        frames[rows, cols] = block  # scatter back
        del frames, flat

        expected = [data[6:12] + data[:6] + data[12:] for data in sent]
        order = [parse_numbered(p) for p in batch.to_list()]
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
            if addr[2] != socket.PACKET_OUTGOING and parse_numbered(data) is not None:
                wire.append(data)
    assert sorted(wire, key=parse_numbered) == expected  # type: ignore[arg-type]
