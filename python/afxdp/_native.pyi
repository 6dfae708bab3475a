"""Type stubs of the compiled core (afxdp._native); the public names are re-exported by afxdp.

Checked against the runtime by ``python -m mypy.stubtest afxdp`` (tests/test_stubs.py), with the
few exceptions listed and explained in python/stubtest-allowlist.txt.
"""

from collections.abc import Callable, Iterable, Iterator, Sequence
from os import PathLike
from types import TracebackType
from typing import ClassVar, Literal, Self, SupportsIndex, final, overload

from typing_extensions import Buffer

__all__ = [
    "POLLIN",
    "POLLOUT",
    "BatchIterator",
    "Frame",
    "FrameBatch",
    "Interface",
    "Packet",
    "Port",
    "Program",
    "Rule",
    "Socket",
    "Stats",
    "UIntArray",
    "Umem",
    "UmemFrames",
    "VerifierError",
    "__version__",
    "generate",
]

__version__: str
POLLIN: int
POLLOUT: int

@final
class Umem:
    """A UMEM: `frame_count` frames of `frame_size` bytes shared with the kernel.

    The buffer protocol exposes the whole region (raw; frames the kernel owns may change).
    A context manager: leaving the block closes it.
    """

    def __new__(
        cls,
        frame_count: int = 4096,
        frame_size: int = 4096,
        headroom: int = 0,
        *,
        unaligned: bool = False,
        hugepages: bool | None = False,
        tx_metadata: bool = False,
        tx_sw_csum: bool = False,
    ) -> Self:
        """Map the region. Each size must be an int (not a bool) the kernel accepts: a frame
        size it refuses (aligned mode: 2048 or 4096; unaligned=True: 2048 to the page size),
        a headroom too large or zero frames raise ValueError naming the value.

        `unaligned=True` registers the UMEM in unaligned chunk mode: frames of any size, still
        laid end to end. `hugepages=True` maps the region from 2 MiB huge pages, or raises
        OSError (ENOMEM) naming /proc/sys/vm/nr_hugepages and how many pages are needed when
        too few are free; `None` uses them when free and normal pages otherwise.

        `tx_metadata=True` (Linux 6.8+) keeps 24 bytes before every transmitted packet for a
        request (`Frame.request_checksum`, `request_tx_timestamp`, `launch_time`); allocated
        frames start their packet after the headroom rounded up to 8 plus those 24 bytes.
        `tx_sw_csum=True` (needs tx_metadata) makes copy mode compute requested checksums in
        software. Both must be bools (TypeError naming the option)."""
    @property
    def frame_count(self) -> int:
        """Number of frames."""
    @property
    def frame_size(self) -> int:
        """Bytes per frame."""
    @property
    def frames(self) -> UmemFrames:
        """The region as a 2-D buffer of shape (frame_count, frame_size), format "B"."""
    @property
    def headroom(self) -> int:
        """Bytes reserved before the packet in every frame."""
    @property
    def unaligned(self) -> bool:
        """Whether the UMEM is in unaligned chunk mode."""
    @property
    def tx_metadata(self) -> bool:
        """Whether every transmitted packet has room for a tx request before it."""
    @property
    def tx_sw_csum(self) -> bool:
        """Whether copy mode computes requested checksums in software."""
    @property
    def hugepages(self) -> bool:
        """Whether the region is on 2 MiB huge pages (with hugepages=None: whether it got them)."""
    @property
    def rx_capacity(self) -> int:
        """The largest packet the kernel can receive into one frame."""
    @property
    def tx_capacity(self) -> int:
        """The largest packet that can be written into one frame."""
    @property
    def free_frames(self) -> int:
        """Frames in the free pool right now."""
    @property
    def in_use(self) -> bool:
        """Whether a socket uses this UMEM (several may: shared UMEM)."""
    @property
    def closed(self) -> bool: ...
    def close(self) -> None:
        """Drop this handle (BufferError while a memoryview of it exists). Idempotent."""
    def __len__(self) -> int: ...
    def __buffer__(self, flags: int, /) -> memoryview: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
        /,
    ) -> None: ...

@final
class Packet:
    """One packet of a batch (`FrameBatch.packets()`): a single frame, or on a multi-buffer
    socket a chain of consecutive frames, each but the last with `more` set. It reads the
    batch's frames when asked; once they left the batch (sent or released) it raises
    ValueError."""

    def __len__(self) -> int:
        """The packet length: the sum of its frames' lengths."""
    def __bytes__(self) -> bytes:
        """The packet's bytes, its frames' bytes joined (a copy)."""
    @property
    def frames(self) -> list[Frame]:
        """The packet's frames, in order (all but the last have `more` set)."""

