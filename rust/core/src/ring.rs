//! Producer and consumer cursors over the rings the kernel shares with an `AF_XDP` socket.
//!
//! Each ring is single-producer/single-consumer: a free-running `u32` producer index, a `u32`
//! consumer index, a `flags` word and `size` (a power of two) entries: `u64` frame addresses on
//! the fill and completion rings, [`XdpDesc`] on the rx and tx rings. User space produces the
//! fill and tx rings and consumes the rx and completion rings. There are no syscalls here: the
//! same code runs over heap memory in tests and benches ([`RingMemory::heap`]).
//!
//! Memory ordering (the kernel's `net/xdp/xsk_queue.h`, barriers A–D): a consumer
//! Acquire-loads the producer index before reading entries and Release-stores its consumer
//! index after copying them out; a producer writes entries, then Release-stores the producer
//! index, and Acquire-loads the consumer index before it reuses slots. The flags word is read
//! with a Relaxed atomic load on every check, never a plain dereference.
//!
//! Indices are free-running: all arithmetic on them wraps (`wrapping_*`) and a slot is
//! `idx & mask`. They are never widened, so nothing changes after 2^32 entries.
//!
//! Both cursors cache the peer's index (libxdp's `cached_prod`/`cached_cons`) and reload it
//! only when the cached value cannot satisfy a request, so a batch usually costs one shared
//! load and one shared store. The producer keeps `cached_cons = consumer + size`, so its free
//! space is `cached_cons - cached_prod` (`xsk_prod_nb_free`).

use std::cell::UnsafeCell;
use std::fmt;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use crate::sys::{XDP_PKT_CONTD, XDP_RING_NEED_WAKEUP, XdpDesc};

/// Where one ring lives: pointers to its producer index, consumer index, flags word and
/// entries, inside memory kept alive by an owner (a ring mmap, or a heap block in tests).
///
/// A `RingMemory` is one party's view of the ring; wrap it in a [`Producer`] or a [`Consumer`]
/// (or one of the typed rings, [`FillRing`], [`TxRing`], [`CompletionRing`], [`RxRing`]).
pub struct RingMemory<T> {
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    flags: NonNull<AtomicU32>,
    descs: NonNull<T>,
    size: u32,
    mask: u32,
    /// Heap rings only: which cursor sides have been built on this memory. `None` for memory
    /// described by [`RingMemory::new`], whose contract covers it instead.
    sides: Option<Arc<Sides>>,
    _owner: Arc<dyn Send + Sync>,
}

// SAFETY: a `RingMemory` is a set of pointers into memory that `_owner` keeps alive, and
// `_owner` is `Send + Sync`, so that memory may be reached from any thread. The three indices
// are only ever accessed atomically. The entry slots are accessed only by the one producer and
// the one consumer of the ring (the contract of `RingMemory::new`; `Sides` for heap rings), in
// the order the atomic indices publish, which does not depend on the thread the owning cursor
// runs on. Entries move between threads through the slots, hence `T: Send`. (Not `Sync`: no
// cursor method may run on two threads at once, and none needs to.)
unsafe impl<T: Send> Send for RingMemory<T> {}

/// The two sides of a heap ring: set once a [`Producer`] or [`Consumer`] has been built on
/// one of its views, so safe code can never put two producers (or two consumers) on the same
/// slots.
#[derive(Default)]
struct Sides {
    producer: AtomicBool,
    consumer: AtomicBool,
}

/// Which side of a ring a cursor takes.
#[derive(Clone, Copy, Debug)]
enum Side {
    Producer,
    Consumer,
}

/// The memory behind [`RingMemory::heap`]: the three indices and the entries in one block.
struct HeapRing<T> {
    producer: AtomicU32,
    consumer: AtomicU32,
    flags: AtomicU32,
    descs: Box<[UnsafeCell<T>]>,
}

// SAFETY: the entry cells are reached only through `RingMemory` views of this block, and
// `Sides` lets at most one `Producer` and one `Consumer` be built on them; those two access a
// cell only under the ring protocol (the producer writes free slots, the consumer reads
// published ones, ordered by the Release/Acquire indices), so shared access never races.
unsafe impl<T: Send> Sync for HeapRing<T> {}

/// Checks one index pointer of [`RingMemory::new`].
fn index_ptr(p: *mut u32, what: &str) -> NonNull<AtomicU32> {
    let p = NonNull::new(p.cast::<AtomicU32>())
        .unwrap_or_else(|| panic!("ring {what} pointer is null"));
    assert!(p.as_ptr().is_aligned(), "ring {what} pointer {p:p} is misaligned");
    p
}

impl<T: Copy> RingMemory<T> {
    /// Describes a ring whose indices and entries live at the given addresses, typically
    /// inside a ring mmap (`XDP_MMAP_OFFSETS` gives the offsets).
    ///
    /// # Panics
    /// When a pointer is null or misaligned, or when `size` is not a power of two.
    ///
    /// # Safety
    /// For as long as `owner` lives:
    /// - `producer`, `consumer` and `flags` point to live `u32`s aligned for `AtomicU32`, which
    ///   every party (the kernel included) accesses only atomically;
    /// - `descs` points to `size` live, aligned entries of `T`, and every bit pattern the peer
    ///   may write there is a valid `T` (true of `u64` and [`XdpDesc`]);
    /// - `size` is a non-zero power of two;
    /// - user space has at most one [`Producer`] and at most one [`Consumer`] over this ring
    ///   at a time, through this or any other mapping of it (one ring has one user-space party;
    ///   the kernel is the other). A cursor may be built again (on another mapping of the same
    ///   ring, say) once the previous one is dropped with nothing reserved or peeked: it starts
    ///   from the indices in memory.
    pub unsafe fn new(
        owner: Arc<dyn Send + Sync>,
        producer: *mut u32,
        consumer: *mut u32,
        flags: *mut u32,
        descs: *mut T,
        size: u32,
    ) -> Self {
        assert!(size.is_power_of_two(), "ring size {size} is not a power of two");
        let descs = NonNull::new(descs).expect("ring entry pointer is null");
        assert!(descs.as_ptr().is_aligned(), "ring entry pointer {descs:p} is misaligned");
        RingMemory {
            producer: index_ptr(producer, "producer"),
            consumer: index_ptr(consumer, "consumer"),
            flags: index_ptr(flags, "flags"),
            descs,
            size,
            mask: size - 1,
            sides: None,
            _owner: owner,
        }
    }

