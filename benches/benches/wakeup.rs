//! Criterion benchmarks of one receive wakeup, without a kernel: the core's own receive loop
//! against the Rust work the Python bindings add around the same core calls.
//! `cargo bench -p afxdp-benches --bench wakeup`; `python3 benches/wakeup_compare.py` prints
//! the figures per frame and their ratio.
//!
//! Both run [`RxPath`], the body of `Socket::recv` over heap rings (the same function, minus
//! the fork check and the wakeup syscalls), on the geometry of `afxdp.Socket(ifname)`'s
//! defaults: a UMEM of 4096 frames of 4096 bytes, a 2048-entry rx ring, a 4096-entry fill ring
//! kept at 2048 frames. A wakeup is a batch of 64 frames; each bench declares 64 elements of
//! throughput, so criterion's `thrpt` is frames per second.
//!
//! The bench plays the kernel outside the timed region: before every 16 wakeups it moves
//! 16 × 64 addresses from the fill ring to the rx ring as 60-byte packets, so the figures are
//! the receiver's work only, and both benches do exactly the same ring work.
//!
//! What the Python path costs beyond them (a `PyFrameBatch` object's allocation for `recv`,
//! reference counts, argument parsing, the call itself) is CPython's and is not here: measure
//! it with `benches/py_floor.py`.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use afxdp::socket::RxPath;
use afxdp::umem::Batch;
use afxdp_benches::{BATCH, Kernel, receiver};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// Wakeups the fake kernel delivers for at once, untimed (16 × 64 frames: half the rx ring).
const AHEAD: u64 = 16;

/// Times `iters` wakeups of `step`, the kernel delivering `AHEAD` batches before each run of
/// `AHEAD` wakeups, outside the timed part.
fn timed_wakeups(kernel: &mut Kernel, iters: u64, mut step: impl FnMut()) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(AHEAD);
        for _ in 0..n {
            kernel.deliver(BATCH);
        }
        let start = Instant::now();
        for _ in 0..n {
            step();
        }
        total += start.elapsed();
        left -= n;
    }
    total
}

// The bindings' own state around the core, field for field (rust/python/src). Not the
// bindings' code, which needs CPython: keep these in step with it.

/// `PySocket` (socket.rs): the socket behind a lock, taken by every call.
struct PySocketState {
    sock: Mutex<Option<RxPath>>,
    queue: u32,
}

/// `PyFrameBatch` (batch.rs): the batch behind a lock, with its export count, why it ended,
/// its queue and its generation (`batches()` refills one object).
struct PyFrameBatchState {
    batch: Mutex<Option<Batch>>,
    exports: AtomicUsize,
    ended: Mutex<&'static str>,
    queue: AtomicU64,
    generation: AtomicU64,
}

/// `PyBatches` (batches.rs): `Socket.batches()`'s iterator.
struct PyBatchesState {
    socket: PySocketState,
    max: u32,
    timeout: Option<Duration>,
    /// The bindings keep a second reference to the Python object here (an `Arc` here: the
    /// object and its reference counts are CPython's work).
    previous: Mutex<Option<Arc<PyFrameBatchState>>>,
    done: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl PySocketState {
    /// `PySocket::with`.
    fn with<R>(&self, f: impl FnOnce(&mut RxPath) -> R) -> Result<R, &'static str> {
        let mut g = lock(&self.sock);
        let s = g.as_mut().ok_or("closed")?;
        Ok(f(s))
    }

    /// `PySocket::recv_batch` with a batch ready (no wait).
    fn recv_batch(&self, max: u32, timeout: Option<Duration>) -> Result<Batch, &'static str> {
        let batch = self.with(|s| s.recv(max))?;
        if !batch.is_empty() || timeout == Some(Duration::ZERO) {
            return Ok(batch);
        }
        unreachable!("the bench delivers before every wakeup");
    }
}

impl PyFrameBatchState {
    /// `PyFrameBatch::received`.
    fn received(batch: Batch, queue: Option<u32>) -> Self {
        PyFrameBatchState {
            batch: Mutex::new(Some(batch)),
            exports: AtomicUsize::new(0),
            ended: Mutex::new(""),
            queue: AtomicU64::new(queue.map_or(0, |q| 1 << 32 | u64::from(q))),
            generation: AtomicU64::new(0),
        }
    }

    /// `PyFrameBatch::reuse`: an ended object takes the next batch.
    fn reuse(&self, batch: Batch, queue: Option<u32>) -> Result<(), Batch> {
        let mut g = lock(&self.batch);
        if g.is_some() || self.exports.load(Ordering::Acquire) != 0 {
            return Err(batch);
        }
        *lock(&self.ended) = "";
        self.queue.store(queue.map_or(0, |q| 1 << 32 | u64::from(q)), Ordering::Relaxed);
        self.generation.fetch_add(1, Ordering::Relaxed);
        *g = Some(batch);
        Ok(())
    }

    /// `PyFrameBatch::release_now` (`FrameBatch.release()`).
    fn release_now(&self) -> Result<(), &'static str> {
        let mut g = lock(&self.batch);
        if g.is_some() && self.exports.load(Ordering::Acquire) != 0 {
            return Err("live exports");
        }
        if let Some(batch) = g.take() {
            *lock(&self.ended) = "released";
            drop(g);
            drop(batch);
        }
        Ok(())
    }
}

