//! Ring addresses and the frames they name, in both chunk modes of a UMEM.
//!
//! afxdp always cuts its region into `frame_count` frames of `frame_size` bytes laid end to
//! end, and hands out only those: frame `i` starts at byte `i * frame_size`, which is also the
//! address it goes on the fill ring with. What differs between the modes is how the kernel
//! writes the address of a packet *inside* a frame on the rx (and tx/completion) rings:
//!
//! * **Aligned** (the default): `frame_size` is a power of two and the address is simply the
//!   byte offset, `frame start + offset`; the frame is `addr >> log2(frame_size)` and the
//!   offset `addr & (frame_size - 1)`.
//! * **Unaligned** (`XDP_UMEM_UNALIGNED_CHUNK_FLAG`): any `frame_size` the kernel registers,
//!   and the address is `base | offset << 48` ([`XSK_UNALIGNED_BUF_OFFSET_SHIFT`]): the data is
//!   at `base + offset`. On rx the base is the address the frame was filled with and the
//!   offset is headroom + `XDP_PACKET_HEADROOM` (+ any `bpf_xdp_adjust_head` shift, kernel
//!   `xp_get_handle`); on completion the kernel hands back the tx address. The frame is the
//!   one the data lies in, found by dividing `base + offset` by `frame_size` (with a multiply
//!   by a precomputed reciprocal: this runs for every frame received or completed).
//!
//! # Odd tx addresses (Linux 6.18.y copy mode)
//!
//! With odd frame sizes, every other frame starts at an odd byte. In copy mode the kernel keeps
//! the address of a one-descriptor packet in `skb_shinfo(skb)->destructor_arg` with bit 0 as a
//! tag (`xsk_skb_destructor_set_addr`) and clears that bit when it posts the completion, so an
//! odd tx address comes back one less (seen here on 6.18.44: frame 1 of 4001 bytes, sent at
//! 4001, completed as 4000, which is the last byte of frame 0). So [`Addressing::encode`]
//! never makes an odd address: for an odd frame start it moves one byte from the base into
//! the offset (`(start - 1) | (offset + 1) << 48`, the same byte to the kernel), and decoding
//! goes by the byte the address points at, not by its base.
//!
//! Decoding never trusts the address: it yields a frame index and an offset (or nothing, for
//! an unaligned address whose base lies more than one byte before that frame, which afxdp never
//! makes and the kernel never returns for it), and the frame table then checks that the index
//! names a frame of the UMEM that is on the expected ring and that the packet ends inside its
//! frame, as for aligned addresses.

use crate::sys::{XSK_UNALIGNED_BUF_ADDR_MASK, XSK_UNALIGNED_BUF_OFFSET_SHIFT};

/// How ring addresses map to the frames of one UMEM; small and `Copy`, taken once per batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addressing {
    frame_size: u32,
    mode: Mode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `frame_size == 1 << shift`.
    Aligned { shift: u32 },
    /// `reciprocal == 2^64 / frame_size` rounded up (see [`Addressing::frame_of`]).
    Unaligned { reciprocal: u64 },
}

/// A ring address taken apart: the frame it points into, and the byte offset from that
/// frame's start. Neither is checked here; `index` may lie beyond the UMEM and `offset` beyond
/// the frame (the frame table refuses both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// Frame index (`frame start / frame_size`).
    pub index: u64,
    /// Bytes from the frame's start to the packet's.
    pub offset: u64,
}

impl Addressing {
    /// Aligned mode; `frame_size` must be a power of two (a validated config's is).
    pub fn aligned(frame_size: u32) -> Addressing {
        debug_assert!(frame_size.is_power_of_two(), "aligned frame size {frame_size}");
        Addressing { frame_size, mode: Mode::Aligned { shift: frame_size.trailing_zeros() } }
    }

    /// Unaligned mode, for any non-zero `frame_size` up to 64 KiB (the kernel's limit).
    pub fn unaligned(frame_size: u32) -> Addressing {
        debug_assert!(frame_size > 0 && frame_size <= 1 << 16, "unaligned frame size {frame_size}");
        let reciprocal = (u64::MAX / u64::from(frame_size)).wrapping_add(1);
        Addressing { frame_size, mode: Mode::Unaligned { reciprocal } }
    }

    /// The addressing of a UMEM of `frame_size`-byte frames, in unaligned mode or not.
    pub fn new(frame_size: u32, unaligned: bool) -> Addressing {
        if unaligned { Addressing::unaligned(frame_size) } else { Addressing::aligned(frame_size) }
    }

    /// Bytes per frame.
    pub fn frame_size(&self) -> u32 {
        self.frame_size
    }

    /// Whether ring addresses carry their offset in the top bits (unaligned mode).
    pub fn is_unaligned(&self) -> bool {
        matches!(self.mode, Mode::Unaligned { .. })
    }

    /// Byte offset of frame `index` in the region; also its fill ring address in both modes.
    #[inline]
    pub fn frame_start(&self, index: u32) -> u64 {
        match self.mode {
            Mode::Aligned { shift } => u64::from(index) << shift,
            Mode::Unaligned { .. } => u64::from(index) * u64::from(self.frame_size),
        }
    }

