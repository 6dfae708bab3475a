//! The UMEM: one page-aligned region cut into equal frames, and the bookkeeping that says where
//! every frame is.
//!
//! # The ownership model
//!
//! Every frame is in exactly one [`FrameState`] at a time:
//!
//! ```text
//! Free ──fill──▶ Fill ──(kernel: rx ring)──▶ User ──send──▶ Tx ──(completion ring)──▶ Free
//!   ▲                                         │  ▲                                         
//!   └──────────────── release / drop ─────────┘  └── alloc ── Free
//! ```
//!
//! The table is the single authority: a frame moves only through [`FrameTable::transition`],
//! which refuses any move from the wrong state. So a frame can never be on the fill ring and the
//! tx ring at once (the double-submit bug of asavie/xdp#24), a received frame can never be filled
//! while the user still holds it, and an address the kernel returns that we did not hand out is
//! caught instead of corrupting the pool.
//!
//! A [`Batch`] owns its frames exclusively (they are `User` and listed only in it). Dropping a
//! batch returns the frames it still owns to the free pool, so nothing leaks.
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
use crate::sys::{
    self, ForkGuard, Mmap, XDP_PACKET_HEADROOM, XDP_PKT_CONTD, XDP_TX_METADATA,
    XDP_UMEM_MIN_CHUNK_SIZE, XdpDesc,
};
use crate::txmeta::TX_META_LEN;

/// Bytes the kernel keeps at the end of a chunk for `struct skb_shared_info` (aligned) in copy
/// mode, and the extra margin 6.18.y requires: the largest accepted headroom is
/// `frame_size - XDP_PACKET_HEADROOM - SKB_SHARED_INFO - 128` (kernel a315e022a72d).
const SKB_SHARED_INFO: u32 = 320;
const HEADROOM_MARGIN: u32 = 128;

/// Whether a UMEM's region is mapped from huge pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HugePages {
    /// Normal pages.
    #[default]
    No,
    /// 2 MiB huge pages, or [`Error::NoHugePages`] when too few are free.
    Yes,
    /// Huge pages when enough are free, else normal pages.
    IfAvailable,
}

/// Geometry and memory of a UMEM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UmemConfig {
    /// Number of frames.
    pub frame_count: u32,
    /// Bytes per frame: from 2048 to the page size; a power of two unless `unaligned`.
    pub frame_size: u32,
    /// Bytes reserved at the start of every frame for the user (before packet data).
    pub headroom: u32,
    /// Unaligned chunk mode (`XDP_UMEM_UNALIGNED_CHUNK_FLAG`): any frame size.
    pub unaligned: bool,
    /// Where the region's memory comes from.
    pub hugepages: HugePages,
    /// Registers the UMEM with [`TX_META_LEN`] bytes of tx metadata
    /// (`XDP_UMEM_TX_METADATA_LEN`): every tx descriptor then has room for a request
    /// (checksum offload, completion timestamp, launch time) right before its packet, and
    /// allocated frames start their packet after that room ([`UmemConfig::tx_offset`]).
    pub tx_metadata: bool,
    /// With `tx_metadata`: copy mode computes a requested checksum in software
    /// (`XDP_UMEM_TX_SW_CSUM`) instead of leaving it partial for the device.
    pub tx_sw_csum: bool,
}

impl Default for UmemConfig {
    fn default() -> Self {
        UmemConfig {
            frame_count: 4096,
            frame_size: 4096,
            headroom: 0,
            unaligned: false,
            hugepages: HugePages::No,
            tx_metadata: false,
            tx_sw_csum: false,
        }
    }
}

impl UmemConfig {
    /// Checks the geometry against what the kernel accepts (`xdp_umem_reg`).
    pub fn validate(&self) -> Result<()> {
        let max = sys::page_size() as u32;
        let min = XDP_UMEM_MIN_CHUNK_SIZE;
        let fs = self.frame_size;
        let bad_size =
            |why: String| Error::InvalidArgument { name: "frame_size", value: fs.to_string(), why };
        if fs < min || fs > max {
            let mode = if self.unaligned { "" } else { "a power of two " };
            return Err(bad_size(format!(
                "must be {mode}from {min} to the page size ({max}), in either chunk mode and on \
                 huge pages too"
            )));
        }
        if !self.unaligned && !fs.is_power_of_two() {
            return Err(bad_size(format!(
                "must be a power of two ({min} or {max}) in aligned mode; unaligned mode \
                 (unaligned=True) allows any size from {min} to {max}"
            )));
        }
        if self.frame_count == 0 || self.frame_count > (1 << 24) {
            return Err(Error::InvalidArgument {
                name: "frame_count",
                value: self.frame_count.to_string(),
                why: "must be from 1 to 16777216".into(),
            });
        }
        if self.tx_sw_csum && !self.tx_metadata {
            return Err(Error::InvalidArgument {
                name: "tx_sw_csum",
                value: "True".into(),
                why: "software checksums are a tx metadata request: it needs tx_metadata=True"
                    .into(),
            });
        }
        let max_headroom = self.max_headroom();
        if self.headroom > max_headroom {
            return Err(Error::InvalidArgument {
                name: "headroom",
                value: self.headroom.to_string(),
                why: format!(
                    "at most {max_headroom} for {}-byte frames (the kernel keeps {XDP_PACKET_HEADROOM} bytes of XDP headroom and {} at the end)",
                    self.frame_size,
                    SKB_SHARED_INFO + HEADROOM_MARGIN
                ),
            });
        }
        Ok(())
    }

    /// The largest headroom the kernel accepts for this frame size.
    pub fn max_headroom(&self) -> u32 {
        self.frame_size.saturating_sub(XDP_PACKET_HEADROOM + SKB_SHARED_INFO + HEADROOM_MARGIN)
    }

    /// How ring addresses name the frames of this geometry.
    pub fn addressing(&self) -> Addressing {
        Addressing::new(self.frame_size, self.unaligned)
    }

    /// Length of the region in bytes (what is registered; a huge-page mapping is rounded up
    /// to whole huge pages beyond it).
    pub fn len(&self) -> usize {
        self.frame_count as usize * self.frame_size as usize
    }

    /// Whether the region is empty (never, for a validated config).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The largest packet the kernel can receive into a frame.
    pub fn rx_capacity(&self) -> u32 {
        self.frame_size - self.headroom - XDP_PACKET_HEADROOM
    }

    /// Where the packet of an allocated (transmit) frame starts: after the headroom, and with
    /// `tx_metadata` after the metadata room too, which starts at the headroom rounded up to 8
    /// bytes (so the kernel's `struct xsk_tx_metadata` is 8-byte aligned in aligned mode).
    pub fn tx_offset(&self) -> u32 {
        if self.tx_metadata {
            self.headroom.next_multiple_of(8) + TX_META_LEN
        } else {
            self.headroom
        }
    }

    /// The largest packet that can be written into a frame for transmission.
    pub fn tx_capacity(&self) -> u32 {
        self.frame_size - self.tx_offset()
    }
}

/// Where a frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameState {
    /// In the free pool.
    Free,
    /// Handed to the kernel through the fill ring (or already on the rx ring).
    Fill,
    /// Owned by a user batch.
    User,
    /// Handed to the kernel through the tx ring, until it comes back on the completion ring.
    Tx,
}

impl FrameState {
    /// Lower-case name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            FrameState::Free => "free",
            FrameState::Fill => "on the fill ring",
            FrameState::User => "held by a batch",
            FrameState::Tx => "queued for transmission",
        }
    }
}

/// A frame's entry in the [`FrameTable`]: its state, and the ring pair it went through (one
/// entry, so checking or moving a frame touches one place).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    state: FrameState,
    /// For a frame in `Fill` or `Tx`: the [`PoolId`] of the fill/completion ring pair it went
    /// through (meaningless in the other states). A received frame must come from the fill
    /// ring of the receiving socket's pair and a completion from the pair's completion ring,
    /// so a frame put on one pair's fill ring is never taken as another pair's.
    owner: PoolId,
}

impl Slot {
    const FREE: Slot = Slot { state: FrameState::Free, owner: 0 };
}

/// The state of every frame, plus the free pool as a stack of frame indices.
#[derive(Debug)]
pub struct FrameTable {
    slots: Vec<Slot>,
    /// Per [`PoolId`]: how many frames are in `Fill` and in `Tx` through that pair.
    pool_counts: Vec<[u32; 2]>,
    free: Vec<u32>,
    counts: [u32; 4],
    /// Emptied descriptor vectors of released batches, reused by the next receive so a batch
    /// costs no allocation in a steady receive loop.
    spare: Vec<Vec<FrameDesc>>,
    /// Per frame, on a UMEM with tx metadata only (empty otherwise): whether the frame was
    /// last sent with a completion timestamp request, so its completion reads the timestamp
    /// ([`crate::txmeta`]). Written for every frame sent, so a reused frame never inherits a
    /// request.
    tx_stamp: Vec<bool>,
}

/// How many emptied batch vectors the frame table keeps for reuse.
const SPARE_VECS: usize = 8;