@final
class Frame:
    """One frame of a batch; a writable zero-copy buffer of its packet bytes.

    `frame[i]` is a byte (an int), `frame[a:b]` a bytes copy; `frame[i] = byte` and
    `frame[a:b] = data` (same length) write in place. Using a frame whose batch was sent or
    released raises ValueError.
    """

    @property
    def length(self) -> int:
        """Packet length; set it to transmit that many bytes of the frame."""
    @length.setter
    def length(self, value: int, /) -> None: ...
    @property
    def more(self) -> bool:
        """Whether the packet continues in the next frame of the batch (multi-buffer: a packet
        longer than a frame is a chain of frames, each but the last with `more` set). Set it on
        frames you send as a chain; only a `Socket(..., multi_buffer=True)` sends them."""
    @more.setter
    def more(self, value: bool, /) -> None: ...
    @property
    def capacity(self) -> int:
        """Bytes available from the packet start to the end of the frame."""
    @property
    def index(self) -> int:
        """The frame's number in the UMEM."""
    @property
    def addr(self) -> int:
        """The packet start as a byte offset into the UMEM (memoryview(umem)[addr:]); in
        unaligned mode the rings carry it as the frame start plus the offset in the top 16 bits."""
    @property
    def rx_timestamp(self) -> int | None:
        """When the XDP program saw the packet, in ns since the epoch (the clock of
        `time.time_ns()`); None when the program wrote no receive metadata for it
        (`Program.attach(..., timestamps=True)` does)."""
    @property
    def rx_hw_timestamp(self) -> int | None:
        """The device's receive timestamp (ns, device clock); None when not recorded
        (`Program.attach(..., device_metadata=True)` asks the device; veth has none)."""
    @property
    def rx_hash(self) -> int | None:
        """The device's receive (RSS) hash; None when not recorded
        (`Program.attach(..., device_metadata=True)` asks the device)."""
    def request_checksum(self, start: int, offset: int) -> None:
        """Ask the kernel to complete a checksum when the frame is sent (a Umem with
        tx_metadata=True): the Internet checksum from byte `start` of the packet to its end,
        stored at `start + offset` (UDP over IPv4: 34, 6). The field must hold the
        pseudo-header checksum and lie within the packet (write it first; ValueError naming
        the value otherwise)."""
    def request_tx_timestamp(self) -> None:
        """Ask for the completion timestamp (a Umem with tx_metadata=True); read it with
        `Socket.tx_timestamps()` after `complete()`."""
    @property
    def checksum_request(self) -> tuple[int, int] | None:
        """The checksum request as (start, offset), or None."""
    @property
    def tx_timestamp_requested(self) -> bool:
        """Whether the completion timestamp is requested."""
    @property
    def launch_time(self) -> int | None:
        """When the device should send the frame, ns since the epoch (`time.time_ns()`'s
        clock, written as CLOCK_TAI), or None. Copy mode (veth) sends at once."""
    @launch_time.setter
    def launch_time(self, value: int | None, /) -> None: ...
    def clear_tx_requests(self) -> None:
        """Drop every tx request of the frame."""
    def write(self, packet: Buffer) -> None:
        """Copy `packet` into the frame and set the length to its size."""
    def __len__(self) -> int: ...
    def __bytes__(self) -> bytes: ...
    @overload
    def __getitem__(self, key: SupportsIndex, /) -> int: ...
    @overload
    def __getitem__(self, key: slice, /) -> bytes: ...
    @overload
    def __setitem__(self, key: SupportsIndex, value: SupportsIndex, /) -> None: ...
    @overload
    def __setitem__(self, key: slice, value: Buffer, /) -> None: ...
    def __buffer__(self, flags: int, /) -> memoryview: ...

@final
class UmemFrames:
    """The UMEM as `frame_count` rows of `frame_size` bytes (`Umem.frames`): a writable buffer,
    format "B". Raw access like memoryview(umem); the Umem cannot close while it is exported."""

    def __len__(self) -> int: ...
    @property
    def shape(self) -> tuple[int, int]:
        """(frame_count, frame_size)."""
    @property
    def umem(self) -> Umem:
        """The Umem these frames belong to."""
    def __buffer__(self, flags: int, /) -> memoryview: ...

