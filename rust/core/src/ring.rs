//! Producer and consumer cursors over the rings the kernel shares with an AF_XDP socket.
//!
//! Each ring is single-producer/single-consumer: a free-running `u32` producer index, a `u32`
//! consumer index, a `flags` word and `size` (a power of two) entries. User space produces the
//! fill and tx rings and consumes the rx and completion rings. No syscalls here: the same code
//! runs over heap memory in tests and benches ([`RingMemory::heap`]).
//!
//! Ordering (the kernel's `xsk_queue.h`, barriers A–D): a consumer Acquire-loads the producer
//! before reading entries and Release-stores its consumer after copying them out; a producer
//! writes entries, then Release-stores the producer, and Acquire-loads the consumer before
//! reusing slots. Indices wrap (`wrapping_*`) and select a slot with `idx & mask`; they are
//! never widened, so nothing changes after 2^32 packets.

use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::sys::{XDP_RING_NEED_WAKEUP, XdpDesc};

/// Where one ring lives: pointers into memory kept alive by `owner` (a ring mmap, or a heap
/// block in tests).
pub struct RingMemory<T> {
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    flags: NonNull<AtomicU32>,
    descs: NonNull<T>,
    size: u32,
    _owner: Arc<dyn Send + Sync>,
}

// SAFETY: the pointers target memory owned by `_owner` (Send + Sync); the indices are atomics,
// and each cursor built on a RingMemory is the only user-space party on its side of the ring.
unsafe impl<T: Send> Send for RingMemory<T> {}
// SAFETY: shared references only allow atomic loads of the indices and flags.
unsafe impl<T: Send> Sync for RingMemory<T> {}

impl<T: Copy> RingMemory<T> {
    /// Describes a ring.
    ///
    /// # Safety
    /// `producer`, `consumer` and `flags` must point to aligned, live `u32`s used atomically by
    /// every party, and `descs` to `size` aligned entries of `T`, all inside memory that `owner`
    /// keeps alive. `size` must be a non-zero power of two.
    pub unsafe fn new(
        owner: Arc<dyn Send + Sync>,
        producer: *mut u32,
        consumer: *mut u32,
        flags: *mut u32,
        descs: *mut T,
        size: u32,
    ) -> Self {
        assert!(size.is_power_of_two(), "ring size {size} is not a power of two");
        let nn = |p: *mut u32| NonNull::new(p.cast::<AtomicU32>()).expect("ring index pointer is null");
        RingMemory {
            producer: nn(producer),
            consumer: nn(consumer),
            flags: nn(flags),
            descs: NonNull::new(descs).expect("ring descriptor pointer is null"),
            size,
            _owner: owner,
        }
    }

    /// A ring over heap memory (tests, benches, fuzzing): two views of the same memory, one for
    /// each side.
    pub fn heap(size: u32) -> (Self, Self)
    where
        T: Send + 'static,
    {
        assert!(size.is_power_of_two(), "ring size {size} is not a power of two");
        let block = Arc::new(HeapRing::<T> {
            indices: [AtomicU32::new(0), AtomicU32::new(0), AtomicU32::new(0)],
            descs: (0..size).map(|_| std::cell::UnsafeCell::new(std::mem::MaybeUninit::zeroed())).collect(),
        });
        let view = || {
            let p = block.indices.as_ptr().cast_mut();
            // SAFETY: the three indices and `size` descriptor cells live in `block`, which the
            // returned memory keeps alive; UnsafeCell makes writes through the pointer legal.
            unsafe {
                RingMemory::new(
                    block.clone(),
                    p.cast::<u32>(),
                    p.add(1).cast::<u32>(),
                    p.add(2).cast::<u32>(),
                    block.descs.as_ptr().cast::<T>().cast_mut(),
                    size,
                )
            }
        };
        (view(), view())
    }

    /// Number of entries.
    pub fn size(&self) -> u32 {
        self.size
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: valid and aligned for the life of `_owner` (constructor contract).
        unsafe { self.producer.as_ref() }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as above.
        unsafe { self.consumer.as_ref() }
    }

    fn flags(&self) -> &AtomicU32 {
        // SAFETY: as above.
        unsafe { self.flags.as_ref() }
    }

    fn slot(&self, idx: u32) -> *mut T {
        // SAFETY: `idx & (size - 1) < size`, inside the descriptor array.
        unsafe { self.descs.as_ptr().add((idx & (self.size - 1)) as usize) }
    }