/// Names one fill/completion ring pair of a UMEM: each distinct (interface, queue) its sockets
/// are bound to has one (the kernel's rule for `XDP_SHARED_UMEM`). Ids are reused once a pair
/// is gone; a [`FrameTable`] used without sockets (tests, [`FrameTable::transition`]) puts
/// everything through pair 0.
pub type PoolId = u16;

/// Index into a pool's counts.
const POOL_FILL: usize = 0;
const POOL_TX: usize = 1;

/// The per-pool count slot of `state`, if it has one (only `Fill` and `Tx` frames belong to a
/// ring pair).
fn pool_slot(state: FrameState) -> Option<usize> {
    match state {
        FrameState::Fill => Some(POOL_FILL),
        FrameState::Tx => Some(POOL_TX),
        FrameState::Free | FrameState::User => None,
    }
}

impl FrameTable {
    fn new(frame_count: u32) -> FrameTable {
        FrameTable {
            slots: vec![Slot::FREE; frame_count as usize],
            pool_counts: Vec::new(),
            // Reversed so frames are handed out in ascending order.
            free: (0..frame_count).rev().collect(),
            counts: [frame_count, 0, 0, 0],
            spare: Vec::new(),
            tx_stamp: Vec::new(),
        }
    }

    /// Starts tracking completion timestamp requests (a UMEM with tx metadata).
    fn track_tx_stamps(&mut self) {
        self.tx_stamp = vec![false; self.slots.len()];
    }

    /// Whether the table tracks completion timestamp requests.
    #[inline]
    pub(crate) fn tracks_tx_stamps(&self) -> bool {
        !self.tx_stamp.is_empty()
    }

    /// Notes whether frame `index`, being sent, asked for a completion timestamp (when
    /// tracking).
    #[inline]
    pub(crate) fn set_tx_stamp(&mut self, index: u32, requested: bool) {
        if let Some(slot) = self.tx_stamp.get_mut(index as usize) {
            *slot = requested;
        }
    }

    /// Whether frame `index`, just completed, asked for a completion timestamp; forgets it.
    #[inline]
    pub(crate) fn take_tx_stamp(&mut self, index: u64) -> bool {
        let i = usize::try_from(index).unwrap_or(usize::MAX);
        self.tx_stamp.get_mut(i).is_some_and(std::mem::take)
    }

    /// Moves frame `index` from `from` to `to`; refuses any other starting state. Frames leave
    /// the free pool only through [`FrameTable::take_free`], so `from` may not be `Free`.
    pub fn transition(
        &mut self,
        index: u32,
        from: FrameState,
        to: FrameState,
        frame_size: u32,
    ) -> Result<()> {
        if from == FrameState::Free {
            return Err(Error::FrameNotOwned {
                index,
                addr: u64::from(index) * u64::from(frame_size),
                state: "free",
            });
        }
        let slot = self.slots.get_mut(index as usize).ok_or_else(|| Error::InvalidArgument {
            name: "frame address",
            value: (u64::from(index) * u64::from(frame_size)).to_string(),
            why: "outside the UMEM".into(),
        })?;
        if slot.state != from {
            return Err(Error::FrameNotOwned {
                index,
                addr: u64::from(index) * u64::from(frame_size),
                state: slot.state.name(),
            });
        }
        let owner = slot.owner;
        slot.state = to;
        let to_pool = pool_slot(to);
        if to_pool.is_some() {
            slot.owner = 0;
        }
        self.counts[from as usize] -= 1;
        self.counts[to as usize] += 1;
        if let Some(k) = pool_slot(from) {
            self.pool(owner)[k] -= 1;
        }
        if let Some(k) = to_pool {
            self.pool(0)[k] += 1;
        }
        if to == FrameState::Free {
            self.free.push(index);
        }
        Ok(())
    }

    /// The counts of ring pair `pool`, created at zero on first use.
    fn pool(&mut self, pool: PoolId) -> &mut [u32; 2] {
        let i = usize::from(pool);
        if self.pool_counts.len() <= i {
            self.pool_counts.resize(i + 1, [0, 0]);
        }
        &mut self.pool_counts[i]
    }

    /// Frames on the fill ring of ring pair `pool` (or on the rx ring of one of its sockets).
    pub fn fill_count(&self, pool: PoolId) -> u32 {
        self.pool_counts.get(usize::from(pool)).map_or(0, |c| c[POOL_FILL])
    }

    /// Frames sent through ring pair `pool` and not completed yet.
    pub fn tx_count(&self, pool: PoolId) -> u32 {
        self.pool_counts.get(usize::from(pool)).map_or(0, |c| c[POOL_TX])
    }

    /// Moves frame `index` from `User` to `Tx` through ring pair `pool` (a socket queued it on
    /// its tx ring; it comes back on that pair's completion ring).
    pub(crate) fn queue_for_tx(&mut self, index: u32, pool: PoolId, frame_size: u32) -> Result<()> {
        self.transition(index, FrameState::User, FrameState::Tx, frame_size)?;
        self.slots[index as usize].owner = pool;
        self.pool(0)[POOL_TX] -= 1;
        self.pool(pool)[POOL_TX] += 1;
        Ok(())
    }

    /// Takes up to `n` frames from the free pool into state `to`.
    pub fn take_free(&mut self, n: usize, to: FrameState, out: &mut Vec<u32>) {
        let n = n.min(self.free.len());
        let start = self.free.len() - n;
        let taken = &self.free[start..];
        // Two tight loops (no `Vec` length stored back per element through the `&mut`).
        out.extend(taken.iter().rev());
        for &index in taken {
            self.slots[index as usize] = Slot { state: to, owner: 0 };
        }
        self.free.truncate(start);
        self.counts[FrameState::Free as usize] -= n as u32;
        self.counts[to as usize] += n as u32;
        if let Some(k) = pool_slot(to) {
            self.pool(0)[k] += n as u32;
        }
    }

    /// Moves every frame of `indices` from `User` to `Free` (a batch let go of them), updating
    /// the counts once. A frame not in `User` is left alone (it would be a bug in this crate);
    /// returns how many moved.
    pub(crate) fn release_users(&mut self, frames: &[FrameDesc]) -> u32 {
        // The loops below write into slices sized beforehand rather than pushing: no growth
        // path inside them, so the compiler keeps everything in registers.
        let slots = &mut self.slots[..];
        let base = self.free.len();
        self.free.resize(base + frames.len(), 0);
        let out = &mut self.free[base..];
        let mut k = 0;
        for d in frames {
            if let Some(slot) = slots.get_mut(d.index as usize)
                && slot.state == FrameState::User
            {
                slot.state = FrameState::Free;
                out[k] = d.index;
                k += 1;
            }
        }
        self.free.truncate(base + k);
        self.counts[FrameState::User as usize] -= k as u32;
        self.counts[FrameState::Free as usize] += k as u32;
        k as u32
    }

    /// Takes frames from the free pool into state `Fill` on the fill ring of pair `pool`, one
    /// for each slot of `out` (fewer when the pool runs short), and writes their ring
    /// addresses (each frame's start, in both chunk modes) into `out` from its start; returns
    /// how many.
    pub(crate) fn take_free_for_fill(
        &mut self,
        pool: PoolId,
        addressing: Addressing,
        out: &mut [u64],
    ) -> u32 {
        let n = out.len().min(self.free.len());
        let start = self.free.len() - n;
        let slots = &mut self.slots[..];
        for (addr, &index) in out[..n].iter_mut().zip(self.free[start..].iter().rev()) {
            if let Some(slot) = slots.get_mut(index as usize) {
                *slot = Slot { state: FrameState::Fill, owner: pool };
            }
            *addr = addressing.frame_start(index);
        }
        self.free.truncate(start);
        self.counts[FrameState::Free as usize] -= n as u32;
        self.counts[FrameState::Fill as usize] += n as u32;
        self.pool(pool)[POOL_FILL] += n as u32;
        n as u32
    }

    /// Moves the frame of every rx descriptor of `parts` (in order, across the parts: the two
    /// runs of a ring that wraps around) from `Fill` (on the fill ring of pair `pool`, the
    /// receiving socket's) to `User` and appends it to `frames`, with its `XDP_PKT_CONTD` bit
    /// (multi-buffer: the packet continues in the next descriptor); returns how many
    /// descriptors did not become frames of `frames`.
    ///
    /// A descriptor whose frame is not in `Fill` on that pair (an address this UMEM never put
    /// on that fill ring) is skipped. A descriptor whose packet would run past the end of its
    /// frame (offset + length above the frame size: never from a sane kernel) is skipped too,
    /// and its frame goes back to the free pool, so no batch ever claims bytes beyond its
    /// frame. A packet (a chain of descriptors up to one without `XDP_PKT_CONTD`) with such a
    /// descriptor is dropped whole: its other frames go back to the free pool too, so a batch
    /// never holds a chain with a hole in it. The caller passes whole packets; a chain still
    /// open after the last descriptor is kept as it is. Addresses are decoded by `addressing`
    /// (in unaligned mode the offset is in the top 16 bits); one that names no frame is refused.
    #[inline]
    pub(crate) fn take_received(
        &mut self,
        parts: &[&[XdpDesc]],
        pool: PoolId,
        addressing: Addressing,
        frames: &mut Vec<FrameDesc>,
    ) -> u32 {
        let frame_size = u64::from(addressing.frame_size());
        // One loop per chunk mode, so the loop does not ask the mode for every descriptor.
        match addressing.aligned_shift() {
            Some(shift) => {
                let mask = frame_size - 1;
                self.take_received_by(parts, pool, frame_size, frames, |addr| {
                    (addr >> shift, addr & mask)
                })
            }
            None => self.take_received_by(parts, pool, frame_size, frames, |addr| {
                // An address that decodes to no frame is refused like one of another owner.
                addressing.decode(addr).map_or((u64::MAX, 0), |d| (d.index, d.offset))
            }),
        }
    }

