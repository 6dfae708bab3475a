//! Transmit-only loop against the core, the Rust twin of `xsk_ref txonly` (benches/c) and of
//! the Python batch sender in `benches/workers.py`.
//!
//! `txonly IFNAME SECONDS PACKET_HEX [BATCH] [MAX_COUNT]`: opens a transmit-only socket on queue
//! 0, writes the packet into every UMEM frame once, then for SECONDS (or MAX_COUNT packets)
//! allocates BATCH frames, sets their lengths, sends them and reclaims completed frames. Prints
//! one line of `key=value` figures like `rxdrop`: packets (completed), seconds (the sending
//! window), pps, the process's CPU time per packet and the kernel's counters.

use std::time::{Duration, Instant};

use afxdp::socket::{Socket, SocketConfig};
use afxdp::umem::{Umem, UmemConfig};

mod common;
use common::Cpu;

fn parse_hex(hex: &str) -> Result<Vec<u8>, String> {
    if !hex.len().is_multiple_of(2) {
        return Err("PACKET_HEX needs an even number of hex digits".into());
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|e| format!("PACKET_HEX: {e}")))
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: txonly IFNAME SECONDS PACKET_HEX [BATCH] [MAX_COUNT]";
    let ifname = args.get(1).ok_or(usage)?;
    let iface = afxdp::Interface::by_name(ifname)?;
    let seconds: f64 = args.get(2).ok_or(usage)?.parse()?;
    let packet = parse_hex(args.get(3).ok_or(usage)?)?;
    let batch: usize = args.get(4).map_or(Ok(64), |s| s.parse())?;
    let max_count: u64 = args.get(5).map_or(Ok(1 << 40), |s| s.parse())?;

    let umem = Umem::new(UmemConfig {
        frame_count: 4096,
        frame_size: 4096,
        headroom: 0,
        ..UmemConfig::default()
    })?;
    let cfg = SocketConfig { rx_size: 0, ..SocketConfig::default() };
    let mut sock = Socket::open(&iface, 0, umem, cfg)?;
    // The template goes into every frame once; afterwards only lengths are set. Dropping the
    // batch returns the frames to the pool with their bytes.
    let mut everything = sock.alloc(sock.umem().config().frame_count as usize)?;
    everything.write_all(&packet)?;
    drop(everything);
    println!("ready");

    let (mut sent, mut completed) = (0u64, 0u64);
    let t0 = Instant::now();
    let c0 = Cpu::now();
    let deadline = t0 + Duration::from_secs_f64(seconds);
    while Instant::now() < deadline && sent < max_count {
        let mut out = sock.alloc(batch)?;
        if out.is_empty() {
            completed += u64::from(sock.complete(u32::MAX)?);
            continue;
        }
        for i in 0..out.len() {
            out.set_len(i, packet.len())?;
        }
        sent += u64::from(sock.send(&mut out)?);
        drop(out); // frames the tx ring had no room for go back to the pool
        completed += u64::from(sock.complete(u32::MAX)?);
    }
    // pps over the sending window; completions arrive asynchronously: drain them, bounded by
    // a deadline, and count them and their CPU time too.
    let secs = t0.elapsed().as_secs_f64();
    let drain = Instant::now() + Duration::from_secs(1);
    while sock.in_flight() > 0 && Instant::now() < drain {
        completed += u64::from(sock.complete(u32::MAX)?);
        std::thread::sleep(Duration::from_micros(200));
    }
    let stats = sock.stats()?;
    println!(
        "impl=rust mode=txonly packets={completed} sent={sent} bytes={} seconds={secs:.3} pps={:.0} {} rx_dropped={} rx_ring_full={} fill_empty={} tx_invalid={}",
        completed * packet.len() as u64,
        completed as f64 / secs,
        c0.per_packet(completed),
        stats.kernel.rx_dropped,
        stats.kernel.rx_ring_full,
        stats.kernel.rx_fill_ring_empty_descs,
        stats.kernel.tx_invalid_descs
    );
    Ok(())
}