@final
class UIntArray(Sequence[int]):
    """Unsigned ints of a batch, exported through the buffer protocol (numpy.asarray wraps
    them without a copy); a sequence that compares equal to a list or tuple of the same ints.

    `lengths`, `indices`, `offsets`: u32 views straight over the batch's frame descriptors
    (format "I", itemsize 4, strides (16,): one descriptor), read live; only `lengths` is
    writable. While such a view (or a memoryview or numpy array made from it) is alive, the
    batch cannot be sent or released (BufferError). `addresses`: a u64 copy (format "Q").
    """

    def __len__(self) -> int: ...
    @overload
    def __getitem__(self, i: SupportsIndex, /) -> int: ...
    @overload
    def __getitem__(self, i: slice, /) -> Sequence[int]: ...
    def __iter__(self) -> Iterator[int]: ...
    def tolist(self) -> list[int]:
        """The items as a list of ints (their current values)."""
    @property
    def format(self) -> str:
        """The struct format of one item: "I" (u32) or "Q" (u64)."""
    def __eq__(self, other: object, /) -> bool: ...
    __hash__: ClassVar[None]  # type: ignore[assignment]
    def __buffer__(self, flags: int, /) -> memoryview: ...

@final
class BatchIterator(Iterator[FrameBatch]):
    """`Socket.batches()`, `Port.batches()`: received batches, one call per wakeup; each step
    gives back the previous batch's frames. Ends on a timeout with nothing received, on the
    socket's (Port's) close, or on `close()`. The steps hand out one FrameBatch object,
    refilled: a reference kept past its step sees the next batch, and a Frame or Packet taken
    from an earlier batch raises ValueError. A batch you keep a view of stays yours (the next
    step hands out a new object)."""

    def __iter__(self) -> Self: ...
    def __next__(self) -> FrameBatch: ...
    def close(self) -> None:
        """End the iteration and give back the last batch's frames. From another thread, it
        ends a step that waits (for frames or in a coalescing sleep) within 0.1 s."""
    @property
    def closed(self) -> bool:
        """True once the iteration has ended."""

@final
class FrameBatch:
    """Frames owned by the caller; `send()`/`release()` consume them.

    While a memoryview of one of its frames, or a `lengths`/`indices`/`offsets` view (or a
    memoryview or numpy array made from one), is alive, the batch cannot be sent or released
    (BufferError). A context manager: leaving the block releases what the batch still owns.
    A batch from `batches()` is refilled by the iterator's next step once it has ended (the
    same object, new frames); its earlier frames stay gone.
    """

    def __len__(self) -> int: ...
    def __getitem__(self, i: SupportsIndex, /) -> Frame: ...
    def __iter__(self) -> Iterator[Frame]: ...
    def write_all(self, packet: Buffer) -> None:
        """Copy `packet` into every frame and set every length (all or none); each frame is then
        a whole packet (on a multi-buffer batch, `more` is cleared)."""
    def write_at(self, offset: int, data: Buffer) -> None:
        """Write `data` at `offset` of every packet (its first frame), lengths unchanged."""
    def swap_macs(self) -> None:
        """Swap destination and source MAC of every packet (its first frame) in place (all or
        none)."""
    def copy_from(self, src: FrameBatch) -> int:
        """Copy `src`'s packets (any UMEM) into these frames, chains kept; returns how many
        frames: min(len(self), len(src)), less a multi-buffer packet that would not fit whole."""
    @property
    def nbytes(self) -> int:
        """Total packet length of the frames, in bytes."""
    @property
    def lengths(self) -> UIntArray:
        """The packet length of every frame: a writable u32 view of the descriptors (no copy;
        `numpy.asarray(batch.lengths)[:] = 60` sets them; `send()` checks each). Holds the
        batch: no send or release while it lives."""
    @property
    def indices(self) -> UIntArray:
        """The UMEM frame index of every frame, its row in `Umem.frames`: a read-only u32
        view of the descriptors, as `lengths`."""
    @property
    def offsets(self) -> UIntArray:
        """Where each packet starts inside its frame, its column in `Umem.frames`: a
        read-only u32 view of the descriptors, as `lengths`."""
    @property
    def addresses(self) -> UIntArray:
        """The UMEM address of every packet start, as `Frame.addr` (u64): a copy computed as
        `indices * frame_size + offsets`; it does not hold the batch."""
    @property
    def rx_timestamps(self) -> UIntArray:
        """Every frame's `rx_timestamp` (u64 ns since the epoch; 0 for a frame without one): a
        copy, one clock measurement for the batch; it does not hold the batch."""
    @property
    def rx_hw_timestamps(self) -> UIntArray:
        """Every frame's `rx_hw_timestamp` (u64, the device's clock; 0 for a frame without
        one): a copy; it does not hold the batch."""
    @property
    def rx_hashes(self) -> UIntArray:
        """Every frame's `rx_hash` (0 for a frame without one; `Frame.rx_hash` tells a hash of
        0 apart): a copy (u64); it does not hold the batch."""
    def request_checksum(self, start: int, offset: int) -> None:
        """`Frame.request_checksum` on every frame that starts a packet (all or none)."""
    def request_tx_timestamps(self) -> None:
        """`Frame.request_tx_timestamp` on every frame that starts a packet."""
    def set_lengths(self, length: int) -> None:
        """Set every frame's packet length (each within its frame's capacity)."""
    def packets(self) -> list[Packet]:
        """The batch's packets: one per frame, except that a frame with `more` set and the
        frames after it up to one without form one packet (multi-buffer). A received batch
        never ends in the middle of a packet; a batch whose last frame has `more` set raises
        ValueError."""
    def to_list(self) -> list[bytes]:
        """The packets as a list of bytes (copies): one per frame, or per chain of frames on a
        multi-buffer socket (as `packets()`; ValueError if the last frame has `more` set)."""
    def release(self) -> None:
        """Return the frames now: to the free pool, or, for a batch received on a socket with
        autofill that is still open, straight to its fill ring as far as the ring lacks frames.
        Idempotent."""
    @property
    def closed(self) -> bool:
        """True once the batch was sent or released."""
    @property
    def queue(self) -> int | None:
        """The rx queue the frames were received on; None for frames from `alloc()`.
        `Port.send(batch)` sends on this queue."""
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
        /,
    ) -> None: ...

