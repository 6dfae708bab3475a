//! Per-packet transmit metadata (`XDP_UMEM_TX_METADATA_LEN`, Linux ≥ 6.8): a request written in
//! the [`TX_META_LEN`] bytes right before a packet in its UMEM frame, which the kernel acts on
//! when the tx descriptor carries `XDP_TX_METADATA`: a checksum offload, a completion
//! timestamp, a launch time.
//!
//! # Where the bytes are
//!
//! A UMEM made with [`UmemConfig::tx_metadata`](crate::umem::UmemConfig::tx_metadata) is
//! registered with `tx_metadata_len` = 24 (`struct xsk_tx_metadata`). The kernel then requires
//! that room before the packet of *every* tx descriptor, inside the same chunk
//! (`xp_aligned_validate_desc`/`xp_unaligned_validate_desc`: a descriptor without it is
//! invalid and skipped, counted in `tx_invalid_descs`), whether or not it carries a request. So allocated
//! frames start their packet after it ([`UmemConfig::tx_offset`](crate::umem::UmemConfig::tx_offset)),
//! received frames have it in the kernel's 256 bytes of receive headroom (where an XDP
//! program's receive metadata may be: a request overwrites it), and `send` refuses a frame
//! whose packet starts less than 24 bytes into it.
//!
//! # Requests, and frames that must not keep them
//!
//! A request is written into the frame by the [`Batch`] methods below, and the frame's
//! descriptor gets [`FrameDesc::TX_METADATA`]. The bit lives in the batch, never in the
//! UMEM: a frame fresh from `alloc` or `recv` has a new descriptor without it, so whatever a
//! frame's earlier use left in the bytes before its packet is never sent as a request. The
//! first request on a frame clears the 24 bytes.
//!
//! Copy mode (`xsk_skb_metadata`, `net/xdp/xsk.c`) fails the whole `sendto` with EINVAL and
//! leaves the descriptor on the tx ring when a request has an unknown flag or a checksum that
//! runs past the descriptor's length: the ring would never move again. So `send` checks each
//! request the way the kernel does first (`Batch::tx_meta_for_send`).
//!
//! # Completion timestamps
//!
//! The kernel writes the completion timestamp over the first 8 bytes of the request union
//! (`completion.tx_timestamp`, where `csum_start`, `csum_offset` and padding were). Copy mode
//! writes a software timestamp, `CLOCK_TAI`, when the skb is freed (`xsk_destruct_skb`; on
//! veth that is when the peer takes the packet); zero-copy drivers write the device's, if
//! they implement `tmo_fill_timestamp`. The frame table remembers which sent frames asked
//! for one; [`Socket::complete`](crate::socket::Socket::complete) reads those as the frames
//! come back and keeps them, converted to realtime, for
//! [`Socket::take_tx_timestamps`](crate::socket::Socket::take_tx_timestamps). A value below
//! 2^32 cannot be a timestamp (that is 1970 plus 4 s on `CLOCK_TAI`) and is what was written
//! as the request (afxdp zeroes the padding), so a driver that wrote nothing yields nothing.

use crate::error::{Error, Result};
use crate::sys::clock::{Clock, realtime_offset_ns};
use crate::sys::{
    XDP_TXMD_FLAGS_CHECKSUM, XDP_TXMD_FLAGS_LAUNCH_TIME, XDP_TXMD_FLAGS_TIMESTAMP,
    XDP_TXMD_FLAGS_VALID, XskTxMetadata,
};
use crate::umem::{Batch, FrameDesc, Umem};

/// Bytes of tx metadata room before every tx packet (`sizeof(struct xsk_tx_metadata)`, a
/// multiple of 8 below 256 as `xdp_umem_reg` requires).
pub const TX_META_LEN: u32 = std::mem::size_of::<XskTxMetadata>() as u32;

/// The size of the checksum field a checksum request fills (`sizeof(__sum16)`).
const CSUM_LEN: u32 = 2;

/// The request of one frame, as the request methods set it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxRequest {
    /// Checksum offload: `(start, offset)`, the checksum covering the packet from byte `start`
    /// to its end and stored at byte `start + offset`.
    pub checksum: Option<(u16, u16)>,
    /// Whether the completion timestamp is asked for.
    pub timestamp: bool,
    /// The launch time, nanoseconds since the epoch on the realtime clock.
    pub launch_time: Option<u64>,
}

