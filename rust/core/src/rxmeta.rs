//! Per-packet receive metadata: the [`RxMeta`](afxdp_ebpf_common::RxMeta) an XDP program
//! writes into the XDP metadata area, read back from the 32 bytes right before a received
//! packet in its UMEM frame.
//!
//! # Where the bytes are
//!
//! `bpf_xdp_adjust_meta` grows the metadata area in front of the packet. When the packet is
//! redirected to an AF_XDP socket in copy mode, the kernel copies the metadata together with the
//! packet, so it ends right where the packet starts in the frame (`__xsk_rcv`: `memcpy` from
//! `data_meta` to the frame's `data - meta_len`); in zero-copy mode it is already there. It sits
//! in the 256 bytes of `XDP_PACKET_HEADROOM` the kernel leaves before every received packet, so
//! no UMEM headroom is needed.
//!
//! # Telling metadata from leftovers
//!
//! The rx descriptor does not carry the metadata length, and the kernel does not clear the
//! bytes before a packet: without metadata they hold whatever an earlier packet, or the user,
//! left there. So the layout is fixed (32 bytes) and checked: the last word must be
//! [`RX_META_MAGIC`], and the packet length the program recorded must be this packet's (the
//! descriptor's length, or more when the frame is full: the first frame of a multi-buffer
//! packet). A frame that fails either check has no metadata (`None`), never garbage.
//!
//! # Clocks
//!
//! The built-in program stamps `CLOCK_TAI` (`bpf_ktime_get_tai_ns`); custom programs may stamp
//! `CLOCK_MONOTONIC` (`bpf_ktime_get_ns`) and set [`RX_META_CLOCK_MONOTONIC`]. Both are turned
//! into realtime nanoseconds (the clock of Python's `time.time_ns()`) with
//! [`crate::sys::clock::realtime_offset_ns`]: exact for TAI (the clocks differ by whole
//! seconds), measured at read time for the monotonic clock (tens of ns of error).

use afxdp_ebpf_common::{
    RX_META_CLOCK_MONOTONIC, RX_META_HASH, RX_META_HW_TIMESTAMP, RX_META_LEN, RX_META_MAGIC,
    RX_META_TIMESTAMP,
};

use crate::error::Result;
use crate::sys::XDP_PACKET_HEADROOM;
use crate::sys::clock::{Clock, realtime_offset_ns};
use crate::umem::{Batch, Umem};

pub use afxdp_ebpf_common::RxMeta as RawRxMeta;

/// The receive metadata of one packet, with the kernel timestamp converted to realtime.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxMeta {
    /// When the XDP program saw the packet: nanoseconds since the Unix epoch (realtime).
    pub timestamp: Option<u64>,
    /// The device's receive timestamp, nanoseconds on the device's clock.
    pub hw_timestamp: Option<u64>,
    /// The device's receive hash and its `enum xdp_rss_hash_type`.
    pub hash: Option<(u32, u16)>,
}

/// Decodes the 32 bytes before a packet of `len` bytes in a frame with room for `capacity`
/// bytes from the packet start: `None` unless they hold an [`RawRxMeta`] written for this
/// packet (see the module documentation).
pub fn decode(bytes: &[u8; RX_META_LEN], len: u32, capacity: usize) -> Option<RawRxMeta> {
    // SAFETY: `RawRxMeta` is `#[repr(C)]` plain integers with no padding (asserted in
    // afxdp-ebpf-common), so any 32 bytes are a valid value; the read is unaligned-safe.
    let raw: RawRxMeta = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
    let full = len as usize == capacity && raw.len > len;
    (raw.magic == RX_META_MAGIC && (raw.len == len || full)).then_some(raw)
}

/// Converts kernel clock readings to realtime, measuring each clock's offset once (a batch
/// shares one measurement).
#[derive(Debug, Default)]
pub struct ClockConverter {
    tai: Option<i64>,
    monotonic: Option<i64>,
}

impl ClockConverter {
    /// The realtime nanoseconds of `raw`'s `rx_timestamp`, when it has one.
    pub fn timestamp(&mut self, raw: &RawRxMeta) -> Option<u64> {
        if raw.flags & RX_META_TIMESTAMP == 0 {
            return None;
        }
        let offset = if raw.flags & RX_META_CLOCK_MONOTONIC != 0 {
            *self.monotonic.get_or_insert_with(|| realtime_offset_ns(Clock::Monotonic))
        } else {
            *self.tai.get_or_insert_with(|| realtime_offset_ns(Clock::Tai))
        };
        u64::try_from(i128::from(raw.rx_timestamp) + i128::from(offset)).ok()
    }

    /// `raw` with its timestamp converted.
    pub fn convert(&mut self, raw: &RawRxMeta) -> RxMeta {
        RxMeta {
            timestamp: self.timestamp(raw),
            hw_timestamp: (raw.flags & RX_META_HW_TIMESTAMP != 0).then_some(raw.rx_hw_timestamp),
            hash: (raw.flags & RX_META_HASH != 0).then_some((raw.rx_hash, raw.rx_hash_type)),
        }
    }
}

