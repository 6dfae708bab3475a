//! A port: a socket on every rx queue of an interface (or the listed ones), all over one shared
//! UMEM, received from fairly and waited on together.
//!
//! A NIC spreads traffic over its rx queues (RSS), and a socket sees only its own queue, so a
//! program that wants all of an interface's traffic needs one socket per queue. The sockets
//! share one [`Umem`] (each queue gets its own fill and completion rings, see
//! [`crate::socket`]), so a frame received on any queue can be sent on any other without a
//! copy. [`PortWaiter`] waits on all of them with one `epoll` descriptor, and [`RoundRobin`]
//! starts each receive at the queue after the one served last, so a flooded queue cannot
//! starve the others.
//!
//! [`Port`] is the whole thing for Rust users; the Python binding builds its sockets through
//! the Python `Socket` class (to take the same options) and uses the parts.

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::bpf::XdpProgram;
use crate::error::{Error, Result};
use crate::socket::{RxView, Socket, SocketConfig, Stats};
use crate::sys::epoll::{Epoll, EventFd};
use crate::sys::{ForkGuard, Interface, XdpStatistics};
use crate::umem::{Batch, Umem, UmemConfig};

/// The epoll token of the close wakeup (queue tokens are socket positions).
const WAKE_TOKEN: u64 = u64::MAX;

/// Waits on a port's sockets at once: one `epoll` descriptor watching every socket for received
/// frames, plus an `eventfd` that [`close`](PortWaiter::close) signals so that every waiting
/// thread returns. Shared (`Arc`) between the port and the threads waiting on it, so the
/// descriptors stay open until the last waiter has returned.
#[derive(Debug)]
pub struct PortWaiter {
    epoll: Epoll,
    wake: EventFd,
    closed: AtomicBool,
    /// A forked child shares the eventfd (and the epoll set) with the parent: its close must
    /// not signal it, or the parent's waits would return at once for good.
    guard: ForkGuard,
}

impl PortWaiter {
    /// A waiter over the sockets `fds` (their position in the port is their token).
    pub fn new(fds: impl IntoIterator<Item = RawFd>) -> Result<PortWaiter> {
        let epoll = Epoll::new()?;
        let wake = EventFd::new()?;
        epoll.add_readable(wake.fd(), WAKE_TOKEN)?;
        for (i, fd) in fds.into_iter().enumerate() {
            epoll.add_readable(fd, i as u64)?;
        }
        Ok(PortWaiter { epoll, wake, closed: AtomicBool::new(false), guard: ForkGuard::new() })
    }

    /// Waits up to `timeout` for a socket to have received frames, or for [`close`]; returns
    /// whether one of them happened (false on timeout). EINTR is returned as the error, so the
    /// caller can check for signals and wait again.
    ///
    /// [`close`]: PortWaiter::close
    pub fn wait(&self, timeout: Duration) -> io::Result<bool> {
        if self.is_closed() {
            return Ok(true);
        }
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        let mut ready = [0u64; 16];
        Ok(self.epoll.wait(&mut ready, ms)? > 0)
    }

    /// Marks the port closed and wakes every thread waiting in [`wait`](PortWaiter::wait)
    /// (the eventfd stays readable, so later waits return at once too). Idempotent. In a
    /// forked child it only marks the child's copy: the eventfd is the parent's too.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        if !self.guard.forked() {
            self.wake.signal();
        }
    }

    /// Whether [`close`](PortWaiter::close) was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The epoll descriptor: readable when a socket has received frames (or the port was
    /// closed), for `select`, `selectors` and asyncio.
    pub fn fd(&self) -> RawFd {
        self.epoll.fd()
    }
}

/// Where the next receive starts: the queue after the one served last. With every receive
/// taking one batch from the first ready queue in this order, a queue with frames waits for at
/// most one batch of each other queue.
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: AtomicUsize,
}

impl RoundRobin {
    /// Positions `0..n` in the order to try them: from the starting one, wrapping around.
    pub fn order(&self, n: usize) -> impl Iterator<Item = usize> + use<> {
        let start = if n == 0 { 0 } else { self.next.load(Ordering::Relaxed) % n };
        (0..n).map(move |k| (start + k) % n)
    }

    /// Position `i` of `n` was served: the next receive starts after it.
    pub fn served(&self, i: usize, n: usize) {
        if n > 0 {
            self.next.store((i + 1) % n, Ordering::Relaxed);
        }
    }
}

