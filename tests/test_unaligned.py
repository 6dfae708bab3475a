"""Unaligned chunk mode and UMEMs on huge pages, for real across a veth pair (privileged).

In unaligned mode (``Umem(..., unaligned=True)``, ``XDP_UMEM_UNALIGNED_CHUNK_FLAG``) a frame may
have any size the kernel registers, e.g. 3000 or 4001 bytes, so frames straddle 4 KiB page
boundaries, and the kernel's ring addresses carry the packet's offset in their top 16 bits
(``base | offset << 48``). afxdp still hands out only its own frames, laid end to end, and
decodes every rx and completion address back to one of them. ``hugepages=True`` maps the region
from 2 MiB huge pages (``MAP_HUGETLB``). Frames larger than a page are refused in every mode:
6.18 does not register them, not even on huge pages.

The streams are the datapath tests' (numbered frames, flow control, checked byte for byte,
complete and in order) with 1514-byte packets, long enough to straddle a page in most frames.
The huge-page tests reserve the pages they need by raising ``/proc/sys/vm/nr_hugepages`` and
set it back afterwards, also on failure.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

afxdp = pytest.importorskip("afxdp")

from afxdp.testing import parse_numbered  # noqa: E402
from helpers import numbered_run, socket_pair  # noqa: E402
from test_datapath import (  # noqa: E402
    XDP_PACKET_HEADROOM,
    assert_clean_stream_stats,
    stream,
    wait_completed,
)

pytestmark = pytest.mark.privileged

COUNT = 20_000
SIZE = 1514  # MTU 1500 + Ethernet header: most packets straddle a 4 KiB page in odd frames
PAGE = os.sysconf("SC_PAGE_SIZE")
HUGE_PAGE = 2 << 20
NR_HUGEPAGES = Path("/proc/sys/vm/nr_hugepages")
HUGE_2M = Path("/sys/kernel/mm/hugepages/hugepages-2048kB")


def checked_positions(umem: afxdp.Umem, headroom: int):
    """An ``on_frame`` for :func:`stream` that checks each received frame sits where unaligned
    mode puts it: in frame ``index`` (``index * frame_size`` bytes into the region), after the
    UMEM headroom and the kernel's XDP headroom, with the very bytes the region holds there.
    Returns it and the list of frames whose packet straddled a page boundary."""
    region = memoryview(umem)
    straddling: list[int] = []

    def check(frame) -> None:
        start = frame.index * umem.frame_size
        assert frame.addr == start + headroom + XDP_PACKET_HEADROOM, (frame.index, frame.addr)
        assert region[frame.addr : frame.addr + len(frame)] == bytes(frame)
        if frame.addr // PAGE != (frame.addr + len(frame) - 1) // PAGE:
            straddling.append(frame.index)

    return check, straddling, region


# --- 1. streams in unaligned mode -----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["native", "generic"])
@pytest.mark.parametrize("frame_size", [3000, 4001])
def test_unaligned_stream_arrives_complete_in_order_and_intact(
    lab, mode: str, frame_size: int
) -> None:
    payloads = numbered_run(lab, 0, COUNT, size=SIZE)
    with socket_pair(lab, mode=mode, frame_size=frame_size, unaligned=True, tx_size=0) as pair:
        assert pair.prog.mode == mode
        for umem in (pair.rx.umem, pair.tx.umem):
            assert umem.unaligned and umem.frame_size == frame_size
            assert len(umem) == umem.frame_count * frame_size  # laid end to end, no padding
        assert pair.rx.umem.rx_capacity == frame_size - XDP_PACKET_HEADROOM
        check, straddling, region = checked_positions(pair.rx.umem, 0)
        try:
            assert stream(pair, payloads, check) == list(range(COUNT))
        finally:
            region.release()
        assert_clean_stream_stats(pair, COUNT)
        # The frames the kernel wrote across a page boundary were there, and arrived intact.
        assert len(straddling) > COUNT // 4


def bounce(
    a: afxdp.Socket,
    b: afxdp.Socket,
    payloads: list[bytes],
    *,
    window: int,
    sent_out: Callable[[afxdp.FrameBatch], None] = lambda out: None,
    got_in: Callable[[afxdp.FrameBatch], None] = lambda batch: None,
) -> tuple[list[int], int]:
    """``a`` sends every payload (at most ``window`` ahead of what came back); ``b`` sends each
    frame it receives back in place with its MAC addresses swapped. Returns the sequence
    numbers ``a`` got back, in arrival order, each checked against its payload, and how many
    frames ``b`` sent. ``sent_out``/``got_in`` look at each batch before a sends / b sends it."""
    count = len(payloads)
    sent = bounced = 0
    back: list[int] = []
    deadline = time.monotonic() + 30
    while len(back) < count:
        assert time.monotonic() < deadline, f"stalled: {sent} sent, {len(back)} back"
        if sent < count and sent - len(back) < window:
            with a.alloc(min(64, count - sent)) as out:
                for i, frame in enumerate(out):
                    frame.write(payloads[sent + i])
                sent_out(out)
                sent += a.send(out)
        with b.recv(64) as batch:
            got_in(batch)
            if len(batch):
                batch.swap_macs()
                n = len(batch)
                assert b.send(batch) == n  # whole: b's tx ring has room for far more than 64
                bounced += n
        b.complete()
        a.complete()
        with a.recv(256, timeout=0.0 if sent < count else 0.05) as batch:
            for frame in batch:
                data = bytes(frame)
                restored = data[6:12] + data[:6] + data[12:]
                seq = parse_numbered(restored)
                assert seq is not None and restored == payloads[seq], data[:64].hex()
                back.append(seq)
    return back, bounced


def test_unaligned_stream_with_headroom_and_frames_sent_back(lab) -> None:
    """4001-byte frames with 200 bytes of headroom: data after both headrooms; every frame b
    receives it sends back from the same socket, in place (tx and completion addresses in the
    unaligned encoding); a receives them all."""
    frame_size, headroom, count = 4001, 200, 3000
    payloads = numbered_run(lab, 0, count, size=SIZE)

    def umem() -> afxdp.Umem:
        return afxdp.Umem(4096, frame_size, headroom, unaligned=True)

    with ExitStack() as stack:
        with lab.enter("a"):
            prog_a = stack.enter_context(afxdp.Program.attach(lab.if_a, mode="native"))
            a = stack.enter_context(afxdp.Socket(lab.if_a, 0, umem=umem(), program=prog_a))
        with lab.enter("b"):
            prog_b = stack.enter_context(afxdp.Program.attach(lab.if_b, mode="native"))
            b = stack.enter_context(afxdp.Socket(lab.if_b, 0, umem=umem(), program=prog_b))
        check, _, region = checked_positions(b.umem, headroom)
        try:

            def sent_out(out: afxdp.FrameBatch) -> None:
                assert [f.addr % frame_size for f in out] == [headroom] * len(out)

            def got_in(batch: afxdp.FrameBatch) -> None:
                for frame in batch:
                    check(frame)

            back, bounced = bounce(a, b, payloads, window=500, sent_out=sent_out, got_in=got_in)
            assert bounced == count
        finally:
            region.release()
        assert back == list(range(count))
        wait_completed(a, time.monotonic() + 5)
        wait_completed(b, time.monotonic() + 5)
        sa, sb = a.stats(), b.stats()
    assert (sa.sent, sa.completed, sa.received) == (count, count, count)
    assert (sb.received, sb.sent, sb.completed) == (count, count, count)
    assert sa.tx_invalid_descs == sb.tx_invalid_descs == sa.rx_dropped == sb.rx_dropped == 0


def test_shared_unaligned_umem_on_both_ends(lab) -> None:
    """One unaligned Umem of 3000-byte frames behind a socket on end a and one on end b: a's
    frames go to b, which sends the very frames back; one frame table covers both."""
    umem = afxdp.Umem(2048, 3000, unaligned=True)
    count = 2000
    payloads = numbered_run(lab, 0, count, size=SIZE)
    with ExitStack() as stack:
        with lab.enter("a"):
            prog_a = stack.enter_context(afxdp.Program.attach(lab.if_a, mode="native"))
            a = stack.enter_context(afxdp.Socket(lab.if_a, 0, umem=umem, program=prog_a))
        with lab.enter("b"):
            prog_b = stack.enter_context(afxdp.Program.attach(lab.if_b, mode="native"))
            b = stack.enter_context(afxdp.Socket(lab.if_b, 0, umem=umem, program=prog_b))

        def got_in(batch: afxdp.FrameBatch) -> None:
            assert all(f.addr == f.index * 3000 + XDP_PACKET_HEADROOM for f in batch)

        back, bounced = bounce(a, b, payloads, window=300, got_in=got_in)
        assert back == list(range(count)) and bounced == count
        wait_completed(a, time.monotonic() + 5)
        wait_completed(b, time.monotonic() + 5)
        assert a.stats().rx_invalid_descs == b.stats().tx_invalid_descs == 0
    # Every frame is back in the one pool once both sockets closed.
    assert umem.free_frames == umem.frame_count


# --- 2. huge pages ------------------------------------------------------------------------------


def huge_pages() -> tuple[int, int]:
    """(reserved, free) 2 MiB huge pages now."""
    return (
        int((HUGE_2M / "nr_hugepages").read_text()),
        int((HUGE_2M / "free_hugepages").read_text()),
    )


def cannot(reason: str) -> None:
    """The privileged-test policy for a machine that cannot give the test its huge pages."""
    if os.environ.get("AFXDP_REQUIRE_PRIVILEGED") == "1":
        pytest.fail(f"AFXDP_REQUIRE_PRIVILEGED=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@contextmanager
def reserved_huge_pages(pages: int) -> Iterator[None]:
    """At least ``pages`` free 2 MiB huge pages inside the block: ``nr_hugepages`` is raised by
    what is missing and set back afterwards, also when the block fails."""
    size = re.search(r"^Hugepagesize:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
    if not HUGE_2M.is_dir() or size is None or size[1] != "2048":
        cannot(f"the kernel's default huge pages ({NR_HUGEPAGES}) are not 2 MiB ones")
    old = int(NR_HUGEPAGES.read_text())
    _, free = huge_pages()
    missing = max(0, pages - free)
    try:
        if missing:
            try:
                NR_HUGEPAGES.write_text(str(old + missing))
            except OSError as e:
                asked, missing = old + missing, 0  # nothing to set back
                cannot(f"cannot raise {NR_HUGEPAGES} to {asked}: {e}")
            reserved, free = huge_pages()
            if free < pages:
                cannot(
                    f"the kernel reserved only {reserved} huge pages ({free} free) of the "
                    f"{old + missing} asked in {NR_HUGEPAGES} (memory too fragmented or short)"
                )
        yield
    finally:
        if missing:
            NR_HUGEPAGES.write_text(str(old))


def pages_for(frame_count: int, frame_size: int) -> int:
    return -(-frame_count * frame_size // HUGE_PAGE)


@pytest.mark.parametrize(
    ("frame_size", "unaligned"),
    [(4096, False), (3000, True), (4001, True)],
    ids=["aligned-4096", "unaligned-3000", "unaligned-4001"],
)
def test_stream_from_a_umem_on_huge_pages(lab, frame_size: int, unaligned: bool) -> None:
    """Both Umems on huge pages; the stream arrives complete, in order and intact."""
    tx_frames, rx_frames = 2048, 4096
    pages = pages_for(tx_frames, frame_size) + pages_for(rx_frames, frame_size)
    payloads = numbered_run(lab, 0, COUNT, size=SIZE)
    with (
        reserved_huge_pages(pages),
        socket_pair(
            lab,
            mode="native",
            tx_frames=tx_frames,
            rx_frames=rx_frames,
            frame_size=frame_size,
            unaligned=unaligned,
            hugepages=True,
            tx_size=0,
        ) as pair,
    ):
        for umem in (pair.rx.umem, pair.tx.umem):
            assert umem.hugepages and umem.unaligned == unaligned
        check, _, region = checked_positions(pair.rx.umem, 0)
        try:
            assert stream(pair, payloads, check) == list(range(COUNT))
        finally:
            region.release()
        assert_clean_stream_stats(pair, COUNT)


def test_hugepages_none_uses_them_when_free(lab) -> None:
    with reserved_huge_pages(pages_for(1024, 3000)):
        umem = afxdp.Umem(1024, 3000, unaligned=True, hugepages=None)
        assert umem.hugepages
        assert "hugepages=True" in repr(umem)
        umem.close()


def test_too_few_huge_pages_is_a_clear_error_and_none_falls_back(privileged) -> None:
    """Asking for one huge page more than the kernel could give (without touching
    nr_hugepages): OSError ENOMEM naming /proc/sys/vm/nr_hugepages and the count; with
    ``hugepages=None`` the same Umem comes from normal pages."""
    if not HUGE_2M.is_dir():
        cannot("the kernel has no 2 MiB huge pages")
    _, free = huge_pages()
    overcommit = int(Path("/proc/sys/vm/nr_overcommit_hugepages").read_text())
    surplus = int((HUGE_2M / "surplus_hugepages").read_text())
    pages = free + max(0, overcommit - surplus) + 1
    frame_count = pages * HUGE_PAGE // PAGE
    assert frame_count <= 1 << 24, f"{pages} huge pages free or overcommittable: too many to test"
    with pytest.raises(OSError) as caught:
        afxdp.Umem(frame_count, PAGE, hugepages=True)
    message = str(caught.value)
    assert caught.value.errno == 12  # ENOMEM
    assert str(NR_HUGEPAGES) in message, message
    assert f"needs {pages} free 2 MiB huge pages" in message, message
    umem = afxdp.Umem(frame_count, PAGE, hugepages=None)
    assert not umem.hugepages
    umem.close()


def test_a_forked_child_reads_zeros_through_a_view_of_a_huge_page_umem(privileged) -> None:
    """A huge-page Umem is absent in a forked child (MADV_DONTFORK); a memoryview taken before
    the fork must read zeros there, as with a normal-page Umem (MADV_WIPEONFORK), not kill the
    child with SIGSEGV (what it did before the child's fork handler mapped zero pages there)."""
    with reserved_huge_pages(1):
        umem = afxdp.Umem(16, PAGE, hugepages=True)
        view = memoryview(umem)
        view[:4] = b"\x01\x02\x03\x04"
        view[-1:] = b"\x05"
        pid = os.fork()
        if pid == 0:  # the child: exit status 0 only if both ends read zero
            status = 0 if (view[:4].tobytes(), view[-1]) == (bytes(4), 0) else 3
            os._exit(status)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status), f"child killed by signal {os.WTERMSIG(status)}"
        assert os.WEXITSTATUS(status) == 0, "the child read the parent's data, not zeros"
        assert view[:4].tobytes() == b"\x01\x02\x03\x04" and view[-1] == 5  # the parent's
        view.release()
        umem.close()