/// The completion timestamp of one frame sent with a timestamp request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxTimestamp {
    /// The frame's number in the UMEM (as `FrameDesc::index` was when it was sent).
    pub index: u32,
    /// When the kernel completed it: nanoseconds since the epoch, realtime (converted exactly
    /// from `CLOCK_TAI`).
    pub timestamp: u64,
}

/// The TAI−realtime conversion of launch times: TAI ns for realtime ns `t`.
fn realtime_to_tai(t: u64) -> Result<u64> {
    u64::try_from(i128::from(t) - i128::from(realtime_offset_ns(Clock::Tai))).map_err(|_| {
        Error::InvalidArgument {
            name: "launch_time",
            value: t.to_string(),
            why: "out of range of CLOCK_TAI".into(),
        }
    })
}

/// Realtime ns for TAI ns `t` (0 when out of range).
fn tai_to_realtime(t: u64, offset: i64) -> u64 {
    u64::try_from(i128::from(t) + i128::from(offset)).unwrap_or(0)
}

/// Reads the request before a packet at `ptr`.
///
/// # Safety
///
/// `ptr - TX_META_LEN .. ptr` must be inside the UMEM mapping, in a frame the caller owns.
unsafe fn read_meta(ptr: *const u8) -> XskTxMetadata {
    // SAFETY: the caller's contract; the struct is plain integers (any bytes are a value) and
    // the read is unaligned-safe.
    unsafe { std::ptr::read_unaligned(ptr.sub(TX_META_LEN as usize).cast()) }
}

impl Batch {
    /// The packet start of frame `i`, checked to have the metadata room before it.
    fn meta_at(&self, i: usize) -> Result<*mut u8> {
        let ptr = self.data_ptr(i)?;
        if !self.umem().config().tx_metadata {
            return Err(Error::InvalidArgument {
                name: "tx_metadata",
                value: "False".into(),
                why: "tx requests (checksum, timestamp, launch time) need the metadata room \
                      of a Umem made with tx_metadata=True"
                    .into(),
            });
        }
        let d = self.descs()[i];
        if d.offset < TX_META_LEN {
            return Err(Error::InvalidArgument {
                name: "frame offset",
                value: d.offset.to_string(),
                why: format!(
                    "frame {i} of the batch has its packet {} bytes into the frame; tx \
                     metadata needs {TX_META_LEN} bytes before it",
                    d.offset
                ),
            });
        }
        Ok(ptr)
    }

    /// The raw request before frame `i`'s packet: zeroes when the frame has none.
    fn raw_tx_meta(&self, i: usize) -> Result<XskTxMetadata> {
        let ptr = self.meta_at(i)?;
        if self.descs()[i].options & FrameDesc::TX_METADATA == 0 {
            return Ok(XskTxMetadata::default());
        }
        // SAFETY: `meta_at` checked the 24 bytes are inside frame `i`, which the batch owns.
        Ok(unsafe { read_meta(ptr) })
    }

    /// Applies `edit` to frame `i`'s request (a zeroed one if it has none) and writes it back;
    /// the frame carries a request from then on, unless `edit` leaves no flag.
    fn edit_tx_meta(&mut self, i: usize, edit: impl FnOnce(&mut XskTxMetadata)) -> Result<()> {
        let mut meta = self.raw_tx_meta(i)?;
        edit(&mut meta);
        let ptr = self.meta_at(i)?;
        // SAFETY: as in `raw_tx_meta`; `&mut self` makes this the only access to the frame.
        unsafe { std::ptr::write_unaligned(ptr.sub(TX_META_LEN as usize).cast(), meta) };
        self.set_tx_meta_bit(i, meta.flags != 0);
        Ok(())
    }

    /// Frame `i`'s tx request (nothing requested for a frame without one).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] without tx metadata (`tx_metadata`), or for a frame whose
    /// packet starts less than [`TX_META_LEN`] bytes into it.
    pub fn tx_request(&self, i: usize) -> Result<TxRequest> {
        let meta = self.raw_tx_meta(i)?;
        let launch = meta.flags & XDP_TXMD_FLAGS_LAUNCH_TIME != 0;
        Ok(TxRequest {
            checksum: (meta.flags & XDP_TXMD_FLAGS_CHECKSUM != 0)
                .then_some((meta.csum_start, meta.csum_offset)),
            timestamp: meta.flags & XDP_TXMD_FLAGS_TIMESTAMP != 0,
            launch_time: launch
                .then(|| tai_to_realtime(meta.launch_time, realtime_offset_ns(Clock::Tai))),
        })
    }

