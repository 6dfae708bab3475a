//! Tests of the UMEM, its frame table and batches.

use super::*;
use crate::addr::Addressing;
use crate::sys::{XDP_PKT_CONTD, XdpDesc};

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
    // A length written in place past the frame (numpy, through `FrameBatch.lengths`).
    b.set_len(1, 60).unwrap();
    b.frames[2].len = u.config().frame_size + 1;
    assert!(matches!(b.swap_macs(), Err(Error::PacketTooLong { .. })));
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
    // Both chunk modes, single- and multi-buffer receive.
    for (u, chains) in [(umem(4), false), (unaligned_umem(4), false), (umem(4), true)] {
        let addressing = u.addressing();
        let size = u.config().frame_size;
        let mut table = u.frames();
        let mut addrs = vec![0; 3];
        assert_eq!(table.take_free_for_fill(0, addressing, &mut addrs), 3);
        let at = |i: usize, len: u32| XdpDesc { addr: rx_addr(&u, addrs[i], 256), len, options: 0 };
        // Exactly to the end of the frame; one byte past it; a length that would wrap a u32;
        // the refused frame again, this time with a length that fits (it is no longer on the
        // fill ring: refused too).
        let descs = [at(0, size - 256), at(1, size - 255), at(2, u32::MAX), at(1, 60)];
        let mut frames = Vec::new();
        assert_eq!(table.take_received(&[&descs], 0, addressing, chains, &mut frames), 3);
        assert_eq!(frames.len(), 1);
        assert_eq!((frames[0].offset, frames[0].len), (256, size - 256));
        // The refused frames went back to the pool, each once, not astray.
        assert_eq!(table.count(FrameState::Fill), 0);
        assert_eq!(table.count(FrameState::User), 1);
        assert_eq!(table.count(FrameState::Free), 3);
        let mut free = table.free.clone();
        free.sort_unstable();
        assert_eq!(free, [1, 2, 3]);
        assert!((1..4).all(|i| table.state(i) == Some(FrameState::Free)));
        drop(table);
        let batch = Batch::from_owned(u.clone(), frames);
        assert_eq!(batch.data(0).unwrap().len(), (size - 256) as usize);
    }
}

