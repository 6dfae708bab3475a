//! An AF_XDP socket: its four rings, bind, wakeups, poll and statistics.
//!
//! Setup follows the only order the kernel accepts (see `net/xdp/xsk.c`): `socket` →
//! `XDP_UMEM_REG` → fill/completion ring sizes → rx/tx ring sizes → `XDP_MMAP_OFFSETS` → mmap →
//! frames on the fill ring → `bind`. The socket then only moves frames between the rings and the
//! UMEM's frame table, which checks every move (see [`crate::umem`]).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use crate::addr::Addressing;
use crate::error::{Error, Result};
use crate::ring::{CompletionRing, FillRing, RingMemory, RxRing, TxRing};
use crate::sys::{
    self, ForkGuard, Interface, Mmap, SockaddrXdp, XdpDesc, XdpRingOffset, sockopt, xsk,
};
use crate::umem::{Batch, FrameDesc, FrameState, FrameTable, PoolId, Umem};

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
    /// Keep the fill ring topped up automatically (at creation and after every receive).
    pub autofill: bool,
    /// Preferred busy polling: `None` leaves the queue's NAPI to softirq processing.
    pub busy_poll: Option<BusyPoll>,
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
    fn apply(&self, fd: &OwnedFd) -> Result<()> {
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

/// How long `open` retries a bind that fails with EBUSY: the kernel releases a closed socket's
/// queue asynchronously (xdp-tutorial#458).
const BIND_RETRY: Duration = Duration::from_millis(1500);

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

/// The socket fd plus the ring pair it uses. When the last reference goes (the socket, or a
/// poll still running on another thread), the fd is closed first and only then is the pair let
/// go of (and with the last socket of its (interface, queue), the frames the kernel held
/// return to the pool).
struct BoundFd {
    fd: Option<OwnedFd>,
    /// Set after bind: (need_wakeup, zerocopy), which every socket sharing the UMEM inherits.
    mode: OnceLock<(bool, bool)>,
    _pool: Arc<QueuePool>,
}

impl BoundFd {
    fn raw(&self) -> RawFd {
        self.fd.as_ref().map_or(-1, |fd| fd.as_raw_fd())
    }
}

impl Drop for BoundFd {
    fn drop(&mut self) {
        // Explicit: the fd closes before the pair (a field) can go.
        drop(self.fd.take());
    }
}

/// A handle for waiting on the socket without holding it (poll with the GIL released).
#[derive(Clone)]
pub struct PollHandle(Arc<BoundFd>);

impl PollHandle {
    /// `poll(2)` for `events`; returns the ready mask, 0 on timeout. Errors (EINTR included) are
    /// returned so the caller can check for signals.
    pub fn poll(&self, events: i16, timeout: Duration) -> io::Result<i16> {
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        xsk::poll(self.0.raw(), events, ms)
    }

    /// Busy-waits up to `spin` for `events`: polls the queue's NAPI (a `recvfrom` for POLLIN,
    /// a `sendto` for POLLOUT) and checks readiness with a zero-timeout `poll`, again and
    /// again. Returns the ready mask, 0 when `spin` passed. For a socket opened with
    /// [`BusyPoll`]; on others the wakeups only cost time.
    pub fn spin(&self, events: i16, spin: Duration) -> io::Result<i16> {
        let fd = self.0.raw();
        let start = Instant::now();
        loop {
            // Wakeup errors only mean "nothing to do now"; poll reports real trouble.
            if events & POLLIN != 0 {
                let _ = xsk::wakeup_rx(fd);
            }
            if events & POLLOUT != 0 {
                let _ = xsk::wakeup_tx(fd);
            }
            let ready = xsk::poll(fd, events, 0)?;
            if ready != 0 || start.elapsed() >= spin {
                return Ok(ready);
            }
        }
    }

    /// The socket's fd (open as long as the handle lives).
    pub fn fd(&self) -> RawFd {
        self.0.raw()
    }
}

/// `poll` event: a received frame is waiting.
pub const POLLIN: i16 = xsk::POLLIN;
/// `poll` event: the tx ring has room.
pub const POLLOUT: i16 = xsk::POLLOUT;

/// Which device queue a ring pair serves: the kernel gives each distinct (device, queue) of a
/// shared UMEM its own fill and completion rings. Interface indexes are per network namespace,
/// so the namespace is part of the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueueKey {
    netns: (u64, u64),
    ifindex: u32,
    queue: u32,
}