    /// Builds a ring over heap memory, for tests, benches and fuzzing. Returns two views of
    /// the same memory: the first for the user-space side, the second for a peer playing the
    /// kernel. Build one [`Producer`] on one view and one [`Consumer`] on the other (either
    /// way round).
    ///
    /// Both indices start at 0, the flags at 0 and every entry at `T::default()`.
    ///
    /// # Panics
    /// When `size` is not a power of two; later, when a second [`Producer`] or a second
    /// [`Consumer`] is built on the views of one heap ring (two would race on the slots).
    pub fn heap(size: u32) -> (Self, Self)
    where
        T: Default + Send + 'static,
    {
        Self::heap_at(size, 0, 0)
    }

    /// Like [`RingMemory::heap`], with the producer and consumer indices starting at the given
    /// values (e.g. near `u32::MAX`, to cross the 2^32 boundary).
    ///
    /// # Panics
    /// As [`RingMemory::heap`], and unless `producer - consumer` (wrapping) is at most `size`.
    pub fn heap_at(size: u32, producer: u32, consumer: u32) -> (Self, Self)
    where
        T: Default + Send + 'static,
    {
        assert!(size.is_power_of_two(), "ring size {size} is not a power of two");
        assert!(
            producer.wrapping_sub(consumer) <= size,
            "producer {producer} and consumer {consumer} are more than {size} entries apart"
        );
        let block = Arc::new(HeapRing::<T> {
            producer: AtomicU32::new(producer),
            consumer: AtomicU32::new(consumer),
            flags: AtomicU32::new(0),
            descs: (0..size).map(|_| UnsafeCell::new(T::default())).collect(),
        });
        let sides = Arc::new(Sides::default());
        let view = || {
            // SAFETY: the indices are `AtomicU32`s and the `size` entries are `UnsafeCell<T>`
            // (same layout as `T`, writable through a shared pointer), all inside `block`,
            // which the view keeps alive. Entries start initialised. `sides` limits the views
            // to one producer and one consumer, as `new` requires.
            let mut mem = unsafe {
                RingMemory::new(
                    block.clone(),
                    block.producer.as_ptr(),
                    block.consumer.as_ptr(),
                    block.flags.as_ptr(),
                    UnsafeCell::raw_get(block.descs.as_ptr()),
                    size,
                )
            };
            mem.sides = Some(sides.clone());
            mem
        };
        (view(), view())
    }

    /// Number of entries.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Writes the flags word, playing the kernel's part (tests, benches: a peer asking for a
    /// wakeup with [`XDP_RING_NEED_WAKEUP`]). On a kernel-mapped ring the word is the kernel's.
    pub fn set_flags(&self, flags: u32) {
        self.flags().store(flags, Ordering::Relaxed);
    }

    /// Records that a cursor takes `side` of a heap ring; panics if one already has.
    fn claim(&self, side: Side) {
        if let Some(sides) = &self.sides {
            let taken = match side {
                Side::Producer => &sides.producer,
                Side::Consumer => &sides.consumer,
            };
            assert!(!taken.swap(true, Ordering::Relaxed), "this heap ring already has a {side:?}");
        }
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: valid, aligned and only accessed atomically while `_owner` lives (contract
        // of `new`), and `self` holds `_owner`.
        unsafe { self.producer.as_ref() }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { self.consumer.as_ref() }
    }

    fn flags(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { self.flags.as_ref() }
    }

    /// Pointer to the slot of index `idx` (any `u32`: it is masked into the ring).
    fn slot(&self, idx: u32) -> *mut T {
        // SAFETY: `idx & mask < size` and `descs` points to `size` entries (contract of `new`),
        // so the offset stays inside that array.
        unsafe { self.descs.as_ptr().add((idx & self.mask) as usize) }
    }

    /// The `n` slots from index `start` (`n <= size`), in ring order, as two runs of the
    /// array (pointer and length): up to its end, then from its start (empty unless they wrap
    /// around). The first ends at or before the array's end and the second starts at slot 0,
    /// so they do not overlap.
    fn runs(&self, start: u32, n: u32) -> [(*mut T, usize); 2] {
        debug_assert!(n <= self.size);
        let first = n.min(self.size - (start & self.mask));
        [
            (self.slot(start), first as usize),
            (self.slot(start.wrapping_add(first)), (n - first) as usize),
        ]
    }

    /// Whether the kernel set `XDP_RING_NEED_WAKEUP` (a Relaxed load on every call, so it is
    /// never hoisted out of a polling loop).
    fn needs_wakeup(&self) -> bool {
        self.flags().load(Ordering::Relaxed) & XDP_RING_NEED_WAKEUP != 0
    }
}

impl<T: Copy> fmt::Debug for RingMemory<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingMemory")
            .field("size", &self.size)
            .field("producer", &self.producer().load(Ordering::Relaxed))
            .field("consumer", &self.consumer().load(Ordering::Relaxed))
            .field("flags", &self.flags().load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// The producing side of a ring (user space on fill and tx; the kernel's role on rx and
/// completion when a test plays the kernel).
///
/// Produce in three steps: [`reserve`](Producer::reserve) up to `n` slots (fewer when fewer
/// are free), [`write`](Producer::write) slots `0..reserved`, then
/// [`submit`](Producer::submit) the first `k` of them, which publishes them to the consumer.
pub struct Producer<T> {
    mem: RingMemory<T>,
    /// Our producer index: the last value stored (we are its only writer).
    cached_prod: u32,
    /// The consumer index as last loaded, plus `size`: free space is `cached_cons - cached_prod`.
    cached_cons: u32,
    /// Slots reserved at `cached_prod` and not yet submitted; `write` stays below this.
    reserved: u32,
}

impl<T: Copy> Producer<T> {
    /// Takes the producer side of `mem`, starting from the indices currently in memory
    /// (`cached_cons = consumer + size`).
    ///
    /// # Panics
    /// When `mem` is a heap ring that already has a producer.
    pub fn new(mem: RingMemory<T>) -> Self {
        mem.claim(Side::Producer);
        let cached_prod = mem.producer().load(Ordering::Relaxed);
        let cached_cons = mem.consumer().load(Ordering::Acquire).wrapping_add(mem.size);
        Producer { mem, cached_prod, cached_cons, reserved: 0 }
    }

    /// Number of entries.
    pub fn size(&self) -> u32 {
        self.mem.size
    }

    /// Free slots. Reloads the consumer index (Acquire) only when the cached value shows fewer
    /// than `wanted`, so the answer may under-report but never over-reports.
    #[must_use]
    pub fn free(&mut self, wanted: u32) -> u32 {
        let free = self.cached_cons.wrapping_sub(self.cached_prod);
        if free >= wanted {
            return free;
        }
        self.cached_cons = self.mem.consumer().load(Ordering::Acquire).wrapping_add(self.mem.size);
        self.cached_cons.wrapping_sub(self.cached_prod)
    }

    /// Reserves `min(n, free)` slots starting at the producer index and returns that count: a
    /// partial batch when fewer than `n` are free, like libxdp's peek (not all-or-nothing).
    /// Nothing is published until [`submit`](Producer::submit); a new reservation replaces
    /// an unsubmitted one.
    #[must_use]
    pub fn reserve(&mut self, n: u32) -> u32 {
        self.reserved = n.min(self.free(n));
        self.reserved
    }

    /// Writes `value` into slot `i` of the current reservation.
    ///
    /// # Panics
    /// When `i` is not below the reserved count (in release builds too), so a write can never
    /// land on an entry the consumer has not released yet.
    pub fn write(&mut self, i: u32, value: T) {
        assert!(
            i < self.reserved,
            "ring write at {i} outside the reservation of {}",
            self.reserved
        );
        // SAFETY: the slot is inside the reservation, so free: the consumer released it (its
        // Release store was Acquire-loaded in `free`) and does not read it again before we
        // publish it; we are its only writer.
        unsafe { self.mem.slot(self.cached_prod.wrapping_add(i)).write(value) };
    }

    /// The slots of the current reservation, to write in place: two slices in ring order (the
    /// second is empty unless the reservation wraps around the ring's end). Publish what was
    /// written with [`submit`](Producer::submit).
    pub fn reserved_slices(&mut self) -> [&mut [T]; 2] {
        let [(a, a_len), (b, b_len)] = self.mem.runs(self.cached_prod, self.reserved);
        // SAFETY: as in `write`: the reserved slots are free (the consumer released them and
        // does not read them before we publish), we are their only writer, and `&mut self` is
        // borrowed while the slices live; the two runs do not overlap (`runs`).
        unsafe {
            [std::slice::from_raw_parts_mut(a, a_len), std::slice::from_raw_parts_mut(b, b_len)]
        }
    }

    /// Publishes the first `n` reserved slots: Release-stores `producer + n`, so the entries
    /// are visible before the index. Unwritten reserved slots beyond `n` are dropped.
    ///
    /// # Panics
    /// When `n` exceeds the reservation.
    pub fn submit(&mut self, n: u32) {
        assert!(
            n <= self.reserved,
            "ring submit of {n} exceeds the reservation of {}",
            self.reserved
        );
        self.reserved = 0;
        if n == 0 {
            return;
        }
        self.cached_prod = self.cached_prod.wrapping_add(n);
        self.mem.producer().store(self.cached_prod, Ordering::Release);
    }

    /// Entries submitted and not yet released by the consumer (reloads the consumer index
    /// unless the cache already shows the ring empty).
    #[must_use]
    pub fn pending(&mut self) -> u32 {
        let size = self.mem.size;
        size.wrapping_sub(self.free(size))
    }

    /// Whether the consumer asked for a wakeup (`XDP_RING_NEED_WAKEUP` in the flags word).
    pub fn needs_wakeup(&self) -> bool {
        self.mem.needs_wakeup()
    }

    /// Writes the flags word, for a test or bench producer that plays the kernel (see
    /// [`RingMemory::set_flags`]).
    pub fn set_flags(&self, flags: u32) {
        self.mem.set_flags(flags);
    }
}

impl<T: Copy> fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("size", &self.mem.size)
            .field("cached_prod", &self.cached_prod)
            .field("cached_cons", &self.cached_cons)
            .field("reserved", &self.reserved)
            .finish()
    }
}

