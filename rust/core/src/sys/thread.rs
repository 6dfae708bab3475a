//! Per-thread kernel state the traffic generator needs around its long `BPF_PROG_TEST_RUN`:
//! a short-lived thread in a new, private network namespace (to pin a program in), the calling
//! thread's namespace, and every signal blocked on the calling thread.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;

/// Runs `body` on a new, short-lived thread moved into a new, private network namespace
/// (`unshare(CLONE_NEWNET)`); the namespace dies with the thread unless `body` keeps a
/// descriptor of it (`/proc/thread-self/ns/net`). Needs `CAP_SYS_ADMIN`.
pub fn in_new_netns<T: Send>(body: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                // SAFETY: unshare takes a flag; it moves only this short-lived scoped thread.
                if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                body()
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// A descriptor of the calling thread's network namespace.
pub fn this_thread_netns() -> io::Result<OwnedFd> {
    Ok(OwnedFd::from(std::fs::File::open("/proc/thread-self/ns/net")?))
}

/// Every signal blocked on the calling thread until dropped; the previous mask is restored.
pub struct BlockedSignals {
    previous: libc::sigset_t,
}

impl BlockedSignals {
    /// Blocks every signal (SIGKILL and SIGSTOP cannot be) on the calling thread.
    pub fn block_all() -> io::Result<Self> {
        let mut all = MaybeUninit::<libc::sigset_t>::uninit();
        let mut previous = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigfillset initialises `all`; pthread_sigmask reads `all` and writes the old
        // mask to `previous` (both valid sigset_t storage).
        unsafe {
            libc::sigfillset(all.as_mut_ptr());
            let rc = libc::pthread_sigmask(libc::SIG_BLOCK, all.as_ptr(), previous.as_mut_ptr());
            if rc != 0 {
                return Err(io::Error::from_raw_os_error(rc));
            }
            Ok(Self { previous: previous.assume_init() })
        }
    }

    /// Whether a signal is pending (for the thread or the process) that the previous mask did
    /// not block, i.e. one that will be delivered when this is dropped.
    pub fn newly_pending(&self) -> bool {
        let mut pending = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigpending writes a sigset_t into valid storage; sigismember only reads
        // initialised sets (`pending` once sigpending succeeded, `previous`).
        unsafe {
            if libc::sigpending(pending.as_mut_ptr()) != 0 {
                return false;
            }
            let pending = pending.assume_init();
            (1..=64).any(|signal| {
                libc::sigismember(&pending, signal) == 1
                    && libc::sigismember(&self.previous, signal) == 0
            })
        }
    }
}

impl Drop for BlockedSignals {
    fn drop(&mut self) {
        // SAFETY: restores a mask pthread_sigmask returned; `previous` is valid.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.previous, std::ptr::null_mut()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_are_blocked_and_restored() {
        let current = || {
            let mut set = MaybeUninit::<libc::sigset_t>::uninit();
            // SAFETY: a NULL new mask only reads the current one into valid storage.
            unsafe {
                libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), set.as_mut_ptr());
                set.assume_init()
            }
        };
        // SAFETY: sigismember reads an initialised set.
        let blocked = |set: &libc::sigset_t, s| unsafe { libc::sigismember(set, s) } == 1;
        let before = current();
        {
            let guard = BlockedSignals::block_all().unwrap();
            let during = current();
            assert!(blocked(&during, libc::SIGINT) && blocked(&during, libc::SIGTERM));
            assert!(!guard.newly_pending());
        }
        assert_eq!(blocked(&current(), libc::SIGINT), blocked(&before, libc::SIGINT));
    }
}
