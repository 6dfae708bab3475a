//! The socket's fd and the fill and completion rings of its (interface, queue), which every
//! socket of the UMEM bound there shares (the kernel's `XDP_SHARED_UMEM` rule).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

#[cfg(doc)]
use super::BusyPoll;
use crate::addr::Addressing;
use crate::error::Result;
use crate::ring::{CompletionRing, FillRing, RingMemory};
use crate::sys::{Mmap, NotInChild, XdpRingOffset, xsk};
use crate::umem::{FrameDesc, FrameState, FrameTable, PoolId, Umem};

/// The socket fd plus the ring pair it uses. When the last reference goes (the socket, or a
/// poll still running on another thread), the fd is closed first and only then is the pair let
/// go of (and with the last socket of its (interface, queue), the frames the kernel held
/// return to the pool).
pub(super) struct BoundFd {
    /// So a forked child holds no reference to the socket (dropped before the fd closes).
    pub(super) not_in_child: Option<NotInChild>,
    pub(super) fd: Option<OwnedFd>,
    /// Set after bind: the mode every socket sharing the UMEM inherits.
    pub(super) mode: OnceLock<BindMode>,
    pub(super) _pool: Arc<QueuePool>,
}

/// What a sharing socket inherits from the UMEM's first socket (the kernel refuses these bind
/// flags on a sharing socket and copies them from the UMEM's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct BindMode {
    pub(super) need_wakeup: bool,
    pub(super) zerocopy: bool,
    pub(super) multi_buffer: bool,
}

impl BoundFd {
    pub(super) fn raw(&self) -> RawFd {
        self.fd.as_ref().map_or(-1, |fd| fd.as_raw_fd())
    }
}

impl Drop for BoundFd {
    fn drop(&mut self) {
        // Explicit: unregistered before the fd closes (its number may be reused at once), and
        // the fd closes before the pair (a field) can go.
        drop(self.not_in_child.take());
        drop(self.fd.take());
    }
}

/// A handle for waiting on the socket without holding it (poll with the GIL released).
#[derive(Clone)]
pub struct PollHandle(pub(super) Arc<BoundFd>);

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
    pub(super) netns: (u64, u64),
    pub(super) ifindex: u32,
    pub(super) queue: u32,
}

/// One ring mapped from a socket fd, kept so the ring's cursor can be rebuilt on it.
pub(super) struct RingMap {
    pub(super) map: Arc<Mmap>,
    pub(super) off: XdpRingOffset,
    pub(super) size: u32,
}

