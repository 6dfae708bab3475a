//! A fixed number of receive wakeups through the core's receive path, for counting its
//! instructions with callgrind (`benches/rx_instructions.py` runs it and prints the count per
//! wakeup and per frame). Instruction counts do not depend on what else the machine runs, so
//! they compare two builds exactly where timings on a shared machine cannot.
//!
//! The receive path is [`RxPath`] (`Socket::recv`'s body over heap rings, no kernel) as
//! `benches/benches/wakeup.rs` sets it up ([`receiver`]: `afxdp.Socket(ifname)`'s defaults).
//! Each wakeup (the function `wakeup`) receives a batch of 64 frames and drops it; a lent
//! wakeup (`wakeup_lent`, on a second receive path) has the same 64 frames lent by
//! `recv_with` (`Socket::recv_with`) and sums their lengths. The kernel's part
//! ([`afxdp_benches::Kernel::deliver`]) runs outside both.
//!
//! `rx_instructions [WAKEUPS]` (default 10000); prints the frames received.

use afxdp::socket::RxPath;
use afxdp_benches::{BATCH, receiver};

/// One wakeup of a Rust receive loop: receive a batch, drop it (its frames go back to the pool).
#[inline(never)]
fn wakeup(path: &mut RxPath) -> usize {
    let batch = path.recv(BATCH);
    let n = batch.len();
    drop(batch);
    n
}

/// One wakeup of a Rust receive loop over lent frames: the lengths of 64 frames, summed.
#[inline(never)]
fn wakeup_lent(path: &mut RxPath) -> usize {
    path.recv_with(BATCH, |view| {
        std::hint::black_box(view.iter().map(|f| f.data().len()).sum::<usize>());
        view.len()
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let wakeups: u64 = std::env::args().nth(1).map_or(Ok(10_000), |s| s.parse())?;
    let (mut path, mut kernel) = receiver();
    let mut frames = 0;
    for _ in 0..wakeups {
        kernel.deliver(BATCH);
        frames += wakeup(&mut path);
    }
    assert_eq!(path.counters().unexpected, 0);
    let (mut path, mut kernel) = receiver();
    for _ in 0..wakeups {
        kernel.deliver(BATCH);
        frames += wakeup_lent(&mut path);
    }
    assert_eq!(path.counters().unexpected, 0);
    println!("frames={frames}");
    Ok(())
}