/// The queues of a port on `iface`: `queues`, checked (each below the interface's rx queues in
/// use, no repeats, at least one), or every rx queue in use when `None`
/// ([`Interface::active_queues`]: a NIC's channel count may be below its maximum).
pub fn port_queues(iface: &Interface, queues: Option<&[u32]>) -> Result<Vec<u32>> {
    let count = iface.active_queues()?.0;
    let Some(queues) = queues else { return Ok((0..count).collect()) };
    if queues.is_empty() {
        return Err(Error::InvalidArgument {
            name: "queues",
            value: "[]".into(),
            why: "a port needs at least one queue (None: all of them)".into(),
        });
    }
    for (i, &queue) in queues.iter().enumerate() {
        if queue >= count {
            return Err(Error::QueueOutOfRange { ifname: iface.name().into(), queue, count });
        }
        if queues[..i].contains(&queue) {
            return Err(Error::InvalidArgument {
                name: "queues",
                value: format!("{queues:?}"),
                why: format!("queue {queue} is listed twice"),
            });
        }
    }
    Ok(queues.to_vec())
}

/// The UMEM a port makes for itself: 4096 frames of 4096 bytes per queue (what a lone socket's
/// private UMEM has), so each queue keeps the same share a lone socket would.
pub fn port_umem_config(queues: usize) -> UmemConfig {
    let per_queue = UmemConfig::default();
    UmemConfig {
        frame_count: per_queue.frame_count.saturating_mul(queues.max(1) as u32),
        ..per_queue
    }
}

/// The fill ring size for each of `queues` sockets sharing `frame_count` frames: the largest
/// power of two not above `frame_count / (2 * queues)` (half the frames on the fill rings, in
/// equal shares; the other half for frames in flight and held by the user), at most
/// `fill_size`.
///
/// # Errors
///
/// [`Error::InvalidArgument`] naming the UMEM when it has fewer than two frames per queue.
pub fn port_fill_size(frame_count: u32, queues: usize, fill_size: u32) -> Result<u32> {
    let share = frame_count as usize / (2 * queues.max(1));
    if share == 0 {
        return Err(Error::InvalidArgument {
            name: "umem",
            value: format!("of {frame_count} frames"),
            why: format!("a port on {queues} queues needs at least {} frames", 2 * queues),
        });
    }
    let pow2 = 1u32 << (usize::BITS - 1 - share.leading_zeros()).min(31);
    Ok(pow2.min(fill_size.max(1)))
}

/// The sum of `stats` (a port's total over its queues).
pub fn sum_stats<'a>(stats: impl IntoIterator<Item = &'a Stats>) -> Stats {
    let mut total = Stats::default();
    for s in stats {
        let (k, t) = (&s.kernel, &mut total.kernel);
        *t = XdpStatistics {
            rx_dropped: t.rx_dropped + k.rx_dropped,
            rx_invalid_descs: t.rx_invalid_descs + k.rx_invalid_descs,
            tx_invalid_descs: t.tx_invalid_descs + k.tx_invalid_descs,
            rx_ring_full: t.rx_ring_full + k.rx_ring_full,
            rx_fill_ring_empty_descs: t.rx_fill_ring_empty_descs + k.rx_fill_ring_empty_descs,
            tx_ring_empty_descs: t.tx_ring_empty_descs + k.tx_ring_empty_descs,
        };
        let (c, t) = (&s.counters, &mut total.counters);
        t.received += c.received;
        t.sent += c.sent;
        t.filled += c.filled;
        t.completed += c.completed;
        t.unexpected += c.unexpected;
    }
    total
}

/// A socket on every listed rx queue of one interface, over one UMEM, received from fairly.
///
/// Dropping it closes the sockets, those on later queues first, the one that registered the
/// UMEM last; the UMEM is unmapped once nothing else holds it.
pub struct Port {
    // Dropped in this order: the waiter (its epoll watches go with the sockets anyway), then
    // the sockets (see `Drop`).
    waiter: Arc<PortWaiter>,
    sockets: Vec<Socket>,
    queues: Vec<u32>,
    umem: Umem,
    iface: Interface,
    next: RoundRobin,
}

impl Drop for Port {
    fn drop(&mut self) {
        self.waiter.close();
        // Sharing sockets before the UMEM's owner (the first).
        while let Some(socket) = self.sockets.pop() {
            drop(socket);
        }
    }
}

impl std::fmt::Debug for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Port")
            .field("ifname", &self.iface.name())
            .field("queues", &self.queues)
            .finish()
    }
}

