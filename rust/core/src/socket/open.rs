//! Opening a socket: registering or sharing the UMEM, sizing and mapping the rings, binding.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use super::pair::{BindMode, BoundFd, PoolMember, QueueKey, QueuePool, Refill, RingMap};
use super::{Counters, Socket, SocketConfig};
use crate::error::{Error, Result};
use crate::ring::{RxRing, TxRing};
use crate::sys::{self, ForkGuard, Interface, NotInChild, SockaddrXdp, XdpDesc, xsk};
use crate::txmeta::TX_META_LEN;
use crate::umem::Umem;

/// How long `open` retries a bind that fails with EBUSY: the kernel releases a closed socket's
/// queue asynchronously (xdp-tutorial#458).
const BIND_RETRY: Duration = Duration::from_millis(1500);

/// How a new socket gets its UMEM, decided under the UMEM's open lock.
enum Sharing {
    /// No socket uses the UMEM: register it (`XDP_UMEM_REG`) and make the first ring pair.
    Owner,
    /// Share the UMEM with this bound socket (on another interface or queue): a new ring pair.
    NewQueue(Arc<BoundFd>),
    /// Share this ring pair (same interface and queue) through one of its bound sockets.
    SameQueue(Arc<QueuePool>, Arc<BoundFd>),
}

/// Unique member ids (a socket's place in its ring pair).
static NEXT_MEMBER: AtomicU64 = AtomicU64::new(1);

