//! Test support: a socket's receive path over rings the caller provides, with no fd and no
//! syscall, so the benches can time [`Socket::recv`] without a kernel.
//!
//! [`RxPath::recv`] runs the very code [`Socket::recv`] runs between its fork check and its
//! wakeups (`RxWork::recv`: the pair's lock, the frame table's, the rx peek into a batch, the
//! fill top-up, the counters); the caller plays the kernel on the other side of the two rings
//! (`RingMemory::heap` hands out both views). Not part of the API: hidden from the docs.

use std::sync::Arc;

#[cfg(doc)]
use super::Socket;
use super::datapath::RxWork;
use super::lend::RxView;
use super::pair::{QueueKey, QueuePool, Refill, fill_deficit, fill_locked};
use super::{Counters, SocketConfig};
use crate::error::Result;
use crate::ring::{FillRing, RxRing};
use crate::umem::{Batch, Umem};

/// The receive half of a [`Socket`] (its rx ring and a fill ring pair of its own) over rings
/// the caller made, for benches and tests. Everything a socket's `recv` does except the
/// syscalls: the fork check, the busy-poll `recvfrom` and the fill ring's wakeup.
#[doc(hidden)]
pub struct RxPath {
    rx: RxRing,
    pool: Arc<QueuePool>,
    refill: Option<Arc<Refill>>,
    umem: Umem,
    cfg: SocketConfig,
    counters: Counters,
    /// Top-ups after which the fill ring asked for a wakeup (a socket would call `recvfrom`).
    wakeups: u64,
}

impl RxPath {
    /// A receive path over `umem` with the rings `rx` and `fill` (their kernel-side views stay
    /// with the caller), keeping `fill_target` frames on the fill ring when `cfg.autofill` (and
    /// putting them there now, as [`Socket::open`] does). Of `cfg` only `autofill` and
    /// `multi_buffer` apply. The pair is the UMEM's like a socket's, named by no interface.
    ///
    /// # Errors
    ///
    /// As [`Socket::open`]'s: [`crate::Error::ForkedChild`], or [`crate::Error::InvalidArgument`]
    /// when the UMEM has no ring pair id left.
    pub fn new(
        umem: Umem,
        rx: RxRing,
        fill: FillRing,
        fill_target: u32,
        cfg: SocketConfig,
    ) -> Result<RxPath> {
        umem.check_fork()?;
        // No interface has index 0, so no socket ever shares this pair.
        let key = QueueKey { netns: (0, 0), ifindex: 0, queue: 0 };
        let pool =
            umem.add_pool(|id| Arc::new(QueuePool::new(id, key, &umem, Some(fill), fill_target)))?;
        let refill = cfg.autofill.then(|| Arc::new(Refill::new(pool.clone())));
        let mut path =
            RxPath { rx, pool, refill, umem, cfg, counters: Counters::default(), wakeups: 0 };
        if cfg.autofill {
            let addressing = path.umem.addressing();
            let mut rings = path.pool.rings();
            let mut table = path.umem.frames();
            let want = fill_deficit(&rings, &table);
            let got =
                fill_locked(&mut rings, &mut table, &path.umem, path.pool.id, want, addressing);
            drop(table);
            drop(rings);
            path.counters.filled += u64::from(got);
        }
        Ok(path)
    }