@final
class Stats:
    """A socket's counters: the kernel's (XDP_STATISTICS) and the library's."""

    @property
    def rx_dropped(self) -> int:
        """Packets the kernel dropped before the rx ring: too long for a frame
        (`Umem.rx_capacity`), or, in copy mode, no free frame because the fill ring was empty
        (those also count in `rx_fill_ring_empty_descs`). A full rx ring counts in
        `rx_ring_full` instead."""
    @property
    def rx_invalid_descs(self) -> int:
        """Invalid descriptors on the rx ring (the kernel never writes any: should stay 0)."""
    @property
    def tx_invalid_descs(self) -> int:
        """Descriptors on the tx ring the kernel skipped as invalid (length 0 or too long, an
        address outside the UMEM). afxdp's `send()` never queues one; the conformance suite
        (tests/conformance/rawxsk.py) shows the kernel's count for each kind."""
    @property
    def rx_ring_full(self) -> int:
        """Packets dropped because the rx ring was full (the application reads too slowly)."""
    @property
    def rx_fill_ring_empty_descs(self) -> int:
        """Times the kernel found the fill ring empty when a packet arrived (the packet was
        dropped: see `rx_dropped`)."""
    @property
    def tx_ring_empty_descs(self) -> int:
        """Times the kernel found the tx ring empty when asked to transmit."""
    @property
    def received(self) -> int:
        """Frames the library took from the rx ring."""
    @property
    def sent(self) -> int:
        """Frames the library put on the tx ring."""
    @property
    def filled(self) -> int:
        """Frames the library put on the fill ring."""
    @property
    def completed(self) -> int:
        """Frames the library took back from the completion ring."""
    def _asdict(self) -> dict[str, int]:
        """The counters as a dict, in attribute order."""

class VerifierError(OSError):
    """The kernel verifier rejected an XDP program (errno EACCES or EINVAL, usually).

    Not final: an exception class, subclassable like OSError.
    """

    program: str
    """The rejected program's name."""
    log: str
    """The verifier's output."""