    /// [`FrameTable::take_received`] with `decode` taking an address apart into (frame index,
    /// offset) (`u64::MAX` for an address that names no frame).
    #[inline(always)]
    fn take_received_by(
        &mut self,
        parts: &[&[XdpDesc]],
        pool: PoolId,
        frame_size: u64,
        frames: &mut Vec<FrameDesc>,
        decode: impl Fn(u64) -> (u64, u64),
    ) -> u32 {
        let slots = &mut self.slots[..];
        let fill = Slot { state: FrameState::Fill, owner: pool };
        let base = frames.len();
        let seen: usize = parts.iter().map(|p| p.len()).sum();
        // Written by index into room made beforehand (no growth check per frame), then cut to
        // what was taken.
        frames.resize(base + seen, FrameDesc::default());
        let out = &mut frames[base..];
        let mut k = 0;
        // Frames that leave `Fill` for the free pool: refused descriptors, and the other
        // frames of a packet that had one.
        let mut freed = 0;
        // Where the current packet's frames start in `out`, and whether one of its
        // descriptors was refused.
        let mut packet_start = 0;
        let mut broken = false;
        for part in parts {
            for d in part.iter() {
                let options = d.options & XDP_PKT_CONTD;
                let (index, offset) = decode(d.addr);
                let i = usize::try_from(index).unwrap_or(usize::MAX);
                match slots.get_mut(i) {
                    Some(slot) if *slot == fill => {
                        if offset + u64::from(d.len) > frame_size {
                            slot.state = FrameState::Free;
                            self.free.push(index as u32);
                            freed += 1;
                            broken = true;
                        } else {
                            slot.state = FrameState::User;
                            // `index` indexed the state table, so it is below the frame count; at
                            // most one frame per descriptor, so `k < seen`.
                            out[k] = FrameDesc {
                                index: index as u32,
                                offset: offset as u32,
                                len: d.len,
                                options,
                            };
                            k += 1;
                        }
                    }
                    _ => broken = true,
                }
                if options == 0 {
                    if broken {
                        for f in &out[packet_start..k] {
                            slots[f.index as usize].state = FrameState::Free;
                            self.free.push(f.index);
                            freed += 1;
                        }
                        k = packet_start;
                        broken = false;
                    }
                    packet_start = k;
                }
            }
        }
        frames.truncate(base + k);
        let moved = k as u32;
        self.counts[FrameState::Fill as usize] -= moved + freed;
        self.counts[FrameState::User as usize] += moved;
        self.counts[FrameState::Free as usize] += freed;
        self.pool(pool)[POOL_FILL] -= moved + freed;
        seen as u32 - moved
    }

    /// Moves frame `index` from `Tx` through pair `pool` to `Free` (the kernel handed it back
    /// on that pair's completion ring); false, and nothing changes, when it is not in `Tx` on
    /// that pair. The caller accounts the counts with [`FrameTable::completed`] once per batch.
    #[inline]
    pub(crate) fn take_completed(&mut self, index: u64, pool: PoolId) -> bool {
        let i = usize::try_from(index).unwrap_or(usize::MAX);
        match self.slots.get_mut(i) {
            Some(slot) if *slot == (Slot { state: FrameState::Tx, owner: pool }) => {
                slot.state = FrameState::Free;
                self.free.push(index as u32);
                true
            }
            _ => false,
        }
    }

    /// Accounts `n` frames of pair `pool` moved by [`FrameTable::take_completed`].
    pub(crate) fn completed(&mut self, n: u32, pool: PoolId) {
        self.counts[FrameState::Tx as usize] -= n;
        self.counts[FrameState::Free as usize] += n;
        self.pool(pool)[POOL_TX] -= n;
    }

    /// A vector for `n` descriptors: a released batch's, when one is kept.
    pub(crate) fn desc_vec(&mut self, n: usize) -> Vec<FrameDesc> {
        match self.spare.pop() {
            Some(mut v) => {
                v.reserve(n);
                v
            }
            None => Vec::with_capacity(n),
        }
    }

    /// Keeps an emptied batch vector for [`FrameTable::desc_vec`].
    fn keep_vec(&mut self, mut v: Vec<FrameDesc>) {
        if self.spare.len() < SPARE_VECS && v.capacity() != 0 && v.capacity() <= 1 << 16 {
            v.clear();
            self.spare.push(v);
        }
    }

    /// Puts every frame in state `from` back into the free pool (after the kernel let go of them).
    pub fn reclaim_all(&mut self, from: FrameState) {
        for index in 0..self.slots.len() as u32 {
            let slot = &mut self.slots[index as usize];
            if slot.state == from {
                slot.state = FrameState::Free;
                self.free.push(index);
            }
        }
        self.counts[FrameState::Free as usize] += self.counts[from as usize];
        self.counts[from as usize] = 0;
        if let Some(k) = pool_slot(from) {
            for c in &mut self.pool_counts {
                c[k] = 0;
            }
        }
    }

    /// Puts every frame on the fill ring or in transmission through pair `pool` back into the
    /// free pool: the last socket of that (interface, queue) closed, so the kernel let go of
    /// them. Returns how many.
    pub(crate) fn reclaim_pool(&mut self, pool: PoolId) -> u32 {
        let mut n = 0;
        for index in 0..self.slots.len() {
            let Slot { state: s, owner } = self.slots[index];
            if matches!(s, FrameState::Fill | FrameState::Tx) && owner == pool {
                self.counts[s as usize] -= 1;
                self.slots[index].state = FrameState::Free;
                self.free.push(index as u32);
                n += 1;
            }
        }
        self.counts[FrameState::Free as usize] += n;
        *self.pool(pool) = [0, 0];
        n
    }

    /// The state of frame `index`.
    pub fn state(&self, index: u32) -> Option<FrameState> {
        self.slots.get(index as usize).map(|s| s.state)
    }

    /// How many frames are in `state`.
    pub fn count(&self, state: FrameState) -> u32 {
        self.counts[state as usize]
    }
}

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
        Batch {
            umem: self.clone(),
            frames: indices
                .into_iter()
                .map(|index| FrameDesc { index, offset, len: 0, options: 0 })
                .collect(),
        }
    }
}

/// One frame of a batch: which frame, where its packet starts inside it, its length, and
/// whether the packet continues in the next frame (multi-buffer).
///
/// `#[repr(C)]` with the layout asserted below: the Python bindings export a batch's
/// descriptors as three strided u32 arrays (`FrameBatch.indices`, `.offsets`, `.lengths`) over
/// [`Batch::descs_ptr`], without a copy. `len` may so be written from outside Rust: every path
/// that reads it checks it against the frame ([`Batch::data`], `Socket::send`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameDesc {
    /// The frame's number in the UMEM.
    pub index: u32,
    /// Where the packet starts inside the frame, in bytes.
    pub offset: u32,
    /// The packet length, in bytes (of this frame's part, in a chain).
    pub len: u32,
    /// The descriptor options: [`FrameDesc::MORE`] (the kernel's `XDP_PKT_CONTD`) when the
    /// packet continues in the next frame of the batch, [`FrameDesc::TX_METADATA`] when a tx
    /// request was written before the packet; no other bit is ever set.
    pub options: u32,
}

impl FrameDesc {
    /// The option bit of a frame whose packet continues in the next frame (`XDP_PKT_CONTD`).
    pub const MORE: u32 = XDP_PKT_CONTD;
    /// The option bit of a frame with a tx metadata request before its packet
    /// (`XDP_TX_METADATA`; see [`crate::txmeta`]). Set only by the request methods, so a
    /// frame fresh from `alloc` or `recv` never carries an earlier user's request.
    pub const TX_METADATA: u32 = XDP_TX_METADATA;

    /// Whether the packet continues in the next frame.
    pub fn more(&self) -> bool {
        self.options & Self::MORE != 0
    }
}

// The layout the bindings export: four u32 fields, no padding, 16 bytes apart.
const _: () = {
    assert!(std::mem::size_of::<FrameDesc>() == 16);
    assert!(std::mem::align_of::<FrameDesc>() == 4);
    assert!(std::mem::offset_of!(FrameDesc, index) == 0);
    assert!(std::mem::offset_of!(FrameDesc, offset) == 4);
    assert!(std::mem::offset_of!(FrameDesc, len) == 8);
    assert!(std::mem::offset_of!(FrameDesc, options) == 12);
};

/// Frames owned exclusively by the user. Dropping the batch returns them to the free pool.
pub struct Batch {
    umem: Umem,
    frames: Vec<FrameDesc>,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch").field("frames", &self.frames).finish()
    }
}

impl Batch {
    /// A batch of frames that were just moved to `User` state by the caller.
    pub(crate) fn from_owned(umem: Umem, frames: Vec<FrameDesc>) -> Batch {
        Batch { umem, frames }
    }

