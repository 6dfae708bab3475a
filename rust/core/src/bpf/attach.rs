//! Attaching a loaded program to its interface: how it is attached (`Link`), the interfaces
//! this process has a program attached to (so that an `EBUSY` can say whose program is in the
//! way), and the attach in one mode or native then generic, with errors that name the likely
//! cause.

use std::collections::HashSet;
use std::os::fd::OwnedFd;
use std::sync::Mutex;

use aya::programs::{Xdp, XdpMode, xdp::XdpLinkId};

use super::AttachMode;
use super::errors::{BpfError, errno_of, error_chain};
use crate::sys::{Interface, errno};

/// How the program is attached.
pub(super) enum Link {
    /// By aya, as the program of `ebpf` it loaded.
    Aya(XdpLinkId),
    /// The device-bound program ([`devbound`](super::devbound)), loaded and linked here: a BPF
    /// link's descriptor, which holds the program. Closing the last copy detaches it.
    DeviceBound(OwnedFd),
}

/// An interface of a network namespace: (namespace inode, ifindex).
pub(super) type AttachmentKey = (u64, u32);

/// The interfaces this process has a program attached to, so that an `EBUSY` from the kernel
/// can say whether the program in the way is this process's own.
static ATTACHED_HERE: Mutex<Option<HashSet<AttachmentKey>>> = Mutex::new(None);

pub(super) fn attachments() -> std::sync::MutexGuard<'static, Option<HashSet<AttachmentKey>>> {
    // Each update is one insert or remove: a poisoned set is still consistent.
    ATTACHED_HERE.lock().unwrap_or_else(|e| e.into_inner())
}

/// The key of `iface` in the calling thread's network namespace (inode 0 if it can't be read).
pub(super) fn attachment_key(iface: &Interface) -> AttachmentKey {
    use std::os::unix::fs::MetadataExt;
    let netns = std::fs::metadata("/proc/thread-self/ns/net").map_or(0, |m| m.ino());
    (netns, iface.index())
}

/// Attaches `program` to `iface` in `mode` (Native or Generic).
pub(super) fn attach(
    program: &mut Xdp,
    iface: &Interface,
    key: AttachmentKey,
    mode: AttachMode,
) -> Result<XdpLinkId, BpfError> {
    let xdp_mode = match mode {
        AttachMode::Native => XdpMode::Driver,
        AttachMode::Generic => XdpMode::Skb,
        // Resolved by the caller; native is what Auto tries first.
        AttachMode::Auto => XdpMode::Driver,
    };
    program
        .attach_to_if_index(iface.index(), xdp_mode)
        .map_err(|e| attach_error(iface, key, mode, errno_of(&e), error_chain(&e)))
}

/// A [`BpfError::Attach`] for attaching to `iface` (attachment `key`) in `mode` that failed
/// with `errno` and `message`, with a hint at the likely cause.
pub(super) fn attach_error(
    iface: &Interface,
    key: AttachmentKey,
    mode: AttachMode,
    errno: Option<i32>,
    message: String,
) -> BpfError {
    let ours = || attachments().as_ref().is_some_and(|set| set.contains(&key));
    let hint = match errno {
        Some(errno::EBUSY) if ours() => {
            "; this process already has an XDP program attached to IFNAME (an afxdp \
             Program that is still attached: detach or close it first)"
        }
        Some(errno::EBUSY) => {
            "; another XDP program is attached to IFNAME in this mode, by another process \
             or by `ip link` (`ip link set dev IFNAME xdp off` removes the latter)"
        }
        Some(errno::EEXIST) => {
            "; an XDP program is attached in the other mode (native and generic \
             can't be active at the same time)"
        }
        Some(errno::ERANGE) if mode == AttachMode::Native => {
            "; on veth: the peer's MTU is too large for native XDP without frags support \
             (at most about one page)"
        }
        _ => "",
    };
    BpfError::Attach {
        ifname: iface.name().to_owned(),
        mode: mode.as_str(),
        errno,
        message: format!("{message}{}", hint.replace("IFNAME", iface.name())),
    }
}

/// Attaches `program` in native mode, else in generic mode; returns the mode used.
pub(super) fn attach_auto(
    program: &mut Xdp,
    iface: &Interface,
    key: AttachmentKey,
) -> Result<(XdpLinkId, AttachMode), BpfError> {
    let native = match attach(program, iface, key, AttachMode::Native) {
        Ok(link) => return Ok((link, AttachMode::Native)),
        Err(error) => error,
    };
    // Another program attached, or missing privileges: generic mode would fail as well, and
    // the native error says why.
    if matches!(native.errno(), Some(errno::EBUSY | errno::EEXIST | errno::EPERM | errno::EACCES)) {
        return Err(native);
    }
    match attach(program, iface, key, AttachMode::Generic) {
        Ok(link) => Ok((link, AttachMode::Generic)),
        Err(BpfError::Attach { ifname, mode, errno, message }) => Err(BpfError::Attach {
            ifname,
            mode,
            errno,
            message: format!("{message} (after native mode failed: {native})"),
        }),
        Err(other) => Err(other),
    }
}

