//! The only code that calls the kernel. Everything else in the crate goes through these small
//! typed functions; no `libc::` call lives outside this folder (tests excepted).
//!
//! * [`if_xdp`]: the AF_XDP ABI, mirrored from `linux/if_xdp.h` (v6.18), size-asserted.
//! * [`xsk`]: the socket calls, one function per option (`umem_reg`, ring sizes, mmap offsets,
//!   options, statistics, bind, the tx/rx wakeups, poll).
//! * [`sockopt`]: the `SOL_SOCKET` options: busy polling and the socket's NAPI id.
//! * [`netdev`]: [`Interface`] (a name resolved once), MTU, flags, the queue count.
//! * [`bpf`]: the `bpf()` command aya lacks (`BPF_PROG_TEST_RUN`), `unshare`, signal masks.
//! * [`epoll`]: `epoll` and `eventfd`, to wait on a Port's sockets at once and wake that wait.
//! * [`fork`]: telling a forked child from the process that created an object.
//! * `netlink` (tests only): entering a network namespace and a raw rtnetlink socket.
//! * [`clock`]: the clocks XDP programs timestamp with, and their offset to realtime.
//! * here: memory mappings ([`Mmap`], on huge pages too), the page size, the free huge pages,
//!   `membarrier` ([`synchronize_rcu`]) and the errno values the rest of the crate tests for
//!   ([`errno`]).

use std::ffi::c_void;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::ptr::NonNull;

use crate::error::{Error, Result};

pub mod bpf;
pub mod clock;
pub mod epoll;
pub mod fork;
pub mod if_xdp;
pub mod netdev;
#[cfg(test)]
pub mod netlink;
pub mod sockopt;
pub mod thread;
pub mod xsk;

pub use fork::{ForkGuard, NotInChild};
pub use if_xdp::*;
pub use netdev::Interface;

/// The errno values the core tells apart.
pub mod errno {
    pub use libc::{
        E2BIG, EACCES, EAFNOSUPPORT, EAGAIN, EBADF, EBUSY, EEXIST, EINTR, EINVAL, EIO, ENOBUFS,
        ENODEV, ENOENT, ENOMEM, ENOSYS, EOPNOTSUPP, EPERM, ERANGE,
    };
}

/// [`Error::Syscall`] for `call` with the thread's errno, taken at once, before anything else
/// can overwrite it.
pub(crate) fn last_error(call: &'static str) -> Error {
    Error::Syscall { call, source: io::Error::last_os_error() }
}

/// How a mapping is handed to a child process by `fork()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnFork {
    /// The default: the child gets a copy (private) or the same pages (shared).
    Inherit,
    /// `MADV_WIPEONFORK`: the child gets zero-filled pages in place of a private anonymous
    /// mapping, and fork copies nothing.
    Wipe,
    /// `MADV_DONTFORK`: the child has no mapping there at all.
    Skip,
}

/// An owned memory mapping, unmapped on drop (but not in a forked child when the child never
/// got it: there the address range may by now hold someone else's mapping).
#[derive(Debug)]
pub struct Mmap {
    // Dropped (unregistered) by `Drop` before the range is unmapped.
    zero_in_child: Option<fork::ZeroInChild>,
    ptr: NonNull<u8>,
    len: usize,
    on_fork: OnFork,
    guard: ForkGuard,
}

// SAFETY: the mapping is plain memory owned by this value; concurrent access to its contents is
// governed by the ring/frame protocols built on top, never by `Mmap` itself.
unsafe impl Send for Mmap {}
// SAFETY: as above; `Mmap` hands out raw pointers only.
unsafe impl Sync for Mmap {}