    /// The UMEM the frames belong to.
    pub fn umem(&self) -> &Umem {
        &self.umem
    }

    /// Number of frames.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether the batch holds no frame.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The descriptors.
    pub fn descs(&self) -> &[FrameDesc] {
        &self.frames
    }

    /// A pointer to the first of the [`Batch::len`] descriptors, for exporting them in place
    /// (the Python buffer protocol). It stays valid, and the descriptors stay where they are,
    /// until the batch is dropped, released, or sent (which removes descriptors from the
    /// front): the exporter must prevent all three while the pointer is in use. Writing through
    /// it is allowed (`len` only: the index and offset are the batch's bookkeeping), and no
    /// Rust reference to the descriptors may be live meanwhile.
    pub fn descs_ptr(&mut self) -> *mut FrameDesc {
        // `Vec::as_mut_ptr` creates no reference to the elements, so the pointer stays usable
        // alongside later accesses through the vector.
        self.frames.as_mut_ptr()
    }

    /// Frame `i`'s descriptor; every access to a frame's bytes goes through here, so this is
    /// also where a batch refuses in a forked child.
    fn desc(&self, i: usize) -> Result<&FrameDesc> {
        self.umem.check_fork()?;
        self.frames.get(i).ok_or_else(|| Error::InvalidArgument {
            name: "frame index",
            value: i.to_string(),
            why: format!("the batch has {} frames", self.frames.len()),
        })
    }

    /// Bytes from the packet start to the end of frame `i`.
    pub fn capacity(&self, i: usize) -> Result<usize> {
        let d = self.desc(i)?;
        Ok((self.umem.config().frame_size - d.offset) as usize)
    }

    /// Pointer to the packet start of frame `i` (valid while the batch owns the frame).
    pub fn data_ptr(&self, i: usize) -> Result<*mut u8> {
        let d = *self.desc(i)?;
        let off = self.umem.addr_of(d.index) as usize + d.offset as usize;
        // SAFETY: `index < frame_count` and `offset < frame_size` (both set only by this module),
        // so the pointer stays inside the mapped region.
        Ok(unsafe { self.umem.as_ptr().add(off) })
    }

    /// The packet bytes of frame `i`.
    pub fn data(&self, i: usize) -> Result<&[u8]> {
        let len = self.desc(i)?.len as usize;
        let capacity = self.capacity(i)?;
        if len > capacity {
            // Lengths are checked where they enter from Rust (rx ring, set_len, write), but the
            // Python bindings also let numpy write them in place (`FrameBatch.lengths`): this
            // keeps a slice inside its frame whatever was written.
            return Err(Error::PacketTooLong { len, capacity });
        }
        let ptr = self.data_ptr(i)?;
        // SAFETY: the batch owns the frame exclusively (state User), `len <= capacity`, and the
        // region outlives `self` (it holds the UMEM).
        Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
    }

    /// The whole writable area of frame `i` (from the packet start to the frame end).
    pub fn area_mut(&mut self, i: usize) -> Result<&mut [u8]> {
        let cap = self.capacity(i)?;
        let ptr = self.data_ptr(i)?;
        // SAFETY: as in `data`, and `&mut self` makes this the only live reference.
        Ok(unsafe { std::slice::from_raw_parts_mut(ptr, cap) })
    }

    /// Sets the packet length of frame `i`.
    pub fn set_len(&mut self, i: usize, len: usize) -> Result<()> {
        let capacity = self.capacity(i)?;
        if len > capacity {
            return Err(Error::PacketTooLong { len, capacity });
        }
        self.frames[i].len = len as u32;
        Ok(())
    }

    /// Sets or clears [`FrameDesc::TX_METADATA`] on frame `i` (which the caller checked).
    pub(crate) fn set_tx_meta_bit(&mut self, i: usize, on: bool) {
        let d = &mut self.frames[i];
        d.options =
            d.options & !FrameDesc::TX_METADATA | if on { FrameDesc::TX_METADATA } else { 0 };
    }

    /// Whether frame `i`'s packet continues in the next frame (multi-buffer).
    pub fn more(&self, i: usize) -> Result<bool> {
        Ok(self.desc(i)?.more())
    }

    /// Marks frame `i`'s packet as continuing in the next frame (`XDP_PKT_CONTD` when sent),
    /// or as ending there. Checked when the batch is sent: only a multi-buffer socket sends
    /// chains, and a batch may not end in the middle of one.
    pub fn set_more(&mut self, i: usize, more: bool) -> Result<()> {
        self.desc(i)?;
        let d = &mut self.frames[i];
        d.options = d.options & !FrameDesc::MORE | if more { FrameDesc::MORE } else { 0 };
        Ok(())
    }

    /// The packets of the batch as ranges of frame positions: each runs up to and including a
    /// frame without [`FrameDesc::MORE`] (a single frame unless chained).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when the last frame has `more` set: the batch ends in the
    /// middle of a packet (received batches never do).
    pub fn packets(&self) -> Result<Vec<std::ops::Range<usize>>> {
        let mut out = Vec::new();
        let mut start = 0;
        for (i, d) in self.frames.iter().enumerate() {
            if !d.more() {
                out.push(start..i + 1);
                start = i + 1;
            }
        }
        if start != self.frames.len() {
            return Err(Error::InvalidArgument {
                name: "frame more",
                value: "True".into(),
                why: format!(
                    "frame {} is the batch's last and has more set: the packet from frame \
                     {start} on has no end",
                    self.frames.len() - 1
                ),
            });
        }
        Ok(out)
    }

    /// Copies `packet` into the frames from position `start` on, as a chain: each frame but
    /// the last filled to its capacity and marked [`FrameDesc::MORE`], the last one ending
    /// the packet; returns how many frames it took.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for an empty packet, or when the frames from `start` on
    /// cannot hold it (nothing is written then).
    pub fn write_chain(&mut self, start: usize, packet: &[u8]) -> Result<usize> {
        if packet.is_empty() {
            return Err(Error::InvalidArgument {
                name: "packet length",
                value: "0".into(),
                why: "a packet needs at least one byte".into(),
            });
        }
        let mut need = 0;
        let mut room = 0;
        for i in start..self.frames.len() {
            room += self.capacity(i)?;
            need += 1;
            if room >= packet.len() {
                break;
            }
        }
        if room < packet.len() {
            return Err(Error::InvalidArgument {
                name: "packet length",
                value: packet.len().to_string(),
                why: format!("frames {start}.. of the batch hold {room} bytes in {need} frames"),
            });
        }
        let mut rest = packet;
        for i in start..start + need {
            let take = rest.len().min(self.capacity(i)?);
            self.write(i, &rest[..take])?;
            rest = &rest[take..];
            let d = &mut self.frames[i];
            d.options =
                d.options & !FrameDesc::MORE | if rest.is_empty() { 0 } else { FrameDesc::MORE };
        }
        Ok(need)
    }

    /// Copies `packet` into frame `i` and sets its length.
    pub fn write(&mut self, i: usize, packet: &[u8]) -> Result<()> {
        let area = self.area_mut(i)?;
        if packet.len() > area.len() {
            return Err(Error::PacketTooLong { len: packet.len(), capacity: area.len() });
        }
        area[..packet.len()].copy_from_slice(packet);
        self.frames[i].len = packet.len() as u32;
        Ok(())
    }

    /// Writes `data` at byte `offset` of every frame's packet (e.g. a MAC address), leaving the
    /// lengths as they are. Checked first, so either every frame is written or none.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming the first frame whose packet is shorter than
    /// `offset + data.len()`.
    pub fn write_at(&mut self, offset: usize, data: &[u8]) -> Result<()> {
        let end = offset.checked_add(data.len()).ok_or_else(|| Error::InvalidArgument {
            name: "offset",
            value: offset.to_string(),
            why: format!("offset + {} bytes overflows", data.len()),
        })?;
        for i in 0..self.frames.len() {
            // `data` refuses a length beyond the frame, so `end <= len` keeps the write inside.
            let len = self.data(i)?.len();
            if end > len {
                return Err(Error::InvalidArgument {
                    name: "offset",
                    value: offset.to_string(),
                    why: format!(
                        "write_at(offset={offset}) of {} bytes goes past the end of frame {i} \
                         ({len} bytes)",
                        data.len()
                    ),
                });
            }
        }
        for i in 0..self.frames.len() {
            self.area_mut(i)?[offset..end].copy_from_slice(data);
        }
        Ok(())
    }

    /// Copies `packet` into every frame; checked against the smallest capacity first, so either
    /// every frame is written or none.
    pub fn write_all(&mut self, packet: &[u8]) -> Result<()> {
        for i in 0..self.frames.len() {
            let capacity = self.capacity(i)?;
            if packet.len() > capacity {
                return Err(Error::PacketTooLong { len: packet.len(), capacity });
            }
        }
        for i in 0..self.frames.len() {
            self.write(i, packet)?;
        }
        Ok(())
    }

