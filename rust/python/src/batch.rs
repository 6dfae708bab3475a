//! `FrameBatch`: frames owned by the user, received or allocated.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use afxdp::umem::Batch;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use crate::array::{Field, PyUIntArray};
use crate::convert::{Index, Int, norm_index, u32_arg, with_bytes};
use crate::errors::{Error, Result};
use crate::frame::PyFrame;
use crate::packet::PyPacket;
use crate::sync::lock;

/// Frames owned by you: received ones, or allocated ones to fill and send.
///
/// `send()` and `release()` consume the frames; afterwards the batch is empty and closed, and
/// using one of its frames raises. While a memoryview of one of its frames, or one of its
/// `lengths`/`indices`/`offsets` views (or a memoryview or numpy array made from one), is alive,
/// the batch cannot be sent or released (BufferError). Leaving a `with batch:` block releases
/// whatever the batch still owns. A batch from `Socket.batches()` or `Port.batches()` is
/// refilled by the iterator's next step once it has ended (the same object, new frames); its
/// earlier frames stay gone.
#[pyclass(name = "FrameBatch", module = "afxdp._native", frozen)]
pub struct PyFrameBatch {
    pub(crate) batch: Mutex<Option<Batch>>,
    /// Live exports: buffer exports of its frames (`Frame.__getbuffer__`) and live views of
    /// its descriptors (`lengths`, `indices`, `offsets`). Counted and checked under the
    /// `batch` lock, so a send or release never runs while one is being taken.
    pub(crate) exports: AtomicUsize,
    ended: Mutex<&'static str>,
    /// The queue the frames were received on, as [`encode_queue`] has it (None: allocated).
    /// Atomic because `batches()` hands the same object out again for its next batch.
    queue: AtomicU64,
    /// Bumped (under the `batch` lock) each time [`PyFrameBatch::reuse`] gives the object new
    /// frames, so a Frame or Packet taken from an earlier batch it held never reaches them.
    generation: AtomicU64,
}

/// A batch's queue in one word: `1 << 32 | queue`, or 0 for None.
fn encode_queue(queue: Option<u32>) -> u64 {
    queue.map_or(0, |q| 1 << 32 | u64::from(q))
}

impl PyFrameBatch {
    pub fn new(batch: Batch) -> Self {
        Self::received(batch, None)
    }

    /// A batch received on `queue`.
    pub fn received(batch: Batch, queue: Option<u32>) -> Self {
        PyFrameBatch {
            batch: Mutex::new(Some(batch)),
            exports: AtomicUsize::new(0),
            ended: Mutex::new(""),
            queue: AtomicU64::new(encode_queue(queue)),
            generation: AtomicU64::new(0),
        }
    }

    /// Makes this ended batch object hold `batch`, received on `queue`, as if it were new:
    /// `batches()` hands the same object out for every batch instead of allocating one. Gives
    /// `batch` back when this object still holds frames (the user has not let it go) or is
    /// exported.
    pub(crate) fn reuse(&self, batch: Batch, queue: Option<u32>) -> std::result::Result<(), Batch> {
        let mut g = lock(&self.batch);
        if g.is_some() || self.exports.load(Ordering::Acquire) != 0 {
            return Err(batch);
        }
        *lock(&self.ended) = "";
        self.queue.store(encode_queue(queue), Ordering::Relaxed);
        self.generation.fetch_add(1, Ordering::Relaxed);
        *g = Some(batch);
        Ok(())
    }

    /// Which of the batches this object held it holds now (see [`PyFrameBatch::reuse`]); read
    /// it under the `batch` lock, in [`PyFrameBatch::with`], to pair it with the frames.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// [`PyFrameBatch::with`] for a Frame or Packet taken when the object held `generation`:
    /// refuses once the object holds a later batch.
    pub(crate) fn with_generation<R>(
        &self,
        generation: u64,
        f: impl FnOnce(&mut Batch) -> Result<R>,
    ) -> Result<R> {
        self.with(|b| {
            if self.generation() == generation {
                f(b)
            } else {
                Err(Error::value(
                    "this frame's FrameBatch was released (batches() reuses the object for the \
                     next batch); its frames are gone",
                ))
            }
        })
    }

    /// The queue the frames were received on.
    pub fn queue(&self) -> Option<u32> {
        let q = self.queue.load(Ordering::Relaxed);
        (q != 0).then_some(q as u32)
    }

