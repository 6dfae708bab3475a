//! The AF_XDP ABI, mirrored item by item from `linux/if_xdp.h` as of Linux 6.18:
//! <https://github.com/torvalds/linux/blob/v6.18/include/uapi/linux/if_xdp.h>.
//!
//! Every struct is `#[repr(C)]`, has no padding (its size is asserted at compile time against
//! the sum of its fields, which is the kernel's size), and is created zeroed, so the kernel
//! never sees uninitialised bytes. Constants keep the header's names.

use std::mem::size_of;

/// Address family of XDP sockets (`AF_XDP`, `linux/socket.h`); CPython's `socket` module has no
/// constant for it.
pub const AF_XDP: i32 = 44;
/// Socket option level of XDP sockets (`SOL_XDP`, `linux/socket.h`).
pub const SOL_XDP: i32 = 283;

// Bind flags (`sockaddr_xdp.sxdp_flags`).
// <https://github.com/torvalds/linux/blob/v6.18/include/uapi/linux/if_xdp.h>
/// Share the UMEM of the socket in `sxdp_shared_umem_fd`.
pub const XDP_SHARED_UMEM: u16 = 1 << 0;
/// Force copy mode.
pub const XDP_COPY: u16 = 1 << 1;
/// Force zero-copy mode (EOPNOTSUPP where the driver has none, e.g. veth).
pub const XDP_ZEROCOPY: u16 = 1 << 2;
/// Let the kernel say through the ring flags when it needs a syscall to make progress.
pub const XDP_USE_NEED_WAKEUP: u16 = 1 << 3;
/// Multi-buffer: packets longer than a frame are received (and may be sent) as chains of
/// descriptors, each but the last carrying [`XDP_PKT_CONTD`]. Needs a frags-aware XDP program
/// (`xdp.frags`). A sharing socket inherits it from the UMEM (setting it there: EINVAL).
pub const XDP_USE_SG: u16 = 1 << 4;

// UMEM registration flags (`xdp_umem_reg.flags`).
// <https://github.com/torvalds/linux/blob/v6.18/include/uapi/linux/if_xdp.h>
/// Unaligned chunk mode: chunks of any size at any address; ring addresses carry an offset in
/// their top bits ([`XSK_UNALIGNED_BUF_OFFSET_SHIFT`]).
pub const XDP_UMEM_UNALIGNED_CHUNK_FLAG: u32 = 1 << 0;
/// Copy mode computes a requested tx checksum in software (`skb_checksum_help`) instead of
/// leaving it to the device (`CHECKSUM_PARTIAL`).
pub const XDP_UMEM_TX_SW_CSUM: u32 = 1 << 1;
/// `xdp_umem_reg.tx_metadata_len` is valid: every tx descriptor has that many bytes of
/// [`XskTxMetadata`] room right before its packet, inside its chunk.
pub const XDP_UMEM_TX_METADATA_LEN: u32 = 1 << 2;

// Unaligned-mode ring addresses: the chunk's address in the low 48 bits, the offset of the data
// from it in the top 16 (the kernel adds the two; the offset may be zero).
// <https://github.com/torvalds/linux/blob/v6.18/include/uapi/linux/if_xdp.h>
/// Shift of the offset in an unaligned-mode ring address.
pub const XSK_UNALIGNED_BUF_OFFSET_SHIFT: u32 = 48;
/// Mask of the address part of an unaligned-mode ring address.
pub const XSK_UNALIGNED_BUF_ADDR_MASK: u64 = (1 << XSK_UNALIGNED_BUF_OFFSET_SHIFT) - 1;

/// The smallest chunk the kernel registers (`XDP_UMEM_MIN_CHUNK_SIZE`,
/// `include/net/xdp_sock_drv.h`).
pub const XDP_UMEM_MIN_CHUNK_SIZE: u32 = 2048;

/// Ring flag: the kernel needs a wakeup (poll/sendto/recvfrom) to process this ring.
/// <https://github.com/torvalds/linux/blob/v6.18/include/uapi/linux/if_xdp.h>
pub const XDP_RING_NEED_WAKEUP: u32 = 1 << 0;