    /// Swaps the destination and source MAC addresses (bytes 0..6 and 6..12) of every frame,
    /// in place: the l2fwd edit. Checked first, so either every frame is edited or none.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming the first frame shorter than 12 bytes.
    pub fn swap_macs(&mut self) -> Result<()> {
        if let Some((i, d)) = self.frames.iter().enumerate().find(|(_, d)| d.len < 12) {
            return Err(Error::InvalidArgument {
                name: "frame length",
                value: d.len.to_string(),
                why: format!("frame {i} is shorter than two MAC addresses (12 bytes)"),
            });
        }
        for i in 0..self.frames.len() {
            let area = self.area_mut(i)?;
            let (dst, rest) = area.split_at_mut(6);
            dst.swap_with_slice(&mut rest[..6]);
        }
        Ok(())
    }

    /// Copies the packets of `src` into this batch's frames, in order, and sets their lengths:
    /// `min(self.len(), src.len())` frames, the count returned. The two batches may belong to
    /// different UMEMs (forwarding between interfaces). Checked first, so either every frame
    /// is written or none.
    ///
    /// # Errors
    ///
    /// [`Error::PacketTooLong`] when a packet of `src` does not fit its destination frame.
    pub fn copy_from(&mut self, src: &Batch) -> Result<usize> {
        let n = self.len().min(src.len());
        for i in 0..n {
            // `src.data` checks the source length against its own frame here, in the checking
            // pass, so the copying pass cannot fail half way.
            let (len, capacity) = (src.data(i)?.len(), self.capacity(i)?);
            if len > capacity {
                return Err(Error::PacketTooLong { len, capacity });
            }
        }
        for i in 0..n {
            let packet = src.data(i)?;
            self.write(i, packet)?;
        }
        Ok(n)
    }

    /// Moves the first `n` descriptors out of the batch (they were handed to a ring).
    pub(crate) fn take_front(&mut self, n: usize) {
        self.frames.drain(..n);
    }

    /// Returns the frames from position `n` on to the free pool and drops them from the batch.
    pub(crate) fn release_from(&mut self, n: usize) {
        if n >= self.frames.len() {
            return;
        }
        let rest = self.frames.split_off(n);
        self.umem.frames().release_users(&rest);
    }

    /// Returns every frame to the free pool now.
    pub fn release(mut self) {
        self.release_all();
    }

    fn release_all(&mut self) {
        if self.frames.is_empty() {
            return;
        }
        let n = self.frames.len();
        let frames = std::mem::take(&mut self.frames);
        let mut table = self.umem.frames();
        // A batch's frames are User by construction; one that is not would be a bug in this
        // crate, and leaving it where it is is the safe response.
        let moved = table.release_users(&frames);
        table.keep_vec(frames);
        drop(table);
        debug_assert_eq!(moved as usize, n, "batch frames not in User state");
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        self.release_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An aligned UMEM config on normal pages.
    fn geometry(frame_count: u32, frame_size: u32, headroom: u32) -> UmemConfig {
        UmemConfig { frame_count, frame_size, headroom, ..UmemConfig::default() }
    }

    fn umem(n: u32) -> Umem {
        Umem::new(geometry(n, 2048, 0)).unwrap()
    }

    #[test]
    fn config_validation_names_the_value() {
        for (fs, ok) in [(2048, true), (4096, true), (1024, false), (3000, false), (8192, false)] {
            let r = geometry(4, fs, 0).validate();
            assert_eq!(r.is_ok(), ok, "frame_size {fs}");
            if let Err(e) = r {
                assert!(e.to_string().contains(&fs.to_string()), "{e}");
            }
        }
        let e = geometry(0, 2048, 0).validate().unwrap_err();
        assert!(e.to_string().contains("frame_count 0"), "{e}");
        let cfg = geometry(4, 2048, 0);
        let too_much = UmemConfig { headroom: cfg.max_headroom() + 1, ..cfg };
        assert!(too_much.validate().unwrap_err().to_string().contains("headroom"));
        assert!(UmemConfig { headroom: cfg.max_headroom(), ..cfg }.validate().is_ok());
    }

    #[test]
    fn unaligned_mode_accepts_any_frame_size_up_to_a_page() {
        let page = sys::page_size() as u32;
        let unaligned = |fs| UmemConfig { unaligned: true, ..geometry(4, fs, 0) };
        let huge = |cfg: UmemConfig| UmemConfig { hugepages: HugePages::Yes, ..cfg };
        for fs in [2048, 2049, 3000, 4001, page] {
            assert!(unaligned(fs).validate().is_ok(), "unaligned {fs}");
            assert!(huge(unaligned(fs)).validate().is_ok(), "unaligned {fs} on huge pages");
        }
        // Aligned mode refuses an odd size, naming it and the mode that takes it.
        let e = geometry(4, 3000, 0).validate().unwrap_err().to_string();
        assert!(e.contains("invalid frame_size 3000") && e.contains("unaligned=True"), "{e}");
        // Never below 2048 nor above the page size, in any mode, on any pages (6.18 refuses
        // larger chunks even on huge pages: XDP_UMEM_REG, EINVAL).
        for cfg in [
            unaligned(2047),
            unaligned(page + 1),
            huge(unaligned(9000)),
            huge(geometry(4, 2 * page, 0)),
            geometry(4, 1024, 0),
        ] {
            let e = cfg.validate().unwrap_err().to_string();
            assert!(e.contains(&format!("invalid frame_size {}", cfg.frame_size)), "{e}");
            assert!(e.contains(&format!("to the page size ({page})")), "{e}");
        }
        // The headroom limit follows the odd size.
        let cfg = unaligned(3000);
        assert_eq!(cfg.max_headroom(), 3000 - 256 - 320 - 128);
        assert!(UmemConfig { headroom: cfg.max_headroom() + 1, ..cfg }.validate().is_err());
        assert_eq!(cfg.len(), 12_000);
        assert!(cfg.addressing().is_unaligned());
    }

    #[test]
    fn completion_timestamp_requests_are_tracked_per_send() {
        let mut plain = FrameTable::new(4);
        assert!(!plain.tracks_tx_stamps());
        plain.set_tx_stamp(1, true);
        assert!(!plain.take_tx_stamp(1), "nothing tracked without tx metadata");
        let mut t = FrameTable::new(4);
        t.track_tx_stamps();
        t.set_tx_stamp(1, true);
        t.set_tx_stamp(2, false);
        assert!(t.take_tx_stamp(1));
        assert!(!t.take_tx_stamp(1), "taken once");
        assert!(!t.take_tx_stamp(2));
        // Left set by a send that never completed (a socket closed meanwhile): the next send
        // of the frame overwrites it.
        t.set_tx_stamp(3, true);
        t.set_tx_stamp(3, false);
        assert!(!t.take_tx_stamp(3));
        assert!(!t.take_tx_stamp(4) && !t.take_tx_stamp(u64::MAX));
        let u = Umem::new(UmemConfig { tx_metadata: true, ..geometry(4, 2048, 0) }).unwrap();
        assert!(u.frames().tracks_tx_stamps());
        assert!(!umem(4).frames().tracks_tx_stamps());
    }

    #[test]
    fn swap_macs_edits_every_frame_or_none() {
        let u = umem(4);
        let mut b = u.alloc(3);
        let frame: Vec<u8> = (0..60).collect();
        b.write_all(&frame).unwrap();
        b.swap_macs().unwrap();
        for i in 0..3 {
            let d = b.data(i).unwrap();
            assert_eq!(&d[..6], &frame[6..12]);
            assert_eq!(&d[6..12], &frame[..6]);
            assert_eq!(&d[12..], &frame[12..]);
        }
        b.set_len(1, 11).unwrap();
        let e = b.swap_macs().unwrap_err();
        assert!(e.to_string().contains("frame 1"), "{e}");
        assert_eq!(&b.data(0).unwrap()[..6], &frame[6..12], "nothing edited on error");
    }

    #[test]
    fn copy_from_another_umem() {
        let (u1, u2) = (umem(4), umem(4));
        let mut src = u1.alloc(3);
        for i in 0..3 {
            src.write(i, &vec![i as u8 + 1; 60 + i]).unwrap();
        }
        let mut dst = u2.alloc(2);
        assert_eq!(dst.copy_from(&src).unwrap(), 2);
        assert_eq!(dst.data(0).unwrap(), &[1u8; 60][..]);
        assert_eq!(dst.data(1).unwrap(), &[2u8; 61][..]);
        let mut big = u1.alloc(1);
        big.set_len(0, 2048).unwrap();
        let mut small = Umem::new(geometry(1, 2048, 256)).unwrap().alloc(1);
        assert!(matches!(small.copy_from(&big), Err(Error::PacketTooLong { len: 2048, .. })));
    }

    #[test]
    fn alloc_takes_distinct_frames_and_drop_returns_them() {
        let u = umem(8);
        let a = u.alloc(5);
        let b = u.alloc(5);
        assert_eq!((a.len(), b.len()), (5, 3));
        let mut all: Vec<u32> = a.descs().iter().chain(b.descs()).map(|d| d.index).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 8);
        assert_eq!(u.free_frames(), 0);
        drop(a);
        assert_eq!(u.free_frames(), 5);
        b.release();
        assert_eq!(u.free_frames(), 8);
    }