    /// Sets the producer and consumer indices (tests: start near the 2^32 boundary).
    pub fn set_indices(&self, producer: u32, consumer: u32) {
        self.producer().store(producer, Ordering::Release);
        self.consumer().store(consumer, Ordering::Release);
    }

    /// Sets the flags word (tests: play the kernel asking for a wakeup).
    pub fn set_flags(&self, flags: u32) {
        self.flags().store(flags, Ordering::Relaxed);
    }

    fn needs_wakeup(&self) -> bool {
        // Atomic every time: a plain read could be hoisted out of a polling loop.
        self.flags().load(Ordering::Relaxed) & XDP_RING_NEED_WAKEUP != 0
    }
}

type Cell<T> = std::cell::UnsafeCell<std::mem::MaybeUninit<T>>;

struct HeapRing<T> {
    indices: [AtomicU32; 3],
    descs: Box<[Cell<T>]>,
}

// SAFETY: the descriptor cells are only accessed through the ring protocol (one producer, one
// consumer, ordered by the atomic indices).
unsafe impl<T: Send> Send for HeapRing<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for HeapRing<T> {}

/// The producing side of a ring. `cached_cons` is kept as `consumer + size`, so free space is
/// `cached_cons - cached_prod` (libxdp's `xsk_prod_nb_free`).
pub struct Producer<T> {
    mem: RingMemory<T>,
    cached_prod: u32,
    cached_cons: u32,
    reserved: u32,
}

impl<T: Copy> Producer<T> {
    /// A producer starting from the indices currently in memory.
    pub fn new(mem: RingMemory<T>) -> Self {
        let cached_prod = mem.producer().load(Ordering::Relaxed);
        let cached_cons = mem.consumer().load(Ordering::Acquire).wrapping_add(mem.size);
        Producer { mem, cached_prod, cached_cons, reserved: 0 }
    }

    /// Free slots, at least as many as `wanted` if the ring has them; reloads the consumer only
    /// when the cached value shows fewer.
    pub fn free(&mut self, wanted: u32) -> u32 {
        let free = self.cached_cons.wrapping_sub(self.cached_prod);
        if free >= wanted {
            return free;
        }
        self.cached_cons = self.mem.consumer().load(Ordering::Acquire).wrapping_add(self.mem.size);
        self.cached_cons.wrapping_sub(self.cached_prod)
    }

    /// Reserves `min(n, free)` slots starting at the producer index; returns how many. Write
    /// them with [`Producer::write`], publish with [`Producer::submit`]. A new reservation
    /// replaces an unsubmitted one.
    pub fn reserve(&mut self, n: u32) -> u32 {
        self.reserved = n.min(self.free(n));
        self.reserved
    }

    /// Writes slot `i` of the current reservation. Panics when `i` is outside it, so a write
    /// can never land on an entry the kernel has not consumed yet.
    pub fn write(&mut self, i: u32, value: T) {
        assert!(i < self.reserved, "ring write {i} outside the reservation of {}", self.reserved);
        // SAFETY: the slot is inside the reservation, i.e. free: the consumer is done with it
        // (its release was Acquire-observed in `free`), and nobody else writes it.
        unsafe { self.mem.slot(self.cached_prod.wrapping_add(i)).write(value) };
    }

    /// Publishes the first `n` reserved slots (Release: entries before index).
    pub fn submit(&mut self, n: u32) {
        assert!(n <= self.reserved, "submit {n} exceeds the reservation of {}", self.reserved);
        self.cached_prod = self.cached_prod.wrapping_add(n);
        self.reserved = 0;
        self.mem.producer().store(self.cached_prod, Ordering::Release);
    }

    /// Entries published and not yet consumed by the peer.
    pub fn pending(&mut self) -> u32 {
        let size = self.mem.size;
        size - self.free(size)
    }

    /// Whether the peer asked for a wakeup (`XDP_RING_NEED_WAKEUP`).
    pub fn needs_wakeup(&self) -> bool {
        self.mem.needs_wakeup()
    }

    /// Ring size.
    pub fn size(&self) -> u32 {
        self.mem.size
    }
}

/// The consuming side of a ring.
pub struct Consumer<T> {
    mem: RingMemory<T>,
    cached_prod: u32,
    cached_cons: u32,
}

impl<T: Copy> Consumer<T> {
    /// A consumer starting from the indices currently in memory.
    pub fn new(mem: RingMemory<T>) -> Self {
        let cached_cons = mem.consumer().load(Ordering::Relaxed);
        let cached_prod = mem.producer().load(Ordering::Acquire);
        Consumer { mem, cached_prod, cached_cons }
    }

