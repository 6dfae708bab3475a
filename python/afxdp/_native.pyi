"""Type stubs of the compiled core (afxdp._native); the public names are re-exported by afxdp."""

from collections.abc import Iterable, Iterator
from os import PathLike
from types import TracebackType
from typing import Literal

from typing_extensions import Buffer, Self

__version__: str
POLLIN: int
POLLOUT: int

class Umem:
    """A UMEM: `frame_count` frames of `frame_size` bytes shared with the kernel.

    The buffer protocol exposes the whole region (raw; frames the kernel owns may change).
    """

    def __init__(self, frame_count: int = 4096, frame_size: int = 4096, headroom: int = 0) -> None: ...
    @property
    def frame_count(self) -> int: ...
    @property
    def frame_size(self) -> int: ...
    @property
    def headroom(self) -> int: ...
    @property
    def rx_capacity(self) -> int:
        """The largest packet the kernel can receive into one frame."""
    @property
    def tx_capacity(self) -> int:
        """The largest packet that can be written into one frame."""
    @property
    def free_frames(self) -> int: ...
    @property
    def in_use(self) -> bool:
        """Whether a socket uses this UMEM."""
    @property
    def closed(self) -> bool: ...
    def close(self) -> None:
        """Drop this handle (BufferError while a memoryview of it exists). Idempotent."""
    def __len__(self) -> int: ...
    def __buffer__(self, flags: int, /) -> memoryview: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> bool: ...

class Frame:
    """One frame of a batch; a writable zero-copy buffer of its packet bytes."""

    length: int
    @property
    def capacity(self) -> int: ...
    @property
    def index(self) -> int: ...
    @property
    def addr(self) -> int: ...
    def write(self, packet: Buffer) -> None:
        """Copy `packet` into the frame and set the length to its size."""
    def __len__(self) -> int: ...
    def __bytes__(self) -> bytes: ...
    def __getitem__(self, key: int | slice) -> int | bytes: ...
    def __setitem__(self, key: int | slice, value: int | Buffer) -> None: ...
    def __buffer__(self, flags: int, /) -> memoryview: ...