    #[test]
    fn transitions_refuse_the_wrong_state() {
        let u = umem(2);
        let mut t = u.frames();
        // Free frames leave the pool only through take_free.
        t.transition(0, FrameState::Free, FrameState::Fill, 2048).unwrap_err();
        let mut got = Vec::new();
        t.take_free(1, FrameState::Fill, &mut got);
        let i = got[0];
        let e = t.transition(i, FrameState::User, FrameState::Tx, 2048).unwrap_err();
        assert!(matches!(e, Error::FrameNotOwned { state: "on the fill ring", .. }), "{e}");
        assert!(t.transition(99, FrameState::Fill, FrameState::User, 2048).is_err());
        t.transition(i, FrameState::Fill, FrameState::User, 2048).unwrap();
        assert_eq!(t.count(FrameState::User), 1);
    }

    #[test]
    fn write_checks_capacity_and_sets_length() {
        let u = Umem::new(geometry(2, 2048, 100)).unwrap();
        let mut b = u.alloc(2);
        assert_eq!(b.capacity(0).unwrap(), 1948);
        b.write(0, &[7u8; 60]).unwrap();
        assert_eq!(b.data(0).unwrap(), &[7u8; 60][..]);
        let e = b.write(1, &vec![0u8; 1949]).unwrap_err();
        assert!(matches!(e, Error::PacketTooLong { len: 1949, capacity: 1948 }));
        assert!(b.write_all(&vec![1u8; 1949]).is_err());
        assert_eq!(b.data(0).unwrap().len(), 60, "a failed write_all writes nothing");
        b.write_all(&[9u8; 64]).unwrap();
        assert!(b.descs().iter().all(|d| d.len == 64));
        assert!(b.set_len(0, 5000).is_err());
        // The data really lands in the region, after the headroom.
        let off = u.addr_of(b.descs()[1].index) as usize + 100;
        // SAFETY: test reads inside the region it owns.
        let first = unsafe { *u.as_ptr().add(off) };
        assert_eq!(first, 9);
    }

    /// A 4-frame UMEM of 3000-byte frames in unaligned mode.
    fn unaligned_umem(n: u32) -> Umem {
        Umem::new(UmemConfig { unaligned: true, ..geometry(n, 3000, 0) }).unwrap()
    }

    /// The rx address the kernel writes for a frame filled at `fill` with the packet `offset`
    /// bytes in: aligned, the plain sum; unaligned, the offset in the top 16 bits.
    fn rx_addr(u: &Umem, fill: u64, offset: u64) -> u64 {
        if u.unaligned() { fill | offset << 48 } else { fill + offset }
    }

    #[test]
    fn rx_lengths_past_the_frame_end_are_refused() {
        for u in [umem(4), unaligned_umem(4)] {
            let addressing = u.addressing();
            let size = u.config().frame_size;
            let mut table = u.frames();
            let mut addrs = vec![0; 3];
            assert_eq!(table.take_free_for_fill(0, addressing, &mut addrs), 3);
            let at =
                |i: usize, len: u32| XdpDesc { addr: rx_addr(&u, addrs[i], 256), len, options: 0 };
            // Exactly to the end of the frame; one byte past it; a length that would wrap a u32.
            let descs = [at(0, size - 256), at(1, size - 255), at(2, u32::MAX)];
            let mut frames = Vec::new();
            assert_eq!(table.take_received(&[&descs], 0, addressing, &mut frames), 2);
            assert_eq!(frames.len(), 1);
            assert_eq!((frames[0].offset, frames[0].len), (256, size - 256));
            // The refused frames went back to the pool, not astray.
            assert_eq!(table.count(FrameState::Fill), 0);
            assert_eq!(table.count(FrameState::User), 1);
            assert_eq!(table.count(FrameState::Free), 3);
            drop(table);
            let batch = Batch::from_owned(u.clone(), frames);
            assert_eq!(batch.data(0).unwrap().len(), (size - 256) as usize);
        }
    }

    #[test]
    fn unaligned_frames_are_laid_end_to_end_and_their_addresses_decoded() {
        let u = unaligned_umem(4);
        assert_eq!(u.len(), 12_000);
        assert!(u.addressing().is_unaligned());
        let addressing = u.addressing();
        let mut table = u.frames();
        let mut addrs = vec![0; 4];
        assert_eq!(table.take_free_for_fill(0, addressing, &mut addrs), 4);
        // Fill addresses are the frames' starts: multiples of 3000, not of a power of two.
        assert_eq!(addrs, [0, 3000, 6000, 9000]);
        let desc = |addr: u64, len: u32| XdpDesc { addr, len, options: 0 };
        let descs = [
            desc(3000 | 256 << 48, 1500), // frame 1, packet at 3256
            desc(9000 | 384 << 48, 2616), // frame 3, exactly to its end
            desc(6000 + 256, 64),         // a flat address into frame 2: still frame 2
            desc(3000 | 256 << 48, 60),   // frame 1 again: no longer on the fill ring
            desc(12_000 | 256 << 48, 60), // past the UMEM
            desc((1 << 48) - 1, 60),      // the largest base
        ];
        let mut frames = Vec::new();
        assert_eq!(table.take_received(&[&descs], 0, addressing, &mut frames), 3);
        let got: Vec<_> = frames.iter().map(|f| (f.index, f.offset, f.len)).collect();
        assert_eq!(got, [(1, 256, 1500), (3, 384, 2616), (2, 256, 64)]);
        assert_eq!(table.count(FrameState::Fill), 1);
        // Completions come back as they were sent: base | offset << 48, and decode to the frame.
        let sent_frame = frames.pop().unwrap();
        table.queue_for_tx(sent_frame.index, 0, 3000).unwrap();
        let sent = addressing.encode(sent_frame.index, 256);
        assert_eq!(sent, 6000 | 256 << 48);
        // An offset reaching from frame 2's base into frame 3 names no frame.
        assert_eq!(addressing.decode(6000 | 3256 << 48), None);
        // Another frame's address does not complete this one.
        assert!(!table.take_completed(addressing.decode(9000 | 256 << 48).unwrap().index, 0));
        assert!(table.take_completed(addressing.decode(sent).unwrap().index, 0));
        table.completed(1, 0);
        assert_eq!(table.count(FrameState::Tx), 0);
        drop(table);
        // The data really is at base + offset in the region.
        let mut batch = Batch::from_owned(u.clone(), frames);
        batch.write(1, &[0xab; 16]).unwrap();
        // SAFETY: test reads inside the region it owns.
        let byte = unsafe { *u.as_ptr().add(9000 + 384) };
        assert_eq!(byte, 0xab);
        assert_eq!(batch.capacity(1).unwrap(), 3000 - 384);
    }

    #[test]
    fn a_frame_belongs_to_the_ring_pair_it_went_through() {
        let u = umem(8);
        let addressing = u.addressing();
        let mut table = u.frames();
        let (mut on_a, mut on_b) = (vec![0; 3], vec![0; 2]);
        assert_eq!(table.take_free_for_fill(1, addressing, &mut on_a), 3);
        assert_eq!(table.take_free_for_fill(2, addressing, &mut on_b), 2);
        assert_eq!((table.fill_count(1), table.fill_count(2)), (3, 2));
        let desc = |addr: u64| XdpDesc { addr: addr + 256, len: 60, options: 0 };
        // Pair 2's socket is handed a frame of pair 1's fill ring: refused, nothing moves.
        let mut frames = Vec::new();
        assert_eq!(table.take_received(&[&[desc(on_a[0])]], 2, addressing, &mut frames), 1);
        assert!(frames.is_empty());
        assert_eq!(table.state((on_a[0] / 2048) as u32), Some(FrameState::Fill));
        // Its own pair's frame is taken.
        assert_eq!(table.take_received(&[&[desc(on_a[0])]], 1, addressing, &mut frames), 0);
        assert_eq!(frames.len(), 1);
        assert_eq!(table.fill_count(1), 2);
        // Sent through pair 2, it completes only on pair 2's completion ring.
        let index = frames[0].index;
        table.queue_for_tx(index, 2, 2048).unwrap();
        assert_eq!((table.tx_count(1), table.tx_count(2)), (0, 1));
        assert!(!table.take_completed(u64::from(index), 1));
        assert!(table.take_completed(u64::from(index), 2));
        table.completed(1, 2);
        assert_eq!(table.tx_count(2), 0);
        // The last socket of pair 1 closes: its fill frames return, pair 2's stay.
        assert_eq!(table.reclaim_pool(1), 2);
        assert_eq!((table.fill_count(1), table.fill_count(2)), (0, 2));
        assert_eq!(table.count(FrameState::Fill), 2);
        assert_eq!(table.count(FrameState::Free), 6);
    }

    #[test]
    fn alloc_of_more_than_every_frame_takes_them_all() {
        let u = umem(4);
        assert_eq!(u.alloc(usize::MAX).len(), 4);
    }

    #[test]
    fn data_never_slices_past_the_frame() {
        let u = umem(2);
        let mut batch = u.alloc(1);
        batch.frames[0].len = u.config().frame_size + 1;
        assert!(matches!(batch.data(0), Err(Error::PacketTooLong { .. })));
    }

