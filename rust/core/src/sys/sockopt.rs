//! The `SOL_SOCKET` options the core sets on an AF_XDP socket: busy polling
//! (`SO_BUSY_POLL`, `SO_PREFER_BUSY_POLL`, `SO_BUSY_POLL_BUDGET`) and the NAPI id the kernel
//! recorded for it (`SO_INCOMING_NAPI_ID`). One typed function per option, as in [`super::xsk`].
//!
//! What the kernel checks (`net/core/sock.c`, `sk_setsockopt`, 6.18): `SO_BUSY_POLL` refuses a
//! negative value (EINVAL); `SO_PREFER_BUSY_POLL` needs CAP_NET_ADMIN to turn on (EPERM);
//! `SO_BUSY_POLL_BUDGET` needs CAP_NET_ADMIN to raise the budget (EPERM) and refuses values
//! above 65535 (EINVAL). `SO_BUSY_POLL_BUDGET` cannot be read back on this kernel (ENOPROTOOPT).

use std::ffi::c_void;
use std::mem::size_of;
use std::os::fd::{AsRawFd, OwnedFd};

use super::last_error;
use crate::error::Result;

/// `setsockopt(fd, SOL_SOCKET, opt, &value, sizeof(int))`.
fn set_int(fd: &OwnedFd, opt: i32, value: i32, call: &'static str) -> Result<()> {
    // SAFETY: `value` is a live c_int and the length passed is its size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            (&value as *const i32).cast::<c_void>(),
            size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc < 0 { Err(last_error(call)) } else { Ok(()) }
}

/// `getsockopt(fd, SOL_SOCKET, opt, &int, &len)`.
fn get_int(fd: &OwnedFd, opt: i32, call: &'static str) -> Result<i32> {
    let mut value: i32 = 0;
    let mut len = size_of::<i32>() as libc::socklen_t;
    // SAFETY: `value` is a writable c_int and `len` holds its exact size.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            (&mut value as *mut i32).cast::<c_void>(),
            &mut len,
        )
    };
    if rc < 0 { Err(last_error(call)) } else { Ok(value) }
}

/// `setsockopt(SO_BUSY_POLL)`: how long (µs) a blocking receive may busy-poll the device queue;
/// any non-zero value lets `recvfrom`/`sendto` on an AF_XDP socket poll its NAPI once.
pub fn set_busy_poll(fd: &OwnedFd, usecs: u32) -> Result<()> {
    let value = i32::try_from(usecs).unwrap_or(i32::MAX);
    set_int(fd, libc::SO_BUSY_POLL, value, "setsockopt(SO_BUSY_POLL)")
}

/// `getsockopt(SO_BUSY_POLL)`.
pub fn busy_poll(fd: &OwnedFd) -> Result<u32> {
    get_int(fd, libc::SO_BUSY_POLL, "getsockopt(SO_BUSY_POLL)").map(|v| v.max(0) as u32)
}

/// `setsockopt(SO_PREFER_BUSY_POLL)`: while the application busy-polls, the kernel defers the
/// queue's softirq processing to it (with the interface's `napi_defer_hard_irqs` and
/// `gro_flush_timeout` set). Turning it on needs CAP_NET_ADMIN.
pub fn set_prefer_busy_poll(fd: &OwnedFd, on: bool) -> Result<()> {
    set_int(fd, libc::SO_PREFER_BUSY_POLL, i32::from(on), "setsockopt(SO_PREFER_BUSY_POLL)")
}

/// `getsockopt(SO_PREFER_BUSY_POLL)`.
pub fn prefer_busy_poll(fd: &OwnedFd) -> Result<bool> {
    get_int(fd, libc::SO_PREFER_BUSY_POLL, "getsockopt(SO_PREFER_BUSY_POLL)").map(|v| v != 0)
}

/// `setsockopt(SO_BUSY_POLL_BUDGET)`: packets one busy poll may process (the kernel's default
/// is 8). Raising it needs CAP_NET_ADMIN. Write-only: the kernel has no getsockopt for it.
pub fn set_busy_poll_budget(fd: &OwnedFd, budget: u16) -> Result<()> {
    set_int(fd, libc::SO_BUSY_POLL_BUDGET, i32::from(budget), "setsockopt(SO_BUSY_POLL_BUDGET)")
}

/// `getsockopt(SO_INCOMING_NAPI_ID)`: the NAPI instance the socket's last received packet came
/// through (what busy polling polls), 0 before the first packet or when it had none.
pub fn incoming_napi_id(fd: &OwnedFd) -> Result<u32> {
    get_int(fd, libc::SO_INCOMING_NAPI_ID, "getsockopt(SO_INCOMING_NAPI_ID)").map(|v| v as u32)
}
