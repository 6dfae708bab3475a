//! What the core benchmarks share: a receive path over heap rings set up as
//! `afxdp.Socket(ifname)` sets a socket up by default, and the kernel's side of its two rings.

use afxdp::ring::{Consumer, FillRing, Producer, RingMemory, RxRing};
use afxdp::socket::{RxPath, SocketConfig};
use afxdp::sys::XdpDesc;
use afxdp::umem::{Umem, UmemConfig};

/// Frames per receive wakeup (xdpsock's batch, and the benchmarks').
pub const BATCH: u32 = 64;

/// The kernel's side of the two rings.
pub struct Kernel {
    fill: Consumer<u64>,
    rx: Producer<XdpDesc>,
    addrs: Vec<u64>,
}

impl Kernel {
    /// Receives `n` packets of 60 bytes into frames from the fill ring, each 256 bytes into its
    /// frame (XDP_PACKET_HEADROOM), as the kernel does in aligned mode.
    pub fn deliver(&mut self, n: u32) {
        self.addrs.clear();
        let got = self.fill.peek(n, &mut self.addrs);
        self.fill.release(got);
        let room = self.rx.reserve(got);
        assert_eq!((got, room), (n, n), "the fill ring ran dry or the rx ring is full");
        for (i, &addr) in self.addrs.iter().enumerate() {
            self.rx.write(i as u32, XdpDesc { addr: addr + 256, len: 60, options: 0 });
        }
        self.rx.submit(got);
    }
}

/// A receive path and its kernel, as `afxdp.Socket(ifname)` sets them up by default: a UMEM of
/// 4096 frames of 4096 bytes, a 2048-entry rx ring, a 2048-entry fill ring kept full.
pub fn receiver() -> (RxPath, Kernel) {
    let umem =
        Umem::new(UmemConfig { frame_count: 4096, frame_size: 4096, ..UmemConfig::default() })
            .unwrap();
    let cfg = SocketConfig::with_sizes(2048, 2048, None, None);
    let (rx_user, rx_kernel) = RingMemory::<XdpDesc>::heap(cfg.rx_size);
    let (fill_user, fill_kernel) = RingMemory::<u64>::heap(cfg.fill_size);
    // `Socket::open`'s fill target for a socket with rx and tx rings: half the frames.
    let fill_target = cfg.fill_size.min(4096 / 2);
    let path = RxPath::new(umem, RxRing::new(rx_user), FillRing::new(fill_user), fill_target, cfg)
        .unwrap();
    let kernel = Kernel {
        fill: Consumer::new(fill_kernel),
        rx: Producer::new(rx_kernel),
        addrs: Vec::with_capacity(BATCH as usize),
    };
    (path, kernel)
}
