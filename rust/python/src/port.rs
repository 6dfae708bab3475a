//! `Port`: a socket on every rx queue of an interface over one Umem, received from fairly and
//! waited on with one epoll descriptor, the GIL released.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use afxdp::Interface;
use afxdp::port::{
    PortWaiter, RoundRobin, port_fill_size, port_queues, port_umem_config, sum_stats,
};
use afxdp::umem::{Batch, Umem};
use pyo3::exceptions::PyRuntimeWarning;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::batch::PyFrameBatch;
use crate::batches::{PyBatches, Source};
use crate::convert::{
    Float, Int, RecvArgs, Stop, deadline, end_of_slice, linger, u32_arg, wait_slice,
};
use crate::errors::{Error, Result};
use crate::program::PyProgram;
use crate::socket::PySocket;
use crate::stats::PyStats;
use crate::sync::lock;
use crate::umem::PyUmem;

/// Every rx queue of an interface (or the listed ones): one Socket per queue, all over one Umem,
/// the XDP program attached and every socket registered with it.
///
/// Port(ifname, queues=None, *, umem=None, program=None, rules=None, mode="auto",
/// **socket_options)
///
/// queues: the queues (None: every rx queue in use, `Interface.rx_queues`). umem: the frames of every socket (None: a
/// private Umem of 4096 frames of 4096 bytes per queue); unless `fill_size` is given, each
/// queue's fill ring gets an equal share of half of its frames. program: a Program on `ifname`
/// to register the sockets with (None: the Port attaches the built-in program, with `rules` and
/// `mode`, and detaches it on close). socket_options: the keyword options of `Socket` (rx_size,
/// tx_size, fill_size, comp_size, zerocopy, need_wakeup, autofill, busy_poll_usecs,
/// busy_poll_budget, multi_buffer), for every socket (rx_size=0 is a ValueError: a Port
/// receives). The sockets are registered once all are bound.
///
/// `recv()` returns a batch from one queue with frames, trying the queues in turn from the one
/// after the queue served last, so no queue starves; `batch.queue` says which, and `send(batch)`
/// sends it back out of that queue. `fileno()` is one descriptor (epoll) readable when any queue
/// has frames. A context manager: leaving the block closes every socket and detaches the program
/// the Port attached; `close()` wakes every thread waiting in `recv()`.
#[pyclass(name = "Port", module = "afxdp._native", frozen)]
pub struct PyPort {
    ifname: String,
    queues: Vec<u32>,
    sockets: Vec<Py<PySocket>>,
    umem: Py<PyUmem>,
    /// The region itself, which the sockets keep when the handle `umem` is closed (an empty
    /// batch is made of it); `None` once the Port is closed.
    region: Mutex<Option<Umem>>,
    program: Py<PyProgram>,
    /// Whether the Port attached `program` (and so detaches it on close).
    attached: bool,
    /// `None` once closed; waiting threads hold a clone until they return.
    waiter: Mutex<Option<Arc<PortWaiter>>>,
    next: RoundRobin,
    /// Per queue, the "no socket" count of the program already warned about.
    warned: Mutex<Vec<u64>>,
}

impl PyPort {
    fn waiter(&self) -> Result<Arc<PortWaiter>> {
        lock(&self.waiter).clone().ok_or_else(|| Error::closed("Port"))
    }

    fn position(&self, queue: u32) -> Option<usize> {
        self.queues.iter().position(|&q| q == queue)
    }

    /// Whether the Port is closed.
    pub(crate) fn is_closed(&self) -> bool {
        lock(&self.waiter).is_none()
    }

    /// `recv(max, timeout)` with checked arguments (also `Port.batches()`'s step).
    pub(crate) fn recv_batch(
        &self,
        py: Python<'_>,
        args: RecvArgs,
        stop: Stop<'_>,
    ) -> Result<(Batch, Option<u32>)> {
        let max = args.max;
        let deadline = deadline(args.timeout);
        let waiter = self.waiter()?;
        if max == 0 {
            // As a socket's: nothing to take, so nothing to wait for (the frames ready would
            // keep the wait waking).
            return Ok((self.empty()?, None));
        }
        if let Some(span) = args.coalescing() {
            if let Some(batch) = self.try_recv(max, max)? {
                return Ok(batch);
            }
            linger(py, span, deadline, stop, "Port", || waiter.is_closed())?;
        }
        loop {
            if let Some(batch) = self.try_recv(max, 0)? {
                return Ok(batch);
            }
            let slice = wait_slice(deadline);
            if slice.is_zero() || stop.is_set() {
                return Ok((self.empty()?, None));
            }
            let w = waiter.clone();
            let failed = py.detach(move || w.wait(slice)).err();
            end_of_slice(py, failed, "epoll_wait", "Port", || waiter.is_closed())?;
        }
    }