    /// What a receive works on: this path's rings, pool, UMEM, config and counters.
    fn work(&mut self) -> RxWork<'_> {
        RxWork {
            rx: &mut self.rx,
            pool: &self.pool,
            refill: self.refill.as_ref(),
            umem: &self.umem,
            cfg: &self.cfg,
            counters: &mut self.counters,
        }
    }

    /// [`Socket::recv`] without its syscalls: takes up to `max` received frames.
    pub fn recv(&mut self, max: u32) -> Batch {
        let (batch, filled, wake) = self.work().recv(max);
        self.filled(filled, wake);
        batch
    }

    /// [`Socket::recv_with`]'s ring and frame-table work: lends up to `max` received frames to
    /// `f` and puts them back on the fill ring.
    pub fn recv_with<R>(&mut self, max: u32, f: impl FnOnce(&RxView<'_>) -> R) -> R {
        let (r, filled, wake) = self.work().recv_with(max, f);
        self.filled(filled, wake);
        r
    }

    /// Counts frames a receive put on the fill ring, and the wakeup a socket would make.
    fn filled(&mut self, filled: u32, wake: bool) {
        self.counters.filled += u64::from(filled);
        self.wakeups += u64::from(filled != 0 && wake);
    }

    /// The library's counters, as [`Socket::stats`] has them.
    pub fn counters(&self) -> Counters {
        let mut c = self.counters;
        c.filled += self.refill.as_ref().map_or(0, |r| r.filled());
        c
    }

    /// How many top-ups (by a receive, or by a batch let go of) left the fill ring asking for
    /// a wakeup.
    pub fn wakeups(&self) -> u64 {
        self.wakeups + self.refill.as_ref().map_or(0, |r| r.wakeups())
    }

    /// The UMEM.
    pub fn umem(&self) -> &Umem {
        &self.umem
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::ring::{Consumer, Producer, RingMemory};
    use crate::sys::{XDP_RING_NEED_WAKEUP, XdpDesc};
    use crate::umem::{FrameState, UmemConfig};

    /// The kernel's part: moves up to `n` fill addresses onto the rx ring as packets of `len`
    /// bytes starting 256 bytes into the frame (XDP_PACKET_HEADROOM).
    pub(in crate::socket) fn deliver(
        fill: &mut Consumer<u64>,
        rx: &mut Producer<XdpDesc>,
        n: u32,
        len: u32,
    ) -> u32 {
        let mut addrs = Vec::new();
        let got = fill.peek(n, &mut addrs);
        fill.release(got);
        let room = rx.reserve(got);
        assert_eq!(room, got);
        for (i, &addr) in addrs.iter().enumerate() {
            rx.write(i as u32, XdpDesc { addr: addr + 256, len, options: 0 });
        }
        rx.submit(got);
        got
    }

    /// A UMEM of `frames` 2048-byte frames and a receive path over it with a 64-entry rx ring
    /// and a `fill_size` fill ring kept at `fill_target` frames (default options), with the
    /// kernel's ends of its fill and rx rings.
    pub(in crate::socket) fn receiver(
        frames: u32,
        fill_size: u32,
        fill_target: u32,
    ) -> (Umem, RxPath, Consumer<u64>, Producer<XdpDesc>) {
        let umem = Umem::new(UmemConfig {
            frame_count: frames,
            frame_size: 2048,
            ..UmemConfig::default()
        })
        .unwrap();
        let (rx_user, rx_kernel) = RingMemory::<XdpDesc>::heap(64);
        let (fill_user, fill_kernel) = RingMemory::<u64>::heap(fill_size);
        let path = RxPath::new(
            umem.clone(),
            RxRing::new(rx_user),
            FillRing::new(fill_user),
            fill_target,
            SocketConfig::default(),
        )
        .unwrap();
        (umem, path, Consumer::new(fill_kernel), Producer::new(rx_kernel))
    }

    #[test]
    fn receives_what_the_kernel_delivered_and_keeps_the_fill_ring_topped_up() {
        let (umem, mut path, mut fill_k, mut rx_k) = receiver(256, 128, 100);
        assert_eq!(umem.frames().count(FrameState::Fill), 100);
        assert!(path.recv(64).is_empty());
        for round in 0..10 {
            assert_eq!(deliver(&mut fill_k, &mut rx_k, 40, 60), 40);
            let batch = path.recv(64);
            assert_eq!(batch.len(), 40, "round {round}");
            assert!(batch.descs().iter().all(|d| d.offset == 256 && d.len == 60));
            {
                // While the batch is held, the fill ring keeps room for its frames.
                let table = umem.frames();
                assert_eq!(table.count(FrameState::User), 40);
                assert_eq!(table.count(FrameState::Fill), 60);
            }
            drop(batch);
            // Let go of, they went straight back onto the fill ring.
            let table = umem.frames();
            assert_eq!(table.count(FrameState::Fill), 100);
            assert_eq!(table.count(FrameState::Free), 156);
        }
        let c = path.counters();
        assert_eq!((c.received, c.filled, c.unexpected), (400, 500, 0));
        drop(path);
        // The pair went with the path: its fill frames are free again.
        assert_eq!(umem.frames().count(FrameState::Free), 256);
    }

    #[test]
    fn an_empty_receive_tops_up_frames_released_after_a_short_top_up() {
        // Every frame on the fill ring: a receive of them all finds the free pool empty, so
        // its top-up falls short; once the batch is dropped, the next receive, though the rx
        // ring is empty, must put the frames back (or the kernel would never deliver again).
        let (umem, mut path, mut fill_k, mut rx_k) = receiver(64, 64, 64);
        assert_eq!(deliver(&mut fill_k, &mut rx_k, 64, 60), 64);
        let mut batch = path.recv(64);
        assert_eq!(batch.len(), 64);
        assert_eq!(umem.frames().count(FrameState::Fill), 0, "nothing free to top up with");
        // Into the free pool, as frames come back after a send (not through the fill ring).
        batch.release_from(0);
        assert_eq!(umem.frames().count(FrameState::Free), 64);
        assert!(path.recv(64).is_empty());
        assert_eq!(umem.frames().count(FrameState::Fill), 64, "the empty receive topped up");
        assert_eq!(fill_k.available(64), 64);
        // Topped up: further empty receives have nothing to do and change nothing.
        for _ in 0..3 {
            assert!(path.recv(64).is_empty());
        }
        assert_eq!(umem.frames().count(FrameState::Fill), 64);
        assert_eq!(path.counters().filled, 64 + 64);
        // And the kernel's next delivery arrives.
        assert_eq!(deliver(&mut fill_k, &mut rx_k, 10, 60), 10);
        assert_eq!(path.recv(64).len(), 10);
    }

    #[test]
    fn a_batch_let_go_of_refills_the_fill_ring_up_to_its_target_and_the_rest_goes_free() {
        let (umem, mut path, mut fill_k, mut rx_k) = receiver(256, 128, 100);
        assert_eq!(deliver(&mut fill_k, &mut rx_k, 64, 60), 64);
        let first = path.recv(32);
        let second = path.recv(32);
        // Room kept for the first batch's 32, then for the second's: the first receive took
        // 32 and topped up nothing, the second took 32 more and topped up 32 of the 64.
        assert_eq!(umem.frames().count(FrameState::Fill), 100 - 32);
        drop(first);
        assert_eq!(umem.frames().count(FrameState::Fill), 100);
        // The fill ring is full: the second batch's frames all go to the free pool.
        drop(second);
        let table = umem.frames();
        assert_eq!(table.count(FrameState::Fill), 100);
        assert_eq!(table.count(FrameState::Free), 156);
        drop(table);
        // The kernel's side sees 100 frames, each once, at its frame start.
        let mut addrs = Vec::new();
        let got = fill_k.peek(128, &mut addrs);
        assert_eq!(got, 100);
        assert!(addrs.iter().all(|a| a % 2048 == 0));
        let mut sorted = addrs.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), addrs.len(), "a frame on the fill ring twice");
        assert_eq!(path.counters().filled, 100 + 32 + 32);
    }

    #[test]
    fn room_kept_for_a_held_batch_is_at_most_half_the_fill_target() {
        let (umem, mut path, mut fill_k, mut rx_k) = receiver(64, 16, 8);
        assert_eq!(deliver(&mut fill_k, &mut rx_k, 8, 60), 8);
        let batch = path.recv(64);
        assert_eq!(batch.len(), 8);
        // 8 received, room kept for 4 of them: the kernel has 4 frames while the batch is held.
        assert_eq!(umem.frames().count(FrameState::Fill), 4);
        drop(batch);
        assert_eq!(umem.frames().count(FrameState::Fill), 8);
        assert_eq!(umem.frames().count(FrameState::Free), 56);
    }

    #[test]
    fn a_batch_that_outlives_its_receive_path_returns_its_frames_to_the_free_pool() {
        let (umem, mut path, mut fill_k, mut rx_k) = receiver(256, 128, 100);
        assert_eq!(deliver(&mut fill_k, &mut rx_k, 10, 60), 10);
        let batch = path.recv(64);
        assert_eq!(batch.len(), 10);
        drop(path);
        // The pair is gone (its fill frames reclaimed); the batch's frames must not go to it.
        assert_eq!(umem.frames().count(FrameState::Free), 246);
        drop(batch);
        assert_eq!(umem.frames().count(FrameState::Free), 256);
        assert_eq!(umem.frames().count(FrameState::Fill), 0);
    }

    #[test]
    fn a_batch_let_go_of_wakes_the_kernel_when_the_fill_ring_asks() {
        let (_umem, mut path, mut fill_k, mut rx_k) = receiver(256, 128, 100);
        assert_eq!(deliver(&mut fill_k, &mut rx_k, 10, 60), 10);
        let batch = path.recv(64);
        assert_eq!(path.wakeups(), 0);
        fill_k.set_flags(XDP_RING_NEED_WAKEUP);
        drop(batch);
        assert_eq!(path.wakeups(), 1);
    }
}
