//! The UMEM: one page-aligned region cut into equal frames, and the bookkeeping that says where
//! every frame is.
//!
//! # The ownership model
//!
//! Every frame is in exactly one [`FrameState`] at a time:
//!
//! ```text
//! Free ──fill──▶ Fill ──(kernel: rx ring)──▶ User ──send──▶ Tx ──(completion ring)──▶ Free
//!   ▲             ▲                           │ │ ▲
//!   │             └───────── drop (1) ────────┘ │ └── alloc ── Free
//!   └────────────── release / drop ─────────────┘
//! ```
//!
//! (1) Of a batch received on a socket with `autofill`, as far as its fill ring lacks frames.
//!
//! The table is the single authority: a frame moves only through its methods (crate-only),
//! which refuse any move from the wrong state. So a frame can never be on the fill ring and the
//! tx ring at once (the double-submit bug of asavie/xdp#24), a received frame can never be filled
//! while the user still holds it, and an address the kernel returns that we did not hand out is
//! caught instead of corrupting the pool.
//!
//! A [`Batch`] owns its frames exclusively (they are `User` and listed only in it). Dropping a
//! batch returns the frames it still owns to the free pool, so nothing leaks; a batch received
//! on a socket with `autofill` that is still open puts them straight back on its fill ring
//! instead, as far as the ring lacks frames (one pass over the table instead of two, and no
//! trip through the free pool).
//!
//! A frame lent by [`crate::socket::Socket::recv_with`] never leaves `Fill`: the kernel took it
//! off the fill ring, the call reads it in place (read-only, for the length of the call) and
//! puts it back on the same ring, so the table is only read, to check what the kernel handed
//! back (see [`crate::socket::RxView`]).
//!
//! # Chunk modes and memory
//!
//! Frames are always `frame_size` bytes laid end to end, and only those are handed out. In
//! aligned mode (the default) `frame_size` is a power of two; in unaligned mode
//! ([`UmemConfig::unaligned`]) it is any size the kernel registers, and ring addresses carry
//! their offset in the top 16 bits ([`crate::addr`] decodes both). In both modes a frame is at
//! most a page: `xdp_umem_reg` refuses larger chunks (patches to allow them on huge pages were
//! posted but are not in 6.18, which answers EINVAL even for a UMEM on huge pages). The region
//! is normal pages or 2 MiB huge pages ([`HugePages`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use crate::addr::Addressing;
use crate::error::{Error, Result};
use crate::socket::QueuePool;
use crate::sys::{self, ForkGuard, Mmap};

mod batch;
mod config;
mod runs;
mod table;
#[cfg(test)]
mod tests;

pub use batch::{Batch, FrameDesc};
pub use config::{HugePages, UmemConfig};
pub use table::{FrameState, FrameTable, PoolId};

pub(crate) struct UmemShared {
    region: Mmap,
    /// Whether `region` is on huge pages (what [`HugePages::IfAvailable`] found).
    huge: bool,
    addressing: Addressing,
    cfg: UmemConfig,
    frames: Mutex<FrameTable>,
    /// The fill/completion ring pairs of the sockets using the UMEM, at their [`PoolId`]. A
    /// slot is taken when a pair is made and freed by the pair's drop, after its frames went
    /// back to the pool, so an id is never reused while frames still carry it.
    pools: Mutex<Vec<Option<Weak<QueuePool>>>>,
    /// Held while a socket is opened on the UMEM: the choice between registering the UMEM,
    /// making a new ring pair and sharing one must not race with another open.
    opening: Mutex<()>,
    /// The process the region was mapped in (see [`crate::sys::fork`]).
    guard: ForkGuard,
    /// An XDP program that may write receive metadata sends packets here: clear the metadata
    /// magic of every frame put on a fill ring ([`crate::rxmeta`]).
    rx_meta: AtomicBool,
}

/// A UMEM region and its frame table; cheap to clone (shared ownership). The memory stays
/// mapped until the last clone, socket and batch referring to it is gone.
#[derive(Clone)]
pub struct Umem {
    shared: Arc<UmemShared>,
}

