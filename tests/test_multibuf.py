"""Multi-buffer AF_XDP (XDP_USE_SG) for real: 9000-byte packets through a 9000-MTU veth.

Privileged.

A packet longer than a UMEM frame arrives as a chain of frames, each but the last with
``Frame.more`` set, and ``FrameBatch.packets()`` puts the chain back together. The cases follow the
kernel's selftests (``test_xsk.c``): SEND_RECEIVE_9K_PACKETS (from an AF_PACKET sender and from
afxdp sending chains), in skb (generic) and driver (native) mode, and TOO_MANY_FRAGS (a chain the
kernel would drop whole is refused before it reaches the tx ring). With 4096-byte frames the kernel
puts at most 4096 - 256 (XDP headroom) = 3840 bytes in each received frame, so a 9000-byte packet
takes 3 frames. Every loop has a deadline; veth runs AF_XDP in copy mode only.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

afxdp = pytest.importorskip("afxdp")

from afxdp.testing import numbered_frame, parse_numbered  # noqa: E402

pytestmark = pytest.mark.privileged

MTU = 9000
RX_CAPACITY = 4096 - 256  # bytes of a packet per received 4096-byte frame (XDP headroom 256)
modes = pytest.mark.parametrize("mode", ["generic", "native"])


@dataclass
class MbPair:
    lab: Any
    tx: afxdp.Socket  # end a, multi_buffer, transmit only
    rx: afxdp.Socket  # end b, multi_buffer, registered with prog
    prog: afxdp.Program


@contextmanager
def mb_pair(
    lab: Any, mode: str, *, rx_multi_buffer: bool = True, **tx_options: Any
) -> Iterator[MbPair]:
    with ExitStack() as stack:
        with lab.enter("a"):
            tx = stack.enter_context(
                afxdp.Socket(
                    lab.if_a,
                    0,
                    umem=afxdp.Umem(2048, 4096, 0),
                    rx_size=0,
                    multi_buffer=True,
                    **tx_options,
                )
            )
        with lab.enter("b"):
            prog = stack.enter_context(afxdp.Program.attach(lab.if_b, mode=mode))
            rx = stack.enter_context(
                afxdp.Socket(
                    lab.if_b,
                    0,
                    umem=afxdp.Umem(4096, 4096, 0),
                    program=prog,
                    tx_size=0,
                    multi_buffer=rx_multi_buffer,
                )
            )
        yield MbPair(lab, tx, rx, prog)


def jumbo(lab: Any, seq: int, size: int = MTU + 14) -> bytes:
    """Numbered frame ``seq`` of ``size`` bytes (default: an MTU-sized IP packet and its
    Ethernet header)."""
    return numbered_frame(seq, size, lab.mac_a, lab.mac_b)


def receive_packets(
    sock: afxdp.Socket, count: int, timeout: float = 5.0, max: int = 64
) -> list[Any]:
    """Receives ``count`` packets (or until ``timeout``); returns (bytes, frame lengths, more flags)
    of each, checking on the way that no batch ends in the middle of a packet."""
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        with sock.recv(max, timeout=0.05) as batch:
            if len(batch):
                assert not batch[len(batch) - 1].more, "a batch ended in the middle of a packet"
            for p in batch.packets():
                got.append(
                    (bytes(p), [len(f) for f in p.frames], [f.more for f in p.frames], len(p))
                )
    return got


def wait_completed(sock: afxdp.Socket, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while sock.in_flight and time.monotonic() < deadline:
        sock.complete()
        time.sleep(0.001)
    assert sock.in_flight == 0, f"{sock.in_flight} frames never completed"


def check_chain(lengths: list[int], more: list[bool], size: int) -> None:
    frames = -(-size // RX_CAPACITY)
    assert len(lengths) == frames, (size, lengths)
    assert lengths[:-1] == [RX_CAPACITY] * (frames - 1) and sum(lengths) == size
    assert more == [True] * (frames - 1) + [False]


@modes
def test_jumbo_packets_from_af_packet_arrive_as_chains_byte_for_byte(
    lab_factory, mode: str
) -> None:
    lab = lab_factory(mtu=MTU)
    count = 20
    sent = [jumbo(lab, seq) for seq in range(count)]
    with mb_pair(lab, mode) as pair, ExitStack() as stack:
        with lab.enter("a"):
            tap = stack.enter_context(socket.socket(socket.AF_PACKET, socket.SOCK_RAW))
            tap.bind((lab.if_a, 0))
        for frame in sent:
            assert tap.send(frame) == len(frame)
        got = receive_packets(pair.rx, count)
        assert len(got) == count, f"{len(got)} of {count} arrived; stats {pair.rx.stats()}"
        for data, lengths, more, length in got:
            seq = parse_numbered(data)
            assert seq is not None and data == sent[seq]
            assert length == len(data) == MTU + 14
            check_chain(lengths, more, MTU + 14)
        assert sorted(parse_numbered(g[0]) for g in got) == list(range(count))
        stats = pair.rx.stats()
        assert stats.rx_dropped == 0 and stats.rx_invalid_descs == 0
        assert pair.rx.umem.free_frames + pair.rx.fill_target >= pair.rx.umem.frame_count


@modes
def test_afxdp_sends_chains_that_arrive_intact(lab_factory, mode: str) -> None:
    lab = lab_factory(mtu=MTU)
    # Across the frame boundaries of both ends: 4096 bytes per sent frame, 3840 per received one.
    sizes = [60, 3839, 3840, 3841, 4096, 4097, 7680, 8192, 9000, MTU + 14] * 3
    sent = [jumbo(lab, seq, size) for seq, size in enumerate(sizes)]
    with mb_pair(lab, mode) as pair:
        assert pair.tx.multi_buffer and pair.rx.multi_buffer
        assert pair.tx.send_packets(sent) == len(sent)
        wait_completed(pair.tx)
        got = receive_packets(pair.rx, len(sent))
        assert len(got) == len(sent), f"{len(got)} of {len(sent)}; rx {pair.rx.stats()}"
        for data, lengths, more, _length in got:
            seq = parse_numbered(data)
            assert seq is not None and data == sent[seq], seq
            check_chain(lengths, more, len(data))
        assert pair.tx.stats().tx_invalid_descs == 0
        assert pair.tx.umem.free_frames == pair.tx.umem.frame_count


def test_batch_edits_touch_a_chain_only_in_its_first_frame_and_copies_keep_it(
    lab_factory,
) -> None:
    # swap_macs and write_at edited bytes 0..12 of every frame of a chain (payload), and
    # swap_macs refused a packet whose last frame held fewer than 12 bytes; copy_from dropped
    # the chain flags, so a copied jumbo packet went out as one packet per frame.
    lab = lab_factory(mtu=MTU)
    sizes = [MTU + 14, RX_CAPACITY + 5, 60]
    sent = [jumbo(lab, seq, size) for seq, size in enumerate(sizes)]
    with mb_pair(lab, "native") as pair:
        assert pair.tx.send_packets(sent) == len(sent)
        wait_completed(pair.tx)
        deadline = time.monotonic() + 5
        frames = sum(-(-size // RX_CAPACITY) for size in sizes)
        while pair.rx.rx_available < frames and time.monotonic() < deadline:
            time.sleep(0.01)
        with pair.rx.recv(64, timeout=1) as batch:
            assert [len(p) for p in batch.packets()] == sizes
            batch.swap_macs()
            batch.write_at(12, b"\x88\xb5")  # the EtherType, a local experimental one
            want = [d[6:12] + d[:6] + b"\x88\xb5" + d[14:] for d in sent]
            assert [bytes(p) for p in batch.packets()] == want
            copy = pair.tx.alloc(len(batch))
            assert copy.copy_from(batch) == len(batch)
            assert [len(p) for p in copy.packets()] == sizes
            assert pair.tx.send(copy) == len(batch)
        wait_completed(pair.tx)
        got = receive_packets(pair.rx, len(sizes))
        assert [g[0] for g in got] == want


def test_a_chain_built_frame_by_frame_is_sent_with_more(lab_factory) -> None:
    lab = lab_factory(mtu=MTU)
    data = jumbo(lab, 7, 6000)
    with mb_pair(lab, "native") as pair:
        tx = pair.tx.alloc(2)
        tx[0].write(data[:2500])
        tx[0].more = True
        tx[1].write(data[2500:])
        assert [f.more for f in tx] == [True, False]
        assert [bytes(p) for p in tx.packets()] == [data]
        assert pair.tx.send(tx) == 2
        wait_completed(pair.tx)
        got = receive_packets(pair.rx, 1)
        assert [g[0] for g in got] == [data]


def test_batches_never_end_in_the_middle_of_a_packet(lab_factory) -> None:
    lab = lab_factory(mtu=MTU)
    count = 12
    sent = [jumbo(lab, seq) for seq in range(count)]
    with mb_pair(lab, "native") as pair:
        assert pair.tx.send_packets(sent) == count
        wait_completed(pair.tx)
        deadline = time.monotonic() + 5
        while pair.rx.rx_available < 3 * count and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pair.rx.rx_available == 3 * count
        got: list[bytes] = []
        # max 1 and 2: the first packet alone is longer, so it comes whole; 4: one packet;
        # 7: two; 64: the rest.
        for max_frames, frames in [(1, 3), (2, 3), (4, 3), (7, 6), (64, 3 * count - 15)]:
            with pair.rx.recv(max_frames) as batch:
                assert len(batch) == frames, max_frames
                got += [bytes(p) for p in batch.packets()]
        assert got == sent
        assert pair.rx.rx_available == 0


def test_more_is_refused_without_multi_buffer_and_at_the_end_of_a_batch(lab) -> None:
    with lab.enter("a"):
        plain = afxdp.Socket(lab.if_a, 0, umem=afxdp.Umem(64, 4096, 0), rx_size=0)
    with plain:
        assert not plain.multi_buffer and plain.max_frags == 1
        batch = plain.alloc(2)
        batch.write_all(b"\x01" * 60)
        batch[0].more = True
        with pytest.raises(ValueError, match=r"frame 0 .* without multi_buffer=True"):
            plain.send(batch)
        assert len(batch) == 2 and plain.in_flight == 0, "nothing was queued"
        with pytest.raises(ValueError, match="5000"):
            plain.send_packets([b"\x02" * 5000])
        batch.release()
        assert plain.umem.free_frames == 64
    with lab.enter("b"):
        mb_sock = afxdp.Socket(
            lab.if_b, 0, umem=afxdp.Umem(64, 4096, 0), rx_size=0, multi_buffer=True
        )
    with mb_sock:
        assert "multi_buffer" in repr(mb_sock)
        batch = mb_sock.alloc(3)
        batch.write_all(b"\x03" * 60)
        batch[2].more = True
        with pytest.raises(ValueError, match="frame 2 is the batch's last and has more set"):
            batch.packets()
        with pytest.raises(ValueError, match="frame 2 is the batch's last and has more set"):
            mb_sock.send(batch)
        with pytest.raises(ValueError, match="packet 1 is empty"):
            mb_sock.send_packets([b"\x04" * 60, b""])
        assert mb_sock.in_flight == 0 and len(batch) == 3
        batch.release()
        assert mb_sock.umem.free_frames == 64


def test_too_many_frags_are_refused_and_the_kernel_limit_itself_works(lab_factory) -> None:
    lab = lab_factory(mtu=MTU)
    with open("/proc/sys/net/core/max_skb_frags") as f:
        max_frags = int(f.read()) + 1  # the linear part plus MAX_SKB_FRAGS (TOO_MANY_FRAGS)
    with mb_pair(lab, "native") as pair:
        assert pair.tx.max_frags == max_frags
        piece = 64
        # The longest chain the kernel takes: max_frags frames of 64 bytes, one packet.
        data = jumbo(lab, 1, max_frags * piece)
        tx = pair.tx.alloc(max_frags)
        for i, frame in enumerate(tx):
            frame.write(data[i * piece : (i + 1) * piece])
            frame.more = i < max_frags - 1
        assert pair.tx.send(tx) == max_frags
        wait_completed(pair.tx)
        got = receive_packets(pair.rx, 1)
        assert [g[0] for g in got] == [data]
        # One frame more: the kernel would drop it whole, count it in tx_invalid_descs and never
        # complete its frames; send refuses it, naming the frame, and queues nothing.
        too_long = pair.tx.alloc(max_frags + 1)
        too_long.write_all(b"\x05" * piece)
        for frame in list(too_long)[:-1]:
            frame.more = True
        with pytest.raises(
            ValueError, match=rf"starting at frame 0 .* more than {max_frags} frames"
        ):
            pair.tx.send(too_long)
        with pytest.raises(ValueError, match=rf"packet 0 needs {max_frags + 1} frames"):
            pair.tx.send_packets([b"\x06" * (4096 * max_frags + 1)])
        assert pair.tx.in_flight == 0
        too_long.release()
        assert pair.tx.stats().tx_invalid_descs == 0
        assert pair.tx.umem.free_frames == pair.tx.umem.frame_count, "ownership exact afterwards"


def test_a_chain_longer_than_the_completion_ring_is_refused(lab_factory) -> None:
    """The kernel reserves a completion slot per frame of a packet before the packet
    completes: a 5-frame chain through a 4-entry completion ring was queued, never completed,
    and every later packet of the socket waited behind it (in_flight forever)."""
    lab = lab_factory(mtu=MTU)
    with ExitStack() as stack, mb_pair(lab, "native", tx_size=64, comp_size=4) as pair:
        tx = pair.tx
        with lab.enter("a"):
            # A second socket on the queue shares the first's completion ring (its own
            # comp_size is ignored), so its limit is that ring's too.
            sharing = stack.enter_context(
                afxdp.Socket(lab.if_a, 0, umem=tx.umem, rx_size=0, comp_size=512,
                             multi_buffer=True)
            )  # fmt: skip
        assert tx.max_frags == sharing.max_frags == 4
        piece = 64
        for sock, chain in ((tx, 5), (sharing, 5)):
            batch = sock.alloc(chain)
            batch.write_all(b"\x05" * piece)
            for frame in list(batch)[:-1]:
                frame.more = True
            with pytest.raises(ValueError, match=r"more than 4 frames.*completion ring's 4"):
                sock.send(batch)
            batch.release()
        with pytest.raises(ValueError, match=r"packet 0 needs 5 frames.*completion ring's 4"):
            tx.send_packets([b"\x06" * (4096 * 4 + 1)])
        # The longest chain the ring takes goes through, and so does the packet after it.
        data = jumbo(lab, 1, 4 * piece)
        batch = tx.alloc(4)
        for i, frame in enumerate(batch):
            frame.write(data[i * piece : (i + 1) * piece])
            frame.more = i < 3
        assert tx.send(batch) == 4
        wait_completed(tx)
        assert tx.send_packets([jumbo(lab, 2, 100)]) == 1
        wait_completed(tx)
        assert [g[0] for g in receive_packets(pair.rx, 2)] == [data, jumbo(lab, 2, 100)]


def test_recv_of_zero_frames_takes_no_packet(lab_factory) -> None:
    """`recv(0)` asks for nothing; on a multi-buffer socket it took the first packet whole
    (the "a packet longer than max comes whole" rule), unlike a plain socket or a Port."""
    lab = lab_factory(mtu=MTU)
    with mb_pair(lab, "native") as pair:
        sent = [jumbo(lab, 0), jumbo(lab, 1, 100)]
        assert pair.tx.send_packets(sent) == 2
        wait_completed(pair.tx)
        deadline = time.monotonic() + 3
        while pair.rx.rx_available < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pair.rx.rx_available == 4
        assert len(pair.rx.recv(0)) == 0 and len(pair.rx.recv(0, timeout=0.2)) == 0
        assert pair.rx.rx_available == 4
        assert [g[0] for g in receive_packets(pair.rx, 2)] == sent


def test_to_list_and_pcap_records_are_whole_packets(lab_factory, tmp_path) -> None:
    """`to_list()` ("the packets as a list of bytes") gave each frame of a chain as its own
    item, so `PcapWriter.write_batch` wrote a 9014-byte packet as 3 records."""
    from afxdp import pcap

    lab = lab_factory(mtu=MTU)
    with mb_pair(lab, "native") as pair:
        sent = [jumbo(lab, 0), jumbo(lab, 1, 100)]
        assert pair.tx.send_packets(sent) == 2
        wait_completed(pair.tx)
        deadline = time.monotonic() + 3
        while pair.rx.rx_available < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        with pair.rx.recv(64, timeout=1) as batch, pcap.PcapWriter(tmp_path / "mb.pcap") as w:
            assert len(batch) == 4
            assert batch.to_list() == [bytes(p) for p in batch.packets()] == sent
            stamps = [10**18 + k for k in range(len(batch))]  # one per frame: firsts are kept
            assert w.write_batch(batch, timestamps_ns=stamps) == 2
        records = pcap.read_pcap(tmp_path / "mb.pcap")
        assert [(data, length) for _, data, length in records] == [(p, len(p)) for p in sent]
        assert [round(t) for t, _, _ in records] == [10**9, 10**9]
        # write_all makes every frame a whole packet: the chain's flags go.
        tx = pair.tx.alloc(2)
        tx[0].more = True
        tx.write_all(b"\x01" * 60)
        assert [f.more for f in tx] == [False, False] and len(tx.packets()) == 2
        tx[0].more = True
        tx[1].more = True  # the last frame continues: no packet ends
        with pytest.raises(ValueError, match="more"):
            tx.to_list()
        tx.release()


def test_scapy_adapter_receives_and_sends_jumbo_packets_whole(lab_factory) -> None:
    """The scapy adapter handed each frame of a chain to scapy as a packet, and could not send
    a packet longer than one frame."""
    pytest.importorskip("scapy")
    from afxdp.scapy import AfxdpScapySocket

    lab = lab_factory(mtu=MTU)
    with mb_pair(lab, "native") as pair:
        rx, tx = AfxdpScapySocket(sock=pair.rx), AfxdpScapySocket(sock=pair.tx)
        assert tx.send(jumbo(lab, 0)) == MTU + 14
        got, deadline = None, time.monotonic() + 3
        while got is None and time.monotonic() < deadline:
            _cls, got, _stamp = rx.recv_raw()
        assert got == jumbo(lab, 0)


def test_a_socket_without_multi_buffer_drops_jumbo_packets(lab_factory) -> None:
    lab = lab_factory(mtu=MTU)
    with mb_pair(lab, "native", rx_multi_buffer=False) as pair:
        assert pair.tx.send_packets([jumbo(lab, 0)]) == 1
        wait_completed(pair.tx)
        deadline = time.monotonic() + 3
        while pair.rx.stats().rx_dropped == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pair.rx.stats().rx_dropped == 1
        assert len(pair.rx.recv(64)) == 0
