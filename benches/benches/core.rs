//! Criterion benchmarks of the core's per-packet bookkeeping, without a kernel: ring cursors
//! over heap memory, the frame pool and the batch edits. `cargo bench -p afxdp-benches`.
//!
//! Every benchmark works on a batch of 64 (the batch size of the examples and of the C
//! reference) and declares 64 elements of throughput, so criterion's `thrpt` line gives
//! descriptors (or frames) per second; `python3 benches/ring_compare.py` turns the estimates
//! into nanoseconds per descriptor and sets the ring figure next to libxdp's inline ring
//! functions driven the same way (`xsk_ref ring`, benches/c/xsk_ref.c).

use std::hint::black_box;

use afxdp::addr::Addressing;
use afxdp::ring::{Consumer, Producer, RingMemory};
use afxdp::sys::XdpDesc;
use afxdp::umem::{Umem, UmemConfig};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const BATCH: u32 = 64;

/// Produce 64 descriptors, then consume them: `xsk_ref ring` does the same with libxdp's
/// `xsk_ring_prod__reserve/submit` and `xsk_ring_cons__peek/release`.
fn rings(c: &mut Criterion) {
    let mut g = c.benchmark_group("ring");
    g.throughput(Throughput::Elements(u64::from(BATCH)));
    let (a, b) = RingMemory::<XdpDesc>::heap(2048);
    let (mut p, mut q) = (Producer::new(a), Consumer::new(b));
    let mut out = Vec::with_capacity(BATCH as usize);
    g.bench_function("produce+consume 64 descriptors", |bench| {
        bench.iter(|| {
            let n = p.reserve(BATCH);
            for i in 0..n {
                p.write(i, XdpDesc { addr: u64::from(i) * 4096, len: 60, options: 0 });
            }
            p.submit(n);
            out.clear();
            let m = q.peek(BATCH, &mut out);
            q.release(m);
            black_box(&out);
        })
    });
    // The fill/completion shape: u64 addresses instead of 16-byte descriptors.
    let (a, b) = RingMemory::<u64>::heap(2048);
    let (mut p, mut q) = (Producer::new(a), Consumer::new(b));
    let mut addrs = Vec::with_capacity(BATCH as usize);
    g.bench_function("produce+consume 64 addresses", |bench| {
        bench.iter(|| {
            let n = p.reserve(BATCH);
            for i in 0..n {
                p.write(i, u64::from(i) * 4096);
            }
            p.submit(n);
            addrs.clear();
            let m = q.peek(BATCH, &mut addrs);
            q.release(m);
            black_box(&addrs);
        })
    });
    g.finish();
}

/// The UMEM the frame and batch benches work on: 4096 frames of 2048 bytes.
fn bench_umem() -> Umem {
    Umem::new(UmemConfig { frame_count: 4096, frame_size: 2048, ..UmemConfig::default() }).unwrap()
}

/// The frame pool: allocation and release.
fn frames(c: &mut Criterion) {
    let mut g = c.benchmark_group("frames");
    g.throughput(Throughput::Elements(u64::from(BATCH)));
    let umem = bench_umem();
    g.bench_function("alloc+release 64 frames", |bench| {
        bench.iter(|| black_box(umem.alloc(BATCH as usize)).release())
    });
    g.finish();
}

/// The batch edits that keep per-frame work out of Python: `write_all` (the tx template) and
/// `swap_macs` (the l2fwd edit), over 64 frames.
fn batch_edits(c: &mut Criterion) {
    let mut g = c.benchmark_group("batch");
    g.throughput(Throughput::Elements(u64::from(BATCH)));
    let umem = bench_umem();
    let mut batch = umem.alloc(BATCH as usize);
    for size in [64usize, 1500] {
        let packet = vec![0xabu8; size];
        g.bench_function(format!("write_all {size}-byte packet into 64 frames"), |bench| {
            bench.iter(|| batch.write_all(black_box(&packet)).unwrap())
        });
    }
    batch.write_all(&[0x5au8; 64]).unwrap();
    g.bench_function("swap_macs 64 frames", |bench| {
        bench.iter(|| black_box(&mut batch).swap_macs().unwrap())
    });
    g.finish();
}

/// Ring address to (frame, offset), what every received and completed frame costs: aligned
/// 2048-byte frames (shift and mask) against unaligned 3000- and 4001-byte ones (48-bit base
/// plus 16-bit offset, a multiply by the reciprocal of the frame size), over the rx addresses
/// of 64 frames spread through a 4096-frame UMEM.
fn addressing(c: &mut Criterion) {
    let mut g = c.benchmark_group("addressing");
    g.throughput(Throughput::Elements(u64::from(BATCH)));
    for (name, a) in [
        ("aligned 2048", Addressing::aligned(2048)),
        ("unaligned 3000", Addressing::unaligned(3000)),
        ("unaligned 4001", Addressing::unaligned(4001)),
    ] {
        let addrs: Vec<u64> = (0..BATCH).map(|i| a.encode(i * 61 % 4096, 256)).collect();
        g.bench_function(format!("decode 64 rx addresses, {name}"), |bench| {
            bench.iter(|| {
                let mut sum = 0u64;
                for &addr in black_box(&addrs) {
                    let d = a.decode(addr).unwrap();
                    sum = sum.wrapping_add(d.index ^ d.offset);
                }
                sum
            })
        });
    }
    g.finish();
}

criterion_group!(benches, rings, frames, batch_edits, addressing);
criterion_main!(benches);
