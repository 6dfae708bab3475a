//! The data path: the fill ring, receive, transmit and completion, each move checked in the
//! UMEM's frame table.

use std::sync::Arc;
use std::sync::atomic::Ordering;

#[cfg(doc)]
use super::BusyPoll;
use super::pair::{PairRings, QueuePool, Refill, fill_deficit, fill_locked};
use super::{Counters, Socket, SocketConfig};
use crate::addr::Addressing;
use crate::error::{Error, Result};
use crate::ring::{FillRing, RxRing};
use crate::sys::{XDP_TXMD_FLAGS_CHECKSUM, XDP_TXMD_FLAGS_TIMESTAMP, XdpDesc, xsk};
use crate::txmeta::{self, TxTimestamp};
use crate::umem::{Batch, FrameDesc, FrameTable, PoolId, Umem};

impl Socket {
    /// Hands up to `max` free frames to the kernel through the fill ring; returns how many.
    pub fn fill(&mut self, max: u32) -> Result<u32> {
        self.fill_with(|_, _| max)
    }

    /// Tops the fill ring up to the fill target (what `autofill` does).
    pub fn top_up_fill(&mut self) -> Result<u32> {
        self.fill_with(fill_deficit)
    }

    /// Puts `want(rings, table)` free frames (at most) on the fill ring, deciding and taking
    /// them under one lock of the pair's rings and of the frame table.
    fn fill_with(&mut self, want: impl FnOnce(&PairRings, &FrameTable) -> u32) -> Result<u32> {
        self.check_fork()?;
        let addressing = self.umem.addressing();
        let (got, wake) = {
            let mut rings = self.pool.rings();
            let mut table = self.umem.frames();
            let want = want(&rings, &table);
            let got =
                fill_locked(&mut rings, &mut table, &self.umem, self.pool.id, want, addressing);
            (got, rings.fill.as_ref().is_some_and(FillRing::needs_wakeup))
        };
        self.filled(got, wake);
        Ok(got)
    }

    /// Counts `got` frames just put on the fill ring and wakes the kernel if it asked.
    pub(super) fn filled(&mut self, got: u32, wake: bool) {
        if got == 0 {
            return;
        }
        self.counters.filled += u64::from(got);
        if wake {
            // Errors here only mean "try again later"; the frames are on the ring either way.
            let _ = xsk::wakeup_rx(self.fd());
        }
    }

    pub(super) fn no_ring(ring: &'static str) -> Error {
        Error::InvalidArgument {
            name: ring,
            value: "0".into(),
            why: format!("the socket was opened with {ring}=0"),
        }
    }

    /// Takes up to `max` received frames from the rx ring, without waiting.
    ///
    /// With multi-buffer, a batch holds whole packets only: a packet's frames are all in it or
    /// all left on the ring for the next call (which also waits for a packet whose last frame
    /// the kernel has not put on the ring yet). The one exception to `max`: when the first
    /// packet alone spans more than `max` frames, the batch is that packet (at most
    /// [`Socket::max_frags`]-ish frames), so a small `max` cannot stall the socket.
    ///
    /// One lock of the frame table covers the whole batch: every descriptor is checked (an
    /// address this socket did not put on the fill ring is refused and counted as
    /// `unexpected`), and with `autofill` the fill ring is topped up from the free pool.
    /// With [`BusyPoll`], a `recvfrom` first polls the queue's NAPI, which moves what waits
    /// there onto the rx ring.
    pub fn recv(&mut self, max: u32) -> Result<Batch> {
        let (batch, filled, wake) = self.rx_work()?.recv(max);
        self.filled(filled, wake);
        Ok(batch)
    }