/// One ring mapped from a socket fd, kept so the ring's cursor can be rebuilt on it.
struct RingMap {
    map: Arc<Mmap>,
    off: XdpRingOffset,
    size: u32,
}

impl RingMap {
    /// Maps the ring at `pgoff` of `size` entries of `T`.
    fn new<T>(
        fd: &OwnedFd,
        off: &XdpRingOffset,
        size: u32,
        pgoff: i64,
        call: &'static str,
    ) -> Result<RingMap> {
        let len = off.desc as usize + size as usize * std::mem::size_of::<T>();
        Ok(RingMap { map: Arc::new(Mmap::ring(fd, len, pgoff, call)?), off: *off, size })
    }

    /// The ring's memory. Build at most one cursor on it at a time per ring (the contract of
    /// [`RingMemory::new`]); the cursor starts from the indices in memory.
    fn memory<T: Copy>(&self) -> RingMemory<T> {
        let base = self.map.as_ptr();
        let off = &self.off;
        // SAFETY: the kernel placed producer, consumer, flags and `size` entries of `T` at these
        // offsets inside the mapping (XDP_MMAP_OFFSETS; `RingMap::new` sized it for them),
        // suitably aligned; `map` keeps it alive as long as the ring memory exists. The callers
        // build one cursor per ring at a time (a pair's cursor moves to another socket's
        // mapping of the same ring only after the previous one is dropped, under its lock).
        unsafe {
            RingMemory::new(
                self.map.clone(),
                base.add(off.producer as usize).cast(),
                base.add(off.consumer as usize).cast(),
                base.add(off.flags as usize).cast(),
                base.add(off.desc as usize).cast(),
                self.size,
            )
        }
    }
}

/// A socket's mapping of its pair's fill and completion rings.
struct PoolMember {
    id: u64,
    fd: Weak<BoundFd>,
    fill: RingMap,
    comp: RingMap,
}

/// The cursors of a pair's fill and completion rings, running on the mapping of its first
/// member; every member maps the same rings (the kernel hands a sharing socket its pair's rings
/// on mmap), so when that member closes the cursors move to the next one's mapping and its
/// fd can really close (a mapping keeps its socket alive).
struct PairRings {
    /// The pair's id (its frames carry it in the frame table).
    pool: PoolId,
    fill: Option<FillRing>,
    comp: Option<CompletionRing>,
    members: Vec<PoolMember>,
    /// How many frames autofill keeps on the fill ring: the largest target of its members.
    fill_target: u32,
    /// Addresses taken from the free pool for the fill ring (reused by every top-up).
    scratch: Vec<u64>,
}

/// The fill and completion rings of one (interface, queue) of a UMEM, shared by every socket
/// of the UMEM bound there (the kernel's `XDP_SHARED_UMEM` rule), under one lock: rings are
/// single-producer/single-consumer.
pub(crate) struct QueuePool {
    id: PoolId,
    key: QueueKey,
    umem: Umem,
    rings: Mutex<PairRings>,
}

impl QueuePool {
    fn rings(&self) -> MutexGuard<'_, PairRings> {
        self.rings.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The sizes of the pair's fill and completion rings.
    fn sizes(&self) -> (u32, u32) {
        self.rings().members.first().map_or((0, 0), |m| (m.fill.size, m.comp.size))
    }

    /// A live member's fd, held open while the caller binds a sharing socket with it.
    fn member_fd(&self) -> Option<Arc<BoundFd>> {
        self.rings().members.iter().find_map(|m| m.fd.upgrade())
    }

    /// Adds a member with its mapping of the rings; the first one's mapping runs the cursors.
    fn join(&self, member: PoolMember, fill_target: u32) {
        let mut rings = self.rings();
        if rings.fill.is_none() {
            rings.fill = Some(FillRing::new(member.fill.memory()));
            rings.comp = Some(CompletionRing::new(member.comp.memory()));
        }
        rings.fill_target = rings.fill_target.max(fill_target);
        rings.members.push(member);
    }