// Socket options (level `SOL_XDP`).
// <https://github.com/torvalds/linux/blob/v6.18/include/uapi/linux/if_xdp.h>
/// `getsockopt`: the ring offsets inside their mappings ([`XdpMmapOffsets`]).
pub const XDP_MMAP_OFFSETS: i32 = 1;
/// `setsockopt`: the rx ring's size.
pub const XDP_RX_RING: i32 = 2;
/// `setsockopt`: the tx ring's size.
pub const XDP_TX_RING: i32 = 3;
/// `setsockopt`: register the UMEM ([`XdpUmemReg`]).
pub const XDP_UMEM_REG: i32 = 4;
/// `setsockopt`: the fill ring's size.
pub const XDP_UMEM_FILL_RING: i32 = 5;
/// `setsockopt`: the completion ring's size.
pub const XDP_UMEM_COMPLETION_RING: i32 = 6;
/// `getsockopt`: the socket's counters ([`XdpStatistics`]).
pub const XDP_STATISTICS: i32 = 7;
/// `getsockopt`: the socket's options ([`XdpOptions`]).
pub const XDP_OPTIONS: i32 = 8;

/// `xdp_options.flags`: the socket runs in zero-copy mode.
/// <https://github.com/torvalds/linux/blob/v6.18/include/uapi/linux/if_xdp.h>
pub const XDP_OPTIONS_ZEROCOPY: u32 = 1 << 0;

// mmap page offsets of the four rings.
// <https://github.com/torvalds/linux/blob/v6.18/include/uapi/linux/if_xdp.h>
/// mmap offset of the rx ring.
pub const XDP_PGOFF_RX_RING: i64 = 0;
/// mmap offset of the tx ring.
pub const XDP_PGOFF_TX_RING: i64 = 0x8000_0000;
/// mmap offset of the fill ring.
pub const XDP_UMEM_PGOFF_FILL_RING: i64 = 0x1_0000_0000;
/// mmap offset of the completion ring.
pub const XDP_UMEM_PGOFF_COMPLETION_RING: i64 = 0x1_8000_0000;

/// Headroom the kernel reserves in front of every received packet (`XDP_PACKET_HEADROOM`,
/// `linux/bpf.h`).
pub const XDP_PACKET_HEADROOM: u32 = 256;

/// Descriptor option: the packet continues in the next descriptor (multi-buffer).
/// <https://github.com/torvalds/linux/blob/v6.18/include/uapi/linux/if_xdp.h>
pub const XDP_PKT_CONTD: u32 = 1 << 0;
/// Descriptor option: an [`XskTxMetadata`] request lies right before the packet (tx only, on a
/// UMEM registered with [`XDP_UMEM_TX_METADATA_LEN`]).
pub const XDP_TX_METADATA: u32 = 1 << 1;

// `xsk_tx_metadata.flags`: what a tx metadata request asks for.
// <https://github.com/torvalds/linux/blob/v6.18/include/uapi/linux/if_xdp.h>
/// Write the completion timestamp into `completion.tx_timestamp` when the frame completes.
pub const XDP_TXMD_FLAGS_TIMESTAMP: u64 = 1 << 0;
/// Checksum offload: from `csum_start` to the end, stored at `csum_start + csum_offset`.
pub const XDP_TXMD_FLAGS_CHECKSUM: u64 = 1 << 1;
/// Launch time: send the packet at `launch_time` (ns) where the device or qdisc can.
pub const XDP_TXMD_FLAGS_LAUNCH_TIME: u64 = 1 << 2;
/// Every flag 6.18 accepts (`XDP_TXMD_FLAGS_VALID`, `include/net/xdp_sock_drv.h`); a request
/// with another bit set makes copy mode fail the `sendto` with EINVAL and leave the descriptor
/// on the tx ring.
pub const XDP_TXMD_FLAGS_VALID: u64 =
    XDP_TXMD_FLAGS_TIMESTAMP | XDP_TXMD_FLAGS_CHECKSUM | XDP_TXMD_FLAGS_LAUNCH_TIME;

/// `struct sockaddr_xdp`.
/// <https://github.com/torvalds/linux/blob/v6.18/include/uapi/linux/if_xdp.h>
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct SockaddrXdp {
    pub sxdp_family: u16,
    pub sxdp_flags: u16,
    pub sxdp_ifindex: u32,
    pub sxdp_queue_id: u32,
    pub sxdp_shared_umem_fd: u32,
}