impl Umem {
    /// Clears the metadata magic before the packet position of each frame at `addrs` (fill
    /// ring addresses: frame starts), when [`Umem::expect_rx_meta`] was called. The caller owns
    /// the frames and has not handed them to the kernel yet.
    pub(crate) fn clear_rx_meta(&self, addrs: &[u64]) {
        if !self.rx_meta_expected() {
            return;
        }
        // Where the kernel puts a received packet: after the headroom and XDP_PACKET_HEADROOM.
        let magic_at = (self.config().headroom + XDP_PACKET_HEADROOM) as usize - 4;
        for &addr in addrs {
            let at = addr as usize + magic_at;
            if at + 4 <= self.len() {
                // SAFETY: inside the mapping (checked), in a frame the caller owns and the
                // kernel does not use until it is on the fill ring.
                unsafe { std::ptr::write_unaligned(self.as_ptr().add(at).cast::<u32>(), 0) };
            }
        }
    }
}

impl Batch {
    /// The raw receive metadata before frame `i`'s packet, if an XDP program wrote it for this
    /// packet (see the module documentation); `None` for a frame whose packet starts less
    /// than 32 bytes into it (an allocated frame without headroom).
    ///
    /// # Errors
    ///
    /// [`crate::Error::InvalidArgument`] (no frame `i`), [`crate::Error::ForkedChild`].
    pub fn raw_rx_meta(&self, i: usize) -> Result<Option<RawRxMeta>> {
        let ptr = self.data_ptr(i)?;
        let d = self.descs()[i];
        if (d.offset as usize) < RX_META_LEN {
            return Ok(None);
        }
        // SAFETY: the batch owns frame `i` exclusively, and the 32 bytes end at its packet
        // start, at least 32 bytes into the frame: inside the frame and the mapping.
        let bytes: [u8; RX_META_LEN] =
            unsafe { std::ptr::read_unaligned(ptr.sub(RX_META_LEN).cast()) };
        Ok(decode(&bytes, d.len, self.capacity(i)?))
    }

    /// Frame `i`'s receive metadata, its timestamp converted to realtime by `clocks`.
    ///
    /// # Errors
    ///
    /// As [`raw_rx_meta`](Self::raw_rx_meta).
    pub fn rx_meta(&self, i: usize, clocks: &mut ClockConverter) -> Result<Option<RxMeta>> {
        Ok(self.raw_rx_meta(i)?.map(|raw| clocks.convert(&raw)))
    }

    /// The realtime receive timestamp of every frame (0 for a frame without one).
    ///
    /// # Errors
    ///
    /// [`crate::Error::ForkedChild`].
    pub fn rx_timestamps(&self) -> Result<Vec<u64>> {
        let mut clocks = ClockConverter::default();
        self.per_frame(|raw| clocks.timestamp(raw))
    }

    /// The device's receive timestamp of every frame (0 for a frame without one).
    ///
    /// # Errors
    ///
    /// [`crate::Error::ForkedChild`].
    pub fn rx_hw_timestamps(&self) -> Result<Vec<u64>> {
        self.per_frame(|raw| (raw.flags & RX_META_HW_TIMESTAMP != 0).then_some(raw.rx_hw_timestamp))
    }

    /// The device's receive hash of every frame (0 for a frame without one).
    ///
    /// # Errors
    ///
    /// [`crate::Error::ForkedChild`].
    pub fn rx_hashes(&self) -> Result<Vec<u64>> {
        self.per_frame(|raw| (raw.flags & RX_META_HASH != 0).then_some(u64::from(raw.rx_hash)))
    }