    /// Entries ready, reloading the producer only when fewer than `wanted` are cached.
    pub fn available(&mut self, wanted: u32) -> u32 {
        let avail = self.cached_prod.wrapping_sub(self.cached_cons);
        if avail >= wanted {
            return avail;
        }
        self.cached_prod = self.mem.producer().load(Ordering::Acquire);
        self.cached_prod.wrapping_sub(self.cached_cons)
    }

    /// Copies up to `max` entries into `out` and releases them to the producer; returns how
    /// many. (Copy first, then Release-store the consumer.)
    pub fn peek(&mut self, max: u32, out: &mut impl Extend<T>) -> u32 {
        let n = self.available(max).min(max);
        let start = self.cached_cons;
        out.extend((0..n).map(|i| {
            // SAFETY: the entry is between consumer and the Acquire-loaded producer: published
            // and not yet released, so the producer does not touch it.
            unsafe { self.mem.slot(start.wrapping_add(i)).read() }
        }));
        self.cached_cons = start.wrapping_add(n);
        n
    }

    /// Hands the slots of entries taken by [`Consumer::peek`] back to the producer.
    pub fn release(&mut self, _n: u32) {
        self.mem.consumer().store(self.cached_cons, Ordering::Release);
    }

    /// Whether the peer asked for a wakeup.
    pub fn needs_wakeup(&self) -> bool {
        self.mem.needs_wakeup()
    }
}