    /// The ring address of byte `offset` of frame `index` (a tx descriptor's): aligned,
    /// `start + offset`; unaligned, `start | offset << 48`, or `(start - 1) | (offset + 1) <<
    /// 48` when `start` is odd, so the address is even (see the module documentation). The
    /// offset field stays below 2^16: `offset < frame_size <= 2^16`, and a 2^16-byte frame
    /// starts at an even byte.
    #[inline]
    pub fn encode(&self, index: u32, offset: u32) -> u64 {
        let start = self.frame_start(index);
        match self.mode {
            Mode::Aligned { .. } => start + u64::from(offset),
            Mode::Unaligned { .. } => {
                let odd = start & 1;
                (start - odd) | (u64::from(offset) + odd) << XSK_UNALIGNED_BUF_OFFSET_SHIFT
            }
        }
    }

    /// The byte a ring address points at, as an offset into the region (unaligned: base plus
    /// offset, as the kernel reads it).
    #[inline]
    pub fn flat(&self, addr: u64) -> u64 {
        match self.mode {
            Mode::Aligned { .. } => addr,
            Mode::Unaligned { .. } => {
                (addr & XSK_UNALIGNED_BUF_ADDR_MASK) + (addr >> XSK_UNALIGNED_BUF_OFFSET_SHIFT)
            }
        }
    }

    /// Takes a ring address (rx, tx or completion) apart; see [`Decoded`].
    ///
    /// Unaligned: the frame is the one holding the byte `base + offset` points at, and the
    /// offset runs from that frame's start to it. `None` when the base lies more than one
    /// byte before that frame's start: afxdp's own addresses have the frame start (or the
    /// byte before it, [`Addressing::encode`]) as base and the kernel's rx addresses the fill
    /// address, so such an address names no frame afxdp handed out.
    #[inline]
    pub fn decode(&self, addr: u64) -> Option<Decoded> {
        match self.mode {
            Mode::Aligned { shift } => Some(Decoded {
                index: addr >> shift,
                offset: addr & (u64::from(self.frame_size) - 1),
            }),
            Mode::Unaligned { .. } => {
                let base = addr & XSK_UNALIGNED_BUF_ADDR_MASK;
                let byte = base + (addr >> XSK_UNALIGNED_BUF_OFFSET_SHIFT);
                let index = self.frame_of(byte);
                let start = index * u64::from(self.frame_size);
                (base + 1 >= start).then_some(Decoded { index, offset: byte - start })
            }
        }
    }

    /// Aligned mode's `log2(frame_size)` (`None` in unaligned mode): with it a hot loop decodes
    /// an address with a shift and a mask, as [`Addressing::decode`] does, without asking the
    /// mode per address.
    #[inline]
    pub fn aligned_shift(&self) -> Option<u32> {
        match self.mode {
            Mode::Aligned { shift } => Some(shift),
            Mode::Unaligned { .. } => None,
        }
    }