    #[test]
    fn descs_ptr_exposes_the_descriptors_in_place() {
        let u = umem(4);
        let mut batch = u.alloc(3);
        batch.write(1, &[7; 30]).unwrap();
        let base = batch.descs_ptr();
        let stride = std::mem::size_of::<FrameDesc>();
        let field = |i: usize, at: usize| -> *mut u32 {
            // SAFETY: `i < 3` descriptors of 12 bytes; `at` is a field offset below 12.
            unsafe { base.cast::<u8>().add(i * stride + at).cast::<u32>() }
        };
        for (i, d) in batch.descs().to_vec().iter().enumerate() {
            // SAFETY: in bounds (above) and aligned (4-byte fields of a 4-aligned struct).
            let read = |at| unsafe { field(i, at).read() };
            assert_eq!((read(0), read(4), read(8)), (d.index, d.offset, d.len));
        }
        // SAFETY: as above; no reference to the descriptors is live.
        unsafe { field(2, 8).write(20) };
        assert_eq!(batch.descs()[2].len, 20);
        assert_eq!(batch.data(2).unwrap().len(), 20);
    }

    #[test]
    fn lengths_written_in_place_past_the_frame_are_refused_not_sliced() {
        let u = umem(4);
        let mut batch = u.alloc(2);
        batch.write(0, &[1; 20]).unwrap();
        batch.write(1, &[2; 20]).unwrap();
        let too_long = u.config().frame_size + 1;
        // As numpy would through `FrameBatch.lengths`: no check on the way in.
        batch.frames[1].len = too_long;
        assert!(matches!(
            batch.write_at(0, &[9; 4]),
            Err(Error::PacketTooLong { len, .. }) if len == too_long as usize
        ));
        assert_eq!(batch.data(0).unwrap(), &[1; 20], "nothing written when one frame is bad");
        // Into larger frames, where the bad length would fit: still refused before any copy.
        let big = Umem::new(geometry(2, 4096, 0)).unwrap();
        let mut dst = big.alloc(2);
        assert!(matches!(dst.copy_from(&batch), Err(Error::PacketTooLong { .. })));
        assert_eq!(dst.descs().iter().map(|d| d.len).collect::<Vec<_>>(), [0, 0]);
    }

    #[test]
    fn write_chain_splits_a_packet_and_packets_regroups_it() {
        let u = umem(8);
        let mut b = u.alloc(6);
        let jumbo: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        // 2048-byte frames: 2048 + 2048 + 904, then a one-frame packet.
        assert_eq!(b.write_chain(0, &jumbo).unwrap(), 3);
        assert_eq!(b.write_chain(3, &[7; 60]).unwrap(), 1);
        let lens: Vec<u32> = b.descs().iter().map(|d| d.len).collect();
        assert_eq!(lens[..4], [2048, 2048, 904, 60]);
        let more: Vec<bool> = (0..4).map(|i| b.more(i).unwrap()).collect();
        assert_eq!(more, [true, true, false, false]);
        assert_eq!(b.descs()[0].options, FrameDesc::MORE);
        let joined: Vec<u8> = (0..3).flat_map(|i| b.data(i).unwrap().to_vec()).collect();
        assert_eq!(joined, jumbo);
        // Two frames are left: too few for another 5000 bytes, and nothing is written.
        let e = b.write_chain(4, &jumbo).unwrap_err();
        assert!(e.to_string().contains("4096 bytes in 2 frames"), "{e}");
        assert_eq!((b.descs()[4].len, b.more(4).unwrap()), (0, false));
        assert!(b.write_chain(0, &[]).is_err());
        b.release_from(4);
        assert_eq!(b.len(), 4);
        assert_eq!(u.free_frames(), 4);
        assert_eq!(b.packets().unwrap(), [0..3, 3..4]);
        b.set_more(3, true).unwrap();
        let e = b.packets().unwrap_err();
        assert!(e.to_string().contains("frame 3 is the batch's last"), "{e}");
        assert!(b.set_more(9, true).is_err());
    }

