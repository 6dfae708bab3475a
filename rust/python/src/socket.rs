//! `Socket`: an AF_XDP socket bound to one queue, with the GIL released around its waits.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use afxdp::Interface;
use afxdp::socket::{BusyPoll, Socket, SocketConfig, Stats};
use afxdp::umem::{Batch, UmemConfig};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::batch::PyFrameBatch;
use crate::batches::{PyBatches, Source};
use crate::convert::{
    Float, Int, RecvArgs, Stop, deadline, end_of_slice, linger, time_left, timeout_arg, u32_arg,
    wait_slice, with_bytes,
};
use crate::errors::{Error, Result};
use crate::program::PyProgram;
use crate::stats::PyStats;
use crate::sync::lock;
use crate::umem::PyUmem;

/// An AF_XDP socket bound to one queue of an interface.
///
/// Socket(ifname, queue=0, umem=None, program=None, *, rx_size=2048, tx_size=2048,
/// fill_size=None, comp_size=None, zerocopy=None, need_wakeup=True, autofill=True,
/// busy_poll_usecs=None, busy_poll_budget=None, multi_buffer=False)
///
/// ifname: the interface, in the calling thread's network namespace. queue: the queue to bind.
/// umem: the frames to use (None: a private Umem of 4096 frames of 4096 bytes). A Umem may back
/// several sockets (XDP_SHARED_UMEM), on other queues, other interfaces or the same queue: a
/// batch received on one can be sent on any other without a copy. Each (interface, queue) has
/// its own fill and completion rings, shared by the Umem's sockets bound there (so their
/// fill_size/comp_size apply only to the first). Sharing sockets inherit zerocopy and
/// need_wakeup from the Umem's first socket; asking for another mode raises ValueError. program: a
/// Program to register with at once (None: registered nowhere, so the socket can transmit but
/// receives nothing until a Program registers it). rx_size, tx_size: ring entries (a power of
/// two; 0: no such ring). fill_size: fill ring entries (None: twice rx_size, at least 64).
/// comp_size: completion ring entries (None: tx_size, at least 64). zerocopy: True forces
/// zero-copy, False copy mode, None the best the driver offers. need_wakeup: bind with
/// XDP_USE_NEED_WAKEUP. autofill: keep the fill ring topped up on every recv(), and put a
/// received batch's frames straight back on it when the batch is released.
/// busy_poll_usecs: turn on preferred busy polling (SO_PREFER_BUSY_POLL, SO_BUSY_POLL with this
/// many microseconds, SO_BUSY_POLL_BUDGET); every recv() then polls the queue itself with a
/// recvfrom and every send()/complete() with a sendto, and a waiting recv()/poll() spins that
/// long before sleeping. Needs CAP_NET_ADMIN; see afxdp.napi for the interface settings that go
/// with it. busy_poll_budget: packets per poll (None: 64); only with busy_poll_usecs.
/// multi_buffer: bind with XDP_USE_SG: a packet longer than a frame arrives as a chain of
/// frames (`Frame.more`, `FrameBatch.packets()`), and chains can be sent (`send_packets`, or
/// frames with `more` set); needs a frags-aware program (the built-in one is). Sharing sockets
/// inherit it from the Umem's first socket.
#[pyclass(name = "Socket", module = "afxdp._native", frozen)]
pub struct PySocket {
    sock: Mutex<Option<Socket>>,
    umem: Py<PyUmem>,
    program: Mutex<Option<Py<PyProgram>>>,
    ifname: String,
    queue: u32,
    /// The busy-poll settings, fixed at creation (read without the socket's lock).
    busy_poll: Option<BusyPoll>,
}

/// poll(2) events, as in the `select` module (the core's).
pub use afxdp::socket::{POLLIN, POLLOUT};

