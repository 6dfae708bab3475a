//! `Umem`: the frame region shared with the kernel.

use std::ffi::c_int;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use afxdp::umem::{HugePages, Umem, UmemConfig};
use pyo3::ffi;
use pyo3::prelude::*;

use crate::buffer::fill_view;
use crate::convert::{HugePagesArg, Int, flag_arg, u32_arg};
use crate::errors::{Error, Result};
use crate::sync::lock;
use crate::umem_frames::PyUmemFrames;

/// A UMEM: one region of `frame_count` frames of `frame_size` bytes, shared with the kernel.
///
/// `tx_metadata=True` registers it with room for a transmit request before every packet
/// (`Frame.request_checksum`, `Frame.request_tx_timestamp`, `Frame.launch_time`; Linux 6.8 or
/// newer); `tx_sw_csum=True` makes copy mode compute requested checksums in software.
///
/// Exposes the whole region through the buffer protocol (`memoryview(umem)`): raw access for
/// experts; frames the kernel owns may change under you. Use `FrameBatch`/`Frame` instead.
#[pyclass(name = "Umem", module = "afxdp._native", frozen)]
pub struct PyUmem {
    umem: Mutex<Option<Umem>>,
    cfg: UmemConfig,
    /// Whether the region is on huge pages (what `hugepages=None` found).
    huge: bool,
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

    /// A UMEM of the given geometry and memory.
    pub fn create(cfg: UmemConfig) -> Result<Self> {
        let umem = Umem::new(cfg)?;
        let huge = umem.hugepages();
        Ok(PyUmem { umem: Mutex::new(Some(umem)), cfg, huge, exports: AtomicUsize::new(0) })
    }
}

#[pymethods]
impl PyUmem {
    #[new]
    #[pyo3(signature = (frame_count = Int::Val(4096), frame_size = Int::Val(4096), headroom = Int::Val(0), *, unaligned = None, hugepages = HugePagesArg(HugePages::No), tx_metadata = None, tx_sw_csum = None),
           text_signature = "(frame_count=4096, frame_size=4096, headroom=0, *, unaligned=False, hugepages=False, tx_metadata=False, tx_sw_csum=False)")]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        frame_count: Int,
        frame_size: Int,
        headroom: Int,
        unaligned: Option<&Bound<'_, PyAny>>,
        hugepages: HugePagesArg,
        tx_metadata: Option<&Bound<'_, PyAny>>,
        tx_sw_csum: Option<&Bound<'_, PyAny>>,
    ) -> Result<Self> {
        let cfg = UmemConfig {
            frame_count: u32_arg("frame_count", frame_count)?,
            frame_size: u32_arg("frame_size", frame_size)?,
            headroom: u32_arg("headroom", headroom)?,
            unaligned: flag_arg("unaligned", unaligned, false)?,
            hugepages: hugepages.0,
            tx_metadata: flag_arg("tx_metadata", tx_metadata, false)?,
            tx_sw_csum: flag_arg("tx_sw_csum", tx_sw_csum, false)?,
        };
        // Mapping (and populating) a large region takes a while: without the GIL.
        py.detach(move || Self::create(cfg))
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

    /// Whether the UMEM is in unaligned chunk mode (any frame size; ring addresses carry the
    /// offset in their top 16 bits).
    #[getter]
    fn unaligned(&self) -> bool {
        self.cfg.unaligned
    }

    /// Whether the UMEM has room for a transmit request before every packet (allocated
    /// frames start their packet 24 bytes later, after the headroom rounded up to 8).
    #[getter]
    fn tx_metadata(&self) -> bool {
        self.cfg.tx_metadata
    }

    /// Whether copy mode computes requested checksums in software.
    #[getter]
    fn tx_sw_csum(&self) -> bool {
        self.cfg.tx_sw_csum
    }

    /// Whether the region is on 2 MiB huge pages (with `hugepages=None`: whether enough were
    /// free).
    #[getter]
    fn hugepages(&self) -> bool {
        self.huge
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
        let unaligned = if c.unaligned { " unaligned=True" } else { "" };
        let huge = if self.huge { " hugepages=True" } else { "" };
        let meta = match (c.tx_metadata, c.tx_sw_csum) {
            (false, _) => "",
            (true, false) => " tx_metadata=True",
            (true, true) => " tx_metadata=True tx_sw_csum=True",
        };
        format!(
            "<afxdp.Umem frame_count={} frame_size={} headroom={}{unaligned}{huge}{meta}{state}>",
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