/// The consuming side of a ring (user space on rx and completion; the kernel's role on fill
/// and tx when a test plays the kernel).
///
/// Consume in two steps: [`peek`](Consumer::peek) copies entries out, then
/// [`release`](Consumer::release) hands their slots back to the producer.
pub struct Consumer<T> {
    mem: RingMemory<T>,
    /// The producer index as last loaded (Acquire).
    cached_prod: u32,
    /// The next entry to peek.
    cached_cons: u32,
    /// Our consumer index: the last value stored. Entries in `released..cached_cons` were
    /// peeked and not yet released.
    released: u32,
}

impl<T: Copy> Consumer<T> {
    /// Takes the consumer side of `mem`, starting from the indices currently in memory.
    ///
    /// # Panics
    /// When `mem` is a heap ring that already has a consumer.
    pub fn new(mem: RingMemory<T>) -> Self {
        mem.claim(Side::Consumer);
        let cached_cons = mem.consumer().load(Ordering::Relaxed);
        let cached_prod = mem.producer().load(Ordering::Acquire);
        Consumer { mem, cached_prod, cached_cons, released: cached_cons }
    }

    /// Number of entries.
    pub fn size(&self) -> u32 {
        self.mem.size
    }

    /// Entries ready to peek. Reloads the producer index (Acquire) only when fewer than
    /// `wanted` are cached.
    #[must_use]
    pub fn available(&mut self, wanted: u32) -> u32 {
        let avail = self.cached_prod.wrapping_sub(self.cached_cons);
        if avail >= wanted {
            return avail;
        }
        self.cached_prod = self.mem.producer().load(Ordering::Acquire);
        self.cached_prod.wrapping_sub(self.cached_cons)
    }

    /// How many of the ready entries to peek so that the peek ends where a unit ends (a unit:
    /// entries up to one for which `ends` holds, e.g. a multi-buffer packet's descriptors):
    /// the most whole units within `max` entries; when the first unit alone is longer than
    /// `max`, that whole unit (so a small `max` cannot stall the ring); 0 while the first unit
    /// is not all on the ring yet, and for `max` 0 (asked for nothing). Reads the entries
    /// without consuming them.
    pub fn whole_units(&mut self, max: u32, ends: impl Fn(&T) -> bool) -> u32 {
        if max == 0 {
            return 0;
        }
        let avail = self.available(max);
        let start = self.cached_cons;
        let mem = &self.mem;
        // SAFETY: `i < avail`, so the entry lies between our consumer index and the producer
        // index we Acquire-loaded: published and not released (as in `peek`).
        let at = |i: u32| ends(&unsafe { mem.slot(start.wrapping_add(i)).read() });
        let within = avail.min(max);
        if let Some(last) = (0..within).rev().find(|&i| at(i)) {
            return last + 1;
        }
        (within..avail).find(|&i| at(i)).map_or(0, |i| i + 1)
    }

