//! `Frame`: one frame of a `FrameBatch`, with item access and a zero-copy buffer export.

use std::ffi::c_int;
use std::sync::atomic::Ordering;

use afxdp::rxmeta::ClockConverter;
use afxdp::umem::Batch;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyInt, PySlice};

use crate::batch::PyFrameBatch;
use crate::buffer::fill_view;
use crate::convert::{Index, Int, u32_arg, with_bytes};
use crate::errors::{Error, Result};

/// One frame of a batch: `len(frame)`, `bytes(frame)`, `frame[a:b]`, `frame[a:b] = ...`,
/// `frame.write(packet)`, `frame.length = n`, and a writable zero-copy `memoryview(frame)`.
#[pyclass(name = "Frame", module = "afxdp._native", frozen)]
pub struct PyFrame {
    batch: Py<PyFrameBatch>,
    pos: usize,
    index: u32,
    /// The batch object's generation when the frame was taken (see `PyFrameBatch::reuse`).
    generation: u64,
}

impl PyFrame {
    pub fn new(batch: Py<PyFrameBatch>, pos: usize, index: u32, generation: u64) -> Self {
        PyFrame { batch, pos, index, generation }
    }

    /// Runs `f` with the batch and this frame's position, after checking the batch still owns it.
    /// A partial send takes frames off the batch's front, so the frame may have moved down; its
    /// index is unique in the batch, so it is found by that.
    fn with<R>(&self, f: impl FnOnce(&mut Batch, usize) -> Result<R>) -> Result<R> {
        let index = self.index;
        let pos = self.pos;
        self.batch.get().with_generation(self.generation, |b| {
            let found = match b.descs().get(pos) {
                Some(d) if d.index == index => Some(pos),
                _ => b.descs().iter().position(|d| d.index == index),
            };
            match found {
                Some(pos) => f(b, pos),
                None => Err(Error::value(format!(
                    "frame {index} is no longer in this batch (it was sent)"
                ))),
            }
        })
    }
}

/// A converted `frame[key]`: conversion runs the key's Python code (`__index__`), so it happens
/// before the batch is locked.
enum Key {
    Index(isize),
    /// A step-1 slice, before clamping to the frame (as `PySlice_Unpack` gives it).
    Slice(isize, isize),
}

impl Key {
    fn convert(key: &Bound<'_, PyAny>) -> Result<Key> {
        let Ok(slice) = key.cast::<PySlice>() else {
            return Ok(Key::Index(key.extract::<Index>()?.0));
        };
        let (mut start, mut stop, mut step) = (0, 0, 0);
        // SAFETY: `slice` is a live slice object (we hold a reference and the GIL) and the
        // three out-pointers are valid locals.
        let rc = unsafe { ffi::PySlice_Unpack(slice.as_ptr(), &mut start, &mut stop, &mut step) };
        if rc < 0 {
            return Err(PyErr::fetch(key.py()).into());
        }
        if step != 1 {
            return Err(Error::value("frame slices must have step 1"));
        }
        Ok(Key::Slice(start, stop))
    }
}

/// The byte range `start..stop` of a step-1 slice in a frame of `len` bytes, clamped as Python
/// clamps slices.
fn slice_range(start: isize, stop: isize, len: usize) -> (usize, usize) {
    let clamp = |i: isize| -> usize {
        if i < 0 { len.saturating_sub(i.unsigned_abs()) } else { i.unsigned_abs().min(len) }
    };
    let (start, stop) = (clamp(start), clamp(stop));
    (start, stop.max(start))
}

