//! What only the traffic generator can get wrong, nested in [`Error::Generate`](crate::Error).

use super::MTU_OVERHEAD;
use crate::error::{caps, privilege_hint};
use crate::sys::errno;

/// What only the traffic generator can get wrong (nested in [`Error::Generate`](crate::Error::Generate)); bad option
/// values are [`Error::InvalidArgument`](crate::Error::InvalidArgument), interface errors [`Error::NoSuchInterface`](crate::Error::NoSuchInterface), loading
/// errors [`Error::Bpf`](crate::Error::Bpf).
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// Neither a count nor a duration was given.
    #[error("generate needs count or duration (or both): without either it would never stop")]
    Unbounded,

    /// The packet is shorter than an Ethernet header or longer than a live frame takes.
    #[error(
        "invalid packet length {len}: live frames take {min} to {max} bytes here (a page \
         minus the kernel's headroom and tailroom)"
    )]
    PacketLength {
        /// The packet's length.
        len: usize,
        /// [`MIN_PACKET_LEN`](super::MIN_PACKET_LEN).
        min: usize,
        /// [`max_packet_len`](super::max_packet_len).
        max: usize,
    },

    /// `src_ports > 1` with a template that is not Ethernet/IP/UDP as described in the module
    /// documentation.
    #[error(
        "src_ports={src_ports} needs a UDP template (Ethernet, at most one 802.1Q/802.1ad tag, \
         IPv4 or IPv6, UDP): {reason}"
    )]
    NotUdp {
        /// The number of source ports asked for.
        src_ports: u32,
        /// What is wrong with the template.
        reason: String,
    },

    /// The packet is longer than the interface's MTU allows: the redirect would drop it.
    #[error(
        "packet of {len} bytes is too long for {ifname} (MTU {mtu} + {MTU_OVERHEAD} bytes of \
         Ethernet header and VLAN tag): the kernel would drop every copy"
    )]
    TooLongForMtu {
        /// The interface.
        ifname: String,
        /// The packet's length.
        len: usize,
        /// The interface's MTU.
        mtu: u32,
    },

    /// `BPF_PROG_TEST_RUN` failed; `sent` packets were pushed before (exactly).
    #[error(
        "BPF_PROG_TEST_RUN with live frames failed after {sent} packets: {source}{}",
        test_run_hint(source)
    )]
    TestRun {
        /// Packets pushed before the failure, the failed call's included.
        sent: u64,
        /// The error of the call.
        source: std::io::Error,
    },
}

impl GenerateError {
    /// The errno behind this error, if the kernel gave one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::TestRun { source, .. } => source.raw_os_error(),
            Self::Unbounded
            | Self::PacketLength { .. }
            | Self::NotUdp { .. }
            | Self::TooLongForMtu { .. } => None,
        }
    }
}

/// What to say about the errnos of `BPF_PROG_TEST_RUN` whose cause is not obvious.
fn test_run_hint(error: &std::io::Error) -> String {
    match error.raw_os_error() {
        Some(errno::EPERM | errno::EACCES) => {
            privilege_hint("running BPF programs", &[caps::BPF, caps::NET_ADMIN])
        }
        Some(errno::EINVAL) => " (live frames, BPF_F_TEST_XDP_LIVE_FRAMES, need Linux 5.18 or \
                                later; on a newer kernel the packet may be longer than its \
                                live-frame limit)"
            .to_owned(),
        Some(errno::E2BIG) => " (batch_size is above the kernel's maximum of 256)".to_owned(),
        Some(errno::ENOMEM) => " (the kernel could not allocate pages for the frames)".to_owned(),
        _ => String::new(),
    }
}
