"""Shared pieces of the hypothesis suites (``test_prop_*.py``): example counts that follow the
active profile, an RFC 1071 checksum written independently of ``afxdp.packet``, and the parts
the two frame-ownership state machines share (:class:`BatchRules`).

The profiles are registered in ``conftest.py``: ``ci`` (the default; derandomized, so every run
tries the same examples), ``dev`` (random, for local runs) and ``soak`` (ten times the examples).
Privileged suites pin small per-test counts, since each example costs a round trip through a
veth; :func:`examples` scales them with the profile, so ``--hypothesis-profile=soak`` makes
every suite ten times longer.
"""

from __future__ import annotations

import socket
import struct
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

if TYPE_CHECKING:
    import afxdp

T = TypeVar("T")

#: Examples of hypothesis's default profile, the unit :func:`examples` scales by.
_BASE_EXAMPLES = 100


def examples(count: int) -> int:
    """``count`` examples under the ci/dev profiles, scaled up under ``soak``."""
    return max(1, count * settings.default.max_examples // _BASE_EXAMPLES)


def internet_sum(data: bytes) -> int:
    """The 16-bit ones' complement sum of ``data`` (odd length padded with a zero byte), word
    by word, as RFC 1071 describes it: the oracle the codecs are checked against."""
    if len(data) % 2:
        data += b"\0"
    total = 0
    for i in range(0, len(data), 2):
        total += data[i] << 8 | data[i + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return total


def checksum(data: bytes) -> int:
    """The RFC 1071 checksum to store in a header whose checksum field is zero."""
    return ~internet_sum(data) & 0xFFFF


# --- the frame-ownership state machines (test_prop_ownership.py, test_prop_shared.py) ----------
#
# What both machines share: the model of a live batch, the rules that edit batches or export
# their memory (they need no socket), the invariant that batches hold exactly the model's
# frames, the peer that records what reaches the lab's end a, and opening a socket while the
# previous example's is still being released. Each machine adds the rules that move frames
# between the pool, the rings and batches, and the invariant that they add up.

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
ETHERTYPE = 0x88B5  # IEEE local experimental: no stack in the lab answers it
FRAME_SIZE = 2048
MAX_WIRE = 1514  # the lab's MTU plus the Ethernet header: longer frames never reach the peer
INJECT_PREFIX = bytes.fromhex("025a")
WRITE_PREFIX = bytes.fromhex("025b")


@dataclass
class BatchModel:
    """A live batch and what the model says it holds."""

    batch: afxdp.FrameBatch
    contents: list[bytes]  # what each frame holds (its first `length` bytes)
    indices: list[int]  # the UMEM frame of each (Frame.index)
    views: list[memoryview] = field(default_factory=list)
    queue: int | None = None  # the rx queue it was received on (None: allocated)

    @classmethod
    def of(cls, batch: afxdp.FrameBatch, contents: list[bytes], **kw: Any) -> BatchModel:
        return cls(batch, contents, batch.indices.tolist(), **kw)

    def consumed(self, n: int) -> None:
        """The first `n` frames left the batch (sent); the rest are re-indexed from 0."""
        self.contents, self.indices = self.contents[n:], self.indices[n:]


def open_retrying(make: Callable[[], T], timeout: float = 5.0) -> T:
    """``make()`` (which opens a socket or a Port), retried while the kernel says EBUSY: the
    previous example's socket on the same queue may still be releasing (an RCU grace period)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return make()
        except OSError as exc:
            if ("EBUSY" not in str(exc) and exc.errno != 16) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class Peer:
    """A raw AF_PACKET socket on the lab's end a: sends through the stack, and counts by content
    what arrives there (not what end a sends)."""

    def __init__(self, lab: Any) -> None:
        with lab.enter("a"):
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            self.sock.bind((lab.if_a, 0))
        self.arrived: Counter[bytes] = Counter()

    def drain(self) -> None:
        while True:
            try:
                data, addr = self.sock.recvfrom(4096, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            if addr[2] != PACKET_OUTGOING:
                self.arrived[data] += 1

    def send(self, frame: bytes) -> None:
        self.sock.send(frame)

    def close(self) -> None:
        self.sock.close()


class BatchRules(RuleBasedStateMachine):
    """The batch-editing and memory-export rules of the ownership machines.

    A subclass sets ``self.umem`` (and ``self.umem_closed``) in its ``@initialize`` rule, appends
    a :class:`BatchModel` to ``self.batches`` for every batch it takes, and calls
    :meth:`forget` for every batch it consumes. Frames are written for the lab's end a.
    """

    umem: afxdp.Umem
    umem_closed = False

    def __init__(self, lab: Any) -> None:
        super().__init__()
        self.lab = lab
        self.seq = 0
        self.batches: list[BatchModel] = []
        self.umem_views: list[memoryview] = []

    # --- helpers ---------------------------------------------------------------------------

    def packet(self, prefix: bytes, dst: str, payload: bytes) -> bytes:
        """A frame to `dst` with a source MAC no other frame of the run has."""
        self.seq += 1
        src = prefix + struct.pack("!I", self.seq)
        mac = bytes.fromhex(dst.replace(":", ""))
        return mac + src + struct.pack("!H", ETHERTYPE) + payload

    def held(self) -> int:
        return sum(len(m.contents) for m in self.batches)

    def pick(self, data: st.DataObject, *, empty_too: bool = False) -> BatchModel:
        """A live batch (holding at least one frame unless ``empty_too``)."""
        choices = [m for m in self.batches if m.contents or empty_too]
        return data.draw(st.sampled_from(choices), label="batch")

    def forget(self, model: BatchModel) -> None:
        """The batch was consumed: its frames are elsewhere now, and it refuses every use."""
        self.batches.remove(model)
        with pytest.raises(ValueError, match="FrameBatch was"):
            model.batch.set_lengths(14)
        assert len(model.batch) == 0 and model.batch.closed

    def release_views(self) -> None:
        """Teardown: lets go of every memoryview the run still holds."""
        for model in self.batches:
            for view in model.views:
                view.release()
        for view in self.umem_views:
            view.release()

    # --- editing batches -----------------------------------------------------------------------

    @precondition(lambda self: any(m.contents for m in self.batches))
    @rule(data=st.data(), size=st.integers(14, MAX_WIRE) | st.integers(FRAME_SIZE - 64, 3000))
    def write(self, data: st.DataObject, size: int) -> None:
        model = self.pick(data)
        i = data.draw(st.integers(0, len(model.contents) - 1), label="frame")
        packet = self.packet(WRITE_PREFIX, self.lab.mac_a, bytes(max(0, size - 14)))
        frame = model.batch[i]
        if size > frame.capacity:
            with pytest.raises(ValueError):
                frame.write(packet)
        else:
            frame.write(packet)
            model.contents[i] = packet
        assert bytes(frame) == model.contents[i]

    @precondition(lambda self: any(m.contents for m in self.batches))
    @rule(data=st.data(), size=st.integers(14, 200))
    def write_all(self, data: st.DataObject, size: int) -> None:
        model = self.pick(data)
        packet = self.packet(WRITE_PREFIX, self.lab.mac_a, bytes(range(size - 14)))
        model.batch.write_all(packet)
        model.contents = [packet] * len(model.contents)
        assert model.batch.to_list() == model.contents

    @precondition(lambda self: any(m.contents for m in self.batches))
    @rule(data=st.data(), offset=st.integers(14, 100), chunk=st.binary(min_size=1, max_size=8))
    def write_at(self, data: st.DataObject, offset: int, chunk: bytes) -> None:
        model = self.pick(data)
        if any(len(c) < offset + len(chunk) for c in model.contents):
            with pytest.raises(ValueError):
                model.batch.write_at(offset, chunk)
        else:
            model.batch.write_at(offset, chunk)
            model.contents = [c[:offset] + chunk + c[offset + len(chunk) :] for c in model.contents]
        assert model.batch.to_list() == model.contents

    @precondition(lambda self: any(m.contents for m in self.batches))
    @rule(data=st.data(), length=st.integers(14, MAX_WIRE) | st.integers(FRAME_SIZE, 5000))
    def set_lengths(self, data: st.DataObject, length: int) -> None:
        model = self.pick(data)
        before = model.batch.to_list()
        if any(length > frame.capacity for frame in model.batch):
            with pytest.raises(ValueError):
                model.batch.set_lengths(length)
            assert model.batch.to_list() == before  # nothing changed
            return
        model.batch.set_lengths(length)
        after = model.batch.to_list()
        # The bytes up to the old length are kept; the rest is whatever the frame held.
        assert all(
            a[: min(len(b), length)] == b[:length] for a, b in zip(after, before, strict=True)
        )
        model.contents = after

    @precondition(lambda self: sum(1 for m in self.batches if m.contents) >= 2)
    @rule(data=st.data())
    def copy_from(self, data: st.DataObject) -> None:
        """Copies between any two batches: received on one socket, allocated on another."""
        dst, src = self.pick(data), self.pick(data)
        if dst is src:
            return
        n = min(len(dst.contents), len(src.contents))
        # A received frame has less room than an allocated one (the kernel's XDP headroom):
        # a packet that does not fit its destination fails the whole copy.
        if any(len(src.contents[i]) > dst.batch[i].capacity for i in range(n)):
            event("copy_from refused: a packet does not fit")
            with pytest.raises(ValueError, match="does not fit"):
                dst.batch.copy_from(src.batch)
            assert dst.batch.to_list() == dst.contents  # nothing written
            return
        assert dst.batch.copy_from(src.batch) == n
        dst.contents[:n] = src.contents[:n]
        assert dst.batch.to_list() == dst.contents
        assert src.batch.to_list() == src.contents

    # --- memory exports ----------------------------------------------------------------------

    @precondition(lambda self: any(m.contents for m in self.batches))
    @rule(data=st.data(), poke=st.binary(min_size=1, max_size=4))
    def export_view(self, data: st.DataObject, poke: bytes) -> None:
        """A memoryview of a frame: writable, its writes are the frame's."""
        model = self.pick(data)
        i = data.draw(st.integers(0, len(model.contents) - 1), label="frame")
        view = memoryview(model.batch[i])
        assert bytes(view) == model.contents[i]
        if len(view) >= 14 + len(poke):
            view[14 : 14 + len(poke)] = poke
            c = model.contents[i]
            model.contents[i] = c[:14] + poke + c[14 + len(poke) :]
        model.views.append(view)

    @precondition(lambda self: any(m.views for m in self.batches))
    @rule(data=st.data())
    def release_view(self, data: st.DataObject) -> None:
        model = data.draw(st.sampled_from([m for m in self.batches if m.views]), label="batch")
        model.views.pop(data.draw(st.integers(0, len(model.views) - 1), label="view")).release()

    def close_umem_checked(self) -> None:
        """Umem.close(): refused (BufferError, nothing changes) while a memoryview of it lives;
        otherwise it closes, and closing again is a no-op. For the subclasses' close rules,
        whose preconditions differ."""
        if self.umem_views:
            event("Umem.close refused: memoryview alive")
            with pytest.raises(BufferError):
                self.umem.close()
            assert not self.umem.closed
            return
        self.umem.close()
        self.umem.close()
        self.umem_closed = True

    @precondition(lambda self: not self.umem_closed)
    @rule()
    def export_umem_view(self) -> None:
        self.umem_views.append(memoryview(self.umem))

    @precondition(lambda self: bool(self.umem_views))
    @rule()
    def release_umem_view(self) -> None:
        self.umem_views.pop().release()

    # --- invariants --------------------------------------------------------------------------

    @invariant()
    def batches_hold_the_model_frames(self) -> None:
        """Every batch holds exactly the frames the model gives it, and no frame is in two."""
        for model in self.batches:
            assert len(model.batch) == len(model.contents)
            assert model.batch.indices == model.indices
        indexes = [i for m in self.batches for i in m.indices]
        assert len(indexes) == len(set(indexes)), f"a frame in two batches: {sorted(indexes)}"
