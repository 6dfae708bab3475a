//! A UMEM's geometry ([`UmemConfig`]): frame count and size, headroom, chunk mode, huge pages,
//! and the limits the kernel puts on them.

use crate::addr::Addressing;
use crate::error::{Error, Result};
use crate::sys::{self, XDP_PACKET_HEADROOM, XDP_UMEM_MIN_CHUNK_SIZE};
use crate::txmeta::TX_META_LEN;

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