@final
class Rule:
    """A match rule of the built-in program; every condition that is not None must hold.

    ethertype: after at most one 802.1Q/802.1ad VLAN tag (0x0800 IPv4, 0x86DD IPv6, ...).
    ip_proto: the IPv4 protocol or IPv6 next header, after up to four hop-by-hop, routing,
    fragment and destination-options extension headers (17 UDP, 6 TCP, 1 ICMP, 58 ICMPv6);
    in a non-first fragment, the fragment header's next header (what follows is data).
    dst_port: the TCP/UDP/UDP-Lite/SCTP/DCCP destination port; never matches a non-first
    fragment or an IPv4 header shorter than 20 bytes (IHL < 5). Rule() matches every packet.
    Each condition is an int (a bool raises TypeError).
    """

    def __new__(
        cls, ethertype: int | None = None, ip_proto: int | None = None, dst_port: int | None = None
    ) -> Self: ...
    @property
    def ethertype(self) -> int | None: ...
    @property
    def ip_proto(self) -> int | None: ...
    @property
    def dst_port(self) -> int | None: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class Program:
    """An XDP program attached to an interface: the built-in one (with optional match rules)
    or one loaded from the user's own object. A context manager: leaving the block detaches."""

    @staticmethod
    def attach(
        ifname: str,
        mode: Literal["auto", "native", "generic"] = "auto",
        rules: Iterable[Rule] | None = None,
        *,
        timestamps: bool = False,
        device_metadata: bool = False,
    ) -> Program:
        """Attach the built-in program. With `rules` (at most 16), only matching packets leave
        the kernel stack; None or empty: every packet of a queue with a registered socket.
        `timestamps`: stamp every redirected packet (`Frame.rx_timestamp`).
        `device_metadata`: also the device's receive timestamp and hash (`Frame.rx_hw_timestamp`,
        `Frame.rx_hash`, None where it has none) through the `bpf_xdp_metadata_rx_*` kfuncs;
        implies `timestamps`; binds the program to the device (Linux 6.3, native mode only:
        ValueError with mode="generic")."""
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
        """Replace the rules without reattaching, atomically for the data path (~10-30 ms).
        Other threads may use the program meanwhile; concurrent calls take turns."""
    @property
    def rules(self) -> list[Rule]:
        """The rules in force (empty: every packet matches)."""
    def rule_stats(self) -> list[tuple[Rule, int]]:
        """(rule, packets) for each rule in force, counting each packet for its first match."""
    def unmatched(self) -> int:
        """Packets no rule matched (passed to the kernel stack) since the rules were set."""
    def no_socket_counts(self) -> list[int]:
        """Per rx queue (index = queue), packets the built-in program meant for a socket (its
        rules matched) that found none registered for their queue and went to the kernel stack
        instead, since it was attached. ValueError for a program loaded from an object."""
    @property
    def timestamps(self) -> bool:
        """Whether the built-in program stamps packets (False for a loaded object)."""
    @property
    def device_metadata(self) -> bool:
        """Whether the built-in program asks the device for receive timestamps and hashes."""
    @property
    def program_name(self) -> str: ...
    def register(self, socket: Socket, key: int | None = None) -> None:
        """Put `socket` into the XSKMAP at `key`, by default its queue. ValueError if it is
        bound to another interface than the program's, has no rx ring (rx_size=0: the kernel
        would drop every packet redirected to it), or if `key` is out of range (0 to
        map_size - 1). The built-in program redirects each packet to the entry of its rx
        queue, so with it `key` must be the socket's queue (ValueError otherwise); a program
        loaded from an object picks keys its own way, e.g. to spread one queue's packets over
        several sockets bound to that queue (sharing a Umem), each at its own key. The kernel
        hands a socket only packets of the queue it is bound to, whatever the key."""
    def unregister(self, queue: int) -> None:
        """Remove whatever socket is registered at `queue` (the XSKMAP key)."""
    def detach(self) -> None:
        """Detach the program from the interface. Idempotent."""
    def close(self) -> None:
        """Same as detach()."""
    @property
    def attached(self) -> bool: ...
    @property
    def closed(self) -> bool: ...
    @property
    def ifname(self) -> str: ...
    @property
    def mode(self) -> Literal["native", "generic"] | None:
        """The mode in use; None once detached."""
    @property
    def map_size(self) -> int:
        """Number of XSKMAP entries: the keys a socket can be registered at (for the built-in
        program, the queues)."""
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
        /,
    ) -> None: ...