    pub fn ended_error(&self) -> Error {
        let how = *lock(&self.ended);
        Error::value(format!(
            "this FrameBatch was {how}; its frames are gone",
            how = if how.is_empty() { "closed" } else { how }
        ))
    }

    /// Runs `f` on the live batch, under its lock: `f` must not run Python code.
    pub fn with<R>(&self, f: impl FnOnce(&mut Batch) -> Result<R>) -> Result<R> {
        let mut g = lock(&self.batch);
        match g.as_mut() {
            Some(b) => f(b),
            None => {
                drop(g);
                Err(self.ended_error())
            }
        }
    }

    /// Checks that nothing exports the batch's frames or descriptors; call it under the
    /// `batch` lock, where exports are counted.
    fn check_no_exports(&self, action: &str) -> Result<()> {
        match self.exports.load(Ordering::Acquire) {
            0 => Ok(()),
            n => Err(Error::buffer(format!(
                "cannot {action} a FrameBatch while {n} export(s) of it are alive (memoryviews \
                 of its frames, its lengths/indices/offsets views, or numpy arrays made from \
                 them); release them first"
            ))),
        }
    }

    /// Sends the batch with `send` (which queues frames and removes them from the front),
    /// under the batch's lock, refusing while exports are alive; ends the batch ("sent") once
    /// every frame left it.
    pub fn send_with(&self, send: impl FnOnce(&mut Batch) -> Result<u32>) -> Result<u32> {
        let mut g = lock(&self.batch);
        let Some(batch) = g.as_mut() else {
            drop(g);
            return Err(self.ended_error());
        };
        self.check_no_exports("send")?;
        let n = send(batch)?;
        if batch.is_empty() {
            *lock(&self.ended) = "sent";
            let batch = g.take();
            drop(g);
            drop(batch);
        }
        Ok(n)
    }

    pub fn release_now(&self) -> Result<()> {
        // One lock of the batch: check for exports, take the frames and say why they are gone
        // before letting go.
        let mut g = lock(&self.batch);
        if g.is_some() {
            self.check_no_exports("release")?;
        }
        if let Some(batch) = g.take() {
            *lock(&self.ended) = "released";
            drop(g);
            drop(batch);
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        lock(&self.batch).as_ref().map_or(0, Batch::len)
    }
}

fn frame_position(i: isize, len: usize) -> Result<usize> {
    norm_index(i, len)
        .ok_or_else(|| Error::index(format!("frame index {i} out of range for a batch of {len}")))
}

#[pymethods]
impl PyFrameBatch {
    fn __len__(&self) -> usize {
        self.len()
    }

    /// The rx queue the frames were received on (`Socket.recv`, `Port.recv`); None for frames
    /// from `alloc()`. `Port.send(batch)` sends on this queue.
    #[getter(queue)]
    fn get_queue(&self) -> Option<u32> {
        self.queue()
    }

    fn __getitem__(slf: &Bound<'_, Self>, i: Index) -> Result<PyFrame> {
        let Index(i) = i;
        let me = slf.get();
        let (pos, index, generation) = me.with(|b| {
            let pos = frame_position(i, b.len())?;
            Ok((pos, b.descs()[pos].index, me.generation()))
        })?;
        Ok(PyFrame::new(slf.clone().unbind(), pos, index, generation))
    }

    fn __iter__(slf: &Bound<'_, Self>) -> Result<Py<PyAny>> {
        let py = slf.py();
        let me = slf.get();
        let frames: Vec<PyFrame> = me.with(|b| {
            let generation = me.generation();
            Ok(b.descs()
                .iter()
                .enumerate()
                .map(|(pos, d)| PyFrame::new(slf.clone().unbind(), pos, d.index, generation))
                .collect())
        })?;
        let list = PyList::new(py, frames)?;
        Ok(list.try_iter()?.into_any().unbind())
    }

    /// Copies `packet` into every frame and sets every length (one Rust loop); each frame is then
    /// a whole packet (on a multi-buffer batch, `more` is cleared). Either all frames are
    /// written or, if the packet is too long for them, none.
    fn write_all(&self, packet: &Bound<'_, PyAny>) -> Result<()> {
        with_bytes(packet, |p| self.with(|b| Ok(b.write_all(p)?)))
    }