    /// Removes member `id` (its socket is closing): when the cursors ran on its mapping, they
    /// are dropped and rebuilt on the next member's, from the indices in memory (no
    /// reservation is ever left open across the lock).
    fn leave(&self, id: u64) {
        let mut rings = self.rings();
        let Some(pos) = rings.members.iter().position(|m| m.id == id) else { return };
        if pos == 0 {
            rings.fill = None;
            rings.comp = None;
        }
        let gone = rings.members.remove(pos);
        if pos == 0
            && let Some(next) = rings.members.first()
        {
            let (fill, comp) =
                (FillRing::new(next.fill.memory()), CompletionRing::new(next.comp.memory()));
            rings.fill = Some(fill);
            rings.comp = Some(comp);
        }
        drop(rings);
        drop(gone);
    }
}

impl Drop for QueuePool {
    fn drop(&mut self) {
        self.umem.remove_pool(self.id);
    }
}

/// How a new socket gets its UMEM, decided under the UMEM's open lock.
enum Sharing {
    /// No socket uses the UMEM: register it (`XDP_UMEM_REG`) and make the first ring pair.
    Owner,
    /// Share the UMEM with this bound socket (on another interface or queue): a new ring pair.
    NewQueue(Arc<BoundFd>),
    /// Share this ring pair (same interface and queue) through one of its bound sockets.
    SameQueue(Arc<QueuePool>, Arc<BoundFd>),
}

/// Unique member ids (a socket's place in its ring pair).
static NEXT_MEMBER: AtomicU64 = AtomicU64::new(1);