@final
class Socket:
    """An AF_XDP socket bound to one queue of an interface. A context manager: leaving the
    block closes it."""

    def __new__(
        cls,
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
        busy_poll_usecs: int | None = None,
        busy_poll_budget: int | None = None,
        multi_buffer: bool = False,
    ) -> Self:
        """Open a socket on queue `queue` of interface `ifname` and bind it.

        Args:
            ifname: the interface, in the calling thread's network namespace.
            queue: the rx/tx queue to bind.
            umem: the frames to use; None: a private Umem of 4096 frames of 4096 bytes. A
                Umem may back several sockets (other queues, other interfaces, the same
                queue): a batch received on one can be sent on another with no copy. Each
                (interface, queue) has its own fill and completion rings, shared by the Umem's
                sockets bound there. Sharing sockets inherit zerocopy and need_wakeup from the
                Umem's first socket (another value raises ValueError).
            program: a Program to register with at once; None: registered nowhere, so the
                socket can transmit but receives nothing until a Program registers it.
                ValueError with rx_size=0 (the kernel drops what it redirects to a socket
                without an rx ring).
            rx_size: rx ring entries (a power of two; 0: no rx ring).
            tx_size: tx ring entries (a power of two; 0: no tx ring).
            fill_size: fill ring entries; None: twice rx_size, at least 64.
            comp_size: completion ring entries; None: tx_size, at least 64.
            zerocopy: True forces zero-copy (OSError where the driver lacks it), False forces
                copy mode, None takes the best the driver offers.
            need_wakeup: bind with XDP_USE_NEED_WAKEUP (wake the kernel only when it asks).
            autofill: keep the fill ring topped up from the free pool on every recv(), and put
                a received batch's frames straight back on it when the batch is released.
            busy_poll_usecs: turn on preferred busy polling (SO_PREFER_BUSY_POLL, SO_BUSY_POLL
                with this many microseconds, 1 to 2**31-1, and SO_BUSY_POLL_BUDGET): every
                recv() then polls the queue's NAPI itself (a recvfrom) and every send() and
                complete() too (a sendto), and a waiting recv()/poll() spins this long before
                sleeping. Needs CAP_NET_ADMIN. None: softirq processing, as usual. See
                afxdp.napi for the interface settings that go with it.
            busy_poll_budget: packets one poll may process (1 to 65535; None: 64); only with
                busy_poll_usecs.
            multi_buffer: bind with XDP_USE_SG: a packet longer than a frame arrives as a
                chain of frames (`Frame.more`, `FrameBatch.packets()`; a batch never ends in
                the middle of one), and chains can be sent (`send_packets`, or frames with
                `more` set). Needs a frags-aware program (the built-in one is). Sharing
                sockets inherit it from the Umem's first socket.

        The int arguments refuse bools (TypeError); bad sizes and queues raise ValueError
        naming the value; missing privileges PermissionError naming the capability.
        """
    def fill(self, max: int | None = None) -> int:
        """Hand up to `max` free frames (None: all that fit) to the fill ring; returns how many."""
    def recv(
        self, max: int = 64, timeout: float | None = 0.0, *, coalesce: float | None = None
    ) -> FrameBatch:
        """Receive up to `max` frames, waiting up to `timeout` seconds (without the GIL) for the
        first; None or inf waits until one arrives, negative or NaN raises ValueError.
        close() from another thread ends the wait with ValueError (closed).

        `coalesce` (seconds, at most 1; None or 0: off) trades latency for fewer wakeups: when
        fewer than `max` frames are ready, the call first sleeps that long (without the GIL, not
        woken by arriving frames, never past the timeout) so that frames gather, then takes what
        is ready, and waits for the first frame only when nothing is. Under steady traffic one
        wakeup then takes about rate x coalesce frames. With timeout 0 it never sleeps."""
    def batches(
        self, max: int = 64, timeout: float | None = None, *, coalesce: float | None = None
    ) -> BatchIterator:
        """Iterate over received batches, one call per wakeup: each step gives back the frames
        of the batch it handed out before (unless you sent or released it, or still hold a view
        of one of its frames: then they go back when the last view goes) and receives up to
        `max` frames, waiting (without the GIL) only when none are ready. Ends when `timeout`
        seconds pass with nothing received (None or inf: never; 0: when the rx ring is empty),
        when the socket is closed (also from another thread, within 0.1 s), or on the
        iterator's `close()`. The steps hand out one FrameBatch object, refilled: a reference
        kept past its step sees the next batch; a Frame or Packet of an earlier batch raises
        ValueError. `coalesce` is each step's, as in `recv()`."""
    def alloc(self, n: int) -> FrameBatch:
        """Take up to `n` free frames to write and send (each of length 0 until written)."""
    def send(self, batch: FrameBatch) -> int:
        """Queue the frames for transmission; returns how many. All queued: the batch closes.
        Frames that did not fit in the tx ring stay in the batch (re-indexed from 0)."""
    def send_packets(self, packets: Iterable[Buffer]) -> int:
        """Copy each packet into free frames and send them, in order; returns how many packets
        were queued (fewer when the tx ring or the free frames run short). On a multi-buffer
        socket a packet longer than a frame takes as many chained frames as it needs (at most
        `max_frags`); otherwise each must fit one frame. An empty or too long packet raises
        ValueError naming it, and nothing is sent."""
    def complete(self, max: int | None = None) -> int:
        """Reclaim transmitted frames from the completion ring; returns how many. On a Umem
        with tx_metadata=True, also reads the completion timestamps frames asked for."""
    def tx_timestamps(self) -> list[tuple[int, int]]:
        """The completion timestamps `complete()` collected since the last call: (frame
        index, ns since the epoch on `time.time_ns()`'s clock), in completion order, one per
        frame sent with `request_tx_timestamp()`."""
    def release(self, batch: FrameBatch) -> None:
        """Give a batch's frames back (same as batch.release())."""
    def kick(self) -> None:
        """Wake the kernel to transmit frames still waiting on the tx ring."""
    def poll(self, timeout: float | None = 0.0, events: int = ...) -> int:
        """Wait up to `timeout` seconds (None or inf: forever) for `events` (POLLIN, the
        default, or POLLOUT); returns the ready mask, 0 on timeout. close() from another
        thread ends the wait with ValueError (closed)."""
    def stats(self) -> Stats:
        """Kernel and library counters."""
    @property
    def in_flight(self) -> int:
        """Frames sent and not completed yet."""
    @property
    def tx_pending(self) -> int:
        """Frames waiting on the tx ring for the kernel."""
    @property
    def rx_available(self) -> int:
        """Frames waiting on the rx ring."""
    def fileno(self) -> int:
        """The file descriptor, for select/selectors/asyncio; -1 once closed."""
    def close(self) -> None:
        """Close the socket (the kernel drops it from the XSKMAP). Idempotent."""
    @property
    def closed(self) -> bool: ...
    @property
    def ifname(self) -> str: ...
    @property
    def queue(self) -> int: ...
    @property
    def zerocopy(self) -> bool:
        """Whether the kernel runs the socket in zero-copy mode (False: copy mode)."""
    @property
    def multi_buffer(self) -> bool:
        """Whether the socket was bound with XDP_USE_SG (`multi_buffer=True`)."""
    @property
    def max_frags(self) -> int:
        """The most frames one packet may span when sent: 1 without multi_buffer; with it, in
        copy mode, the kernel's MAX_SKB_FRAGS + 1 (18 by default), at most the tx ring's and the
        completion ring's sizes. The kernel would drop a longer chain whole (tx_invalid_descs),
        or never complete it, so `send` refuses it."""
    @property
    def umem(self) -> Umem: ...
    @property
    def program(self) -> Program | None:
        """The Program this socket is registered with, or None (then it receives nothing)."""
    @property
    def registered(self) -> bool:
        """Whether a live Program has this socket in its XSKMAP (it receives only then)."""
    @property
    def fill_target(self) -> int:
        """How many frames autofill keeps on the fill ring (of the socket's (interface, queue):
        the largest target of the Umem's sockets bound there)."""
    @property
    def shares_fill_ring(self) -> bool:
        """Whether another socket of the same Umem is bound to this (interface, queue),
        sharing its fill and completion rings."""
    @property
    def busy_poll(self) -> tuple[int, int] | None:
        """(busy_poll_usecs, busy_poll_budget), or None without busy polling."""
    @property
    def napi_id(self) -> int:
        """The NAPI instance the socket's packets arrive through (SO_INCOMING_NAPI_ID), the
        one busy polling drives: 0 before the first packet, and in generic mode."""
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
        /,
    ) -> None: ...

