//! The frame table: the state of every frame ([`FrameState`]), the ring pair it went through,
//! and the free pool. The only place a frame changes state (see the module doc of
//! [`crate::umem`] for the ownership model).

use super::FrameDesc;
use crate::addr::Addressing;
use crate::error::{Error, Result};

/// Where a frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
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

/// A frame's entry in the [`FrameTable`], one `u32` so that checking a frame is one compare
/// and moving it one store: its [`FrameState`] in the low byte and, for a frame in `Fill` or
/// `Tx`, the [`PoolId`] of the fill/completion ring pair it went through in the high 16 bits
/// (0 in the other states, so a state has one entry there). A received frame must come from
/// the fill ring of the receiving socket's pair and a completion from the pair's completion
/// ring, so a frame put on one pair's fill ring is never taken as another pair's.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct Slot(u32);

impl Slot {
    pub(super) const FREE: Slot = Slot::new(FrameState::Free, 0);
    pub(super) const USER: Slot = Slot::new(FrameState::User, 0);
    /// A frame the receive loop refused (its descriptor ran past the frame's end), until the
    /// loop's end puts it in the free pool: `Free` with an owner, a slot no frame keeps
    /// outside that loop.
    pub(super) const REFUSED: Slot = Slot(FrameState::Free as u32 | 0xffff << 16);

    /// The entry of a frame in `state` through pair `owner` (0 unless `Fill` or `Tx`).
    #[inline(always)]
    pub(super) const fn new(state: FrameState, owner: PoolId) -> Slot {
        Slot(state as u32 | (owner as u32) << 16)
    }

    /// The frame's state.
    pub(super) fn state(self) -> FrameState {
        match self.0 & 0xff {
            0 => FrameState::Free,
            1 => FrameState::Fill,
            2 => FrameState::User,
            _ => FrameState::Tx,
        }
    }

    /// The ring pair of a frame in `Fill` or `Tx` (0 in the other states).
    pub(super) fn owner(self) -> PoolId {
        (self.0 >> 16) as PoolId
    }
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot").field("state", &self.state()).field("owner", &self.owner()).finish()
    }
}

