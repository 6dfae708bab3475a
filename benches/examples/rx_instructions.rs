//! A fixed number of receive wakeups through the core's receive path, for counting its
//! instructions with callgrind (`benches/rx_instructions.py` runs it and prints the count per
//! wakeup and per frame). Instruction counts do not depend on what else the machine runs, so
//! they compare two builds exactly where timings on a shared machine cannot.
//!
//! The receive path is [`RxPath`] (`Socket::recv`'s body over heap rings, no kernel) on the
//! geometry of `afxdp.Socket(ifname)`'s defaults, as in `benches/benches/wakeup.rs`: a UMEM of
//! 4096 frames of 4096 bytes, a 2048-entry rx ring, the fill ring kept at 2048 frames. Each
//! wakeup (the function `wakeup`) receives a batch of 64 frames and drops it; the kernel's part
//! (`deliver`) runs outside it.
//!
//! `rx_instructions [WAKEUPS]` (default 10000); prints the frames received.

use afxdp::ring::{Consumer, FillRing, Producer, RingMemory, RxRing};
use afxdp::socket::{RxPath, SocketConfig};
use afxdp::sys::XdpDesc;
use afxdp::umem::{Umem, UmemConfig};

const BATCH: u32 = 64;

/// The kernel's part: `n` packets of 60 bytes into frames from the fill ring, each 256 bytes
/// into its frame (XDP_PACKET_HEADROOM).
#[inline(never)]
fn deliver(fill: &mut Consumer<u64>, rx: &mut Producer<XdpDesc>, addrs: &mut Vec<u64>, n: u32) {
    addrs.clear();
    let got = fill.peek(n, addrs);
    fill.release(got);
    let room = rx.reserve(got);
    assert_eq!((got, room), (n, n), "the fill ring ran dry or the rx ring is full");
    for (i, &addr) in addrs.iter().enumerate() {
        rx.write(i as u32, XdpDesc { addr: addr + 256, len: 60, options: 0 });
    }
    rx.submit(got);
}

/// One wakeup of a Rust receive loop: receive a batch, drop it (its frames go back to the pool).
#[inline(never)]
fn wakeup(path: &mut RxPath) -> usize {
    let batch = path.recv(BATCH);
    let n = batch.len();
    drop(batch);
    n
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let wakeups: u64 = std::env::args().nth(1).map_or(Ok(10_000), |s| s.parse())?;
    let umem =
        Umem::new(UmemConfig { frame_count: 4096, frame_size: 4096, ..UmemConfig::default() })?;
    let cfg = SocketConfig::with_sizes(2048, 2048, None, None);
    let (rx_user, rx_kernel) = RingMemory::<XdpDesc>::heap(cfg.rx_size);
    let (fill_user, fill_kernel) = RingMemory::<u64>::heap(cfg.fill_size);
    let mut path = RxPath::new(umem, RxRing::new(rx_user), FillRing::new(fill_user), 2048, cfg)?;
    let (mut fill, mut rx) = (Consumer::new(fill_kernel), Producer::new(rx_kernel));
    let mut addrs = Vec::with_capacity(BATCH as usize);
    let mut frames = 0;
    for _ in 0..wakeups {
        deliver(&mut fill, &mut rx, &mut addrs, BATCH);
        frames += wakeup(&mut path);
    }
    assert_eq!(path.counters().unexpected, 0);
    println!("frames={frames}");
    Ok(())
}
