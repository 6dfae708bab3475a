//! The buffer protocol shared by `Umem` (the whole region) and `Frame` (one packet).

use std::ffi::{c_int, c_void};

use pyo3::ffi;
use pyo3::prelude::*;

/// Fills `view` for `len` writable bytes at `buf`, owned by `owner`.
///
/// # Safety
/// `view` must be a valid `Py_buffer` pointer; `buf..buf+len` must stay valid and unaliased by
/// Rust references for as long as `owner` lives and the export is not released.
pub unsafe fn fill_view(
    view: *mut ffi::Py_buffer,
    flags: c_int,
    buf: *mut u8,
    len: usize,
    owner: Bound<'_, PyAny>,
) {
    // SAFETY: the caller guarantees `view` is valid; every field is written before returning.
    unsafe {
        (*view).buf = buf.cast::<c_void>();
        (*view).len = len as ffi::Py_ssize_t;
        (*view).readonly = 0;
        (*view).itemsize = 1;
        (*view).format = if flags & ffi::PyBUF_FORMAT == ffi::PyBUF_FORMAT {
            c"B".as_ptr().cast_mut()
        } else {
            std::ptr::null_mut()
        };
        (*view).ndim = 1;
        // Like PyBuffer_FillInfo: shape and strides point into the view itself.
        (*view).shape = if flags & ffi::PyBUF_ND == ffi::PyBUF_ND {
            &mut (*view).len
        } else {
            std::ptr::null_mut()
        };
        (*view).strides = if flags & ffi::PyBUF_STRIDES == ffi::PyBUF_STRIDES {
            &mut (*view).itemsize
        } else {
            std::ptr::null_mut()
        };
        (*view).suboffsets = std::ptr::null_mut();
        (*view).internal = std::ptr::null_mut();
        // A new strong reference: the owner keeps the memory alive until PyBuffer_Release.
        (*view).obj = owner.into_ptr();
    }
}