    /// Asks for checksum offload on frame `i`: the Internet checksum of the packet from byte
    /// `start` to its end, stored at byte `start + offset` (the kernel's `csum_start` and
    /// `csum_offset`, as for any `CHECKSUM_PARTIAL` packet: the field must hold the checksum
    /// of the pseudo-header, e.g. for UDP over IPv4 `start` = 34 and `offset` = 6). Write the
    /// packet first: the field must lie within its length (checked again by `send`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming `start` or `offset` when the checksum field does not
    /// lie within the packet, or as [`Batch::tx_request`].
    pub fn request_checksum(&mut self, i: usize, start: u32, offset: u32) -> Result<()> {
        self.meta_at(i)?;
        let len = self.descs()[i].len;
        check_checksum(i, start, offset, len)?;
        // `check_checksum` bounded both by a packet length that fits a frame (< 2^16).
        let (start, offset) = (start as u16, offset as u16);
        self.edit_tx_meta(i, |m| {
            m.flags |= XDP_TXMD_FLAGS_CHECKSUM;
            m.csum_start = start;
            m.csum_offset = offset;
            m.pad = 0;
        })
    }

    /// Asks for frame `i`'s completion timestamp (see the module documentation).
    ///
    /// # Errors
    ///
    /// As [`Batch::tx_request`].
    pub fn request_tx_timestamp(&mut self, i: usize) -> Result<()> {
        self.edit_tx_meta(i, |m| m.flags |= XDP_TXMD_FLAGS_TIMESTAMP)
    }

    /// Sets frame `i`'s launch time (ns since the epoch, realtime; written as `CLOCK_TAI`,
    /// the clock of the ETF qdisc and of launch-time devices), or removes it (`None`).
    ///
    /// # Errors
    ///
    /// As [`Batch::tx_request`].
    pub fn set_launch_time(&mut self, i: usize, launch_time: Option<u64>) -> Result<()> {
        let tai = launch_time.map(realtime_to_tai).transpose()?;
        self.edit_tx_meta(i, |m| match tai {
            Some(t) => {
                m.flags |= XDP_TXMD_FLAGS_LAUNCH_TIME;
                m.launch_time = t;
            }
            None => {
                m.flags &= !XDP_TXMD_FLAGS_LAUNCH_TIME;
                m.launch_time = 0;
            }
        })
    }

    /// [`Batch::request_checksum`] on every frame that starts a packet (all of them without
    /// chains): checked first, so either every frame gets the request or none.
    ///
    /// # Errors
    ///
    /// As [`Batch::request_checksum`], naming the first frame refused.
    pub fn request_checksums(&mut self, start: u32, offset: u32) -> Result<()> {
        let firsts = self.packet_starts();
        for &i in &firsts {
            self.meta_at(i)?;
            check_checksum(i, start, offset, self.descs()[i].len)?;
        }
        for i in firsts {
            self.request_checksum(i, start, offset)?;
        }
        Ok(())
    }

    /// [`Batch::request_tx_timestamp`] on every frame that starts a packet: checked first, so
    /// either every frame gets the request or none.
    ///
    /// # Errors
    ///
    /// As [`Batch::request_tx_timestamp`], naming the first frame refused.
    pub fn request_tx_timestamps(&mut self) -> Result<()> {
        let firsts = self.packet_starts();
        for &i in &firsts {
            self.meta_at(i)?;
        }
        for i in firsts {
            self.request_tx_timestamp(i)?;
        }
        Ok(())
    }

    /// Drops frame `i`'s request, if any (the frame is then sent without metadata).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when there is no frame `i`.
    pub fn clear_tx_request(&mut self, i: usize) -> Result<()> {
        self.data_ptr(i)?;
        self.set_tx_meta_bit(i, false);
        Ok(())
    }