    /// An empty batch (of the region, not of the handle, which may be closed).
    fn empty(&self) -> Result<Batch> {
        lock(&self.region).as_ref().map(|u| u.alloc(0)).ok_or_else(|| Error::closed("Port"))
    }

    /// One batch from the first queue with frames, in round-robin order, if it has at least
    /// `need` on its rx ring; None when no queue has frames or that queue has fewer. (A queue
    /// short of `need` is not passed over for a fuller one: under a flood on another queue it
    /// would never be served.)
    fn try_recv(&self, max: u32, need: u32) -> Result<Option<(Batch, Option<u32>)>> {
        let n = self.sockets.len();
        for i in self.next.order(n) {
            let socket = self.sockets[i].get();
            // A socket closed on its own (port[q].close()) is skipped.
            if socket.closed() || !socket.has_rx() {
                continue;
            }
            if need > 0 {
                match socket.rx_available()? {
                    0 => continue,
                    ready if ready < need => return Ok(None),
                    _ => {}
                }
            }
            let batch = socket.recv_now(max)?;
            if !batch.is_empty() {
                self.next.served(i, n);
                return Ok(Some((batch, Some(self.queues[i]))));
            }
        }
        Ok(None)
    }

    /// Warns (RuntimeWarning) about every queue whose "no socket" counter grew since the last
    /// warning: packets the program meant for a socket went to the kernel stack there.
    fn warn_no_socket(&self, py: Python<'_>) -> Result<()> {
        // Only the built-in program counts them; a loaded one has no such counters.
        let Ok(counts) = self.program.get().no_socket_counts() else { return Ok(()) };
        let grown: Vec<(usize, u64)> = {
            let mut warned = lock(&self.warned);
            warned.resize(counts.len(), 0);
            let grown = counts
                .iter()
                .enumerate()
                .filter(|&(q, &n)| n > warned[q])
                .map(|(q, &n)| (q, n))
                .collect();
            warned.copy_from_slice(&counts);
            grown
        };
        let category = py.get_type::<PyRuntimeWarning>();
        for (queue, n) in grown {
            let msg = format!(
                "traffic on queue {queue} of {:?} has no socket: {n} packet(s) went to the kernel \
                 stack (open the Port on every queue, or register a socket there)",
                self.ifname
            );
            PyErr::warn(py, &category, &std::ffi::CString::new(msg).unwrap_or_default(), 1)?;
        }
        Ok(())
    }
}

