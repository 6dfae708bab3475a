//! One error type for the core. Each variant says what failed and with which value, so the
//! Python bindings can map it once to a precise exception (keeping `errno` where there is one).

use std::io;

use crate::bpf::BpfError;

/// Result alias of the core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the core can report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call failed; `call` names it (with the option, e.g. `setsockopt(XDP_UMEM_REG)`).
    #[error("{call} failed: {source}{}", hint(call, source))]
    Syscall {
        call: &'static str,
        #[source]
        source: io::Error,
    },
    /// An argument the caller passed is out of its valid range.
    #[error("invalid {name} {value}: {reason}")]
    InvalidArgument { name: &'static str, value: u64, reason: String },
    /// The interface does not exist in this network namespace.
    #[error("no such interface: {ifname:?}")]
    NoSuchInterface { ifname: String },
    /// The queue id is not one of the interface's queues.
    #[error("queue {queue} out of range for {ifname:?}: it has {count} queue(s)")]
    QueueOutOfRange { ifname: String, queue: u32, count: u32 },
    /// A packet does not fit in a frame.
    #[error("packet of {len} bytes does not fit in the frame (room for {capacity} bytes)")]
    PacketTooLong { len: usize, capacity: usize },
    /// A frame was handed to a ring or the pool while not owned by the caller.
    #[error("frame {index} (address {addr:#x}) is {state}, not owned by this batch")]
    FrameNotOwned { index: u32, addr: u64, state: &'static str },
    /// The socket, UMEM or program was closed.
    #[error("{what} is closed")]
    Closed { what: &'static str },
    /// The UMEM is already in use by another socket (sharing comes later).
    #[error("this Umem is already bound to a socket")]
    UmemInUse,
    /// Loading, attaching or updating the XDP program failed.
    #[error(transparent)]
    Bpf(#[from] BpfError),
}

impl Error {
    /// The errno behind this error, when the kernel gave one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Syscall { source, .. } => source.raw_os_error(),
            Error::Bpf(e) => e.errno(),
            _ => None,
        }
    }
}

/// A short hint for the errnos whose meaning depends on the call.
fn hint(call: &str, err: &io::Error) -> &'static str {
    let errno = err.raw_os_error().unwrap_or(0);
    match (call, errno) {
        (_, libc::EPERM) | (_, libc::EACCES) => {
            " (AF_XDP needs CAP_NET_RAW, XDP programs CAP_NET_ADMIN and CAP_BPF: run as root)"
        }
        ("socket(AF_XDP)", libc::EAFNOSUPPORT) => " (the kernel has no AF_XDP: CONFIG_XDP_SOCKETS)",
        ("bind(AF_XDP)", libc::EBUSY) => {
            " (the queue is taken by another AF_XDP socket, or a closed one is still being released)"
        }
        ("bind(AF_XDP)", libc::EOPNOTSUPP) => {
            " (zero-copy is not supported by this driver; use zerocopy=False or None)"
        }
        ("bind(AF_XDP)", libc::ENODEV) => " (the interface is not in this network namespace)",
        ("setsockopt(XDP_UMEM_REG)", libc::ENOBUFS) => {
            " (UMEM too large for RLIMIT_MEMLOCK; raise it or run with CAP_IPC_LOCK)"
        }
        _ => "",
    }
}
