//! `Umem`: the frame region shared with the kernel.

use std::ffi::c_int;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use afxdp::umem::{Umem, UmemConfig};
use pyo3::ffi;
use pyo3::prelude::*;

use crate::buffer::fill_view;
use crate::convert::{Int, u32_arg};
use crate::errors::{Error, Result};
use crate::sync::lock;
use crate::umem_frames::PyUmemFrames;

/// A UMEM: one region of `frame_count` frames of `frame_size` bytes, shared with the kernel.
///
/// Exposes the whole region through the buffer protocol (`memoryview(umem)`): raw access for
/// experts; frames the kernel owns may change under you. Use `FrameBatch`/`Frame` instead.
#[pyclass(name = "Umem", module = "afxdp._native", frozen)]
pub struct PyUmem {
    umem: Mutex<Option<Umem>>,
    cfg: UmemConfig,
    /// Live buffer exports of the region (`memoryview(umem)`, `Umem.frames`).
    pub(crate) exports: AtomicUsize,
}

impl PyUmem {
    /// The core's handle (a clone), or the closed error (or the forked-child one).
    pub fn get(&self) -> Result<Umem> {
        let umem = lock(&self.umem).clone().ok_or_else(|| Error::closed("Umem"))?;
        umem.check_fork()?;
        Ok(umem)
    }

    /// A UMEM of the given geometry.
    pub fn create(frame_count: u32, frame_size: u32, headroom: u32) -> Result<Self> {
        let cfg = UmemConfig { frame_count, frame_size, headroom };
        let umem = Umem::new(cfg)?;
        Ok(PyUmem { umem: Mutex::new(Some(umem)), cfg, exports: AtomicUsize::new(0) })
    }
}

#[pymethods]
impl PyUmem {
    #[new]
    #[pyo3(signature = (frame_count = Int::Int(4096), frame_size = Int::Int(4096), headroom = Int::Int(0)),
           text_signature = "(frame_count=4096, frame_size=4096, headroom=0)")]
    fn new(frame_count: Int, frame_size: Int, headroom: Int) -> Result<Self> {
        Self::create(
            u32_arg("frame_count", frame_count)?,
            u32_arg("frame_size", frame_size)?,
            u32_arg("headroom", headroom)?,
        )
    }

    /// Number of frames.
    #[getter]
    fn frame_count(&self) -> u32 {
        self.cfg.frame_count
    }

    /// Bytes per frame.
    #[getter]
    fn frame_size(&self) -> u32 {
        self.cfg.frame_size
    }

    /// The region as a 2-D buffer of shape (frame_count, frame_size), format "B":
    /// `numpy.asarray(umem.frames)[batch.indices]` are a batch's frames, without a copy.
    #[getter]
    fn frames(slf: &Bound<'_, Self>) -> Result<PyUmemFrames> {
        let me = slf.get();
        me.get()?;
        Ok(PyUmemFrames::new(slf.clone().unbind(), me.cfg.frame_count, me.cfg.frame_size))
    }

    /// Bytes reserved before the packet in every frame.
    #[getter]
    fn headroom(&self) -> u32 {
        self.cfg.headroom
    }

    /// The largest packet the kernel can receive into one frame.
    #[getter]
    fn rx_capacity(&self) -> u32 {
        self.cfg.rx_capacity()
    }

    /// The largest packet that can be written into one frame.
    #[getter]
    fn tx_capacity(&self) -> u32 {
        self.cfg.tx_capacity()
    }

    /// Frames in the free pool right now.
    #[getter]
    fn free_frames(&self) -> Result<u32> {
        Ok(self.get()?.free_frames())
    }

    /// Whether a socket uses this UMEM.
    #[getter]
    fn in_use(&self) -> Result<bool> {
        Ok(self.get()?.is_bound())
    }

    #[getter]
    fn closed(&self) -> bool {
        lock(&self.umem).is_none()
    }

    /// Drops this handle. The memory is unmapped once no socket or batch uses it any more.
    /// Raises BufferError while a memoryview of the region is alive. Idempotent.
    fn close(&self) -> Result<()> {
        let mut g = lock(&self.umem);
        if self.exports.load(Ordering::Acquire) > 0 {
            return Err(Error::buffer("cannot close a Umem while a memoryview of it exists"));
        }
        let umem = g.take();
        drop(g);
        drop(umem);
        Ok(())
    }

    fn __len__(&self) -> usize {
        self.cfg.len()
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Leaving the block closes it; the exception, if any, propagates (returns None).
    #[pyo3(signature = (exc_type, exc_value, traceback, /))]
    #[allow(unused_variables)]
    fn __exit__(
        &self,
        exc_type: Option<Bound<'_, PyAny>>,
        exc_value: Option<Bound<'_, PyAny>>,
        traceback: Option<Bound<'_, PyAny>>,
    ) -> Result<()> {
        self.close()?;
        Ok(())
    }

    fn __repr__(&self) -> String {
        let c = &self.cfg;
        let state = if self.closed() { " [closed]" } else { "" };
        format!(
            "<afxdp.Umem frame_count={} frame_size={} headroom={}{state}>",
            c.frame_count, c.frame_size, c.headroom
        )
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
        let umem = me.get()?;
        me.exports.fetch_add(1, Ordering::AcqRel);
        // SAFETY: `view` is non-null and provided by CPython; the region stays mapped while the
        // exporter (which holds the Umem) lives, and close() refuses while exports exist.
        unsafe { fill_view(view, flags, umem.as_ptr(), umem.len(), slf.into_any()) };
        Ok(())
    }

    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {
        self.exports.fetch_sub(1, Ordering::AcqRel);
    }
}
