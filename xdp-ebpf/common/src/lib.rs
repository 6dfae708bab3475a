//! What afxdp's XDP programs and its Rust core must agree on, defined once: the map layouts
//! (`#[repr(C)]`, size-asserted, explicit padding so every byte is initialised), their flag bits,
//! the most rules a set holds, and the names of the programs and maps in the objects.
//!
//! The programs (`xdp-ebpf/src/main.rs`, `xdp-ebpf/src/gen.rs`) read these structs from their
//! maps; the core (`rust/core/src/bpf/rules.rs`, `rust/core/src/generator/`) writes them.

#![no_std]

use core::mem::size_of;

/// The most rules in one set.
pub const MAX_RULES: usize = 16;

/// Rx queues the redirect program counts "no socket registered" packets for, one counter each
/// (the last one also counts every higher queue).
pub const NO_SOCKET_QUEUES: u32 = 256;

/// [`Rule::flags`]: the ethertype must match.
pub const MATCH_ETHERTYPE: u8 = 1;
/// [`Rule::flags`]: the IP protocol must match.
pub const MATCH_IP_PROTO: u8 = 2;
/// [`Rule::flags`]: the destination port must match.
pub const MATCH_DST_PORT: u8 = 4;

/// One match rule of the redirect program. Fields without their flag are ignored.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rule {
    /// Ethertype, host byte order.
    pub ethertype: u16,
    /// Destination port, host byte order.
    pub dst_port: u16,
    /// IP protocol number.
    pub ip_proto: u8,
    /// `MATCH_*` bits.
    pub flags: u8,
    /// Zero.
    pub _pad: [u8; 2],
}

/// A rule set: the first `count` rules are in force; `count == 0` matches every packet.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuleSet {
    /// Rules in force, at most [`MAX_RULES`].
    pub count: u32,
    /// Zero.
    pub _pad: u32,
    /// The rules; those from `count` on are ignored.
    pub rules: [Rule; MAX_RULES],
}

/// [`GenConfig::flags`]: rewrite the UDP source port.
pub const REWRITE_SRC_PORT: u32 = 1;

/// The traffic generator's configuration: what to send and how. Written once by userspace
/// before the first run.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GenConfig {
    /// Interface to redirect every packet to (in the network namespace of the test run).
    pub ifindex: u32,
    /// Offset of the UDP header in the frame; used with [`REWRITE_SRC_PORT`].
    pub udp_offset: u32,
    /// First source port, host byte order.
    pub port_base: u32,
    /// Number of source ports; the program rewrites only when it is above 1.
    pub port_count: u32,
    /// [`REWRITE_SRC_PORT`].
    pub flags: u32,
    /// Zero.
    pub _pad: u32,
}

/// [`RxMeta::magic`]: marks the bytes before a received packet as an [`RxMeta`] (and names
/// its version: a new layout gets a new magic).
pub const RX_META_MAGIC: u32 = 0xaf_d0_4d_01;

/// [`RxMeta::flags`]: `rx_timestamp` holds the time the program saw the packet.
pub const RX_META_TIMESTAMP: u16 = 1;
/// [`RxMeta::flags`]: `rx_timestamp` is `CLOCK_MONOTONIC` (`bpf_ktime_get_ns`) rather than
/// `CLOCK_TAI` (`bpf_ktime_get_tai_ns`, what the built-in program writes).
pub const RX_META_CLOCK_MONOTONIC: u16 = 2;
/// [`RxMeta::flags`]: `rx_hw_timestamp` holds the device's receive timestamp
/// (`bpf_xdp_metadata_rx_timestamp`).
pub const RX_META_HW_TIMESTAMP: u16 = 4;
/// [`RxMeta::flags`]: `rx_hash` and `rx_hash_type` hold the device's receive hash
/// (`bpf_xdp_metadata_rx_hash`).
pub const RX_META_HASH: u16 = 8;

/// Per-packet receive metadata, written by an XDP program into the XDP metadata area
/// (`bpf_xdp_adjust_meta(ctx, -32)`) right before the packet data, which the kernel copies
/// into the UMEM frame just before the packet (copy mode) or leaves there (zero-copy).
///
/// Read back from the 32 bytes before a received packet's first byte: valid when `magic` is
/// [`RX_META_MAGIC`] and `len` matches the descriptor (see `rust/core/src/rxmeta.rs`). All
/// fields are in host byte order. 32 bytes: the most metadata kernels before 6.x accept.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxMeta {
    /// Nanoseconds on the clock `flags` names, when the program saw the packet.
    pub rx_timestamp: u64,
    /// The device's receive timestamp (nanoseconds, its clock), with [`RX_META_HW_TIMESTAMP`].
    pub rx_hw_timestamp: u64,
    /// The device's receive hash, with [`RX_META_HASH`].
    pub rx_hash: u32,
    /// `enum xdp_rss_hash_type` of `rx_hash`, with [`RX_META_HASH`].
    pub rx_hash_type: u16,
    /// `RX_META_*` bits: which fields hold values.
    pub flags: u16,
    /// The packet's length when the program wrote this (`bpf_xdp_get_buff_len`), so stale
    /// metadata left in a reused frame by an earlier packet is told apart.
    pub len: u32,
    /// [`RX_META_MAGIC`]; last, so it sits right before the packet.
    pub magic: u32,
}