@final
class Port:
    """Every rx queue of an interface (or the listed ones): one Socket per queue over one Umem,
    the XDP program attached and every socket registered with it. A context manager: leaving
    the block closes every socket and detaches the program the Port attached."""

    def __new__(
        cls,
        ifname: str,
        queues: Iterable[int] | None = None,
        *,
        umem: Umem | None = None,
        program: Program | None = None,
        rules: Iterable[Rule] | None = None,
        mode: Literal["auto", "native", "generic"] = "auto",
        **socket_options: int | bool | None,
    ) -> Self:
        """Open a socket on each of `queues` of `ifname` (None: every queue) over `umem`.

        Args:
            ifname: the interface, in the calling thread's network namespace.
            queues: the rx queues; None: every rx queue in use (the current channel count,
                `Interface.rx_queues`, which may be below the NIC's maximum).
            umem: the frames of every socket; None: a private Umem of 4096 frames of 4096
                bytes per queue. Unless `fill_size` is given, each queue's fill ring gets an
                equal share of half of its frames.
            program: a Program on `ifname` to register the sockets with; None: the Port
                attaches the built-in program (with `rules` and `mode`) and detaches it on
                close.
            rules: match rules for the program the Port attaches.
            mode: attach mode of the program the Port attaches.
            socket_options: the keyword options of `Socket` (rx_size, tx_size, fill_size,
                comp_size, zerocopy, need_wakeup, autofill, busy_poll_usecs,
                busy_poll_budget), for every socket; rx_size=0 is a ValueError (a Port
                receives). The sockets are registered once all are bound, so a Port that
                fails to open (a queue in use) replaces no registered socket.
        """
    def recv(
        self, max: int = 64, timeout: float | None = 0.0, *, coalesce: float | None = None
    ) -> FrameBatch:
        """Receive up to `max` frames from one queue with frames, trying the queues in turn
        from the one after the queue served last (no queue starves); `batch.queue` says which.
        Waits (without the GIL, on every queue at once) up to `timeout` seconds; None waits
        until a frame arrives. An empty batch on timeout. `close()` from another thread ends
        the wait with ValueError (closed). `coalesce` as in `Socket.recv`: when no queue has
        `max` frames ready, frames first gather for that long; a queue with fewer than `max`
        frames is still served in its turn (after that wait), not passed over for a fuller
        one."""
    def batches(
        self, max: int = 64, timeout: float | None = None, *, coalesce: float | None = None
    ) -> BatchIterator:
        """Iterate over received batches from every queue, one call per wakeup, as
        `Socket.batches()`: each step gives back the previous batch's frames (unless you sent
        or released it, or hold a view of one of its frames) and receives up to `max` frames
        from the next queue with frames (`batch.queue` says which), waiting only when none has
        any. Ends when `timeout` seconds pass with nothing received (None or inf: never; 0:
        when no queue has frames), when the Port is closed, or on the iterator's `close()`.
        The steps hand out one FrameBatch object, refilled (its `queue` follows each batch).
        `coalesce` is each step's, as in `recv()`."""
    def send(self, batch: FrameBatch) -> int:
        """Send a received batch out of its own queue (`batch.queue`); returns frames queued."""
    def complete(self) -> int:
        """Reclaim transmitted frames on every queue; returns how many."""
    def tx_timestamps(self) -> list[tuple[int, int]]:
        """Every queue's `Socket.tx_timestamps()`, merged and ordered by time."""
    @property
    def in_flight(self) -> int:
        """Frames sent on any queue and not completed yet."""
    def fill(self) -> int:
        """Hand free frames to every queue's fill ring; returns how many."""
    @overload
    def stats(self, per_queue: Literal[False] = False) -> Stats: ...
    @overload
    def stats(self, per_queue: Literal[True]) -> dict[int, Stats]: ...
    @property
    def sockets(self) -> list[Socket]:
        """The sockets, one per queue, in the order of `queues`."""
    @property
    def queues(self) -> list[int]:
        """The queues, in the order of `sockets`."""
    def __getitem__(self, queue: SupportsIndex, /) -> Socket:
        """The socket of `queue`; KeyError when the Port has none there."""
    def __len__(self) -> int: ...
    @property
    def umem(self) -> Umem: ...
    @property
    def program(self) -> Program: ...
    @property
    def ifname(self) -> str: ...
    def fileno(self) -> int:
        """The epoll descriptor, readable when any queue has frames; -1 once closed."""
    def close(self) -> None:
        """Wake every waiter, detach the program the Port attached (or unregister its sockets
        from the given one), close the sockets. Idempotent."""
    @property
    def closed(self) -> bool: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
        /,
    ) -> None: ...

