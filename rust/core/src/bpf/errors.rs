//! What only the XDP program can get wrong ([`BpfError`], nested in [`crate::Error::Bpf`]), and
//! the flattening of aya's error chains into it, keeping the errno.

use std::error::Error as StdError;
use std::io;

use aya::maps::MapError;
use aya::programs::ProgramError;

use super::rules::Rule;
use crate::error::{Error, caps, privilege_hint};
use crate::sys::errno;

/// Errors of loading, attaching and driving the XDP program. Interface, queue and syscall
/// errors are [`crate::Error`]'s own; this holds only what is about BPF.
///
/// Where the kernel returned an errno it is kept (see [`BpfError::errno`]), so the bindings can
/// raise an `OSError` with the real code.
#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    /// Loading the object or the program into the kernel failed. `EPERM` means missing
    /// privileges.
    #[error("loading the XDP program failed: {message}{}", bpf_privilege_hint(*errno))]
    Load {
        /// The errno of the failing `bpf()` call, if any.
        errno: Option<i32>,
        /// What failed, with aya's error chain.
        message: String,
    },

    /// The verifier refused what only a capability allows (pointer arithmetic "prohibited for
    /// !root" without `CAP_PERFMON`): a permission problem, not a broken program. Its errno is
    /// `EPERM`.
    #[error(
        "loading XDP program `{program}` failed: the verifier refused it for lack of {needs}: \
         {log_tail}{}",
        privilege_hint("loading this XDP program", &[caps::BPF, caps::NET_ADMIN, needs])
    )]
    MissingCapability {
        /// The program's name.
        program: String,
        /// The capability the verifier's check wants.
        needs: &'static str,
        /// The last line of the verifier log.
        log_tail: String,
    },

    /// Attaching to the interface failed. Common errnos: `EBUSY` (another XDP program is
    /// attached in this mode, e.g. by `ip link` or another process), `EEXIST` (a program is
    /// attached in the other mode), `EOPNOTSUPP` (no native XDP in this driver), `ERANGE`
    /// (native mode on veth with an MTU above one page), `EPERM`.
    #[error("attaching the XDP program to {ifname} in {mode} mode failed: {message}{}", bpf_privilege_hint(*errno))]
    Attach {
        /// The interface.
        ifname: String,
        /// The mode tried: `"native"` or `"generic"`.
        mode: &'static str,
        /// The errno of the failing call, if any.
        errno: Option<i32>,
        /// What failed, with aya's error chain.
        message: String,
    },

    /// Updating (`"update"`), deleting (`"delete"`) or reading (`"lookup"`) a map entry failed.
    /// Common errnos: `EBADF` (not a file descriptor), `EOPNOTSUPP` (not an AF_XDP socket).
    #[error("XSKMAP {op} at queue {key} failed: {message}")]
    Map {
        /// `"update"`, `"delete"` or `"lookup"`.
        op: &'static str,
        /// The key (a queue index, a rule set or a counter index).
        key: u32,
        /// The errno of the map call, if any.
        errno: Option<i32>,
        /// What failed, with aya's error chain.
        message: String,
    },

    /// The program was detached; it cannot be used any more.
    #[error("the XDP program is detached")]
    Detached,

    /// A custom object has no program or map of the name asked for, or, when no name was
    /// given, not exactly one candidate.
    #[error("{message}")]
    NotInObject {
        /// `"program"` or `"map"`.
        kind: &'static str,
        /// The name asked for, if any.
        name: Option<String>,
        /// What is missing and what the object has.
        message: String,
    },

    /// A program or map of a custom object has the wrong type (e.g. the `xsk_map` is a hash
    /// map, or the program is not an XDP program).
    #[error("{kind} `{name}` in the object is {found}, not {expected}")]
    WrongType {
        /// `"program"` or `"map"`.
        kind: &'static str,
        /// Its name.
        name: String,
        /// The type needed.
        expected: &'static str,
        /// The type found.
        found: String,
    },

    /// The kernel verifier rejected the program; `log` is its output.
    #[error("the kernel verifier rejected XDP program `{program}`{}:\n{log}", errno.map(|e| format!(" ({})", io::Error::from_raw_os_error(e))).unwrap_or_default())]
    Verifier {
        /// The program's name.
        program: String,
        /// The errno of `BPF_PROG_LOAD` (`EACCES` or `EINVAL`, usually).
        errno: Option<i32>,
        /// The verifier log.
        log: String,
    },

    /// The device's receive metadata (`BuiltinOptions::device_metadata`) cannot be had: the
    /// kernel lacks the device-bound program or the kfuncs it needs. Its errno is
    /// `EOPNOTSUPP`.
    #[error("device receive metadata (rx_hw_timestamp, rx_hash) on {ifname}: {reason}")]
    DeviceMetadata {
        /// The interface.
        ifname: String,
        /// Why not.
        reason: String,
    },

    /// More rules than the built-in program takes.
    #[error("too many rules: {count} (the built-in program takes at most {max})")]
    TooManyRules {
        /// The number of rules given.
        count: usize,
        /// [`super::MAX_RULES`].
        max: usize,
    },

    /// A rule the program cannot express.
    #[error("invalid rule {rule}: {reason}")]
    InvalidRule {
        /// The rule.
        rule: Rule,
        /// Why.
        reason: &'static str,
    },

    /// Match rules and the built-in program's counters need the built-in program; this one was
    /// loaded from a custom object.
    #[error(
        "{what} need the built-in program; the program on {ifname} was loaded from a custom object"
    )]
    NoRules {
        /// The interface.
        ifname: String,
        /// What was asked for: `"match rules"` or `"the no-socket counters"`.
        what: &'static str,
    },
}