/// An AF_XDP socket bound to one queue of one interface.
pub struct Socket {
    // Field order is drop order: unmap the rings before the fd can close (and `Drop` takes the
    // socket's mapping of the fill/completion rings out of its pair first).
    rx: Option<RxRing>,
    tx: Option<TxRing>,
    pool: Arc<QueuePool>,
    member: u64,
    bound: Arc<BoundFd>,
    umem: Umem,
    iface: Interface,
    queue: u32,
    /// The process the socket was opened in (see [`crate::sys::fork`]).
    guard: ForkGuard,
    zerocopy: bool,
    cfg: SocketConfig,
    counters: Counters,
}

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
    /// Opens a socket on `iface`/`queue` over `umem`, with the rings of `cfg`.
    ///
    /// A UMEM may back any number of sockets (`XDP_SHARED_UMEM`): the first one registers it;
    /// a socket on another (interface, queue) gets its own fill and completion rings
    /// (`cfg.fill_size`/`comp_size`); a socket on an (interface, queue) where one of the UMEM's
    /// sockets is already bound shares that socket's fill and completion rings (its own sizes
    /// for them are ignored). Sharing sockets inherit copy/zero-copy and need-wakeup from the
    /// first: asking for another mode is an error. Every socket of the UMEM can send frames
    /// received on any other, without copying.
    ///
    /// Errors: [`Error::InvalidArgument`] for a bad ring size or a mode that differs from the
    /// UMEM's other sockets, [`Error::NoSuchInterface`], [`Error::QueueOutOfRange`],
    /// [`Error::ForkedChild`] for a UMEM made before a `fork()`, or [`Error::Syscall`] naming
    /// the call (EPERM without CAP_NET_RAW, EBUSY when the queue is taken by a socket of
    /// another UMEM, EOPNOTSUPP when zero-copy was required but the driver has none).
    pub fn open(iface: &Interface, queue: u32, umem: Umem, cfg: SocketConfig) -> Result<Socket> {
        cfg.validate()?;
        umem.check_fork()?;
        let count = iface.queue_count()?;
        if queue >= count {
            return Err(Error::QueueOutOfRange { ifname: iface.name().into(), queue, count });
        }
        let key = QueueKey { netns: sys::netdev::current_netns()?, ifindex: iface.index(), queue };
        let opening = umem.opening();
        let pools = umem.live_pools();
        let sharing = match pools
            .iter()
            .find_map(|p| Some((p, p.member_fd()?)).filter(|(p, _)| p.key == key))
        {
            Some((pool, fd)) => Sharing::SameQueue(pool.clone(), fd),
            None => match pools.iter().find_map(|p| p.member_fd()) {
                Some(fd) => Sharing::NewQueue(fd),
                None => Sharing::Owner,
            },
        };
        drop(pools);
        if let Sharing::NewQueue(owner) | Sharing::SameQueue(_, owner) = &sharing {
            // Set once bound; members found here are (opens are serialised, and a failed open
            // leaves its pair before the lock is let go).
            let (need_wakeup, zerocopy) =
                owner.mode.get().copied().unwrap_or((cfg.need_wakeup, cfg.zerocopy == Some(true)));
            if cfg.need_wakeup != need_wakeup {
                return Err(Error::InvalidArgument {
                    name: "need_wakeup",
                    value: cfg.need_wakeup.to_string(),
                    why: format!(
                        "the Umem's sockets were bound with need_wakeup={need_wakeup}, which sharing sockets inherit"
                    ),
                });
            }
            if cfg.zerocopy.is_some_and(|z| z != zerocopy) {
                return Err(Error::InvalidArgument {
                    name: "zerocopy",
                    value: format!("{:?}", cfg.zerocopy),
                    why: format!(
                        "the Umem's sockets run in {} mode, which sharing sockets inherit",
                        if zerocopy { "zero-copy" } else { "copy" }
                    ),
                });
            }
        }
        let fd = xsk::socket()?;
        if let Some(busy_poll) = &cfg.busy_poll {
            busy_poll.apply(&fd)?;
        }
        let ucfg = umem.config();
        if let Sharing::Owner = sharing {
            let reg = sys::XdpUmemReg {
                addr: umem.as_ptr() as u64,
                len: umem.len() as u64,
                chunk_size: ucfg.frame_size,
                headroom: ucfg.headroom,
                flags: if ucfg.unaligned { sys::XDP_UMEM_UNALIGNED_CHUNK_FLAG } else { 0 },
                tx_metadata_len: 0,
            };
            xsk::umem_reg(&fd, &reg)?;
        }
        // The kernel's rule: each distinct (device, queue) has its own fill and completion
        // rings, made on its first socket; a socket joining that queue must not make any.
        let own_pair = !matches!(sharing, Sharing::SameQueue(..));
        if own_pair {
            xsk::set_fill_ring_size(&fd, cfg.fill_size)?;
            xsk::set_completion_ring_size(&fd, cfg.comp_size)?;
        }
        if cfg.rx_size > 0 {
            xsk::set_rx_ring_size(&fd, cfg.rx_size)?;
        }
        if cfg.tx_size > 0 {
            xsk::set_tx_ring_size(&fd, cfg.tx_size)?;
        }
        let off = xsk::mmap_offsets(&fd)?;
        let rx = match cfg.rx_size {
            0 => None,
            n => Some(RxRing::new(
                RingMap::new::<XdpDesc>(&fd, &off.rx, n, sys::XDP_PGOFF_RX_RING, "mmap(rx ring)")?
                    .memory(),
            )),
        };
        let tx = match cfg.tx_size {
            0 => None,
            n => Some(TxRing::new(
                RingMap::new::<XdpDesc>(&fd, &off.tx, n, sys::XDP_PGOFF_TX_RING, "mmap(tx ring)")?
                    .memory(),
            )),
        };
        let map_pair =
            |fd: &OwnedFd, fill_size: u32, comp_size: u32| -> Result<(RingMap, RingMap)> {
                Ok((
                    RingMap::new::<u64>(
                        fd,
                        &off.fr,
                        fill_size,
                        sys::XDP_UMEM_PGOFF_FILL_RING,
                        "mmap(fill ring)",
                    )?,
                    RingMap::new::<u64>(
                        fd,
                        &off.cr,
                        comp_size,
                        sys::XDP_UMEM_PGOFF_COMPLETION_RING,
                        "mmap(completion ring)",
                    )?,
                ))
            };
        // The first socket leaves half the frames for transmission when it does both; a
        // further ring pair of a shared UMEM takes at most half of what is still free, so the
        // pairs opened before it and transmission keep frames too.
        let fill_target = if rx.is_none() {
            0
        } else {
            let frames = ucfg.frame_count;
            let share = match &sharing {
                Sharing::Owner if tx.is_none() => frames,
                Sharing::Owner => frames.div_ceil(2),
                Sharing::NewQueue(_) | Sharing::SameQueue(..) => umem.free_frames() / 2,
            };
            cfg.fill_size.min(share)
        };
        let (pool, pair_maps) = match &sharing {
            Sharing::SameQueue(pool, _) => (pool.clone(), None),
            Sharing::Owner | Sharing::NewQueue(_) => {
                let maps = map_pair(&fd, cfg.fill_size, cfg.comp_size)?;
                let pool = umem.add_pool(|id| {
                    Arc::new(QueuePool {
                        id,
                        key,
                        umem: umem.clone(),
                        rings: Mutex::new(PairRings {
                            pool: id,
                            fill: None,
                            comp: None,
                            members: Vec::new(),
                            fill_target: 0,
                            scratch: Vec::new(),
                        }),
                    })
                })?;
                (pool, Some(maps))
            }
        };
        // From here on, dropping `bound` closes the fd and lets the pair go.
        let bound = Arc::new(BoundFd { fd: Some(fd), mode: OnceLock::new(), _pool: pool.clone() });
        let fd = bound.fd.as_ref().expect("fd set above");
        let member = NEXT_MEMBER.fetch_add(1, Ordering::Relaxed);
        let mut sock = Socket {
            rx,
            tx,
            pool: pool.clone(),
            member,
            bound: bound.clone(),
            umem: umem.clone(),
            iface: iface.clone(),
            queue,
            guard: ForkGuard::new(),
            zerocopy: false,
            cfg,
            counters: Counters::default(),
        };
        if let Some((fill, comp)) = pair_maps {
            // A new pair: frames go on its fill ring before bind (zero-copy drivers expect
            // them there).
            pool.join(
                PoolMember { id: member, fd: Arc::downgrade(&bound), fill, comp },
                fill_target,
            );
            if cfg.autofill {
                sock.top_up_fill()?;
            }
        }
        let (flags, shared_fd) = match &sharing {
            Sharing::Owner => {
                let mut flags = 0;
                if cfg.need_wakeup {
                    flags |= sys::XDP_USE_NEED_WAKEUP;
                }
                match cfg.zerocopy {
                    Some(true) => flags |= sys::XDP_ZEROCOPY,
                    Some(false) => flags |= sys::XDP_COPY,
                    None => {}
                }
                (flags, 0)
            }
            // A sharing socket binds with XDP_SHARED_UMEM only (any other flag: EINVAL).
            Sharing::NewQueue(owner) | Sharing::SameQueue(_, owner) => {
                (sys::XDP_SHARED_UMEM, owner.raw() as u32)
            }
        };
        let addr = SockaddrXdp {
            sxdp_family: sys::AF_XDP as u16,
            sxdp_flags: flags,
            sxdp_ifindex: iface.index(),
            sxdp_queue_id: queue,
            sxdp_shared_umem_fd: shared_fd,
        };
        let deadline = Instant::now() + BIND_RETRY;
        // A queue closed just before is released by deferred kernel work about 20 ms later
        // here: poll for it in steps of at most 2 ms, so a reopen waits little past it.
        let mut backoff = Duration::from_micros(200);
        loop {
            match xsk::bind(fd, &addr) {
                Err(Error::Syscall { source, .. })
                    if source.raw_os_error() == Some(sys::errno::EBUSY)
                        && Instant::now() < deadline =>
                {
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_millis(2));
                }
                other => break other?,
            }
        }
        if let Sharing::SameQueue(pool, _) = &sharing {
            // Bound, the socket maps its pair's rings (the kernel gives the shared pool's).
            let (fill_size, comp_size) = pool.sizes();
            let (fill, comp) = map_pair(fd, fill_size, comp_size)?;
            pool.join(
                PoolMember { id: member, fd: Arc::downgrade(&bound), fill, comp },
                fill_target,
            );
            if cfg.autofill {
                sock.top_up_fill()?;
            }
        }
        let opts = xsk::options(fd)?;
        sock.zerocopy = opts.flags & sys::XDP_OPTIONS_ZEROCOPY != 0;
        let _ = bound.mode.set((cfg.need_wakeup, sock.zerocopy));
        drop(opening);
        Ok(sock)
    }

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

    /// Hands up to `max` free frames to the kernel through the fill ring; returns how many.
    pub fn fill(&mut self, max: u32) -> Result<u32> {
        self.fill_with(|_, _| max)
    }

    /// Tops the fill ring up to the fill target (what `autofill` does).
    pub fn top_up_fill(&mut self) -> Result<u32> {
        self.fill_with(fill_deficit)
    }

    /// Puts `want(rings, table)` free frames (at most) on the fill ring, deciding and taking
    /// them under one lock of the pair's rings and of the frame table.
    fn fill_with(&mut self, want: impl FnOnce(&PairRings, &FrameTable) -> u32) -> Result<u32> {
        self.check_fork()?;
        let addressing = self.umem.addressing();
        let (got, wake) = {
            let mut rings = self.pool.rings();
            let mut table = self.umem.frames();
            let want = want(&rings, &table);
            let got = fill_locked(&mut rings, &mut table, self.pool.id, want, addressing);
            (got, rings.fill.as_ref().is_some_and(FillRing::needs_wakeup))
        };
        self.filled(got, wake);
        Ok(got)
    }

    /// Counts `got` frames just put on the fill ring and wakes the kernel if it asked.
    fn filled(&mut self, got: u32, wake: bool) {
        if got == 0 {
            return;
        }
        self.counters.filled += u64::from(got);
        if wake {
            // Errors here only mean "try again later"; the frames are on the ring either way.
            let _ = xsk::wakeup_rx(self.fd());
        }
    }

    fn no_ring(ring: &'static str) -> Error {
        Error::InvalidArgument {
            name: ring,
            value: "0".into(),
            why: format!("the socket was opened with {ring}=0"),
        }
    }

    /// Takes up to `max` received frames from the rx ring, without waiting.
    ///
    /// One lock of the frame table covers the whole batch: every descriptor is checked (an
    /// address this socket did not put on the fill ring is refused and counted as
    /// `unexpected`), and with `autofill` the fill ring is topped up from the free pool.
    /// With [`BusyPoll`], a `recvfrom` first polls the queue's NAPI, which moves what waits
    /// there onto the rx ring.
    pub fn recv(&mut self, max: u32) -> Result<Batch> {
        self.check_fork()?;
        let busy = self.cfg.busy_poll.is_some();
        let fd = self.fd();
        let rx = self.rx.as_mut().ok_or_else(|| Self::no_ring("rx_size"))?;
        if busy {
            // Errors only mean "nothing polled now"; the ring is read either way.
            let _ = xsk::wakeup_rx(fd);
        }
        let addressing = self.umem.addressing();
        let pool = self.pool.id;
        let (frames, n, unexpected, filled, wake) = {
            // The pair's lock first, then the frame table's (the order everywhere).
            let mut rings = self.pool.rings();
            let mut table = self.umem.frames();
            let ready = rx.available(max).min(max);
            let frames = if ready == 0 { Vec::new() } else { table.desc_vec(ready as usize) };
            let mut sink = Received { table: &mut table, pool, addressing, frames, unexpected: 0 };
            let n = rx.peek(ready, &mut sink);
            let Received { frames, unexpected, .. } = sink;
            let filled = if self.cfg.autofill {
                let want = fill_deficit(&rings, &table);
                fill_locked(&mut rings, &mut table, pool, want, addressing)
            } else {
                0
            };
            (frames, n, unexpected, filled, rings.fill.as_ref().is_some_and(FillRing::needs_wakeup))
        };
        rx.release(n);
        self.counters.unexpected += u64::from(unexpected);
        self.counters.received += frames.len() as u64;
        self.filled(filled, wake);
        Ok(Batch::from_owned(self.umem.clone(), frames))
    }

    /// Number of entries waiting on the rx ring.
    ///
    /// # Errors
    ///
    /// [`Error::ForkedChild`].
    pub fn rx_available(&mut self) -> Result<u32> {
        self.check_fork()?;
        Ok(self.rx.as_mut().map_or(0, |rx| rx.available(u32::MAX)))
    }

    /// Takes up to `n` free frames for transmission (length 0 until written). Completed frames
    /// are reclaimed first when the pool runs short.
    pub fn alloc(&mut self, n: usize) -> Result<Batch> {
        self.check_fork()?;
        if (self.umem.free_frames() as usize) < n {
            self.complete(u32::MAX)?;
        }
        Ok(self.umem.alloc(n))
    }

    /// Queues the frames of `batch` on the tx ring and wakes the kernel. Returns how many were
    /// queued; they leave the batch. Frames that did not fit (tx ring full) stay in the batch.
    ///
    /// Every frame is checked first (owned by the batch's UMEM, length from 1 to its capacity):
    /// a bad frame fails the whole call and nothing is queued.
    pub fn send(&mut self, batch: &mut Batch) -> Result<u32> {
        self.check_fork()?;
        if self.tx.is_none() {
            return Err(Self::no_ring("tx_size"));
        }
        if !batch.umem().same(&self.umem) {
            return Err(Error::InvalidArgument {
                name: "batch",
                value: format!("of {} frames", batch.len()),
                why: "its frames belong to another Umem".into(),
            });
        }
        for (i, d) in batch.descs().iter().enumerate() {
            let capacity = batch.capacity(i)?;
            if d.len == 0 {
                return Err(Error::InvalidArgument {
                    name: "frame length",
                    value: "0".into(),
                    why: format!(
                        "frame {i} of the batch is empty; write a packet or set its length"
                    ),
                });
            }
            if d.len as usize > capacity {
                return Err(Error::PacketTooLong { len: d.len as usize, capacity });
            }
        }
        let want = batch.len() as u32;
        if self.tx.as_mut().expect("checked above").free(want) < want {
            // Make room: let the kernel drain the ring, then reclaim.
            self.kick_tx()?;
            self.complete(u32::MAX)?;
        }
        let tx = self.tx.as_mut().expect("checked above");
        let n = tx.reserve(want);
        let fs = self.umem.config().frame_size;
        let addressing = self.umem.addressing();
        {
            let mut table = self.umem.frames();
            for (i, d) in batch.descs()[..n as usize].iter().enumerate() {
                table.queue_for_tx(d.index, self.pool.id, fs)?;
                let desc =
                    XdpDesc { addr: addressing.encode(d.index, d.offset), len: d.len, options: 0 };
                tx.write(i as u32, desc);
            }
        }
        tx.submit(n);
        batch.take_front(n as usize);
        self.counters.sent += u64::from(n);
        self.kick_tx()?;
        Ok(n)
    }

    /// Number of frames on the tx ring the kernel has not taken yet.
    ///
    /// # Errors
    ///
    /// [`Error::ForkedChild`].
    pub fn tx_pending(&mut self) -> Result<u32> {
        self.check_fork()?;
        Ok(self.tx.as_mut().map_or(0, |tx| tx.pending()))
    }

    /// Wakes the kernel to transmit what is on the tx ring (copy mode needs a `sendto` for every
    /// batch, and the kernel sends at most 32 frames per call, answering EAGAIN when more wait).
    /// With [`BusyPoll`] every call makes at least one `sendto`, which polls the queue's NAPI,
    /// even with nothing to send.
    pub fn kick_tx(&mut self) -> Result<()> {
        self.check_fork()?;
        let fd = self.fd();
        let need_wakeup = self.cfg.need_wakeup;
        let busy = self.cfg.busy_poll.is_some();
        let Some(tx) = self.tx.as_mut() else { return Ok(()) };
        let mut pending = tx.pending();
        if !busy && (pending == 0 || (need_wakeup && !tx.needs_wakeup())) {
            return Ok(());
        }
        let mut rounds = pending / 16 + 4;
        loop {
            rounds -= 1;
            if let Err(e) = xsk::wakeup_tx(fd)
                && !xsk::is_retry_later(&e)
            {
                return Err(Error::Syscall { call: "sendto(AF_XDP tx wakeup)", source: e });
            }
            pending = tx.pending();
            if pending == 0 || rounds == 0 {
                return Ok(());
            }
        }
    }

    /// Reclaims up to `max` transmitted frames from the completion ring into the free pool;
    /// returns how many. Kicks the kernel first when frames still wait on the tx ring.
    pub fn complete(&mut self, max: u32) -> Result<u32> {
        self.kick_tx()?;
        let addressing = self.umem.addressing();
        let pool = self.pool.id;
        let (n, done) = {
            let mut rings = self.pool.rings();
            let Some(comp) = rings.comp.as_mut() else { return Ok(0) };
            let mut table = self.umem.frames();
            let mut sink = Completed { table: &mut table, pool, addressing, done: 0 };
            let n = comp.peek(max, &mut sink);
            let done = sink.done;
            table.completed(done, pool);
            drop(table);
            comp.release(n);
            (n, done)
        };
        self.counters.unexpected += u64::from(n - done);
        self.counters.completed += u64::from(done);
        Ok(done)
    }

    /// Frames sent through this socket's (interface, queue) but not completed yet (the
    /// library's own count: no ring is read).
    pub fn in_flight(&self) -> u32 {
        self.umem.frames().tx_count(self.pool.id)
    }

    /// Kernel statistics (`XDP_STATISTICS`) and the library's counters.
    pub fn stats(&self) -> Result<Stats> {
        self.check_fork()?;
        let fd = self.bound.fd.as_ref().ok_or(Error::Closed { what: "Socket" })?;
        let kernel = xsk::statistics(fd)?;
        Ok(Stats { kernel, counters: self.counters })
    }
}