    /// Writes `data` at byte `offset` of every packet (e.g. a MAC address), leaving the lengths
    /// as they are: in its first frame, where a packet spans several (multi-buffer). Every
    /// packet's first frame must be at least `offset + len(data)` long.
    fn write_at(&self, offset: Int, data: &Bound<'_, PyAny>) -> Result<()> {
        let offset = u32_arg("offset", offset)? as usize;
        with_bytes(data, |d| self.with(|b| Ok(b.write_at(offset, d)?)))
    }

    /// Swaps the destination and source MAC addresses of every packet in place (l2fwd), in
    /// one Rust loop: in its first frame, where a packet spans several (multi-buffer). Either
    /// every packet is edited or, if a first frame is shorter than 12 bytes, none.
    fn swap_macs(&self) -> Result<()> {
        self.with(|b| Ok(b.swap_macs()?))
    }

    /// Copies the packets of `src` (a batch of any socket, e.g. received on another
    /// interface) into this batch's frames with their lengths and chain flags (`more`);
    /// returns how many frames: min(len(self), len(src)), less those of a multi-buffer packet
    /// that would not fit whole. `src` is left as it was.
    fn copy_from(&self, src: &PyFrameBatch) -> Result<usize> {
        if std::ptr::eq(self, src) {
            return Err(Error::value("copy_from: the source is this batch"));
        }
        // try_lock: two threads copying between the same two batches in opposite directions
        // must not deadlock.
        let guard = match src.batch.try_lock() {
            Ok(g) => g,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                return Err(Error::value(
                    "copy_from: the source batch is in use by another thread",
                ));
            }
        };
        let Some(source) = guard.as_ref() else {
            drop(guard);
            return Err(src.ended_error());
        };
        self.with(|b| Ok(b.copy_from(source)?))
    }

    /// The total packet length of the frames, in bytes (for byte rates without building the
    /// `lengths` list).
    #[getter]
    fn nbytes(&self) -> Result<u64> {
        self.with(|b| Ok(b.descs().iter().map(|d| u64::from(d.len)).sum()))
    }

    /// The packet length of every frame: a writable UIntArray view of u32 over the batch's
    /// descriptors (buffer protocol, format "I", stride 16 bytes; no copy). Writing it (e.g.
    /// `numpy.asarray(batch.lengths)[:] = 60`) sets the frames' lengths; `send()` checks each
    /// against its frame. While the view lives the batch cannot be sent or released.
    #[getter]
    fn lengths(slf: &Bound<'_, Self>) -> Result<PyUIntArray> {
        PyUIntArray::field(slf, Field::Len)
    }

    /// The UMEM frame index of every frame (the row in `Umem.frames`): a read-only UIntArray
    /// view of u32 over the batch's descriptors (as `lengths`).
    #[getter]
    fn indices(slf: &Bound<'_, Self>) -> Result<PyUIntArray> {
        PyUIntArray::field(slf, Field::Index)
    }

    /// Where each packet starts inside its frame (the column in `Umem.frames`): a read-only
    /// UIntArray view of u32 over the batch's descriptors (as `lengths`).
    #[getter]
    fn offsets(slf: &Bound<'_, Self>) -> Result<PyUIntArray> {
        PyUIntArray::field(slf, Field::Offset)
    }

    /// The UMEM address of every packet start (`Frame.addr`, the byte offset in
    /// `memoryview(umem)`): a UIntArray of u64, computed and copied when read (the
    /// descriptors do not store it: it is `indices * frame_size + offsets`). It does not hold
    /// the batch.
    #[getter]
    fn addresses(&self) -> Result<PyUIntArray> {
        let addresses = self.with(|b| {
            let umem = b.umem();
            Ok(b.descs().iter().map(|d| umem.addr_of(d.index) + u64::from(d.offset)).collect())
        })?;
        Ok(PyUIntArray::u64s(addresses))
    }

    /// Every frame's `rx_timestamp` (ns since the epoch), 0 for a frame without one: a
    /// UIntArray of u64, copied when read (one clock measurement for the whole batch). It
    /// does not hold the batch.
    #[getter]
    fn rx_timestamps(&self) -> Result<PyUIntArray> {
        Ok(PyUIntArray::u64s(self.with(|b| Ok(b.rx_timestamps()?))?))
    }

    /// Every frame's `rx_hw_timestamp` (the device's clock), 0 for a frame without one: a
    /// UIntArray of u64, copied when read.
    #[getter]
    fn rx_hw_timestamps(&self) -> Result<PyUIntArray> {
        Ok(PyUIntArray::u64s(self.with(|b| Ok(b.rx_hw_timestamps()?))?))
    }

