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
//! XSKMAP entry, detach the program). Its own fd copies may close.

use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

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
