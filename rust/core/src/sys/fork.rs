//! Telling a process that forked from the one that created an object.
//!
//! After `fork()` without `exec`, the child has copies of every socket fd, ring mapping and
//! UMEM, but the kernel keeps working with the parent's: the child's UMEM is no longer the
//! memory the kernel reads and writes, and anything the child takes from a ring is stolen from
//! the parent. So every object records the fork generation it was created in ([`ForkGuard`]),
//! and each operation compares it with the current one: one relaxed atomic load. The generation
//! is bumped in the child by a `pthread_atfork` handler, registered once per process.
//!
//! What the child must not do either: anything kernel-visible that harms the parent (delete an
//! XSKMAP entry, detach the program). Its own fd copies may close. Nor may its copies keep
//! the parent's sockets alive (a socket's queue stays bound until its last reference goes):
//! the handler puts a placeholder at each socket's descriptor number ([`NotInChild`]), and the
//! child never has the rings (`MADV_DONTFORK`).

use std::os::fd::RawFd;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};

use crate::error::{Error, Result};

/// Bumped in the child of every `fork()`.
static GENERATION: AtomicU64 = AtomicU64::new(0);
/// Whether the handler is registered; if `pthread_atfork` failed, pids are compared instead.
static REGISTERED: AtomicBool = AtomicBool::new(false);
static REGISTER: Once = Once::new();

extern "C" fn in_child_after_fork() {
    // Runs in the child's only thread before fork() returns there.
    GENERATION.fetch_add(1, Ordering::Relaxed);
    zero_pages_in_child();
    placeholders_in_child();
}

/// How many mappings can be given zero pages in a forked child ([`ZeroInChild`]).
pub const ZERO_IN_CHILD_SLOTS: usize = 256;

/// The mappings a forked child gets zero pages in place of: (address, length), 0 when free.
/// Lock-free, because the child's handler cannot take a lock another thread of the parent may
/// have held at the fork (that thread does not exist in the child).
static ZERO_IN_CHILD: [(AtomicUsize, AtomicUsize); ZERO_IN_CHILD_SLOTS] =
    [const { (AtomicUsize::new(0), AtomicUsize::new(0)) }; ZERO_IN_CHILD_SLOTS];

/// A mapping a forked child gets no copy of (`MADV_DONTFORK`: a huge-page UMEM), registered so
/// that the child's fork handler maps zero pages at its address: a view of it taken before the
/// fork then reads zeros in the child (as a normal-page UMEM does, `MADV_WIPEONFORK`) instead
/// of faulting. Unregistered on drop, which must come before the range is unmapped (so a
/// child never maps over a range the parent has reused).
#[derive(Debug)]
pub struct ZeroInChild {
    slot: usize,
}

impl ZeroInChild {
    /// Registers `len` bytes at `addr`; `None` when all [`ZERO_IN_CHILD_SLOTS`] are taken.
    pub fn register(addr: usize, len: usize) -> Option<ZeroInChild> {
        register();
        for (slot, (a, l)) in ZERO_IN_CHILD.iter().enumerate() {
            if a.compare_exchange(0, addr, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                l.store(len, Ordering::Release);
                return Some(ZeroInChild { slot });
            }
        }
        None
    }
}

impl Drop for ZeroInChild {
    fn drop(&mut self) {
        let (a, l) = &ZERO_IN_CHILD[self.slot];
        // Length first: a fork in between sees a slot with no length and maps nothing.
        l.store(0, Ordering::Release);
        a.store(0, Ordering::Release);
    }
}

/// In the child: zero pages at every registered range (which the child has no mapping of).
fn zero_pages_in_child() {
    for (a, l) in &ZERO_IN_CHILD {
        let (addr, len) = (a.load(Ordering::Acquire), l.load(Ordering::Acquire));
        if addr == 0 || len == 0 {
            continue;
        }
        // SAFETY: the range was a DONTFORK mapping of the parent, so nothing is mapped there in
        // the child, which has had no chance to map anything since the fork; MAP_FIXED then
        // replaces nothing. mmap is a plain system call, safe in a fork handler. A failure
        // leaves the range unmapped, as it was.
        unsafe {
            libc::mmap(
                addr as *mut libc::c_void,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED | libc::MAP_NORESERVE,
                -1,
                0,
            );
        }
    }
}

/// How many descriptors a forked child can be given placeholders for ([`NotInChild`]).
pub const NOT_IN_CHILD_SLOTS: usize = 1024;

/// The descriptors a forked child gets a placeholder at ([`NotInChild`]), -1 when free.
/// Lock-free, as [`ZERO_IN_CHILD`].
static NOT_IN_CHILD: [AtomicI32; NOT_IN_CHILD_SLOTS] =
    [const { AtomicI32::new(-1) }; NOT_IN_CHILD_SLOTS];

/// A descriptor whose file a forked child holds no reference to: the child's fork handler
/// puts a placeholder (an eventfd) at its number. The kernel unbinds an AF_XDP socket from
/// its queue only when the last reference to the socket goes, and a child never has its rings
/// (`MADV_DONTFORK`), so with this the parent's close frees the queue while a child lives. The
/// child's copy of the owner closes the placeholder in its stead.
///
/// Best effort: with all [`NOT_IN_CHILD_SLOTS`] taken, or a fork between the descriptor's
/// creation and its registration, a child keeps a copy until it closes it or exits, as without.
/// Unregistered on drop, which must come before the descriptor closes (so a child never
/// replaces a number the parent has reused).
#[derive(Debug)]
pub struct NotInChild {
    slot: usize,
}