/// The privilege hint for EPERM/EACCES from `bpf()` or the attach.
fn bpf_privilege_hint(errno: Option<i32>) -> String {
    match errno {
        Some(errno::EPERM | errno::EACCES) => privilege_hint(
            "loading and attaching XDP programs",
            &[caps::BPF, caps::NET_ADMIN, caps::PERFMON],
        ),
        _ => String::new(),
    }
}

impl BpfError {
    /// The errno behind this error, if the kernel returned one; `EPERM` for
    /// [`BpfError::MissingCapability`]; `None` for errors found before any system call.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Load { errno, .. }
            | Self::Attach { errno, .. }
            | Self::Map { errno, .. }
            | Self::Verifier { errno, .. } => *errno,
            Self::MissingCapability { .. } => Some(errno::EPERM),
            Self::DeviceMetadata { .. } => Some(errno::EOPNOTSUPP),
            Self::Detached
            | Self::NotInObject { .. }
            | Self::WrongType { .. }
            | Self::TooManyRules { .. }
            | Self::InvalidRule { .. }
            | Self::NoRules { .. } => None,
        }
    }
}

/// The error of `BPF_PROG_LOAD` for program `name`: [`BpfError::Load`] for missing privileges
/// (`EPERM` is no verdict of the verifier), [`BpfError::MissingCapability`] when the verifier
/// refused what only `CAP_PERFMON` allows, [`BpfError::Verifier`] with the log for a
/// rejection, `other` for anything else.
pub(crate) fn program_load_error(
    name: &str,
    error: ProgramError,
    other: fn(&(dyn StdError + 'static)) -> BpfError,
) -> BpfError {
    match error {
        ProgramError::LoadError { io_error, verifier_log } => {
            refused_load_error(name, io_error, format!("{verifier_log:?}"))
        }
        e => other(&e),
    }
}

/// The error of a `BPF_PROG_LOAD` of program `name` that failed with `io_error` and verifier
/// log `log` (see [`program_load_error`]).
pub(crate) fn refused_load_error(name: &str, io_error: io::Error, log: String) -> BpfError {
    if io_error.raw_os_error() == Some(errno::EPERM) {
        return BpfError::Load {
            errno: Some(errno::EPERM),
            message: format!("loading XDP program `{name}`: {io_error}"),
        };
    }
    let log = log.trim_end().to_owned();
    match needs_perfmon(&log) {
        Some(line) => BpfError::MissingCapability {
            program: name.to_owned(),
            needs: caps::PERFMON,
            log_tail: line.to_owned(),
        },
        None => {
            BpfError::Verifier { program: name.to_owned(), errno: io_error.raw_os_error(), log }
        }
    }
}

/// The verifier line saying a check failed only because the loader lacks `CAP_PERFMON`, if
/// any: those say "... prohibited for !root" (the kernel's `bpf_allow_ptr_leaks()` and
/// `bypass_spec_v1()`, both `perfmon_capable()`).
fn needs_perfmon(log: &str) -> Option<&str> {
    log.lines().rev().map(str::trim).find(|line| line.ends_with("prohibited for !root"))
}

/// A [`BpfError::Load`] from an aya error, keeping the errno and the verifier log.
pub(crate) fn load_error(error: &(dyn StdError + 'static)) -> BpfError {
    BpfError::Load { errno: errno_of(error), message: error_chain(error) }
}

/// A [`BpfError::Load`] for an object that lacks `name` (the embedded object is broken).
pub(crate) fn missing_in_object(kind: &str, name: &str) -> BpfError {
    BpfError::Load { errno: None, message: format!("the embedded object has no {kind} `{name}`") }
}

/// A [`BpfError::Map`] from a map error.
pub(crate) fn map_error(op: &'static str, key: u32, error: MapError) -> Error {
    BpfError::Map { op, key, errno: errno_of(&error), message: error_chain(&error) }.into()
}

/// The first OS error code in `error`'s source chain.
pub(crate) fn errno_of(error: &(dyn StdError + 'static)) -> Option<i32> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(errno) = e.downcast_ref::<io::Error>().and_then(io::Error::raw_os_error) {
            return Some(errno);
        }
        if let Some(errno) = e
            .downcast_ref::<aya::sys::NetlinkError>()
            .and_then(aya::sys::NetlinkError::raw_os_error)
        {
            return Some(errno);
        }
        current = e.source();
    }
    None
}

/// `error` and its sources joined by ": " (aya's messages put the detail, e.g. the errno, in
/// the source). A source whose text the message already contains is skipped.
pub(crate) fn error_chain(error: &(dyn StdError + 'static)) -> String {
    let mut message = error.to_string();
    let mut current = error.source();
    while let Some(e) = current {
        let text = e.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        current = e.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfmon_refusals_are_found_in_the_log() {
        let log = "0: R1=ctx() R10=fp0\n; ...\n12: (0f) r3 += r2\n\
                   R3 pointer arithmetic on pkt_end prohibited for !root\n";
        assert_eq!(
            needs_perfmon(log),
            Some("R3 pointer arithmetic on pkt_end prohibited for !root")
        );
        assert_eq!(needs_perfmon("R1 invalid mem access 'scalar'"), None);
        let error = BpfError::MissingCapability {
            program: "afxdp_redirect".into(),
            needs: caps::PERFMON,
            log_tail: "R3 pointer arithmetic on pkt_end prohibited for !root".into(),
        };
        assert_eq!(error.errno(), Some(errno::EPERM));
        let text = error.to_string();
        assert!(text.contains("CAP_PERFMON") && text.contains("prohibited for !root"), "{text}");
    }
}