    #[test]
    fn a_received_chain_with_a_bad_descriptor_is_dropped_whole() {
        let u = umem(8);
        let addressing = u.addressing();
        let mut table = u.frames();
        let mut addrs = vec![0; 6];
        assert_eq!(table.take_free_for_fill(0, addressing, &mut addrs), 6);
        let at = |i: usize, len: u32, more: bool| XdpDesc {
            addr: addrs[i] + 256,
            len,
            options: if more { XDP_PKT_CONTD } else { 0 },
        };
        // A good 2-frame packet, a 3-frame packet whose middle frame runs past its end, and a
        // packet whose second descriptor names a frame the fill ring never had.
        let descs = [
            at(0, 100, true),
            at(1, 50, false),
            at(2, 100, true),
            at(3, 4000, true),
            at(4, 10, false),
            at(5, 100, true),
            XdpDesc { addr: addressing.encode(7, 0), len: 10, options: 0 },
        ];
        let mut frames = Vec::new();
        assert_eq!(table.take_received(&[&descs], 0, addressing, &mut frames), 5);
        assert_eq!(frames.iter().map(|f| f.index).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(frames.iter().map(FrameDesc::more).collect::<Vec<_>>(), [true, false]);
        assert_eq!(table.count(FrameState::User), 2);
        assert_eq!(table.count(FrameState::Fill), 0);
        assert_eq!(table.count(FrameState::Free), 6);
        assert_eq!(table.state(7), Some(FrameState::Free), "a frame never filled stays put");
    }

    #[test]
    fn write_at_checks_every_frame_first() {
        let u = umem(4);
        let mut batch = u.alloc(2);
        batch.write(0, &[0; 20]).unwrap();
        batch.write(1, &[0; 10]).unwrap();
        let error = batch.write_at(8, &[1, 2, 3, 4]).unwrap_err();
        assert!(error.to_string().contains("past the end of frame 1 (10 bytes)"), "{error}");
        assert_eq!(batch.data(0).unwrap(), &[0; 20], "nothing written when one frame is short");
        assert!(batch.write_at(usize::MAX, &[1]).is_err());
        batch.write_at(6, &[1, 2, 3, 4]).unwrap();
        assert_eq!(&batch.data(0).unwrap()[6..10], &[1, 2, 3, 4]);
        assert_eq!(&batch.data(1).unwrap()[6..10], &[1, 2, 3, 4]);
    }

    /// A model of the frame table: the state of every frame and, for a frame on a fill ring or
    /// in transmission, the ring pair it went through; changed by the rules the table's
    /// documentation states, op by op.
    struct Model {
        state: Vec<FrameState>,
        owner: Vec<PoolId>,
    }

    impl Model {
        fn count(&self, s: FrameState) -> u32 {
            self.state.iter().filter(|&&x| x == s).count() as u32
        }

        fn count_in(&self, s: FrameState, pool: PoolId) -> u32 {
            (0..self.state.len()).filter(|&i| self.state[i] == s && self.owner[i] == pool).count()
                as u32
        }

        /// Frames in state `s` (through ring pair `pool`, when given).
        fn in_state(&self, s: FrameState, pool: Option<PoolId>) -> Vec<u32> {
            (0..self.state.len() as u32)
                .filter(|&i| {
                    self.state[i as usize] == s && pool.is_none_or(|p| self.owner[i as usize] == p)
                })
                .collect()
        }

        fn set(&mut self, index: u32, s: FrameState, pool: PoolId) {
            self.state[index as usize] = s;
            self.owner[index as usize] = pool;
        }

        /// The table agrees with the model: every frame's state (and ring pair, on a ring),
        /// the counts (per ring pair too), and a free pool that lists each free frame exactly
        /// once.
        fn check(&self, t: &FrameTable, step: usize) {
            let states: Vec<FrameState> = t.slots.iter().map(|s| s.state).collect();
            assert_eq!(states, self.state, "step {step}");
            for (i, slot) in t.slots.iter().enumerate() {
                if matches!(slot.state, FrameState::Fill | FrameState::Tx) {
                    assert_eq!(slot.owner, self.owner[i], "pair of frame {i} at step {step}");
                }
            }
            for s in [FrameState::Free, FrameState::Fill, FrameState::User, FrameState::Tx] {
                assert_eq!(t.count(s), self.count(s), "count of {s:?} at step {step}");
            }
            for pool in 0..POOLS {
                assert_eq!(
                    t.fill_count(pool),
                    self.count_in(FrameState::Fill, pool),
                    "step {step}"
                );
                assert_eq!(t.tx_count(pool), self.count_in(FrameState::Tx, pool), "step {step}");
            }
            let mut free = t.free.clone();
            free.sort_unstable();
            assert_eq!(free, self.in_state(FrameState::Free, None), "free pool at step {step}");
        }
    }

    /// Ring pairs the random operations use.
    const POOLS: PoolId = 3;

    /// Random sequences of every frame-table operation, over three ring pairs, including the
    /// bad inputs a confused kernel or caller could produce (duplicate and unknown addresses,
    /// frames in the wrong state or on another pair's rings, packets running past their frame),
    /// against [`Model`]. Even seeds use aligned 2048-byte frames, odd ones unaligned
    /// 3000-byte frames (rx addresses with the offset in the top bits, or flat). Seeded, so a
    /// failure reproduces; small enough under Miri.
    #[test]
    fn frame_table_random_operations_match_a_model() {
        use crate::generator::template::test_frames::Rng;
        const STATES: [FrameState; 4] =
            [FrameState::Free, FrameState::Fill, FrameState::User, FrameState::Tx];
        let (seeds, steps) = if cfg!(miri) { (2, 300) } else { (16, 3000) };
        for seed in 0..seeds {
            let unaligned = seed % 2 == 1;
            let frame_size: u32 = if unaligned { 3000 } else { 2048 };
            let addressing = Addressing::new(frame_size, unaligned);
            let fs = u64::from(frame_size);
            let mut rng = Rng(0x5eed_0000 + seed);
            let n = 1 + (rng.next() % 40) as u32;
            let mut t = FrameTable::new(n);
            let mut m =
                Model { state: vec![FrameState::Free; n as usize], owner: vec![0; n as usize] };
            let mut batches: Vec<Vec<FrameDesc>> = Vec::new();
            // Any frame index, sometimes one past the table.
            let any_index = |rng: &mut Rng| (rng.next() % (u64::from(n) + 2)) as u32;
            let any_pool = |rng: &mut Rng| (rng.next() % u64::from(POOLS)) as PoolId;
            for step in 0..steps {
                match rng.next() % 10 {
                    0 => {
                        let want = (rng.next() % 12) as usize;
                        let to = STATES[1 + (rng.next() % 3) as usize];
                        let mut out = Vec::new();
                        t.take_free(want, to, &mut out);
                        assert_eq!(out.len(), want.min(m.count(FrameState::Free) as usize));
                        for &i in &out {
                            assert_eq!(m.state[i as usize], FrameState::Free, "step {step}");
                            m.set(i, to, 0);
                        }
                        if to == FrameState::User {
                            batches.push(
                                out.iter()
                                    .map(|&index| FrameDesc {
                                        index,
                                        offset: 0,
                                        len: 0,
                                        options: 0,
                                    })
                                    .collect(),
                            );
                        }
                    }
                    1 => {
                        let want = (rng.next() % 12) as u32;
                        let pool = any_pool(&mut rng);
                        let mut out = vec![7; want as usize + 1];
                        let got = t.take_free_for_fill(pool, addressing, &mut out[..want as usize]);
                        assert_eq!(got, want.min(m.count(FrameState::Free)));
                        // Written from the start, nothing past what it took.
                        assert!(out[got as usize..].iter().all(|&a| a == 7));
                        for &addr in &out[..got as usize] {
                            assert_eq!(addr % fs, 0);
                            let i = (addr / fs) as u32;
                            assert_eq!(m.state[i as usize], FrameState::Free, "step {step}");
                            m.set(i, FrameState::Fill, pool);
                        }
                    }
                    2 => {
                        // An rx ring of pair `pool`: mostly frames on fill rings, plus junk.
                        let pool = any_pool(&mut rng);
                        let fill = m.in_state(FrameState::Fill, None);
                        let mut descs = Vec::new();
                        let mut truth = Vec::new(); // (index, offset) of each descriptor
                        for _ in 0..rng.next() % 10 {
                            let index = match (fill.is_empty(), rng.next() % 5) {
                                (false, 0..=2) => fill[(rng.next() % fill.len() as u64) as usize],
                                _ => any_index(&mut rng),
                            };
                            let offset = u64::from(rng.next() as u32 % frame_size);
                            let len = match rng.next() % 4 {
                                0 => frame_size - offset as u32 + (rng.next() % 3) as u32,
                                _ => rng.next() as u32 % (frame_size - offset as u32 + 1),
                            };
                            let start = u64::from(index) * fs;
                            let addr = match unaligned && rng.next().is_multiple_of(2) {
                                true => start | offset << 48,
                                false => start + offset,
                            };
                            // Chains (XDP_PKT_CONTD) of a few descriptors, now and then a
                            // bit the kernel never sets (the table keeps only CONTD).
                            let options = match rng.next() % 8 {
                                0..=2 => XDP_PKT_CONTD,
                                3 => 0x10,
                                _ => 0,
                            };
                            descs.push(XdpDesc { addr, len, options });
                            truth.push((u64::from(index), offset));
                        }
                        let mut frames = Vec::new();
                        // In two parts cut anywhere, as a ring that wraps around hands them
                        // over (a chain may span the cut).
                        let cut = (rng.next() % (descs.len() as u64 + 1)) as usize;
                        let (a, b) = descs.split_at(cut);
                        let skipped = t.take_received(&[a, b], pool, addressing, &mut frames);
                        let mut expected: Vec<FrameDesc> = Vec::new();
                        // A packet with a refused descriptor is dropped whole.
                        let (mut packet_start, mut broken) = (0, false);
                        for (d, &(index, offset)) in descs.iter().zip(&truth) {
                            let i = index as usize;
                            let options = d.options & XDP_PKT_CONTD;
                            if i < m.state.len()
                                && m.state[i] == FrameState::Fill
                                && m.owner[i] == pool
                            {
                                if offset + u64::from(d.len) > u64::from(frame_size) {
                                    m.state[i] = FrameState::Free;
                                    broken = true;
                                } else {
                                    m.state[i] = FrameState::User;
                                    let index = index as u32;
                                    expected.push(FrameDesc {
                                        index,
                                        offset: offset as u32,
                                        len: d.len,
                                        options,
                                    });
                                }
                            } else {
                                broken = true;
                            }
                            if options == 0 {
                                if broken {
                                    for f in expected.drain(packet_start..) {
                                        m.state[f.index as usize] = FrameState::Free;
                                    }
                                    broken = false;
                                }
                                packet_start = expected.len();
                            }
                        }
                        assert_eq!(frames, expected, "step {step}");
                        assert_eq!(skipped as usize, descs.len() - expected.len(), "step {step}");
                        batches.push(frames);
                    }
                    3 if !batches.is_empty() => {
                        let mut batch =
                            batches.swap_remove((rng.next() % batches.len() as u64) as usize);
                        if rng.next().is_multiple_of(4) {
                            batch.push(FrameDesc {
                                index: any_index(&mut rng),
                                offset: 0,
                                len: 0,
                                options: 0,
                            });
                        }
                        let mut moved = 0;
                        for d in &batch {
                            if m.state.get(d.index as usize) == Some(&FrameState::User) {
                                m.state[d.index as usize] = FrameState::Free;
                                moved += 1;
                            }
                        }
                        assert_eq!(t.release_users(&batch), moved, "step {step}");
                    }
                    4 => {
                        let index = any_index(&mut rng);
                        let from = STATES[(rng.next() % 4) as usize];
                        let to = STATES[(rng.next() % 4) as usize];
                        let allowed =
                            from != FrameState::Free && m.state.get(index as usize) == Some(&from);
                        let result = t.transition(index, from, to, frame_size);
                        assert_eq!(
                            result.is_ok(),
                            allowed,
                            "step {step}: {index} {from:?}->{to:?}"
                        );
                        if allowed {
                            m.set(index, to, 0);
                        }
                    }
                    5 => {
                        let index = match m.in_state(FrameState::User, None) {
                            user if !user.is_empty() && !rng.next().is_multiple_of(4) => {
                                user[(rng.next() % user.len() as u64) as usize]
                            }
                            _ => any_index(&mut rng),
                        };
                        let pool = any_pool(&mut rng);
                        let allowed = m.state.get(index as usize) == Some(&FrameState::User);
                        let result = t.queue_for_tx(index, pool, frame_size);
                        assert_eq!(result.is_ok(), allowed, "step {step}: queue {index}");
                        if allowed {
                            m.set(index, FrameState::Tx, pool);
                        }
                    }
                    6 => {
                        let pool = any_pool(&mut rng);
                        let tx = m.in_state(FrameState::Tx, None);
                        let mut done = 0;
                        for _ in 0..rng.next() % 8 {
                            let index = match (tx.is_empty(), rng.next() % 3) {
                                (false, 0 | 1) => {
                                    u64::from(tx[(rng.next() % tx.len() as u64) as usize])
                                }
                                _ => u64::from(any_index(&mut rng)) + rng.next() % 2 * (1 << 40),
                            };
                            let i = usize::try_from(index).unwrap_or(usize::MAX);
                            let expect = i < m.state.len()
                                && m.state[i] == FrameState::Tx
                                && m.owner[i] == pool;
                            assert_eq!(
                                t.take_completed(index, pool),
                                expect,
                                "step {step}: {index}"
                            );
                            if expect {
                                m.state[i] = FrameState::Free;
                                done += 1;
                            }
                        }
                        t.completed(done, pool);
                    }
                    7 => {
                        let from = [FrameState::Fill, FrameState::Tx][(rng.next() % 2) as usize];
                        t.reclaim_all(from);
                        for s in m.state.iter_mut().filter(|s| **s == from) {
                            *s = FrameState::Free;
                        }
                    }
                    8 => {
                        let pool = any_pool(&mut rng);
                        let mut expected = 0;
                        for i in 0..m.state.len() {
                            if matches!(m.state[i], FrameState::Fill | FrameState::Tx)
                                && m.owner[i] == pool
                            {
                                m.state[i] = FrameState::Free;
                                expected += 1;
                            }
                        }
                        assert_eq!(t.reclaim_pool(pool), expected, "step {step}");
                    }
                    _ => {}
                }
                m.check(&t, step);
            }
        }
    }
}
