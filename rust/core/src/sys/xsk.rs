//! Every system call the core makes on an AF_XDP socket, one small typed function per option
//! or call, so the rest of the crate never builds an optlen or reads errno itself.

use std::ffi::c_void;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::if_xdp::{
    AF_XDP, SOL_XDP, SockaddrXdp, XDP_MMAP_OFFSETS, XDP_OPTIONS, XDP_RX_RING, XDP_STATISTICS,
    XDP_TX_RING, XDP_UMEM_COMPLETION_RING, XDP_UMEM_FILL_RING, XDP_UMEM_REG, XdpMmapOffsets,
    XdpOptions, XdpStatistics, XdpUmemReg,
};
use super::last_error;
use crate::error::{Error, Result};

/// `socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0)`.
pub fn socket() -> Result<OwnedFd> {
    // SAFETY: plain syscall with constant arguments; no pointers.
    let fd = unsafe { libc::socket(AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(last_error("socket(AF_XDP)"));
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `setsockopt(fd, SOL_XDP, opt, &value, sizeof value)` for a plain-data option value.
fn setsockopt<T: Copy>(fd: &OwnedFd, opt: i32, value: &T, call: &'static str) -> Result<()> {
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
fn getsockopt<T: Copy + Default>(fd: &OwnedFd, opt: i32, call: &'static str) -> Result<(T, usize)> {
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

/// `setsockopt(XDP_UMEM_REG)`: registers the UMEM (the full 32-byte layout, so `flags` count).
pub fn umem_reg(fd: &OwnedFd, reg: &XdpUmemReg) -> Result<()> {
    setsockopt(fd, XDP_UMEM_REG, reg, "setsockopt(XDP_UMEM_REG)")
}

/// `setsockopt(XDP_UMEM_FILL_RING)`: the fill ring's size (once, a power of two).
pub fn set_fill_ring_size(fd: &OwnedFd, entries: u32) -> Result<()> {
    setsockopt(fd, XDP_UMEM_FILL_RING, &entries, "setsockopt(XDP_UMEM_FILL_RING)")
}

/// `setsockopt(XDP_UMEM_COMPLETION_RING)`: the completion ring's size.
pub fn set_completion_ring_size(fd: &OwnedFd, entries: u32) -> Result<()> {
    setsockopt(fd, XDP_UMEM_COMPLETION_RING, &entries, "setsockopt(XDP_UMEM_COMPLETION_RING)")
}

/// `setsockopt(XDP_RX_RING)`: the rx ring's size.
pub fn set_rx_ring_size(fd: &OwnedFd, entries: u32) -> Result<()> {
    setsockopt(fd, XDP_RX_RING, &entries, "setsockopt(XDP_RX_RING)")
}

/// `setsockopt(XDP_TX_RING)`: the tx ring's size.
pub fn set_tx_ring_size(fd: &OwnedFd, entries: u32) -> Result<()> {
    setsockopt(fd, XDP_TX_RING, &entries, "setsockopt(XDP_TX_RING)")
}

/// `getsockopt(XDP_MMAP_OFFSETS)`, v2 only: a shorter (pre-5.4) answer has no ring flags, which
/// need-wakeup depends on, so it is refused as [`Error::KernelTooOld`].
pub fn mmap_offsets(fd: &OwnedFd) -> Result<XdpMmapOffsets> {
    let (off, len) =
        getsockopt::<XdpMmapOffsets>(fd, XDP_MMAP_OFFSETS, "getsockopt(XDP_MMAP_OFFSETS)")?;
    if len != size_of::<XdpMmapOffsets>() {
        return Err(Error::KernelTooOld {
            feature: "the ring flags in XDP_MMAP_OFFSETS (the kernel answered the pre-5.4 layout)",
            needs: "5.4",
        });
    }
    Ok(off)
}

/// `getsockopt(XDP_OPTIONS)`: whether the bound socket runs in zero-copy mode.
pub fn options(fd: &OwnedFd) -> Result<XdpOptions> {
    getsockopt::<XdpOptions>(fd, XDP_OPTIONS, "getsockopt(XDP_OPTIONS)").map(|(o, _)| o)
}

/// `getsockopt(XDP_STATISTICS)`, the 48-byte layout only (with the 24-byte one the kernel folds
/// `rx_ring_full` into `rx_dropped`).
pub fn statistics(fd: &OwnedFd) -> Result<XdpStatistics> {
    let (stats, len) =
        getsockopt::<XdpStatistics>(fd, XDP_STATISTICS, "getsockopt(XDP_STATISTICS)")?;
    if len != size_of::<XdpStatistics>() {
        return Err(Error::KernelTooOld {
            feature: "the 48-byte XDP_STATISTICS layout (rx_ring_full and the fill/tx empty counters)",
            needs: "5.9",
        });
    }
    Ok(stats)
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

/// The tx wakeup: `sendto(fd, NULL, 0, MSG_DONTWAIT, NULL, 0)`. Errors are returned raw
/// (EAGAIN/EBUSY/ENOBUFS mean "call again later", not failure, see [`is_retry_later`]) so
/// callers decide.
pub fn wakeup_tx(fd: RawFd) -> io::Result<()> {
    // SAFETY: a zero-length send with null buffer and address is valid for AF_XDP.
    let rc =
        unsafe { libc::sendto(fd, std::ptr::null(), 0, libc::MSG_DONTWAIT, std::ptr::null(), 0) };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// Whether a tx wakeup error only means "progress later": the budget was used up (EAGAIN), the
/// device is busy (EBUSY) or out of skbs (ENOBUFS).
pub fn is_retry_later(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS))
}

/// Whether a tx wakeup failed because the interface is down (ENETDOWN, `xsk_check_common`): the
/// descriptors stay on the tx ring, and go out on a wakeup once the link is up again.
pub fn is_link_down(error: &io::Error) -> bool {
    error.raw_os_error() == Some(libc::ENETDOWN)
}

/// The rx/fill wakeup: `recvfrom(fd, NULL, 0, MSG_DONTWAIT, NULL, NULL)`.
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

/// `poll` event: data to read.
pub const POLLIN: i16 = libc::POLLIN;
/// `poll` event: room to write.
pub const POLLOUT: i16 = libc::POLLOUT;

/// `poll` on one fd; returns the `revents` mask (0 on timeout). `timeout_ms < 0` waits forever,
/// which callers avoid: an unbound socket or a downed device never reports POLLERR.
pub fn poll(fd: RawFd, events: i16, timeout_ms: i32) -> io::Result<i16> {
    let mut pfd = libc::pollfd { fd, events, revents: 0 };
    // SAFETY: one valid pollfd, count 1.
    let rc = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(pfd.revents) }
}
