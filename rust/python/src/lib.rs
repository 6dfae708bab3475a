//! Python bindings of the afxdp core: classes, the buffer protocol, GIL release around waits, and
//! the one place where core errors become Python exceptions. No policy lives here.

use std::collections::HashMap;
use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use afxdp::Error;
use afxdp::bpf::{AttachMode, BpfError, MAX_RULES, Rule, XdpProgram};
use afxdp::socket::{Socket, SocketConfig, Stats};
use afxdp::umem::{Batch, Umem, UmemConfig};
use pyo3::buffer::PyBuffer;
use pyo3::exceptions::{PyBufferError, PyIndexError, PyOSError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PySlice};

mod generate;

// ---------------------------------------------------------------------------------------------
// Errors: the single mapping from core errors to Python exceptions.

fn os_error(errno: i32, msg: String) -> PyErr {
    // OSError(errno, msg) picks the matching subclass itself (EPERM -> PermissionError, ...).
    PyOSError::new_err((errno, msg))
}

fn to_py(e: Error) -> PyErr {
    let msg = e.to_string();
    match e {
        Error::Syscall { ref source, .. } => match source.raw_os_error() {
            Some(errno) => os_error(errno, msg),
            None => PyOSError::new_err(msg),
        },
        Error::NoSuchInterface { .. } => os_error(libc::ENODEV, msg),
        Error::KernelTooOld { .. } => PyOSError::new_err(msg),
        Error::ForkedChild { .. } => pyo3::exceptions::PyRuntimeError::new_err(msg),
        Error::Generate(g) => generate::generate_to_py(g),
        Error::InvalidArgument { .. }
        | Error::QueueOutOfRange { .. }
        | Error::PacketTooLong { .. }
        | Error::FrameNotOwned { .. }
        | Error::UmemInUse
        | Error::Closed { .. } => PyValueError::new_err(msg),
        Error::Bpf(b) => bpf_to_py(b),
    }
}

pyo3::create_exception!(
    afxdp._native,
    VerifierError,
    PyOSError,
    "The kernel verifier rejected an XDP program. An OSError (errno EACCES or EINVAL, usually); `program` is the program's name and `log` the verifier's output."
);

fn bpf_to_py(e: BpfError) -> PyErr {
    let msg = e.to_string();
    match (&e, e.errno()) {
        (BpfError::Verifier { program, errno, log }, _) => Python::attach(|py| {
            let err = VerifierError::new_err((errno.unwrap_or(libc::EINVAL), msg.clone()));
            let value = err.value(py);
            // Setting attributes on a fresh exception object cannot fail in practice; if it
            // did, the message still carries the name and the log.
            let _ = value.setattr("program", program);
            let _ = value.setattr("log", log);
            err
        }),
        (
            BpfError::Detached
            | BpfError::NotInObject { .. }
            | BpfError::WrongType { .. }
            | BpfError::TooManyRules { .. }
            | BpfError::InvalidRule { .. }
            | BpfError::NoRules { .. },
            _,
        ) => PyValueError::new_err(msg),
        (_, Some(errno)) => os_error(errno, msg),
        _ => PyOSError::new_err(msg),
    }
}

fn closed(what: &'static str) -> PyErr {
    to_py(Error::Closed { what })
}

/// Locks a mutex; poisoning cannot leave our state half-updated (each update is one
/// assignment), so a poisoned lock is used as is.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A non-negative integer argument that must fit in u32; the error names the argument.
fn u32_arg(name: &'static str, value: i64) -> PyResult<u32> {
    u32::try_from(value).map_err(|_| {
        PyValueError::new_err(format!("invalid {name} {value}: must be from 0 to {}", u32::MAX))
    })
}

/// An XDP attach mode: "auto", "native" or "generic".
fn mode_arg(mode: &str) -> PyResult<AttachMode> {
    mode.parse().map_err(|e: afxdp::bpf::ParseAttachModeError| PyValueError::new_err(e.to_string()))
}

/// A timeout in seconds: None waits forever (in slices, so signals are seen), negative is refused.
fn timeout_arg(timeout: Option<f64>) -> PyResult<Option<Duration>> {
    match timeout {
        None => Ok(None),
        Some(t) if t.is_finite() && t >= 0.0 => Ok(Some(Duration::from_secs_f64(t))),
        Some(t) => {
            Err(PyValueError::new_err(format!("invalid timeout {t}: must be >= 0 seconds or None")))
        }
    }
}

/// Runs `f` with the bytes of a bytes-like object (bytes without a copy; others via the buffer
/// protocol, copied into a contiguous vector).
fn with_bytes<R>(obj: &Bound<'_, PyAny>, f: impl FnOnce(&[u8]) -> PyResult<R>) -> PyResult<R> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return f(b.as_bytes());
    }
    let buf = PyBuffer::<u8>::get(obj).map_err(|_| {
        PyTypeError::new_err(format!(
            "a bytes-like object is required, not {:?}",
            obj.get_type().name().map(|n| n.to_string()).unwrap_or_default()
        ))
    })?;
    let v = buf.to_vec(obj.py())?;
    f(&v)
}