    /// The start of every receive ([`Socket::recv`], [`Socket::recv_with`]): refuses in a
    /// forked child and without an rx ring, polls the queue first with [`BusyPoll`], and
    /// hands out what the receive works on.
    pub(super) fn rx_work(&mut self) -> Result<RxWork<'_>> {
        self.check_fork()?;
        let fd = self.fd();
        let rx = self.rx.as_mut().ok_or_else(|| Self::no_ring("rx_size"))?;
        if self.cfg.busy_poll.is_some() {
            // Errors only mean "nothing polled now"; the ring is read either way.
            let _ = xsk::wakeup_rx(fd);
        }
        Ok(RxWork {
            rx,
            pool: &self.pool,
            refill: self.refill.as_ref(),
            umem: &self.umem,
            cfg: &self.cfg,
            counters: &mut self.counters,
        })
    }

    /// Number of entries waiting on the rx ring.
    ///
    /// # Errors
    ///
    /// [`Error::ForkedChild`].
    pub fn rx_available(&mut self) -> Result<u32> {
        self.check_fork()?;
        Ok(self.rx.as_mut().map_or(0, |rx| rx.available(u32::MAX)))
    }

    /// Takes up to `n` free frames for transmission (length 0 until written). Completed frames
    /// are reclaimed first when the pool runs short.
    pub fn alloc(&mut self, n: usize) -> Result<Batch> {
        self.check_fork()?;
        if (self.umem.free_frames() as usize) < n {
            self.complete(u32::MAX)?;
        }
        Ok(self.umem.alloc(n))
    }

    /// Queues the frames of `batch` on the tx ring and wakes the kernel. Returns how many were
    /// queued; they leave the batch. Frames that did not fit (tx ring full) stay in the batch.
    ///
    /// Every frame is checked first (owned by the batch's UMEM, length from 1 to its capacity,
    /// i.e. `offset + len <= frame_size`): a bad frame fails the whole call, naming the frame
    /// and its length, and nothing is queued. The kernel would skip such a descriptor without
    /// ever completing it (a leaked frame), and lengths can be written in place from Python.
    ///
    /// A frame with `more` set ([`FrameDesc::MORE`]) continues its packet in the next frame
    /// and is sent with `XDP_PKT_CONTD`. Refused, naming the frame: `more` on a socket without
    /// multi-buffer, `more` on the batch's last frame (a packet without an end), and a chain
    /// longer than [`Socket::max_frags`] or than the tx ring (the kernel would drop it whole
    /// and count it in `tx_invalid_descs`). The tx ring takes whole packets: when it has room for
    /// only part of the batch, the frames queued end at a packet's end.
    ///
    /// On a UMEM with tx metadata, a frame with a request ([`crate::txmeta`]) is sent with
    /// `XDP_TX_METADATA`; refused, naming the frame: a packet starting less than
    /// [`TX_META_LEN`](crate::txmeta::TX_META_LEN) bytes into its frame, a request on a frame
    /// that continues a packet or with a checksum field beyond the length (copy mode would
    /// answer EINVAL and never move the tx ring again), and a checksum request on a
    /// multi-frame packet with `tx_sw_csum` in copy mode (the kernel would checksum the first
    /// frame only).
    pub fn send(&mut self, batch: &mut Batch) -> Result<u32> {
        self.check_fork()?;
        if self.tx.is_none() {
            return Err(Self::no_ring("tx_size"));
        }
        if !batch.umem().same(&self.umem) {
            return Err(Error::InvalidArgument {
                name: "batch",
                value: format!("of {} frames", batch.len()),
                why: "its frames belong to another Umem".into(),
            });
        }
        for (i, d) in batch.descs().iter().enumerate() {
            let capacity = batch.capacity(i)?;
            if d.len == 0 {
                return Err(Error::InvalidArgument {
                    name: "frame length",
                    value: "0".into(),
                    why: format!(
                        "frame {i} of the batch is empty; write a packet or set its length"
                    ),
                });
            }
            if d.len as usize > capacity {
                return Err(Error::InvalidArgument {
                    name: "frame length",
                    value: d.len.to_string(),
                    why: format!(
                        "frame {i} of the batch (UMEM frame {}) has room for {capacity} bytes \
                         after its offset {}",
                        d.index, d.offset
                    ),
                });
            }
        }
        self.check_chains(batch)?;
        let ucfg = self.umem.config();
        let meta = ucfg.tx_metadata;
        if meta {
            // Copy mode applies a request while the skb holds only the packet's first frame:
            // a software checksum then covers that frame alone (seen on 6.18).
            let partial_sw_csum = ucfg.tx_sw_csum && !self.zerocopy;
            let mut first = true;
            for (i, d) in batch.descs().iter().enumerate() {
                let flags = batch.tx_meta_for_send(i, first)?;
                if partial_sw_csum && d.more() && flags & XDP_TXMD_FLAGS_CHECKSUM != 0 {
                    return Err(Error::InvalidArgument {
                        name: "checksum request",
                        value: format!("on frame {i}"),
                        why: format!(
                            "frame {i} of the batch starts a multi-frame packet; with \
                             tx_sw_csum copy mode computes the checksum over the first frame \
                             only (Linux 6.18), so it would be wrong"
                        ),
                    });
                }
                first = !d.more();
            }
        }
        let want = batch.len() as u32;
        if self.tx.as_mut().expect("checked above").free(want) < want {
            // Make room: let the kernel drain the ring, then reclaim.
            self.kick_tx()?;
            self.complete(u32::MAX)?;
        }
        let tx = self.tx.as_mut().expect("checked above");
        let mut n = tx.reserve(want);
        if n < want {
            // Whole packets only: back off to the end of the last packet that fits.
            let descs = batch.descs();
            while n > 0 && descs[n as usize - 1].more() {
                n -= 1;
            }
        }
        let fs = self.umem.config().frame_size;
        let addressing = self.umem.addressing();
        {
            let mut table = self.umem.frames();
            // All or none, before a descriptor is written.
            table.queue_for_tx(&batch.descs()[..n as usize], self.pool.id, fs)?;
            for (i, d) in batch.descs()[..n as usize].iter().enumerate() {
                if meta {
                    // Checked above; every frame sent notes its request, so a reused
                    // frame never completes with an earlier one's.
                    let flags = batch.tx_meta_for_send(i, true).unwrap_or(0);
                    table.set_tx_stamp(d.index, flags & XDP_TXMD_FLAGS_TIMESTAMP != 0);
                }
                let desc = XdpDesc {
                    addr: addressing.encode(d.index, d.offset),
                    len: d.len,
                    options: d.options & (FrameDesc::MORE | FrameDesc::TX_METADATA),
                };
                tx.write(i as u32, desc);
            }
        }
        tx.submit(n);
        batch.take_front(n as usize);
        self.counters.sent += u64::from(n);
        self.kick_tx()?;
        Ok(n)
    }

    /// Checks the chains of `batch` for [`Socket::send`]: `more` only with multi-buffer, never
    /// on the last frame, and no chain longer than the kernel (or the tx ring) takes.
    fn check_chains(&self, batch: &Batch) -> Result<()> {
        let descs = batch.descs();
        let limit = self.max_frags;
        let mut start = 0;
        for (i, d) in descs.iter().enumerate() {
            if d.more() && !self.cfg.multi_buffer {
                return Err(Error::InvalidArgument {
                    name: "frame more",
                    value: "True".into(),
                    why: format!(
                        "frame {i} of the batch continues its packet in the next frame, but \
                         the socket was opened without multi_buffer=True"
                    ),
                });
            }
            if i + 1 - start > limit as usize {
                return Err(Error::InvalidArgument {
                    name: "frame more",
                    value: "True".into(),
                    why: format!(
                        "the packet starting at frame {start} of the batch spans more than \
                         {limit} frames (frame {i} and on), the most one packet may span on \
                         this socket (max_frags: the kernel's limit, the tx ring's {} and the \
                         completion ring's {} entries); the kernel would drop it whole or \
                         never complete it",
                        self.cfg.tx_size,
                        self.pool.sizes().1
                    ),
                });
            }
            if !d.more() {
                start = i + 1;
            }
        }
        if start != descs.len() {
            return Err(Error::InvalidArgument {
                name: "frame more",
                value: "True".into(),
                why: format!(
                    "frame {} is the batch's last and has more set: the packet starting at \
                     frame {start} has no end",
                    descs.len() - 1
                ),
            });
        }
        Ok(())
    }

    /// Copies each packet of `packets` into free frames (as many chained frames as it needs
    /// on a multi-buffer socket) and queues them on the tx ring, in order; returns how many
    /// packets were queued: fewer than given when the tx ring or the free frames run short
    /// (send the rest later, after [`Socket::complete`]). Every packet is checked first (a
    /// bad one fails the call, naming it, and nothing is sent).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for an empty packet, or one longer than
    /// [`Socket::max_frags`] frames hold ([`Error::PacketTooLong`] without multi-buffer: one
    /// frame); as [`Socket::send`].
    pub fn send_packets(&mut self, packets: &[&[u8]]) -> Result<u32> {
        self.check_fork()?;
        if self.tx.is_none() {
            return Err(Self::no_ring("tx_size"));
        }
        let capacity = self.umem.config().tx_capacity() as usize;
        let limit = self.max_frags as usize;
        let mut frames = Vec::with_capacity(packets.len());
        for (i, p) in packets.iter().enumerate() {
            if p.is_empty() {
                return Err(Error::InvalidArgument {
                    name: "packet length",
                    value: "0".into(),
                    why: format!("packet {i} is empty"),
                });
            }
            let need = p.len().div_ceil(capacity);
            if need > limit {
                if !self.cfg.multi_buffer {
                    return Err(Error::PacketTooLong { len: p.len(), capacity });
                }
                return Err(Error::InvalidArgument {
                    name: "packet length",
                    value: p.len().to_string(),
                    why: format!(
                        "packet {i} needs {need} frames of {capacity} bytes; a packet may span \
                         at most {limit} on this socket (max_frags: the kernel's limit, the tx \
                         ring's {} and the completion ring's {} entries)",
                        self.cfg.tx_size,
                        self.pool.sizes().1
                    ),
                });
            }
            frames.push(need);
        }
        let total: usize = frames.iter().sum();
        let mut batch = self.alloc(total)?;
        // Only whole packets into the frames there are.
        let mut written = 0;
        let mut at = 0;
        for (p, &need) in packets.iter().zip(&frames) {
            if at + need > batch.len() {
                break;
            }
            batch.write_chain(at, p)?;
            at += need;
            written += 1;
        }
        batch.release_from(at);
        let sent_frames = self.send(&mut batch)? as usize;
        // `send` queues whole packets: count them.
        let mut sent = 0;
        let mut covered = 0;
        for &need in &frames[..written] {
            if covered + need > sent_frames {
                break;
            }
            covered += need;
            sent += 1;
        }
        Ok(sent)
    }

    /// Number of frames on the tx ring the kernel has not taken yet.
    ///
    /// # Errors
    ///
    /// [`Error::ForkedChild`].
    pub fn tx_pending(&mut self) -> Result<u32> {
        self.check_fork()?;
        Ok(self.tx.as_mut().map_or(0, |tx| tx.pending()))
    }

    /// Wakes the kernel to transmit what is on the tx ring (copy mode needs a `sendto` for every
    /// batch, and the kernel sends at most 32 frames per call, answering EAGAIN when more wait).
    /// With [`BusyPoll`] every call makes at least one `sendto`, which polls the queue's NAPI,
    /// even with nothing to send. A link that is down is not an error: the frames stay on the
    /// tx ring ([`Socket::tx_pending`]) until a wakeup after it came back up.
    pub fn kick_tx(&mut self) -> Result<()> {
        self.check_fork()?;
        let fd = self.fd();
        let need_wakeup = self.cfg.need_wakeup;
        let busy = self.cfg.busy_poll.is_some();
        let Some(tx) = self.tx.as_mut() else { return Ok(()) };
        let mut pending = tx.pending();
        if !busy && (pending == 0 || (need_wakeup && !tx.needs_wakeup())) {
            return Ok(());
        }
        let mut rounds = pending / 16 + 4;
        loop {
            rounds -= 1;
            match xsk::wakeup_tx(fd) {
                // The link is down: the frames wait on the ring (still queued, as the caller
                // was told) and go out on a later wakeup, once it is up.
                Err(e) if xsk::is_link_down(&e) => return Ok(()),
                Err(e) if !xsk::is_retry_later(&e) => {
                    return Err(Error::Syscall { call: "sendto(AF_XDP tx wakeup)", source: e });
                }
                _ => {}
            }
            pending = tx.pending();
            if pending == 0 || rounds == 0 {
                return Ok(());
            }
        }
    }

    /// Reclaims up to `max` transmitted frames from the completion ring into the free pool;
    /// returns how many. Kicks the kernel first when frames still wait on the tx ring.
    ///
    /// On a UMEM with tx metadata, the completion timestamp of each frame sent with a
    /// timestamp request is read as it comes back and kept for
    /// [`Socket::take_tx_timestamps`]. The completion ring is that of the socket's
    /// (interface, queue): with several sockets of one UMEM on it, the socket whose
    /// `complete` reaps a frame keeps its timestamp.
    pub fn complete(&mut self, max: u32) -> Result<u32> {
        self.kick_tx()?;
        let addressing = self.umem.addressing();
        let pool = self.pool.id;
        let mut stamps = Vec::new();
        let (n, done) = {
            let mut rings = self.pool.rings();
            let Some(comp) = rings.comp.as_mut() else { return Ok(0) };
            let mut table = self.umem.frames();
            let (n, done) = if table.tracks_tx_stamps() {
                let mut sink = Completed {
                    table: &mut table,
                    pool,
                    addressing,
                    done: 0,
                    umem: &self.umem,
                    stamps: &mut stamps,
                };
                let n = comp.peek(max, &mut sink);
                let done = sink.done;
                table.completed(done, pool);
                (n, done)
            } else {
                let addrs = comp.peek_slices(max);
                let n = (addrs[0].len() + addrs[1].len()) as u32;
                (n, table.take_completions(&addrs, pool, addressing))
            };
            drop(table);
            comp.release(n);
            (n, done)
        };
        self.counters.unexpected += u64::from(n - done);
        self.counters.completed += u64::from(done);
        if !stamps.is_empty() {
            txmeta::convert_stamps(&stamps, &mut self.tx_stamps);
            let excess = self.tx_stamps.len().saturating_sub(super::MAX_TX_STAMPS);
            self.tx_stamps.drain(..excess);
        }
        Ok(done)
    }

    /// Takes the completion timestamps [`Socket::complete`] collected since the last call, in
    /// completion order: one per frame sent with a timestamp request whose completion the
    /// kernel stamped (copy mode always does). At most [`super::MAX_TX_STAMPS`] are kept;
    /// older ones are dropped first.
    pub fn take_tx_timestamps(&mut self) -> Vec<TxTimestamp> {
        self.tx_stamps.drain(..).collect()
    }

    /// Frames sent through this socket's (interface, queue) but not completed yet (the
    /// library's own count: no ring is read).
    pub fn in_flight(&self) -> u32 {
        self.umem.frames().tx_count(self.pool.id)
    }
}