#[cfg(test)]
mod tests {
    /// Privileged tests: each runs in its own pair of network namespaces with a veth pair
    /// (`veth0` in `<name>-peer`, `veth1` in `<name>`, where the program goes), deleted
    /// afterwards. Run them as root with `cargo test -p afxdp bpf:: -- --ignored`.
    mod privileged {
        use std::{
            io::{BufRead, BufReader},
            process::{Command, Stdio},
            time::{Duration, Instant},
        };

        use super::super::*;
        use crate::bpf::XdpProgram;
        use crate::bpf::test_support::*;
        use crate::error::Error;

        #[test]
        #[ignore = "needs root: creates network namespaces and attaches XDP programs"]
        fn attach_conflicts_keep_errno() {
            let netns = VethNetns::new(1);
            netns.enter(|| {
                let first = XdpProgram::attach_builtin(&veth1(), AttachMode::Native).unwrap();
                let error = XdpProgram::attach_builtin(&veth1(), AttachMode::Native).unwrap_err();
                eprintln!("{error}");
                assert_eq!(error.errno(), Some(libc::EBUSY), "{error}");
                // This process holds it: the message must not blame another process.
                let text = error.to_string();
                assert!(text.contains("this process already has"), "{text}");
                assert!(!text.contains("another process"), "{text}");
                let error = XdpProgram::attach_builtin(&veth1(), AttachMode::Generic).unwrap_err();
                eprintln!("{error}");
                assert_eq!(error.errno(), Some(libc::EEXIST), "{error}");
                // Auto does not fall back to generic mode on a conflict.
                let error = XdpProgram::attach_builtin(&veth1(), AttachMode::Auto).unwrap_err();
                assert!(
                    matches!(
                        error,
                        Error::Bpf(BpfError::Attach {
                            mode: "native",
                            errno: Some(libc::EBUSY),
                            ..
                        })
                    ),
                    "{error}"
                );
                drop(first);
                // Native mode on veth refuses a peer MTU above about one page (ERANGE) to a
                // program without frags support; the built-in one is frags-aware
                // (`xdp.frags`), so it attaches natively there, for multi-buffer sockets.
                let peer = netns.peer.as_str();
                run(&["ip", "-n", peer, "link", "set", "dev", "veth0", "mtu", "9000"]);
                run(&["ip", "link", "set", "dev", "veth1", "mtu", "9000"]);
                let program = XdpProgram::attach_builtin(&veth1(), AttachMode::Native).unwrap();
                assert_eq!(program.mode(), AttachMode::Native);
                assert!(!netns.link_details().contains(" xdpgeneric "));
            });
        }

        /// Not a test on its own: the child process of `sigkill_detaches`, which attaches,
        /// says so on stdout, then waits to be killed.
        #[test]
        #[ignore = "helper process for sigkill_detaches"]
        fn sigkill_child() {
            let Ok(ifname) = std::env::var("AFXDP_TEST_SIGKILL_CHILD") else {
                return;
            };
            let program = XdpProgram::attach_builtin(
                &Interface::by_name(&ifname).unwrap(),
                AttachMode::Native,
            )
            .unwrap();
            println!("AFXDP-ATTACHED {}", program.mode());
            std::thread::sleep(Duration::from_secs(60));
        }

        #[test]
        #[ignore = "needs root: creates network namespaces and attaches XDP programs"]
        fn sigkill_detaches() {
            let netns = VethNetns::new(1);
            // `module_path!()` is `afxdp::bpf::attach::tests::privileged`; libtest names drop
            // the crate.
            let module = module_path!().split_once("::").map_or("", |(_, rest)| rest);
            let test_name = format!("{module}::sigkill_child");
            netns.enter(|| {
                // Spawned from this thread, the child starts in its network namespace.
                let mut child = Command::new(std::env::current_exe().unwrap())
                    .args([&test_name, "--exact", "--ignored", "--nocapture"])
                    .env("AFXDP_TEST_SIGKILL_CHILD", "veth1")
                    .stdout(Stdio::piped())
                    .spawn()
                    .unwrap();
                let stdout = BufReader::new(child.stdout.take().unwrap());
                let attached = stdout
                    .lines()
                    .map_while(Result::ok)
                    .any(|line| line.contains("AFXDP-ATTACHED native"));
                assert!(attached, "the child did not attach");
                let id = attached_program_id("veth1").unwrap().expect("attached by the child");
                // Held by another process (the child): that is what EBUSY says now.
                let error = XdpProgram::attach_builtin(&veth1(), AttachMode::Native).unwrap_err();
                assert_eq!(error.errno(), Some(libc::EBUSY), "{error}");
                let text = error.to_string();
                assert!(text.contains("another process"), "{text}");
                assert!(!text.contains("this process already has"), "{text}");
                assert!(netns.link_details().contains(&format!("prog/xdp id {id}")));

                // SAFETY: kill() takes no pointers; the pid is our own child's.
                let ret = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
                assert_eq!(ret, 0);
                let status = child.wait().unwrap();
                assert!(!status.success());

                // The link's last fd closed with the process: the program is gone.
                let deadline = Instant::now() + Duration::from_secs(5);
                while attached_program_id("veth1").unwrap().is_some() {
                    assert!(Instant::now() < deadline, "still attached after SIGKILL");
                    std::thread::sleep(Duration::from_millis(20));
                }
                assert!(!netns.link_details().contains("prog/xdp"));
            });
        }
    }
}