impl Mmap {
    /// A private anonymous, page-aligned, zeroed mapping (the UMEM), wiped in forked children:
    /// the kernel keeps using the parent's pinned pages, so a child's copy would silently
    /// diverge from them.
    pub fn anonymous(len: usize) -> Result<Mmap> {
        // SAFETY: anonymous mapping, no fd, kernel-chosen address.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                // Miri maps only plain private anonymous memory (its tests of the frame table
                // and rings run on it).
                libc::MAP_PRIVATE
                    | libc::MAP_ANONYMOUS
                    | if cfg!(miri) { 0 } else { libc::MAP_POPULATE },
                -1,
                0,
            )
        };
        Self::from_raw(ptr, len, "mmap(UMEM)")?.on_fork(OnFork::Wipe)
    }

    /// A private anonymous, zeroed mapping on 2 MiB huge pages (`MAP_HUGETLB | MAP_HUGE_2MB`)
    /// of `len` bytes rounded up to whole huge pages ([`huge_page_round_up`]), for the UMEM.
    ///
    /// The kernel reserves the huge pages at mmap, so with too few free it fails at once with
    /// ENOMEM (never a SIGBUS later). The mapping is absent in forked children
    /// (`MADV_DONTFORK`): a hugetlb mapping cannot be wiped on fork, and fork would copy the
    /// pinned huge pages for the child, taking huge pages the system may not have. In its
    /// place a child gets zero pages ([`fork::ZeroInChild`]), as with a normal-page UMEM.
    ///
    /// # Errors
    ///
    /// [`Error::Syscall`] from mmap (ENOMEM: no free huge pages), and
    /// [`Error::InvalidArgument`] when [`fork::ZERO_IN_CHILD_SLOTS`] huge-page mappings are
    /// already open in the process.
    pub fn anonymous_huge(len: usize) -> Result<Mmap> {
        let len = huge_page_round_up(len);
        // SAFETY: anonymous mapping, no fd, kernel-chosen address (hugetlb mappings are
        // aligned to the huge page size).
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE
                    | libc::MAP_ANONYMOUS
                    | libc::MAP_POPULATE
                    | libc::MAP_HUGETLB
                    | libc::MAP_HUGE_2MB,
                -1,
                0,
            )
        };
        let mut map = Self::from_raw(ptr, len, "mmap(UMEM, MAP_HUGETLB)")?.on_fork(OnFork::Skip)?;
        map.zero_in_child =
            Some(fork::ZeroInChild::register(ptr as usize, len).ok_or_else(|| {
                Error::InvalidArgument {
                    name: "hugepages",
                    value: "True".into(),
                    why: format!(
                        "at most {} Umems on huge pages can be open in one process",
                        fork::ZERO_IN_CHILD_SLOTS
                    ),
                }
            })?);
        Ok(map)
    }

    /// A shared mapping of one of the socket's rings at page offset `pgoff`, absent in forked
    /// children (a child touching the parent's rings would steal its descriptors).
    pub fn ring(fd: &OwnedFd, len: usize, pgoff: i64, call: &'static str) -> Result<Mmap> {
        // SAFETY: maps `len` bytes of the socket's ring; the kernel validates offset and length.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                pgoff as libc::off_t,
            )
        };
        Self::from_raw(ptr, len, call)?.on_fork(OnFork::Skip)
    }

    fn from_raw(ptr: *mut c_void, len: usize, call: &'static str) -> Result<Mmap> {
        if ptr == libc::MAP_FAILED {
            return Err(last_error(call));
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| last_error(call))?;
        Ok(Mmap {
            zero_in_child: None,
            ptr,
            len,
            on_fork: OnFork::Inherit,
            guard: ForkGuard::new(),
        })
    }

    /// Sets what a forked child gets of the mapping (`madvise`). Best effort for `Wipe`
    /// (Linux 4.14+): where the kernel refuses it, the fork check on every use still stands.
    fn on_fork(mut self, on_fork: OnFork) -> Result<Mmap> {
        let advice = match on_fork {
            OnFork::Inherit => return Ok(self),
            // Miri has no madvise (and runs no fork).
            _ if cfg!(miri) => return Ok(self),
            OnFork::Wipe => libc::MADV_WIPEONFORK,
            OnFork::Skip => libc::MADV_DONTFORK,
        };
        // SAFETY: `ptr`/`len` describe a mapping this value owns; madvise changes only how fork
        // treats it.
        let rc = unsafe { libc::madvise(self.ptr.as_ptr().cast::<c_void>(), self.len, advice) };
        if rc == 0 {
            self.on_fork = on_fork;
        } else if on_fork == OnFork::Skip {
            return Err(last_error("madvise(MADV_DONTFORK)"));
        }
        Ok(self)
    }

    /// Start of the mapping.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (never: mmap refuses length 0).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // Before the range can be reused: a later fork must not map zeros over it.
        drop(self.zero_in_child.take());
        if self.on_fork == OnFork::Skip && self.guard.forked() {
            // The child never had this mapping; the range may hold another one by now.
            return;
        }
        // SAFETY: `ptr`/`len` describe a mapping this value created and nobody else unmaps.
        unsafe { libc::munmap(self.ptr.as_ptr().cast::<c_void>(), self.len) };
    }
}

