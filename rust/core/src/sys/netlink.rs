//! Test-only kernel calls: entering a network namespace and a raw rtnetlink socket, for the
//! privileged tests' namespaces and their independent query of an interface's XDP program
//! (`bpf::test_support`).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// Moves the calling thread into the network namespace open at `netns` (`setns(2)`).
pub fn enter_netns(netns: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: `netns` is an open descriptor; setns changes only this thread's namespace.
    let ret = unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) };
    if ret == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// A new `NETLINK_ROUTE` socket, not bound (it talks to the kernel, address 0).
pub fn route_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket() takes no pointers; the result is checked below.
    let fd = unsafe {
        libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE)
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a freshly created descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sends `request` on `socket` to the kernel.
pub fn send(socket: &OwnedFd, request: &[u8]) -> io::Result<()> {
    // SAFETY: `request` is a live buffer of `request.len()` bytes.
    let sent = unsafe { libc::send(socket.as_raw_fd(), request.as_ptr().cast(), request.len(), 0) };
    if sent < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// Receives one datagram into `buffer`; returns its whole length (`MSG_TRUNC`: larger than
/// `buffer` when it did not fit). Retries on `EINTR`.
pub fn recv(socket: &OwnedFd, buffer: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buffer` is a live, writable buffer of `buffer.len()` bytes.
        let received = unsafe {
            libc::recv(
                socket.as_raw_fd(),
                buffer.as_mut_ptr().cast(),
                buffer.len(),
                libc::MSG_TRUNC,
            )
        };
        match usize::try_from(received) {
            Ok(n) => return Ok(n),
            Err(_) => {
                let error = io::Error::last_os_error();
                if error.kind() != io::ErrorKind::Interrupted {
                    return Err(error);
                }
            }
        }
    }
}
