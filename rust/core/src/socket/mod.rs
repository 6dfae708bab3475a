//! An AF_XDP socket: its four rings, bind, wakeups, poll and statistics.
//!
//! Setup follows the only order the kernel accepts (see `net/xdp/xsk.c`): `socket` →
//! `XDP_UMEM_REG` → fill/completion ring sizes → rx/tx ring sizes → `XDP_MMAP_OFFSETS` → mmap →
//! frames on the fill ring → `bind`. The socket then only moves frames between the rings and the
//! UMEM's frame table, which checks every move (see [`crate::umem`]).
//!
//! The parts: `config` (ring sizes, bind options, busy polling), `pair` (the fd and the fill and
//! completion rings a socket shares with the UMEM's other sockets on its (interface, queue)),
//! `open` (setup and bind), `datapath` (fill, recv, send, complete), `lend` (`recv_with`: received
//! frames lent in place); `rx_path` is test support
//! (the receive path over rings in plain memory, for the benches).

use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::ring::{RxRing, TxRing};
use crate::sys::{self, ForkGuard, Interface, sockopt, xsk};
use crate::txmeta::TxTimestamp;
use crate::umem::Umem;

mod config;
mod datapath;
mod lend;
mod open;
mod pair;
mod rx_path;

pub use config::{BusyPoll, MAX_RING_SIZE, SocketConfig};
pub use lend::{RxFrame, RxView};
use pair::BoundFd;
pub use pair::{POLLIN, POLLOUT, PollHandle};
pub(crate) use pair::{QueuePool, Refill};
#[doc(hidden)]
pub use rx_path::RxPath;

/// Counters kept by the library (the kernel's own are in [`sys::XdpStatistics`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    /// Frames taken from the rx ring.
    pub received: u64,
    /// Frames put on the tx ring.
    pub sent: u64,
    /// Frames put on the fill ring.
    pub filled: u64,
    /// Frames taken back from the completion ring.
    pub completed: u64,
    /// Addresses the kernel returned that were not in the expected state (should stay 0).
    pub unexpected: u64,
}

/// Kernel statistics plus the library's counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub kernel: sys::XdpStatistics,
    pub counters: Counters,
}

/// An AF_XDP socket bound to one queue of one interface.
pub struct Socket {
    // Field order is drop order: unmap the rings before the fd can close (and `Drop` takes the
    // socket's mapping of the fill/completion rings out of its pair first).
    rx: Option<RxRing>,
    tx: Option<TxRing>,
    pool: Arc<QueuePool>,
    /// With `autofill` and an rx ring: what the socket's received batches hold to put their
    /// frames back on the fill ring when let go of.
    refill: Option<Arc<Refill>>,
    member: u64,
    bound: Arc<BoundFd>,
    umem: Umem,
    iface: Interface,
    queue: u32,
    /// The process the socket was opened in (see [`crate::sys::fork`]).
    guard: ForkGuard,
    zerocopy: bool,
    /// The most frames one packet may span on transmit (1 without multi-buffer).
    max_frags: u32,
    cfg: SocketConfig,
    counters: Counters,
    /// Completion timestamps reaped by [`Socket::complete`] and not taken yet (at most
    /// [`MAX_TX_STAMPS`], the oldest dropped first).
    tx_stamps: VecDeque<TxTimestamp>,
}

/// How many completion timestamps a socket keeps for [`Socket::take_tx_timestamps`].
pub const MAX_TX_STAMPS: usize = 1 << 20;

impl Drop for Socket {
    fn drop(&mut self) {
        self.pool.leave(self.member);
    }
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("ifname", &self.iface.name())
            .field("queue", &self.queue)
            .field("zerocopy", &self.zerocopy)
            .finish()
    }
}

impl Socket {
    /// The socket's file descriptor (for `poll`/`select`/XSKMAP registration).
    pub fn fd(&self) -> RawFd {
        self.bound.raw()
    }

    /// A handle to wait on the socket from another thread without holding it.
    ///
    /// # Errors
    ///
    /// [`Error::ForkedChild`].
    pub fn poll_handle(&self) -> Result<PollHandle> {
        self.check_fork()?;
        Ok(PollHandle(self.bound.clone()))
    }