/// What a receive works on, borrowed from a [`Socket`] once its checks passed
/// ([`Socket::rx_work`]) or from a [`super::RxPath`] (over rings in plain memory, for the
/// benches): the rx ring, the pair's pool and refill, the UMEM, the config and the counters.
/// Its receives make no syscall: each returns, beside what it received, how many frames went
/// on the fill ring and whether the fill ring asks for a wakeup (the caller counts those and
/// makes the syscall).
pub(super) struct RxWork<'a> {
    pub(super) rx: &'a mut RxRing,
    pub(super) pool: &'a QueuePool,
    pub(super) refill: Option<&'a Arc<Refill>>,
    pub(super) umem: &'a Umem,
    pub(super) cfg: &'a SocketConfig,
    pub(super) counters: &'a mut Counters,
}

impl RxWork<'_> {
    /// Whether a receive has nothing to do: the rx ring is empty and there is nothing to top
    /// up (no autofill, or the fill ring held its target after the last top-up; only a
    /// receive lowers that). Then the receive takes neither the pair's lock nor the frame
    /// table's: after each wakeup's last batch, and on every call of a waiting loop, it
    /// touches only the rx ring's producer index.
    pub(super) fn idle(&mut self) -> bool {
        self.rx.available(1) == 0
            && (!self.cfg.autofill || self.pool.topped_up.load(Ordering::Acquire))
    }

    /// How many descriptors a receive of up to `max` frames takes off the rx ring: whole
    /// packets only with multi-buffer (see [`RxRing::whole_packets`]).
    #[inline]
    pub(super) fn ready(&mut self, max: u32) -> u32 {
        if self.cfg.multi_buffer {
            self.rx.whole_packets(max)
        } else {
            self.rx.available(max).min(max)
        }
    }

    /// [`Socket::recv`]'s work: an empty batch when [`RxWork::idle`], else [`RxWork::take`].
    pub(super) fn recv(mut self, max: u32) -> (Batch, u32, bool) {
        if self.idle() {
            return (Batch::from_owned(self.umem.clone(), Vec::new()), 0, false);
        }
        self.take(max)
    }

    /// The ring and frame-table work of [`Socket::recv`]: under the pair's lock and the frame
    /// table's, takes up to `max` descriptors from the rx ring (whole packets only with
    /// multi-buffer) into a batch, moving their frames `Fill` → `User`, and with `autofill`
    /// tops the fill ring up from the free pool; then releases the rx slots and counts.
    pub(super) fn take(mut self, max: u32) -> (Batch, u32, bool) {
        let (umem, pool, cfg, refill) = (self.umem, self.pool, self.cfg, self.refill);
        let addressing = umem.addressing();
        let pool_id = pool.id;
        let (frames, n, unexpected, filled, wake) = {
            // The pair's lock first, then the frame table's (the order everywhere).
            let mut rings = pool.rings();
            let mut table = umem.frames();
            let ready = self.ready(max);
            let mut frames = if ready == 0 { Vec::new() } else { table.desc_vec(ready as usize) };
            let descs = self.rx.peek_slices(ready);
            let n = (descs[0].len() + descs[1].len()) as u32;
            // An address we never filled is refused (counted), rather than handing out a frame
            // someone else owns.
            let unexpected =
                table.take_received(&descs, pool_id, addressing, cfg.multi_buffer, &mut frames);
            let filled = if cfg.autofill {
                // A batch that puts its frames back on the fill ring when let go of (`refill`)
                // gets room kept for them: the ring is topped up to its target less those
                // frames, at most half the target, so the kernel keeps frames while the batch
                // is held.
                let keep = match refill {
                    Some(_) => (frames.len() as u32).min(rings.fill_target / 2),
                    None => 0,
                };
                let want = fill_deficit(&rings, &table).saturating_sub(keep);
                fill_locked(&mut rings, &mut table, umem, pool_id, want, addressing)
            } else {
                0
            };
            // Also after a receive without autofill: a sharing socket with autofill must not
            // take the pair for topped up once this one took frames off its fill ring.
            pool.topped_up.store(fill_deficit(&rings, &table) == 0, Ordering::Release);
            (frames, n, unexpected, filled, rings.fill.as_ref().is_some_and(FillRing::needs_wakeup))
        };
        self.rx.release(n);
        self.counters.unexpected += u64::from(unexpected);
        self.counters.received += frames.len() as u64;
        let batch = match refill {
            Some(r) => Batch::received(umem.clone(), frames, Arc::downgrade(r)),
            None => Batch::from_owned(umem.clone(), frames),
        };
        (batch, filled, wake)
    }
}

/// Where [`Socket::complete`] peeks completion addresses to on a UMEM with tx metadata (the
/// others go through [`FrameTable::take_completions`]): each one's frame moves `Tx` → `Free`;
/// anything else is left alone (and counted as unexpected by the caller). The raw completion
/// timestamp of each frame sent with a request goes to `stamps`.
struct Completed<'a> {
    table: &'a mut FrameTable,
    pool: PoolId,
    addressing: Addressing,
    done: u32,
    umem: &'a Umem,
    stamps: &'a mut Vec<(u32, u64)>,
}

impl Extend<u64> for Completed<'_> {
    #[inline]
    fn extend<I: IntoIterator<Item = u64>>(&mut self, addrs: I) {
        let umem = self.umem;
        for addr in addrs {
            let Some(d) = self.addressing.decode(addr) else { continue };
            if !self.table.take_completed(d.index, self.pool) {
                continue;
            }
            self.done += 1;
            if self.table.take_tx_stamp(d.index)
                && let Some(ts) = umem.read_tx_stamp(d.index, d.offset)
            {
                // `take_completed` found the frame, so its index is below the frame count.
                self.stamps.push((d.index as u32, ts));
            }
        }
    }
}
