//! `Socket.batches()` and `Port.batches()`: a receive loop with one Python call per wakeup.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use afxdp::umem::Batch;
use pyo3::prelude::*;

use crate::batch::PyFrameBatch;
use crate::convert::{RecvArgs, Stop};
use crate::errors::Result;
use crate::port::PyPort;
use crate::socket::PySocket;
use crate::sync::lock;

/// What a [`PyBatches`] receives from.
pub enum Source {
    Socket(Py<PySocket>),
    Port(Py<PyPort>),
}

impl Source {
    /// One `recv(max, timeout, coalesce=...)` step, which `stop` ends early: the frames and
    /// the queue they came from.
    fn recv(&self, py: Python<'_>, args: RecvArgs, stop: Stop<'_>) -> Result<(Batch, Option<u32>)> {
        match self {
            Source::Socket(s) => {
                let s = s.get();
                Ok((s.recv_batch(py, args, stop)?, Some(s.queue())))
            }
            Source::Port(p) => p.get().recv_batch(py, args, stop),
        }
    }

    fn closed(&self) -> bool {
        match self {
            Source::Socket(s) => s.get().closed(),
            Source::Port(p) => p.get().is_closed(),
        }
    }
}

/// An iterator of received batches (`Socket.batches()`, `Port.batches()`).
///
/// Each step gives back the frames of the batch it handed out before (unless you sent or
/// released it, or still hold a view of one of its frames: then its frames go back when the
/// last view goes) and receives the next batch, in one call, waiting without the GIL only when
/// nothing is ready. The iteration ends when `timeout` passes with nothing received, when the
/// socket or Port is closed, or on `close()` (both also from another thread: a waiting step
/// ends within 0.1 s).
///
/// The steps hand out one batch object: a step that ended the previous batch refills that
/// object (`PyFrameBatch::reuse`) instead of allocating a Python object per wakeup. A Frame
/// or Packet taken from an earlier batch it held refuses (the object's generation moved on).
/// A batch still exported stays the user's, and the step hands out a new object.
#[pyclass(name = "BatchIterator", module = "afxdp._native", frozen)]
pub struct PyBatches {
    source: Source,
    /// Each step's `max`, `timeout` and `coalesce`.
    args: RecvArgs,
    /// The batch handed out last, ended by the next step.
    previous: Mutex<Option<Py<PyFrameBatch>>>,
    done: AtomicBool,
}

impl PyBatches {
    pub fn new(source: Source, args: RecvArgs) -> Self {
        PyBatches { source, args, previous: Mutex::new(None), done: AtomicBool::new(false) }
    }

    /// Ends the batch handed out last, if the user has not: its frames go back to the free
    /// pool, unless a view of one of them is alive (then they go back with the batch object).
    /// Returns the object when it ended, for the next step to hand out again.
    fn end_previous(&self) -> Option<Py<PyFrameBatch>> {
        let previous = lock(&self.previous).take()?;
        // The only refusal is a live export (BufferError): the batch then stays the user's
        // and its frames return when its last reference goes.
        previous.get().release_now().ok().map(|()| previous)
    }
}

#[pymethods]
impl PyBatches {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> Result<Option<Py<PyFrameBatch>>> {
        let ended = self.end_previous();
        if self.done.load(Ordering::Acquire) {
            return Ok(None);
        }
        let (batch, queue) = match self.source.recv(py, self.args, Stop::on(&self.done)) {
            Ok(got) => got,
            Err(_) if self.source.closed() => {
                self.done.store(true, Ordering::Release);
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        if batch.is_empty() {
            self.done.store(true, Ordering::Release);
            return Ok(None);
        }
        // The ended batch object takes the new frames: no Python object is allocated per step.
        let reused = match ended {
            Some(obj) => match obj.get().reuse(batch, queue) {
                Ok(()) => Ok(obj),
                Err(batch) => Err(batch),
            },
            None => Err(batch),
        };
        let batch = match reused {
            Ok(obj) => obj,
            Err(batch) => Py::new(py, PyFrameBatch::received(batch, queue))?,
        };
        *lock(&self.previous) = Some(batch.clone_ref(py));
        Ok(Some(batch))
    }

    /// Ends the iteration and gives back the last batch's frames (as a step would). A step
    /// waiting in another thread sees the flag within a wait slice (0.1 s) and ends.
    fn close(&self) {
        self.done.store(true, Ordering::Release);
        let _ended = self.end_previous();
    }

    /// True once the iteration has ended.
    #[getter]
    fn closed(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    fn __repr__(&self) -> String {
        format!(
            "<afxdp.BatchIterator max={} timeout={}{}{}>",
            self.args.max,
            self.args.timeout.map_or_else(|| "None".to_owned(), |t| format!("{}", t.as_secs_f64())),
            self.args
                .coalesce
                .map_or_else(String::new, |c| format!(" coalesce={}", c.as_secs_f64())),
            if self.closed() { " closed" } else { "" }
        )
    }
}
