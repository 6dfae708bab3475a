//! [`Batch`]: frames owned by the user, and [`FrameDesc`], what a batch knows of each frame.

use std::sync::Weak;

use super::Umem;
use crate::error::{Error, Result};
use crate::socket::Refill;
use crate::sys::{XDP_PKT_CONTD, XDP_TX_METADATA};

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

/// Frames owned exclusively by the user. Dropping the batch returns them to the free pool, or,
/// for a batch received on a socket with `autofill` that is still open, straight to its fill
/// ring as far as the ring lacks frames (see [`crate::socket::SocketConfig::autofill`]).
pub struct Batch {
    umem: Umem,
    pub(super) frames: Vec<FrameDesc>,
    /// Where a received batch's frames go back (its socket's pair), while the socket lives.
    refill: Option<Weak<Refill>>,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch").field("frames", &self.frames).finish()
    }
}

impl Batch {
    /// A batch of frames that were just moved to `User` state by the caller.
    pub(crate) fn from_owned(umem: Umem, frames: Vec<FrameDesc>) -> Batch {
        Batch { umem, frames, refill: None }
    }

    /// A batch of frames just received (moved to `User`), whose frames go back through
    /// `refill` when it is let go of.
    pub(crate) fn received(umem: Umem, frames: Vec<FrameDesc>, refill: Weak<Refill>) -> Batch {
        Batch { umem, frames, refill: Some(refill) }
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

    /// Bytes from the packet start of `d` (one of this batch's) to the end of its frame.
    fn room(&self, d: &FrameDesc) -> usize {
        (self.umem.config().frame_size - d.offset) as usize
    }

    /// Where the packet of `d` (one of this batch's) starts in the region: below its size, as
    /// `index < frame_count` and `offset < frame_size` (both set only by this module).
    fn packet_offset(&self, d: &FrameDesc) -> usize {
        self.umem.addr_of(d.index) as usize + d.offset as usize
    }

    /// Bytes from the packet start to the end of frame `i`.
    pub fn capacity(&self, i: usize) -> Result<usize> {
        Ok(self.room(self.desc(i)?))
    }

    /// Pointer to the packet start of frame `i` (valid while the batch owns the frame).
    pub fn data_ptr(&self, i: usize) -> Result<*mut u8> {
        let off = self.packet_offset(self.desc(i)?);
        // SAFETY: `off` is inside the mapped region (`packet_offset`).
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

    /// Writes `data` at byte `offset` of every packet (e.g. a MAC address), leaving the lengths
    /// as they are: in its first frame, where a packet spans several (multi-buffer; the rest
    /// are payload). Checked first, so either every packet is written or none.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming the first packet's first frame that is shorter than
    /// `offset + data.len()`.
    pub fn write_at(&mut self, offset: usize, data: &[u8]) -> Result<()> {
        let end = offset.checked_add(data.len()).ok_or_else(|| Error::InvalidArgument {
            name: "offset",
            value: offset.to_string(),
            why: format!("offset + {} bytes overflows", data.len()),
        })?;
        let firsts = self.packet_starts();
        for &i in &firsts {
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
        for i in firsts {
            self.area_mut(i)?[offset..end].copy_from_slice(data);
        }
        Ok(())
    }

    /// The positions of the frames that start a packet: every frame, except those that
    /// continue a multi-buffer chain (after a frame with [`FrameDesc::MORE`]).
    pub(crate) fn packet_starts(&self) -> Vec<usize> {
        let mut first = true;
        let mut out = Vec::with_capacity(self.len());
        for (i, d) in self.frames.iter().enumerate() {
            if first {
                out.push(i);
            }
            first = !d.more();
        }
        out
    }

    /// Copies `packet` into every frame, each then a whole packet (a multi-buffer chain's
    /// [`FrameDesc::MORE`] flags are cleared); checked against the smallest capacity first, so
    /// either every frame is written or none.
    pub fn write_all(&mut self, packet: &[u8]) -> Result<()> {
        for i in 0..self.frames.len() {
            let capacity = self.capacity(i)?;
            if packet.len() > capacity {
                return Err(Error::PacketTooLong { len: packet.len(), capacity });
            }
        }
        for i in 0..self.frames.len() {
            self.write(i, packet)?;
            self.frames[i].options &= !FrameDesc::MORE;
        }
        Ok(())
    }

    /// Swaps the destination and source MAC addresses (bytes 0..6 and 6..12) of every packet,
    /// in place: the l2fwd edit. A packet spanning several frames (multi-buffer) is edited in
    /// its first (the rest are payload). Checked first, so either every packet is edited or
    /// none.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming the first packet's first frame shorter than 12 bytes;
    /// [`Error::PacketTooLong`] for a length written in place past its frame.
    pub fn swap_macs(&mut self) -> Result<()> {
        self.umem.check_fork()?;
        let mut continues = false;
        for (i, d) in self.frames.iter().enumerate() {
            let first = !continues;
            continues = d.more();
            if !first {
                continue;
            }
            if d.len < 12 {
                return Err(Error::InvalidArgument {
                    name: "frame length",
                    value: d.len.to_string(),
                    why: format!("frame {i} is shorter than two MAC addresses (12 bytes)"),
                });
            }
            // A length written in place past the frame (as `data` refuses it).
            let capacity = self.room(d);
            if d.len as usize > capacity {
                return Err(Error::PacketTooLong { len: d.len as usize, capacity });
            }
        }
        // One pass over the descriptors, no per-frame lookup: this runs once per packet in a
        // forwarding loop.
        // The region's start read once: the writes below could alias the UMEM's fields as far
        // as the compiler knows, so it would reload them for every frame.
        let region = self.umem.as_ptr();
        let mut continues = false;
        for d in &self.frames {
            let first = !continues;
            continues = d.more();
            if !first {
                continue;
            }
            // SAFETY: the batch owns the frame exclusively (state User), `packet_offset` is
            // inside the region and `offset + 12 <= offset + len <= frame_size` (checked
            // above), so the 12 bytes are inside this frame, and nothing else accesses them
            // while `&mut self` is held.
            let macs =
                unsafe { std::slice::from_raw_parts_mut(region.add(self.packet_offset(d)), 12) };
            let (dst, src) = macs.split_at_mut(6);
            dst.swap_with_slice(src);
        }
        Ok(())
    }

    /// Copies the packets of `src` into this batch's frames, in order, with their lengths and
    /// chain flags ([`FrameDesc::MORE`]): `min(self.len(), src.len())` frames, less those of a
    /// multi-buffer packet that would not fit whole; the count of frames is returned. The two
    /// batches may belong to different UMEMs (forwarding between interfaces). Checked first,
    /// so either every frame is written or none.
    ///
    /// # Errors
    ///
    /// [`Error::PacketTooLong`] when a frame of `src` does not fit its destination frame.
    pub fn copy_from(&mut self, src: &Batch) -> Result<usize> {
        let mut n = self.len().min(src.len());
        if n < src.len() {
            // Whole packets only: a chain cut short would end this batch mid-packet.
            while n > 0 && src.frames[n - 1].more() {
                n -= 1;
            }
        }
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
            self.set_more(i, src.frames[i].more())?;
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

    /// Returns every frame now: to the free pool, or, as on drop, to the socket's fill ring.
    pub fn release(mut self) {
        self.release_all();
    }

    fn release_all(&mut self) {
        if self.frames.is_empty() {
            return;
        }
        let n = self.frames.len();
        let frames = std::mem::take(&mut self.frames);
        // In a forked child the frames are the parent's, and so are the rings (the child has
        // no mapping of them, `MADV_DONTFORK`): nothing is handed back, not even to the
        // child's copy of the table, which is never used again and whose lock may have been
        // copied held by a thread the child does not have.
        if self.umem.check_fork().is_err() {
            return;
        }
        if let Some(refill) = self.refill.as_ref().and_then(Weak::upgrade) {
            refill.put_back(frames);
            return;
        }
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
