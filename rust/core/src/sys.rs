//! The kernel ABI in one place: `linux/if_xdp.h` mirrored item by item, and every raw syscall
//! the core makes on an AF_XDP socket, each as a small typed function.
//!
//! Header: <https://github.com/torvalds/linux/blob/master/include/uapi/linux/if_xdp.h>.
//! Every struct is `#[repr(C)]`, has no padding (checked at compile time), and is created
//! zeroed, so the kernel never sees uninitialised bytes. Nothing else in the crate calls libc for
//! sockets or mappings.

use std::ffi::c_void;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;

use crate::error::{Error, Result};

/// Address family of XDP sockets (`AF_XDP`); CPython's `socket` module has no constant for it.
pub const AF_XDP: i32 = 44;
/// Socket option level of XDP sockets (`SOL_XDP`).
pub const SOL_XDP: i32 = 283;

// Bind flags (`sockaddr_xdp.sxdp_flags`).
/// Share the UMEM of the socket in `sxdp_shared_umem_fd`.
pub const XDP_SHARED_UMEM: u16 = 1 << 0;
/// Force copy mode.
pub const XDP_COPY: u16 = 1 << 1;
/// Force zero-copy mode (EOPNOTSUPP where the driver has none, e.g. veth).
pub const XDP_ZEROCOPY: u16 = 1 << 2;
/// Let the kernel say through the ring flags when it needs a syscall to make progress.
pub const XDP_USE_NEED_WAKEUP: u16 = 1 << 3;

// UMEM registration flags (`xdp_umem_reg.flags`).
/// Unaligned chunk mode (not used by afxdp yet).
pub const XDP_UMEM_UNALIGNED_CHUNK_FLAG: u32 = 1 << 0;

/// Ring flag: the kernel needs a wakeup (poll/sendto/recvfrom) to process this ring.
pub const XDP_RING_NEED_WAKEUP: u32 = 1 << 0;

// Socket options (level `SOL_XDP`).
pub const XDP_MMAP_OFFSETS: i32 = 1;
pub const XDP_RX_RING: i32 = 2;
pub const XDP_TX_RING: i32 = 3;
pub const XDP_UMEM_REG: i32 = 4;
pub const XDP_UMEM_FILL_RING: i32 = 5;
pub const XDP_UMEM_COMPLETION_RING: i32 = 6;
pub const XDP_STATISTICS: i32 = 7;
pub const XDP_OPTIONS: i32 = 8;

/// `xdp_options.flags`: the socket runs in zero-copy mode.
pub const XDP_OPTIONS_ZEROCOPY: u32 = 1 << 0;

// mmap page offsets of the four rings.
pub const XDP_PGOFF_RX_RING: i64 = 0;
pub const XDP_PGOFF_TX_RING: i64 = 0x8000_0000;
pub const XDP_UMEM_PGOFF_FILL_RING: i64 = 0x1_0000_0000;
pub const XDP_UMEM_PGOFF_COMPLETION_RING: i64 = 0x1_8000_0000;

/// Headroom the kernel reserves in front of every received packet (`XDP_PACKET_HEADROOM`).
pub const XDP_PACKET_HEADROOM: u32 = 256;

/// Descriptor option: the packet continues in the next descriptor (multi-buffer).
pub const XDP_PKT_CONTD: u32 = 1 << 0;

/// `struct sockaddr_xdp`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct SockaddrXdp {
    pub sxdp_family: u16,
    pub sxdp_flags: u16,
    pub sxdp_ifindex: u32,
    pub sxdp_queue_id: u32,
    pub sxdp_shared_umem_fd: u32,
}

/// `struct xdp_ring_offset`: byte offsets of one ring's fields inside its mapping.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct XdpRingOffset {
    pub producer: u64,
    pub consumer: u64,
    pub desc: u64,
    pub flags: u64,
}

/// `struct xdp_mmap_offsets` (v2, with `flags`; the kernel has answered this since 5.4).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct XdpMmapOffsets {
    pub rx: XdpRingOffset,
    pub tx: XdpRingOffset,
    pub fr: XdpRingOffset,
    pub cr: XdpRingOffset,
}

/// `struct xdp_umem_reg` (v3, 32 bytes with `tx_metadata_len`). A shorter optlen would make the
/// kernel parse an older layout and silently drop `flags`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct XdpUmemReg {
    pub addr: u64,
    pub len: u64,
    pub chunk_size: u32,
    pub headroom: u32,
    pub flags: u32,
    pub tx_metadata_len: u32,
}

/// `struct xdp_statistics` (v2, 48 bytes; with 24 bytes the kernel folds `rx_ring_full` into
/// `rx_dropped`).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct XdpStatistics {
    pub rx_dropped: u64,
    pub rx_invalid_descs: u64,
    pub tx_invalid_descs: u64,
    pub rx_ring_full: u64,
    pub rx_fill_ring_empty_descs: u64,
    pub tx_ring_empty_descs: u64,
}

/// `struct xdp_options`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct XdpOptions {
    pub flags: u32,
}

/// `struct xdp_desc`: one RX or TX ring entry.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct XdpDesc {
    pub addr: u64,
    pub len: u32,
    pub options: u32,
}

// The kernel's sizes; a mismatch (or padding) fails the build.
const _: () = assert!(size_of::<SockaddrXdp>() == 16);
const _: () = assert!(size_of::<XdpRingOffset>() == 32);
const _: () = assert!(size_of::<XdpMmapOffsets>() == 128);
const _: () = assert!(size_of::<XdpUmemReg>() == 32);
const _: () = assert!(size_of::<XdpStatistics>() == 48);
const _: () = assert!(size_of::<XdpOptions>() == 4);
const _: () = assert!(size_of::<XdpDesc>() == 16);