impl PyBatchesState {
    /// `PyBatches::end_previous`: the object, when it ended.
    fn end_previous(&self) -> Option<Arc<PyFrameBatchState>> {
        let previous = lock(&self.previous).take()?;
        previous.release_now().ok().map(|()| previous)
    }

    /// `PyBatches::__next__`, with a batch ready: true when it handed one out.
    fn next(&self) -> bool {
        let ended = self.end_previous();
        if self.done.load(Ordering::Acquire) {
            return false;
        }
        let (batch, queue) = match self.socket.recv_batch(self.max, self.timeout) {
            Ok(batch) => (batch, Some(self.socket.queue)),
            Err(_) => {
                self.done.store(true, Ordering::Release);
                return false;
            }
        };
        if batch.is_empty() {
            self.done.store(true, Ordering::Release);
            return false;
        }
        let reused = match ended {
            Some(obj) => match obj.reuse(batch, queue) {
                Ok(()) => Ok(obj),
                Err(batch) => Err(batch),
            },
            None => Err(batch),
        };
        let batch = match reused {
            Ok(obj) => obj,
            Err(batch) => Arc::new(PyFrameBatchState::received(batch, queue)),
        };
        // The bindings keep one reference and return the other (`clone_ref`).
        *lock(&self.previous) = Some(Arc::clone(&batch));
        black_box(batch.queue.load(Ordering::Relaxed));
        drop(batch);
        true
    }
}

fn wakeup(c: &mut Criterion) {
    let mut g = c.benchmark_group("wakeup");
    g.throughput(Throughput::Elements(u64::from(BATCH)));

    // What a Rust program does per wakeup (rust/core/examples/rxdrop.rs): `Socket::recv`
    // (peek the rx ring, frames Fill -> User into a batch, fill ring topped up by 64 from the
    // free pool), then drop the batch (frames User -> Free, its vector kept for the next).
    let (mut path, mut kernel) = receiver();
    g.bench_function("core loop: recv + drop, 64 frames", |b| {
        b.iter_custom(|iters| {
            timed_wakeups(&mut kernel, iters, || {
                let batch = path.recv(BATCH);
                black_box(&batch);
                drop(batch);
            })
        })
    });
    assert_eq!(path.counters().unexpected, 0);
    drop(path);

    // The same frames lent in place (`Socket::recv_with`): checked read-only, read, and put
    // straight back on the fill ring, with no batch and no state change.
    let (mut path, mut kernel) = receiver();
    g.bench_function("core loop: recv_with (lent), 64 frames", |b| {
        b.iter_custom(|iters| {
            timed_wakeups(&mut kernel, iters, || {
                black_box(path.recv_with(BATCH, |view| view.bytes()));
            })
        })
    });
    assert_eq!(path.counters().unexpected, 0);
    drop(path);

    // `for batch in sock.batches(): ...`: each `__next__` releases the batch it handed out
    // before and receives the next, through the bindings' locks and cells.
    let (path, mut kernel) = receiver();
    let it = PyBatchesState {
        socket: PySocketState { sock: Mutex::new(Some(path)), queue: 0 },
        max: BATCH,
        timeout: None,
        previous: Mutex::new(None),
        done: AtomicBool::new(false),
    };
    g.bench_function("python-facing: Socket.batches() step, 64 frames", |b| {
        b.iter_custom(|iters| timed_wakeups(&mut kernel, iters, || assert!(it.next())))
    });
    drop(it);

    // `batch = sock.recv(64)` then `batch.release()`: two calls per wakeup, each with its
    // argument checks (the integer and float already converted from Python objects).
    let (path, mut kernel) = receiver();
    let sock = PySocketState { sock: Mutex::new(Some(path)), queue: 0 };
    g.bench_function("python-facing: Socket.recv + FrameBatch.release, 64 frames", |b| {
        b.iter_custom(|iters| {
            timed_wakeups(&mut kernel, iters, || {
                let max = u32::try_from(black_box(64i64)).unwrap();
                let timeout = Duration::try_from_secs_f64(black_box(0.0)).ok();
                let batch = sock.recv_batch(max, timeout).unwrap();
                let batch = PyFrameBatchState::received(batch, Some(sock.queue));
                batch.release_now().unwrap();
                drop(batch);
            })
        })
    });
    g.finish();
}

/// A receive that finds the rx ring empty: what a waiting loop pays per call (`recv(timeout=0)`
/// polling, an asyncio reader callback, the call after a wakeup's last batch). The first call
/// tops the fill ring up; from then on there is nothing to do.
fn idle(c: &mut Criterion) {
    let (mut path, _kernel) = receiver();
    drop(path.recv(BATCH));
    c.bench_function("idle: recv on an empty rx ring", |b| {
        b.iter(|| {
            let batch = path.recv(BATCH);
            assert!(batch.is_empty());
            black_box(batch)
        })
    });
}

criterion_group!(benches, wakeup, idle);
criterion_main!(benches);