@final
class Interface:
    """A network interface of the calling thread's network namespace, as the core sees it: the
    name resolved once to its index, then the MTU, the flags and the queue counts, all read when
    the object is made (a snapshot: make a new one to see changes).

    An unknown name (or one that cannot be an interface name) raises OSError(ENODEV) naming it,
    as Socket and Program do.
    """

    def __new__(cls, ifname: str) -> Self: ...
    @property
    def name(self) -> str:
        """The name it was resolved from."""
    @property
    def index(self) -> int:
        """The interface index (in the network namespace it was resolved in)."""
    @property
    def mtu(self) -> int:
        """The MTU (`SIOCGIFMTU`)."""
    @property
    def flags(self) -> int:
        """The interface flags (`SIOCGIFFLAGS`, the low 16 bits: IFF_UP, IFF_RUNNING, ...)."""
    @property
    def up(self) -> bool:
        """Whether the interface is administratively up (`IFF_UP` in `flags`)."""
    @property
    def queue_count(self) -> int:
        """The XSKMAP size: the largest ethtool channel count, maximum or current (1 when the
        driver reports none), so the map has an entry for every queue the NIC can have."""
    @property
    def rx_queues(self) -> int:
        """The rx queues in use now (current ethtool channels: combined + rx): a Port on every
        queue opens these."""
    @property
    def tx_queues(self) -> int:
        """The tx queues in use now (combined + tx). A socket binds to a queue below the larger
        of `rx_queues` and `tx_queues`."""

def generate(
    ifname: str,
    packet: Buffer,
    count: int | None = None,
    *,
    duration: float | None = None,
    rate: float | None = None,
    src_ports: int = 1,
    batch_size: int = 64,
    progress: Callable[[int, float], object] | None = None,
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
        progress: called with `(sent, seconds)` about every 50 ms and once at the end: the
            packets pushed so far and the time spent pushing them (from the first packet;
            loading and unloading the program, some 20-100 ms, are not in it), so
            `sent / seconds` is the run's own rate. An exception it raises stops the
            generator and propagates.

    A veth drops every copy, without counting it, unless its peer runs a native-mode XDP
    program (a generic-mode one does not count) or has GRO on. Copies the interface cannot
    take (a full veth ring) are counted by the interface, e.g. `ethtool -S`
    tx_queue_N_xdp_xmit_errors.

    The GIL is released while packets are pushed; Ctrl-C raises KeyboardInterrupt within 50 ms
    (the count so far is then lost; `progress` saw it up to the last 50 ms).

    Raises:
        ValueError: no count and no duration, or a value out of range (the message names it).
        TypeError: a bool for count, src_ports or batch_size; a `progress` not callable.
        OSError: ENODEV for an unknown interface; EINVAL from a kernel older than 5.18.
        PermissionError: without CAP_BPF and CAP_NET_ADMIN.
    """
