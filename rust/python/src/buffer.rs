//! The buffer protocol shared by `Umem` (the whole region), `Frame` (one packet), `UmemFrames`
//! (the region as frames) and `UIntArray` (a batch's lengths, indices, offsets: strided views
//! of its descriptors; addresses: a copy).

use std::ffi::{c_int, c_void};

use pyo3::ffi;
use pyo3::prelude::*;

use crate::errors::{Error, Result};

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

/// What [`fill_shaped_view`] exports: `shape` and `strides` (in bytes) are the exporter's
/// own fields, so the pointers stay valid for as long as the export holds the owner.
pub struct Shaped<'a> {
    pub buf: *mut u8,
    pub itemsize: usize,
    /// The struct-module format of one item, e.g. `c"I"` for a u32.
    pub format: &'static std::ffi::CStr,
    pub readonly: bool,
    pub shape: &'a [ffi::Py_ssize_t],
    pub strides: &'a [ffi::Py_ssize_t],
}

/// Fills `view` for an array of `layout.shape` and `layout.strides`, owned by `owner`; refuses
/// (with BufferError, `view` untouched) a writable export of read-only data, a
/// Fortran-contiguous request for a 2-D array, and, when the strides leave gaps between items,
/// any request without PyBUF_STRIDES or for a contiguous buffer. Without PyBUF_ND the consumer
/// of a contiguous array gets the bytes as one flat run, as the buffer protocol prescribes for
/// simple requests.
///
/// # Safety
/// `view` must be a valid `Py_buffer` pointer; the memory `layout` describes must stay valid
/// (and, unless read-only, unaliased by Rust references) for as long as `owner` lives and the
/// export is not released; `layout.shape`/`strides` must live as long as `owner`.
pub unsafe fn fill_shaped_view(
    view: *mut ffi::Py_buffer,
    flags: c_int,
    layout: &Shaped<'_>,
    owner: Bound<'_, PyAny>,
) -> Result<()> {
    if layout.readonly && flags & ffi::PyBUF_WRITABLE == ffi::PyBUF_WRITABLE {
        return Err(Error::buffer("this buffer is read-only"));
    }
    let items: ffi::Py_ssize_t = layout.shape.iter().product();
    let rows_and_columns = layout.shape.len() > 1 && layout.shape.iter().all(|&n| n > 1);
    if rows_and_columns && flags & ffi::PyBUF_F_CONTIGUOUS == ffi::PyBUF_F_CONTIGUOUS {
        return Err(Error::buffer("this buffer is C-contiguous, not Fortran-contiguous"));
    }
    if !is_c_contiguous(layout) {
        if flags & ffi::PyBUF_STRIDES != ffi::PyBUF_STRIDES {
            return Err(Error::buffer(
                "this buffer is strided (its items are not adjacent): request it with strides, \
                 as memoryview and numpy do",
            ));
        }
        let asks = |contiguity: c_int| flags & contiguity == contiguity;
        if asks(ffi::PyBUF_C_CONTIGUOUS)
            || asks(ffi::PyBUF_F_CONTIGUOUS)
            || asks(ffi::PyBUF_ANY_CONTIGUOUS)
        {
            return Err(Error::buffer("this buffer is strided, not contiguous"));
        }
    }
    let nd = flags & ffi::PyBUF_ND == ffi::PyBUF_ND;
    let strided = flags & ffi::PyBUF_STRIDES == ffi::PyBUF_STRIDES;
    // SAFETY: the caller guarantees `view` is valid; every field is written before returning,
    // and CPython only reads through `shape`/`strides` (the const-to-mut casts are never used
    // to write).
    unsafe {
        (*view).buf = layout.buf.cast::<c_void>();
        (*view).len = items * layout.itemsize as ffi::Py_ssize_t;
        (*view).readonly = c_int::from(layout.readonly);
        (*view).itemsize = layout.itemsize as ffi::Py_ssize_t;
        (*view).format = if flags & ffi::PyBUF_FORMAT == ffi::PyBUF_FORMAT {
            layout.format.as_ptr().cast_mut()
        } else {
            std::ptr::null_mut()
        };
        if nd {
            (*view).ndim = layout.shape.len() as c_int;
            (*view).shape = layout.shape.as_ptr().cast_mut();
            (*view).strides =
                if strided { layout.strides.as_ptr().cast_mut() } else { std::ptr::null_mut() };
        } else {
            (*view).ndim = 1;
            (*view).shape = std::ptr::null_mut();
            (*view).strides = std::ptr::null_mut();
        }
        (*view).suboffsets = std::ptr::null_mut();
        (*view).internal = std::ptr::null_mut();
        // A new strong reference: the owner keeps the memory alive until PyBuffer_Release.
        (*view).obj = owner.into_ptr();
    }
    Ok(())
}

/// Whether the items of `layout` follow each other without gaps in row-major order (as
/// CPython's `PyBuffer_IsContiguous(view, 'C')` decides: dimensions of one item have no
/// stride to keep).
fn is_c_contiguous(layout: &Shaped<'_>) -> bool {
    let mut expected = layout.itemsize as ffi::Py_ssize_t;
    for (&n, &stride) in layout.shape.iter().zip(layout.strides).rev() {
        if n > 1 && stride != expected {
            return false;
        }
        expected *= n;
    }
    true
}