impl Socket {
    /// Opens a socket on `iface`/`queue` over `umem`, with the rings of `cfg`.
    ///
    /// A UMEM may back any number of sockets (`XDP_SHARED_UMEM`): the first one registers it;
    /// a socket on another (interface, queue) gets its own fill and completion rings
    /// (`cfg.fill_size`/`comp_size`); a socket on an (interface, queue) where one of the UMEM's
    /// sockets is already bound shares that socket's fill and completion rings (its own sizes
    /// for them are ignored). Sharing sockets inherit copy/zero-copy and need-wakeup from the
    /// first: asking for another mode is an error. Every socket of the UMEM can send frames
    /// received on any other, without copying.
    ///
    /// Errors: [`Error::InvalidArgument`] for a bad ring size or a mode that differs from the
    /// UMEM's other sockets, [`Error::NoSuchInterface`], [`Error::QueueOutOfRange`],
    /// [`Error::ForkedChild`] for a UMEM made before a `fork()`, or [`Error::Syscall`] naming
    /// the call (EPERM without CAP_NET_RAW, EBUSY when the queue is taken by a socket of
    /// another UMEM, EOPNOTSUPP when zero-copy was required but the driver has none).
    pub fn open(iface: &Interface, queue: u32, umem: Umem, cfg: SocketConfig) -> Result<Socket> {
        cfg.validate()?;
        umem.check_fork()?;
        // The kernel's bound (`xsk_bind`): the queues in use, rx or tx.
        let (rx_queues, tx_queues) = iface.active_queues()?;
        let count = rx_queues.max(tx_queues);
        if queue >= count {
            return Err(Error::QueueOutOfRange { ifname: iface.name().into(), queue, count });
        }
        let key = QueueKey { netns: sys::netdev::current_netns()?, ifindex: iface.index(), queue };
        let opening = umem.opening();
        let pools = umem.live_pools();
        let sharing = match pools
            .iter()
            .find_map(|p| Some((p, p.member_fd()?)).filter(|(p, _)| p.key == key))
        {
            Some((pool, fd)) => Sharing::SameQueue(pool.clone(), fd),
            None => match pools.iter().find_map(|p| p.member_fd()) {
                Some(fd) => Sharing::NewQueue(fd),
                None => Sharing::Owner,
            },
        };
        drop(pools);
        if let Sharing::NewQueue(owner) | Sharing::SameQueue(_, owner) = &sharing {
            // Set once bound; members found here are (opens are serialised, and a failed open
            // leaves its pair before the lock is let go).
            let BindMode { need_wakeup, zerocopy, multi_buffer } =
                owner.mode.get().copied().unwrap_or(BindMode {
                    need_wakeup: cfg.need_wakeup,
                    zerocopy: cfg.zerocopy == Some(true),
                    multi_buffer: cfg.multi_buffer,
                });
            if cfg.multi_buffer != multi_buffer {
                return Err(Error::InvalidArgument {
                    name: "multi_buffer",
                    value: cfg.multi_buffer.to_string(),
                    why: format!(
                        "the Umem's sockets were bound with multi_buffer={multi_buffer}, which sharing sockets inherit"
                    ),
                });
            }
            if cfg.need_wakeup != need_wakeup {
                return Err(Error::InvalidArgument {
                    name: "need_wakeup",
                    value: cfg.need_wakeup.to_string(),
                    why: format!(
                        "the Umem's sockets were bound with need_wakeup={need_wakeup}, which sharing sockets inherit"
                    ),
                });
            }
            if cfg.zerocopy.is_some_and(|z| z != zerocopy) {
                return Err(Error::InvalidArgument {
                    name: "zerocopy",
                    value: format!("{:?}", cfg.zerocopy),
                    why: format!(
                        "the Umem's sockets run in {} mode, which sharing sockets inherit",
                        if zerocopy { "zero-copy" } else { "copy" }
                    ),
                });
            }
        }
        let fd = xsk::socket()?;
        if let Some(busy_poll) = &cfg.busy_poll {
            busy_poll.apply(&fd)?;
        }
        let ucfg = umem.config();
        if let Sharing::Owner = sharing {
            let mut flags = 0;
            if ucfg.unaligned {
                flags |= sys::XDP_UMEM_UNALIGNED_CHUNK_FLAG;
            }
            if ucfg.tx_metadata {
                flags |= sys::XDP_UMEM_TX_METADATA_LEN;
            }
            if ucfg.tx_sw_csum {
                flags |= sys::XDP_UMEM_TX_SW_CSUM;
            }
            let reg = sys::XdpUmemReg {
                addr: umem.as_ptr() as u64,
                len: umem.len() as u64,
                chunk_size: ucfg.frame_size,
                headroom: ucfg.headroom,
                flags,
                tx_metadata_len: if ucfg.tx_metadata { TX_META_LEN } else { 0 },
            };
            xsk::umem_reg(&fd, &reg)?;
        }
        // The kernel's rule: each distinct (device, queue) has its own fill and completion
        // rings, made on its first socket; a socket joining that queue must not make any.
        let own_pair = !matches!(sharing, Sharing::SameQueue(..));
        if own_pair {
            xsk::set_fill_ring_size(&fd, cfg.fill_size)?;
            xsk::set_completion_ring_size(&fd, cfg.comp_size)?;
        }
        if cfg.rx_size > 0 {
            xsk::set_rx_ring_size(&fd, cfg.rx_size)?;
        }
        if cfg.tx_size > 0 {
            xsk::set_tx_ring_size(&fd, cfg.tx_size)?;
        }
        let off = xsk::mmap_offsets(&fd)?;
        let rx = match cfg.rx_size {
            0 => None,
            n => Some(RxRing::new(
                RingMap::new::<XdpDesc>(&fd, &off.rx, n, sys::XDP_PGOFF_RX_RING, "mmap(rx ring)")?
                    .memory(),
            )),
        };
        let tx = match cfg.tx_size {
            0 => None,
            n => Some(TxRing::new(
                RingMap::new::<XdpDesc>(&fd, &off.tx, n, sys::XDP_PGOFF_TX_RING, "mmap(tx ring)")?
                    .memory(),
            )),
        };
        let map_pair =
            |fd: &OwnedFd, fill_size: u32, comp_size: u32| -> Result<(RingMap, RingMap)> {
                Ok((
                    RingMap::new::<u64>(
                        fd,
                        &off.fr,
                        fill_size,
                        sys::XDP_UMEM_PGOFF_FILL_RING,
                        "mmap(fill ring)",
                    )?,
                    RingMap::new::<u64>(
                        fd,
                        &off.cr,
                        comp_size,
                        sys::XDP_UMEM_PGOFF_COMPLETION_RING,
                        "mmap(completion ring)",
                    )?,
                ))
            };
        // The first socket leaves half the frames for transmission when it does both; a
        // further ring pair of a shared UMEM takes at most half of what is still free, so the
        // pairs opened before it and transmission keep frames too.
        let fill_target = if rx.is_none() {
            0
        } else {
            let frames = ucfg.frame_count;
            let share = match &sharing {
                Sharing::Owner if tx.is_none() => frames,
                Sharing::Owner => frames.div_ceil(2),
                Sharing::NewQueue(_) | Sharing::SameQueue(..) => umem.free_frames() / 2,
            };
            cfg.fill_size.min(share)
        };
        let (pool, pair_maps) = match &sharing {
            Sharing::SameQueue(pool, _) => (pool.clone(), None),
            Sharing::Owner | Sharing::NewQueue(_) => {
                let maps = map_pair(&fd, cfg.fill_size, cfg.comp_size)?;
                let pool = umem.add_pool(|id| Arc::new(QueuePool::new(id, key, &umem, None, 0)))?;
                (pool, Some(maps))
            }
        };
        // From here on, dropping `bound` closes the fd and lets the pair go.
        let bound = Arc::new(BoundFd {
            not_in_child: NotInChild::register(fd.as_raw_fd()),
            fd: Some(fd),
            mode: OnceLock::new(),
            _pool: pool.clone(),
        });
        let fd = bound.fd.as_ref().expect("fd set above");
        let member = NEXT_MEMBER.fetch_add(1, Ordering::Relaxed);
        let refill = (cfg.autofill && rx.is_some()).then(|| Arc::new(Refill::new(pool.clone())));
        let mut sock = Socket {
            rx,
            tx,
            pool: pool.clone(),
            refill,
            member,
            bound: bound.clone(),
            umem: umem.clone(),
            iface: iface.clone(),
            queue,
            guard: ForkGuard::new(),
            zerocopy: false,
            max_frags: 1,
            cfg,
            counters: Counters::default(),
            tx_stamps: VecDeque::new(),
        };
        if let Some((fill, comp)) = pair_maps {
            // A new pair: frames go on its fill ring before bind (zero-copy drivers expect
            // them there).
            pool.join(
                PoolMember { id: member, fd: Arc::downgrade(&bound), fill, comp },
                fill_target,
            );
            if cfg.autofill {
                sock.top_up_fill()?;
            }
        }
        let (flags, shared_fd) = match &sharing {
            Sharing::Owner => {
                let mut flags = 0;
                if cfg.need_wakeup {
                    flags |= sys::XDP_USE_NEED_WAKEUP;
                }
                if cfg.multi_buffer {
                    flags |= sys::XDP_USE_SG;
                }
                match cfg.zerocopy {
                    Some(true) => flags |= sys::XDP_ZEROCOPY,
                    Some(false) => flags |= sys::XDP_COPY,
                    None => {}
                }
                (flags, 0)
            }
            // A sharing socket binds with XDP_SHARED_UMEM only (any other flag: EINVAL).
            Sharing::NewQueue(owner) | Sharing::SameQueue(_, owner) => {
                (sys::XDP_SHARED_UMEM, owner.raw() as u32)
            }
        };
        let addr = SockaddrXdp {
            sxdp_family: sys::AF_XDP as u16,
            sxdp_flags: flags,
            sxdp_ifindex: iface.index(),
            sxdp_queue_id: queue,
            sxdp_shared_umem_fd: shared_fd,
        };
        let deadline = Instant::now() + BIND_RETRY;
        // A queue closed just before is released by deferred kernel work about 20 ms later
        // here: poll for it in steps of at most 2 ms, so a reopen waits little past it.
        let mut backoff = Duration::from_micros(200);
        loop {
            match xsk::bind(fd, &addr) {
                Err(Error::Syscall { source, .. })
                    if source.raw_os_error() == Some(sys::errno::EBUSY)
                        && Instant::now() < deadline =>
                {
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_millis(2));
                }
                other => break other?,
            }
        }
        if let Sharing::SameQueue(pool, _) = &sharing {
            // Bound, the socket maps its pair's rings (the kernel gives the shared pool's).
            let (fill_size, comp_size) = pool.sizes();
            let (fill, comp) = map_pair(fd, fill_size, comp_size)?;
            pool.join(
                PoolMember { id: member, fd: Arc::downgrade(&bound), fill, comp },
                fill_target,
            );
            if cfg.autofill {
                sock.top_up_fill()?;
            }
        }
        let opts = xsk::options(fd)?;
        sock.zerocopy = opts.flags & sys::XDP_OPTIONS_ZEROCOPY != 0;
        if cfg.multi_buffer {
            // Copy mode's limit (`xsk_build_skb`): the linear part plus MAX_SKB_FRAGS. A packet
            // must also fit the tx ring, and the completion ring, where the kernel reserves a
            // slot per descriptor before any of the packet completes: a longer chain would
            // never complete and every later packet would wait behind it.
            let (_, comp_size) = sock.pool.sizes();
            sock.max_frags =
                (sys::netdev::max_skb_frags() + 1).min(cfg.tx_size.max(1)).min(comp_size.max(1));
        }
        let _ = bound.mode.set(BindMode {
            need_wakeup: cfg.need_wakeup,
            zerocopy: sock.zerocopy,
            multi_buffer: cfg.multi_buffer,
        });
        drop(opening);
        Ok(sock)
    }
}
