//! [`Socket::recv_with`]: received frames lent where they are, for the length of a call.
//!
//! A lent frame never changes state: it stays `Fill` on its pair in the frame table (taken off
//! the fill ring by the kernel, on the rx ring, back on the fill ring after the call), so the
//! receive costs no per-frame table writes and no batch. Ownership holds by construction: the
//! view borrows the socket's rx ring (no other receive of this socket can run meanwhile), it
//! hands out only shared slices (nothing writes a lent frame: the kernel writes only frames
//! on a fill ring, and user space only a batch's frames, which are `User`), and it cannot
//! outlive the call. What the kernel hands back is still checked, read-only, before anything
//! is lent: a descriptor whose frame is not on this pair's fill ring, or whose packet runs
//! past its frame, sends the whole call down the checked path of [`Socket::recv`], whose
//! batch is lent instead.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::Ordering;

use super::datapath::RxWork;
use super::pair::{PairRings, QueuePool, fill_deficit, fill_locked};
use super::{Socket, SocketConfig};
use crate::addr::Addressing;
use crate::error::Result;
use crate::ring::FillRing;
use crate::sys::{XDP_PKT_CONTD, XdpDesc};
use crate::umem::{Batch, FrameState, Umem};

/// Received frames lent by [`Socket::recv_with`], read-only, in ring order.
pub struct RxView<'a> {
    lent: Lent<'a>,
}

enum Lent<'a> {
    /// Nothing received.
    Empty,
    /// In place on the rx ring, checked by `FrameTable::lendable`.
    Ring { descs: [&'a [XdpDesc]; 2], umem: &'a Umem, addressing: Addressing, chains: bool },
    /// A batch received by the checked path (after a descriptor failed the check).
    Batch(&'a Batch),
}

/// One lent frame: its packet bytes and whether the packet continues in the next frame
/// (multi-buffer).
#[derive(Debug, Clone, Copy)]
pub struct RxFrame<'a> {
    data: &'a [u8],
    more: bool,
}

impl<'a> RxFrame<'a> {
    /// The packet bytes (of this frame's part, in a chain).
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Whether the packet continues in the next frame (`XDP_PKT_CONTD`).
    pub fn more(&self) -> bool {
        self.more
    }
}

impl RxView<'_> {
    /// A view of nothing.
    pub(super) fn empty() -> RxView<'static> {
        RxView { lent: Lent::Empty }
    }

    /// How many frames are lent.
    pub fn len(&self) -> usize {
        match &self.lent {
            Lent::Empty => 0,
            Lent::Ring { descs, .. } => descs[0].len() + descs[1].len(),
            Lent::Batch(b) => b.len(),
        }
    }

    /// Whether nothing was received.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The lent frames, in ring order.
    pub fn iter(&self) -> impl Iterator<Item = RxFrame<'_>> + '_ {
        let (ring, batch) = match &self.lent {
            Lent::Empty => (None, None),
            Lent::Ring { descs, umem, addressing, chains } => {
                let frames = descs[0].iter().chain(descs[1].iter());
                (Some(frames.map(move |d| ring_frame(umem, *addressing, d, *chains))), None)
            }
            Lent::Batch(b) => (
                None,
                Some(b.descs().iter().enumerate().map(|(i, d)| RxFrame {
                    // The batch's lengths come from the rx ring, checked against the frame.
                    data: b.data(i).unwrap_or_default(),
                    more: d.more(),
                })),
            ),
        };
        ring.into_iter().flatten().chain(batch.into_iter().flatten())
    }

    /// Frame `i`, if there is one.
    pub fn get(&self, i: usize) -> Option<RxFrame<'_>> {
        match &self.lent {
            Lent::Empty => None,
            Lent::Ring { descs, umem, addressing, chains } => {
                let d = descs[0].get(i).or_else(|| descs[1].get(i.checked_sub(descs[0].len())?))?;
                Some(ring_frame(umem, *addressing, d, *chains))
            }
            Lent::Batch(b) => Some(RxFrame { data: b.data(i).ok()?, more: b.descs()[i].more() }),
        }
    }

    /// The bytes of all lent frames together.
    pub fn bytes(&self) -> u64 {
        match &self.lent {
            Lent::Empty => 0,
            Lent::Ring { descs, .. } => {
                descs.iter().flat_map(|p| p.iter()).map(|d| u64::from(d.len)).sum()
            }
            Lent::Batch(b) => b.descs().iter().map(|d| u64::from(d.len)).sum(),
        }
    }
}