fn last_error(call: &'static str) -> Error {
    // Taken at once, before anything else can overwrite errno.
    Error::Syscall { call, source: io::Error::last_os_error() }
}

/// `socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0)`.
pub fn xdp_socket() -> Result<OwnedFd> {
    // SAFETY: plain syscall with constant arguments; no pointers.
    let fd = unsafe { libc::socket(AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(last_error("socket(AF_XDP)"));
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `setsockopt(fd, SOL_XDP, opt, &value, sizeof value)` for any of the plain-data option structs.
pub fn setsockopt<T: Copy>(fd: &OwnedFd, opt: i32, value: &T, call: &'static str) -> Result<()> {
    // SAFETY: `value` points to a live, initialised `T` of exactly the length passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            SOL_XDP,
            opt,
            (value as *const T).cast::<c_void>(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 { Err(last_error(call)) } else { Ok(()) }
}

/// `getsockopt(fd, SOL_XDP, opt, ...)` into a zeroed `T`; returns it with the length the kernel
/// wrote, so callers can tell an older, shorter layout apart.
pub fn getsockopt<T: Copy + Default>(
    fd: &OwnedFd,
    opt: i32,
    call: &'static str,
) -> Result<(T, usize)> {
    let mut value = T::default();
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: `value` is a writable `T` and `len` holds its exact size.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            SOL_XDP,
            opt,
            (&mut value as *mut T).cast::<c_void>(),
            &mut len,
        )
    };
    if rc < 0 { Err(last_error(call)) } else { Ok((value, len as usize)) }
}

/// `bind(fd, &sockaddr_xdp, 16)`.
pub fn bind(fd: &OwnedFd, addr: &SockaddrXdp) -> Result<()> {
    // SAFETY: `addr` is a fully initialised 16-byte sockaddr_xdp.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (addr as *const SockaddrXdp).cast::<libc::sockaddr>(),
            size_of::<SockaddrXdp>() as libc::socklen_t,
        )
    };
    if rc < 0 { Err(last_error("bind(AF_XDP)")) } else { Ok(()) }
}

/// The TX wakeup: `sendto(fd, NULL, 0, MSG_DONTWAIT, NULL, 0)`. Errors are returned raw
/// (EAGAIN/EBUSY/ENOBUFS mean "call again later", not failure) so callers decide.
pub fn wakeup_tx(fd: RawFd) -> io::Result<()> {
    // SAFETY: a zero-length send with null buffer and address is valid for AF_XDP.
    let rc =
        unsafe { libc::sendto(fd, std::ptr::null(), 0, libc::MSG_DONTWAIT, std::ptr::null(), 0) };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// The RX/fill wakeup: `recvfrom(fd, NULL, 0, MSG_DONTWAIT, NULL, NULL)`.
pub fn wakeup_rx(fd: RawFd) -> io::Result<()> {
    // SAFETY: a zero-length receive with null buffer and address is valid for AF_XDP.
    let rc = unsafe {
        libc::recvfrom(
            fd,
            std::ptr::null_mut(),
            0,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// `poll` on one fd; returns the `revents` mask (0 on timeout). `timeout_ms < 0` waits forever,
/// which callers avoid: an unbound socket or a downed device never reports POLLERR.
pub fn poll(fd: RawFd, events: i16, timeout_ms: i32) -> io::Result<i16> {
    let mut pfd = libc::pollfd { fd, events, revents: 0 };
    // SAFETY: one valid pollfd, count 1.
    let rc = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(pfd.revents) }
}

/// An owned memory mapping, unmapped on drop.
#[derive(Debug)]
pub struct Mmap {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; concurrent access to its contents is
// governed by the ring/frame protocols built on top, never by `Mmap` itself.
unsafe impl Send for Mmap {}
// SAFETY: as above; `Mmap` hands out raw pointers only.
unsafe impl Sync for Mmap {}

impl Mmap {
    /// A private anonymous, page-aligned, zeroed mapping (the UMEM).
    pub fn anonymous(len: usize) -> Result<Mmap> {
        // SAFETY: anonymous mapping, no fd, kernel-chosen address.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        Self::from_raw(ptr, len, "mmap(UMEM)")
    }

    /// A shared mapping of one of the socket's rings at page offset `pgoff`.
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
        Self::from_raw(ptr, len, call)
    }

    fn from_raw(ptr: *mut c_void, len: usize, call: &'static str) -> Result<Mmap> {
        if ptr == libc::MAP_FAILED {
            return Err(last_error(call));
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| last_error(call))?;
        Ok(Mmap { ptr, len })
    }

    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe a mapping this value created and nobody else unmaps.
        unsafe { libc::munmap(self.ptr.as_ptr().cast::<c_void>(), self.len) };
    }
}

/// `if_nametoindex`, `None` when there is no such interface in this network namespace.
pub fn if_nametoindex(ifname: &str) -> Option<u32> {
    let name = std::ffi::CString::new(ifname).ok()?;
    // SAFETY: `name` is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(name.as_ptr()) };
    (idx != 0).then_some(idx)
}

/// The system page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 { n as usize } else { 4096 }
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
/// `nohz_full` systems) it sleeps [`GRACE_PERIOD_FALLBACK`] instead.
pub fn synchronize_rcu() {
    // SAFETY: membarrier takes two integers and touches no memory of ours.
    let rc =
        unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0 as libc::c_long) };
    if rc != 0 {
        std::thread::sleep(GRACE_PERIOD_FALLBACK);
    }
}
