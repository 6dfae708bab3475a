//! The built-in XDP program: load, attach, XSKMAP registration, match rules, detach.
//!
//! AF_XDP sockets only receive what an XDP program on the interface redirects to them. afxdp
//! ships one program, `afxdp_redirect` (source in `xdp-ebpf/`, object committed as
//! `rust/core/bpf/afxdp.bpf.o` and embedded here): it redirects every packet to the socket
//! registered in its XSKMAP at the packet's rx queue index, and passes the packet to the kernel
//! stack (`XDP_PASS`) when that queue has no socket, so ARP, neighbour discovery and queues
//! without a socket keep working.
//!
//! [`XdpProgram::attach_builtin`] loads the program with the XSKMAP sized to the interface's
//! queue count ([`Interface::queue_count`](crate::sys::Interface::queue_count)) and attaches it;
//! [`XdpProgram::register`] puts a bound socket into the map at its queue; dropping the
//! [`XdpProgram`] (or [`XdpProgram::detach`]) removes the program from the interface.
//!
//! The module is split along its seams: [`program`] (load, attach, register, detach),
//! `attach` (the link, this process's attachments, attach errors), [`rules`] (match rules, the
//! two rule sets and the program's methods for them), `object` (the embedded object, a user's
//! object, map typing), `devbound` (the load bound to the device, for its receive metadata)
//! and [`errors`] ([`BpfError`] and aya's error chains). The layouts shared with the program (rule sets, flags, map names) come
//! from `afxdp-ebpf-common`.
//!
//! # Lifetime of the attachment
//!
//! aya attaches through a BPF link (`bpf_link_create`, kernel ≥ 5.9) and falls back to netlink
//! only when the kernel rejects links with `EINVAL`. A link belongs to its file descriptor: the
//! program is detached when the [`XdpProgram`] is dropped or the process exits, even by
//! `SIGKILL`. A `fork()` without `exec` duplicates that descriptor, so the program stays attached
//! until the child exits too (or drops its copy, which only closes it). On the netlink fallback
//! (kernels < 5.9) a killed process leaves the program attached (`ip link set dev IFNAME xdp
//! off` removes it).
//!
//! # Minimum kernel version
//!
//! 4.18 for XSKMAP and `bpf_redirect_map` into it; 5.3 for the fallback action in the low bits
//! of the `bpf_redirect_map` flags (older kernels drop packets of queues without a socket);
//! 5.9 for BPF links. Tested on 6.18.
//!
//! # Privileges
//!
//! Loading and attaching need `CAP_BPF`, `CAP_NET_ADMIN` and, for the built-in program (whose
//! packet parsing uses pointer arithmetic the verifier allows only then), `CAP_PERFMON`; or
//! root. Without `CAP_PERFMON` the load fails with [`BpfError::MissingCapability`] (`EPERM`).
//!
//! # Network namespaces
//!
//! Interfaces are resolved in the calling thread's network namespace, which is also where the
//! program is attached.

use std::fmt;
use std::str::FromStr;

mod attach;
mod devbound;
pub mod errors;
mod object;
pub mod program;
pub mod rules;
#[cfg(test)]
pub(crate) mod test_support;

pub use errors::BpfError;
pub(crate) use object::with_loader;
pub use program::XdpProgram;
pub use rules::{MAX_RULES, Rule, RuleStats, StagedRules};

/// Switches of the built-in program, fixed when it is loaded
/// ([`XdpProgram::attach_builtin_with`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct BuiltinOptions {
    /// Write an [`RxMeta`](afxdp_ebpf_common::RxMeta) with the `CLOCK_TAI` time before every
    /// packet redirected to a socket (read back with [`crate::rxmeta`]). Costs a helper call
    /// and a 32-byte write per packet; off, the verifier removes that code.
    pub rx_timestamps: bool,
    /// Also ask the device for each packet's receive timestamp and hash (the
    /// `bpf_xdp_metadata_rx_*` kfuncs) and put them in the [`RxMeta`](afxdp_ebpf_common::RxMeta)
    /// (implies `rx_timestamps`). The program is then bound to the interface
    /// (`BPF_F_XDP_DEV_BOUND_ONLY`, Linux 6.3) and attaches in native mode only: the kernel
    /// refuses device-bound programs in generic mode. Fields the device does not provide stay
    /// unset (veth gives the hash of packets that came from its peer's stack, no timestamp).
    pub device_metadata: bool,
}

impl BuiltinOptions {
    /// The options with `rx_timestamps` set to `on`.
    pub fn with_rx_timestamps(mut self, on: bool) -> Self {
        self.rx_timestamps = on;
        self
    }

    /// The options with `device_metadata` set to `on`.
    pub fn with_device_metadata(mut self, on: bool) -> Self {
        self.device_metadata = on;
        self
    }

    /// Whether the program writes an [`RxMeta`](afxdp_ebpf_common::RxMeta) before packets.
    pub fn writes_rx_meta(&self) -> bool {
        self.rx_timestamps || self.device_metadata
    }
}

/// How the XDP program is attached to the interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AttachMode {
    /// Native first, generic when the driver cannot run XDP natively.
    #[default]
    Auto,
    /// Native (driver) mode, `XDP_FLAGS_DRV_MODE`: the program runs in the driver before an
    /// skb is allocated. Needs driver support (veth has it).
    Native,
    /// Generic (skb) mode, `XDP_FLAGS_SKB_MODE`: the program runs in the kernel stack after
    /// skb allocation. Works on every interface, slower.
    Generic,
}

impl AttachMode {
    /// The mode's name: `"auto"`, `"native"` or `"generic"` (what [`FromStr`] accepts).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Native => "native",
            Self::Generic => "generic",
        }
    }
}

impl fmt::Display for AttachMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing an [`AttachMode`] from a string other than `auto`, `native`, `generic`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid XDP attach mode {value:?}: expected \"auto\", \"native\" or \"generic\"")]
pub struct ParseAttachModeError {
    /// The string that was not a mode.
    pub value: String,
}

impl FromStr for AttachMode {
    type Err = ParseAttachModeError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "auto" => Ok(Self::Auto),
            "native" => Ok(Self::Native),
            "generic" => Ok(Self::Generic),
            _ => Err(ParseAttachModeError { value: value.to_owned() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attach_mode_round_trips() {
        for mode in [AttachMode::Auto, AttachMode::Native, AttachMode::Generic] {
            assert_eq!(mode.as_str().parse::<AttachMode>(), Ok(mode));
            assert_eq!(mode.to_string(), mode.as_str());
        }
        let error = "drv".parse::<AttachMode>().unwrap_err();
        assert_eq!(error.value, "drv");
        assert!(error.to_string().contains("\"drv\""), "{error}");
    }
}