/// How many frames the pair's fill ring lacks to reach its target (what `autofill` tops up).
fn fill_deficit(rings: &PairRings, table: &FrameTable) -> u32 {
    rings.fill_target.saturating_sub(table.fill_count(rings_pool(rings)))
}

/// The pair id of `rings` (stored with its members' frames).
fn rings_pool(rings: &PairRings) -> PoolId {
    rings.pool
}

/// Moves up to `want` free frames onto the fill ring of pair `pool` under the caller's locks
/// of its rings and of the frame table; returns how many.
fn fill_locked(
    rings: &mut PairRings,
    table: &mut FrameTable,
    pool: PoolId,
    want: u32,
    addressing: Addressing,
) -> u32 {
    let want = want.min(table.count(FrameState::Free));
    let PairRings { fill: Some(fill), scratch, .. } = rings else { return 0 };
    if want == 0 {
        return 0;
    }
    let n = fill.reserve(want);
    scratch.clear();
    let got = table.take_free_for_fill(n, pool, addressing, scratch);
    fill.write_slice(scratch);
    fill.submit(got);
    got
}

/// Where [`Socket::recv`] peeks rx descriptors to: each one's frame moves `Fill` → `User` and
/// joins the batch, with no intermediate copy of the descriptors.
struct Received<'a> {
    table: &'a mut FrameTable,
    pool: PoolId,
    addressing: Addressing,
    frames: Vec<FrameDesc>,
    unexpected: u32,
}

impl Extend<XdpDesc> for Received<'_> {
    #[inline]
    fn extend<I: IntoIterator<Item = XdpDesc>>(&mut self, descs: I) {
        // An address we never filled is refused (counted), rather than handing out a frame
        // someone else owns.
        self.unexpected += self.table.take_received(
            descs.into_iter(),
            self.pool,
            self.addressing,
            &mut self.frames,
        );
    }
}

/// Where [`Socket::complete`] peeks completion addresses to: each one's frame moves `Tx` →
/// `Free`; anything else is left alone (and counted as unexpected by the caller).
struct Completed<'a> {
    table: &'a mut FrameTable,
    pool: PoolId,
    addressing: Addressing,
    done: u32,
}

impl Extend<u64> for Completed<'_> {
    #[inline]
    fn extend<I: IntoIterator<Item = u64>>(&mut self, addrs: I) {
        for addr in addrs {
            let done = self
                .addressing
                .decode(addr)
                .is_some_and(|d| self.table.take_completed(d.index, self.pool));
            self.done += u32::from(done);
        }
    }
}

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
