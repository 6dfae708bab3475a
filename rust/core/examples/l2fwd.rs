//! Layer-2 forwarding against the core, the Rust twin of `xsk_ref l2fwd` (benches/c) and of
//! `examples/l2fwd.py`.
//!
//! `l2fwd IFNAME [SECONDS] [native|generic] [BATCH]`: attaches the built-in program, opens a
//! socket on queue 0, and for SECONDS from the first packet receives a batch, swaps the MAC
//! addresses of every frame in place ([`Batch::swap_macs`](afxdp::umem::Batch::swap_macs)) and
//! sends the same frames back out of IFNAME, reclaiming completed ones. Waits in poll when the rx
//! ring is empty. Prints one line of `key=value` figures like `rxdrop`: packets (forwarded),
//! seconds, pps, the process's CPU time per packet and the kernel's drop counters.

use std::time::{Duration, Instant};

use afxdp::bpf::{AttachMode, XdpProgram};
use afxdp::socket::{Socket, SocketConfig};
use afxdp::umem::{Umem, UmemConfig};

mod common;
use common::Cpu;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let ifname = args.get(1).ok_or("usage: l2fwd IFNAME [SECONDS] [native|generic] [BATCH]")?;
    let iface = afxdp::Interface::by_name(ifname)?;
    let seconds: f64 = args.get(2).map_or(Ok(5.0), |s| s.parse())?;
    let mode: AttachMode = args.get(3).map_or(Ok(AttachMode::Native), |s| s.parse())?;
    let batch: u32 = args.get(4).map_or(Ok(64), |s| s.parse())?;

    let mut prog = XdpProgram::attach_builtin(&iface, mode)?;
    let umem = Umem::new(UmemConfig {
        frame_count: 4096,
        frame_size: 4096,
        headroom: 0,
        ..UmemConfig::default()
    })?;
    let mut sock = Socket::open(&iface, 0, umem, SocketConfig::default())?;
    prog.register(0, sock.fd())?;
    let poll = sock.poll_handle()?;
    println!("ready");

    let (mut received, mut forwarded, mut bytes) = (0u64, 0u64, 0u64);
    let mut first: Option<(Instant, Cpu)> = None;
    let mut deadline = Instant::now() + Duration::from_secs_f64(seconds + 10.0);
    while Instant::now() < deadline {
        if sock.in_flight() > 0 {
            sock.complete(u32::MAX)?;
        }
        let mut got = sock.recv(batch)?;
        if got.is_empty() {
            // Idle: wait in poll; with frames in flight, wake soon to reclaim them.
            let wait = if sock.in_flight() > 0 { 1 } else { 100 };
            poll.poll(afxdp::socket::POLLIN, Duration::from_millis(wait))?;
            continue;
        }
        if first.is_none() {
            first = Some((Instant::now(), Cpu::now()));
            deadline = Instant::now() + Duration::from_secs_f64(seconds);
        }
        received += got.len() as u64;
        got.swap_macs()?;
        bytes += got.descs().iter().map(|d| u64::from(d.len)).sum::<u64>();
        forwarded += u64::from(sock.send(&mut got)?);
        drop(got); // frames the tx ring had no room for are dropped (back to the pool)
    }
    let (t0, c0) = first.ok_or("no packet received")?;
    let secs = t0.elapsed().as_secs_f64();
    let stats = sock.stats()?;
    println!(
        "impl=rust mode=l2fwd packets={forwarded} received={received} bytes={bytes} seconds={secs:.3} pps={:.0} {} rx_dropped={} rx_ring_full={} fill_empty={} tx_invalid={}",
        forwarded as f64 / secs,
        c0.per_packet(forwarded),
        stats.kernel.rx_dropped,
        stats.kernel.rx_ring_full,
        stats.kernel.rx_fill_ring_empty_descs,
        stats.kernel.tx_invalid_descs
    );
    prog.detach()?;
    Ok(())
}