impl std::fmt::Debug for Umem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Umem").field("config", &self.shared.cfg).finish()
    }
}

/// Maps the region of `cfg` on the pages it asks for; returns it and whether it is on huge
/// pages.
fn map_region(cfg: &UmemConfig) -> Result<(Mmap, bool)> {
    let len = cfg.len();
    let huge = || {
        Mmap::anonymous_huge(len).map_err(|e| match e.errno() {
            Some(sys::errno::ENOMEM) => no_huge_pages(len),
            _ => e,
        })
    };
    match cfg.hugepages {
        HugePages::No => Ok((Mmap::anonymous(len)?, false)),
        HugePages::IfAvailable => match huge() {
            Ok(region) => Ok((region, true)),
            // Any failure (none free, no hugetlb in the kernel): normal pages, as asked.
            Err(_) => Ok((Mmap::anonymous(len)?, false)),
        },
        HugePages::Yes => Ok((huge()?, true)),
    }
}

/// [`Error::NoHugePages`] for a region of `len` bytes, with the counts the kernel has now.
fn no_huge_pages(len: usize) -> Error {
    let needed = (sys::huge_page_round_up(len) / sys::HUGE_PAGE_SIZE) as u64;
    let (reserved, free) = sys::huge_pages().unwrap_or((0, 0));
    Error::NoHugePages { needed, reserved, free }
}

impl Umem {
    /// Maps a new zeroed region for `cfg` (validated first).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming a value the kernel would refuse;
    /// [`Error::NoHugePages`] when `cfg.hugepages` asks for huge pages and too few are free.
    pub fn new(cfg: UmemConfig) -> Result<Umem> {
        cfg.validate()?;
        let (region, huge) = map_region(&cfg)?;
        let mut frames = FrameTable::new(cfg.frame_count);
        if cfg.tx_metadata {
            frames.track_tx_stamps();
        }
        Ok(Umem {
            shared: Arc::new(UmemShared {
                region,
                huge,
                addressing: cfg.addressing(),
                cfg,
                frames: Mutex::new(frames),
                pools: Mutex::new(Vec::new()),
                opening: Mutex::new(()),
                guard: ForkGuard::new(),
                rx_meta: AtomicBool::new(false),
            }),
        })
    }

    /// [`Error::ForkedChild`] in a process forked after the UMEM was made: the kernel keeps
    /// the parent's pages, and the child's copy of the region reads as zeros
    /// (`MADV_WIPEONFORK`), so every use of its frames refuses there.
    pub fn check_fork(&self) -> Result<()> {
        self.shared.guard.check("Umem")
    }

    /// The geometry.
    pub fn config(&self) -> &UmemConfig {
        &self.shared.cfg
    }

    /// Start of the region. Writing through it is the caller's responsibility: frames may be
    /// owned by the kernel.
    pub fn as_ptr(&self) -> *mut u8 {
        self.shared.region.as_ptr()
    }

    /// Length of the region in bytes: `frame_count * frame_size` (a huge-page mapping goes on
    /// to the end of its last huge page, unused).
    pub fn len(&self) -> usize {
        self.shared.cfg.len()
    }

    /// Whether the region is empty (never).
    pub fn is_empty(&self) -> bool {
        self.shared.cfg.is_empty()
    }

    /// Whether the region is on huge pages.
    pub fn hugepages(&self) -> bool {
        self.shared.huge
    }

    /// Whether the UMEM is in unaligned chunk mode.
    pub fn unaligned(&self) -> bool {
        self.shared.cfg.unaligned
    }

    /// Locks the frame table.
    pub fn frames(&self) -> MutexGuard<'_, FrameTable> {
        // A panic while holding the lock leaves the table consistent (every update is one
        // assignment per frame), so a poisoned lock is still usable.
        self.shared.frames.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Number of frames in the free pool.
    pub fn free_frames(&self) -> u32 {
        self.frames().count(FrameState::Free)
    }