    /// `byte / frame_size` for any `byte` below 2^48 + 2^16 (an unaligned base plus offset).
    ///
    /// Aligned: a shift. Unaligned: `(byte * r) >> 64` with `r = floor((2^64 - 1) / d) + 1`,
    /// which equals `floor(byte / d)` whenever `byte * (r * d - 2^64) < 2^64`: `r * d = 2^64 +
    /// e` with `0 <= e <= d`, so the product overshoots `byte / d` by `byte * e / 2^64 / d`,
    /// which must stay below the `1/d` gap to the next integer. For a power of two `e` is 0;
    /// otherwise `d < 2^16` and `byte * d < (2^48 + 2^16) * (2^16 - 1) < 2^64`.
    #[inline]
    pub fn frame_of(&self, byte: u64) -> u64 {
        match self.mode {
            Mode::Aligned { shift } => byte >> shift,
            Mode::Unaligned { reciprocal } => {
                debug_assert!(byte < (1 << 48) + (1 << 16));
                ((u128::from(byte) * u128::from(reciprocal)) >> 64) as u64
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frame sizes the kernel registers: powers of two, the odd sizes the selftests use (3000
    /// `XSK_UMEM__LARGE_FRAME_SIZE`, 4001), and the extremes.
    const SIZES: [u32; 9] = [2048, 2049, 3000, 4001, 4096, 4097, 9000, 65535, 65536];

    #[test]
    fn division_by_reciprocal_is_exact_for_every_48_bit_base() {
        use crate::generator::template::test_frames::Rng;
        let mut rng = Rng(0xadd7_0000);
        for d in SIZES {
            let a = Addressing::unaligned(d);
            let d64 = u64::from(d);
            let max = XSK_UNALIGNED_BUF_ADDR_MASK + 0xffff; // base + offset
            // Around every multiple near both ends, plus random bases.
            let mut bases: Vec<u64> = Vec::new();
            for k in (0..64).chain(max / d64 - 64..=max / d64) {
                for delta in [-1i64, 0, 1] {
                    bases.push((k * d64).wrapping_add_signed(delta));
                }
            }
            bases.extend((0..if cfg!(miri) { 50 } else { 20_000 }).map(|_| rng.next() & max));
            bases.push(max);
            for b in bases.into_iter().filter(|&b| b <= max) {
                assert_eq!(a.frame_of(b), b / d64, "{b} / {d}");
            }
        }
    }

    #[test]
    fn unaligned_addresses_carry_the_offset_in_the_top_16_bits() {
        let a = Addressing::unaligned(3000);
        assert!(a.is_unaligned());
        assert_eq!(a.frame_start(0), 0);
        assert_eq!(a.frame_start(7), 21_000);
        // The kernel's own encoding: base | offset << 48; the data sits at base + offset.
        let addr = a.encode(7, 256);
        assert_eq!(addr, 21_000 | 256 << 48);
        assert_eq!(a.flat(addr), 21_256);
        assert_eq!(a.decode(addr), Some(Decoded { index: 7, offset: 256 }));
        // What an rx descriptor holds: the fill address plus headroom + XDP_PACKET_HEADROOM.
        let rx = a.frame_start(5) | (128 + 256) << 48;
        assert_eq!(a.decode(rx), Some(Decoded { index: 5, offset: 384 }));
        // A base inside the frame (an older kernel's rx addresses, or a flat tx address).
        let inside = (a.frame_start(5) + 128) | 256 << 48;
        assert_eq!(a.decode(inside), Some(Decoded { index: 5, offset: 384 }));
        assert_eq!(a.decode(a.frame_start(5) + 384), Some(Decoded { index: 5, offset: 384 }));
        // The largest offset field (an odd start moves one byte into it) and the largest base
        // (48 bits) stay apart.
        let big = Addressing::unaligned(65_535);
        let top = big.encode(1, 65_534);
        assert_eq!(top, 65_534 | 0xffff << 48);
        assert_eq!(big.decode(top), Some(Decoded { index: 1, offset: 65_534 }));
        let far = XSK_UNALIGNED_BUF_ADDR_MASK;
        assert_eq!(a.decode(far).unwrap().index, far / 3000);
    }

    #[test]
    fn unaligned_tx_addresses_are_even_and_survive_bit_0_being_cleared() {
        // 6.18.y copy mode clears bit 0 of a one-descriptor packet's completion address.
        let a = Addressing::unaligned(4001);
        for index in [0, 1, 2, 3, 125, 1 << 20] {
            for offset in [0, 1, 256, 4000] {
                let addr = a.encode(index, offset);
                assert_eq!(addr & 1, 0, "frame {index} offset {offset}: {addr:#x}");
                assert_eq!(a.flat(addr), a.frame_start(index) + u64::from(offset));
                let want = Some(Decoded { index: u64::from(index), offset: u64::from(offset) });
                assert_eq!(a.decode(addr & !1), want);
            }
        }
        // Frame 1 starts at 4001: sent as 4000 | 1 << 48, not as the bare 4001 the kernel would
        // complete as 4000 (the last byte of frame 0).
        assert_eq!(a.encode(1, 0), 4000 | 1 << 48);
        assert_eq!(a.decode(4000), Some(Decoded { index: 0, offset: 4000 }));
    }

    #[test]
    fn decode_inverts_encode_in_both_modes() {
        for d in SIZES {
            let modes: &[bool] = if d.is_power_of_two() { &[false, true] } else { &[true] };
            for &unaligned in modes {
                let a = Addressing::new(d, unaligned);
                assert_eq!((a.frame_size(), a.is_unaligned()), (d, unaligned));
                for index in [0, 1, 2, 1000, (1 << 24) - 1] {
                    for offset in [0, 1, 256, d / 2, d - 1] {
                        let addr = a.encode(index, offset);
                        let want = Decoded { index: u64::from(index), offset: u64::from(offset) };
                        assert_eq!(a.decode(addr), Some(want), "{d} {unaligned} {index} {offset}");
                        assert_eq!(a.flat(addr), a.frame_start(index) + u64::from(offset));
                    }
                }
            }
        }
    }

    #[test]
    fn aligned_addresses_are_plain_byte_offsets() {
        let a = Addressing::aligned(4096);
        assert!(!a.is_unaligned());
        assert_eq!(a.encode(3, 256), 3 * 4096 + 256);
        assert_eq!(a.decode(3 * 4096 + 256), Some(Decoded { index: 3, offset: 256 }));
        assert_eq!(a.frame_of(3 * 4096 + 4095), 3);
        // Top bits are not an offset in aligned mode: they make an index far beyond any UMEM.
        assert_eq!(a.decode(1 << 48).unwrap().index, 1 << 36);
    }

    #[test]
    fn unaligned_addresses_whose_base_is_outside_the_frame_name_no_frame() {
        let a = Addressing::unaligned(4001);
        // Frame 2's base with an offset reaching into frame 3: not a frame afxdp handed out.
        assert_eq!(a.decode(a.frame_start(2) | 5000 << 48), None);
        // The byte before the frame start as base is afxdp's own encoding of an odd start.
        assert_eq!(a.decode(a.encode(3, 10)), Some(Decoded { index: 3, offset: 10 }));
        assert_eq!(a.decode((a.frame_start(3) - 2) | 12 << 48), None);
    }
}