impl PySocket {
    /// Runs `f` on the open socket, under its lock: `f` must not run Python code. In a forked
    /// child it raises RuntimeError instead (the socket, its rings and frames are the
    /// parent's), also for what the core reads without a check (`in_flight`, the tx
    /// timestamps, `fill_target`).
    fn with<R>(&self, f: impl FnOnce(&mut Socket) -> afxdp::Result<R>) -> Result<R> {
        let mut g = lock(&self.sock);
        let s = g.as_mut().ok_or_else(|| Error::closed("Socket"))?;
        s.check_fork()?;
        Ok(f(s)?)
    }

    /// Takes up to `max` received frames without waiting (an empty batch when there are none;
    /// a closed socket is an error).
    pub fn recv_now(&self, max: u32) -> Result<Batch> {
        self.with(|s| s.recv(max))
    }

    /// Takes up to `max` received frames without waiting if at least `need` are on the rx
    /// ring; None, taking nothing, when fewer are.
    pub fn recv_if(&self, max: u32, need: u32) -> Result<Option<Batch>> {
        self.with(|s| match need == 0 || s.rx_available()? >= need {
            true => s.recv(max).map(Some),
            false => Ok(None),
        })
    }

    /// `recv(max, timeout, coalesce=...)` with checked arguments (also `Socket.batches()`'s
    /// step). With `coalesce` (and a timeout other than 0), fewer than `max` frames ready
    /// first let frames gather for `coalesce` (see [`linger`]).
    pub(crate) fn recv_batch(
        &self,
        py: Python<'_>,
        args: RecvArgs,
        stop: Stop<'_>,
    ) -> Result<Batch> {
        let RecvArgs { max, mut timeout, .. } = args;
        // `timeout` becomes what is left of it after lingering (the clock is read only then).
        if let Some(span) = args.coalescing() {
            if let Some(batch) = self.recv_if(max, max)? {
                return Ok(batch);
            }
            let deadline = deadline(timeout);
            linger(py, span, deadline, stop, "Socket", || self.closed())?;
            timeout = time_left(deadline);
        }
        let batch = self.recv_now(max)?;
        if !batch.is_empty() || timeout == Some(Duration::ZERO) || stop.is_set() {
            return Ok(batch);
        }
        drop(batch);
        self.wait(py, POLLIN, timeout, stop)?;
        self.recv_now(max)
    }

    /// Kernel and library counters of the open socket, as the core has them.
    pub fn core_stats(&self) -> Result<Stats> {
        self.with(|s| s.stats())
    }

    /// Whether the socket has an rx ring (and is open).
    pub fn has_rx(&self) -> bool {
        lock(&self.sock).as_ref().is_some_and(Socket::has_rx)
    }

    /// The queue, fd and interface index of the open socket.
    pub fn queue_fd_ifindex(&self) -> Result<(u32, i32, u32)> {
        self.with(|s| Ok((s.queue(), s.fd(), s.ifindex())))
    }

    /// Tells the socket's Umem that a program writing receive metadata delivers to it.
    pub fn expect_rx_meta(&self) -> Result<()> {
        self.with(|s| {
            s.umem().expect_rx_meta();
            Ok(())
        })
    }

    /// The interface name given at creation.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// Remembers the program the socket is registered with (which it keeps alive).
    pub fn set_program(&self, program: Py<PyProgram>) {
        let old = lock(&self.program).replace(program);
        drop(old);
    }

    /// Waits up to `timeout` (None: forever) for `events`, without the GIL and without holding
    /// the socket; returns whether they are ready. Checks for signals and for `close()` from
    /// another thread between slices: a close makes it raise the closed error within a slice,
    /// and the fd (kept open by the poll handle meanwhile) closes when it returns.
    /// With busy polling, each slice first spins for `busy_poll_usecs` (polling the queue
    /// itself), then sleeps in poll(2) for the rest of the slice. A set `stop` ends it as the
    /// timeout would, after the slice.
    fn wait(
        &self,
        py: Python<'_>,
        events: i16,
        timeout: Option<Duration>,
        stop: Stop<'_>,
    ) -> Result<i16> {
        let handle = self.with(|s| s.poll_handle())?;
        let deadline = deadline(timeout);
        let spin = self.busy_poll.map(|b| Duration::from_micros(b.usecs.into()));
        loop {
            let slice = wait_slice(deadline);
            let h = handle.clone();
            let waited = py.detach(move || match spin {
                Some(spin) => match h.spin(events, spin.min(slice))? {
                    0 => h.poll(events, slice.saturating_sub(spin)),
                    ready => Ok(ready),
                },
                None => h.poll(events, slice),
            });
            let failed = match waited {
                Ok(0) => None,
                Ok(revents) => return Ok(revents),
                Err(e) => Some(e),
            };
            end_of_slice(py, failed, "poll(AF_XDP)", "Socket", || self.closed())?;
            if stop.is_set() || deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(0);
            }
        }
    }
}