    /// Serialises socket opens on this UMEM (see [`UmemShared::opening`]).
    pub(crate) fn opening(&self) -> MutexGuard<'_, ()> {
        self.shared.opening.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn pools(&self) -> MutexGuard<'_, Vec<Option<Weak<QueuePool>>>> {
        self.shared.pools.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The live ring pairs of the UMEM.
    pub(crate) fn live_pools(&self) -> Vec<Arc<QueuePool>> {
        self.pools().iter().flatten().filter_map(Weak::upgrade).collect()
    }

    /// Takes a free [`PoolId`] for a new ring pair, which `make` builds (under the registry's
    /// lock, so it must not fail or drop a pair); the slot then holds it.
    pub(crate) fn add_pool(
        &self,
        make: impl FnOnce(PoolId) -> Arc<QueuePool>,
    ) -> Result<Arc<QueuePool>> {
        let mut pools = self.pools();
        let id = match pools.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                pools.push(None);
                pools.len() - 1
            }
        };
        let id = PoolId::try_from(id).map_err(|_| Error::InvalidArgument {
            name: "socket",
            value: format!("number {}", id + 1),
            why: format!("a Umem serves at most {} (interface, queue) pairs", PoolId::MAX),
        })?;
        let pool = make(id);
        pools[usize::from(id)] = Some(Arc::downgrade(&pool));
        Ok(pool)
    }

    /// Called by a ring pair's drop, once no socket uses it: the frames on its fill ring or in
    /// transmission through it return to the free pool, and only then is its id free again.
    pub(crate) fn remove_pool(&self, id: PoolId) {
        self.frames().reclaim_pool(id);
        if let Some(slot) = self.pools().get_mut(usize::from(id)) {
            *slot = None;
        }
    }

    /// Whether a socket uses the UMEM.
    pub fn is_bound(&self) -> bool {
        self.pools().iter().flatten().any(|w| w.strong_count() > 0)
    }

    /// Whether `self` and `other` are the same region.
    pub fn same(&self, other: &Umem) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// How ring addresses name frames: aligned, frame indexes and addresses convert by
    /// shifting; unaligned, by a multiply (`crate::addr`). This runs for every frame received,
    /// filled and completed, and a 64-bit `div` was a fifth of `recv`'s time.
    pub fn addressing(&self) -> Addressing {
        self.shared.addressing
    }

    /// Notes that an XDP program which may write receive metadata (the built-in one with
    /// timestamps, or any custom one) delivers into this UMEM: from now on, every frame put on
    /// a fill ring first has its metadata magic cleared, so a packet received without metadata
    /// never shows an earlier packet's ([`crate::rxmeta`]). One 4-byte store per filled frame;
    /// never undone.
    pub fn expect_rx_meta(&self) {
        self.shared.rx_meta.store(true, Ordering::Relaxed);
    }

    /// Whether [`expect_rx_meta`](Self::expect_rx_meta) was called.
    pub fn rx_meta_expected(&self) -> bool {
        self.shared.rx_meta.load(Ordering::Relaxed)
    }

    /// The byte offset of the start of frame `index` in the region (also its fill ring
    /// address, in both chunk modes).
    pub fn addr_of(&self, index: u32) -> u64 {
        self.shared.addressing.frame_start(index)
    }

    /// Takes up to `n` free frames into a batch for the user to write and send.
    pub fn alloc(&self, n: usize) -> Batch {
        // No more than there are frames, whatever `n` the caller asked for.
        let n = n.min(self.shared.cfg.frame_count as usize);
        let mut indices = Vec::with_capacity(n);
        self.frames().take_free(n, FrameState::User, &mut indices);
        let offset = self.shared.cfg.tx_offset();
        Batch::from_owned(
            self.clone(),
            indices
                .into_iter()
                .map(|index| FrameDesc { index, offset, len: 0, options: 0 })
                .collect(),
        )
    }
}