    /// Copies up to `max` entries into `out`, in ring order, and returns how many. Their slots
    /// stay the consumer's until [`release`](Consumer::release); the next peek continues after
    /// them.
    pub fn peek(&mut self, max: u32, out: &mut impl Extend<T>) -> u32 {
        let n = self.available(max).min(max);
        let start = self.cached_cons;
        let mem = &self.mem;
        out.extend((0..n).map(|i| {
            // SAFETY: the entry lies between our consumer index and the producer index we
            // Acquire-loaded: published (its write happened before that load) and not
            // released, so the producer does not touch it.
            unsafe { mem.slot(start.wrapping_add(i)).read() }
        }));
        self.cached_cons = start.wrapping_add(n);
        n
    }

    /// Peeks up to `max` entries in place, as [`peek`](Consumer::peek) does but without copying
    /// them: returns them in ring order as two slices (the second is empty unless the entries
    /// wrap around the ring's end). Their slots stay the consumer's until
    /// [`release`](Consumer::release), which the borrow holds off while the slices live.
    pub fn peek_slices(&mut self, max: u32) -> [&[T]; 2] {
        let n = self.available(max).min(max);
        let start = self.cached_cons;
        self.cached_cons = start.wrapping_add(n);
        let [(a, a_len), (b, b_len)] = self.mem.runs(start, n);
        // SAFETY: the `n` entries from our consumer index lie between it and the producer
        // index we Acquire-loaded: published (written before that load) and not released, so
        // the producer does not write them while `&mut self` is borrowed (`release` needs it).
        unsafe { [std::slice::from_raw_parts(a, a_len), std::slice::from_raw_parts(b, b_len)] }
    }

    /// Forgets the entries peeked and not released: the next peek returns them again.
    pub fn rewind(&mut self) {
        self.cached_cons = self.released;
    }

    /// Hands the slots of the first `n` peeked, unreleased entries back to the producer:
    /// Release-stores `consumer + n`, after the entries were copied out.
    ///
    /// # Panics
    /// When fewer than `n` entries were peeked and not yet released (releasing more would let
    /// the producer overwrite entries before they are peeked).
    pub fn release(&mut self, n: u32) {
        let peeked = self.cached_cons.wrapping_sub(self.released);
        assert!(n <= peeked, "ring release of {n} exceeds the {peeked} peeked entries");
        if n == 0 {
            return;
        }
        self.released = self.released.wrapping_add(n);
        self.mem.consumer().store(self.released, Ordering::Release);
    }

    /// Whether the producer asked for a wakeup (`XDP_RING_NEED_WAKEUP` in the flags word).
    pub fn needs_wakeup(&self) -> bool {
        self.mem.needs_wakeup()
    }

    /// Writes the flags word, for a test or bench consumer that plays the kernel (see
    /// [`RingMemory::set_flags`]).
    pub fn set_flags(&self, flags: u32) {
        self.mem.set_flags(flags);
    }
}

impl<T: Copy> fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("size", &self.mem.size)
            .field("cached_prod", &self.cached_prod)
            .field("cached_cons", &self.cached_cons)
            .field("released", &self.released)
            .finish()
    }
}

/// Forwarding methods of the typed rings that user space produces.
macro_rules! producer_ring {
    ($name:ident, $t:ty) => {
        impl $name {
            /// Takes the producer side of `mem` (see [`Producer::new`]).
            pub fn new(mem: RingMemory<$t>) -> Self {
                $name(Producer::new(mem))
            }

            /// Number of entries.
            pub fn size(&self) -> u32 {
                self.0.size()
            }

            /// Free slots, reloading the kernel's consumer index only when fewer than `wanted`
            /// are cached (see [`Producer::free`]).
            #[inline]
            #[must_use]
            pub fn free(&mut self, wanted: u32) -> u32 {
                self.0.free(wanted)
            }

            /// Reserves `min(n, free)` slots and returns the count (see [`Producer::reserve`]).
            #[inline]
            #[must_use]
            pub fn reserve(&mut self, n: u32) -> u32 {
                self.0.reserve(n)
            }

            /// Writes slot `i` of the reservation; panics outside it (see [`Producer::write`]).
            #[inline]
            pub fn write(&mut self, i: u32, value: $t) {
                self.0.write(i, value)
            }

            /// The reserved slots, to write in place (see [`Producer::reserved_slices`]).
            #[inline]
            pub fn reserved_slices(&mut self) -> [&mut [$t]; 2] {
                self.0.reserved_slices()
            }

            /// Publishes the first `n` reserved slots to the kernel (see [`Producer::submit`]).
            #[inline]
            pub fn submit(&mut self, n: u32) {
                self.0.submit(n)
            }

            /// Whether the kernel needs a wakeup syscall to process this ring.
            #[inline]
            pub fn needs_wakeup(&self) -> bool {
                self.0.needs_wakeup()
            }
        }
    };
}

/// Forwarding methods of the typed rings that user space consumes.
macro_rules! consumer_ring {
    ($name:ident, $t:ty) => {
        impl $name {
            /// Takes the consumer side of `mem` (see [`Consumer::new`]).
            pub fn new(mem: RingMemory<$t>) -> Self {
                $name(Consumer::new(mem))
            }

            /// Number of entries.
            pub fn size(&self) -> u32 {
                self.0.size()
            }

            /// Entries ready, reloading the kernel's producer index only when fewer than
            /// `wanted` are cached (see [`Consumer::available`]).
            #[inline]
            #[must_use]
            pub fn available(&mut self, wanted: u32) -> u32 {
                self.0.available(wanted)
            }

            /// Copies up to `max` entries into `out`; returns how many (see [`Consumer::peek`]).
            #[inline]
            pub fn peek(&mut self, max: u32, out: &mut impl Extend<$t>) -> u32 {
                self.0.peek(max, out)
            }

            /// Up to `max` entries in place, as two slices (see [`Consumer::peek_slices`]).
            #[inline]
            pub fn peek_slices(&mut self, max: u32) -> [&[$t]; 2] {
                self.0.peek_slices(max)
            }

            /// Gives the slots of `n` peeked entries back to the kernel (see
            /// [`Consumer::release`]).
            #[inline]
            pub fn release(&mut self, n: u32) {
                self.0.release(n)
            }

            /// Whether the kernel set `XDP_RING_NEED_WAKEUP` on this ring.
            #[inline]
            pub fn needs_wakeup(&self) -> bool {
                self.0.needs_wakeup()
            }
        }
    };
}

/// The fill ring: addresses of free frames handed to the kernel for receiving (user space
/// produces, the kernel consumes).
#[derive(Debug)]
pub struct FillRing(Producer<u64>);
producer_ring!(FillRing, u64);

/// The tx ring: descriptors of frames to transmit (user space produces, the kernel consumes).
#[derive(Debug)]
pub struct TxRing(Producer<XdpDesc>);
producer_ring!(TxRing, XdpDesc);

