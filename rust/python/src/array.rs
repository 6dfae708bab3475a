//! `UIntArray`: a read-only array of unsigned integers with the buffer protocol, for a
//! batch's lengths, frame indices, offsets and addresses.

use std::ffi::{CStr, c_int};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use crate::buffer::{Shaped, fill_shaped_view};
use crate::convert::norm_index;
use crate::errors::{Error, Result};

enum Values {
    U32(Box<[u32]>),
    U64(Box<[u64]>),
}

/// A read-only array of unsigned integers taken from a batch when the attribute is read
/// (`FrameBatch.lengths`, `.indices`, `.offsets`: u32, format "I"; `.addresses`: u64,
/// format "Q").
///
/// It exports its items through the buffer protocol, so `numpy.asarray(batch.lengths)` wraps
/// them without a copy; it is also a sequence of ints (`len`, indexing, iteration, `tolist()`)
/// and compares equal to a list or tuple of the same ints.
#[pyclass(name = "UIntArray", module = "afxdp._native", frozen)]
pub struct PyUIntArray {
    values: Values,
    shape: [ffi::Py_ssize_t; 1],
    strides: [ffi::Py_ssize_t; 1],
}

impl PyUIntArray {
    pub fn u32s(values: Vec<u32>) -> Self {
        Self::new(Values::U32(values.into_boxed_slice()))
    }

    pub fn u64s(values: Vec<u64>) -> Self {
        Self::new(Values::U64(values.into_boxed_slice()))
    }

    fn new(values: Values) -> Self {
        let (len, itemsize) = match &values {
            Values::U32(v) => (v.len(), 4),
            Values::U64(v) => (v.len(), 8),
        };
        PyUIntArray {
            values,
            shape: [len as ffi::Py_ssize_t],
            strides: [itemsize as ffi::Py_ssize_t],
        }
    }

    fn len(&self) -> usize {
        self.shape[0] as usize
    }

    fn get(&self, i: usize) -> u64 {
        match &self.values {
            Values::U32(v) => u64::from(v[i]),
            Values::U64(v) => v[i],
        }
    }

    fn to_vec(&self) -> Vec<u64> {
        (0..self.len()).map(|i| self.get(i)).collect()
    }

    fn format(&self) -> &'static CStr {
        match self.values {
            Values::U32(_) => c"I",
            Values::U64(_) => c"Q",
        }
    }
}

#[pymethods]
impl PyUIntArray {
    fn __len__(&self) -> usize {
        self.len()
    }

    fn __getitem__(&self, i: isize) -> Result<u64> {
        let len = self.len();
        let j = norm_index(i, len)
            .ok_or_else(|| Error::index(format!("index {i} out of range for {len} items")))?;
        Ok(self.get(j))
    }

    fn __iter__(slf: &Bound<'_, Self>) -> Result<Py<PyAny>> {
        let list = PyList::new(slf.py(), slf.get().to_vec())?;
        Ok(list.try_iter()?.into_any().unbind())
    }

    /// The items as a list of ints.
    fn tolist(&self) -> Vec<u64> {
        self.to_vec()
    }

    /// The struct-module format of one item: "I" (u32) or "Q" (u64).
    #[getter(format)]
    fn item_format(&self) -> &'static str {
        match self.values {
            Values::U32(_) => "I",
            Values::U64(_) => "Q",
        }
    }

    /// Equal to another UIntArray, list or tuple holding the same ints.
    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        if let Ok(array) = other.cast::<PyUIntArray>() {
            return array.get().to_vec() == self.to_vec();
        }
        if !(other.is_instance_of::<PyList>() || other.is_instance_of::<PyTuple>()) {
            return false;
        }
        other.extract::<Vec<u64>>().is_ok_and(|items| items == self.to_vec())
    }

    fn __repr__(&self) -> String {
        let items: Vec<String> = self.to_vec().iter().map(u64::to_string).collect();
        format!("UIntArray('{}', [{}])", self.item_format(), items.join(", "))
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
        let (buf, itemsize) = match &me.values {
            Values::U32(v) => (v.as_ptr().cast::<u8>().cast_mut(), 4),
            Values::U64(v) => (v.as_ptr().cast::<u8>().cast_mut(), 8),
        };
        let layout = Shaped {
            buf,
            itemsize,
            format: me.format(),
            readonly: true,
            shape: &me.shape,
            strides: &me.strides,
        };
        // SAFETY: `view` is non-null and provided by CPython; the items are a boxed slice that
        // this frozen object owns and never changes, exported read-only, and the export holds
        // a reference to the object.
        unsafe { fill_shaped_view(view, flags, &layout, slf.clone().into_any()) }
    }

    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {}
}