impl NotInChild {
    /// Registers `fd`; `None` when all slots are taken (or `fd` is negative).
    pub fn register(fd: RawFd) -> Option<NotInChild> {
        register();
        if fd < 0 {
            return None;
        }
        NOT_IN_CHILD
            .iter()
            .position(|s| s.compare_exchange(-1, fd, Ordering::AcqRel, Ordering::Relaxed).is_ok())
            .map(|slot| NotInChild { slot })
    }
}

impl Drop for NotInChild {
    fn drop(&mut self) {
        NOT_IN_CHILD[self.slot].store(-1, Ordering::Release);
    }
}

/// In the child: a placeholder at every registered descriptor, so the child's copies hold
/// none of their files.
fn placeholders_in_child() {
    let mut placeholder = -1;
    for slot in &NOT_IN_CHILD {
        let fd = slot.load(Ordering::Acquire);
        if fd < 0 {
            continue;
        }
        if placeholder < 0 {
            // SAFETY: eventfd takes no pointers; a plain system call, safe in a fork handler.
            placeholder = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
            if placeholder < 0 {
                return; // the child keeps its copies, as without the handler
            }
        }
        // SAFETY: replaces the child's own copy of `fd` (its descriptor table is its own since
        // the fork) with the placeholder's file; the number stays open, so the child's owner
        // of it closes exactly one descriptor later, as before. A failure leaves the copy.
        unsafe { libc::dup3(placeholder, fd, libc::O_CLOEXEC) };
    }
    if placeholder >= 0 {
        // SAFETY: the eventfd opened above, closed once; its copies stay open.
        unsafe { libc::close(placeholder) };
    }
}

fn register() {
    if cfg!(miri) {
        return; // Miri has no pthread_atfork; pids are compared instead (REGISTERED stays false)
    }
    REGISTER.call_once(|| {
        // SAFETY: registers a child handler that only touches an atomic (async-signal-safe);
        // no prepare or parent handler.
        let rc = unsafe { libc::pthread_atfork(None, None, Some(in_child_after_fork)) };
        REGISTERED.store(rc == 0, Ordering::Relaxed);
    });
}

/// The process and fork generation an object was created in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForkGuard {
    generation: u64,
    pid: u32,
}

impl ForkGuard {
    /// Records the current process (and registers the fork handler on first use).
    pub fn new() -> ForkGuard {
        register();
        ForkGuard { generation: GENERATION.load(Ordering::Relaxed), pid: std::process::id() }
    }

    /// The pid of the process the object was created in.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether this is a child forked (directly or not) after the object was created.
    #[inline]
    pub fn forked(&self) -> bool {
        if GENERATION.load(Ordering::Relaxed) != self.generation {
            return true;
        }
        // Without the handler, only the pid can tell (a syscall, but only then).
        !REGISTERED.load(Ordering::Relaxed) && std::process::id() != self.pid
    }

    /// [`Error::ForkedChild`] naming `what` when called in a forked child.
    #[inline]
    pub fn check(&self, what: &'static str) -> Result<()> {
        if self.forked() { Err(Error::ForkedChild { what, pid: self.pid }) } else { Ok(()) }
    }
}

impl Default for ForkGuard {
    fn default() -> Self {
        ForkGuard::new()
    }
}

#[cfg(all(test, not(miri)))]
mod tests {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    use super::*;

    fn unix_socket() -> OwnedFd {
        // SAFETY: socket takes no pointers; the fd it returns is owned here.
        let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        assert!(fd >= 0, "socket(AF_UNIX)");
        // SAFETY: a fresh descriptor nobody else owns.
        unsafe { OwnedFd::from_raw_fd(fd) }
    }

    /// The (device, inode) of the file at `fd`; no allocation (the forked child calls it).
    fn file_of(fd: RawFd) -> (u64, u64) {
        // SAFETY: an all-zero stat is a valid value of this plain C struct.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `st` is a valid, writable stat.
        if unsafe { libc::fstat(fd, &mut st) } != 0 {
            return (0, 0);
        }
        (st.st_dev, st.st_ino)
    }

    #[test]
    fn a_forked_child_has_a_placeholder_at_a_registered_fd_and_the_file_at_the_others() {
        let (kept, swapped, let_go) = (unix_socket(), unix_socket(), unix_socket());
        let registered = NotInChild::register(swapped.as_raw_fd()).expect("a free slot");
        drop(NotInChild::register(let_go.as_raw_fd()).expect("a free slot"));
        let fds = [kept.as_raw_fd(), swapped.as_raw_fd(), let_go.as_raw_fd()];
        let before = fds.map(file_of);
        // SAFETY: the child only calls fstat, fcntl and _exit (async-signal-safe, no
        // allocation), as a child of a threaded process must.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork");
        if pid == 0 {
            let after = fds.map(file_of);
            // SAFETY: fcntl on a descriptor of this process.
            let cloexec = unsafe { libc::fcntl(fds[1], libc::F_GETFD) } & libc::FD_CLOEXEC != 0;
            let ok = after[0] == before[0]
                && after[1] != before[1]
                && after[1] != (0, 0)
                && cloexec
                && after[2] == before[2];
            // SAFETY: ends the child at once, running nothing of the parent's.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waits for the child forked above; `status` is writable.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "the child saw the socket at a registered fd, or a placeholder elsewhere ({status:#x})"
        );
        // The parent's descriptors are untouched.
        assert_eq!(fds.map(file_of), before);
        drop(registered);
    }
}
