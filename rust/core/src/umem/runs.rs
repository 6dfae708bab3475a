//! The frame table's moves of whole ring runs on the data path: the receive (rx descriptors
//! from `Fill` to `User`) and the completion (addresses from `Tx` to `Free`), each with its
//! per-frame loop out of line over one run of the ring, so the loop keeps its state in
//! registers.

use super::FrameDesc;
use super::table::{FrameState, FrameTable, POOL_FILL, POOL_TX, PoolId, Slot};
use crate::addr::Addressing;
use crate::sys::{XDP_PKT_CONTD, XdpDesc};

impl FrameTable {
    /// Moves the frame of every rx descriptor of `parts` (in order, across the parts: the two
    /// runs of a ring that wraps around) from `Fill` (on the fill ring of pair `pool`, the
    /// receiving socket's) to `User` and puts it in `frames`, replacing what `frames` held (a
    /// reused vector's stale entries are overwritten, not zeroed first); returns how many
    /// descriptors did not become frames of `frames`.
    ///
    /// With `chains` (a multi-buffer socket), a frame keeps its descriptor's `XDP_PKT_CONTD`
    /// bit (the packet continues in the next descriptor); without, every descriptor is a
    /// packet of its own (the kernel sets the bit only on sockets bound with `XDP_USE_SG`) and
    /// the loop skips the chain bookkeeping.
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
        chains: bool,
        frames: &mut Vec<FrameDesc>,
    ) -> u32 {
        // One loop per chain mode and per chunk mode, so the loop asks neither for every
        // descriptor.
        if chains {
            self.take_received_in::<true>(parts, pool, addressing, frames)
        } else {
            self.take_received_in::<false>(parts, pool, addressing, frames)
        }
    }

    /// [`FrameTable::take_received`] for one chain mode, with the loop of the chunk mode.
    #[inline(always)]
    fn take_received_in<const CHAINS: bool>(
        &mut self,
        parts: &[&[XdpDesc]],
        pool: PoolId,
        addressing: Addressing,
        frames: &mut Vec<FrameDesc>,
    ) -> u32 {
        let frame_size = u64::from(addressing.frame_size());
        match addressing.aligned_shift() {
            Some(shift) => {
                let mask = frame_size - 1;
                self.take_received_by::<CHAINS>(parts, pool, frame_size, frames, |addr| {
                    (addr >> shift, addr & mask)
                })
            }
            None => self.take_received_by::<CHAINS>(parts, pool, frame_size, frames, |addr| {
                // An address that decodes to no frame is refused like one of another owner.
                addressing.decode(addr).map_or((u64::MAX, 0), |d| (d.index, d.offset))
            }),
        }
    }

    /// [`FrameTable::take_received`] with `decode` taking an address apart into (frame index,
    /// offset) (`u64::MAX` for an address that names no frame); `CHAINS`: whether packets may
    /// span descriptors.
    #[inline(always)]
    fn take_received_by<const CHAINS: bool>(
        &mut self,
        parts: &[&[XdpDesc]],
        pool: PoolId,
        frame_size: u64,
        frames: &mut Vec<FrameDesc>,
        decode: impl Fn(u64) -> (u64, u64),
    ) -> u32 {
        let slots = &mut self.slots[..];
        let fill = Slot::new(FrameState::Fill, pool);
        let seen: usize = parts.iter().map(|p| p.len()).sum();
        // Written by index into room made beforehand (no growth check per frame), then cut to
        // what was taken.
        frames.resize(seen, FrameDesc::default());
        let out = &mut frames[..];
        let mut k = 0;
        // Frames that leave `Fill` for the free pool: refused descriptors, and (`CHAINS`) the
        // other frames of a packet that had one.
        let mut freed = 0;
        // Whether a descriptor past its frame's end left a frame `REFUSED`.
        let mut refused = false;
        if CHAINS {
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
                                // Into the free pool after the loop: no call in this loop, so
                                // its state stays in registers.
                                *slot = Slot::REFUSED;
                                refused = true;
                                freed += 1;
                                broken = true;
                            } else {
                                *slot = Slot::USER;
                                // `index` indexed the state table, so it is below the
                                // frame count; at most one frame per descriptor, so
                                // `k < seen`.
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
                                slots[f.index as usize] = Slot::FREE;
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
        } else {
            // Every descriptor is a packet of its own: each run goes through a loop out of
            // line, whose state fits in registers.
            for part in parts {
                let (taken, refusals) =
                    take_run(slots, part, &mut out[k..], fill, frame_size, &decode);
                k += taken;
                freed += refusals;
                refused |= refusals != 0;
            }
        }
        if refused {
            for d in parts.iter().flat_map(|part| part.iter()) {
                let i = usize::try_from(decode(d.addr).0).unwrap_or(usize::MAX);
                if let Some(slot) = slots.get_mut(i)
                    && *slot == Slot::REFUSED
                {
                    *slot = Slot::FREE;
                    self.free.push(i as u32);
                }
            }
        }
        frames.truncate(k);
        let moved = k as u32;
        self.counts[FrameState::Fill as usize] -= moved + freed;
        self.counts[FrameState::User as usize] += moved;
        self.counts[FrameState::Free as usize] += freed;
        self.pool(pool)[POOL_FILL] -= moved + freed;
        seen as u32 - moved
    }

    /// Whether every rx descriptor of `parts` can be lent where it is
    /// ([`crate::socket::Socket::recv_with`]): its frame in `Fill` on the fill ring of pair
    /// `pool` (the receiving socket's) and its packet inside the frame. Reads the table and
    /// changes nothing.
    pub(crate) fn lendable(
        &self,
        parts: &[&[XdpDesc]],
        pool: PoolId,
        addressing: Addressing,
    ) -> bool {
        let fill = Slot::new(FrameState::Fill, pool);
        let frame_size = u64::from(addressing.frame_size());
        let slots = &self.slots[..];
        parts.iter().all(|part| match addressing.aligned_shift() {
            Some(shift) => {
                let mask = frame_size - 1;
                all_in_fill(slots, part, fill, frame_size, &|addr| (addr >> shift, addr & mask))
            }
            None => all_in_fill(slots, part, fill, frame_size, &|addr| {
                addressing.decode(addr).map_or((u64::MAX, 0), |d| (d.index, d.offset))
            }),
        })
    }

    /// Moves the frame of every completion address of `parts` (in order, across the parts: the
    /// two runs of a ring that wraps around) from `Tx` through pair `pool` to `Free`, and
    /// accounts the counts; an address whose frame is not in `Tx` on that pair (or that names
    /// no frame) is left alone. Returns how many frames moved. Addresses are decoded by
    /// `addressing`, the offset ignored. For a UMEM that tracks completion timestamps, which
    /// must read each frame's, [`FrameTable::take_completed`] goes one frame at a time.
    pub(crate) fn take_completions(
        &mut self,
        parts: &[&[u64]],
        pool: PoolId,
        addressing: Addressing,
    ) -> u32 {
        // Written into room made at the free list's end beforehand, then cut to what moved.
        let seen: usize = parts.iter().map(|p| p.len()).sum();
        let base = self.free.len();
        self.free.resize(base + seen, 0);
        let slots = &mut self.slots[..];
        let out = &mut self.free[base..];
        let tx = Slot::new(FrameState::Tx, pool);
        let mut k = 0;
        // One loop per chunk mode, so the loop does not ask for every address.
        for part in parts {
            k += match addressing.aligned_shift() {
                Some(shift) => free_run(slots, part, &mut out[k..], tx, &|addr| addr >> shift),
                None => free_run(slots, part, &mut out[k..], tx, &|addr| {
                    addressing.decode(addr).map_or(u64::MAX, |d| d.index)
                }),
            };
        }
        self.free.truncate(base + k);
        self.completed(k as u32, pool);
        k as u32
    }

    /// Moves frame `index` from `Tx` through pair `pool` to `Free` (the kernel handed it back
    /// on that pair's completion ring); false, and nothing changes, when it is not in `Tx` on
    /// that pair. The caller accounts the counts with [`FrameTable::completed`] once per batch.
    #[inline]
    pub(crate) fn take_completed(&mut self, index: u64, pool: PoolId) -> bool {
        let i = usize::try_from(index).unwrap_or(usize::MAX);
        match self.slots.get_mut(i) {
            Some(slot) if *slot == Slot::new(FrameState::Tx, pool) => {
                *slot = Slot::FREE;
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
}

/// The single-buffer receive loop of [`FrameTable::take_received`] over one run of
/// descriptors, into `out` (as long as `descs`, or shorter: the loop stops at its end): moves
/// the frame of each descriptor from `fill` to `User` and writes it at the descriptor's place
/// in `out`, or, for a descriptor past its frame's end, marks the frame `REFUSED`; skips a
/// descriptor whose frame is not in `fill`. The entries of skipped and refused descriptors are
/// then closed up, so the frames taken are at the start of `out`. Returns how many it took
/// and how many it refused.
///
/// Out of line, with one position for the descriptors and their entries (no bounds check per
/// frame), so the loop holds its state in registers.
#[inline(never)]
fn take_run(
    slots: &mut [Slot],
    descs: &[XdpDesc],
    out: &mut [FrameDesc],
    fill: Slot,
    frame_size: u64,
    decode: &impl Fn(u64) -> (u64, u64),
) -> (usize, u32) {
    // The entry of a skipped or refused descriptor, closed up at the end.
    const HOLE: FrameDesc = FrameDesc { index: NO_FRAME, offset: 0, len: 0, options: 0 };
    let n = descs.len().min(out.len());
    let out = &mut out[..n];
    let mut holes = 0;
    let mut refused = 0;
    for (d, o) in descs.iter().zip(out.iter_mut()) {
        let (index, offset) = decode(d.addr);
        match slots.get_mut(usize::try_from(index).unwrap_or(usize::MAX)) {
            Some(slot) if *slot == fill => {
                if offset + u64::from(d.len) > frame_size {
                    *slot = Slot::REFUSED;
                    refused += 1;
                    holes += 1;
                    *o = HOLE;
                } else {
                    *slot = Slot::USER;
                    *o = FrameDesc {
                        index: index as u32,
                        offset: offset as u32,
                        len: d.len,
                        options: 0,
                    };
                }
            }
            _ => {
                holes += 1;
                *o = HOLE;
            }
        }
    }
    let taken = if holes == 0 { n } else { close_up(out, |d| d.index != NO_FRAME) };
    (taken, refused)
}

/// The loop of [`FrameTable::lendable`] over one run of descriptors: whether each one's frame
/// (by `decode`, as in [`take_run`]) is in `fill` and its packet inside the frame.
#[inline(never)]
fn all_in_fill(
    slots: &[Slot],
    descs: &[XdpDesc],
    fill: Slot,
    frame_size: u64,
    decode: &impl Fn(u64) -> (u64, u64),
) -> bool {
    // No early exit: the loop stays branch-free but for the one test at its end.
    let mut ok = true;
    for d in descs {
        let (index, offset) = decode(d.addr);
        let in_fill = slots.get(usize::try_from(index).unwrap_or(usize::MAX)) == Some(&fill);
        ok &= in_fill & (offset + u64::from(d.len) <= frame_size);
    }
    ok
}

/// The loop of [`FrameTable::take_completions`] over one run of completion addresses, into
/// `out` (as long as `addrs`, or shorter: the loop stops at its end): moves the frame that
/// `index_of` finds for each address (`u64::MAX`: none) from `tx` to `Free` and writes its
/// index at the address's place in `out`; then closes up the places of the addresses left
/// alone. Returns how many frames it moved, their indices at the start of `out`. Out of line,
/// as [`take_run`].
#[inline(never)]
fn free_run(
    slots: &mut [Slot],
    addrs: &[u64],
    out: &mut [u32],
    tx: Slot,
    index_of: &impl Fn(u64) -> u64,
) -> usize {
    let n = addrs.len().min(out.len());
    let out = &mut out[..n];
    let mut holes = 0;
    for (&addr, o) in addrs.iter().zip(out.iter_mut()) {
        let index = index_of(addr);
        match slots.get_mut(usize::try_from(index).unwrap_or(usize::MAX)) {
            Some(slot) if *slot == tx => {
                *slot = Slot::FREE;
                // Below the frame count: it indexed the state table.
                *o = index as u32;
            }
            _ => {
                holes += 1;
                *o = NO_FRAME;
            }
        }
    }
    if holes == 0 { n } else { close_up(out, |&i| i != NO_FRAME) }
}

/// Moves the entries of `v` that are `kept` to its start, in order; returns how many.
fn close_up<T: Copy>(v: &mut [T], kept: impl Fn(&T) -> bool) -> usize {
    let mut k = 0;
    for i in 0..v.len() {
        if kept(&v[i]) {
            v[k] = v[i];
            k += 1;
        }
    }
    k
}

/// The frame index of no frame: a table's frame count is a `u32`, so its indices stay below.
const NO_FRAME: u32 = u32::MAX;
