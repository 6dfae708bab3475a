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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::error::{Error, Result};

/// Bumped in the child of every `fork()`.
static GENERATION: AtomicU64 = AtomicU64::new(0);
/// Whether the handler is registered; if `pthread_atfork` failed, pids are compared instead.
static REGISTERED: AtomicBool = AtomicBool::new(false);
static REGISTER: Once = Once::new();

extern "C" fn in_child_after_fork() {
    // Runs in the child's only thread before fork() returns there.
    GENERATION.fetch_add(1, Ordering::Relaxed);
}

fn register() {
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