/// The state of every frame, plus the free pool as a stack of frame indices.
#[derive(Debug)]
pub struct FrameTable {
    pub(super) slots: Vec<Slot>,
    /// Per [`PoolId`]: how many frames are in `Fill` and in `Tx` through that pair.
    pool_counts: Vec<[u32; 2]>,
    pub(super) free: Vec<u32>,
    pub(super) counts: [u32; 4],
    /// Descriptor vectors of released batches (their stale entries left in), reused by the
    /// next receive so a batch costs no allocation, and its room no zeroing, in a steady
    /// receive loop.
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
/// is gone; a [`FrameTable`] used without sockets (the crate's tests) puts
/// everything through pair 0.
pub type PoolId = u16;

/// Index into a pool's counts.
pub(super) const POOL_FILL: usize = 0;
pub(super) const POOL_TX: usize = 1;

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
    pub(super) fn new(frame_count: u32) -> FrameTable {
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
    pub(super) fn track_tx_stamps(&mut self) {
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
    ///
    /// Crate-only, as every move: from outside, safe code could take a frame from the kernel
    /// or from a lent view (`Fill` → `Free`) and `alloc` it into a batch that writes it.
    pub(crate) fn transition(
        &mut self,
        index: u32,
        from: FrameState,
        to: FrameState,
        frame_size: u32,
    ) -> Result<()> {
        if from == FrameState::Free {
            return Err(not_owned(index, frame_size, "free"));
        }
        let slot = self.slots.get_mut(index as usize).ok_or_else(|| Error::InvalidArgument {
            name: "frame address",
            value: (u64::from(index) * u64::from(frame_size)).to_string(),
            why: "outside the UMEM".into(),
        })?;
        if slot.state() != from {
            return Err(not_owned(index, frame_size, slot.state().name()));
        }
        let owner = slot.owner();
        // Through pair 0 when `to` is `Fill` or `Tx`.
        *slot = Slot::new(to, 0);
        let to_pool = pool_slot(to);
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
    pub(super) fn pool(&mut self, pool: PoolId) -> &mut [u32; 2] {
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

    /// Moves the frames of `frames` from `User` to `Tx` through ring pair `pool` (a socket
    /// queued them on its tx ring; they come back on that pair's completion ring), all or none:
    /// a frame not in `User` (never one of a batch's: a batch owns its frames) fails the call,
    /// naming it, before anything moves.
    pub(crate) fn queue_for_tx(
        &mut self,
        frames: &[FrameDesc],
        pool: PoolId,
        frame_size: u32,
    ) -> Result<()> {
        let slots = &mut self.slots[..];
        for d in frames {
            match slots.get(d.index as usize) {
                Some(&slot) if slot == Slot::USER => {}
                other => {
                    let state = other.map_or("outside the UMEM", |s| s.state().name());
                    return Err(not_owned(d.index, frame_size, state));
                }
            }
        }
        let tx = Slot::new(FrameState::Tx, pool);
        let mut n = 0;
        for d in frames {
            // Checked above: inside the table. A frame listed twice moves once.
            let slot = &mut slots[d.index as usize];
            if *slot == Slot::USER {
                *slot = tx;
                n += 1;
            }
        }
        self.counts[FrameState::User as usize] -= n;
        self.counts[FrameState::Tx as usize] += n;
        self.pool(pool)[POOL_TX] += n;
        Ok(())
    }

    /// Takes up to `n` frames from the free pool into state `to`.
    pub(crate) fn take_free(&mut self, n: usize, to: FrameState, out: &mut Vec<u32>) {
        let n = n.min(self.free.len());
        let start = self.free.len() - n;
        let taken = &self.free[start..];
        // Two tight loops (no `Vec` length stored back per element through the `&mut`).
        out.extend(taken.iter().rev());
        for &index in taken {
            self.slots[index as usize] = Slot::new(to, 0);
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
                && *slot == Slot::USER
            {
                *slot = Slot::FREE;
                out[k] = d.index;
                k += 1;
            }
        }
        self.free.truncate(base + k);
        self.counts[FrameState::User as usize] -= k as u32;
        self.counts[FrameState::Free as usize] += k as u32;
        k as u32
    }

    /// Moves the frames of `frames` (a received batch's, let go of) from `User` straight to
    /// `Fill` on the fill ring of pair `pool`, writing their ring addresses (each frame's start)
    /// into `out` from its start, until `out` is full or `frames` ends; a frame not in `User`
    /// is skipped and left alone (it would be a bug in this crate). Returns how many entries of
    /// `frames` it went through and how many addresses it wrote.
    pub(crate) fn refill_from_users(
        &mut self,
        frames: &[FrameDesc],
        pool: PoolId,
        addressing: Addressing,
        out: &mut [u64],
    ) -> (usize, u32) {
        // One loop per chunk mode, so the loop does not ask for every frame.
        match addressing.aligned_shift() {
            Some(shift) => self.refill_by(frames, pool, out, |index| u64::from(index) << shift),
            None => self.refill_by(frames, pool, out, |index| addressing.frame_start(index)),
        }
    }

    /// [`FrameTable::refill_from_users`] with `start` giving a frame's ring address. Out of
    /// line, so its loop holds its state in registers (inlined into `Refill::put_back`, it
    /// spilled three values to the stack and cost 15 instructions per frame instead of 12).
    #[inline(never)]
    fn refill_by(
        &mut self,
        frames: &[FrameDesc],
        pool: PoolId,
        out: &mut [u64],
        start: impl Fn(u32) -> u64,
    ) -> (usize, u32) {
        let slots = &mut self.slots[..];
        let fill = Slot::new(FrameState::Fill, pool);
        // A batch's frames are all `User`: frame `i` goes to slot `i`, until the first frame
        // that is not (never, barring a bug) or the end of `frames` or of `out`.
        let n = frames.len().min(out.len());
        let mut k = 0;
        for (d, addr) in frames[..n].iter().zip(&mut out[..n]) {
            match slots.get_mut(d.index as usize) {
                Some(slot) if *slot == Slot::USER => {
                    *slot = fill;
                    *addr = start(d.index);
                    k += 1;
                }
                _ => break,
            }
        }
        // After such a frame: skip it and any other, writing the next slots from the frames
        // after it.
        let mut used = k;
        for d in &frames[k..] {
            if k == out.len() {
                break;
            }
            used += 1;
            if let Some(slot) = slots.get_mut(d.index as usize)
                && *slot == Slot::USER
            {
                *slot = fill;
                out[k] = start(d.index);
                k += 1;
            }
        }
        self.counts[FrameState::User as usize] -= k as u32;
        self.counts[FrameState::Fill as usize] += k as u32;
        self.pool(pool)[POOL_FILL] += k as u32;
        (used, k as u32)
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
                *slot = Slot::new(FrameState::Fill, pool);
            }
            *addr = addressing.frame_start(index);
        }
        self.free.truncate(start);
        self.counts[FrameState::Free as usize] -= n as u32;
        self.counts[FrameState::Fill as usize] += n as u32;
        self.pool(pool)[POOL_FILL] += n as u32;
        n as u32
    }

    /// A vector with room for `n` descriptors, for [`FrameTable::take_received`] to fill: a
    /// released batch's, when one is kept, with its stale entries still in it (they are
    /// overwritten, which saves zeroing the room first).
    pub(crate) fn desc_vec(&mut self, n: usize) -> Vec<FrameDesc> {
        match self.spare.pop() {
            Some(mut v) => {
                v.reserve(n.saturating_sub(v.len()));
                v
            }
            None => Vec::with_capacity(n),
        }
    }

    /// Keeps a released batch's vector for [`FrameTable::desc_vec`], entries and all: it goes
    /// nowhere but into [`FrameTable::take_received`], which overwrites them.
    pub(crate) fn keep_vec(&mut self, v: Vec<FrameDesc>) {
        if self.spare.len() < SPARE_VECS && v.capacity() != 0 && v.capacity() <= 1 << 16 {
            self.spare.push(v);
        }
    }

    /// Puts every frame in state `from` back into the free pool (after the kernel let go of them).
    #[cfg(test)]
    pub(crate) fn reclaim_all(&mut self, from: FrameState) {
        for index in 0..self.slots.len() as u32 {
            let slot = &mut self.slots[index as usize];
            if slot.state() == from {
                *slot = Slot::FREE;
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
            let (s, owner) = (self.slots[index].state(), self.slots[index].owner());
            if matches!(s, FrameState::Fill | FrameState::Tx) && owner == pool {
                self.counts[s as usize] -= 1;
                self.slots[index] = Slot::FREE;
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
        self.slots.get(index as usize).map(|s| s.state())
    }

    /// How many frames are in `state`.
    pub fn count(&self, state: FrameState) -> u32 {
        self.counts[state as usize]
    }
}

/// [`Error::FrameNotOwned`] for frame `index`, found `state` where a move needed it elsewhere.
fn not_owned(index: u32, frame_size: u32, state: &'static str) -> Error {
    Error::FrameNotOwned { index, addr: u64::from(index) * u64::from(frame_size), state }
}