    /// Every frame's `rx_hash`, 0 for a frame without one (`Frame.rx_hash` tells a hash of 0
    /// apart): a UIntArray of u64, copied when read.
    #[getter]
    fn rx_hashes(&self) -> Result<PyUIntArray> {
        Ok(PyUIntArray::u64s(self.with(|b| Ok(b.rx_hashes()?))?))
    }

    /// `Frame.request_checksum(start, offset)` on every frame that starts a packet (a Umem
    /// with `tx_metadata=True`). Checked first: either every frame gets the request or, if
    /// one's packet is too short, none (ValueError naming the value and the frame).
    fn request_checksum(&self, start: Int, offset: Int) -> Result<()> {
        let start = u32_arg("start", start)?;
        let offset = u32_arg("offset", offset)?;
        self.with(|b| Ok(b.request_checksums(start, offset)?))
    }

    /// `Frame.request_tx_timestamp()` on every frame that starts a packet (a Umem with
    /// `tx_metadata=True`).
    fn request_tx_timestamps(&self) -> Result<()> {
        self.with(|b| Ok(b.request_tx_timestamps()?))
    }

    /// Sets every frame's packet length (each within its frame's capacity).
    fn set_lengths(&self, length: Int) -> Result<()> {
        let length = u32_arg("length", length)? as usize;
        self.with(|b| {
            for i in 0..b.len() {
                b.set_len(i, length)?;
            }
            Ok(())
        })
    }

    /// The batch's packets, as a list of `Packet`: one per frame, except that on a multi-buffer
    /// socket a frame with `more` set and the frames after it up to one without form one
    /// packet. A received batch never ends in the middle of a packet; a batch whose last frame
    /// has `more` set raises ValueError.
    fn packets(slf: &Bound<'_, Self>) -> Result<Py<PyList>> {
        let py = slf.py();
        let me = slf.get();
        let (groups, generation) = me.with(|b| {
            let descs = b.descs();
            let groups = b
                .packets()?
                .into_iter()
                .map(|r| (r.start, descs[r].iter().map(|d| d.index).collect::<Vec<_>>()))
                .collect::<Vec<_>>();
            Ok((groups, me.generation()))
        })?;
        let packets = groups.into_iter().map(|(start, indices)| {
            PyPacket::new(slf.clone().unbind(), start, indices, generation)
        });
        Ok(PyList::new(py, packets)?.unbind())
    }

    /// The packets as a list of bytes (copies): one per frame, or per chain of frames on a
    /// multi-buffer socket (as `packets()`; ValueError if the last frame has `more` set).
    fn to_list(slf: &Bound<'_, Self>) -> Result<Py<PyList>> {
        let py = slf.py();
        // Copy under the lock; build the Python objects after (allocating may run a __del__).
        let packets = slf.get().with(|b| {
            let join = |frames: std::ops::Range<usize>| -> Result<Vec<u8>> {
                let mut out = b.data(frames.start)?.to_vec();
                for i in frames.skip(1) {
                    out.extend_from_slice(b.data(i)?);
                }
                Ok(out)
            };
            b.packets()?.into_iter().map(join).collect::<Result<Vec<_>>>()
        })?;
        let items = packets.iter().map(|p| PyBytes::new(py, p));
        Ok(PyList::new(py, items)?.unbind())
    }

    /// Returns the frames now: to the free pool, or, for a batch received on a socket with
    /// autofill that is still open, straight to its fill ring as far as the ring lacks frames.
    /// Idempotent.
    fn release(&self) -> Result<()> {
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

    /// Leaving the block releases what the batch still owns; the exception, if any,
    /// propagates (returns None).
    #[pyo3(signature = (exc_type, exc_value, traceback, /))]
    #[allow(unused_variables)]
    fn __exit__(
        &self,
        exc_type: Option<Bound<'_, PyAny>>,
        exc_value: Option<Bound<'_, PyAny>>,
        traceback: Option<Bound<'_, PyAny>>,
    ) -> Result<()> {
        self.release_now()?;
        Ok(())
    }

    fn __repr__(&self) -> String {
        let len = lock(&self.batch).as_ref().map(Batch::len);
        match len {
            Some(n) => format!("<afxdp.FrameBatch frames={n}>"),
            None => {
                let how = *lock(&self.ended);
                format!("<afxdp.FrameBatch [{}]>", if how.is_empty() { "closed" } else { how })
            }
        }
    }
}