    /// For `Socket::send` on a UMEM with tx metadata: checks frame `i` as the kernel will
    /// (room before the packet; for a request: first frame of its packet, known flags only,
    /// checksum field within the length) and returns the request's flags (0 without one).
    /// `first` tells whether the frame starts a packet (the kernel reads a request only
    /// there).
    pub(crate) fn tx_meta_for_send(&self, i: usize, first: bool) -> Result<u64> {
        let d = self.descs()[i];
        let ptr = self.meta_at(i)?;
        if d.options & FrameDesc::TX_METADATA == 0 {
            return Ok(0);
        }
        if !first {
            return Err(Error::InvalidArgument {
                name: "tx request",
                value: format!("on frame {i}"),
                why: format!(
                    "frame {i} of the batch continues a packet; the kernel reads a request \
                     only on a packet's first frame"
                ),
            });
        }
        // SAFETY: `meta_at` checked the 24 bytes are inside frame `i`, which the batch owns.
        let meta = unsafe { read_meta(ptr) };
        if meta.flags & !XDP_TXMD_FLAGS_VALID != 0 {
            return Err(Error::InvalidArgument {
                name: "tx metadata flags",
                value: format!("{:#x}", meta.flags),
                why: format!(
                    "frame {i} of the batch has flags the kernel does not know before its \
                     packet (overwritten through the Umem?)"
                ),
            });
        }
        if meta.flags & XDP_TXMD_FLAGS_CHECKSUM != 0 {
            check_checksum(i, u32::from(meta.csum_start), u32::from(meta.csum_offset), d.len)?;
        }
        Ok(meta.flags)
    }
}

/// The kernel's check of a checksum request against the packet length `len` of frame `i`:
/// `start + offset + 2 <= len`.
fn check_checksum(i: usize, start: u32, offset: u32, len: u32) -> Result<()> {
    let end = u64::from(start) + u64::from(offset) + u64::from(CSUM_LEN);
    if end <= u64::from(len) {
        return Ok(());
    }
    // Name the start when it alone is too far, else the offset.
    let (name, value) = if u64::from(start) + u64::from(CSUM_LEN) > u64::from(len) {
        ("checksum start", start)
    } else {
        ("checksum offset", offset)
    };
    Err(Error::InvalidArgument {
        name,
        value: value.to_string(),
        why: format!(
            "the checksum field (start {start} + offset {offset}, 2 bytes) must lie within \
             frame {i}'s {len}-byte packet (write the packet before requesting)"
        ),
    })
}

impl Umem {
    /// The raw completion timestamp (`CLOCK_TAI` ns) of frame `index`, whose packet was sent
    /// `offset` bytes into it and has just completed, or `None` when the kernel wrote none
    /// (see the module documentation). The caller owns the frame (it was in `Tx` and the
    /// kernel handed it back).
    pub(crate) fn read_tx_stamp(&self, index: u64, offset: u64) -> Option<u64> {
        let frame_size = u64::from(self.config().frame_size);
        if offset < u64::from(TX_META_LEN) || offset > frame_size {
            return None;
        }
        let at = index.checked_mul(frame_size)?.checked_add(offset)?;
        if at > self.len() as u64 {
            return None;
        }
        // SAFETY: `at` is within the mapping and at least 24 bytes into frame `index`, which
        // the caller owns (checked above: the metadata lies inside that frame).
        let meta = unsafe { read_meta(self.as_ptr().add(at as usize)) };
        let ts = meta.tx_timestamp();
        (ts >> 32 != 0).then_some(ts)
    }
}