/// The byte position of index `k` (negative: from the end) in a frame of `len` bytes.
fn byte_position(k: isize, len: usize) -> Result<usize> {
    let j = if k < 0 { len.checked_sub(k.unsigned_abs()) } else { Some(k.unsigned_abs()) };
    match j {
        Some(j) if j < len => Ok(j),
        _ => Err(Error::index(format!("index {k} out of range for a {len}-byte frame"))),
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
    fn set_length(&self, length: Int) -> Result<()> {
        let length = length.get("length")?;
        let length = usize::try_from(length)
            .map_err(|_| Error::value(format!("invalid length {length}: must be >= 0")))?;
        self.with(|b, i| Ok(b.set_len(i, length)?))
    }

    /// Whether the packet continues in the next frame of the batch (multi-buffer: a packet
    /// longer than a frame is a chain of frames, each but the last with `more` set). Set it on
    /// frames you send as a chain; only a `Socket(..., multi_buffer=True)` sends them.
    #[getter]
    fn get_more(&self) -> Result<bool> {
        self.with(|b, i| Ok(b.more(i)?))
    }

    #[setter]
    fn set_more(&self, more: bool) -> Result<()> {
        self.with(|b, i| Ok(b.set_more(i, more)?))
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

    /// The packet start as a byte offset into the UMEM (`memoryview(umem)[addr:]`). Aligned
    /// mode's rings carry this; unaligned mode's carry the frame start with the offset in the
    /// top 16 bits.
    #[getter]
    fn addr(&self) -> Result<u64> {
        self.with(|b, i| {
            let d = b.descs()[i];
            Ok(b.umem().addr_of(d.index) + u64::from(d.offset))
        })
    }

    /// When the XDP program saw this packet: nanoseconds since the Unix epoch, the clock of
    /// `time.time_ns()` (the program stamps CLOCK_TAI, converted exactly). None when the
    /// program wrote no receive metadata for this packet (`Program.attach(...,
    /// timestamps=True)` does).
    #[getter]
    fn rx_timestamp(&self) -> Result<Option<u64>> {
        let mut clocks = ClockConverter::default();
        self.with(|b, i| Ok(b.rx_meta(i, &mut clocks)?.and_then(|m| m.timestamp)))
    }

    /// The device's receive timestamp (ns, the device's clock), or None: the program did not
    /// record one (the built-in program does with `device_metadata=True` when the device has
    /// one: see docs/timestamps.md).
    #[getter]
    fn rx_hw_timestamp(&self) -> Result<Option<u64>> {
        let mut clocks = ClockConverter::default();
        self.with(|b, i| Ok(b.rx_meta(i, &mut clocks)?.and_then(|m| m.hw_timestamp)))
    }

    /// The device's receive (RSS) hash, or None: the program did not record one (the built-in
    /// program does with `device_metadata=True` when the device has one: see
    /// docs/timestamps.md).
    #[getter]
    fn rx_hash(&self) -> Result<Option<u32>> {
        let mut clocks = ClockConverter::default();
        self.with(|b, i| Ok(b.rx_meta(i, &mut clocks)?.and_then(|m| m.hash.map(|(h, _)| h))))
    }

    /// Asks the kernel to fill in a checksum when the frame is sent (a Umem with
    /// `tx_metadata=True`): the Internet checksum from byte `start` of the packet to its end,
    /// stored at byte `start + offset` (e.g. UDP over IPv4: `start=34, offset=6`). As with any
    /// checksum offload, the field must already hold the checksum of the pseudo-header. Write
    /// the packet first: the 2-byte field must lie within its length (ValueError naming the
    /// value otherwise; `send` checks again). See `docs/timestamps.md` for what copy mode does.
    fn request_checksum(&self, start: Int, offset: Int) -> Result<()> {
        let start = u32_arg("start", start)?;
        let offset = u32_arg("offset", offset)?;
        self.with(|b, i| Ok(b.request_checksum(i, start, offset)?))
    }

    /// Asks for the frame's completion timestamp (a Umem with `tx_metadata=True`):
    /// `Socket.complete()` reads it when the frame comes back, and `Socket.tx_timestamps()`
    /// hands it out with the frame's index.
    fn request_tx_timestamp(&self) -> Result<()> {
        self.with(|b, i| Ok(b.request_tx_timestamp(i)?))
    }

    /// The checksum request as `(start, offset)`, or None.
    #[getter]
    fn checksum_request(&self) -> Result<Option<(u16, u16)>> {
        self.with(|b, i| Ok(b.tx_request(i)?.checksum))
    }

    /// Whether the completion timestamp is requested.
    #[getter]
    fn tx_timestamp_requested(&self) -> Result<bool> {
        self.with(|b, i| Ok(b.tx_request(i)?.timestamp))
    }

    /// When the device should send the frame: ns since the epoch (the clock of
    /// `time.time_ns()`; written as CLOCK_TAI), or None. Only a launch-time capable device
    /// or qdisc acts on it; copy mode (veth and every driver without zero-copy) sends at once.
    #[getter]
    fn get_launch_time(&self) -> Result<Option<u64>> {
        self.with(|b, i| Ok(b.tx_request(i)?.launch_time))
    }

    #[setter]
    fn set_launch_time(&self, launch_time: Option<Int>) -> Result<()> {
        let launch_time = launch_time.map(|t| t.get_u64("launch_time")).transpose()?;
        self.with(|b, i| Ok(b.set_launch_time(i, launch_time)?))
    }

    /// Drops every transmit request of the frame (it is then sent without metadata).
    fn clear_tx_requests(&self) -> Result<()> {
        self.with(|b, i| Ok(b.clear_tx_request(i)?))
    }

    /// Copies `packet` into the frame and sets the length to its size.
    fn write(&self, packet: &Bound<'_, PyAny>) -> Result<()> {
        with_bytes(packet, |p| self.with(|b, i| Ok(b.write(i, p)?)))
    }

    fn __bytes__<'py>(&self, py: Python<'py>) -> Result<Bound<'py, PyBytes>> {
        // Copy under the lock; build the Python object after (allocating may run a __del__).
        let data = self.with(|b, i| Ok(b.data(i)?.to_vec()))?;
        Ok(PyBytes::new(py, &data))
    }

    fn __getitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> Result<Py<PyAny>> {
        let key = Key::convert(key)?;
        // Copy under the lock; build the Python object after (allocating may run a __del__).
        let value = self.with(|b, i| {
            let data = b.data(i)?;
            Ok(match key {
                Key::Index(k) => Ok(data[byte_position(k, data.len())?]),
                Key::Slice(start, stop) => {
                    let (start, end) = slice_range(start, stop, data.len());
                    Err(data[start..end].to_vec())
                }
            })
        })?;
        Ok(match value {
            Ok(byte) => PyInt::new(py, byte).into_any().unbind(),
            Err(bytes) => PyBytes::new(py, &bytes).into_any().unbind(),
        })
    }

    /// `frame[i] = byte` or `frame[a:b] = data` (same length: frames do not resize).
    fn __setitem__(&self, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> Result<()> {
        match Key::convert(key)? {
            Key::Index(k) => {
                let byte: u8 = value
                    .extract()
                    .map_err(|_| Error::value("a frame byte must be an int from 0 to 255"))?;
                self.with(|b, i| {
                    // The checked length: numpy may have written one beyond the frame.
                    let j = byte_position(k, b.data(i)?.len())?;
                    b.area_mut(i)?[j] = byte;
                    Ok(())
                })
            }
            Key::Slice(start, stop) => with_bytes(value, |v| {
                self.with(|b, i| {
                    let (start, end) = slice_range(start, stop, b.data(i)?.len());
                    if v.len() != end - start {
                        return Err(Error::value(format!(
                            "frame slice assignment must keep the length: {} bytes into a slice of {}",
                            v.len(),
                            end - start
                        )));
                    }
                    b.area_mut(i)?[start..end].copy_from_slice(v);
                    Ok(())
                })
            }),
        }
    }

    fn __repr__(&self) -> String {
        match self.with(|b, i| Ok((b.descs()[i].len, b.descs()[i].more()))) {
            Ok((len, true)) => {
                format!("<afxdp.Frame index={} length={len} more>", self.index)
            }
            Ok((len, false)) => format!("<afxdp.Frame index={} length={len}>", self.index),
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
        let (ptr, len) = me.with(|b, i| {
            // `data` checks the length against the frame (numpy may have written it).
            let len = b.data(i)?.len();
            let ptr = b.data_ptr(i)?;
            // Counted under the batch's lock, where send and release check it.
            batch.exports.fetch_add(1, Ordering::AcqRel);
            Ok((ptr, len))
        })?;
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
