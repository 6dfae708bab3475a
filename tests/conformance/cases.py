"""The kernel's AF_XDP conformance cases: the ``tests[]`` table of
``tools/testing/selftests/bpf/test_xsk.h`` (Linux 6.18; run there by xskxceiver on a veth pair),
mapped to afxdp's conformance tests.

Every entry of the kernel's table is here, in its order, with the pytest module that holds its
test (``test_<NAME>`` in ``tests/conformance/test_xsk_<group>.py``) and the modes it does not
apply to, each with the reason. ``conftest.py`` parametrizes every test over the modes that apply
and writes ``docs/conformance.md`` from what ran (``pytest --conformance-table PATH``).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Mode:
    """How a case runs: the XDP attach mode and whether the sockets busy-poll."""

    name: str
    xdp_mode: str  # afxdp.Program.attach(mode=...)
    busy_poll_usecs: int | None
    title: str


# The kernel runs every case in skb mode (generic XDP), driver mode (native XDP; veth has it) and
# with preferred busy polling (xskxceiver's BUSY-POLL runs); zero-copy needs a NIC driver with
# XSK support, which veth is not, so it is not a mode here (docs/conformance.md says so).
SKB = Mode("skb", "generic", None, "skb")
DRV = Mode("drv", "native", None, "driver")
BUSY_POLL = Mode("busy_poll", "native", 20, "driver + busy poll")
MODES = (SKB, DRV, BUSY_POLL)
MODES_BY_NAME = {mode.name: mode for mode in MODES}


@dataclass(frozen=True)
class Case:
    name: str  # the kernel's name, and the test's: test_<name>
    group: str  # tests/conformance/test_xsk_<group>.py
    what: str  # one line: what the kernel's case checks
    not_applicable: dict[str, str] = field(default_factory=dict)  # mode name -> why

    def applies(self, mode: str) -> bool:
        return mode not in self.not_applicable


_VETH_RINGS = (
    "veth has no hardware rings: ETHTOOL_GRINGPARAM is EOPNOTSUPP on it, so there is no "
    "hardware ring size to set (xskxceiver skips this case on veth too)"
)
_ALL_MODES_NA = {mode.name: _VETH_RINGS for mode in MODES}
# POLL_RXQ_FULL and POLL_TXQ_FULL run with busy polling too: a busy-polling poll() spins for
# SO_BUSY_POLL microseconds and then sleeps as usual, so it still times out on an idle rx queue
# or a full tx ring (tests/conformance/test_xsk_poll.py checks it in that mode).

_GROW_FRAGS = (
    "bpf_xdp_adjust_tail cannot grow a multi-buffer packet on veth: the XDP receive queue it "
    "arrives on has no fragment size to grow the last fragment into (net/core/filter.c, "
    "bpf_xdp_frags_increase_tail: !rxq->frag_size || rxq->frag_size > frame_sz), so the helper "
    'returns -EOPNOTSUPP, in generic mode too; xskxceiver then skips the case ("Resize pkt '
    'with bpf_xdp_adjust_tail() not supported")'
)
_GROW_FRAGS_NA = {mode.name: _GROW_FRAGS for mode in MODES}

CASES: tuple[Case, ...] = (
    Case("SEND_RECEIVE", "send_receive", "a stream of numbered 64-byte packets, in order, intact"),
    Case("SEND_RECEIVE_2K_FRAME", "send_receive", "the same with 2048-byte frames"),
    Case("SEND_RECEIVE_SINGLE_PKT", "send_receive", "one packet"),
    Case("POLL_RX", "poll", "the receiver waits in poll() for POLLIN"),
    Case("POLL_TX", "poll", "the sender waits in poll() for POLLOUT"),
    Case(
        "POLL_RXQ_FULL",
        "poll",
        "poll() times out when nothing is sent to a socket",
    ),
    Case(
        "POLL_TXQ_FULL",
        "poll",
        "poll() for POLLOUT times out while the tx ring is full",
    ),
    Case("SEND_RECEIVE_UNALIGNED", "send_receive", "unaligned chunks from a hugepage Umem"),
    Case("ALIGNED_INV_DESC", "invalid_desc", "invalid tx descriptors are dropped, aligned mode"),
    Case("ALIGNED_INV_DESC_2K_FRAME_SIZE", "invalid_desc", "the same with 2048-byte frames"),
    Case("UNALIGNED_INV_DESC", "invalid_desc", "invalid tx descriptors, unaligned mode"),
    Case("UNALIGNED_INV_DESC_4001_FRAME_SIZE", "invalid_desc", "the same with 4001-byte frames"),
    Case("UMEM_HEADROOM", "send_receive", "packets land after the Umem headroom"),
    Case("TEARDOWN", "send_receive", "sockets are created, used and closed again, repeatedly"),
    Case("BIDIRECTIONAL", "send_receive", "each socket sends and receives"),
    Case("STAT_RX_DROPPED", "stats", "rx_dropped counts packets too big for frame - headroom"),
    Case("STAT_TX_INVALID", "stats", "tx_invalid_descs counts descriptors longer than a frame"),
    Case("STAT_RX_FULL", "stats", "rx_ring_full counts packets dropped on a full rx ring"),
    Case("STAT_FILL_EMPTY", "stats", "rx_fill_ring_empty_descs counts an empty fill ring"),
    Case("XDP_PROG_CLEANUP", "program", "closing the sockets and program leaves nothing attached"),
    Case("XDP_DROP_HALF", "program", "a program that drops every other packet; the rest arrive"),
    Case("XDP_SHARED_UMEM", "program", "two sockets share one Umem, a program steers between"),
    Case("XDP_METADATA_COPY", "program", "the program's XDP metadata reaches the socket"),
    Case("XDP_METADATA_COPY_MULTI_BUFF", "program", "the same with multi-buffer packets"),
    Case("SEND_RECEIVE_9K_PACKETS", "multi_buff", "9000-byte packets as frame chains"),
    Case("SEND_RECEIVE_UNALIGNED_9K_PACKETS", "multi_buff", "the same, unaligned chunks"),
    Case("ALIGNED_INV_DESC_MULTI_BUFF", "invalid_desc", "invalid descriptors inside chains"),
    Case("UNALIGNED_INV_DESC_MULTI_BUFF", "invalid_desc", "the same, unaligned mode"),
    Case("TOO_MANY_FRAGS", "invalid_desc", "a chain over max_frags is dropped whole"),
    Case("HW_SW_MIN_RING_SIZE", "ring_size", "the smallest hardware ring", _ALL_MODES_NA),
    Case("HW_SW_MAX_RING_SIZE", "ring_size", "the largest hardware ring", _ALL_MODES_NA),
    Case("XDP_ADJUST_TAIL_SHRINK", "program", "bpf_xdp_adjust_tail shrinks packets"),
    Case("XDP_ADJUST_TAIL_SHRINK_MULTI_BUFF", "program", "the same across a chain"),
    Case("XDP_ADJUST_TAIL_GROW", "program", "bpf_xdp_adjust_tail grows packets"),
    Case("XDP_ADJUST_TAIL_GROW_MULTI_BUFF", "program", "the same across a chain", _GROW_FRAGS_NA),
    Case("TX_QUEUE_CONSUMER", "send_receive", "the kernel consumes the tx ring in bounded steps"),
)
CASES_BY_NAME = {case.name: case for case in CASES}
GROUPS = tuple(dict.fromkeys(case.group for case in CASES))