impl Port {
    /// Opens a socket with the rings of `cfg` on each of `queues` of `iface` (`None`: every
    /// queue), all over `umem` (`None`: a new one of [`port_umem_config`]). The fill rings are
    /// sized by [`port_fill_size`] (at most `cfg.fill_size`), so the queues share the frames
    /// equally. Register the sockets with a program ([`register`](Port::register)) to receive.
    ///
    /// # Errors
    ///
    /// Those of [`port_queues`], [`port_fill_size`], [`Umem::new`] and [`Socket::open`].
    pub fn open(
        iface: &Interface,
        queues: Option<&[u32]>,
        umem: Option<Umem>,
        cfg: SocketConfig,
    ) -> Result<Port> {
        let queues = port_queues(iface, queues)?;
        let umem = match umem {
            Some(umem) => umem,
            None => Umem::new(port_umem_config(queues.len()))?,
        };
        let fill_size = port_fill_size(umem.config().frame_count, queues.len(), cfg.fill_size)?;
        let cfg = SocketConfig { fill_size, ..cfg };
        let mut sockets = Vec::with_capacity(queues.len());
        for &queue in &queues {
            sockets.push(Socket::open(iface, queue, umem.clone(), cfg)?);
        }
        let waiter = Arc::new(PortWaiter::new(sockets.iter().map(Socket::fd))?);
        Ok(Port {
            waiter,
            sockets,
            queues,
            umem,
            iface: iface.clone(),
            next: RoundRobin::default(),
        })
    }

    /// Puts every socket with an rx ring into `program`'s XSKMAP at its queue.
    ///
    /// # Errors
    ///
    /// Those of [`XdpProgram::register`].
    pub fn register(&self, program: &mut XdpProgram) -> Result<()> {
        if program.may_write_rx_meta() {
            self.umem.expect_rx_meta();
        }
        for socket in self.sockets.iter().filter(|s| s.has_rx()) {
            program.register(socket.queue(), socket.fd())?;
        }
        Ok(())
    }

    /// Takes up to `max` received frames from one queue, without waiting: the first queue with
    /// frames, starting after the one served last. `None` when no queue has any.
    ///
    /// # Errors
    ///
    /// Those of [`Socket::recv`].
    pub fn recv(&mut self, max: u32) -> Result<Option<(u32, Batch)>> {
        self.serve(|socket| {
            let batch = socket.recv(max)?;
            Ok((!batch.is_empty()).then(|| (socket.queue(), batch)))
        })
    }

