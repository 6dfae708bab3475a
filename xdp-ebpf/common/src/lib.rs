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

// The layouts both sides rely on; a change fails both builds.
const _: () = assert!(size_of::<Rule>() == 8);
const _: () = assert!(size_of::<RuleSet>() == 8 + 8 * MAX_RULES);
const _: () = assert!(size_of::<GenConfig>() == 24);

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
