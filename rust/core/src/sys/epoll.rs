//! `epoll` and `eventfd`: one descriptor to wait on several sockets at once (a Port's queues),
//! and a counter another thread writes to wake that wait.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::last_error;
use crate::error::Result;

/// An epoll instance (`epoll_create1(EPOLL_CLOEXEC)`), level-triggered: a descriptor added for
/// reading keeps it readable for as long as it has something to read.
#[derive(Debug)]
pub struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    /// A new, empty epoll instance.
    pub fn new() -> Result<Epoll> {
        // SAFETY: plain syscall with a constant flag; no pointers.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(last_error("epoll_create1"));
        }
        // SAFETY: `fd` was just returned by epoll_create1 and is owned by nobody else.
        Ok(Epoll { fd: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    /// Watches `fd` for input (`EPOLLIN`), reported with `token`. The kernel drops the watch
    /// by itself when `fd`'s file is released.
    pub fn add_readable(&self, fd: RawFd, token: u64) -> Result<()> {
        let mut event = libc::epoll_event { events: libc::EPOLLIN as u32, u64: token };
        // SAFETY: `event` is a valid epoll_event for the duration of the call.
        let rc =
            unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) };
        if rc < 0 { Err(last_error("epoll_ctl(EPOLL_CTL_ADD)")) } else { Ok(()) }
    }

    /// Waits up to `timeout_ms` (never forever: callers pass a finite slice) for watched
    /// descriptors to become ready; writes their tokens to the front of `ready` and returns how
    /// many (0 on timeout). EINTR is returned as the error, so callers can check for signals.
    pub fn wait(&self, ready: &mut [u64], timeout_ms: i32) -> io::Result<usize> {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 16];
        let max = ready.len().min(events.len()) as i32;
        if max == 0 {
            return Ok(0);
        }
        // SAFETY: `events` holds at least `max` writable entries.
        let n = unsafe {
            libc::epoll_wait(self.fd.as_raw_fd(), events.as_mut_ptr(), max, timeout_ms.max(0))
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        for (slot, event) in ready.iter_mut().zip(&events[..n as usize]) {
            *slot = event.u64;
        }
        Ok(n as usize)
    }

    /// The epoll descriptor: itself readable when a watched descriptor is (for `select`,
    /// `selectors` and asyncio).
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// An `eventfd` (`EFD_CLOEXEC | EFD_NONBLOCK`): readable once [`signal`](EventFd::signal)ed,
/// and it stays readable (it is never read), which is what a "closed" wakeup wants.
#[derive(Debug)]
pub struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    /// A new eventfd at 0.
    pub fn new() -> Result<EventFd> {
        // SAFETY: plain syscall with constant arguments; no pointers.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(last_error("eventfd"));
        }
        // SAFETY: `fd` was just returned by eventfd and is owned by nobody else.
        Ok(EventFd { fd: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    /// Adds 1 to the counter, making the descriptor readable. An overflowing counter (EAGAIN)
    /// is readable already, so errors are ignored.
    pub fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writes the 8 bytes of `one`, which lives for the call.
        let _ = unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// The descriptor.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_eventfd_wakes_an_epoll_wait_and_stays_ready() {
        let epoll = Epoll::new().unwrap();
        let event = EventFd::new().unwrap();
        epoll.add_readable(event.fd(), 7).unwrap();
        let mut ready = [0u64; 4];
        assert_eq!(epoll.wait(&mut ready, 0).unwrap(), 0);
        event.signal();
        assert_eq!(epoll.wait(&mut ready, 1000).unwrap(), 1);
        assert_eq!(ready[0], 7);
        // Level-triggered and never read: still ready.
        assert_eq!(epoll.wait(&mut ready, 0).unwrap(), 1);
        // The epoll fd itself polls readable.
        assert_eq!(crate::sys::xsk::poll(epoll.fd(), libc::POLLIN, 0).unwrap(), libc::POLLIN);
    }
}