/// Converts raw completion timestamps to [`TxTimestamp`]s, measuring the TAI offset once.
pub(crate) fn convert_stamps(raw: &[(u32, u64)], out: &mut impl Extend<TxTimestamp>) {
    if raw.is_empty() {
        return;
    }
    let offset = realtime_offset_ns(Clock::Tai);
    out.extend(
        raw.iter()
            .map(|&(index, ts)| TxTimestamp { index, timestamp: tai_to_realtime(ts, offset) }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::umem::UmemConfig;

    fn umem(tx_metadata: bool, headroom: u32) -> Umem {
        Umem::new(UmemConfig {
            frame_count: 4,
            frame_size: 2048,
            headroom,
            tx_metadata,
            ..UmemConfig::default()
        })
        .unwrap()
    }

    /// The 24 bytes before frame `i`'s packet.
    fn meta_bytes(b: &Batch, i: usize) -> [u8; 24] {
        let ptr = b.data_ptr(i).unwrap();
        // SAFETY: the batch owns the frame; tests only call this with the room checked.
        unsafe { std::ptr::read_unaligned(ptr.sub(24).cast()) }
    }

    #[test]
    fn allocated_frames_keep_aligned_room_before_the_packet() {
        for (headroom, offset) in [(0, 24), (1, 32), (8, 32), (13, 40), (256, 280)] {
            let cfg = UmemConfig { headroom, tx_metadata: true, ..UmemConfig::default() };
            assert_eq!(cfg.tx_offset(), offset, "headroom {headroom}");
            assert_eq!((offset - TX_META_LEN) % 8, 0);
            assert_eq!(cfg.tx_capacity(), 4096 - offset);
            assert_eq!(UmemConfig { tx_metadata: false, ..cfg }.tx_offset(), headroom);
        }
        let u = umem(true, 0);
        let b = u.alloc(2);
        assert_eq!(b.descs()[0].offset, 24);
        assert_eq!(b.capacity(0).unwrap(), 2048 - 24);
        // The kernel's rule (xp_aligned_validate_desc): addr - 24 in the chunk, and
        // offset + len + 24 <= chunk_size for a full frame of 2048 - 24 bytes... with the
        // offset counted: 24 + (2048 - 24) = 2048.
        assert_eq!(b.descs()[0].offset + b.capacity(0).unwrap() as u32, 2048);
        let e = UmemConfig { tx_sw_csum: true, ..UmemConfig::default() }.validate().unwrap_err();
        assert!(e.to_string().contains("tx_sw_csum") && e.to_string().contains("tx_metadata"));
    }

    #[test]
    fn requests_are_written_before_the_packet_in_the_kernel_layout() {
        let u = umem(true, 0);
        let mut b = u.alloc(2);
        b.write(0, &[0u8; 60]).unwrap();
        b.write(1, &[0u8; 60]).unwrap();
        // Garbage left before the packet by an earlier use of the frame.
        let ptr = b.data_ptr(0).unwrap();
        // SAFETY: 24 bytes before the packet at offset 24 are the frame's first bytes.
        unsafe { std::ptr::write_bytes(ptr.sub(24), 0xee, 24) };
        assert_eq!(b.tx_request(0).unwrap(), TxRequest::default(), "no bit, no request");
        b.request_checksum(0, 34, 6).unwrap();
        b.request_tx_timestamp(0).unwrap();
        let m = meta_bytes(&b, 0);
        assert_eq!(u64::from_ne_bytes(m[..8].try_into().unwrap()), 0b11, "flags");
        assert_eq!(u16::from_ne_bytes(m[8..10].try_into().unwrap()), 34);
        assert_eq!(u16::from_ne_bytes(m[10..12].try_into().unwrap()), 6);
        assert_eq!(&m[12..], &[0; 12], "padding and launch time cleared");
        assert_eq!(b.descs()[0].options, FrameDesc::TX_METADATA);
        assert_eq!(b.descs()[1].options, 0);
        let r = b.tx_request(0).unwrap();
        assert_eq!(r, TxRequest { checksum: Some((34, 6)), timestamp: true, launch_time: None });
        // Launch time round-trips through CLOCK_TAI.
        b.set_launch_time(1, Some(1_800_000_000_000_000_000)).unwrap();
        let m = meta_bytes(&b, 1);
        assert_eq!(u64::from_ne_bytes(m[..8].try_into().unwrap()), XDP_TXMD_FLAGS_LAUNCH_TIME);
        let tai = u64::from_ne_bytes(m[16..].try_into().unwrap());
        assert_eq!(tai as i128 + realtime_offset_ns(Clock::Tai) as i128, 1_800_000_000_000_000_000);
        assert_eq!(b.tx_request(1).unwrap().launch_time, Some(1_800_000_000_000_000_000));
        // Removing the only request leaves the frame without one.
        b.set_launch_time(1, None).unwrap();
        assert_eq!(b.descs()[1].options, 0);
        // `more` keeps the request bit, clearing drops it.
        b.set_more(0, true).unwrap();
        assert_eq!(b.descs()[0].options, FrameDesc::TX_METADATA | FrameDesc::MORE);
        b.set_more(0, false).unwrap();
        b.clear_tx_request(0).unwrap();
        assert_eq!(b.descs()[0].options, 0);
        assert_eq!(b.tx_request(0).unwrap(), TxRequest::default());
        // A new batch of the same frames starts without requests.
        let indices: Vec<u32> = b.descs().iter().map(|d| d.index).collect();
        b.request_tx_timestamp(0).unwrap();
        drop(b);
        let again = u.alloc(4);
        for (i, d) in again.descs().iter().enumerate() {
            assert_eq!(d.options, 0, "frame {}", d.index);
            assert_eq!(again.tx_request(i).unwrap(), TxRequest::default());
        }
        assert!(again.descs().iter().any(|d| indices.contains(&d.index)));
    }

    #[test]
    fn bad_requests_name_the_value() {
        let mut b = umem(true, 0).alloc(1);
        b.write(0, &[0u8; 42]).unwrap();
        b.request_checksum(0, 34, 6).unwrap(); // 34 + 6 + 2 = 42: the last two bytes
        let e = b.request_checksum(0, 34, 7).unwrap_err().to_string();
        assert!(e.contains("checksum offset 7") && e.contains("42-byte"), "{e}");
        let e = b.request_checksum(0, 41, 0).unwrap_err().to_string();
        assert!(e.contains("checksum start 41"), "{e}");
        let e = b.request_checksum(0, u32::MAX, u32::MAX).unwrap_err().to_string();
        assert!(e.contains(&format!("checksum start {}", u32::MAX)), "{e}");
        // The failed requests left the first one alone.
        assert_eq!(b.tx_request(0).unwrap().checksum, Some((34, 6)));
        // A shorter packet now: send's check refuses it, naming the frame.
        b.set_len(0, 41).unwrap();
        let e = b.tx_meta_for_send(0, true).unwrap_err().to_string();
        assert!(e.contains("frame 0") && e.contains("41-byte"), "{e}");
        b.set_len(0, 42).unwrap();
        assert_eq!(b.tx_meta_for_send(0, true).unwrap(), XDP_TXMD_FLAGS_CHECKSUM);
        let e = b.tx_meta_for_send(0, false).unwrap_err().to_string();
        assert!(e.contains("continues a packet"), "{e}");
        // Unknown flags written behind the API's back.
        let ptr = b.data_ptr(0).unwrap();
        // SAFETY: the first 8 of the 24 bytes before the packet (offset 24) of an owned frame.
        unsafe { std::ptr::write_unaligned(ptr.sub(24).cast::<u64>(), 1 << 7) };
        let e = b.tx_meta_for_send(0, true).unwrap_err().to_string();
        assert!(e.contains("tx metadata flags 0x80"), "{e}");
        // Without tx metadata: every request names the option.
        let mut plain = umem(false, 0).alloc(1);
        plain.write(0, &[0u8; 60]).unwrap();
        for e in [
            plain.request_checksum(0, 34, 6).unwrap_err(),
            plain.request_tx_timestamp(0).unwrap_err(),
            plain.set_launch_time(0, Some(1)).unwrap_err(),
            plain.tx_request(0).unwrap_err(),
        ] {
            assert!(e.to_string().starts_with("invalid tx_metadata False"), "{e}");
        }
    }

    #[test]
    fn completion_timestamps_are_read_only_when_written() {
        let u = umem(true, 0);
        let mut b = u.alloc(1);
        b.write(0, &[0u8; 60]).unwrap();
        b.request_checksum(0, 34, 6).unwrap();
        b.request_tx_timestamp(0).unwrap();
        let (index, offset) = (b.descs()[0].index, b.descs()[0].offset);
        // Not written by the kernel: the request's own bytes are below 2^32.
        assert_eq!(u.read_tx_stamp(u64::from(index), u64::from(offset)), None);
        let ptr = b.data_ptr(0).unwrap();
        // SAFETY: `completion.tx_timestamp`, 16 bytes before the packet at offset 24.
        unsafe { std::ptr::write_unaligned(ptr.sub(16).cast::<u64>(), 1_700_000_000_000_000_000) };
        assert_eq!(
            u.read_tx_stamp(u64::from(index), u64::from(offset)),
            Some(1_700_000_000_000_000_000)
        );
        // Addresses the kernel should never return: no read outside the frame or mapping.
        assert_eq!(u.read_tx_stamp(u64::from(index), 8), None);
        assert_eq!(u.read_tx_stamp(u64::from(index), 4096), None);
        assert_eq!(u.read_tx_stamp(4, 24), None);
        assert_eq!(u.read_tx_stamp(u64::MAX, 24), None);
        let mut out = Vec::new();
        convert_stamps(&[(index, 1_700_000_000_000_000_000)], &mut out);
        let tai = realtime_offset_ns(Clock::Tai);
        assert_eq!(
            out,
            vec![TxTimestamp { index, timestamp: (1_700_000_000_000_000_000 + tai) as u64 }]
        );
    }
}