    /// [`Port::recv`] with the frames lent in place ([`Socket::recv_with`]): `f` gets the
    /// queue and the frames of the first queue with frames, starting after the one served
    /// last. `None`, without calling `f`, when no queue has any.
    ///
    /// # Errors
    ///
    /// Those of [`Socket::recv_with`].
    pub fn recv_with<R>(
        &mut self,
        max: u32,
        f: impl FnOnce(u32, &RxView<'_>) -> R,
    ) -> Result<Option<R>> {
        let mut f = Some(f);
        self.serve(|socket| {
            let queue = socket.queue();
            // An empty queue still runs its receive (its fill ring may want topping up).
            socket.recv_with(max, |view| match view.is_empty() {
                true => None,
                false => f.take().map(|f| f(queue, view)),
            })
        })
    }

    /// Runs `take` on the sockets with an rx ring, starting after the one served last, until
    /// one gives `Some`: that one is then the one served last. `None` when none does.
    fn serve<R>(
        &mut self,
        mut take: impl FnMut(&mut Socket) -> Result<Option<R>>,
    ) -> Result<Option<R>> {
        let n = self.sockets.len();
        for i in self.next.order(n) {
            let socket = &mut self.sockets[i];
            if !socket.has_rx() {
                continue;
            }
            if let Some(r) = take(socket)? {
                self.next.served(i, n);
                return Ok(Some(r));
            }
        }
        Ok(None)
    }

    /// Waits up to `timeout` for any queue to have received frames; returns whether one has.
    ///
    /// # Errors
    ///
    /// [`Error::Syscall`] for `epoll_wait` (EINTR included: a signal arrived).
    pub fn wait(&self, timeout: Duration) -> Result<bool> {
        self.waiter.wait(timeout).map_err(|source| Error::Syscall { call: "epoll_wait", source })
    }

    /// The waiter, to wait from another thread (and [`PortWaiter::close`] to wake it).
    pub fn waiter(&self) -> Arc<PortWaiter> {
        self.waiter.clone()
    }

    /// The queues, in the order of [`sockets`](Port::sockets).
    pub fn queues(&self) -> &[u32] {
        &self.queues
    }

    /// The sockets, one per queue.
    pub fn sockets(&self) -> &[Socket] {
        &self.sockets
    }

    /// The socket of `queue`, if the port has one there.
    pub fn socket_mut(&mut self, queue: u32) -> Option<&mut Socket> {
        let i = self.queues.iter().position(|&q| q == queue)?;
        self.sockets.get_mut(i)
    }

    /// The UMEM behind every socket.
    pub fn umem(&self) -> &Umem {
        &self.umem
    }

    /// The interface.
    pub fn interface(&self) -> &Interface {
        &self.iface
    }

    /// The sum of the sockets' statistics.
    ///
    /// # Errors
    ///
    /// Those of [`Socket::stats`].
    pub fn stats(&self) -> Result<Stats> {
        let per_queue = self.sockets.iter().map(Socket::stats).collect::<Result<Vec<_>>>()?;
        Ok(sum_stats(&per_queue))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_starts_after_the_queue_served_last() {
        let rr = RoundRobin::default();
        assert_eq!(rr.order(3).collect::<Vec<_>>(), [0, 1, 2]);
        rr.served(0, 3);
        assert_eq!(rr.order(3).collect::<Vec<_>>(), [1, 2, 0]);
        rr.served(2, 3);
        assert_eq!(rr.order(3).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(rr.order(0).count(), 0);
        // A stale position from a larger port still gives every queue once.
        rr.served(6, 8);
        assert_eq!(rr.order(3).collect::<Vec<_>>(), [1, 2, 0]);
    }

    #[test]
    fn fill_rings_share_the_frames_equally() {
        assert_eq!(port_fill_size(4096 * 4, 4, 4096).unwrap(), 2048);
        assert_eq!(port_fill_size(4096, 3, 4096).unwrap(), 512);
        assert_eq!(port_fill_size(1 << 20, 1, 4096).unwrap(), 4096);
        assert_eq!(port_fill_size(2, 1, 4096).unwrap(), 1);
        let error = port_fill_size(5, 4, 4096).unwrap_err();
        assert!(error.to_string().contains("needs at least 8 frames"), "{error}");
        assert_eq!(port_umem_config(4).frame_count, 4 * 4096);
    }

    #[test]
    fn a_waiter_is_woken_by_close() {
        let waiter = Arc::new(PortWaiter::new([]).unwrap());
        assert!(!waiter.wait(Duration::ZERO).unwrap());
        let other = waiter.clone();
        let thread = std::thread::spawn(move || other.wait(Duration::from_secs(10)).unwrap());
        std::thread::sleep(Duration::from_millis(20));
        waiter.close();
        assert!(thread.join().unwrap());
        assert!(waiter.is_closed());
    }

    #[test]
    #[ignore = "needs root: network namespaces, veth, XDP"]
    fn a_port_receives_from_every_queue() {
        use crate::bpf::test_support::{VethNetns, in_netns};
        use crate::bpf::{AttachMode, Rule};
        let netns = VethNetns::new(2);
        let (mut port, _program) = netns.enter(|| {
            let iface = Interface::by_name("veth1").unwrap();
            let port = Port::open(&iface, None, None, SocketConfig::default()).unwrap();
            let udp = Rule { ip_proto: Some(17), dst_port: Some(4242), ..Rule::default() };
            let mut program =
                XdpProgram::attach_with_rules(&iface, AttachMode::Native, &[udp]).unwrap();
            port.register(&mut program).unwrap();
            (port, program)
        });
        assert_eq!(port.queues(), [0, 1]);
        assert!(port.umem().is_bound());
        // Datagrams from several source ports, which the peer's stack spreads over its tx
        // queues (and so over veth1's rx queues).
        in_netns(&netns.peer, || {
            for sport in 0..64u16 {
                let s = std::net::UdpSocket::bind(("10.211.0.2", 40000 + sport)).unwrap();
                s.send_to(b"afxdp port", "10.211.0.1:4242").unwrap();
            }
        });
        let mut got = 0;
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while got < 64 && std::time::Instant::now() < deadline {
            if port.wait(Duration::from_millis(100)).unwrap() {
                while let Some((queue, batch)) = port.recv(64).unwrap() {
                    assert!(queue < 2);
                    got += batch.len();
                }
            }
        }
        assert_eq!(got, 64);
        assert_eq!(port.stats().unwrap().counters.received, 64);
        // Again, lent in place: every datagram, from both queues, its payload intact.
        in_netns(&netns.peer, || {
            for sport in 0..64u16 {
                let s = std::net::UdpSocket::bind(("10.211.0.2", 40000 + sport)).unwrap();
                s.send_to(b"afxdp lend", "10.211.0.1:4242").unwrap();
            }
        });
        let mut lent = 0;
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while lent < 64 && std::time::Instant::now() < deadline {
            if port.wait(Duration::from_millis(100)).unwrap() {
                while let Some((queue, n)) = port
                    .recv_with(64, |queue, view| {
                        assert!(view.iter().all(|f| f.data().ends_with(b"afxdp lend")));
                        (queue, view.len())
                    })
                    .unwrap()
                {
                    assert!(queue < 2);
                    lent += n;
                }
            }
        }
        assert_eq!(lent, 64);
        assert_eq!(port.stats().unwrap().counters.received, 128);
        // Nothing ready: `None`, and the closure is not called.
        assert!(port.recv_with(64, |_, _| unreachable!()).unwrap().is_none());
    }
}