impl TxRing {
    /// Descriptors submitted that the kernel has not taken yet (see [`Producer::pending`]).
    #[inline]
    #[must_use]
    pub fn pending(&mut self) -> u32 {
        self.0.pending()
    }
}

/// The completion ring: addresses of transmitted frames coming back from the kernel (the
/// kernel produces, user space consumes).
#[derive(Debug)]
pub struct CompletionRing(Consumer<u64>);
consumer_ring!(CompletionRing, u64);

/// The rx ring: descriptors of received frames (the kernel produces, user space consumes).
#[derive(Debug)]
pub struct RxRing(Consumer<XdpDesc>);
consumer_ring!(RxRing, XdpDesc);

impl RxRing {
    /// Forgets the descriptors peeked and not released (see [`Consumer::rewind`]).
    #[inline]
    pub fn rewind(&mut self) {
        self.0.rewind()
    }

    /// How many descriptors make whole packets (multi-buffer: a packet's descriptors carry
    /// `XDP_PKT_CONTD` but its last): the most whole packets within `max` descriptors, the
    /// first packet whole when it alone is longer, 0 while its end is not on the ring yet
    /// (see [`Consumer::whole_units`]). Peek that many.
    #[inline]
    #[must_use]
    pub fn whole_packets(&mut self, max: u32) -> u32 {
        self.0.whole_units(max, |d| d.options & XDP_PKT_CONTD == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// A producer and a consumer over one heap ring whose indices both start at `start`.
    fn pair<T: Copy + Default + Send + 'static>(
        size: u32,
        start: u32,
    ) -> (Producer<T>, Consumer<T>) {
        let (a, b) = RingMemory::<T>::heap_at(size, start, start);
        (Producer::new(a), Consumer::new(b))
    }

    /// Reserves room for `values`, writes what fits, submits it; returns how many.
    fn produce<T: Copy>(p: &mut Producer<T>, values: &[T]) -> u32 {
        let n = p.reserve(values.len() as u32);
        for i in 0..n {
            p.write(i, values[i as usize]);
        }
        p.submit(n);
        n
    }

    /// Peeks up to `max` entries and releases them all.
    fn consume<T: Copy>(c: &mut Consumer<T>, max: u32) -> Vec<T> {
        let mut out = Vec::new();
        let n = c.peek(max, &mut out);
        assert_eq!(n as usize, out.len());
        c.release(n);
        out
    }

    fn desc(i: u64) -> XdpDesc {
        XdpDesc { addr: i, len: (i as u32) ^ 0x5a5a_5a5a, options: !(i as u32) }
    }

    fn values(range: std::ops::Range<u64>) -> Vec<u64> {
        range.collect()
    }

    #[test]
    fn whole_packets_never_cut_a_chain() {
        // Packets of 1, 3 and 2 descriptors, the last one not all on the ring yet.
        let contd = |addr: u64, more: bool| XdpDesc {
            addr,
            len: 1,
            options: if more { XDP_PKT_CONTD } else { 0 },
        };
        let (a, b) = RingMemory::<XdpDesc>::heap(16);
        let mut kernel = Producer::new(a);
        let mut rx = RxRing::new(b);
        let ring =
            [contd(0, false), contd(1, true), contd(2, true), contd(3, false), contd(4, true)];
        assert_eq!(produce(&mut kernel, &ring), 5);
        // Within max: the last whole packet ends the peek.
        for (max, whole) in [(1, 1), (2, 1), (3, 1), (4, 4), (5, 4), (64, 4)] {
            assert_eq!(rx.whole_packets(max), whole, "max {max}");
        }
        let mut out = Vec::new();
        assert_eq!(rx.peek(1, &mut out), 1);
        rx.release(1);
        // The first packet is longer than max: it comes whole rather than never; max 0 asks
        // for nothing (it took the first packet).
        assert_eq!(rx.whole_packets(0), 0);
        assert_eq!(rx.whole_packets(1), 3);
        assert_eq!(rx.peek(3, &mut out), 3);
        rx.release(3);
        // The open chain waits for its end.
        assert_eq!(rx.whole_packets(64), 0);
        assert_eq!(produce(&mut kernel, &[contd(5, false)]), 1);
        assert_eq!(rx.whole_packets(64), 2);
        assert_eq!(rx.peek(2, &mut out), 2);
        assert_eq!(out.iter().map(|d| d.addr).collect::<Vec<_>>(), [0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn empty_ring_peeks_nothing() {
        let (mut p, mut c) = pair::<u64>(8, 0);
        assert_eq!(c.available(1), 0);
        assert_eq!(consume(&mut c, 8), Vec::<u64>::new());
        assert_eq!(p.free(8), 8);
        assert_eq!(p.pending(), 0);
        let (_, b) = RingMemory::<XdpDesc>::heap(4);
        let mut rx = RxRing::new(b);
        let mut out = Vec::new();
        assert_eq!(rx.peek(4, &mut out), 0);
        assert!(out.is_empty());
    }

    #[test]
    fn full_ring_reserves_nothing() {
        let (mut p, mut c) = pair::<u64>(8, 0);
        assert_eq!(produce(&mut p, &values(0..8)), 8);
        assert_eq!(p.free(1), 0);
        assert_eq!(p.reserve(1), 0);
        assert_eq!(p.reserve(100), 0);
        assert_eq!(p.pending(), 8);
        assert_eq!(c.available(100), 8);
        assert_eq!(consume(&mut c, 100), values(0..8));
        assert_eq!(p.free(8), 8);
        assert_eq!(p.pending(), 0);
    }

    #[test]
    fn batches_larger_than_free_space_are_partial() {
        let (mut p, mut c) = pair::<u64>(8, 0);
        assert_eq!(produce(&mut p, &values(0..5)), 5);
        assert_eq!(p.reserve(7), 3, "exactly the free count is reserved");
        p.submit(0);
        assert_eq!(produce(&mut p, &values(5..12)), 3);
        assert_eq!(consume(&mut c, 3), vec![0, 1, 2]);
        assert_eq!(p.reserve(u32::MAX), 3);
        p.submit(0);
        assert_eq!(consume(&mut c, 100), values(3..8));
    }

    #[test]
    fn unsubmitted_slots_are_not_published() {
        let (mut p, mut c) = pair::<u64>(8, 0);
        assert_eq!(p.reserve(4), 4);
        for i in 0..4 {
            p.write(i, 100 + u64::from(i));
        }
        p.submit(2);
        assert_eq!(p.pending(), 2);
        assert_eq!(consume(&mut c, 8), vec![100, 101]);
        // The next reservation starts right after what was published.
        assert_eq!(produce(&mut p, &[7]), 1);
        assert_eq!(consume(&mut c, 8), vec![7]);
    }

    #[test]
    fn partial_release_keeps_slots_until_released() {
        let (mut p, mut c) = pair::<u64>(4, 0);
        assert_eq!(produce(&mut p, &values(0..4)), 4);
        let mut out = Vec::new();
        assert_eq!(c.peek(3, &mut out), 3);
        assert_eq!(p.free(1), 0, "peeked entries still hold their slots");
        c.release(1);
        assert_eq!(p.free(1), 1);
        assert_eq!(c.peek(3, &mut out), 1, "peek continues after the peeked entries");
        assert_eq!(out, values(0..4));
        c.release(3);
        assert_eq!(p.free(4), 4);
    }

    #[test]
    #[should_panic(expected = "outside the reservation")]
    fn write_beyond_the_reservation_panics() {
        let (mut p, _c) = pair::<u64>(4, 0);
        let n = p.reserve(2);
        p.write(n, 1);
    }

    #[test]
    #[should_panic(expected = "outside the reservation")]
    fn write_after_submit_panics() {
        let (mut p, _c) = pair::<u64>(4, 0);
        assert_eq!(p.reserve(2), 2);
        p.write(0, 1);
        p.submit(1);
        p.write(0, 2);
    }

    #[test]
    #[should_panic(expected = "exceeds the reservation")]
    fn submit_beyond_the_reservation_panics() {
        let (mut p, _c) = pair::<u64>(4, 0);
        let n = p.reserve(2);
        p.submit(n + 1);
    }

    #[test]
    #[should_panic(expected = "exceeds the 2 peeked entries")]
    fn release_beyond_the_peeked_entries_panics() {
        let (mut p, mut c) = pair::<u64>(4, 0);
        produce(&mut p, &[1, 2, 3]);
        let mut out = Vec::new();
        assert_eq!(c.peek(2, &mut out), 2);
        c.release(3);
    }

    #[test]
    #[should_panic(expected = "already has a Producer")]
    fn a_heap_ring_has_one_producer() {
        let (a, b) = RingMemory::<u64>::heap(4);
        let _p = Producer::new(a);
        let _q = Producer::new(b);
    }

    #[test]
    #[should_panic(expected = "already has a Consumer")]
    fn a_heap_ring_has_one_consumer() {
        let (a, b) = RingMemory::<XdpDesc>::heap(4);
        let _rx = RxRing::new(a);
        let _c = Consumer::new(b);
    }

    #[test]
    #[should_panic(expected = "not a power of two")]
    fn size_must_be_a_power_of_two() {
        let _ = RingMemory::<u64>::heap(6);
    }

    #[test]
    #[should_panic(expected = "more than 4 entries apart")]
    fn heap_indices_must_be_consistent() {
        let _ = RingMemory::<u64>::heap_at(4, 10, 5);
    }

    #[test]
    fn wraps_across_the_u32_boundary() {
        let start = u32::MAX - 3;
        let (a, b) = RingMemory::<XdpDesc>::heap_at(8, start, start);
        let mut tx = TxRing::new(a);
        let mut peer = Consumer::new(b);
        let (mut next, mut expect) = (0u64, 0u64);
        for _ in 0..12 {
            let n = tx.reserve(6);
            for i in 0..n {
                tx.write(i, desc(next + u64::from(i)));
            }
            tx.submit(n);
            next += u64::from(n);
            for d in consume(&mut peer, 5) {
                assert_eq!(d, desc(expect), "entries intact and in order");
                expect += 1;
            }
            assert_eq!(u64::from(tx.pending()), next - expect);
        }
        for d in consume(&mut peer, 8) {
            assert_eq!(d, desc(expect));
            expect += 1;
        }
        assert_eq!(expect, next);
        assert!(next > 16);
        // The shared indices really crossed zero.
        let prod = peer.mem.producer().load(Ordering::Relaxed);
        let cons = peer.mem.consumer().load(Ordering::Relaxed);
        assert_eq!(prod, start.wrapping_add(next as u32));
        assert_eq!(cons, prod);
        assert!(prod < 100);
        assert_eq!(tx.free(8), 8);
    }

    #[test]
    fn peek_slices_cut_where_the_ring_wraps_around() {
        // Indices start 3 slots before the end of an 8-slot ring, near u32 overflow too.
        let (mut p, mut c) = pair::<u64>(8, u32::MAX - 2);
        assert_eq!(produce(&mut p, &[10, 11, 12, 13, 14, 15]), 6);
        let [a, b] = c.peek_slices(5);
        assert_eq!((a, b), (&[10, 11, 12][..], &[13, 14][..]));
        // The next peek continues after them; nothing is released yet.
        let [a, b] = c.peek_slices(u32::MAX);
        assert_eq!((a, b), (&[15][..], &[][..]));
        // Peeked slots stay the consumer's until released: only the 2 others are free.
        assert_eq!(produce(&mut p, &[30, 31, 32]), 2);
        c.release(6);
        assert_eq!(produce(&mut p, &[32; 8]), 6);
        assert_eq!(consume(&mut c, 3), vec![30, 31, 32]);
        assert_eq!(consume(&mut c, u32::MAX), vec![32; 5]);
        // An empty ring: two empty slices.
        assert_eq!(c.peek_slices(4), [&[][..], &[][..]]);
    }

    #[test]
    fn producer_cache_starts_from_a_nonzero_consumer() {
        // Empty ring, both indices far from 0: all slots free, not `size - producer`.
        let (a, b) = RingMemory::<u64>::heap_at(16, 1000, 1000);
        let mut fill = FillRing::new(a);
        assert_eq!(fill.0.cached_cons, 1016, "cached_cons = consumer + size");
        assert_eq!(fill.reserve(20), 16);
        fill.submit(0);
        let mut peer = Consumer::new(b);
        assert_eq!(peer.available(16), 0);

        // Two entries in flight: two slots taken.
        let (a, b) = RingMemory::<u64>::heap_at(4, 10, 8);
        let mut p = Producer::new(a);
        assert_eq!(p.cached_cons, 12);
        assert_eq!(p.free(4), 2);
        assert_eq!(p.pending(), 2);
        let mut c = Consumer::new(b);
        assert_eq!(c.available(4), 2);
        let mut out = Vec::new();
        assert_eq!(c.peek(4, &mut out), 2);
        c.release(2);
        assert_eq!(p.free(4), 4);

        // Consumer and producer across the boundary at construction.
        let (a, _b) = RingMemory::<u64>::heap_at(8, 2, u32::MAX - 1);
        let mut p = Producer::new(a);
        assert_eq!(p.free(8), 4);
        assert_eq!(p.pending(), 4);
    }

    #[test]
    fn needs_wakeup_follows_the_flag_word() {
        let (a, b) = RingMemory::<XdpDesc>::heap(4);
        let tx = TxRing::new(a);
        let kernel = Consumer::new(b);
        assert!(!tx.needs_wakeup());
        kernel.set_flags(XDP_RING_NEED_WAKEUP);
        assert!(tx.needs_wakeup());
        kernel.set_flags(0);
        assert!(!tx.needs_wakeup());
        kernel.set_flags(!XDP_RING_NEED_WAKEUP);
        assert!(!tx.needs_wakeup(), "only the NEED_WAKEUP bit counts");

        let (a, b) = RingMemory::<u64>::heap(4);
        let fill = FillRing::new(a);
        b.set_flags(XDP_RING_NEED_WAKEUP);
        assert!(fill.needs_wakeup());

        let (a, b) = RingMemory::<u64>::heap(4);
        let comp = CompletionRing::new(a);
        let kernel = Producer::new(b);
        assert!(!comp.needs_wakeup());
        kernel.set_flags(XDP_RING_NEED_WAKEUP | 2);
        assert!(comp.needs_wakeup());
    }

    #[test]
    fn typed_rings_round_trip() {
        // Fill: user produces addresses, the kernel consumes them.
        let (a, b) = RingMemory::<u64>::heap(4);
        let mut fill = FillRing::new(a);
        let mut kernel = Consumer::new(b);
        assert_eq!(fill.size(), 4);
        assert_eq!(fill.free(4), 4);
        assert_eq!(fill.reserve(6), 4);
        for i in 0..4 {
            fill.write(i, 4096 * u64::from(i));
        }
        fill.submit(4);
        assert_eq!(consume(&mut kernel, 8), vec![0, 4096, 8192, 12288]);

        // Rx: the kernel produces descriptors, user consumes them.
        let (a, b) = RingMemory::<XdpDesc>::heap(4);
        let mut rx = RxRing::new(a);
        let mut kernel = Producer::new(b);
        assert_eq!(produce(&mut kernel, &[desc(1), desc(2), desc(3)]), 3);
        assert_eq!(rx.available(1), 3);
        let mut out = Vec::new();
        assert_eq!(rx.peek(2, &mut out), 2);
        rx.release(2);
        assert_eq!(rx.peek(8, &mut out), 1);
        rx.release(1);
        assert_eq!(out, vec![desc(1), desc(2), desc(3)]);
        assert_eq!(kernel.pending(), 0);

        // Completion: the kernel produces addresses, user consumes them.
        let (a, b) = RingMemory::<u64>::heap(2);
        let mut comp = CompletionRing::new(a);
        let mut kernel = Producer::new(b);
        assert_eq!(produce(&mut kernel, &[7, 8, 9]), 2);
        let mut out = VecDeque::new();
        assert_eq!(comp.peek(8, &mut out), 2);
        comp.release(2);
        assert_eq!(out, [7, 8]);
    }

    #[test]
    fn works_over_externally_described_memory() {
        /// A kernel-like mapping: indices on separate cache lines, entries after them.
        #[repr(C, align(64))]
        struct Map(UnsafeCell<[u64; 40]>);
        // SAFETY: the block is accessed only through the one ring built below and, once that
        // producer is idle, by this test's thread.
        unsafe impl Sync for Map {}

        let map = Arc::new(Map(UnsafeCell::new([0; 40])));
        let base = map.0.get().cast::<u8>();
        // SAFETY: offsets 0, 64 and 128 hold aligned u32s and 192.. holds 8 aligned u64
        // entries, all inside the 320-byte block `map` keeps alive; only one producer is built.
        let mem = unsafe {
            RingMemory::<u64>::new(
                map.clone(),
                base.cast(),
                base.add(64).cast(),
                base.add(128).cast(),
                base.add(192).cast(),
                8,
            )
        };
        let mut p = Producer::new(mem);
        assert_eq!(produce(&mut p, &values(10..13)), 3);
        // SAFETY: in bounds and aligned; the producer is idle and on this thread, so nothing
        // races with these reads.
        let (prod, entries) = unsafe {
            let words = &*map.0.get();
            (base.cast::<u32>().read(), words[24..27].to_vec())
        };
        assert_eq!(prod, 3, "producer index at offset 0");
        assert_eq!(entries, [10, 11, 12], "entries at offset 192");
        assert_eq!(p.free(8), 5);
    }

    #[test]
    #[should_panic(expected = "misaligned")]
    fn misaligned_pointers_are_refused() {
        let mut words = [0u64; 8];
        let base = words.as_mut_ptr().cast::<u8>();
        // SAFETY: never dereferenced: `new` refuses the misaligned producer pointer first.
        let _ = unsafe {
            RingMemory::<u64>::new(
                Arc::new(()),
                base.add(1).cast(),
                base.cast(),
                base.cast(),
                base.cast(),
                2,
            )
        };
    }

    #[test]
    fn rings_are_send() {
        fn assert_send<S: Send>() {}
        assert_send::<FillRing>();
        assert_send::<TxRing>();
        assert_send::<CompletionRing>();
        assert_send::<RxRing>();
    }

    /// xorshift64*: a small deterministic generator for the property test.
    struct Rng(u64);

    impl Rng {
        fn new(seed: u64) -> Self {
            Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
        }

        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        /// Uniform-ish in `0..=n`.
        fn upto(&mut self, n: u32) -> u32 {
            (self.next() % (u64::from(n) + 1)) as u32
        }
    }

    /// Runs a random sequence of produce/consume operations on `p`/`c` (one heap ring) and
    /// checks them against a FIFO model.
    fn check_against_model<T: Copy + PartialEq + fmt::Debug>(
        seed: u64,
        rng: &mut Rng,
        p: &mut Producer<T>,
        c: &mut Consumer<T>,
        make: fn(u64) -> T,
        steps: u32,
    ) {
        let size = p.size();
        // Submitted and not yet peeked; count peeked and not yet released.
        let mut ready: VecDeque<u64> = VecDeque::new();
        let mut peeked = 0u32;
        let mut next = 0u64;
        let mut out = Vec::new();
        for step in 0..steps {
            let ctx = format!("seed {seed} step {step} size {size}");
            let in_flight = ready.len() as u32 + peeked;
            let true_free = size - in_flight;
            match rng.upto(5) {
                0 | 1 => {
                    // Produce: reserve n, write k <= reserved, submit k.
                    let n = rng.upto(size * 2 + 1);
                    let got = p.reserve(n);
                    assert_eq!(got, n.min(true_free), "{ctx}: reservation is min(n, free)");
                    let k = if rng.upto(3) == 0 { rng.upto(got) } else { got };
                    for i in 0..k {
                        p.write(i, make(next + u64::from(i)));
                    }
                    p.submit(k);
                    ready.extend(next..next + u64::from(k));
                    next += u64::from(k);
                }
                2 | 3 => {
                    // Peek up to m, then release some or all of what is held.
                    let m = rng.upto(size + 1);
                    out.clear();
                    let n = c.peek(m, &mut out);
                    let expect: Vec<u64> = ready.drain(..(m as usize).min(ready.len())).collect();
                    assert_eq!(n as usize, expect.len(), "{ctx}: peek count");
                    let expect: Vec<T> = expect.iter().map(|&v| make(v)).collect();
                    assert_eq!(out, expect, "{ctx}: FIFO order and values");
                    peeked += n;
                    let r = if rng.upto(2) == 0 { rng.upto(peeked) } else { peeked };
                    c.release(r);
                    peeked -= r;
                }
                4 => {
                    // Cached views: never over-report, always satisfy what exists.
                    let w = rng.upto(size + 1);
                    let free = p.free(w);
                    assert!(free <= true_free, "{ctx}: free {free} over-reports {true_free}");
                    assert!(free >= w.min(true_free), "{ctx}: free {free} below wanted {w}");
                    let avail = c.available(w);
                    assert!(avail as usize <= ready.len(), "{ctx}: available over-reports");
                    assert!(avail >= w.min(ready.len() as u32), "{ctx}: available below wanted");
                }
                _ => {
                    let flags = rng.next() as u32;
                    c.set_flags(flags);
                    assert_eq!(p.needs_wakeup(), flags & XDP_RING_NEED_WAKEUP != 0, "{ctx}: flags");
                }
            }
            let in_flight = ready.len() as u32 + peeked;
            assert!(in_flight <= size, "{ctx}: more than size in flight");
            assert_eq!(p.free(size), size - in_flight, "{ctx}: exact free space");
            assert_eq!(p.pending(), in_flight, "{ctx}: pending");
            let prod = p.mem.producer().load(Ordering::Relaxed);
            let cons = p.mem.consumer().load(Ordering::Relaxed);
            assert_eq!(prod.wrapping_sub(cons), in_flight, "{ctx}: shared indices");
        }
    }

    fn start_index(rng: &mut Rng, seed: u64, size: u32) -> u32 {
        match seed % 3 {
            0 => u32::MAX - rng.upto(2 * size),
            1 => rng.next() as u32,
            _ => 0,
        }
    }

    #[test]
    fn random_sequences_match_a_fifo_model() {
        let (seeds, steps) = if cfg!(miri) { (6, 60) } else { (400, 300) };
        for seed in 0..seeds {
            let mut rng = Rng::new(seed);
            let size = 1u32 << rng.upto(6); // 1..=64
            let start = start_index(&mut rng, seed, size);
            // User-space producer (fill/tx) paired with a peer consumer playing the kernel.
            let (user, peer) = RingMemory::<u64>::heap_at(size, start, start);
            let (mut p, mut c) = (Producer::new(user), Consumer::new(peer));
            check_against_model(seed, &mut rng, &mut p, &mut c, |v| v, steps);
        }
    }

    #[test]
    fn random_sequences_match_a_fifo_model_mirrored() {
        let (seeds, steps) = if cfg!(miri) { (6, 60) } else { (400, 300) };
        for seed in 0..seeds {
            let mut rng = Rng::new(seed ^ 0xA5A5);
            let size = 1u32 << rng.upto(6);
            let start = start_index(&mut rng, seed, size);
            // A peer producer playing the kernel, paired with a user-space consumer (rx/comp).
            let (user, peer) = RingMemory::<XdpDesc>::heap_at(size, start, start);
            let (mut p, mut c) = (Producer::new(peer), Consumer::new(user));
            check_against_model(seed, &mut rng, &mut p, &mut c, desc, steps);
        }
    }

    #[test]
    fn two_threads_pass_entries_in_order() {
        let n: u64 = if cfg!(miri) { 3_000 } else { 1_000_000 };
        let (a, b) = RingMemory::<XdpDesc>::heap_at(64, u32::MAX - 1000, u32::MAX - 1000);
        let mut tx = TxRing::new(a);
        let mut kernel = Consumer::new(b);
        // A ring that moves nothing for 10 s fails the test instead of hanging it. A busy
        // machine only slows it down (two threads taking turns through yield_now took 26 s of a
        // fixed 20 s deadline with both cores loaded), so the clock restarts on every entry moved.
        let stalled = |idle_since: &mut Option<std::time::Instant>| {
            let since = *idle_since.get_or_insert_with(std::time::Instant::now);
            assert!(since.elapsed() < std::time::Duration::from_secs(10), "ring stalled");
        };
        // Set (Release) once the producer has submitted everything; read with Acquire, it
        // makes those submits visible here. `JoinHandle::is_finished` would not: it does not
        // synchronise, and under Miri's weak-memory emulation a finished producer's last index
        // could still read stale, failing the check below on a correct ring.
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let producer_done = done.clone();
        let producer = std::thread::spawn(move || {
            let mut rng = Rng::new(1);
            let mut next = 0;
            let mut idle_since = None;
            while next < n {
                let want = (rng.upto(40) as u64 + 1).min(n - next) as u32;
                let got = tx.reserve(want);
                for i in 0..got {
                    tx.write(i, desc(next + u64::from(i)));
                }
                tx.submit(got);
                next += u64::from(got);
                if got == 0 {
                    stalled(&mut idle_since);
                    std::thread::yield_now();
                } else {
                    idle_since = None;
                }
            }
            producer_done.store(true, std::sync::atomic::Ordering::Release);
        });
        let mut rng = Rng::new(2);
        let mut expect = 0;
        let mut out = Vec::with_capacity(64);
        let mut idle_since = None;
        while expect < n {
            out.clear();
            let got = kernel.peek(rng.upto(48) + 1, &mut out);
            for &d in &out {
                assert_eq!(d, desc(expect), "entry {expect} stale or torn");
                expect += 1;
            }
            kernel.release(got);
            if got == 0 {
                stalled(&mut idle_since);
                let finished = done.load(std::sync::atomic::Ordering::Acquire);
                assert!(!finished || kernel.available(1) > 0, "producer stopped");
                std::thread::yield_now();
            } else {
                idle_since = None;
            }
        }
        producer.join().unwrap();
        assert_eq!(kernel.available(1), 0);
    }
}