macro_rules! typed_ring {
    ($(#[$doc:meta])* $name:ident, $side:ident, $t:ty) => {
        $(#[$doc])*
        pub struct $name($side<$t>);
        impl $name {
            /// Wraps the ring memory.
            pub fn new(mem: RingMemory<$t>) -> Self {
                $name($side::new(mem))
            }
        }
        impl std::ops::Deref for $name {
            type Target = $side<$t>;
            fn deref(&self) -> &Self::Target {
                &self.0
            }
        }
        impl std::ops::DerefMut for $name {
            fn deref_mut(&mut self) -> &mut Self::Target {
                &mut self.0
            }
        }
    };
}

typed_ring!(
    /// The fill ring: frame addresses handed to the kernel for receiving (user produces).
    FillRing, Producer, u64);
typed_ring!(
    /// The tx ring: descriptors of frames to transmit (user produces).
    TxRing, Producer, XdpDesc);
typed_ring!(
    /// The completion ring: addresses of transmitted frames (user consumes).
    CompletionRing, Consumer, u64);
typed_ring!(
    /// The rx ring: descriptors of received frames (user consumes).
    RxRing, Consumer, XdpDesc);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    fn pair(size: u32, start: u32) -> (Producer<u64>, Consumer<u64>) {
        let (a, b) = RingMemory::<u64>::heap(size);
        a.set_indices(start, start);
        (Producer::new(a), Consumer::new(b))
    }

    fn produce(p: &mut Producer<u64>, values: impl IntoIterator<Item = u64>) -> u32 {
        let values: Vec<u64> = values.into_iter().collect();
        let n = p.reserve(values.len() as u32);
        for i in 0..n {
            p.write(i, values[i as usize]);
        }
        p.submit(n);
        n
    }

    fn consume(c: &mut Consumer<u64>, max: u32) -> Vec<u64> {
        let mut out = Vec::new();
        let n = c.peek(max, &mut out);
        c.release(n);
        out
    }

    #[test]
    fn empty_ring_has_nothing() {
        let (mut p, mut c) = pair(8, 0);
        assert_eq!(consume(&mut c, 8), Vec::<u64>::new());
        assert_eq!(p.free(8), 8);
        assert_eq!(p.pending(), 0);
    }

    #[test]
    fn full_ring_reserves_nothing_and_batches_are_partial() {
        let (mut p, mut c) = pair(8, 0);
        assert_eq!(produce(&mut p, 0..5), 5);
        assert_eq!(produce(&mut p, 5..12), 3, "only the free slots are reserved");
        assert_eq!(p.free(1), 0);
        assert_eq!(p.reserve(4), 0);
        assert_eq!(p.pending(), 8);
        assert_eq!(consume(&mut c, 3), vec![0, 1, 2]);
        assert_eq!(p.free(3), 3);
        assert_eq!(consume(&mut c, 100), vec![3, 4, 5, 6, 7]);
        assert_eq!(p.pending(), 0);
    }

    #[test]
    #[should_panic(expected = "outside the reservation")]
    fn writes_outside_the_reservation_panic() {
        let (mut p, _c) = pair(4, 0);
        let n = p.reserve(2);
        p.write(n, 1);
    }

    #[test]
    fn wraps_across_the_u32_boundary() {
        let (mut p, mut c) = pair(8, u32::MAX - 3);
        let mut next = 0u64;
        let mut expect = 0u64;
        for _ in 0..10 {
            next += u64::from(produce(&mut p, next..next + 6));
            for v in consume(&mut c, 5) {
                assert_eq!(v, expect);
                expect += 1;
            }
        }
        assert!(expect > 8);
        // The raw indices really crossed zero.
        assert!(p.cached_prod < 100 && c.cached_cons < 100);
    }

    #[test]
    fn producer_cache_starts_from_a_nonzero_consumer() {
        let (a, b) = RingMemory::<u64>::heap(4);
        a.set_indices(10, 8); // two entries in flight
        let mut p = Producer::new(a);
        assert_eq!(p.free(4), 2);
        assert_eq!(p.pending(), 2);
        let mut c = Consumer::new(b);
        assert_eq!(c.available(4), 2);
    }

    #[test]
    fn need_wakeup_follows_the_flag_word() {
        let (a, b) = RingMemory::<XdpDesc>::heap(4);
        let tx = TxRing::new(a);
        assert!(!tx.needs_wakeup());
        b.set_flags(XDP_RING_NEED_WAKEUP);
        assert!(tx.needs_wakeup());
        b.set_flags(0);
        assert!(!tx.needs_wakeup());
    }

    #[test]
    fn descriptors_round_trip() {
        let (a, b) = RingMemory::<XdpDesc>::heap(4);
        let mut tx = TxRing::new(a);
        let mut rx = RxRing::new(b);
        assert_eq!(tx.reserve(2), 2);
        tx.write(0, XdpDesc { addr: 4096, len: 60, options: 0 });
        tx.write(1, XdpDesc { addr: 8192, len: 1500, options: 0 });
        tx.submit(2);
        let mut out = Vec::new();
        assert_eq!(rx.peek(8, &mut out), 2);
        rx.release(2);
        assert_eq!(out[1], XdpDesc { addr: 8192, len: 1500, options: 0 });
    }

    /// xorshift64*: a small deterministic generator for the property test.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn random_sequences_match_a_fifo_model() {
        for seed in 1..=300u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let size = 1 << rng.below(6); // 1..32
            let start = if seed % 2 == 0 { u32::MAX - rng.below(64) as u32 } else { rng.next() as u32 };
            let (mut p, mut c) = pair(size, start);
            let mut model: VecDeque<u64> = VecDeque::new();
            let mut next = 0u64;
            for _ in 0..400 {
                if rng.below(2) == 0 {
                    let want = rng.below(u64::from(size) * 2 + 1) as u32;
                    let free = size - model.len() as u32;
                    assert_eq!(p.free(size), free, "seed {seed}: free space");
                    let n = produce(&mut p, next..next + u64::from(want));
                    assert_eq!(n, want.min(free), "seed {seed}: partial reservation");
                    model.extend(next..next + u64::from(n));
                    next += u64::from(n);
                } else {
                    let max = rng.below(u64::from(size) + 2) as u32;
                    let got = consume(&mut c, max);
                    let expected: Vec<u64> = model.drain(..(max as usize).min(model.len())).collect();
                    assert_eq!(got, expected, "seed {seed}: FIFO order");
                }
                assert!(model.len() <= size as usize);
                assert_eq!(p.pending(), model.len() as u32, "seed {seed}: in flight");
            }
        }
    }

    #[test]
    fn two_threads_pass_a_million_entries_in_order() {
        const N: u64 = 1_000_000;
        let (mut p, mut c) = pair(64, u32::MAX - 1000);
        let producer = std::thread::spawn(move || {
            let mut next = 0;
            while next < N {
                let want = (N - next).min(17);
                next += u64::from(produce(&mut p, next..next + want));
            }
        });
        let mut expect = 0;
        let mut out = Vec::with_capacity(64);
        while expect < N {
            out.clear();
            let n = c.peek(32, &mut out);
            c.release(n);
            for &v in &out {
                assert_eq!(v, expect);
                expect += 1;
            }
            if n == 0 {
                std::hint::spin_loop();
            }
        }
        producer.join().unwrap();
    }
}
