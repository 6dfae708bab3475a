//! `Frame`: one frame of a `FrameBatch`, with item access and a zero-copy buffer export.

use std::ffi::c_int;
use std::sync::atomic::Ordering;

use afxdp::umem::Batch;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PySlice};

use crate::batch::PyFrameBatch;
use crate::buffer::fill_view;
use crate::convert::with_bytes;
use crate::errors::{Error, Result};

/// One frame of a batch: `len(frame)`, `bytes(frame)`, `frame[a:b]`, `frame[a:b] = ...`,
/// `frame.write(packet)`, `frame.length = n`, and a writable zero-copy `memoryview(frame)`.
#[pyclass(name = "Frame", module = "afxdp._native", frozen)]
pub struct PyFrame {
    batch: Py<PyFrameBatch>,
    pos: usize,
    index: u32,
}

impl PyFrame {
    pub fn new(batch: Py<PyFrameBatch>, pos: usize, index: u32) -> Self {
        PyFrame { batch, pos, index }
    }

    /// Runs `f` with the batch and this frame's position, after checking the batch still owns it.
    fn with<R>(&self, f: impl FnOnce(&mut Batch, usize) -> Result<R>) -> Result<R> {
        let index = self.index;
        let pos = self.pos;
        self.batch.get().with(|b| match b.descs().get(pos) {
            Some(d) if d.index == index => f(b, pos),
            _ => {
                Err(Error::value(format!("frame {index} is no longer in this batch (it was sent)")))
            }
        })
    }

    fn slice_range(key: &Bound<'_, PyAny>, len: usize) -> Result<Option<(usize, usize)>> {
        match key.cast::<PySlice>() {
            Ok(s) => {
                let ind = s.indices(len as isize)?;
                if ind.step != 1 {
                    return Err(Error::value("frame slices must have step 1"));
                }
                let start = ind.start as usize;
                Ok(Some((start, start + ind.slicelength)))
            }
            Err(_) => Ok(None),
        }
    }
}

#[pymethods]
impl PyFrame {
    /// Packet length in bytes.
    fn __len__(&self) -> Result<usize> {
        self.with(|b, i| Ok(b.descs()[i].len as usize))
    }

    /// Packet length; set it to transmit that many bytes of the frame.
    #[getter]
    fn get_length(&self) -> Result<u32> {
        self.with(|b, i| Ok(b.descs()[i].len))
    }

    #[setter]
    fn set_length(&self, length: i64) -> Result<()> {
        let length = usize::try_from(length)
            .map_err(|_| Error::value(format!("invalid length {length}: must be >= 0")))?;
        self.with(|b, i| Ok(b.set_len(i, length)?))
    }

    /// Bytes available from the packet start to the end of the frame.
    #[getter]
    fn capacity(&self) -> Result<usize> {
        self.with(|b, i| Ok(b.capacity(i)?))
    }

    /// The frame's number in the UMEM.
    #[getter]
    fn index(&self) -> u32 {
        self.index
    }

    /// The UMEM address of the packet start (what the rings carry).
    #[getter]
    fn addr(&self) -> Result<u64> {
        self.with(|b, i| {
            let d = b.descs()[i];
            Ok(b.umem().addr_of(d.index) + u64::from(d.offset))
        })
    }

    /// Copies `packet` into the frame and sets the length to its size.
    fn write(&self, packet: &Bound<'_, PyAny>) -> Result<()> {
        with_bytes(packet, |p| self.with(|b, i| Ok(b.write(i, p)?)))
    }

    fn __bytes__<'py>(&self, py: Python<'py>) -> Result<Bound<'py, PyBytes>> {
        self.with(|b, i| Ok(PyBytes::new(py, b.data(i)?)))
    }

    fn __getitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> Result<Py<PyAny>> {
        self.with(|b, i| {
            let data = b.data(i)?;
            if let Some((start, end)) = Self::slice_range(key, data.len())? {
                return Ok(PyBytes::new(py, &data[start..end]).into_any().unbind());
            }
            let k: isize = key.extract()?;
            let j = if k < 0 { k + data.len() as isize } else { k };
            if j < 0 || j as usize >= data.len() {
                return Err(Error::index(format!(
                    "index {k} out of range for a {}-byte frame",
                    data.len()
                )));
            }
            Ok(pyo3::types::PyInt::new(py, data[j as usize]).into_any().unbind())
        })
    }

    /// `frame[i] = byte` or `frame[a:b] = data` (same length: frames do not resize).
    fn __setitem__(&self, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> Result<()> {
        self.with(|b, i| {
            let len = b.descs()[i].len as usize;
            if let Some((start, end)) = Self::slice_range(key, len)? {
                return with_bytes(value, |v| {
                    if v.len() != end - start {
                        return Err(Error::value(format!(
                            "frame slice assignment must keep the length: {} bytes into a slice of {}",
                            v.len(),
                            end - start
                        )));
                    }
                    b.area_mut(i)?[start..end].copy_from_slice(v);
                    Ok(())
                });
            }
            let k: isize = key.extract()?;
            let j = if k < 0 { k + len as isize } else { k };
            if j < 0 || j as usize >= len {
                return Err(Error::index(format!(
                    "index {k} out of range for a {len}-byte frame"
                )));
            }
            let byte: u8 = value
                .extract()
                .map_err(|_| Error::value("a frame byte must be an int from 0 to 255"))?;
            b.area_mut(i)?[j as usize] = byte;
            Ok(())
        })
    }

    fn __repr__(&self) -> String {
        match self.with(|b, i| Ok(b.descs()[i].len)) {
            Ok(len) => format!("<afxdp.Frame index={} length={len}>", self.index),
            Err(_) => format!("<afxdp.Frame index={} [gone]>", self.index),
        }
    }

    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> Result<()> {
        if view.is_null() {
            return Err(Error::buffer("view is null"));
        }
        let me = slf.get();
        let batch = me.batch.get();
        let (ptr, len) = me.with(|b, i| Ok((b.data_ptr(i)?, b.descs()[i].len as usize)))?;
        batch.exports.fetch_add(1, Ordering::AcqRel);
        // SAFETY: `view` is valid (CPython); the batch owns the frame exclusively and cannot send
        // or release it while `exports` > 0, and the frame object (the view's owner) keeps the
        // batch, and so the UMEM mapping, alive.
        unsafe { fill_view(view, flags, ptr, len, slf.into_any()) };
        Ok(())
    }

    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {
        self.batch.get().exports.fetch_sub(1, Ordering::AcqRel);
    }
}