/// Stand-in helper ids for the `bpf_xdp_metadata_rx_*` kfuncs in the redirect program.
///
/// A kfunc call names a function of the running kernel by its BTF id, which only the kernel
/// knows; the compiler emits `call KFUNC_*` (an ordinary helper call with an id no helper has)
/// and the loader (`rust/core/src/bpf/devbound.rs`) rewrites each into a kfunc call
/// (`src_reg = BPF_PSEUDO_KFUNC_CALL`, `imm` = the id of the function in
/// `/sys/kernel/btf/vmlinux`). Without the device-bound load, [`names::RX_DEVICE_META_ON`] is 0
/// and the verifier removes these calls as dead code before it looks at them.
pub mod kfunc {
    /// `int bpf_xdp_metadata_rx_timestamp(const struct xdp_md *ctx, __u64 *timestamp)`.
    pub const RX_TIMESTAMP: i32 = 0x7fff_0001;
    /// `int bpf_xdp_metadata_rx_hash(const struct xdp_md *ctx, __u32 *hash,
    /// enum xdp_rss_hash_type *rss_type)`.
    pub const RX_HASH: i32 = 0x7fff_0002;
    /// Each stand-in id with the kernel function it calls.
    pub const ALL: [(i32, &str); 2] =
        [(RX_TIMESTAMP, "bpf_xdp_metadata_rx_timestamp"), (RX_HASH, "bpf_xdp_metadata_rx_hash")];
}

/// The size of [`RxMeta`], which the program reserves with `bpf_xdp_adjust_meta`.
pub const RX_META_LEN: usize = size_of::<RxMeta>();

// The layouts both sides rely on; a change fails both builds.
const _: () = assert!(size_of::<Rule>() == 8);
const _: () = assert!(size_of::<RuleSet>() == 8 + 8 * MAX_RULES);
const _: () = assert!(size_of::<GenConfig>() == 24);
const _: () = assert!(size_of::<RxMeta>() == 32);
const _: () = assert!(core::mem::offset_of!(RxMeta, magic) == 28);

/// The names of the programs and maps in the objects (the maps' static names in the programs'
/// sources; the core looks them up by these).
pub mod names {
    /// The redirect program (`xdp-ebpf/src/main.rs`).
    pub const PROGRAM: &str = "afxdp_redirect";
    /// Its XSKMAP: rx queue index → AF_XDP socket.
    pub const XSKS: &str = "XSKS";
    /// Its two rule sets (`Array<RuleSet>`, 2 entries).
    pub const RULES: &str = "RULES";
    /// Index 0: which rule set is active (`Array<u32>`).
    pub const ACTIVE: &str = "ACTIVE";
    /// Per-CPU hit counters (`PerCpuArray<u64>`): `set * MAX_RULES + rule`, then one
    /// no-match counter per set at `2 * MAX_RULES + set`.
    pub const HITS: &str = "HITS";
    /// The redirect program's read-only switch (a `u32` global in `.rodata`, set at load):
    /// non-zero writes an [`super::RxMeta`] before every packet it redirects.
    pub const RX_META_ON: &str = "RX_META_ON";
    /// The redirect program's second read-only switch (`u32`, `.rodata`): non-zero also asks
    /// the device for its receive timestamp and hash (the [`super::kfunc`] calls) for the
    /// [`super::RxMeta`]. Only for a device-bound load.
    pub const RX_DEVICE_META_ON: &str = "RX_DEVICE_META_ON";
    /// Per-CPU counters by rx queue (`PerCpuArray<u64>`, [`super::NO_SOCKET_QUEUES`] entries):
    /// packets for the XSKMAP that found no socket at their queue.
    pub const NO_SOCKET: &str = "NO_SOCKET";
    /// The generator's program (`xdp-ebpf/src/gen.rs`).
    pub const GEN_PROGRAM: &str = "afxdp_gen";
    /// Its configuration (`Array<GenConfig>`, one entry).
    pub const CONFIG: &str = "CONFIG";
    /// Its per-CPU run counter (`PerCpuArray<u64>`, one entry).
    pub const COUNTERS: &str = "COUNTERS";
}