/// Fills `view` for `len` writable bytes at `buf`, owned by `owner`.
///
/// # Safety
/// `view` must be a valid `Py_buffer` pointer; `buf..buf+len` must stay valid and unaliased by
/// Rust references for as long as `owner` lives and the export is not released.
unsafe fn fill_view(
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

// ---------------------------------------------------------------------------------------------
// Umem

/// A UMEM: one region of `frame_count` frames of `frame_size` bytes, shared with the kernel.
///
/// Exposes the whole region through the buffer protocol (`memoryview(umem)`): raw access for
/// experts; frames the kernel owns may change under you. Use `FrameBatch`/`Frame` instead.
#[pyclass(name = "Umem", module = "afxdp._native", frozen)]
pub struct PyUmem {
    umem: Mutex<Option<Umem>>,
    cfg: UmemConfig,
    exports: AtomicUsize,
}

impl PyUmem {
    fn get(&self) -> PyResult<Umem> {
        let umem = lock(&self.umem).clone().ok_or_else(|| closed("Umem"))?;
        umem.check_fork().map_err(to_py)?;
        Ok(umem)
    }
}

#[pymethods]
impl PyUmem {
    #[new]
    #[pyo3(signature = (frame_count = 4096, frame_size = 4096, headroom = 0))]
    fn new(frame_count: i64, frame_size: i64, headroom: i64) -> PyResult<Self> {
        let cfg = UmemConfig {
            frame_count: u32_arg("frame_count", frame_count)?,
            frame_size: u32_arg("frame_size", frame_size)?,
            headroom: u32_arg("headroom", headroom)?,
        };
        let umem = Umem::new(cfg).map_err(to_py)?;
        Ok(PyUmem { umem: Mutex::new(Some(umem)), cfg, exports: AtomicUsize::new(0) })
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
    fn free_frames(&self) -> PyResult<u32> {
        Ok(self.get()?.free_frames())
    }

    /// Whether a socket uses this UMEM.
    #[getter]
    fn in_use(&self) -> PyResult<bool> {
        Ok(self.get()?.is_bound())
    }

    #[getter]
    fn closed(&self) -> bool {
        lock(&self.umem).is_none()
    }

    /// Drops this handle. The memory is unmapped once no socket or batch uses it any more.
    /// Raises BufferError while a memoryview of the region is alive. Idempotent.
    fn close(&self) -> PyResult<()> {
        let mut g = lock(&self.umem);
        if self.exports.load(Ordering::Acquire) > 0 {
            return Err(PyBufferError::new_err(
                "cannot close a Umem while a memoryview of it exists",
            ));
        }
        g.take();
        Ok(())
    }

    fn __len__(&self) -> usize {
        self.cfg.len()
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(
        &self,
        _t: Option<Bound<'_, PyAny>>,
        _v: Option<Bound<'_, PyAny>>,
        _tb: Option<Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        self.close()?;
        Ok(false)
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
    ) -> PyResult<()> {
        if view.is_null() {
            return Err(PyBufferError::new_err("view is null"));
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

// ---------------------------------------------------------------------------------------------
// FrameBatch and Frame

/// Frames owned by you: received ones, or allocated ones to fill and send.
///
/// `send()` and `release()` consume the frames; afterwards the batch is empty and closed, and
/// using one of its frames raises. While a memoryview of one of its frames is alive, the batch
/// cannot be sent or released (BufferError). Leaving a `with batch:` block releases whatever the
/// batch still owns.
#[pyclass(name = "FrameBatch", module = "afxdp._native", frozen)]
pub struct PyFrameBatch {
    batch: Mutex<Option<Batch>>,
    exports: AtomicUsize,
    ended: Mutex<&'static str>,
}

impl PyFrameBatch {
    fn new(batch: Batch) -> Self {
        PyFrameBatch {
            batch: Mutex::new(Some(batch)),
            exports: AtomicUsize::new(0),
            ended: Mutex::new(""),
        }
    }

    fn ended_error(&self) -> PyErr {
        let how = *lock(&self.ended);
        PyValueError::new_err(format!(
            "this FrameBatch was {how}; its frames are gone",
            how = if how.is_empty() { "closed" } else { how }
        ))
    }

    /// Runs `f` on the live batch.
    fn with<R>(&self, f: impl FnOnce(&mut Batch) -> PyResult<R>) -> PyResult<R> {
        let mut g = lock(&self.batch);
        match g.as_mut() {
            Some(b) => f(b),
            None => {
                drop(g);
                Err(self.ended_error())
            }
        }
    }

    fn check_no_exports(&self, action: &str) -> PyResult<()> {
        match self.exports.load(Ordering::Acquire) {
            0 => Ok(()),
            n => Err(PyBufferError::new_err(format!(
                "cannot {action} a FrameBatch while {n} memoryview(s) of its frames exist; release them first"
            ))),
        }
    }

    /// Ends the batch: `how` is "sent" or "released".
    fn end(&self, how: &'static str) {
        *lock(&self.ended) = how;
        lock(&self.batch).take();
    }

    fn release_now(&self) -> PyResult<()> {
        self.check_no_exports("release")?;
        // One lock of the batch: take the frames and say why they are gone before letting go.
        let mut g = lock(&self.batch);
        if let Some(batch) = g.take() {
            *lock(&self.ended) = "released";
            drop(g);
            drop(batch);
        }
        Ok(())
    }
}

fn norm_index(i: isize, len: usize) -> PyResult<usize> {
    let j = if i < 0 { i + len as isize } else { i };
    if j < 0 || j as usize >= len {
        return Err(PyIndexError::new_err(format!(
            "frame index {i} out of range for a batch of {len}"
        )));
    }
    Ok(j as usize)
}

#[pymethods]
impl PyFrameBatch {
    fn __len__(&self) -> usize {
        lock(&self.batch).as_ref().map_or(0, Batch::len)
    }

    fn __getitem__(slf: &Bound<'_, Self>, i: isize) -> PyResult<PyFrame> {
        let me = slf.get();
        let index = me.with(|b| {
            let pos = norm_index(i, b.len())?;
            Ok((pos, b.descs()[pos].index))
        })?;
        Ok(PyFrame { batch: slf.clone().unbind(), pos: index.0, index: index.1 })
    }

    fn __iter__(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let frames: Vec<PyFrame> = slf.get().with(|b| {
            Ok(b.descs()
                .iter()
                .enumerate()
                .map(|(pos, d)| PyFrame { batch: slf.clone().unbind(), pos, index: d.index })
                .collect())
        })?;
        let list = PyList::new(py, frames)?;
        Ok(list.try_iter()?.into_any().unbind())
    }

    /// Copies `packet` into every frame and sets every length (one Rust loop). Either all frames
    /// are written or, if the packet is too long for them, none.
    fn write_all(&self, packet: &Bound<'_, PyAny>) -> PyResult<()> {
        with_bytes(packet, |p| self.with(|b| b.write_all(p).map_err(to_py)))
    }

    /// Writes `data` at byte `offset` of every frame's packet (e.g. a MAC address), leaving the
    /// lengths as they are. Every frame must be at least `offset + len(data)` long.
    fn write_at(&self, offset: i64, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let offset = u32_arg("offset", offset)? as usize;
        with_bytes(data, |d| self.with(|b| b.write_at(offset, d).map_err(to_py)))
    }

    /// Swaps the destination and source MAC addresses of every frame in place (l2fwd), in
    /// one Rust loop. Either every frame is edited or, if one is shorter than 12 bytes, none.
    fn swap_macs(&self) -> PyResult<()> {
        self.with(|b| b.swap_macs().map_err(to_py))
    }

    /// Copies the packets of `src` (a batch of any socket, e.g. received on another
    /// interface) into this batch's frames and sets their lengths; returns how many:
    /// min(len(self), len(src)). `src` is left as it was.
    fn copy_from(&self, src: &PyFrameBatch) -> PyResult<usize> {
        if std::ptr::eq(self, src) {
            return Err(PyValueError::new_err("copy_from: the source is this batch"));
        }
        // try_lock: two threads copying between the same two batches in opposite directions
        // must not deadlock.
        let guard = match src.batch.try_lock() {
            Ok(g) => g,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                return Err(PyValueError::new_err(
                    "copy_from: the source batch is in use by another thread",
                ));
            }
        };
        let Some(source) = guard.as_ref() else {
            drop(guard);
            return Err(src.ended_error());
        };
        self.with(|b| b.copy_from(source).map_err(to_py))
    }

    /// The total packet length of the frames, in bytes (for byte rates without building the
    /// `lengths` list).
    #[getter]
    fn nbytes(&self) -> PyResult<u64> {
        self.with(|b| Ok(b.descs().iter().map(|d| u64::from(d.len)).sum()))
    }

    /// The packet length of every frame.
    #[getter]
    fn lengths(&self) -> PyResult<Vec<u32>> {
        self.with(|b| Ok(b.descs().iter().map(|d| d.len).collect()))
    }

    /// Sets every frame's packet length (each within its frame's capacity).
    fn set_lengths(&self, length: i64) -> PyResult<()> {
        let length = u32_arg("length", length)? as usize;
        self.with(|b| {
            for i in 0..b.len() {
                b.set_len(i, length).map_err(to_py)?;
            }
            Ok(())
        })
    }

    /// The packets as a list of bytes (copies).
    fn to_list(slf: &Bound<'_, Self>) -> PyResult<Py<PyList>> {
        let py = slf.py();
        slf.get().with(|b| {
            let items = (0..b.len())
                .map(|i| b.data(i).map(|d| PyBytes::new(py, d)).map_err(to_py))
                .collect::<PyResult<Vec<_>>>()?;
            Ok(PyList::new(py, items)?.unbind())
        })
    }

    /// Returns the frames to the free pool now. Idempotent.
    fn release(&self) -> PyResult<()> {
        self.release_now()
    }

    /// True once the batch was sent or released.
    #[getter]
    fn closed(&self) -> bool {
        lock(&self.batch).is_none()
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(
        &self,
        _t: Option<Bound<'_, PyAny>>,
        _v: Option<Bound<'_, PyAny>>,
        _tb: Option<Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        self.release_now()?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        match lock(&self.batch).as_ref() {
            Some(b) => format!("<afxdp.FrameBatch frames={}>", b.len()),
            None => format!(
                "<afxdp.FrameBatch [{}]>",
                if lock(&self.ended).is_empty() { "closed" } else { *lock(&self.ended) }
            ),
        }
    }
}

/// One frame of a batch: `len(frame)`, `bytes(frame)`, `frame[a:b]`, `frame[a:b] = ...`,
/// `frame.write(packet)`, `frame.length = n`, and a writable zero-copy `memoryview(frame)`.
#[pyclass(name = "Frame", module = "afxdp._native", frozen)]
pub struct PyFrame {
    batch: Py<PyFrameBatch>,
    pos: usize,
    index: u32,
}

impl PyFrame {
    /// Runs `f` with the batch and this frame's position, after checking the batch still owns it.
    fn with<R>(&self, f: impl FnOnce(&mut Batch, usize) -> PyResult<R>) -> PyResult<R> {
        let index = self.index;
        let pos = self.pos;
        self.batch.get().with(|b| match b.descs().get(pos) {
            Some(d) if d.index == index => f(b, pos),
            _ => Err(PyValueError::new_err(format!(
                "frame {index} is no longer in this batch (it was sent)"
            ))),
        })
    }

    fn slice_range(key: &Bound<'_, PyAny>, len: usize) -> PyResult<Option<(usize, usize)>> {
        match key.cast::<PySlice>() {
            Ok(s) => {
                let ind = s.indices(len as isize)?;
                if ind.step != 1 {
                    return Err(PyValueError::new_err("frame slices must have step 1"));
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
    fn __len__(&self) -> PyResult<usize> {
        self.with(|b, i| Ok(b.descs()[i].len as usize))
    }

    /// Packet length; set it to transmit that many bytes of the frame.
    #[getter]
    fn get_length(&self) -> PyResult<u32> {
        self.with(|b, i| Ok(b.descs()[i].len))
    }

    #[setter]
    fn set_length(&self, length: i64) -> PyResult<()> {
        let length = usize::try_from(length)
            .map_err(|_| PyValueError::new_err(format!("invalid length {length}: must be >= 0")))?;
        self.with(|b, i| b.set_len(i, length).map_err(to_py))
    }

    /// Bytes available from the packet start to the end of the frame.
    #[getter]
    fn capacity(&self) -> PyResult<usize> {
        self.with(|b, i| b.capacity(i).map_err(to_py))
    }

    /// The frame's number in the UMEM.
    #[getter]
    fn index(&self) -> u32 {
        self.index
    }

    /// The UMEM address of the packet start (what the rings carry).
    #[getter]
    fn addr(&self) -> PyResult<u64> {
        self.with(|b, i| {
            let d = b.descs()[i];
            Ok(b.umem().addr_of(d.index) + u64::from(d.offset))
        })
    }

    /// Copies `packet` into the frame and sets the length to its size.
    fn write(&self, packet: &Bound<'_, PyAny>) -> PyResult<()> {
        with_bytes(packet, |p| self.with(|b, i| b.write(i, p).map_err(to_py)))
    }

    fn __bytes__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        self.with(|b, i| Ok(PyBytes::new(py, b.data(i).map_err(to_py)?)))
    }

    fn __getitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.with(|b, i| {
            let data = b.data(i).map_err(to_py)?;
            if let Some((start, end)) = Self::slice_range(key, data.len())? {
                return Ok(PyBytes::new(py, &data[start..end]).into_any().unbind());
            }
            let k: isize = key.extract()?;
            let j = if k < 0 { k + data.len() as isize } else { k };
            if j < 0 || j as usize >= data.len() {
                return Err(PyIndexError::new_err(format!(
                    "index {k} out of range for a {}-byte frame",
                    data.len()
                )));
            }
            Ok(data[j as usize].into_pyobject(py)?.into_any().unbind())
        })
    }

    /// `frame[i] = byte` or `frame[a:b] = data` (same length: frames do not resize).
    fn __setitem__(&self, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.with(|b, i| {
            let len = b.descs()[i].len as usize;
            if let Some((start, end)) = Self::slice_range(key, len)? {
                return with_bytes(value, |v| {
                    if v.len() != end - start {
                        return Err(PyValueError::new_err(format!(
                            "frame slice assignment must keep the length: {} bytes into a slice of {}",
                            v.len(),
                            end - start
                        )));
                    }
                    b.area_mut(i).map_err(to_py)?[start..end].copy_from_slice(v);
                    Ok(())
                });
            }
            let k: isize = key.extract()?;
            let j = if k < 0 { k + len as isize } else { k };
            if j < 0 || j as usize >= len {
                return Err(PyIndexError::new_err(format!("index {k} out of range for a {len}-byte frame")));
            }
            let byte: u8 = value.extract().map_err(|_| PyValueError::new_err("a frame byte must be an int from 0 to 255"))?;
            b.area_mut(i).map_err(to_py)?[j as usize] = byte;
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
    ) -> PyResult<()> {
        if view.is_null() {
            return Err(PyBufferError::new_err("view is null"));
        }
        let me = slf.get();
        let batch = me.batch.get();
        let (ptr, len) =
            me.with(|b, i| Ok((b.data_ptr(i).map_err(to_py)?, b.descs()[i].len as usize)))?;
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

// ---------------------------------------------------------------------------------------------
// Stats

/// Socket statistics: the kernel's (`XDP_STATISTICS`) and the library's counters.
#[pyclass(name = "Stats", module = "afxdp._native", frozen, get_all)]
pub struct PyStats {
    /// Packets dropped for other reasons than a full rx ring or an empty fill ring (e.g. too
    /// large for a frame).
    rx_dropped: u64,
    rx_invalid_descs: u64,
    tx_invalid_descs: u64,
    rx_ring_full: u64,
    rx_fill_ring_empty_descs: u64,
    tx_ring_empty_descs: u64,
    received: u64,
    sent: u64,
    filled: u64,
    completed: u64,
}

const STAT_FIELDS: [&str; 10] = [
    "rx_dropped",
    "rx_invalid_descs",
    "tx_invalid_descs",
    "rx_ring_full",
    "rx_fill_ring_empty_descs",
    "tx_ring_empty_descs",
    "received",
    "sent",
    "filled",
    "completed",
];

impl From<Stats> for PyStats {
    fn from(s: Stats) -> Self {
        let (k, c) = (s.kernel, s.counters);
        PyStats {
            rx_dropped: k.rx_dropped,
            rx_invalid_descs: k.rx_invalid_descs,
            tx_invalid_descs: k.tx_invalid_descs,
            rx_ring_full: k.rx_ring_full,
            rx_fill_ring_empty_descs: k.rx_fill_ring_empty_descs,
            tx_ring_empty_descs: k.tx_ring_empty_descs,
            received: c.received,
            sent: c.sent,
            filled: c.filled,
            completed: c.completed,
        }
    }
}

impl PyStats {
    fn values(&self) -> [u64; 10] {
        [
            self.rx_dropped,
            self.rx_invalid_descs,
            self.tx_invalid_descs,
            self.rx_ring_full,
            self.rx_fill_ring_empty_descs,
            self.tx_ring_empty_descs,
            self.received,
            self.sent,
            self.filled,
            self.completed,
        ]
    }
}

#[pymethods]
impl PyStats {
    /// The counters as a dict.
    fn _asdict(&self) -> Vec<(&'static str, u64)> {
        STAT_FIELDS.iter().copied().zip(self.values()).collect()
    }

    fn __repr__(&self) -> String {
        let body: Vec<String> =
            STAT_FIELDS.iter().zip(self.values()).map(|(k, v)| format!("{k}={v}")).collect();
        format!("Stats({})", body.join(", "))
    }
}

// ---------------------------------------------------------------------------------------------
// Rule

/// A match rule of the built-in program; every condition that is not None must hold.
///
/// ethertype: after at most one 802.1Q/802.1ad VLAN tag (0x0800 IPv4, 0x86DD IPv6, ...).
/// ip_proto: the IPv4 protocol or IPv6 next header, after up to four hop-by-hop, routing,
/// fragment and destination-options extension headers (17 UDP, 6 TCP, 1 ICMP, 58 ICMPv6).
/// dst_port: the TCP/UDP/UDP-Lite/SCTP/DCCP destination port; never matches a non-first
/// fragment. Rule() matches every packet.
#[pyclass(name = "Rule", module = "afxdp._native", frozen, eq, hash)]
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PyRule {
    rule: Rule,
}

/// An optional integer argument in `0..=max`; the error names the argument and the value.
fn opt_int_arg<T: TryFrom<i64>>(
    name: &str,
    value: Option<i64>,
    min: i64,
    max: i64,
) -> PyResult<Option<T>> {
    match value {
        None => Ok(None),
        Some(v) if (min..=max).contains(&v) => Ok(T::try_from(v).ok()),
        Some(v) => Err(PyValueError::new_err(format!(
            "invalid {name} {v}: must be from {min} to {max}, or None for any"
        ))),
    }
}

#[pymethods]
impl PyRule {
    #[new]
    #[pyo3(signature = (ethertype = None, ip_proto = None, dst_port = None))]
    fn new(ethertype: Option<i64>, ip_proto: Option<i64>, dst_port: Option<i64>) -> PyResult<Self> {
        Ok(PyRule {
            rule: Rule {
                ethertype: opt_int_arg(
                    "ethertype",
                    ethertype,
                    i64::from(Rule::MIN_ETHERTYPE),
                    0xffff,
                )?,
                ip_proto: opt_int_arg("ip_proto", ip_proto, 0, 255)?,
                dst_port: opt_int_arg("dst_port", dst_port, 0, 65535)?,
            },
        })
    }

    #[getter]
    fn ethertype(&self) -> Option<u16> {
        self.rule.ethertype
    }

    #[getter]
    fn ip_proto(&self) -> Option<u8> {
        self.rule.ip_proto
    }

    #[getter]
    fn dst_port(&self) -> Option<u16> {
        self.rule.dst_port
    }

    fn __repr__(&self) -> String {
        self.rule.to_string()
    }
}

/// The rules of an iterable of `Rule` (None: no rules).
fn rules_arg(rules: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<Rule>> {
    let Some(rules) = rules else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for (i, item) in rules.try_iter()?.enumerate() {
        let item = item?;
        let rule = item.cast::<PyRule>().map_err(|_| {
            PyTypeError::new_err(format!(
                "rules[{i}] is {}, not an afxdp.Rule",
                item.repr().map(|r| r.to_string()).unwrap_or_else(|_| "?".into())
            ))
        })?;
        out.push(rule.get().rule);
        if out.len() > MAX_RULES {
            return Err(bpf_to_py(BpfError::TooManyRules {
                count: rules.len().unwrap_or(out.len()),
                max: MAX_RULES,
            }));
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Program

/// An XDP program attached to an interface. The built-in one (`Program.attach`) redirects
/// packets that match its rules (all, without rules) on every queue with a registered socket to
/// that socket and passes everything else to the kernel stack; `Program.load` attaches a
/// program from the user's own object.
#[pyclass(name = "Program", module = "afxdp._native", frozen)]
pub struct PyProgram {
    prog: Mutex<Option<XdpProgram>>,
    ifname: String,
    /// XSKMAP entries this object made: queue -> socket fd.
    entries: Mutex<HashMap<u32, i32>>,
}

impl PyProgram {
    /// Whether `fd` is registered for `queue` (and the program still attached).
    fn has_entry(&self, queue: u32, fd: i32) -> bool {
        lock(&self.prog).is_some() && lock(&self.entries).get(&queue) == Some(&fd)
    }

    fn register_socket(slf: &Bound<'_, Self>, socket: &PySocket) -> PyResult<()> {
        let me = slf.get();
        let (queue, fd) = socket.queue_and_fd()?;
        me.with(|p| p.register(queue, fd))?;
        lock(&me.entries).insert(queue, fd);
        // The socket keeps its program (and so the attachment) alive.
        *lock(&socket.program) = Some(slf.clone().unbind());
        Ok(())
    }

    fn new(prog: XdpProgram, ifname: String) -> Self {
        PyProgram { prog: Mutex::new(Some(prog)), ifname, entries: Mutex::new(HashMap::new()) }
    }

    fn detached(&self) -> PyErr {
        PyValueError::new_err(format!("the program on {:?} is detached", self.ifname))
    }

    fn with<R>(&self, f: impl FnOnce(&mut XdpProgram) -> afxdp::Result<R>) -> PyResult<R> {
        let mut g = lock(&self.prog);
        let p = g.as_mut().ok_or_else(|| self.detached())?;
        f(p).map_err(to_py)
    }
}

#[pymethods]
impl PyProgram {
    /// Loads the built-in program and attaches it to `ifname`. `mode`: "auto" (native, else
    /// generic), "native" (driver) or "generic" (skb). Attached through a BPF link: it goes
    /// away when this object is closed or collected, and when the process dies.
    ///
    /// `rules`: an iterable of `Rule` (at most 16). Only packets matching one of them leave
    /// the kernel stack; None or empty: every packet of a queue with a registered socket.
    #[staticmethod]
    #[pyo3(signature = (ifname, mode = "auto", rules = None))]
    fn attach(
        py: Python<'_>,
        ifname: String,
        mode: &str,
        rules: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let mode = mode_arg(mode)?;
        let rules = rules_arg(rules)?;
        let name = ifname.clone();
        let prog = py
            .detach(move || {
                XdpProgram::attach_with_rules(&afxdp::Interface::by_name(&name)?, mode, &rules)
            })
            .map_err(to_py)?;
        Ok(Self::new(prog, ifname))
    }

    /// Loads XDP program `program` from an ELF object (a path or the bytes of one, built with
    /// aya or clang) and attaches it to `ifname`; sockets register into its XSKMAP `xsk_map`
    /// at their queue. With `program`/`xsk_map` None, the object's only XDP program / XSKMAP.
    /// Errors: ValueError naming a missing program or map or a map of the wrong type,
    /// VerifierError (with `.log`) when the kernel rejects the program.
    #[staticmethod]
    #[pyo3(signature = (obj, ifname, *, program = None, xsk_map = None, mode = "auto"))]
    fn load(
        py: Python<'_>,
        obj: &Bound<'_, PyAny>,
        ifname: String,
        program: Option<String>,
        xsk_map: Option<String>,
        mode: &str,
    ) -> PyResult<Self> {
        let mode = mode_arg(mode)?;
        // Bytes first: os.fspath() accepts bytes too and would take the object for a path.
        let object: Vec<u8> = if let Ok(bytes) = with_bytes(obj, |b| Ok(b.to_vec())) {
            bytes
        } else if let Ok(path) = obj.extract::<std::path::PathBuf>() {
            std::fs::read(&path).map_err(|e| {
                let msg = format!("reading the BPF object {}: {e}", path.display());
                match e.raw_os_error() {
                    Some(errno) => PyOSError::new_err((errno, msg, path.display().to_string())),
                    None => PyOSError::new_err(msg),
                }
            })?
        } else {
            return Err(PyTypeError::new_err(
                "obj must be a path (str or os.PathLike) or a bytes-like object holding an ELF object",
            ));
        };
        let name = ifname.clone();
        let prog = py
            .detach(move || {
                let iface = afxdp::Interface::by_name(&name)?;
                XdpProgram::load(&object, &iface, program.as_deref(), xsk_map.as_deref(), mode)
            })
            .map_err(to_py)?;
        Ok(Self::new(prog, ifname))
    }

    /// Replaces the match rules without reattaching, atomically for the data path (each
    /// packet is judged by the whole old or the whole new set). Takes ~10-30 ms.
    fn set_rules(&self, py: Python<'_>, rules: &Bound<'_, PyAny>) -> PyResult<()> {
        let rules = rules_arg(Some(rules))?;
        let mut g = lock(&self.prog);
        let p = g.as_mut().ok_or_else(|| self.detached())?;
        py.detach(|| p.set_rules(&rules)).map_err(to_py)
    }

    /// The rules in force, as a list (empty: every packet matches).
    #[getter]
    fn rules(&self) -> PyResult<Vec<PyRule>> {
        self.with(|p| Ok(p.rules().iter().map(|&rule| PyRule { rule }).collect()))
    }

    /// Hit counters of the rules in force since they were set: a list of (Rule, packets)
    /// pairs, packets counted for the first rule they matched.
    fn rule_stats(&self) -> PyResult<Vec<(PyRule, u64)>> {
        self.with(|p| {
            let hits = p.rule_hits()?;
            Ok(p.rules().iter().zip(hits).map(|(&rule, n)| (PyRule { rule }, n)).collect())
        })
    }

    /// Packets that matched no rule (and went to the kernel stack) since the rules were set.
    fn unmatched(&self) -> PyResult<u64> {
        self.with(XdpProgram::unmatched)
    }

    /// The XDP program's name in its object ("afxdp_redirect" for the built-in one).
    #[getter]
    fn program_name(&self) -> PyResult<String> {
        self.with(|p| Ok(p.program_name().to_owned()))
    }

    /// Puts `socket` into the XSKMAP at its queue: packets on that queue now reach it.
    fn register(slf: &Bound<'_, Self>, socket: &PySocket) -> PyResult<()> {
        Self::register_socket(slf, socket)
    }

    /// Removes whatever socket is registered for `queue`.
    fn unregister(&self, queue: i64) -> PyResult<()> {
        let queue = u32_arg("queue", queue)?;
        self.with(|p| p.unregister(queue))?;
        lock(&self.entries).remove(&queue);
        Ok(())
    }

    /// Detaches the program from the interface. Idempotent.
    fn detach(&self) -> PyResult<()> {
        let prog = lock(&self.prog).take();
        if let Some(mut p) = prog {
            p.detach().map_err(to_py)?;
        }
        Ok(())
    }

    /// Same as `detach()`.
    fn close(&self) -> PyResult<()> {
        self.detach()
    }

    #[getter]
    fn attached(&self) -> bool {
        lock(&self.prog).as_ref().is_some_and(XdpProgram::is_attached)
    }

    #[getter]
    fn closed(&self) -> bool {
        !self.attached()
    }

    #[getter]
    fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The mode actually in use: "native" or "generic" (None once detached).
    #[getter]
    fn mode(&self) -> Option<&'static str> {
        lock(&self.prog).as_ref().map(|p| p.mode().as_str())
    }

    /// Number of XSKMAP entries (queues that can hold a socket).
    #[getter]
    fn map_size(&self) -> PyResult<u32> {
        self.with(|p| Ok(p.map_size()))
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(
        &self,
        _t: Option<Bound<'_, PyAny>>,
        _v: Option<Bound<'_, PyAny>>,
        _tb: Option<Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        self.detach()?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        match self.mode() {
            Some(m) => format!("<afxdp.Program ifname={:?} mode={m}>", self.ifname),
            None => format!("<afxdp.Program ifname={:?} [detached]>", self.ifname),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Socket

/// An AF_XDP socket bound to one queue of an interface.
#[pyclass(name = "Socket", module = "afxdp._native", frozen)]
pub struct PySocket {
    sock: Mutex<Option<Socket>>,
    umem: Py<PyUmem>,
    program: Mutex<Option<Py<PyProgram>>>,
    ifname: String,
    queue: u32,
}

/// poll(2) events, as in the `select` module.
const POLLIN: i16 = libc::POLLIN;
/// Slice of a long wait, so Ctrl-C is seen promptly.
const WAIT_SLICE: Duration = Duration::from_millis(100);

impl PySocket {
    fn with<R>(&self, f: impl FnOnce(&mut Socket) -> afxdp::Result<R>) -> PyResult<R> {
        let mut g = lock(&self.sock);
        let s = g.as_mut().ok_or_else(|| closed("Socket"))?;
        f(s).map_err(to_py)
    }

    fn queue_and_fd(&self) -> PyResult<(u32, i32)> {
        self.with(|s| Ok((s.queue(), s.fd())))
    }

    /// Waits up to `timeout` (None: forever) for `events`, without the GIL and without holding
    /// the socket; returns whether they are ready. Checks for signals between slices.
    fn wait(&self, py: Python<'_>, events: i16, timeout: Option<Duration>) -> PyResult<i16> {
        let handle = self.with(|s| s.poll_handle())?;
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let slice = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()).min(WAIT_SLICE),
                None => WAIT_SLICE,
            };
            let h = handle.clone();
            match py.detach(move || h.poll(events, slice)) {
                Ok(0) => {}
                Ok(revents) => return Ok(revents),
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) => return Err(to_py(Error::Syscall { call: "poll(AF_XDP)", source: e })),
            }
            py.check_signals()?;
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(0);
            }
        }
    }
}

#[pymethods]
impl PySocket {
    #[new]
    #[pyo3(signature = (ifname, queue = 0, umem = None, program = None, *, rx_size = 2048, tx_size = 2048,
                        fill_size = None, comp_size = None, zerocopy = None, need_wakeup = true, autofill = true))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        ifname: String,
        queue: i64,
        umem: Option<Py<PyUmem>>,
        program: Option<Py<PyProgram>>,
        rx_size: i64,
        tx_size: i64,
        fill_size: Option<i64>,
        comp_size: Option<i64>,
        zerocopy: Option<bool>,
        need_wakeup: bool,
        autofill: bool,
    ) -> PyResult<Self> {
        let queue = u32_arg("queue", queue)?;
        let rx_size = u32_arg("rx_size", rx_size)?;
        let tx_size = u32_arg("tx_size", tx_size)?;
        let fill_size = fill_size.map(|n| u32_arg("fill_size", n)).transpose()?;
        let comp_size = comp_size.map(|n| u32_arg("comp_size", n)).transpose()?;
        let cfg = SocketConfig {
            zerocopy,
            need_wakeup,
            autofill,
            ..SocketConfig::with_sizes(rx_size, tx_size, fill_size, comp_size)
        };
        let umem = match umem {
            Some(u) => u,
            None => Py::new(py, PyUmem::new(4096, 4096, 0)?)?,
        };
        let core_umem = umem.get().get()?;
        let name = ifname.clone();
        let sock = py
            .detach(move || Socket::open(&afxdp::Interface::by_name(&name)?, queue, core_umem, cfg))
            .map_err(to_py)?;
        let me = PySocket {
            sock: Mutex::new(Some(sock)),
            umem,
            program: Mutex::new(None),
            ifname,
            queue,
        };
        if let Some(p) = program {
            // On failure `me` is dropped: the socket closes, nothing stays registered.
            PyProgram::register_socket(p.bind(py), &me)?;
        }
        Ok(me)
    }

    /// Hands up to `max` free frames (default: all that fit) to the kernel's fill ring.
    #[pyo3(signature = (max = None))]
    fn fill(&self, max: Option<i64>) -> PyResult<u32> {
        let max = match max {
            Some(m) => u32_arg("max", m)?,
            None => u32::MAX,
        };
        self.with(|s| s.fill(max))
    }

    /// Receives up to `max` frames. With `timeout` > 0 waits (without the GIL) up to that many
    /// seconds for the first frame; None waits until one arrives. Returns a possibly empty batch.
    #[pyo3(signature = (max = 64, timeout = 0.0))]
    fn recv(&self, py: Python<'_>, max: i64, timeout: Option<f64>) -> PyResult<PyFrameBatch> {
        let max = u32_arg("max", max)?;
        let timeout = timeout_arg(timeout)?;
        let batch = self.with(|s| s.recv(max))?;
        if !batch.is_empty() || timeout == Some(Duration::ZERO) {
            return Ok(PyFrameBatch::new(batch));
        }
        drop(batch);
        self.wait(py, POLLIN, timeout)?;
        Ok(PyFrameBatch::new(self.with(|s| s.recv(max))?))
    }

    /// Takes up to `n` free frames to write and send (each of length 0 until written).
    fn alloc(&self, n: i64) -> PyResult<PyFrameBatch> {
        let n = u32_arg("n", n)?;
        Ok(PyFrameBatch::new(self.with(|s| s.alloc(n as usize))?))
    }

    /// Queues the batch's frames for transmission and wakes the kernel; returns how many were
    /// queued. When all were queued the batch is closed. If the tx ring had room for only some,
    /// those leave the batch and the rest stay in it, re-indexed from 0: send it again later
    /// (after `complete()`), or release it.
    fn send(&self, batch: &PyFrameBatch) -> PyResult<u32> {
        batch.check_no_exports("send")?;
        let n = batch.with(|b| self.with(|s| s.send(b)))?;
        if batch.__len__() == 0 {
            batch.end("sent");
        }
        Ok(n)
    }

    /// Reclaims transmitted frames from the completion ring; returns how many.
    #[pyo3(signature = (max = None))]
    fn complete(&self, max: Option<i64>) -> PyResult<u32> {
        let max = match max {
            Some(m) => u32_arg("max", m)?,
            None => u32::MAX,
        };
        self.with(|s| s.complete(max))
    }

    /// Returns a batch's frames to the free pool (same as `batch.release()`).
    fn release(&self, batch: &PyFrameBatch) -> PyResult<()> {
        let foreign = lock(&batch.batch)
            .as_ref()
            .is_some_and(|b| lock(&self.sock).as_ref().is_some_and(|s| !b.umem().same(s.umem())));
        if foreign {
            return Err(PyValueError::new_err(
                "the batch belongs to another UMEM than this socket's; release it with batch.release() or the socket it came from",
            ));
        }
        batch.release_now()
    }

    /// Wakes the kernel to transmit frames still waiting on the tx ring.
    fn kick(&self) -> PyResult<()> {
        self.with(|s| s.kick_tx())
    }

    /// Waits up to `timeout` seconds (None: forever) for `events` (select.POLLIN/POLLOUT);
    /// returns the ready mask, 0 on timeout.
    #[pyo3(signature = (timeout = 0.0, events = POLLIN))]
    fn poll(&self, py: Python<'_>, timeout: Option<f64>, events: i16) -> PyResult<i16> {
        let timeout = timeout_arg(timeout)?;
        self.wait(py, events, timeout)
    }

    /// Kernel and library counters.
    fn stats(&self) -> PyResult<PyStats> {
        self.with(|s| s.stats()).map(PyStats::from)
    }

    /// Frames sent and not completed yet.
    #[getter]
    fn in_flight(&self) -> PyResult<u32> {
        self.with(|s| Ok(s.in_flight()))
    }

    /// Frames waiting on the tx ring for the kernel.
    #[getter]
    fn tx_pending(&self) -> PyResult<u32> {
        self.with(|s| s.tx_pending())
    }

    /// Frames waiting on the rx ring.
    #[getter]
    fn rx_available(&self) -> PyResult<u32> {
        self.with(|s| s.rx_available())
    }

    /// The file descriptor, for select/selectors/asyncio; -1 once closed.
    fn fileno(&self) -> i32 {
        lock(&self.sock).as_ref().map_or(-1, Socket::fd)
    }

    /// Closes the socket (the kernel also drops it from the XSKMAP). Idempotent. Batches already
    /// received stay usable; their frames go back to the pool when released. The kernel waits
    /// for an RCU grace period (~10 ms) on close; other Python threads run meanwhile.
    fn close(&self, py: Python<'_>) {
        let sock = lock(&self.sock).take();
        if let Some(sock) = sock {
            py.detach(move || drop(sock));
        }
        lock(&self.program).take();
    }

    #[getter]
    fn closed(&self) -> bool {
        lock(&self.sock).is_none()
    }

    #[getter]
    fn ifname(&self) -> &str {
        &self.ifname
    }

    #[getter]
    fn queue(&self) -> u32 {
        self.queue
    }

    /// Whether the kernel runs the socket in zero-copy mode (False: copy mode).
    #[getter]
    fn zerocopy(&self) -> PyResult<bool> {
        self.with(|s| Ok(s.zerocopy()))
    }

    /// The Umem the socket uses.
    #[getter]
    fn umem(&self, py: Python<'_>) -> Py<PyUmem> {
        self.umem.clone_ref(py)
    }

    /// The Program this socket is registered with (at creation or by `Program.register`), or
    /// None (never registered, unregistered, or the program detached): then it receives
    /// nothing until a program registers it.
    #[getter]
    fn program(&self, py: Python<'_>) -> Option<Py<PyProgram>> {
        let fd = lock(&self.sock).as_ref().map(Socket::fd)?;
        lock(&self.program)
            .as_ref()
            .filter(|p| p.get().has_entry(self.queue, fd))
            .map(|p| p.clone_ref(py))
    }

    /// Whether a live Program has this socket in its XSKMAP (it receives only then).
    #[getter]
    fn registered(&self) -> PyResult<bool> {
        let fd = self.with(|s| Ok(s.fd()))?;
        Ok(lock(&self.program).as_ref().is_some_and(|p| p.get().has_entry(self.queue, fd)))
    }

    /// How many frames autofill keeps on the fill ring.
    #[getter]
    fn fill_target(&self) -> PyResult<u32> {
        self.with(|s| Ok(s.fill_target()))
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        _t: Option<Bound<'_, PyAny>>,
        _v: Option<Bound<'_, PyAny>>,
        _tb: Option<Bound<'_, PyAny>>,
    ) -> bool {
        self.close(py);
        false
    }

    fn __repr__(&self) -> String {
        let g = lock(&self.sock);
        match g.as_ref() {
            None => {
                format!("<afxdp.Socket ifname={:?} queue={} [closed]>", self.ifname, self.queue)
            }
            Some(s) => {
                let mode = if s.zerocopy() { "zerocopy" } else { "copy" };
                let registered = lock(&self.program)
                    .as_ref()
                    .is_some_and(|p| p.get().has_entry(self.queue, s.fd()));
                let reg = if !s.has_rx() {
                    "tx only"
                } else if registered {
                    "registered"
                } else {
                    "unregistered: receives nothing until a Program registers it"
                };
                format!(
                    "<afxdp.Socket ifname={:?} queue={} fd={} mode={mode} {reg}>",
                    self.ifname,
                    self.queue,
                    s.fd()
                )
            }
        }
    }
}

#[pymodule]
mod _native {
    #[pymodule_export]
    use super::VerifierError;
    #[pymodule_export]
    use super::generate::generate;
    #[pymodule_export]
    use super::{PyFrame, PyFrameBatch, PyProgram, PyRule, PySocket, PyStats, PyUmem};

    #[pymodule_init]
    fn init(m: &pyo3::Bound<'_, pyo3::types::PyModule>) -> pyo3::PyResult<()> {
        use pyo3::types::PyModuleMethods;
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        m.add("POLLIN", libc::POLLIN)?;
        m.add("POLLOUT", libc::POLLOUT)?;
        Ok(())
    }
}