/// Removes the XSKMAP entries of `sock` (closing, or collected) from `program`, the one it
/// was registered with (see [`PyProgram::forget_socket`]).
fn forget_entries(sock: Option<&Socket>, program: Option<&Py<PyProgram>>) {
    if let (Some(s), Some(p)) = (sock, program) {
        p.get().forget_socket(s.fd());
    }
}

impl Drop for PySocket {
    /// A socket collected without `close()` leaves no XSKMAP entry behind either.
    fn drop(&mut self) {
        let sock = self.sock.get_mut().unwrap_or_else(PoisonError::into_inner);
        let program = self.program.get_mut().unwrap_or_else(PoisonError::into_inner);
        forget_entries(sock.as_ref(), program.as_ref());
    }
}

#[pymethods]
impl PySocket {
    #[new]
    #[pyo3(signature = (ifname, queue = Int::Val(0), umem = None, program = None, *, rx_size = Int::Val(2048), tx_size = Int::Val(2048),
                        fill_size = None, comp_size = None, zerocopy = None, need_wakeup = true, autofill = true,
                        busy_poll_usecs = None, busy_poll_budget = None, multi_buffer = false))]
    #[pyo3(
        text_signature = "(ifname, queue=0, umem=None, program=None, *, rx_size=2048, tx_size=2048, fill_size=None, comp_size=None, zerocopy=None, need_wakeup=True, autofill=True, busy_poll_usecs=None, busy_poll_budget=None, multi_buffer=False)"
    )]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        ifname: String,
        queue: Int,
        umem: Option<Py<PyUmem>>,
        program: Option<Py<PyProgram>>,
        rx_size: Int,
        tx_size: Int,
        fill_size: Option<Int>,
        comp_size: Option<Int>,
        zerocopy: Option<bool>,
        need_wakeup: bool,
        autofill: bool,
        busy_poll_usecs: Option<Int>,
        busy_poll_budget: Option<Int>,
        multi_buffer: bool,
    ) -> Result<Self> {
        let queue = u32_arg("queue", queue)?;
        let rx_size = u32_arg("rx_size", rx_size)?;
        let tx_size = u32_arg("tx_size", tx_size)?;
        let fill_size = fill_size.map(|n| u32_arg("fill_size", n)).transpose()?;
        let comp_size = comp_size.map(|n| u32_arg("comp_size", n)).transpose()?;
        let busy_poll = busy_poll_arg(busy_poll_usecs, busy_poll_budget)?;
        let cfg = SocketConfig {
            zerocopy,
            need_wakeup,
            autofill,
            busy_poll,
            multi_buffer,
            ..SocketConfig::with_sizes(rx_size, tx_size, fill_size, comp_size)
        };
        let umem = match umem {
            Some(u) => u,
            None => Py::new(py, PyUmem::create(UmemConfig::default())?)?,
        };
        let core_umem = umem.get().get()?;
        let name = ifname.clone();
        let sock =
            py.detach(move || Socket::open(&Interface::by_name(&name)?, queue, core_umem, cfg))?;
        let me = PySocket {
            sock: Mutex::new(Some(sock)),
            umem,
            program: Mutex::new(None),
            ifname,
            queue,
            busy_poll,
        };
        if let Some(p) = program {
            // On failure `me` is dropped: the socket closes, nothing stays registered.
            PyProgram::register_socket(p.bind(py), &me, None)?;
        }
        Ok(me)
    }

    /// Hands up to `max` free frames (default: all that fit) to the kernel's fill ring.
    #[pyo3(signature = (max = None))]
    pub(crate) fn fill(&self, max: Option<Int>) -> Result<u32> {
        let max = match max {
            Some(m) => u32_arg("max", m)?,
            None => u32::MAX,
        };
        self.with(|s| s.fill(max))
    }

    /// Receives up to `max` frames. With `timeout` > 0 waits (without the GIL) up to that many
    /// seconds for the first frame; None (or inf) waits until one arrives. Returns a possibly
    /// empty batch. A negative or NaN timeout raises ValueError.
    /// `close()` from another thread ends the wait within 0.1 s with ValueError (closed).
    /// `coalesce` (seconds, at most 1; None or 0: off) trades latency for fewer wakeups: when
    /// fewer than `max` frames are ready, the call first sleeps that long (without the GIL,
    /// not woken by arriving frames, never past the timeout) so that frames gather, then takes
    /// what is ready, and only with nothing ready waits for the first frame as above. Under
    /// steady traffic one wakeup then takes about rate × coalesce frames instead of a few.
    /// With timeout 0 it never sleeps.
    #[pyo3(signature = (max = Int::Val(64), timeout = Some(Float::Val(0.0)), *, coalesce = None), text_signature = "($self, max=64, timeout=0.0, *, coalesce=None)")]
    fn recv(
        &self,
        py: Python<'_>,
        max: Int,
        timeout: Option<Float>,
        coalesce: Option<Float>,
    ) -> Result<PyFrameBatch> {
        let batch = self.recv_batch(py, RecvArgs::new(max, timeout, coalesce)?, Stop::NEVER)?;
        Ok(PyFrameBatch::received(batch, Some(self.queue)))
    }

    /// Iterates over received batches, one call per wakeup: each step gives back the frames of
    /// the batch it handed out before (unless you sent or released it, or still hold a view of
    /// one of its frames: then they go back when the last view goes) and receives up to `max`
    /// frames, waiting (without the GIL) only when none are ready. The iteration ends when
    /// `timeout` seconds pass with nothing received (None or inf: never; 0: when the rx ring
    /// is empty), when the socket is closed (also from another thread, within 0.1 s), or on
    /// the iterator's `close()`. The steps hand out one FrameBatch object, refilled: a
    /// reference kept past its step sees the next batch, and a Frame or Packet taken from an
    /// earlier batch raises ValueError (its frames are gone). A batch you keep a view of
    /// stays yours, and the next step hands out a new object. `coalesce` is each step's, as
    /// in `recv()`.
    #[pyo3(signature = (max = Int::Val(64), timeout = None, *, coalesce = None), text_signature = "($self, max=64, timeout=None, *, coalesce=None)")]
    fn batches(
        slf: Py<Self>,
        max: Int,
        timeout: Option<Float>,
        coalesce: Option<Float>,
    ) -> Result<PyBatches> {
        Ok(PyBatches::new(Source::Socket(slf), RecvArgs::new(max, timeout, coalesce)?))
    }

    /// Takes up to `n` free frames to write and send (each of length 0 until written).
    fn alloc(&self, n: Int) -> Result<PyFrameBatch> {
        let n = u32_arg("n", n)?;
        Ok(PyFrameBatch::new(self.with(|s| s.alloc(n as usize))?))
    }

    /// Queues the batch's frames for transmission and wakes the kernel; returns how many were
    /// queued. When all were queued the batch is closed. If the tx ring had room for only some,
    /// those leave the batch and the rest stay in it, re-indexed from 0: send it again later
    /// (after `complete()`), or release it.
    pub(crate) fn send(&self, batch: &PyFrameBatch) -> Result<u32> {
        batch.send_with(|b| self.with(|s| s.send(b)))
    }

    /// Copies each packet (bytes-like) into free frames and sends them, in order; returns how
    /// many packets were queued (fewer when the tx ring or the free frames run short: send the
    /// rest later, after `complete()`). On a multi-buffer socket a packet longer than a frame
    /// takes as many chained frames as it needs (at most `max_frags`); otherwise every packet
    /// must fit one frame. Every packet is checked first: an empty or too long one raises
    /// ValueError naming it, and nothing is sent.
    pub(crate) fn send_packets(&self, packets: &Bound<'_, PyAny>) -> Result<u32> {
        // Borrow bytes objects as they are; copy other bytes-likes. Done before the socket is
        // locked (iterating and reading buffers may run Python code).
        let mut owned: Vec<Vec<u8>> = Vec::new();
        let mut items: Vec<Bound<'_, PyAny>> = Vec::new();
        for item in packets.try_iter()? {
            let item = item?;
            if item.cast::<PyBytes>().is_err() {
                owned.push(with_bytes(&item, |b| Ok(b.to_vec()))?);
            }
            items.push(item);
        }
        let mut copies = owned.iter();
        let slices: Vec<&[u8]> = items
            .iter()
            .map(|item| match item.cast::<PyBytes>() {
                Ok(b) => b.as_bytes(),
                Err(_) => copies.next().map_or(&[][..], Vec::as_slice),
            })
            .collect();
        self.with(|s| s.send_packets(&slices))
    }

    /// Reclaims transmitted frames from the completion ring; returns how many.
    #[pyo3(signature = (max = None))]
    pub(crate) fn complete(&self, max: Option<Int>) -> Result<u32> {
        let max = match max {
            Some(m) => u32_arg("max", m)?,
            None => u32::MAX,
        };
        self.with(|s| s.complete(max))
    }

    /// The completion timestamps `complete()` collected since the last call, as a list of
    /// `(frame index, ns since the epoch)` in completion order: one per frame sent with
    /// `Frame.request_tx_timestamp()` (a Umem with `tx_metadata=True`). The time is the
    /// clock of `time.time_ns()`; in copy mode it is a software timestamp taken when the
    /// kernel freed the packet (on veth: when the peer took it). Frames are reused once
    /// completed, so note which packet each index carried when you send.
    pub(crate) fn tx_timestamps(&self) -> Result<Vec<(u32, u64)>> {
        self.with(|s| {
            Ok(s.take_tx_timestamps().into_iter().map(|t| (t.index, t.timestamp)).collect())
        })
    }

    /// Gives a batch's frames back (same as `batch.release()`).
    fn release(&self, batch: &PyFrameBatch) -> Result<()> {
        let foreign = lock(&batch.batch)
            .as_ref()
            .is_some_and(|b| lock(&self.sock).as_ref().is_some_and(|s| !b.umem().same(s.umem())));
        if foreign {
            return Err(Error::value(
                "the batch belongs to another UMEM than this socket's; release it with batch.release() or the socket it came from",
            ));
        }
        batch.release_now()
    }

    /// Wakes the kernel to transmit frames still waiting on the tx ring.
    fn kick(&self) -> Result<()> {
        self.with(|s| s.kick_tx())
    }

    /// Waits up to `timeout` seconds (None or inf: forever; negative or NaN: ValueError) for
    /// `events` (select.POLLIN/POLLOUT); returns the ready mask, 0 on timeout. `close()` from
    /// another thread ends the wait within 0.1 s with ValueError (closed).
    #[pyo3(signature = (timeout = Some(Float::Val(0.0)), events = Int::Val(POLLIN.into())), text_signature = "($self, timeout=0.0, events=...)")]
    fn poll(&self, py: Python<'_>, timeout: Option<Float>, events: Int) -> Result<i16> {
        let events = events.get("events")?;
        let events = i16::try_from(events).map_err(|_| {
            Error::value(format!("invalid events {events:#x}: poll(2) events are 16 bits"))
        })?;
        let timeout = timeout_arg(Float::get(timeout, "timeout")?)?;
        self.wait(py, events, timeout, Stop::NEVER)
    }

    /// Kernel and library counters.
    fn stats(&self) -> Result<PyStats> {
        self.with(|s| s.stats()).map(PyStats::from)
    }

    /// Frames sent and not completed yet.
    #[getter]
    pub(crate) fn in_flight(&self) -> Result<u32> {
        self.with(|s| Ok(s.in_flight()))
    }

    /// Frames waiting on the tx ring for the kernel.
    #[getter]
    fn tx_pending(&self) -> Result<u32> {
        self.with(|s| s.tx_pending())
    }

    /// Frames waiting on the rx ring.
    #[getter]
    pub(crate) fn rx_available(&self) -> Result<u32> {
        self.with(|s| s.rx_available())
    }

    /// The file descriptor, for select/selectors/asyncio; -1 once closed.
    fn fileno(&self) -> i32 {
        lock(&self.sock).as_ref().map_or(-1, Socket::fd)
    }

    /// Closes the socket (the kernel also drops it from the XSKMAP). Idempotent. Batches already
    /// received stay usable; their frames go back to the pool when released. The kernel waits
    /// for an RCU grace period (~10 ms) on close; other Python threads run meanwhile. A thread
    /// waiting in `recv`/`poll` raises ValueError (closed) within 0.1 s, and the fd closes then.
    pub(crate) fn close(&self, py: Python<'_>) {
        let sock = lock(&self.sock).take();
        let program = lock(&self.program).take();
        forget_entries(sock.as_ref(), program.as_ref());
        if let Some(sock) = sock {
            py.detach(move || drop(sock));
        }
        drop(program);
    }

    #[getter]
    pub(crate) fn closed(&self) -> bool {
        lock(&self.sock).is_none()
    }

    #[getter(ifname)]
    fn get_ifname(&self) -> &str {
        &self.ifname
    }

    #[getter]
    pub(crate) fn queue(&self) -> u32 {
        self.queue
    }

    /// Whether the socket was bound with XDP_USE_SG (`multi_buffer=True`).
    #[getter]
    fn multi_buffer(&self) -> Result<bool> {
        self.with(|s| Ok(s.multi_buffer()))
    }

    /// The most frames one packet may span when sent: 1 without multi_buffer; with it, in copy
    /// mode, the kernel's MAX_SKB_FRAGS + 1 (18 by default), at most the tx ring's and the
    /// completion ring's sizes. The kernel would drop a longer chain whole (tx_invalid_descs),
    /// or never complete it, so `send` refuses it.
    #[getter]
    fn max_frags(&self) -> Result<u32> {
        self.with(|s| Ok(s.max_frags()))
    }

    /// Whether the kernel runs the socket in zero-copy mode (False: copy mode).
    #[getter]
    fn zerocopy(&self) -> Result<bool> {
        self.with(|s| Ok(s.zerocopy()))
    }

    /// The Umem the socket uses.
    #[getter]
    fn umem(&self, py: Python<'_>) -> Py<PyUmem> {
        self.umem.clone_ref(py)
    }

    /// The Program this socket is registered with (at creation or by `Program.register`), or
    /// None (never registered, unregistered, or the program detached): then it receives
    /// nothing until a program registers it.
    #[getter]
    fn program(&self, py: Python<'_>) -> Option<Py<PyProgram>> {
        let fd = lock(&self.sock).as_ref().map(Socket::fd)?;
        lock(&self.program).as_ref().filter(|p| p.get().has_entry(fd)).map(|p| p.clone_ref(py))
    }

    /// Whether a live Program has this socket in its XSKMAP (it receives only then).
    #[getter]
    fn registered(&self) -> Result<bool> {
        let fd = self.with(|s| Ok(s.fd()))?;
        Ok(lock(&self.program).as_ref().is_some_and(|p| p.get().has_entry(fd)))
    }

    /// How many frames autofill keeps on the fill ring (of the socket's (interface, queue):
    /// the largest target of the Umem's sockets bound there).
    #[getter]
    fn fill_target(&self) -> Result<u32> {
        self.with(|s| Ok(s.fill_target()))
    }

    /// The busy-poll settings as (busy_poll_usecs, busy_poll_budget), or None when the socket
    /// leaves its queue to softirq processing.
    #[getter]
    fn busy_poll(&self) -> Option<(u32, u16)> {
        self.busy_poll.map(|b| (b.usecs, b.budget))
    }

    /// The NAPI instance the socket's packets arrive through (SO_INCOMING_NAPI_ID), the one
    /// busy polling drives: 0 before the first packet, and in generic mode (no NAPI).
    #[getter]
    fn napi_id(&self) -> Result<u32> {
        self.with(|s| s.napi_id())
    }

    /// Whether another socket of the same Umem is bound to this (interface, queue), sharing
    /// its fill and completion rings.
    #[getter]
    fn shares_fill_ring(&self) -> Result<bool> {
        self.with(|s| Ok(s.shares_fill_ring()))
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Leaving the block closes it; the exception, if any, propagates (returns None).
    #[pyo3(signature = (exc_type, exc_value, traceback, /))]
    #[allow(unused_variables)]
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<Bound<'_, PyAny>>,
        exc_value: Option<Bound<'_, PyAny>>,
        traceback: Option<Bound<'_, PyAny>>,
    ) {
        self.close(py);
    }

    fn __repr__(&self) -> String {
        let g = lock(&self.sock);
        match g.as_ref() {
            None => {
                format!("<afxdp.Socket ifname={:?} queue={} [closed]>", self.ifname, self.queue)
            }
            Some(s) => {
                let mode = match (s.zerocopy(), s.multi_buffer()) {
                    (true, false) => "zerocopy",
                    (false, false) => "copy",
                    (true, true) => "zerocopy multi_buffer",
                    (false, true) => "copy multi_buffer",
                };
                let registered =
                    lock(&self.program).as_ref().is_some_and(|p| p.get().has_entry(s.fd()));
                let reg = if !s.has_rx() {
                    "tx only"
                } else if registered {
                    "registered"
                } else {
                    "unregistered: receives nothing until a Program registers it"
                };
                let busy = match self.busy_poll {
                    Some(b) => format!(" busy_poll={}us/{}", b.usecs, b.budget),
                    None => String::new(),
                };
                format!(
                    "<afxdp.Socket ifname={:?} queue={} fd={} mode={mode}{busy} {reg}>",
                    self.ifname,
                    self.queue,
                    s.fd()
                )
            }
        }
    }
}

