//! An AF_XDP socket: its four rings, bind, wakeups, poll and statistics.
//!
//! Setup follows the only order the kernel accepts (see `net/xdp/xsk.c`): `socket` →
//! `XDP_UMEM_REG` → fill/completion ring sizes → rx/tx ring sizes → `XDP_MMAP_OFFSETS` → mmap →
//! frames on the fill ring → `bind`. The socket then only moves frames between the rings and the
//! UMEM's frame table, which checks every move (see [`crate::umem`]).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::ring::{CompletionRing, FillRing, RingMemory, RxRing, TxRing};
use crate::sys::{
    self, ForkGuard, Interface, Mmap, SockaddrXdp, XdpDesc, XdpRingOffset, sockopt, xsk,
};
use crate::umem::{Batch, FrameDesc, FrameState, FrameTable, Umem};

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

/// The socket fd plus the UMEM it registered. When the last reference goes (the socket, or a
/// poll still running on another thread), the fd is closed first and only then do the frames
/// the kernel held return to the pool.
struct BoundFd {
    fd: Option<OwnedFd>,
    umem: Umem,
}

impl BoundFd {
    fn raw(&self) -> RawFd {
        self.fd.as_ref().map_or(-1, |fd| fd.as_raw_fd())
    }
}

impl Drop for BoundFd {
    fn drop(&mut self) {
        drop(self.fd.take());
        self.umem.unbind();
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
}

/// `poll` event: a received frame is waiting.
pub const POLLIN: i16 = xsk::POLLIN;
/// `poll` event: the tx ring has room.
pub const POLLOUT: i16 = xsk::POLLOUT;

/// An AF_XDP socket bound to one queue of one interface.
pub struct Socket {
    // Field order is drop order: unmap the rings before the fd can close.
    fill: FillRing,
    comp: CompletionRing,
    rx: Option<RxRing>,
    tx: Option<TxRing>,
    bound: Arc<BoundFd>,
    umem: Umem,
    iface: Interface,
    queue: u32,
    /// The process the socket was opened in (see [`crate::sys::fork`]).
    guard: ForkGuard,
    zerocopy: bool,
    cfg: SocketConfig,
    fill_target: u32,
    counters: Counters,
    /// Addresses taken from the free pool for the fill ring (reused by every top-up).
    scratch_addr: Vec<u64>,
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

fn map_ring<T: Copy>(
    fd: &OwnedFd,
    off: &XdpRingOffset,
    size: u32,
    pgoff: i64,
    call: &'static str,
) -> Result<RingMemory<T>> {
    let len = off.desc as usize + size as usize * std::mem::size_of::<T>();
    let map = Arc::new(Mmap::ring(fd, len, pgoff, call)?);
    let base = map.as_ptr();
    // SAFETY: the kernel placed producer, consumer, flags and `size` descriptors at these offsets
    // inside the `len`-byte mapping (XDP_MMAP_OFFSETS), suitably aligned; `map` keeps it alive
    // as long as the ring memory exists.
    Ok(unsafe {
        RingMemory::new(
            map.clone(),
            base.add(off.producer as usize).cast(),
            base.add(off.consumer as usize).cast(),
            base.add(off.flags as usize).cast(),
            base.add(off.desc as usize).cast(),
            size,
        )
    })
}

impl Socket {
    /// Opens a socket on `iface`/`queue` over `umem`, with the rings of `cfg`.
    ///
    /// Errors: [`Error::InvalidArgument`] for a bad ring size, [`Error::NoSuchInterface`],
    /// [`Error::QueueOutOfRange`], [`Error::UmemInUse`], [`Error::ForkedChild`] for a UMEM made
    /// before a `fork()`, or [`Error::Syscall`] naming the call (EPERM without CAP_NET_RAW,
    /// EBUSY when the queue is taken, EOPNOTSUPP when zero-copy was required but the driver has
    /// none).
    pub fn open(iface: &Interface, queue: u32, umem: Umem, cfg: SocketConfig) -> Result<Socket> {
        cfg.validate()?;
        umem.check_fork()?;
        let count = iface.queue_count()?;
        if queue >= count {
            return Err(Error::QueueOutOfRange { ifname: iface.name().into(), queue, count });
        }
        let fd = xsk::socket()?;
        umem.bind()?;
        // From here on, dropping `bound` closes the fd and gives the UMEM back.
        let bound = Arc::new(BoundFd { fd: Some(fd), umem: umem.clone() });
        let fd = bound.fd.as_ref().expect("fd set above");
        if let Some(busy_poll) = &cfg.busy_poll {
            busy_poll.apply(fd)?;
        }

        let ucfg = umem.config();
        let reg = sys::XdpUmemReg {
            addr: umem.as_ptr() as u64,
            len: umem.len() as u64,
            chunk_size: ucfg.frame_size,
            headroom: ucfg.headroom,
            flags: 0,
            tx_metadata_len: 0,
        };
        xsk::umem_reg(fd, &reg)?;
        xsk::set_fill_ring_size(fd, cfg.fill_size)?;
        xsk::set_completion_ring_size(fd, cfg.comp_size)?;
        if cfg.rx_size > 0 {
            xsk::set_rx_ring_size(fd, cfg.rx_size)?;
        }
        if cfg.tx_size > 0 {
            xsk::set_tx_ring_size(fd, cfg.tx_size)?;
        }
        let off = xsk::mmap_offsets(fd)?;
        let fill = FillRing::new(map_ring(
            fd,
            &off.fr,
            cfg.fill_size,
            sys::XDP_UMEM_PGOFF_FILL_RING,
            "mmap(fill ring)",
        )?);
        let comp = CompletionRing::new(map_ring(
            fd,
            &off.cr,
            cfg.comp_size,
            sys::XDP_UMEM_PGOFF_COMPLETION_RING,
            "mmap(completion ring)",
        )?);
        let rx = match cfg.rx_size {
            0 => None,
            n => Some(RxRing::new(map_ring(
                fd,
                &off.rx,
                n,
                sys::XDP_PGOFF_RX_RING,
                "mmap(rx ring)",
            )?)),
        };
        let tx = match cfg.tx_size {
            0 => None,
            n => Some(TxRing::new(map_ring(
                fd,
                &off.tx,
                n,
                sys::XDP_PGOFF_TX_RING,
                "mmap(tx ring)",
            )?)),
        };
        // Leave half the frames for transmission when the socket does both.
        let frames = ucfg.frame_count;
        let fill_target = if rx.is_none() {
            0
        } else if tx.is_none() {
            cfg.fill_size.min(frames)
        } else {
            cfg.fill_size.min(frames.div_ceil(2))
        };
        let mut sock = Socket {
            fill,
            comp,
            rx,
            tx,
            bound: bound.clone(),
            umem: umem.clone(),
            iface: iface.clone(),
            queue,
            guard: ForkGuard::new(),
            zerocopy: false,
            cfg,
            fill_target,
            counters: Counters::default(),
            scratch_addr: Vec::new(),
        };
        // Frames go on the fill ring before bind: zero-copy drivers expect them there.
        if cfg.autofill {
            sock.top_up_fill()?;
        }
        let mut flags = 0;
        if cfg.need_wakeup {
            flags |= sys::XDP_USE_NEED_WAKEUP;
        }
        match cfg.zerocopy {
            Some(true) => flags |= sys::XDP_ZEROCOPY,
            Some(false) => flags |= sys::XDP_COPY,
            None => {}
        }
        let addr = SockaddrXdp {
            sxdp_family: sys::AF_XDP as u16,
            sxdp_flags: flags,
            sxdp_ifindex: iface.index(),
            sxdp_queue_id: queue,
            sxdp_shared_umem_fd: 0,
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
        let opts = xsk::options(fd)?;
        sock.zerocopy = opts.flags & sys::XDP_OPTIONS_ZEROCOPY != 0;
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

    /// How many frames `autofill` keeps on the fill ring (kernel-held receive frames).
    pub fn fill_target(&self) -> u32 {
        self.fill_target
    }

    /// Hands up to `max` free frames to the kernel through the fill ring; returns how many.
    pub fn fill(&mut self, max: u32) -> Result<u32> {
        self.fill_with(|_| max)
    }

    /// Tops the fill ring up to the fill target (what `autofill` does).
    pub fn top_up_fill(&mut self) -> Result<u32> {
        let target = self.fill_target;
        self.fill_with(|table| fill_deficit(target, table))
    }

    /// Puts `want(table)` free frames (at most) on the fill ring, deciding and taking them under
    /// one lock of the frame table.
    fn fill_with(&mut self, want: impl FnOnce(&FrameTable) -> u32) -> Result<u32> {
        self.check_fork()?;
        let shift = self.umem.frame_shift();
        let got = {
            let mut table = self.umem.frames();
            let want = want(&table);
            fill_locked(&mut self.fill, &mut table, want, shift, &mut self.scratch_addr)
        };
        self.filled(got);
        Ok(got)
    }

    /// Counts `got` frames just put on the fill ring and wakes the kernel if it asked.
    fn filled(&mut self, got: u32) {
        if got == 0 {
            return;
        }
        self.counters.filled += u64::from(got);
        if self.fill.needs_wakeup() {
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
        let shift = self.umem.frame_shift();
        let (frames, n, unexpected, filled) = {
            let mut table = self.umem.frames();
            let ready = rx.available(max).min(max);
            let frames = if ready == 0 { Vec::new() } else { table.desc_vec(ready as usize) };
            let mut sink = Received { table: &mut table, shift, frames, unexpected: 0 };
            let n = rx.peek(ready, &mut sink);
            let Received { frames, unexpected, .. } = sink;
            let filled = if self.cfg.autofill {
                let want = fill_deficit(self.fill_target, &table);
                fill_locked(&mut self.fill, &mut table, want, shift, &mut self.scratch_addr)
            } else {
                0
            };
            (frames, n, unexpected, filled)
        };
        rx.release(n);
        self.counters.unexpected += u64::from(unexpected);
        self.counters.received += frames.len() as u64;
        self.filled(filled);
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
        {
            let mut table = self.umem.frames();
            for (i, d) in batch.descs()[..n as usize].iter().enumerate() {
                table.transition(d.index, FrameState::User, FrameState::Tx, fs)?;
                let desc = XdpDesc {
                    addr: self.umem.addr_of(d.index) + u64::from(d.offset),
                    len: d.len,
                    options: 0,
                };
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
        let shift = self.umem.frame_shift();
        let (n, done) = {
            let mut table = self.umem.frames();
            let mut sink = Completed { table: &mut table, shift, done: 0 };
            let n = self.comp.peek(max, &mut sink);
            let done = sink.done;
            table.completed(done);
            (n, done)
        };
        self.comp.release(n);
        self.counters.unexpected += u64::from(n - done);
        self.counters.completed += u64::from(done);
        Ok(done)
    }

    /// Frames sent but not completed yet (the library's own count: no ring is read).
    pub fn in_flight(&self) -> u32 {
        self.umem.frames().count(FrameState::Tx)
    }

    /// Kernel statistics (`XDP_STATISTICS`) and the library's counters.
    pub fn stats(&self) -> Result<Stats> {
        self.check_fork()?;
        let fd = self.bound.fd.as_ref().ok_or(Error::Closed { what: "Socket" })?;
        let kernel = xsk::statistics(fd)?;
        Ok(Stats { kernel, counters: self.counters })
    }
}

/// How many frames the fill ring lacks to reach `target` (what `autofill` tops up).
fn fill_deficit(target: u32, table: &FrameTable) -> u32 {
    target.saturating_sub(table.count(FrameState::Fill))
}

/// Moves up to `want` free frames onto the fill ring under the caller's lock of the frame
/// table; returns how many.
fn fill_locked(
    fill: &mut FillRing,
    table: &mut FrameTable,
    want: u32,
    shift: u32,
    scratch: &mut Vec<u64>,
) -> u32 {
    let want = want.min(table.count(FrameState::Free));
    if want == 0 {
        return 0;
    }
    let n = fill.reserve(want);
    scratch.clear();
    let got = table.take_free_for_fill(n, shift, scratch);
    fill.write_slice(scratch);
    fill.submit(got);
    got
}

/// Where [`Socket::recv`] peeks rx descriptors to: each one's frame moves `Fill` → `User` and
/// joins the batch, with no intermediate copy of the descriptors.
struct Received<'a> {
    table: &'a mut FrameTable,
    shift: u32,
    frames: Vec<FrameDesc>,
    unexpected: u32,
}

impl Extend<XdpDesc> for Received<'_> {
    #[inline]
    fn extend<I: IntoIterator<Item = XdpDesc>>(&mut self, descs: I) {
        // An address we never filled is refused (counted), rather than handing out a frame
        // someone else owns.
        self.unexpected +=
            self.table.take_received(descs.into_iter(), self.shift, &mut self.frames);
    }
}

/// Where [`Socket::complete`] peeks completion addresses to: each one's frame moves `Tx` →
/// `Free`; anything else is left alone (and counted as unexpected by the caller).
struct Completed<'a> {
    table: &'a mut FrameTable,
    shift: u32,
    done: u32,
}

impl Extend<u64> for Completed<'_> {
    #[inline]
    fn extend<I: IntoIterator<Item = u64>>(&mut self, addrs: I) {
        for addr in addrs {
            self.done += u32::from(self.table.take_completed(addr >> self.shift));
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