/// Size of the huge pages a UMEM is mapped from ([`Mmap::anonymous_huge`]): 2 MiB.
pub const HUGE_PAGE_SIZE: usize = 2 << 20;

/// `len` rounded up to whole huge pages (munmap of a hugetlb mapping wants whole pages).
pub fn huge_page_round_up(len: usize) -> usize {
    len.div_ceil(HUGE_PAGE_SIZE).saturating_mul(HUGE_PAGE_SIZE)
}

/// How many 2 MiB huge pages are reserved and how many of them are free now (`HugePages_Total`
/// and `HugePages_Free`, read from `/sys/kernel/mm/hugepages/hugepages-2048kB/`); `None` where
/// the kernel has no such huge pages (no `CONFIG_HUGETLB_PAGE`).
pub fn huge_pages() -> Option<(u64, u64)> {
    let read = |name: &str| -> Option<u64> {
        std::fs::read_to_string(format!("/sys/kernel/mm/hugepages/hugepages-2048kB/{name}"))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    Some((read("nr_hugepages")?, read("free_hugepages")?))
}

/// Where the number of reserved huge pages is set (root): the one knob to name when none are
/// free.
pub const NR_HUGEPAGES: &str = "/proc/sys/vm/nr_hugepages";

/// The system page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 { n as usize } else { 4096 }
}

/// This process's CPU time in user space and in the kernel (`getrusage(RUSAGE_SELF)`), for the
/// benchmark examples' split of the CPU per packet.
pub fn process_times() -> (std::time::Duration, std::time::Duration) {
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage; RUSAGE_SELF cannot fail with a valid pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let time =
        |t: libc::timeval| std::time::Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (time(ru.ru_utime), time(ru.ru_stime))
}

/// `MEMBARRIER_CMD_GLOBAL` (`linux/membarrier.h`): returns after an RCU grace period.
const MEMBARRIER_CMD_GLOBAL: libc::c_long = 1;

/// How long [`synchronize_rcu`] sleeps when `membarrier(2)` is unavailable. XDP programs run
/// for microseconds; this is far longer than any run.
const GRACE_PERIOD_FALLBACK: std::time::Duration = std::time::Duration::from_millis(50);

/// Waits until every RCU read-side critical section in progress has finished, and therefore
/// every XDP program run that started before the call (XDP runs inside one).
///
/// `membarrier(MEMBARRIER_CMD_GLOBAL)` is implemented with `synchronize_rcu()` (about 8–16 ms
/// here). It also orders memory: a program run that starts after this returns sees every map
/// update made before the call. Where `membarrier` is unavailable (ENOSYS, or EINVAL on
/// `nohz_full` systems) it sleeps `GRACE_PERIOD_FALLBACK` (50 ms) instead.
pub fn synchronize_rcu() {
    // SAFETY: membarrier takes two integers and touches no memory of ours.
    let rc =
        unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0 as libc::c_long) };
    if rc != 0 {
        std::thread::sleep(GRACE_PERIOD_FALLBACK);
    }
}