#[pymethods]
impl PyPort {
    #[new]
    #[pyo3(signature = (ifname, queues = None, *, umem = None, program = None, rules = None, mode = "auto", **socket_options))]
    #[pyo3(
        text_signature = "(ifname, queues=None, *, umem=None, program=None, rules=None, mode='auto', **socket_options)"
    )]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        ifname: String,
        queues: Option<Vec<Int>>,
        umem: Option<Py<PyUmem>>,
        program: Option<Py<PyProgram>>,
        rules: Option<Bound<'_, PyAny>>,
        mode: &str,
        socket_options: Option<Bound<'_, PyDict>>,
    ) -> Result<Self> {
        let queues = queues
            .map(|qs| qs.into_iter().map(|q| u32_arg("queues", q)).collect::<Result<Vec<_>>>())
            .transpose()?;
        let options = match socket_options {
            Some(d) => d.copy()?,
            None => PyDict::new(py),
        };
        for taken in ["queue", "umem", "program"] {
            if options.contains(taken)? {
                return Err(Error::type_(format!(
                    "Port() got {taken}= among the socket options; it sets {taken} itself"
                )));
            }
        }
        if program.is_some() && (rules.is_some() || mode != "auto") {
            return Err(Error::value(
                "rules and mode are for the program the Port attaches; with program= given, \
                 set them on that program",
            ));
        }
        if let Some(rx_size) = options.get_item("rx_size")?
            && u32_arg("rx_size", rx_size.extract()?)? == 0
        {
            return Err(Error::value(
                "rx_size=0: a Port receives on its queues (for sockets that only transmit, \
                 open Socket(ifname, queue, rx_size=0) on each)",
            ));
        }
        let name = ifname.clone();
        let queues =
            py.detach(move || port_queues(&Interface::by_name(&name)?, queues.as_deref()))?;
        let umem = match umem {
            Some(u) => u,
            None => Py::new(py, PyUmem::create(port_umem_config(queues.len()))?)?,
        };
        let region = umem.get().get()?;
        if !options.contains("fill_size")? {
            // The Socket default (twice the rx ring, at least 64), cut to an equal share.
            let rx_size = match options.get_item("rx_size")? {
                Some(v) => u32_arg("rx_size", v.extract()?)?,
                None => 2048,
            };
            let frames = region.config().frame_count;
            let fill = port_fill_size(frames, queues.len(), rx_size.saturating_mul(2).max(64))?;
            options.set_item("fill_size", fill)?;
        }
        let (program, attached) = match program {
            Some(p) => (p, false),
            None => {
                let kwargs = PyDict::new(py);
                kwargs.set_item("mode", mode)?;
                kwargs.set_item("rules", rules)?;
                let p =
                    py.get_type::<PyProgram>().call_method("attach", (&ifname,), Some(&kwargs))?;
                (p.cast_into::<PyProgram>().map_err(PyErr::from)?.unbind(), true)
            }
        };
        options.set_item("umem", umem.clone_ref(py))?;
        let mut sockets: Vec<Py<PySocket>> = Vec::with_capacity(queues.len());
        let mut fds = Vec::with_capacity(queues.len());
        let opened = (|| -> Result<()> {
            for &queue in &queues {
                let s = py.get_type::<PySocket>().call((&ifname, queue), Some(&options))?;
                let s = s.cast_into::<PySocket>().map_err(PyErr::from)?.unbind();
                fds.push(s.get().queue_fd_ifindex()?.1);
                sockets.push(s);
            }
            // Registered once every queue is bound: a Port that fails to bind one (a queue in
            // use) has replaced no socket registered there.
            for s in &sockets {
                PyProgram::register_socket(program.bind(py), s.get(), None)?;
            }
            Ok(())
        })();
        let waiter = opened.and_then(|()| Ok(PortWaiter::new(fds)?));
        let waiter = match waiter {
            Ok(w) => w,
            Err(e) => {
                // Sharing sockets before the Umem's owner, then the program the Port attached.
                for s in sockets.iter().rev() {
                    s.get().close(py);
                }
                if attached {
                    let _ = program.get().detach();
                }
                return Err(e);
            }
        };
        let warned = Mutex::new(Vec::new());
        let port = PyPort {
            ifname,
            queues,
            sockets,
            umem,
            region: Mutex::new(Some(region)),
            program,
            attached,
            waiter: Mutex::new(Some(Arc::new(waiter))),
            next: RoundRobin::default(),
            warned,
        };
        // Traffic counted before the Port existed is not news.
        if let Ok(counts) = port.program.get().no_socket_counts() {
            *lock(&port.warned) = counts;
        }
        Ok(port)
    }

    /// Receives up to `max` frames from one queue with frames: the queues are tried in turn,
    /// starting after the one served last, so a flooded queue cannot starve the others.
    /// `batch.queue` says which. With `timeout` > 0 waits (without the GIL, on every queue at
    /// once) up to that many seconds for a frame; None (or inf) waits until one arrives.
    /// Returns a possibly empty batch (whose `queue` is None). `close()` from another thread
    /// ends the wait within 0.1 s with ValueError (closed). `coalesce` (seconds, at most 1) is
    /// as in `Socket.recv`: when no queue has `max` frames ready, the Port first lets frames
    /// gather for that long, then takes from the next queue with any.
    #[pyo3(signature = (max = Int::Val(64), timeout = Some(Float::Val(0.0)), *, coalesce = None), text_signature = "($self, max=64, timeout=0.0, *, coalesce=None)")]
    fn recv(
        &self,
        py: Python<'_>,
        max: Int,
        timeout: Option<Float>,
        coalesce: Option<Float>,
    ) -> Result<PyFrameBatch> {
        let (batch, queue) =
            self.recv_batch(py, RecvArgs::new(max, timeout, coalesce)?, Stop::NEVER)?;
        Ok(PyFrameBatch::received(batch, queue))
    }

    /// Iterates over received batches from every queue, one call per wakeup, as
    /// `Socket.batches()` does: each step gives back the frames of the batch it handed out
    /// before (unless you sent or released it, or still hold a view of one of its frames) and
    /// receives up to `max` frames from the next queue with frames (round robin, `batch.queue`
    /// says which), waiting (without the GIL, on every queue at once) only when none has any.
    /// The iteration ends when `timeout` seconds pass with nothing received (None or inf:
    /// never; 0: when no queue has frames), when the Port is closed (also from another thread,
    /// within 0.1 s), or on the iterator's `close()`. As with `Socket.batches()`, the steps
    /// hand out one FrameBatch object, refilled (its `queue` follows each batch), and
    /// `coalesce` is each step's, as in `Port.recv`.
    #[pyo3(signature = (max = Int::Val(64), timeout = None, *, coalesce = None), text_signature = "($self, max=64, timeout=None, *, coalesce=None)")]
    fn batches(
        slf: Py<Self>,
        max: Int,
        timeout: Option<Float>,
        coalesce: Option<Float>,
    ) -> Result<PyBatches> {
        Ok(PyBatches::new(Source::Port(slf), RecvArgs::new(max, timeout, coalesce)?))
    }

    /// Sends a received batch out of the queue it came from (`batch.queue`); returns how many
    /// frames were queued (see `Socket.send`). A batch from `alloc()` has no queue: send it
    /// with `port[q].send(batch)`.
    fn send(&self, batch: &PyFrameBatch) -> Result<u32> {
        self.waiter()?;
        let Some(queue) = batch.queue() else {
            return Err(Error::value(
                "this batch has no queue (it was allocated, not received): send it with \
                 port[queue].send(batch)",
            ));
        };
        let i = self.position(queue).ok_or_else(|| {
            Error::value(format!(
                "the batch came from queue {queue}, which is not one of this Port's queues {:?}",
                self.queues
            ))
        })?;
        self.sockets[i].get().send(batch)
    }

    /// Reclaims transmitted frames on every queue; returns how many.
    fn complete(&self) -> Result<u32> {
        self.waiter()?;
        let mut n = 0;
        for s in self.sockets.iter().map(Py::get).filter(|s| !s.closed()) {
            n += s.complete(None)?;
        }
        Ok(n)
    }

    /// The completion timestamps `complete()` collected on every queue since the last call
    /// (`Socket.tx_timestamps()` of each), as `(frame index, ns since the epoch)` ordered by
    /// time: frames sent with `Frame.request_tx_timestamp()` on a Umem with
    /// `tx_metadata=True`.
    fn tx_timestamps(&self) -> Result<Vec<(u32, u64)>> {
        self.waiter()?;
        let mut all = Vec::new();
        for s in self.sockets.iter().map(Py::get).filter(|s| !s.closed()) {
            all.extend(s.tx_timestamps()?);
        }
        all.sort_by_key(|&(_, ns)| ns);
        Ok(all)
    }

    /// Frames sent on any queue and not completed yet.
    #[getter]
    fn in_flight(&self) -> Result<u32> {
        self.waiter()?;
        let mut n = 0;
        for s in self.sockets.iter().map(Py::get).filter(|s| !s.closed()) {
            n += s.in_flight()?;
        }
        Ok(n)
    }

    /// Hands free frames to every queue's fill ring; returns how many.
    fn fill(&self) -> Result<u32> {
        self.waiter()?;
        let mut n = 0;
        for s in self.sockets.iter().map(Py::get).filter(|s| !s.closed()) {
            n += s.fill(None)?;
        }
        Ok(n)
    }

    /// The counters summed over the queues, or with `per_queue=True` a dict queue -> Stats.
    /// Warns (RuntimeWarning) when the built-in program saw traffic on a queue with no socket
    /// registered since the last warning ("traffic on queue 3 has no socket").
    #[pyo3(signature = (per_queue = false))]
    fn stats(&self, py: Python<'_>, per_queue: bool) -> Result<Py<PyAny>> {
        self.waiter()?;
        let mut each = BTreeMap::new();
        for (&queue, s) in self.queues.iter().zip(&self.sockets) {
            let s = s.get();
            if !s.closed() {
                each.insert(queue, s.core_stats()?);
            }
        }
        self.warn_no_socket(py)?;
        if per_queue {
            let dict = PyDict::new(py);
            for (queue, stats) in each {
                dict.set_item(queue, PyStats::from(stats))?;
            }
            return Ok(dict.into_any().unbind());
        }
        Ok(Py::new(py, PyStats::from(sum_stats(each.values())))?.into_any())
    }

    /// The sockets, one per queue, in the order of `queues` (to hand one to each thread).
    #[getter]
    fn sockets(&self, py: Python<'_>) -> Result<Py<PyList>> {
        Ok(PyList::new(py, self.sockets.iter().map(|s| s.clone_ref(py)))?.unbind())
    }

    /// The queues, in the order of `sockets`.
    #[getter]
    fn queues(&self) -> Vec<u32> {
        self.queues.clone()
    }

    /// The socket of queue `queue`; KeyError when the Port has none there.
    fn __getitem__(&self, py: Python<'_>, queue: Int) -> Result<Py<PySocket>> {
        let queue = queue.get("queue")?;
        let i = u32::try_from(queue).ok().and_then(|q| self.position(q)).ok_or_else(|| {
            Error::key(format!("queue {queue}: the Port has queues {:?}", self.queues))
        })?;
        Ok(self.sockets[i].clone_ref(py))
    }

    fn __len__(&self) -> usize {
        self.queues.len()
    }

    /// The Umem behind every socket.
    #[getter]
    fn umem(&self, py: Python<'_>) -> Py<PyUmem> {
        self.umem.clone_ref(py)
    }

    /// The Program the sockets are registered with.
    #[getter]
    fn program(&self, py: Python<'_>) -> Py<PyProgram> {
        self.program.clone_ref(py)
    }

    #[getter]
    fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The epoll descriptor, readable when any queue has received frames (for select,
    /// selectors and asyncio); -1 once closed.
    fn fileno(&self) -> i32 {
        lock(&self.waiter).as_ref().map_or(-1, |w| w.fd())
    }

    /// Closes the Port: wakes every thread waiting in `recv()` (it raises ValueError: closed),
    /// detaches the program the Port attached (or takes its sockets out of the given
    /// program's XSKMAP), then closes the sockets, the Umem's first one last. Idempotent.
    fn close(&self, py: Python<'_>) -> Result<()> {
        let Some(waiter) = lock(&self.waiter).take() else { return Ok(()) };
        waiter.close();
        let program = self.program.get();
        if self.attached {
            program.detach()?;
        } else {
            for (&queue, s) in self.queues.iter().zip(&self.sockets) {
                if let Ok((_, fd, _)) = s.get().queue_fd_ifindex()
                    && program.has_entry(fd)
                {
                    // The program may be detached already; nothing is registered then.
                    let _ = program.unregister(Int::Val(queue.into()));
                }
            }
        }
        for s in self.sockets.iter().rev() {
            s.get().close(py);
        }
        let region = lock(&self.region).take();
        drop(region);
        Ok(())
    }

    #[getter]
    fn closed(&self) -> bool {
        self.is_closed()
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
    ) -> Result<()> {
        self.close(py)
    }

    fn __repr__(&self) -> String {
        let state = if self.closed() { " [closed]" } else { "" };
        format!("<afxdp.Port ifname={:?} queues={:?}{state}>", self.ifname, self.queues)
    }
}

impl Drop for PyPort {
    fn drop(&mut self) {
        // Wake any waiter still holding the epoll descriptor; the sockets and the program go
        // with their own objects.
        if let Some(w) = lock(&self.waiter).take() {
            w.close();
        }
    }
}
