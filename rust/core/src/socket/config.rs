//! Ring sizes, bind options and busy polling: what a socket is opened with.

use std::os::fd::OwnedFd;

#[cfg(doc)]
use super::Socket;
use crate::error::{Error, Result};
use crate::sys::sockopt;

/// Ring sizes and bind options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketConfig {
    /// RX ring entries (power of two), or 0 for a transmit-only socket.
    pub rx_size: u32,
    /// TX ring entries (power of two), or 0 for a receive-only socket.
    pub tx_size: u32,
    /// Fill ring entries (power of two).
    pub fill_size: u32,
    /// Completion ring entries (power of two).
    pub comp_size: u32,
    /// `Some(true)`: require zero-copy; `Some(false)`: force copy mode; `None`: let the kernel
    /// try zero-copy and fall back to copy.
    pub zerocopy: Option<bool>,
    /// Bind with `XDP_USE_NEED_WAKEUP` (syscalls only when the kernel asks for them).
    pub need_wakeup: bool,
    /// Keep the fill ring topped up automatically: at creation, after every receive, and when
    /// a received batch is let go of, whose frames then go straight back onto the fill ring as
    /// far as it lacks frames (the rest to the free pool). A receive keeps room on the ring
    /// for the frames of the batch it returns (at most half the fill target), so they are
    /// not replaced from the free pool while the batch is held.
    pub autofill: bool,
    /// Preferred busy polling: `None` leaves the queue's NAPI to softirq processing.
    pub busy_poll: Option<BusyPoll>,
    /// Bind with `XDP_USE_SG` (multi-buffer): packets longer than a frame arrive as chains of
    /// frames, and chains can be sent (see [`Socket::recv`], [`Socket::send`]). The XDP program
    /// must be frags-aware (the built-in one is).
    pub multi_buffer: bool,
}

/// Preferred busy polling (`Documentation/networking/napi.rst`, "Preferred busy polling"): the
/// socket gets `SO_PREFER_BUSY_POLL`, `SO_BUSY_POLL` and `SO_BUSY_POLL_BUDGET` at creation,
/// and then every [`Socket::recv`] polls the queue's NAPI with a `recvfrom` and every
/// [`Socket::send`]/[`Socket::complete`] with a `sendto`, whether or not the rings' need_wakeup
/// flags are set (the kernel skips wakeups for such sockets and relies on these calls). The
/// NAPI is known once the first packet arrived ([`Socket::napi_id`]). With the interface's
/// `napi_defer_hard_irqs` and `gro_flush_timeout` set, softirq processing then stays out of
/// the way while the application polls.
///
/// Needs CAP_NET_ADMIN (for `SO_PREFER_BUSY_POLL` and a budget above the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusyPoll {
    /// `SO_BUSY_POLL`: microseconds a blocking wait may spin on the queue (1 to `i32::MAX`).
    pub usecs: u32,
    /// `SO_BUSY_POLL_BUDGET`: packets one poll may process (1 to 65535).
    pub budget: u16,
}

impl BusyPoll {
    /// The budget when none is given: a batch of 64, as xdpsock's `-B` and DPDK use.
    pub const DEFAULT_BUDGET: u16 = 64;

    /// Checks `usecs`, naming it when out of range (the budget's type is its range, but 0
    /// would mean the kernel's default and is refused too).
    pub fn validate(&self) -> Result<()> {
        if self.usecs == 0 || self.usecs > i32::MAX as u32 {
            return Err(Error::InvalidArgument {
                name: "busy_poll_usecs",
                value: self.usecs.to_string(),
                why: format!("must be from 1 to {} microseconds", i32::MAX),
            });
        }
        if self.budget == 0 {
            return Err(Error::InvalidArgument {
                name: "busy_poll_budget",
                value: "0".into(),
                why: format!("must be from 1 to {}", u16::MAX),
            });
        }
        Ok(())
    }

    /// Sets the three options on a new socket, in xdpsock's order.
    pub(super) fn apply(&self, fd: &OwnedFd) -> Result<()> {
        sockopt::set_prefer_busy_poll(fd, true)?;
        sockopt::set_busy_poll(fd, self.usecs)?;
        sockopt::set_busy_poll_budget(fd, self.budget)
    }
}