    /// [`Error::ForkedChild`] in a process forked after the socket was opened: the kernel
    /// keeps working with the parent's rings and UMEM, so every operation refuses there.
    pub fn check_fork(&self) -> Result<()> {
        self.guard.check("Socket")
    }

    /// The interface.
    pub fn interface(&self) -> &Interface {
        &self.iface
    }

    /// The interface name.
    pub fn ifname(&self) -> &str {
        self.iface.name()
    }

    /// The interface index.
    pub fn ifindex(&self) -> u32 {
        self.iface.index()
    }

    /// The queue id the socket is bound to.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// Whether the kernel runs this socket in zero-copy mode (from `XDP_OPTIONS`).
    pub fn zerocopy(&self) -> bool {
        self.zerocopy
    }

    /// Whether the socket was bound with `XDP_USE_SG`: packets longer than a frame arrive as
    /// chains of frames ([`crate::umem::FrameDesc::MORE`]), and chains can be sent.
    pub fn multi_buffer(&self) -> bool {
        self.cfg.multi_buffer
    }

    /// The most frames one packet may span when sent: 1 without multi-buffer; with it, in copy
    /// mode, the kernel's `MAX_SKB_FRAGS` + 1 (18 by default; see
    /// [`sys::netdev::max_skb_frags`]), beyond which the kernel drops the whole packet and
    /// counts its descriptors in `tx_invalid_descs` without ever completing them; and no more
    /// than the tx ring's and the completion ring's entries (the kernel reserves a completion
    /// slot for each frame before the packet completes: a longer chain never would). A
    /// zero-copy driver's own limit (`xdp_zc_max_segs`) may be lower: afxdp does not read it.
    pub fn max_frags(&self) -> u32 {
        self.max_frags
    }

    /// The configuration the socket was opened with.
    pub fn config(&self) -> &SocketConfig {
        &self.cfg
    }

    /// The busy-poll settings, `None` when the socket leaves its queue to softirq processing.
    pub fn busy_poll(&self) -> Option<BusyPoll> {
        self.cfg.busy_poll
    }

    /// The NAPI instance the socket's packets arrive through (`SO_INCOMING_NAPI_ID`), the one
    /// busy polling drives: 0 until the first packet arrived, and for packets that came
    /// through no NAPI (generic XDP).
    pub fn napi_id(&self) -> Result<u32> {
        self.check_fork()?;
        let fd = self.bound.fd.as_ref().ok_or(Error::Closed { what: "Socket" })?;
        sockopt::incoming_napi_id(fd)
    }

    /// The UMEM.
    pub fn umem(&self) -> &Umem {
        &self.umem
    }

    /// Whether the socket has an rx ring / a tx ring.
    pub fn has_rx(&self) -> bool {
        self.rx.is_some()
    }

    /// Whether the socket has a tx ring.
    pub fn has_tx(&self) -> bool {
        self.tx.is_some()
    }

    /// How many frames `autofill` keeps on the fill ring (kernel-held receive frames). The
    /// fill ring is that of the socket's (interface, queue), shared with the UMEM's other
    /// sockets bound there; its target is the largest of theirs.
    pub fn fill_target(&self) -> u32 {
        self.pool.rings().fill_target
    }

    /// Whether the socket shares its fill and completion rings with another socket of its UMEM
    /// (bound to the same interface and queue).
    pub fn shares_fill_ring(&self) -> bool {
        self.pool.rings().members.len() > 1
    }

    /// Kernel statistics (`XDP_STATISTICS`) and the library's counters.
    pub fn stats(&self) -> Result<Stats> {
        self.check_fork()?;
        let fd = self.bound.fd.as_ref().ok_or(Error::Closed { what: "Socket" })?;
        let kernel = xsk::statistics(fd)?;
        let mut counters = self.counters;
        counters.filled += self.refill.as_ref().map_or(0, |r| r.filled());
        Ok(Stats { kernel, counters })
    }
}
