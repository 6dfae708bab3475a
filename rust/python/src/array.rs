//! `UIntArray`: unsigned integers of a batch with the buffer protocol. `lengths`, `indices` and
//! `offsets` are views straight over the batch's descriptors (no copy); `addresses` is a copy.

use std::ffi::c_int;
use std::mem::{offset_of, size_of};
use std::sync::atomic::Ordering;

use afxdp::umem::FrameDesc;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use crate::batch::PyFrameBatch;
use crate::buffer::{Shaped, fill_shaped_view};
use crate::convert::{Index, norm_index};
use crate::errors::{Error, Result};

/// Which u32 field of the descriptors a view shows.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Index,
    Offset,
    Len,
}

impl Field {
    fn of(self, d: &FrameDesc) -> u32 {
        match self {
            Field::Index => d.index,
            Field::Offset => d.offset,
            Field::Len => d.len,
        }
    }

    fn byte_offset(self) -> usize {
        match self {
            Field::Index => offset_of!(FrameDesc, index),
            Field::Offset => offset_of!(FrameDesc, offset),
            Field::Len => offset_of!(FrameDesc, len),
        }
    }
}

enum Values {
    /// A copy taken when the attribute was read (`addresses`).
    U64(Box<[u64]>),
    /// One field of every descriptor of a live batch, in place. The view counts in the batch's
    /// `exports` from its creation to its drop, so the batch keeps its descriptors where they
    /// are (no send, release or end) for as long as it lives.
    Field {
        batch: Py<PyFrameBatch>,
        field: Field,
        /// The address of the field in the first descriptor (`usize`: a pyclass must be Send).
        base: usize,
    },
}

/// Unsigned integers of a batch, exported through the buffer protocol (`numpy.asarray`
/// wraps them without a copy), and a sequence of ints (`len`, indexing, iteration, `tolist()`)
/// that compares equal to a list or tuple of the same ints.
///
/// `FrameBatch.lengths`, `.indices` and `.offsets` are views over the batch's frame
/// descriptors (format "I", itemsize 4, stride 16 bytes: one descriptor); reads show the
/// current values, and `lengths` is writable through the buffer protocol. While such a view
/// (or a memoryview or numpy array made from it) is alive, the batch cannot be sent or
/// released (BufferError). `FrameBatch.addresses` is a u64 copy (format "Q").
#[pyclass(name = "UIntArray", module = "afxdp._native", frozen)]
pub struct PyUIntArray {
    values: Values,
    shape: [ffi::Py_ssize_t; 1],
    strides: [ffi::Py_ssize_t; 1],
}

impl PyUIntArray {
    pub fn u64s(values: Vec<u64>) -> Self {
        let len = values.len();
        PyUIntArray {
            values: Values::U64(values.into_boxed_slice()),
            shape: [len as ffi::Py_ssize_t],
            strides: [size_of::<u64>() as ffi::Py_ssize_t],
        }
    }

    /// A view of `field` of every descriptor of `batch`, counted in its exports from now on.
    pub fn field(batch: &Bound<'_, PyFrameBatch>, field: Field) -> Result<Self> {
        let me = batch.get();
        // Counted under the batch's lock, so a send or release (which check the count under the
        // same lock) either ran before, or refuses until this view is gone.
        let (base, len) = me.with(|b| {
            me.exports.fetch_add(1, Ordering::AcqRel);
            Ok((b.descs_ptr() as usize + field.byte_offset(), b.len()))
        })?;
        Ok(PyUIntArray {
            values: Values::Field { batch: batch.clone().unbind(), field, base },
            shape: [len as ffi::Py_ssize_t],
            strides: [size_of::<FrameDesc>() as ffi::Py_ssize_t],
        })
    }

    fn len(&self) -> usize {
        self.shape[0] as usize
    }

    /// The items, read now (a view reads the batch's current values).
    fn to_vec(&self) -> Result<Vec<u64>> {
        match &self.values {
            Values::U64(v) => Ok(v.to_vec()),
            Values::Field { batch, field, .. } => {
                batch.get().with(|b| Ok(b.descs().iter().map(|d| u64::from(field.of(d))).collect()))
            }
        }
    }

    fn item_format(&self) -> &'static str {
        match self.values {
            Values::U64(_) => "Q",
            Values::Field { .. } => "I",
        }
    }
}

impl Drop for PyUIntArray {
    fn drop(&mut self) {
        if let Values::Field { batch, .. } = &self.values {
            batch.get().exports.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

#[pymethods]
impl PyUIntArray {
    fn __len__(&self) -> usize {
        self.len()
    }

    fn __getitem__(&self, i: Index) -> Result<u64> {
        let (Index(i), len) = (i, self.len());
        let j = norm_index(i, len)
            .ok_or_else(|| Error::index(format!("index {i} out of range for {len} items")))?;
        match &self.values {
            Values::U64(v) => Ok(v[j]),
            Values::Field { batch, field, .. } => {
                batch.get().with(|b| Ok(u64::from(field.of(&b.descs()[j]))))
            }
        }
    }

    fn __iter__(slf: &Bound<'_, Self>) -> Result<Py<PyAny>> {
        let list = PyList::new(slf.py(), slf.get().to_vec()?)?;
        Ok(list.try_iter()?.into_any().unbind())
    }

    /// The items as a list of ints (their current values).
    fn tolist(&self) -> Result<Vec<u64>> {
        self.to_vec()
    }

    /// The struct-module format of one item: "I" (u32) or "Q" (u64).
    #[getter(format)]
    fn get_format(&self) -> &'static str {
        self.item_format()
    }

    /// Equal to another UIntArray, list or tuple holding the same ints.
    fn __eq__(&self, other: &Bound<'_, PyAny>) -> Result<bool> {
        if let Ok(array) = other.cast::<PyUIntArray>() {
            return Ok(array.get().to_vec()? == self.to_vec()?);
        }
        if !(other.is_instance_of::<PyList>() || other.is_instance_of::<PyTuple>()) {
            return Ok(false);
        }
        // Extract first: it runs Python code, which must not run under the batch's lock.
        let Ok(items) = other.extract::<Vec<u64>>() else { return Ok(false) };
        Ok(items == self.to_vec()?)
    }

    fn __repr__(&self) -> String {
        match self.to_vec() {
            Ok(values) => {
                let items: Vec<String> = values.iter().map(u64::to_string).collect();
                format!("UIntArray('{}', [{}])", self.item_format(), items.join(", "))
            }
            Err(_) => format!("UIntArray('{}') [gone]", self.item_format()),
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
        let (buf, itemsize, format, readonly) = match &me.values {
            Values::U64(v) => (v.as_ptr().cast::<u8>().cast_mut(), size_of::<u64>(), c"Q", true),
            Values::Field { base, field, .. } => {
                (*base as *mut u8, size_of::<u32>(), c"I", *field != Field::Len)
            }
        };
        let layout =
            Shaped { buf, itemsize, format, readonly, shape: &me.shape, strides: &me.strides };
        // SAFETY: `view` is non-null and provided by CPython, and the export holds a reference
        // to this object. A copy is a boxed slice this frozen object owns and never changes,
        // exported read-only. A view points into the batch's descriptor vector, which this
        // object keeps in place: it holds the batch and counts in its `exports`, so the batch
        // is neither sent, released nor ended (the vector neither shrinks, moves nor is freed)
        // until this object is dropped, which the export prevents. Only `len` is writable,
        // which every reader checks against its frame.
        unsafe { fill_shaped_view(view, flags, &layout, slf.clone().into_any()) }
    }

    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {}
}