impl Default for SocketConfig {
    fn default() -> Self {
        SocketConfig {
            rx_size: 2048,
            tx_size: 2048,
            fill_size: 4096,
            comp_size: 2048,
            zerocopy: None,
            need_wakeup: true,
            autofill: true,
            busy_poll: None,
            multi_buffer: false,
        }
    }
}

impl SocketConfig {
    /// The configuration for rings of `rx_size` and `tx_size` entries, with the fill and
    /// completion rings sized by afxdp's rule unless given: fill twice the rx ring (so the
    /// kernel always finds frames while a full rx batch is processed), completion as large as
    /// the tx ring; both at least 64. The sizes are checked at [`Socket::open`].
    pub fn with_sizes(
        rx_size: u32,
        tx_size: u32,
        fill_size: Option<u32>,
        comp_size: Option<u32>,
    ) -> SocketConfig {
        SocketConfig {
            rx_size,
            tx_size,
            fill_size: fill_size.unwrap_or_else(|| rx_size.saturating_mul(2).max(64)),
            comp_size: comp_size.unwrap_or_else(|| tx_size.max(64)),
            ..SocketConfig::default()
        }
    }

    /// Checks the ring sizes and the busy-poll settings, naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        if let Some(busy_poll) = &self.busy_poll {
            busy_poll.validate()?;
        }
        let check = |name: &'static str, value: u32, zero_ok: bool| {
            if (value == 0 && zero_ok) || (value.is_power_of_two() && value <= MAX_RING_SIZE) {
                Ok(())
            } else {
                Err(Error::InvalidArgument {
                    name,
                    value: value.to_string(),
                    why: format!(
                        "ring sizes must be powers of two from 1 to {MAX_RING_SIZE}{}",
                        if zero_ok { " (or 0 for no ring)" } else { "" }
                    ),
                })
            }
        };
        check("rx_size", self.rx_size, true)?;
        check("tx_size", self.tx_size, true)?;
        check("fill_size", self.fill_size, false)?;
        check("comp_size", self.comp_size, false)?;
        if self.rx_size == 0 && self.tx_size == 0 {
            return Err(Error::InvalidArgument {
                name: "rx_size",
                value: "0".into(),
                why: "a socket needs an rx ring, a tx ring or both".into(),
            });
        }
        Ok(())
    }
}

/// The largest ring afxdp asks for (the kernel's limit is memory, not a constant).
pub const MAX_RING_SIZE: u32 = 1 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_size_defaults_follow_the_rx_and_tx_rings() {
        let cfg = SocketConfig::with_sizes(2048, 1024, None, None);
        assert_eq!((cfg.fill_size, cfg.comp_size), (4096, 1024));
        let small = SocketConfig::with_sizes(8, 0, None, None);
        assert_eq!((small.fill_size, small.comp_size), (64, 64));
        let given = SocketConfig::with_sizes(8, 8, Some(128), Some(256));
        assert_eq!((given.fill_size, given.comp_size), (128, 256));
        // A huge rx ring saturates instead of overflowing; validation then names it.
        let huge = SocketConfig::with_sizes(u32::MAX, 0, None, None);
        assert_eq!(huge.fill_size, u32::MAX);
        assert!(huge.validate().unwrap_err().to_string().contains("invalid rx_size"));
    }

    #[test]
    fn busy_poll_settings_are_checked_naming_the_value() {
        let with = |usecs, budget| SocketConfig {
            busy_poll: Some(BusyPoll { usecs, budget }),
            ..SocketConfig::default()
        };
        assert!(SocketConfig::default().validate().is_ok());
        assert!(with(1, 1).validate().is_ok());
        assert!(with(i32::MAX as u32, u16::MAX).validate().is_ok());
        for (usecs, budget, needle) in [
            (0, 64, "invalid busy_poll_usecs 0"),
            (i32::MAX as u32 + 1, 64, "invalid busy_poll_usecs 2147483648"),
            (20, 0, "invalid busy_poll_budget 0"),
        ] {
            let error = with(usecs, budget).validate().unwrap_err().to_string();
            assert!(error.contains(needle), "{error}");
        }
    }
}