class FrameBatch:
    """Frames owned by the caller; `send()`/`release()` consume them."""

    def __len__(self) -> int: ...
    def __getitem__(self, i: int) -> Frame: ...
    def __iter__(self) -> Iterator[Frame]: ...
    def write_all(self, packet: Buffer) -> None:
        """Copy `packet` into every frame (all or none)."""
    def write_at(self, offset: int, data: Buffer) -> None:
        """Write `data` at `offset` of every frame's packet, lengths unchanged."""
    def swap_macs(self) -> None:
        """Swap destination and source MAC of every frame in place (all or none)."""
    def copy_from(self, src: FrameBatch) -> int:
        """Copy `src`'s packets (any UMEM) into these frames; returns min(len(self), len(src))."""
    @property
    def nbytes(self) -> int:
        """Total packet length of the frames, in bytes."""
    @property
    def lengths(self) -> list[int]: ...
    def set_lengths(self, length: int) -> None: ...
    def to_list(self) -> list[bytes]: ...
    def release(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> bool: ...

class Stats:
    """Kernel (XDP_STATISTICS) and library counters."""

    rx_dropped: int
    rx_invalid_descs: int
    tx_invalid_descs: int
    rx_ring_full: int
    rx_fill_ring_empty_descs: int
    tx_ring_empty_descs: int
    received: int
    sent: int
    filled: int
    completed: int
    def _asdict(self) -> list[tuple[str, int]]: ...

class VerifierError(OSError):
    """The kernel verifier rejected an XDP program (errno EACCES or EINVAL, usually)."""

    program: str
    """The rejected program's name."""
    log: str
    """The verifier's output."""

class Rule:
    """A match rule of the built-in program; every condition that is not None must hold.

    ethertype: after at most one 802.1Q/802.1ad VLAN tag (0x0800 IPv4, 0x86DD IPv6, ...).
    ip_proto: the IPv4 protocol or IPv6 next header, after up to four hop-by-hop, routing,
    fragment and destination-options extension headers (17 UDP, 6 TCP, 1 ICMP, 58 ICMPv6).
    dst_port: the TCP/UDP/UDP-Lite/SCTP/DCCP destination port; never matches a non-first
    fragment. Rule() matches every packet.
    """

    def __init__(
        self, ethertype: int | None = None, ip_proto: int | None = None, dst_port: int | None = None
    ) -> None: ...
    @property
    def ethertype(self) -> int | None: ...
    @property
    def ip_proto(self) -> int | None: ...
    @property
    def dst_port(self) -> int | None: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...

class Program:
    """An XDP program attached to an interface: the built-in one (with optional match rules)
    or one loaded from the user's own object."""

    @staticmethod
    def attach(
        ifname: str,
        mode: Literal["auto", "native", "generic"] = "auto",
        rules: Iterable[Rule] | None = None,
    ) -> Program:
        """Attach the built-in program. With `rules` (at most 16), only matching packets leave
        the kernel stack; None or empty: every packet of a queue with a registered socket."""
    @staticmethod
    def load(
        obj: str | PathLike[str] | Buffer,
        ifname: str,
        *,
        program: str | None = None,
        xsk_map: str | None = None,
        mode: Literal["auto", "native", "generic"] = "auto",
    ) -> Program:
        """Load XDP program `program` from an ELF object (path or bytes; aya or clang) and
        attach it; sockets register into its XSKMAP `xsk_map`. None: the only one there is.
        Raises ValueError naming a missing/wrong-typed program or map, VerifierError."""
    def set_rules(self, rules: Iterable[Rule]) -> None:
        """Replace the rules without reattaching, atomically for the data path (~10-30 ms)."""
    @property
    def rules(self) -> list[Rule]: ...
    def rule_stats(self) -> list[tuple[Rule, int]]:
        """(rule, packets) for each rule in force, counting each packet for its first match."""
    def unmatched(self) -> int:
        """Packets no rule matched (passed to the kernel stack) since the rules were set."""
    @property
    def program_name(self) -> str: ...
    def register(self, socket: Socket) -> None: ...
    def unregister(self, queue: int) -> None: ...
    def detach(self) -> None: ...
    def close(self) -> None: ...
    @property
    def attached(self) -> bool: ...
    @property
    def closed(self) -> bool: ...
    @property
    def ifname(self) -> str: ...
    @property
    def mode(self) -> Literal["native", "generic"] | None: ...
    @property
    def map_size(self) -> int: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> bool: ...

class Socket:
    """An AF_XDP socket bound to one queue of an interface."""

    def __init__(
        self,
        ifname: str,
        queue: int = 0,
        umem: Umem | None = None,
        program: Program | None = None,
        *,
        rx_size: int = 2048,
        tx_size: int = 2048,
        fill_size: int | None = None,
        comp_size: int | None = None,
        zerocopy: bool | None = None,
        need_wakeup: bool = True,
        autofill: bool = True,
    ) -> None: ...
    def fill(self, max: int | None = None) -> int: ...
    def recv(self, max: int = 64, timeout: float | None = 0.0) -> FrameBatch: ...
    def alloc(self, n: int) -> FrameBatch: ...
    def send(self, batch: FrameBatch) -> int:
        """Queue the frames for transmission; returns how many. All queued: the batch closes.
        Frames that did not fit in the tx ring stay in the batch (re-indexed from 0)."""
    def complete(self, max: int | None = None) -> int: ...
    def release(self, batch: FrameBatch) -> None: ...
    def kick(self) -> None: ...
    def poll(self, timeout: float | None = 0.0, events: int = ...) -> int: ...
    def stats(self) -> Stats: ...
    @property
    def in_flight(self) -> int: ...
    @property
    def tx_pending(self) -> int: ...
    @property
    def rx_available(self) -> int: ...
    def fileno(self) -> int: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def ifname(self) -> str: ...
    @property
    def queue(self) -> int: ...
    @property
    def zerocopy(self) -> bool: ...
    @property
    def umem(self) -> Umem: ...
    @property
    def program(self) -> Program | None: ...
    @property
    def registered(self) -> bool:
        """Whether a live Program has this socket in its XSKMAP (it receives only then)."""
    @property
    def fill_target(self) -> int: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> bool: ...

def generate(
    ifname: str,
    packet: Buffer,
    count: int | None = None,
    *,
    duration: float | None = None,
    rate: float | None = None,
    src_ports: int = 1,
    batch_size: int = 64,
) -> int:
    """Push `packet` (a whole Ethernet frame) out of `ifname` at kernel speed; return the count.

    Runs a tiny XDP program over the packet with BPF_PROG_TEST_RUN in live-frames mode (Linux
    >= 5.18): the kernel redirects copy after copy out of the interface, millions per second
    from one core, without a socket. Stops after `count` packets or `duration` seconds,
    whichever comes first; at least one is required. The return value is exactly the number of
    copies pushed (handed to the redirect).

    Args:
        ifname: the interface, resolved in the calling thread's network namespace.
        packet: 14 to 3408 bytes (4 KiB pages), no longer than the interface's MTU + 18.
        count: stop after this many packets.
        duration: stop after this many seconds.
        rate: at most this many packets per second (paced in ~1 ms steps); None: flat out.
        src_ports: cycle the UDP source port through this many values from the template's
            own, keeping the UDP checksum valid (a zero IPv4 checksum stays zero). Above 1 it
            needs an Ethernet (at most one 802.1Q/802.1ad tag) / IPv4 or IPv6 / UDP template.
        batch_size: packets per kernel batch, 1 to 256.

    A veth drops every copy, without counting it, unless its peer has an XDP program attached
    (an afxdp.Program will do) or GRO on. Copies the interface cannot take (a full veth ring)
    are counted by the interface, e.g. `ethtool -S` tx_queue_N_xdp_xmit_errors.

    The GIL is released while packets are pushed; Ctrl-C raises KeyboardInterrupt within 50 ms
    (the count so far is then lost).

    Raises:
        ValueError: no count and no duration, or a value out of range (the message names it).
        OSError: ENODEV for an unknown interface; EINVAL from a kernel older than 5.18.
        PermissionError: without CAP_BPF and CAP_NET_ADMIN.
    """
