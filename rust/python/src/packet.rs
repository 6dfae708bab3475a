//! `Packet`: one packet of a `FrameBatch`, the frames of a multi-buffer chain taken together.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use crate::batch::PyFrameBatch;
use crate::errors::{Error, Result};
use crate::frame::PyFrame;

/// One packet of a batch (`FrameBatch.packets()`): a single frame, or on a multi-buffer socket
/// a chain of consecutive frames, each but the last with `more` set.
///
/// `len(packet)` is its length (the sum of its frames' lengths), `bytes(packet)` a copy of its
/// bytes in order, `packet.frames` its frames (to edit each in place). It reads the batch's
/// frames when asked, so it follows edits; once they left the batch (sent or released) it
/// raises ValueError.
#[pyclass(name = "Packet", module = "afxdp._native", frozen)]
pub struct PyPacket {
    batch: Py<PyFrameBatch>,
    /// Position of the first frame in the batch.
    start: usize,
    /// The UMEM frame index of each frame, to tell that they are still where they were.
    indices: Vec<u32>,
    /// The batch object's generation when the packet was taken (see `PyFrameBatch::reuse`).
    generation: u64,
}

impl PyPacket {
    pub fn new(batch: Py<PyFrameBatch>, start: usize, indices: Vec<u32>, generation: u64) -> Self {
        PyPacket { batch, start, indices, generation }
    }

    /// Runs `f` on the batch and the packet's first position after checking the batch still
    /// holds the packet's frames. A partial send takes frames off the batch's front, so the
    /// packet may have moved down; the frame indices are unique in a batch, so the first one
    /// finds it.
    fn with<R>(&self, f: impl FnOnce(&afxdp::umem::Batch, usize) -> Result<R>) -> Result<R> {
        let (start, indices) = (self.start, &self.indices);
        self.batch.get().with_generation(self.generation, |b| {
            let at = |start: usize| {
                b.descs()
                    .get(start..start + indices.len())
                    .is_some_and(|ds| ds.iter().zip(indices).all(|(d, &i)| d.index == i))
            };
            let found = match at(start) {
                true => Some(start),
                false => b.descs().iter().position(|d| d.index == indices[0]).filter(|&s| at(s)),
            };
            match found {
                Some(start) => f(b, start),
                None => Err(Error::value(format!(
                    "the packet of frames {indices:?} is no longer in this batch (it was sent)"
                ))),
            }
        })
    }
}

#[pymethods]
impl PyPacket {
    /// Packet length in bytes: the sum of its frames' lengths.
    fn __len__(&self) -> Result<usize> {
        let n = self.indices.len();
        self.with(|b, start| Ok(b.descs()[start..start + n].iter().map(|d| d.len as usize).sum()))
    }

    /// The packet's bytes, its frames' bytes joined (a copy).
    fn __bytes__<'py>(&self, py: Python<'py>) -> Result<Bound<'py, PyBytes>> {
        // Copy under the lock; build the Python object after (allocating may run a __del__).
        let data = self.with(|b, start| {
            let mut out = Vec::new();
            for i in start..start + self.indices.len() {
                out.extend_from_slice(b.data(i)?);
            }
            Ok(out)
        })?;
        Ok(PyBytes::new(py, &data))
    }

    /// The packet's frames, in order (all but the last have `more` set).
    #[getter]
    fn frames<'py>(&self, py: Python<'py>) -> Result<Bound<'py, PyList>> {
        let start = self.with(|_, start| Ok(start))?;
        let frames = self.indices.iter().enumerate().map(|(k, &index)| {
            PyFrame::new(self.batch.clone_ref(py), start + k, index, self.generation)
        });
        Ok(PyList::new(py, frames)?)
    }

    fn __repr__(&self) -> String {
        match self.__len__() {
            Ok(len) => format!("<afxdp.Packet length={len} frames={}>", self.indices.len()),
            Err(_) => format!("<afxdp.Packet frames={} [gone]>", self.indices.len()),
        }
    }
}
