//! Receive-and-drop loop against the core, the Rust twin of `benches/rxdrop.py`.
//!
//! `rxdrop IFNAME [SECONDS] [native|generic] [BATCH] [FRAME_SIZE [unaligned] [hugepages] [lend] [coalesce=USECS]]`:
//! attaches the built-in program, opens a socket on queue 0 over a Umem of 4096 frames (of 4096
//! bytes unless FRAME_SIZE, in unaligned chunk mode and on 2 MiB huge pages when those words
//! follow), receives in batches (waiting in poll when the ring is empty; with `lend`, the frames
//! lent in place by `Socket::recv_with` instead of a batch) and drops the frames,
//! until SECONDS pass. With `coalesce=USECS`, fewer than BATCH frames on the rx ring first
//! let frames gather for USECS (a sleep not woken by them, as Python's `recv(coalesce=)`).
//! Prints one line of `key=value` figures: packets, seconds, pps, the process's CPU time per
//! packet, how many non-empty batches it took and how many times it waited in poll, and the
//! socket's drop counters.

use std::time::{Duration, Instant};

use afxdp::bpf::{AttachMode, XdpProgram};
use afxdp::socket::{Socket, SocketConfig};
use afxdp::umem::{HugePages, Umem, UmemConfig};

mod common;
use common::Cpu;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let ifname = args.get(1).ok_or(
        "usage: rxdrop IFNAME [SECONDS] [native|generic] [BATCH] [FRAME_SIZE [unaligned] [hugepages] [lend] [coalesce=USECS]]",
    )?;
    let iface = afxdp::Interface::by_name(ifname)?;
    let seconds: f64 = args.get(2).map_or(Ok(5.0), |s| s.parse())?;
    let mode: AttachMode = args.get(3).map_or(Ok(AttachMode::Native), |s| s.parse())?;
    let batch: u32 = args.get(4).map_or(Ok(64), |s| s.parse())?;
    let frame_size: u32 = args.get(5).map_or(Ok(4096), |s| s.parse())?;
    let flag = |word: &str| args.iter().skip(6).any(|a| a == word);
    let lend = flag("lend");
    let coalesce = match args.iter().skip(6).find_map(|a| a.strip_prefix("coalesce=")) {
        Some(us) => Some(Duration::from_micros(us.parse()?)),
        None => None,
    };

    let mut prog = XdpProgram::attach_builtin(&iface, mode)?;
    let umem = Umem::new(UmemConfig {
        frame_count: 4096,
        frame_size,
        headroom: 0,
        unaligned: flag("unaligned"),
        hugepages: if flag("hugepages") { HugePages::Yes } else { HugePages::No },
        ..UmemConfig::default()
    })?;
    let cfg = SocketConfig { tx_size: 0, ..SocketConfig::default() };
    let mut sock = Socket::open(&iface, 0, umem, cfg)?;
    prog.register(0, sock.fd())?;
    let poll = sock.poll_handle()?;
    println!("ready");

    let (mut packets, mut bytes, mut batches, mut polls) = (0u64, 0u64, 0u64, 0u64);
    let mut first: Option<(Instant, Cpu)> = None;
    let end_wait = Instant::now() + Duration::from_secs_f64(seconds + 10.0);
    let mut deadline = end_wait;
    while Instant::now() < deadline {
        if let Some(span) = coalesce
            && sock.rx_available()? < batch
        {
            std::thread::sleep(span);
        }
        let (n, nbytes) = if lend {
            sock.recv_with(batch, |v| (v.len(), v.bytes()))?
        } else {
            let got = sock.recv(batch)?;
            (got.len(), got.descs().iter().map(|d| u64::from(d.len)).sum::<u64>())
        };
        if n == 0 {
            polls += 1;
            poll.poll(afxdp::socket::POLLIN, Duration::from_millis(100))?;
            continue;
        }
        if first.is_none() {
            // Time from the first packet, so start-up does not count.
            first = Some((Instant::now(), Cpu::now()));
            deadline = Instant::now() + Duration::from_secs_f64(seconds);
        }
        packets += n as u64;
        batches += 1;
        bytes += nbytes;
    }
    let (t0, c0) = first.ok_or("no packet received")?;
    let secs = t0.elapsed().as_secs_f64();
    let stats = sock.stats()?;
    println!(
        "impl=rust packets={packets} bytes={bytes} seconds={secs:.3} pps={:.0} {} batches={batches} polls={polls} rx_dropped={} rx_ring_full={} fill_empty={}",
        packets as f64 / secs,
        c0.per_packet(packets),
        stats.kernel.rx_dropped,
        stats.kernel.rx_ring_full,
        stats.kernel.rx_fill_ring_empty_descs
    );
    prog.detach()?;
    Ok(())
}