/// `struct xdp_ring_offset`: byte offsets of one ring's fields inside its mapping.
/// <https://github.com/torvalds/linux/blob/v6.18/include/uapi/linux/if_xdp.h>
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct XdpRingOffset {
    pub producer: u64,
    pub consumer: u64,
    pub desc: u64,
    pub flags: u64,
}

/// `struct xdp_mmap_offsets` (v2, with `flags`; the kernel has answered this since 5.4).
/// <https://github.com/torvalds/linux/blob/v6.18/include/uapi/linux/if_xdp.h>
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct XdpMmapOffsets {
    pub rx: XdpRingOffset,
    pub tx: XdpRingOffset,
    pub fr: XdpRingOffset,
    pub cr: XdpRingOffset,
}

/// `struct xdp_umem_reg` (v3, 32 bytes with `tx_metadata_len`). A shorter optlen would make the
/// kernel parse an older layout and silently drop `flags`.
/// <https://github.com/torvalds/linux/blob/v6.18/include/uapi/linux/if_xdp.h>
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct XdpUmemReg {
    pub addr: u64,
    pub len: u64,
    pub chunk_size: u32,
    pub headroom: u32,
    pub flags: u32,
    pub tx_metadata_len: u32,
}

/// `struct xdp_statistics` (v2, 48 bytes; with 24 bytes the kernel folds `rx_ring_full` into
/// `rx_dropped`).
/// <https://github.com/torvalds/linux/blob/v6.18/include/uapi/linux/if_xdp.h>
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct XdpStatistics {
    pub rx_dropped: u64,
    pub rx_invalid_descs: u64,
    pub tx_invalid_descs: u64,
    pub rx_ring_full: u64,
    pub rx_fill_ring_empty_descs: u64,
    pub tx_ring_empty_descs: u64,
}

/// `struct xdp_options`.
/// <https://github.com/torvalds/linux/blob/v6.18/include/uapi/linux/if_xdp.h>
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct XdpOptions {
    pub flags: u32,
}

/// `struct xdp_desc`: one rx or tx ring entry.
/// <https://github.com/torvalds/linux/blob/v6.18/include/uapi/linux/if_xdp.h>
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct XdpDesc {
    pub addr: u64,
    pub len: u32,
    pub options: u32,
}

/// `struct xsk_tx_metadata`: a tx request, in the `tx_metadata_len` bytes before a packet.
///
/// The kernel's struct has a union after `flags`: `request` (`csum_start`, `csum_offset`,
/// 4 bytes of padding, `launch_time`) while the frame is queued, and `completion`
/// (`tx_timestamp`, over the same first 8 bytes as `csum_start`..padding) once the kernel
/// has written the completion timestamp. This mirrors the request side with the padding
/// named; [`XskTxMetadata::tx_timestamp`] reads the completion side.
/// <https://github.com/torvalds/linux/blob/v6.18/include/uapi/linux/if_xdp.h>
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct XskTxMetadata {
    pub flags: u64,
    pub csum_start: u16,
    pub csum_offset: u16,
    pub pad: u32,
    pub launch_time: u64,
}

impl XskTxMetadata {
    /// `completion.tx_timestamp`: the 8 bytes at offset 8, in host byte order.
    pub fn tx_timestamp(&self) -> u64 {
        u64::from(self.csum_start) | u64::from(self.csum_offset) << 16 | u64::from(self.pad) << 32
    }
}

// The kernel's sizes; a mismatch (or padding) fails the build.
const _: () = assert!(size_of::<SockaddrXdp>() == 16);
const _: () = assert!(size_of::<XdpRingOffset>() == 32);
const _: () = assert!(size_of::<XdpMmapOffsets>() == 128);
const _: () = assert!(size_of::<XdpUmemReg>() == 32);
const _: () = assert!(size_of::<XdpStatistics>() == 48);
const _: () = assert!(size_of::<XdpOptions>() == 4);
const _: () = assert!(size_of::<XdpDesc>() == 16);
const _: () = assert!(size_of::<XskTxMetadata>() == 24);
const _: () = assert!(std::mem::offset_of!(XskTxMetadata, csum_start) == 8);
const _: () = assert!(std::mem::offset_of!(XskTxMetadata, launch_time) == 16);