#[test]
fn lendable_takes_only_frames_on_the_pairs_fill_ring_with_packets_inside_them() {
    for u in [umem(8), unaligned_umem(8)] {
        let addressing = u.addressing();
        let size = u.config().frame_size;
        let mut table = u.frames();
        let mut addrs = vec![0; 4];
        assert_eq!(table.take_free_for_fill(1, addressing, &mut addrs), 4);
        let at = |i: usize, len: u32| XdpDesc { addr: rx_addr(&u, addrs[i], 256), len, options: 0 };
        let good = [at(0, 60), at(1, size - 256), at(2, 60)];
        assert!(table.lendable(&[&good[..2], &good[2..]], 1, addressing));
        assert!(table.lendable(&[&[], &[]], 1, addressing));
        // Another pair's socket, a packet one byte past its frame, a free frame (5), an
        // address past the region: each refuses the whole run, in either part.
        assert!(!table.lendable(&[&good, &[]], 2, addressing));
        assert!(!table.lendable(&[&good, &[at(3, size - 255)]], 1, addressing));
        let free = XdpDesc { addr: rx_addr(&u, 5 * u64::from(size), 256), len: 60, options: 0 };
        assert!(!table.lendable(&[&[free], &good], 1, addressing));
        let outside = XdpDesc { addr: rx_addr(&u, 64 * u64::from(size), 0), len: 60, options: 0 };
        assert!(!table.lendable(&[&good[..1], &[outside]], 1, addressing));
        // Only read: nothing moved.
        assert_eq!((table.count(FrameState::Fill), table.fill_count(1)), (4, 4));
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
    assert_eq!(table.take_received(&[&descs], 0, addressing, false, &mut frames), 3);
    let got: Vec<_> = frames.iter().map(|f| (f.index, f.offset, f.len)).collect();
    assert_eq!(got, [(1, 256, 1500), (3, 384, 2616), (2, 256, 64)]);
    assert_eq!(table.count(FrameState::Fill), 1);
    // Completions come back as they were sent: base | offset << 48, and decode to the frame.
    let sent_frame = frames.pop().unwrap();
    table.queue_for_tx(&[sent_frame], 0, 3000).unwrap();
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
    assert_eq!(table.take_received(&[&[desc(on_a[0])]], 2, addressing, false, &mut frames), 1);
    assert!(frames.is_empty());
    assert_eq!(table.state((on_a[0] / 2048) as u32), Some(FrameState::Fill));
    // Its own pair's frame is taken.
    assert_eq!(table.take_received(&[&[desc(on_a[0])]], 1, addressing, false, &mut frames), 0);
    assert_eq!(frames.len(), 1);
    assert_eq!(table.fill_count(1), 2);
    // Sent through pair 2, it completes only on pair 2's completion ring.
    let index = frames[0].index;
    table.queue_for_tx(&frames[..1], 2, 2048).unwrap();
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
fn batch_edits_touch_a_chained_packet_only_in_its_first_frame() {
    // swap_macs and write_at edited bytes 0..12 of every frame of a multi-buffer packet
    // (payload, past the first frame), and swap_macs refused a packet whose last frame held
    // fewer than 12 bytes; copy_from dropped the chain flags (one jumbo packet went out as
    // several). 2048-byte frames: a 2048 + 5 byte packet, then a one-frame packet.
    let u = umem(8);
    let mut b = u.alloc(3);
    let jumbo: Vec<u8> = (0..2053u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(b.write_chain(0, &jumbo).unwrap(), 2);
    let single: Vec<u8> = (100..160).collect();
    b.write(2, &single).unwrap();
    b.swap_macs().unwrap();
    b.write_at(12, &[0xee, 0xff]).unwrap();
    let mut want = jumbo.clone();
    want[..12].copy_from_slice(&[&jumbo[6..12], &jumbo[..6]].concat());
    want[12..14].copy_from_slice(&[0xee, 0xff]);
    let got: Vec<u8> = (0..2).flat_map(|i| b.data(i).unwrap().to_vec()).collect();
    assert_eq!(got, want, "only the first frame of the chain is edited");
    assert_eq!(&b.data(2).unwrap()[..6], &single[6..12]);
    assert_eq!(&b.data(2).unwrap()[12..14], &[0xee, 0xff]);
    // A write past a packet's first frame is refused, naming the frame.
    let e = b.write_at(2047, &[1, 2]).unwrap_err();
    assert!(e.to_string().contains("frame 0"), "{e}");
    // copy_from keeps the chains, and copies whole packets only.
    let mut dst = umem(8).alloc(3);
    assert_eq!(dst.copy_from(&b).unwrap(), 3);
    assert_eq!(dst.packets().unwrap(), [0..2, 2..3]);
    let copied: Vec<u8> = (0..2).flat_map(|i| dst.data(i).unwrap().to_vec()).collect();
    assert_eq!(copied, want);
    let mut short = umem(8).alloc(1);
    assert_eq!(short.copy_from(&b).unwrap(), 0, "the first packet needs two frames");
    let mut two = umem(8).alloc(2);
    assert_eq!(two.copy_from(&b).unwrap(), 2);
    assert_eq!(two.packets().unwrap(), vec![std::ops::Range { start: 0, end: 2 }]);
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
    assert_eq!(table.take_received(&[&descs], 0, addressing, true, &mut frames), 5);
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
        let states: Vec<FrameState> = t.slots.iter().map(|s| s.state()).collect();
        assert_eq!(states, self.state, "step {step}");
        for (i, slot) in t.slots.iter().enumerate() {
            if matches!(slot.state(), FrameState::Fill | FrameState::Tx) {
                assert_eq!(slot.owner(), self.owner[i], "pair of frame {i} at step {step}");
            } else {
                assert_eq!(slot.owner(), 0, "frame {i} at step {step} keeps a pair");
            }
        }
        for s in [FrameState::Free, FrameState::Fill, FrameState::User, FrameState::Tx] {
            assert_eq!(t.count(s), self.count(s), "count of {s:?} at step {step}");
        }
        for pool in 0..POOLS {
            assert_eq!(t.fill_count(pool), self.count_in(FrameState::Fill, pool), "step {step}");
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
        let mut m = Model { state: vec![FrameState::Free; n as usize], owner: vec![0; n as usize] };
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
                                .map(|&index| FrameDesc { index, offset: 0, len: 0, options: 0 })
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
                    // A reused vector's stale entries, which the receive overwrites.
                    let stale = FrameDesc { index: 999, offset: 1, len: 2, options: 3 };
                    let mut frames = vec![stale; (rng.next() % 80) as usize];
                    // In two parts cut anywhere, as a ring that wraps around hands them
                    // over (a chain may span the cut).
                    let cut = (rng.next() % (descs.len() as u64 + 1)) as usize;
                    let (a, b) = descs.split_at(cut);
                    // A multi-buffer socket's receive, or a single-buffer one's (no chains:
                    // every descriptor a packet, its options dropped).
                    let chains = rng.next().is_multiple_of(2);
                    let skipped = t.take_received(&[a, b], pool, addressing, chains, &mut frames);
                    let mut expected: Vec<FrameDesc> = Vec::new();
                    // A packet with a refused descriptor is dropped whole.
                    let (mut packet_start, mut broken) = (0, false);
                    for (d, &(index, offset)) in descs.iter().zip(&truth) {
                        let i = index as usize;
                        let options = if chains { d.options & XDP_PKT_CONTD } else { 0 };
                        if i < m.state.len() && m.state[i] == FrameState::Fill && m.owner[i] == pool
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
                    assert_eq!(result.is_ok(), allowed, "step {step}: {index} {from:?}->{to:?}");
                    if allowed {
                        m.set(index, to, 0);
                    }
                }
                5 => {
                    // A send of a few frames: mostly held ones, now and then another (a
                    // repeat included), refused whole.
                    let user = m.in_state(FrameState::User, None);
                    let sent: Vec<FrameDesc> = (0..rng.next() % 5)
                        .map(|_| {
                            let index = match (user.is_empty(), rng.next() % 8) {
                                (false, 0..=6) => user[(rng.next() % user.len() as u64) as usize],
                                _ => any_index(&mut rng),
                            };
                            FrameDesc { index, ..FrameDesc::default() }
                        })
                        .collect();
                    let pool = any_pool(&mut rng);
                    let allowed = sent
                        .iter()
                        .all(|d| m.state.get(d.index as usize) == Some(&FrameState::User));
                    let result = t.queue_for_tx(&sent, pool, frame_size);
                    assert_eq!(result.is_ok(), allowed, "step {step}: queue {sent:?}");
                    if allowed {
                        for d in &sent {
                            m.set(d.index, FrameState::Tx, pool);
                        }
                    }
                }
                6 if rng.next().is_multiple_of(2) => {
                    // A completion ring's addresses, in two parts cut anywhere: mostly frames
                    // sent (through any pair), with the packet's offset, plus junk.
                    let pool = any_pool(&mut rng);
                    let tx = m.in_state(FrameState::Tx, None);
                    let mut addrs = Vec::new();
                    let mut truth = Vec::new();
                    for _ in 0..rng.next() % 10 {
                        let index = match (tx.is_empty(), rng.next() % 3) {
                            (false, 0 | 1) => tx[(rng.next() % tx.len() as u64) as usize],
                            _ => any_index(&mut rng),
                        };
                        let offset = rng.next() as u32 % frame_size;
                        addrs.push(addressing.encode(index, offset));
                        truth.push(index);
                    }
                    let cut = (rng.next() % (addrs.len() as u64 + 1)) as usize;
                    let (a, b) = addrs.split_at(cut);
                    let free_before = t.free.len();
                    let done = t.take_completions(&[a, b], pool, addressing);
                    let mut expected = Vec::new();
                    for &i in &truth {
                        let s = i as usize;
                        if s < m.state.len() && m.state[s] == FrameState::Tx && m.owner[s] == pool {
                            m.state[s] = FrameState::Free;
                            expected.push(i);
                        }
                    }
                    assert_eq!(done as usize, expected.len(), "step {step}");
                    // Into the free pool in completion order, nothing else.
                    assert_eq!(t.free[free_before..], expected[..], "step {step}");
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
                        let expect =
                            i < m.state.len() && m.state[i] == FrameState::Tx && m.owner[i] == pool;
                        assert_eq!(t.take_completed(index, pool), expect, "step {step}: {index}");
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
