//! One error type for the core. Each variant says what failed and with which value, so the
//! Python bindings can map it once to a precise exception (keeping `errno` where there is one).
//! What only the XDP program can get wrong nests in [`Error::Bpf`], what only the traffic
//! generator can in [`Error::Generate`]; neither repeats a variant of [`Error`].

use std::io;

use crate::bpf::BpfError;
use crate::generator::GenerateError;
use crate::sys::errno;

/// Result alias of the core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the core can report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call failed; `call` names it (with the option, e.g. `setsockopt(XDP_UMEM_REG)`).
    #[error("{call} failed: {source}{}", syscall_hint(call, source))]
    Syscall {
        call: &'static str,
        #[source]
        source: io::Error,
    },
    /// An argument the caller passed is out of its valid range.
    #[error("invalid {name} {value}: {why}")]
    InvalidArgument { name: &'static str, value: String, why: String },
    /// The interface does not exist in this network namespace.
    #[error("no such network interface: {ifname:?}")]
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
    /// A UMEM on huge pages needs more 2 MiB huge pages than are free (mmap said ENOMEM).
    #[error(
        "no huge pages for the UMEM: it needs {needed} free 2 MiB huge pages and {free} of the \
         {reserved} reserved are free; reserve more as root, e.g. `echo {} > {}`",
        reserved + needed.saturating_sub(*free),
        crate::sys::NR_HUGEPAGES
    )]
    NoHugePages { needed: u64, reserved: u64, free: u64 },
    /// The socket, UMEM or program was closed.
    #[error("{what} is closed")]
    Closed { what: &'static str },
    /// The running kernel lacks something the core needs.
    #[error("{feature} needs Linux {needs} or newer")]
    KernelTooOld { feature: &'static str, needs: &'static str },
    /// The object was created in another process, which this one is a `fork()` child of: the
    /// kernel keeps working with the parent's rings and memory, so the child's copies cannot
    /// be used.
    #[error(
        "this {what} was created in process {pid} and cannot be used after fork(); open a new \
         one in the child"
    )]
    ForkedChild { what: &'static str, pid: u32 },
    /// Loading, attaching or driving the XDP program failed.
    #[error(transparent)]
    Bpf(#[from] BpfError),
    /// The traffic generator refused its input or its kernel run failed.
    #[error(transparent)]
    Generate(#[from] GenerateError),
}

impl Error {
    /// The errno behind this error, when the kernel gave one (`ENODEV` for
    /// [`Error::NoSuchInterface`], as `if_nametoindex` and `bind` say).
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Syscall { source, .. } => source.raw_os_error(),
            Error::NoSuchInterface { .. } => Some(errno::ENODEV),
            Error::NoHugePages { .. } => Some(errno::ENOMEM),
            Error::Bpf(e) => e.errno(),
            Error::Generate(e) => e.errno(),
            _ => None,
        }
    }
}

/// The capabilities the core's operations need, by name.
pub mod caps {
    /// AF_XDP sockets.
    pub const NET_RAW: &str = "CAP_NET_RAW";
    /// Attaching XDP programs, creating an XSKMAP.
    pub const NET_ADMIN: &str = "CAP_NET_ADMIN";
    /// Loading BPF programs and maps.
    pub const BPF: &str = "CAP_BPF";
    /// Pointer arithmetic in BPF programs (the verifier's "!root" checks).
    pub const PERFMON: &str = "CAP_PERFMON";
    /// What the other BPF capabilities split up; also network namespaces.
    pub const SYS_ADMIN: &str = "CAP_SYS_ADMIN";
}

/// The one wording of every privilege hint: `" (WHAT needs CAP_A and CAP_B, or root)"`.
pub fn privilege_hint(what: &str, needs: &[&str]) -> String {
    let list = match needs {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    };
    format!(" ({what} needs {list}, or root)")
}

/// A short hint for the errnos whose meaning depends on the call.
fn syscall_hint(call: &str, err: &io::Error) -> String {
    let errno = err.raw_os_error().unwrap_or(0);
    let text = match (call, errno) {
        ("setsockopt(SO_PREFER_BUSY_POLL)" | "setsockopt(SO_BUSY_POLL_BUDGET)", errno::EPERM) => {
            return privilege_hint("preferred busy polling", &[caps::NET_ADMIN]);
        }
        (_, errno::EPERM | errno::EACCES) => {
            return privilege_hint("an AF_XDP socket", &[caps::NET_RAW])
                + &privilege_hint("an XDP program", &[caps::NET_ADMIN, caps::BPF]);
        }
        ("socket(AF_XDP)", errno::EAFNOSUPPORT) => {
            " (the kernel has no AF_XDP: CONFIG_XDP_SOCKETS)"
        }
        ("bind(AF_XDP)", errno::EBUSY) => {
            " (the queue is taken by another AF_XDP socket, or a closed one is still being released)"
        }
        ("bind(AF_XDP)", errno::EOPNOTSUPP) => {
            " (zero-copy is not supported by this driver; use zerocopy=False or None)"
        }
        ("bind(AF_XDP)", errno::ENODEV) => " (the interface is not in this network namespace)",
        ("setsockopt(XDP_UMEM_REG)", errno::ENOBUFS) => {
            " (UMEM too large for RLIMIT_MEMLOCK; raise it or run with CAP_IPC_LOCK)"
        }
        _ => "",
    };
    text.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn privilege_hints_share_one_wording() {
        assert_eq!(privilege_hint("x", &[caps::BPF]), " (x needs CAP_BPF, or root)");
        assert_eq!(
            privilege_hint("x", &[caps::NET_ADMIN, caps::BPF, caps::PERFMON]),
            " (x needs CAP_NET_ADMIN, CAP_BPF and CAP_PERFMON, or root)"
        );
        let eperm = Error::Syscall {
            call: "socket(AF_XDP)",
            source: io::Error::from_raw_os_error(errno::EPERM),
        };
        assert!(eperm.to_string().contains("CAP_NET_RAW"), "{eperm}");
        assert_eq!(eperm.errno(), Some(errno::EPERM));
        let busy = Error::Syscall {
            call: "setsockopt(SO_PREFER_BUSY_POLL)",
            source: io::Error::from_raw_os_error(errno::EPERM),
        };
        assert!(
            busy.to_string().ends_with("(preferred busy polling needs CAP_NET_ADMIN, or root)"),
            "{busy}"
        );
    }

    #[test]
    fn no_huge_pages_names_the_knob_and_the_count_to_write() {
        let error = Error::NoHugePages { needed: 3, reserved: 4, free: 1 };
        assert_eq!(
            error.to_string(),
            "no huge pages for the UMEM: it needs 3 free 2 MiB huge pages and 1 of the 4 \
             reserved are free; reserve more as root, e.g. `echo 6 > /proc/sys/vm/nr_hugepages`"
        );
        assert_eq!(error.errno(), Some(errno::ENOMEM));
    }

    #[test]
    fn forked_child_names_the_object_and_the_process() {
        let error = Error::ForkedChild { what: "Socket", pid: 42 };
        assert_eq!(
            error.to_string(),
            "this Socket was created in process 42 and cannot be used after fork(); open a new \
             one in the child"
        );
    }
}