/// The frame of rx descriptor `d`, lent in place.
#[inline]
fn ring_frame<'a>(
    umem: &'a Umem,
    addressing: Addressing,
    d: &XdpDesc,
    chains: bool,
) -> RxFrame<'a> {
    let at = addressing.flat(d.addr) as usize;
    // SAFETY: `FrameTable::lendable` found the descriptor's frame on this socket's fill ring
    // (so inside the region) and `offset + len` within the frame, hence `at + len` within
    // the region. The kernel took the frame off the fill ring and does not write it until it
    // is back on one, no batch holds it (it is not `User`), and the view's borrow of the rx
    // ring keeps it from going back before the slice is gone.
    let data = unsafe { std::slice::from_raw_parts(umem.as_ptr().add(at), d.len as usize) };
    RxFrame { data, more: chains && d.options & XDP_PKT_CONTD != 0 }
}

impl Socket {
    /// Receives up to `max` frames without waiting and lends them to `f` where they are, in
    /// the UMEM, read-only; when `f` returns (or panics) they go straight back on the fill
    /// ring. Returns what `f` returned; `f` runs also when nothing was received (an empty
    /// view).
    ///
    /// The same frames and checks as [`Socket::recv`] (multi-buffer: whole packets), without a
    /// batch: the frames never change state in the frame table, so the receive costs a
    /// read-only check per frame instead of two state moves. A frame the kernel hands back
    /// that is not on this socket's fill ring, or whose packet runs past its frame, makes the
    /// call take the checked path of [`Socket::recv`] (counted as `unexpected`, refused) and
    /// lend its batch. To keep, edit or send a frame, use [`Socket::recv`].
    ///
    /// # Errors
    ///
    /// As [`Socket::recv`]'s.
    pub fn recv_with<R>(&mut self, max: u32, f: impl FnOnce(&RxView<'_>) -> R) -> Result<R> {
        let (r, filled, wake) = self.rx_work()?.recv_with(max, f);
        self.filled(filled, wake);
        Ok(r)
    }
}

impl RxWork<'_> {
    /// [`Socket::recv_with`]'s work: `f` sees an empty view when [`RxWork::idle`], else
    /// [`RxWork::lend`].
    pub(super) fn recv_with<R>(
        mut self,
        max: u32,
        f: impl FnOnce(&RxView<'_>) -> R,
    ) -> (R, u32, bool) {
        if self.idle() {
            return (f(&RxView::empty()), 0, false);
        }
        self.lend(max, f)
    }

    /// The ring and frame-table work of [`Socket::recv_with`]: peeks up to `max` descriptors
    /// (whole packets with multi-buffer), checks them under the frame table's lock, lends them
    /// to `f`, puts their frames back on the pair's fill ring (under the pair's lock; with
    /// `autofill`, also tops it up when it lacks frames) and releases the rx slots.
    fn lend<R>(mut self, max: u32, f: impl FnOnce(&RxView<'_>) -> R) -> (R, u32, bool) {
        let (umem, pool, cfg) = (self.umem, self.pool, self.cfg);
        let addressing = umem.addressing();
        let ready = self.ready(max);
        let descs = self.rx.peek_slices(ready);
        let n = (descs[0].len() + descs[1].len()) as u32;
        if !umem.frames().lendable(&descs, pool.id, addressing) {
            // Peeked again, and checked frame by frame, by the checked path.
            self.rx.rewind();
            let (batch, filled, wake) = self.take(max);
            let r = catch_unwind(AssertUnwindSafe(|| f(&RxView { lent: Lent::Batch(&batch) })));
            drop(batch);
            return (r.unwrap_or_else(|p| resume_unwind(p)), filled, wake);
        }
        let view =
            RxView { lent: Lent::Ring { descs, umem, addressing, chains: cfg.multi_buffer } };
        // The frames go back whatever `f` does, a panic included.
        let r = catch_unwind(AssertUnwindSafe(|| f(&view)));
        let (filled, wake) = give_back(pool, umem, cfg, &descs, addressing);
        self.rx.release(n);
        self.counters.received += u64::from(n);
        (r.unwrap_or_else(|p| resume_unwind(p)), filled, wake)
    }
}

/// Puts the frames of lent descriptors back on the pair's fill ring, under its lock (with
/// `autofill`, tops it up from the free pool when it lacks frames, as a receive does);
/// returns how many frames went on the ring and whether it asks for a wakeup.
fn give_back(
    pool: &QueuePool,
    umem: &Umem,
    cfg: &SocketConfig,
    descs: &[&[XdpDesc]; 2],
    addressing: Addressing,
) -> (u32, bool) {
    let n = (descs[0].len() + descs[1].len()) as u32;
    let mut rings = pool.rings();
    let mut got = 0;
    if let PairRings { fill: Some(fill), .. } = &mut *rings {
        // The frames came off this ring: it has room for them, barring a confused kernel.
        let room = fill.reserve(n);
        let [a, b] = fill.reserved_slices();
        // One loop per chunk mode, over runs contiguous in both rings.
        match addressing.aligned_shift() {
            Some(shift) => zip_runs([a, b], *descs, |slots, run| {
                for (slot, d) in slots.iter_mut().zip(run) {
                    *slot = d.addr >> shift << shift;
                }
            }),
            None => zip_runs([a, b], *descs, |slots, run| {
                for (slot, d) in slots.iter_mut().zip(run) {
                    // Checked by `lendable`, so it decodes.
                    *slot = addressing
                        .decode(d.addr)
                        .map_or(0, |at| addressing.frame_start(at.index as u32));
                }
            }),
        }
        for slots in fill.reserved_slices() {
            // Before the kernel sees them: no stale receive metadata in the frames.
            umem.clear_rx_meta(slots);
        }
        fill.submit(room);
        got = room;
    }
    let mut filled = got;
    if got < n || (cfg.autofill && !pool.topped_up.load(Ordering::Acquire)) {
        let mut table = umem.frames();
        // What did not fit goes to the free pool (checked: lent frames are `Fill`).
        for d in descs.iter().flat_map(|p| p.iter()).skip(got as usize) {
            if let Some(at) = addressing.decode(d.addr) {
                let _ = table.transition(
                    at.index as u32,
                    FrameState::Fill,
                    FrameState::Free,
                    addressing.frame_size(),
                );
            }
        }
        if cfg.autofill {
            let want = fill_deficit(&rings, &table);
            filled += fill_locked(&mut rings, &mut table, umem, pool.id, want, addressing);
            pool.topped_up.store(fill_deficit(&rings, &table) == 0, Ordering::Release);
        }
    }
    (filled, filled != 0 && rings.fill.as_ref().is_some_and(FillRing::needs_wakeup))
}

/// Calls `f` on the runs of `out` and `input` (each in two parts: the two runs of a ring that
/// wraps around) that are contiguous in both, in order, until either ends.
fn zip_runs<A, B>(out: [&mut [A]; 2], input: [&[B]; 2], mut f: impl FnMut(&mut [A], &[B])) {
    let [first, second] = input;
    let mut rest = Some(second);
    let mut cur = first;
    for mut o in out {
        while !o.is_empty() {
            if cur.is_empty() {
                match rest.take() {
                    Some(next) if !next.is_empty() => cur = next,
                    _ => return,
                }
            }
            let n = o.len().min(cur.len());
            let (head, tail) = std::mem::take(&mut o).split_at_mut(n);
            f(head, &cur[..n]);
            o = tail;
            cur = &cur[n..];
        }
    }
}

#[cfg(test)]
mod tests {
    use std::panic::{AssertUnwindSafe, catch_unwind};

    use super::super::rx_path::tests::{deliver, receiver};
    use crate::ring::{Consumer, Producer};
    use crate::sys::XdpDesc;
    use crate::umem::{FrameState, Umem};

    /// The kernel's part, with packet bytes: `deliver`, after writing into each frame, 256
    /// bytes in, `len` bytes of its frame number (mod 256).
    fn deliver_data(
        umem: &Umem,
        fill: &mut Consumer<u64>,
        rx: &mut Producer<XdpDesc>,
        n: u32,
        len: u32,
    ) -> u32 {
        let mut addrs = Vec::new();
        fill.peek(n, &mut addrs);
        fill.rewind();
        for &addr in &addrs {
            let at = addr as usize + 256;
            // SAFETY: a frame on the fill ring (the kernel's to write), inside the region.
            unsafe {
                std::ptr::write_bytes(umem.as_ptr().add(at), (addr / 2048) as u8, len as usize)
            };
        }
        deliver(fill, rx, n, len)
    }

    /// The fill ring's addresses as the kernel sees them, consumed.
    fn fill_addrs(fill: &mut Consumer<u64>) -> Vec<u64> {
        let mut addrs = Vec::new();
        let n = fill.peek(u32::MAX, &mut addrs);
        fill.release(n);
        addrs
    }

    /// An rx descriptor the kernel should never write, added after what is on the ring.
    fn deliver_raw(rx: &mut Producer<XdpDesc>, desc: XdpDesc) {
        assert_eq!(rx.reserve(1), 1);
        rx.write(0, desc);
        rx.submit(1);
    }

    #[test]
    fn lends_received_frames_in_place_and_puts_them_back_on_the_fill_ring() {
        let (umem, mut path, mut fill_k, mut rx_k) = receiver(256, 128, 100);
        assert_eq!(path.recv_with(64, |v| v.len()), 0);
        assert_eq!(deliver_data(&umem, &mut fill_k, &mut rx_k, 40, 60), 40);
        let seen: Vec<_> = path.recv_with(64, |v| {
            // Nothing moved in the frame table while lent: no batch, no state change.
            let table = umem.frames();
            assert_eq!((table.count(FrameState::Fill), table.count(FrameState::User)), (100, 0));
            drop(table);
            assert_eq!((v.len(), v.bytes()), (40, 40 * 60));
            assert_eq!(v.get(39).map(|f| f.data()[0]), Some(39));
            assert!(v.get(40).is_none());
            v.iter().map(|f| (f.data().len(), f.data()[0], f.data()[59], f.more())).collect()
        });
        // Frames 0..40, each with its own bytes.
        let want: Vec<_> = (0..40u8).map(|i| (60, i, i, false)).collect();
        assert_eq!(seen, want);
        // Back on the fill ring: the 60 the kernel still had, then the 40 lent, each once and
        // at its frame's start.
        let addrs = fill_addrs(&mut fill_k);
        assert_eq!(addrs.len(), 100);
        assert_eq!(addrs[60..], (0..40u64).map(|i| i * 2048).collect::<Vec<_>>());
        let table = umem.frames();
        assert_eq!((table.count(FrameState::Fill), table.count(FrameState::Free)), (100, 156));
        drop(table);
        let c = path.counters();
        assert_eq!((c.received, c.filled, c.unexpected), (40, 140, 0));
    }

    #[test]
    fn a_descriptor_that_fails_the_check_sends_the_call_down_the_checked_path() {
        let (umem, mut path, mut fill_k, mut rx_k) = receiver(256, 128, 100);
        assert_eq!(deliver_data(&umem, &mut fill_k, &mut rx_k, 10, 60), 10);
        // Frame 200 is free (never on the fill ring), frame 10 is on it but its packet would
        // run past the frame's end.
        deliver_raw(&mut rx_k, XdpDesc { addr: 200 * 2048 + 256, len: 60, options: 0 });
        deliver_raw(&mut rx_k, XdpDesc { addr: 10 * 2048 + 256, len: 1793, options: 0 });
        let seen = path.recv_with(64, |v| v.iter().map(|f| f.data()[0]).collect::<Vec<_>>());
        // The ten good frames, lent from a checked batch; the other two refused.
        assert_eq!(seen, (0..10u8).collect::<Vec<_>>());
        let c = path.counters();
        assert_eq!((c.received, c.unexpected), (10, 2));
        let table = umem.frames();
        assert_eq!(table.state(200), Some(FrameState::Free));
        // Frame 10 went to the free pool (from where the top-up may have put it back on the
        // fill ring): not lent, not held.
        assert_ne!(table.state(10), Some(FrameState::User));
        assert_eq!(table.count(FrameState::User), 0);
        assert_eq!(table.count(FrameState::Fill), 100);
        drop(table);
        // All three runs of the ring are consumed: nothing is seen twice.
        assert_eq!(path.recv_with(64, |v| v.len()), 0);
    }

    #[test]
    fn a_panic_while_lent_still_puts_the_frames_back_and_releases_the_rx_ring() {
        let (umem, mut path, mut fill_k, mut rx_k) = receiver(256, 128, 100);
        assert_eq!(deliver_data(&umem, &mut fill_k, &mut rx_k, 20, 60), 20);
        let r = catch_unwind(AssertUnwindSafe(|| path.recv_with(64, |_| panic!("lender"))));
        assert!(r.is_err());
        assert_eq!(umem.frames().count(FrameState::Fill), 100);
        assert_eq!(fill_k.available(128), 100, "the 20 frames are back on the fill ring");
        // The rx slots were released: the next call sees only the next delivery.
        assert_eq!(deliver_data(&umem, &mut fill_k, &mut rx_k, 5, 60), 5);
        assert_eq!(path.recv_with(64, |v| v.len()), 5);
        assert_eq!(path.counters().received, 25);
    }

    #[test]
    fn unaligned_frames_are_lent_and_go_back_at_their_starts() {
        use crate::ring::{FillRing, RingMemory, RxRing};
        use crate::socket::{RxPath, SocketConfig};
        use crate::umem::UmemConfig;

        let cfg = UmemConfig {
            frame_count: 16,
            frame_size: 3000,
            unaligned: true,
            ..UmemConfig::default()
        };
        let umem = Umem::new(cfg).unwrap();
        let (rx_user, rx_kernel) = RingMemory::<XdpDesc>::heap(16);
        let (fill_user, fill_kernel) = RingMemory::<u64>::heap(16);
        let mut path = RxPath::new(
            umem.clone(),
            RxRing::new(rx_user),
            FillRing::new(fill_user),
            8,
            SocketConfig::default(),
        )
        .unwrap();
        let (mut fill_k, mut rx_k) = (Consumer::new(fill_kernel), Producer::new(rx_kernel));
        // The kernel's part in unaligned mode: the offset in the top 16 bits.
        let addrs = fill_addrs(&mut fill_k);
        assert_eq!(addrs, (0..8u64).map(|i| i * 3000).collect::<Vec<_>>());
        for &addr in &addrs[..4] {
            // SAFETY: a frame the kernel took off the fill ring, inside the region.
            unsafe { *umem.as_ptr().add(addr as usize + 300) = (addr / 3000) as u8 };
            deliver_raw(&mut rx_k, XdpDesc { addr: addr | 300 << 48, len: 60, options: 0 });
        }
        let firsts: Vec<u8> = path.recv_with(64, |v| v.iter().map(|f| f.data()[0]).collect());
        assert_eq!(firsts, [0, 1, 2, 3]);
        // Back on the fill ring at their starts; the 4 still out were counted as on it.
        assert_eq!(fill_addrs(&mut fill_k), (0..4u64).map(|i| i * 3000).collect::<Vec<_>>());
        assert_eq!(path.counters().unexpected, 0);
    }

    #[test]
    #[ignore = "needs root: network namespaces, veth, XDP"]
    fn a_socket_lends_what_the_kernel_received() {
        use std::time::{Duration, Instant};

        use crate::bpf::test_support::{VethNetns, in_netns};
        use crate::bpf::{AttachMode, Rule, XdpProgram};
        use crate::socket::{Socket, SocketConfig};
        use crate::sys::Interface;
        use crate::umem::UmemConfig;

        let netns = VethNetns::new(1);
        let (mut sock, _program) = netns.enter(|| {
            let iface = Interface::by_name("veth1").unwrap();
            let umem = Umem::new(UmemConfig { frame_count: 256, ..UmemConfig::default() }).unwrap();
            let sock = Socket::open(&iface, 0, umem, SocketConfig::default()).unwrap();
            let udp = Rule { ip_proto: Some(17), dst_port: Some(4242), ..Rule::default() };
            let mut program =
                XdpProgram::attach_with_rules(&iface, AttachMode::Native, &[udp]).unwrap();
            program.register(0, sock.fd()).unwrap();
            (sock, program)
        });
        let fill = sock.umem().frames().count(FrameState::Fill);
        in_netns(&netns.peer, || {
            let s = std::net::UdpSocket::bind("10.211.0.2:0").unwrap();
            for i in 0..32u8 {
                s.send_to(&[b'x', i], "10.211.0.1:4242").unwrap();
            }
        });
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(3);
        while seen.len() < 32 && Instant::now() < deadline {
            let poll = sock.poll_handle().unwrap();
            poll.poll(crate::socket::POLLIN, Duration::from_millis(100)).unwrap();
            sock.recv_with(64, |v| {
                // The UDP payload: the last two bytes of each frame (Ethernet, IPv4, UDP).
                seen.extend(
                    v.iter().map(|f| (f.data().len(), f.data()[f.data().len() - 2..].to_vec())),
                );
            })
            .unwrap();
        }
        let want: Vec<_> = (0..32u8).map(|i| (14 + 20 + 8 + 2, vec![b'x', i])).collect();
        assert_eq!(seen, want);
        // Lent and back on the fill ring: no frame changed hands.
        let table = sock.umem().frames();
        assert_eq!((table.count(FrameState::Fill), table.count(FrameState::User)), (fill, 0));
        drop(table);
        let c = sock.stats().unwrap().counters;
        assert_eq!((c.received, c.unexpected), (32, 0));
    }
}
