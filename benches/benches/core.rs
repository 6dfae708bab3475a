//! Criterion benchmarks of the core's per-packet bookkeeping, without a kernel: ring cursors
//! over heap memory and the frame table. `cargo bench -p afxdp-benches`.

use std::hint::black_box;

use afxdp::ring::{Consumer, Producer, RingMemory};
use afxdp::sys::XdpDesc;
use afxdp::umem::{FrameState, Umem, UmemConfig};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const BATCH: u32 = 64;

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
    g.finish();
}

fn frames(c: &mut Criterion) {
    let mut g = c.benchmark_group("frames");
    g.throughput(Throughput::Elements(u64::from(BATCH)));
    let umem = Umem::new(UmemConfig { frame_count: 4096, frame_size: 2048, headroom: 0 }).unwrap();
    g.bench_function("alloc+release 64 frames", |bench| {
        bench.iter(|| black_box(umem.alloc(BATCH as usize)).release())
    });
    g.bench_function("fill -> user -> tx -> free transitions, 64 frames", |bench| {
        let mut idx = Vec::with_capacity(BATCH as usize);
        bench.iter(|| {
            idx.clear();
            let mut t = umem.frames();
            t.take_free(BATCH as usize, FrameState::Fill, &mut idx);
            for &i in &idx {
                t.transition(i, FrameState::Fill, FrameState::User, 2048).unwrap();
                t.transition(i, FrameState::User, FrameState::Tx, 2048).unwrap();
                t.transition(i, FrameState::Tx, FrameState::Free, 2048).unwrap();
            }
        })
    });
    let packet = [0xabu8; 64];
    let mut batch = umem.alloc(BATCH as usize);
    g.bench_function("write_all 64-byte packet into 64 frames", |bench| {
        bench.iter(|| batch.write_all(black_box(&packet)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, rings, frames);
criterion_main!(benches);
