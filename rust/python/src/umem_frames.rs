//! `UmemFrames`: the UMEM region as a 2-D array of frames, through the buffer protocol.

use std::ffi::c_int;
use std::sync::atomic::Ordering;

use pyo3::ffi;
use pyo3::prelude::*;

use crate::buffer::{Shaped, fill_shaped_view};
use crate::errors::{Error, Result};
use crate::umem::PyUmem;

/// The UMEM as `frame_count` rows of `frame_size` bytes (`Umem.frames`): a writable buffer of
/// format "B", shape `(frame_count, frame_size)`, so `numpy.asarray(umem.frames)[i]` is frame
/// `i` without a copy. Row `batch.indices[k]`, column `batch.offsets[k]` is where packet `k`
/// of a batch starts.
///
/// Like `memoryview(umem)` it is raw access: frames the kernel owns may change under you. While
/// an export is alive the Umem cannot be closed (BufferError).
#[pyclass(name = "UmemFrames", module = "afxdp._native", frozen)]
pub struct PyUmemFrames {
    umem: Py<PyUmem>,
    shape: [ffi::Py_ssize_t; 2],
    strides: [ffi::Py_ssize_t; 2],
}

impl PyUmemFrames {
    pub fn new(umem: Py<PyUmem>, frame_count: u32, frame_size: u32) -> Self {
        let size = frame_size as ffi::Py_ssize_t;
        PyUmemFrames { umem, shape: [frame_count as ffi::Py_ssize_t, size], strides: [size, 1] }
    }
}

#[pymethods]
impl PyUmemFrames {
    /// Number of frames (rows).
    fn __len__(&self) -> usize {
        self.shape[0] as usize
    }

    /// `(frame_count, frame_size)`.
    #[getter]
    fn shape(&self) -> (usize, usize) {
        (self.shape[0] as usize, self.shape[1] as usize)
    }

    /// The Umem these frames belong to.
    #[getter]
    fn umem(&self, py: Python<'_>) -> Py<PyUmem> {
        self.umem.clone_ref(py)
    }

    fn __repr__(&self) -> String {
        format!("<afxdp.UmemFrames shape=({}, {})>", self.shape[0], self.shape[1])
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
        let owner = me.umem.get();
        let region = owner.get()?;
        let layout = Shaped {
            buf: region.as_ptr(),
            itemsize: 1,
            format: c"B",
            readonly: false,
            shape: &me.shape,
            strides: &me.strides,
        };
        owner.exports.fetch_add(1, Ordering::AcqRel);
        // SAFETY: `view` is non-null and provided by CPython; rows x columns is at most the
        // mapped region (frame_count * frame_size), which stays mapped while the Umem handle
        // lives, and Umem.close() refuses while this export is counted in its `exports`.
        let filled = unsafe { fill_shaped_view(view, flags, &layout, slf.clone().into_any()) };
        if filled.is_err() {
            owner.exports.fetch_sub(1, Ordering::AcqRel);
        }
        filled
    }

    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {
        self.umem.get().exports.fetch_sub(1, Ordering::AcqRel);
    }
}