/// The `busy_poll_usecs`/`busy_poll_budget` arguments: None for no busy polling; a budget
/// alone is refused (it would change nothing).
fn busy_poll_arg(usecs: Option<Int>, budget: Option<Int>) -> Result<Option<BusyPoll>> {
    let ranged = |name: &str, value: Option<Int>, max: i64| -> Result<Option<i64>> {
        match value.map(|v| v.get(name)).transpose()? {
            Some(v) if !(1..=max).contains(&v) => Err(Error::value(format!(
                "invalid {name} {v}: must be from 1 to {max} (None: no busy polling)"
            ))),
            v => Ok(v),
        }
    };
    let usecs = ranged("busy_poll_usecs", usecs, i32::MAX.into())?;
    let budget = ranged("busy_poll_budget", budget, u16::MAX.into())?;
    match (usecs, budget) {
        (None, None) => Ok(None),
        (None, Some(b)) => Err(Error::value(format!(
            "invalid busy_poll_budget {b}: it only applies with busy_poll_usecs (busy polling is off)"
        ))),
        // The ranges were checked above, so the conversions are exact.
        (Some(usecs), budget) => Ok(Some(BusyPoll {
            usecs: usecs as u32,
            budget: budget.map_or(BusyPoll::DEFAULT_BUDGET, |b| b as u16),
        })),
    }
}