    /// `field` of each frame's metadata, 0 where the frame has none or `field` gives none.
    fn per_frame(&self, mut field: impl FnMut(&RawRxMeta) -> Option<u64>) -> Result<Vec<u64>> {
        (0..self.len())
            .map(|i| Ok(self.raw_rx_meta(i)?.and_then(|raw| field(&raw)).unwrap_or(0)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::umem::UmemConfig;

    fn bytes_of(meta: &RawRxMeta) -> [u8; RX_META_LEN] {
        // SAFETY: plain integers, no padding (asserted in afxdp-ebpf-common).
        unsafe { std::mem::transmute_copy(meta) }
    }

    fn stamped(len: u32) -> RawRxMeta {
        RawRxMeta {
            rx_timestamp: 1_000,
            flags: RX_META_TIMESTAMP,
            len,
            magic: RX_META_MAGIC,
            ..RawRxMeta::default()
        }
    }

    #[test]
    fn decode_checks_magic_and_length() {
        let meta = stamped(60);
        assert_eq!(decode(&bytes_of(&meta), 60, 3000), Some(meta));
        // Zeroes, a wrong magic, another packet's length: no metadata.
        assert_eq!(decode(&[0; RX_META_LEN], 60, 3000), None);
        assert_eq!(decode(&bytes_of(&RawRxMeta { magic: 0xdead_beef, ..meta }), 60, 3000), None);
        assert_eq!(decode(&bytes_of(&meta), 61, 3000), None);
        assert_eq!(decode(&bytes_of(&meta), 59, 3000), None);
        // The first frame of a multi-buffer packet: full, and shorter than the packet.
        let jumbo = stamped(9000);
        assert_eq!(decode(&bytes_of(&jumbo), 3000, 3000), Some(jumbo));
        assert_eq!(decode(&bytes_of(&jumbo), 2999, 3000), None);
    }

    #[test]
    fn clock_conversion_follows_the_flags() {
        let mut clocks = ClockConverter::default();
        let tai = realtime_offset_ns(Clock::Tai);
        let meta = stamped(60);
        assert_eq!(clocks.timestamp(&meta), Some((1_000 + tai) as u64));
        assert_eq!(clocks.timestamp(&RawRxMeta { flags: 0, ..meta }), None);
        let mono = RawRxMeta {
            rx_timestamp: crate::sys::clock::now_ns(Clock::Monotonic) as u64,
            flags: RX_META_TIMESTAMP | RX_META_CLOCK_MONOTONIC,
            ..meta
        };
        let realtime = clocks.timestamp(&mono).unwrap() as i64;
        let now = crate::sys::clock::now_ns(Clock::Realtime);
        assert!((now - 1_000_000..=now).contains(&realtime), "{realtime} vs {now}");
        let hw = RawRxMeta {
            flags: RX_META_HW_TIMESTAMP | RX_META_HASH,
            rx_hw_timestamp: 7,
            rx_hash: 0xabcd,
            rx_hash_type: 3,
            ..meta
        };
        let converted = clocks.convert(&hw);
        assert_eq!(
            converted,
            RxMeta { timestamp: None, hw_timestamp: Some(7), hash: Some((0xabcd, 3)) }
        );
    }

    #[test]
    fn batch_reads_the_bytes_before_each_packet() {
        let umem = Umem::new(UmemConfig {
            frame_count: 4,
            frame_size: 4096,
            headroom: 256,
            ..UmemConfig::default()
        })
        .unwrap();
        let mut batch = umem.alloc(3);
        for i in 0..3 {
            batch.write(i, &[0xab; 100]).unwrap();
        }
        // Frame 0: metadata for its 100 bytes; frame 1: for another length; frame 2: none.
        let device = RawRxMeta {
            rx_hw_timestamp: 7,
            rx_hash: 0xabcd,
            flags: RX_META_TIMESTAMP | RX_META_HW_TIMESTAMP | RX_META_HASH,
            ..stamped(100)
        };
        for (i, meta) in [(0, device), (1, stamped(64))] {
            let ptr = batch.data_ptr(i).unwrap();
            // SAFETY: the batch owns the frame; its packet starts 256 bytes in.
            unsafe { std::ptr::write_unaligned(ptr.sub(RX_META_LEN).cast::<RawRxMeta>(), meta) };
        }
        assert_eq!(batch.raw_rx_meta(0).unwrap(), Some(device));
        assert_eq!(batch.raw_rx_meta(1).unwrap(), None);
        assert_eq!(batch.raw_rx_meta(2).unwrap(), None);
        let tai = realtime_offset_ns(Clock::Tai);
        assert_eq!(batch.rx_timestamps().unwrap(), vec![(1_000 + tai) as u64, 0, 0]);
        assert_eq!(batch.rx_hw_timestamps().unwrap(), vec![7, 0, 0]);
        assert_eq!(batch.rx_hashes().unwrap(), vec![0xabcd, 0, 0]);
        assert!(batch.raw_rx_meta(3).is_err());
        // Filling clears the magic where the kernel would put it (before headroom + 256),
        // once an XDP program that writes metadata is expected.
        let addr = umem.addr_of(batch.descs()[2].index);
        let magic_at = addr as usize + 256 + XDP_PACKET_HEADROOM as usize - 4;
        // SAFETY: inside frame 2's 4096 bytes, which the batch owns.
        let magic =
            || unsafe { std::ptr::read_unaligned(umem.as_ptr().add(magic_at).cast::<u32>()) };
        // SAFETY: as above.
        unsafe { std::ptr::write_unaligned(umem.as_ptr().add(magic_at).cast(), RX_META_MAGIC) };
        umem.clear_rx_meta(&[addr]);
        assert_eq!(magic(), RX_META_MAGIC, "cleared before expect_rx_meta");
        umem.expect_rx_meta();
        umem.clear_rx_meta(&[addr]);
        assert_eq!(magic(), 0);
        // No room before the packet: None, not a read outside the frame.
        let bare = Umem::new(UmemConfig {
            frame_count: 1,
            frame_size: 4096,
            headroom: 0,
            ..UmemConfig::default()
        })
        .unwrap();
        let mut one = bare.alloc(1);
        one.write(0, &[1; 60]).unwrap();
        assert_eq!(one.raw_rx_meta(0).unwrap(), None);
    }
}