impl RingMap {
    /// Maps the ring at `pgoff` of `size` entries of `T`.
    pub(super) fn new<T>(
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
    pub(super) fn memory<T: Copy>(&self) -> RingMemory<T> {
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
pub(super) struct PoolMember {
    pub(super) id: u64,
    pub(super) fd: Weak<BoundFd>,
    pub(super) fill: RingMap,
    pub(super) comp: RingMap,
}

/// The cursors of a pair's fill and completion rings, running on the mapping of its first
/// member; every member maps the same rings (the kernel hands a sharing socket its pair's rings
/// on mmap), so when that member closes the cursors move to the next one's mapping and its
/// fd can really close (a mapping keeps its socket alive).
pub(super) struct PairRings {
    /// The pair's id (its frames carry it in the frame table).
    pub(super) pool: PoolId,
    pub(super) fill: Option<FillRing>,
    pub(super) comp: Option<CompletionRing>,
    pub(super) members: Vec<PoolMember>,
    /// How many frames autofill keeps on the fill ring: the largest target of its members.
    pub(super) fill_target: u32,
}

/// The fill and completion rings of one (interface, queue) of a UMEM, shared by every socket
/// of the UMEM bound there (the kernel's `XDP_SHARED_UMEM` rule), under one lock: rings are
/// single-producer/single-consumer.
pub(crate) struct QueuePool {
    pub(super) id: PoolId,
    pub(super) key: QueueKey,
    pub(super) umem: Umem,
    pub(super) rings: Mutex<PairRings>,
    /// Whether the fill ring held its target at the end of the last receive of any member.
    /// Only a receive takes frames off the fill ring's count (and, with autofill, tops it up
    /// under the same lock; either way it sets this), so while it is true a `recv` that finds
    /// its rx ring empty has nothing to top up and skips both locks. Cleared whenever the
    /// target or the members change.
    pub(super) topped_up: AtomicBool,
}

impl QueuePool {
    /// Pair `id` of `umem` at `key`, with `fill` as its fill ring's cursors if already mapped
    /// (else the first member's mapping provides them, [`join`](Self::join)) and `fill_target`
    /// frames to keep there.
    pub(super) fn new(
        id: PoolId,
        key: QueueKey,
        umem: &Umem,
        fill: Option<FillRing>,
        fill_target: u32,
    ) -> QueuePool {
        QueuePool {
            id,
            key,
            umem: umem.clone(),
            rings: Mutex::new(PairRings {
                pool: id,
                fill,
                comp: None,
                members: Vec::new(),
                fill_target,
            }),
            topped_up: AtomicBool::new(false),
        }
    }

    pub(super) fn rings(&self) -> MutexGuard<'_, PairRings> {
        self.rings.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The sizes of the pair's fill and completion rings.
    pub(super) fn sizes(&self) -> (u32, u32) {
        self.rings().members.first().map_or((0, 0), |m| (m.fill.size, m.comp.size))
    }

    /// A live member's fd, held open while the caller binds a sharing socket with it.
    pub(super) fn member_fd(&self) -> Option<Arc<BoundFd>> {
        self.rings().members.iter().find_map(|m| m.fd.upgrade())
    }

    /// Adds a member with its mapping of the rings; the first one's mapping runs the cursors.
    pub(super) fn join(&self, member: PoolMember, fill_target: u32) {
        let mut rings = self.rings();
        if rings.fill.is_none() {
            rings.fill = Some(FillRing::new(member.fill.memory()));
            rings.comp = Some(CompletionRing::new(member.comp.memory()));
        }
        // A sharing socket's own `fill_size` is ignored (it maps the pair's ring), so its
        // target is cut to the ring: a target above it could never be reached.
        let ring = rings.fill.as_ref().map_or(u32::MAX, FillRing::size);
        rings.fill_target = rings.fill_target.max(fill_target.min(ring));
        rings.members.push(member);
        self.topped_up.store(false, Ordering::Release);
    }

    /// Removes member `id` (its socket is closing): when the cursors ran on its mapping, they
    /// are dropped and rebuilt on the next member's, from the indices in memory (no
    /// reservation is ever left open across the lock).
    ///
    /// In a forked child it does nothing: the rings are the parent's (the child has no
    /// mapping of them, `MADV_DONTFORK`, so rebuilding the cursors on the next member's would
    /// read unmapped memory), and the lock may have been copied held.
    pub(super) fn leave(&self, id: u64) {
        if self.umem.check_fork().is_err() {
            return;
        }
        let mut rings = self.rings();
        self.topped_up.store(false, Ordering::Release);
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
        // Not in a forked child: its copy of the table is never used again, and its lock may
        // have been copied held by a thread the child does not have.
        if self.umem.check_fork().is_ok() {
            self.umem.remove_pool(self.id);
        }
    }
}

/// How many frames the pair's fill ring lacks to reach its target (what `autofill` tops up).
pub(super) fn fill_deficit(rings: &PairRings, table: &FrameTable) -> u32 {
    rings.fill_target.saturating_sub(table.fill_count(rings_pool(rings)))
}

/// The pair id of `rings` (stored with its members' frames).
pub(super) fn rings_pool(rings: &PairRings) -> PoolId {
    rings.pool
}

/// Moves up to `want` free frames onto the fill ring of pair `pool` under the caller's locks
/// of its rings and of the frame table; returns how many.
pub(super) fn fill_locked(
    rings: &mut PairRings,
    table: &mut FrameTable,
    umem: &Umem,
    pool: PoolId,
    want: u32,
    addressing: Addressing,
) -> u32 {
    let want = want.min(table.count(FrameState::Free));
    let PairRings { fill: Some(fill), .. } = rings else { return 0 };
    if want == 0 {
        return 0;
    }
    // Straight into the ring's slots: `want` frames are free, so every reserved slot is written.
    let n = fill.reserve(want);
    let mut got = 0;
    for slots in fill.reserved_slices() {
        let took = table.take_free_for_fill(pool, addressing, slots);
        // Before the kernel sees them: no stale receive metadata in the frames.
        umem.clear_rx_meta(&slots[..took as usize]);
        got += took;
    }
    debug_assert_eq!(got, n);
    fill.submit(got);
    got
}

/// How a socket with `autofill` gets the frames of its received batches back: a batch it
/// handed out holds a weak reference to this, and when let go of puts its frames straight
/// onto the pair's fill ring (up to the fill target; the rest go to the free pool) instead of
/// into the free pool for the next receive to take out again. Gone with the socket: a batch
/// that outlives it returns its frames to the free pool.
pub(crate) struct Refill {
    pool: Arc<QueuePool>,
    /// Frames put on the fill ring this way (the socket counts them as `filled`).
    filled: AtomicU64,
    /// How many of those puts left the fill ring asking for a wakeup.
    wakeups: AtomicU64,
}

impl Refill {
    pub(super) fn new(pool: Arc<QueuePool>) -> Refill {
        Refill { pool, filled: AtomicU64::new(0), wakeups: AtomicU64::new(0) }
    }

    /// Frames put on the fill ring by batches let go of.
    pub(super) fn filled(&self) -> u64 {
        self.filled.load(Ordering::Relaxed)
    }

    /// Puts that left the fill ring asking for a wakeup.
    pub(super) fn wakeups(&self) -> u64 {
        self.wakeups.load(Ordering::Relaxed)
    }

    /// Takes back the frames of a received batch (all `User`) that is let go of, under one lock
    /// of the pair's rings and of the frame table: as many as the fill ring lacks of its target
    /// go onto it (`User` → `Fill`), the rest to the free pool; the emptied vector is kept for
    /// the next receive. When the fill ring asks for a wakeup, one of the pair's sockets makes
    /// it (after the locks).
    pub(crate) fn put_back(&self, frames: Vec<FrameDesc>) {
        let umem = &self.pool.umem;
        let addressing = umem.addressing();
        let pool = self.pool.id;
        let (got, wake) = {
            let mut rings = self.pool.rings();
            let mut table = umem.frames();
            let want = fill_deficit(&rings, &table).min(frames.len() as u32);
            let (mut used, mut got) = (0, 0);
            if let PairRings { fill: Some(fill), .. } = &mut *rings
                && want != 0
            {
                let _ = fill.reserve(want);
                for slots in fill.reserved_slices() {
                    let (u, wrote) =
                        table.refill_from_users(&frames[used..], pool, addressing, slots);
                    // Before the kernel sees them: no stale receive metadata in the frames.
                    umem.clear_rx_meta(&slots[..wrote as usize]);
                    used += u;
                    got += wrote;
                    if (wrote as usize) < slots.len() {
                        break; // `frames` ran out: nothing more to write.
                    }
                }
                fill.submit(got);
            }
            table.release_users(&frames[used..]);
            table.keep_vec(frames);
            self.pool.topped_up.store(fill_deficit(&rings, &table) == 0, Ordering::Release);
            let wake = got != 0 && rings.fill.as_ref().is_some_and(FillRing::needs_wakeup);
            (got, wake.then(|| rings.members.iter().find_map(|m| m.fd.upgrade())))
        };
        self.filled.fetch_add(u64::from(got), Ordering::Relaxed);
        if let Some(member) = wake {
            self.wakeups.fetch_add(1, Ordering::Relaxed);
            if let Some(fd) = member {
                // Errors only mean "try again later"; the frames are on the ring either way.
                let _ = xsk::wakeup_rx(fd.raw());
            }
        }
    }
}
