//! Argument converters: each names the argument and the value it refuses.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use afxdp::bpf::{AttachMode, ParseAttachModeError};
use afxdp::umem::HugePages;
use pyo3::buffer::PyBuffer;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyInt};

use crate::errors::{Error, Result};

/// An int argument as Python passed it. `bool` is a subclass of `int`, but `True` for a frame
/// count or a port is a mistake, not a 1: it is kept apart here and refused by [`Int::get`],
/// which names the argument (a `FromPyObject` error could not). So is an int beyond 64 bits
/// (its decimal digits), which no argument takes (an OverflowError naming neither otherwise).
#[derive(Clone, Debug)]
pub enum Int {
    Val(i64),
    Bool(bool),
    Huge(String),
}

impl Int {
    /// The value, or a TypeError naming the argument for a bool, a ValueError naming it and
    /// the value for an int beyond 64 bits.
    pub fn get(self, name: &str) -> Result<i64> {
        match self {
            Int::Val(v) => Ok(v),
            Int::Bool(b) => Err(Error::type_(format!(
                "invalid {name} {}: expected an int, not bool",
                if b { "True" } else { "False" }
            ))),
            Int::Huge(digits) => {
                Err(Error::value(format!("invalid {name} {digits}: out of range (64 bits)")))
            }
        }
    }

    /// The value as a u64 (the whole range, beyond `i64`), or the errors of [`Int::get`] and a
    /// ValueError naming the argument and the value outside `0..2**64`.
    pub fn get_u64(self, name: &str) -> Result<u64> {
        let refused = |v: &dyn std::fmt::Display| {
            Error::value(format!("invalid {name} {v}: must be from 0 to 2**64 - 1"))
        };
        match self {
            Int::Huge(digits) => digits.parse().map_err(|_| refused(&digits)),
            other => {
                let v = other.get(name)?;
                u64::try_from(v).map_err(|_| refused(&v))
            }
        }
    }
}

impl<'a, 'py> FromPyObject<'a, 'py> for Int {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if let Ok(b) = obj.cast::<PyBool>() {
            return Ok(Int::Bool(b.is_true()));
        }
        match obj.extract() {
            Ok(v) => Ok(Int::Val(v)),
            Err(_) if obj.is_instance_of::<PyInt>() => Ok(Int::Huge(obj.to_string())),
            Err(e) => Err(e),
        }
    }
}

/// A position (`obj[i]`): an `isize`, or for an int beyond it the IndexError Python's own
/// sequences raise, naming it (an OverflowError naming nothing otherwise).
#[derive(Clone, Copy, Debug)]
pub struct Index(pub isize);

impl<'a, 'py> FromPyObject<'a, 'py> for Index {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        // A bool is an index as in any sequence; an int beyond 64 bits is told apart by `Int`.
        match obj.extract::<Int>()? {
            Int::Val(i) => isize::try_from(i).map(Index).map_err(|_| out_of_range(&i)),
            Int::Bool(b) => Ok(Index(isize::from(b))),
            Int::Huge(digits) => Err(out_of_range(&digits)),
        }
    }
}

/// The IndexError of an index no sequence here can have.
fn out_of_range(index: &dyn std::fmt::Display) -> PyErr {
    pyo3::exceptions::PyIndexError::new_err(format!("index {index} out of range"))
}

/// A float argument (seconds, a rate) as Python passed it: an int or a float. A bool is kept
/// apart and refused by [`Float::get`], naming the argument, as [`Int`] does (`timeout=True`
/// is a mistake, not a second).
#[derive(Clone, Copy, Debug)]
pub enum Float {
    Val(f64),
    Bool(bool),
}

impl Float {
    /// The value of an optional one, or a TypeError naming the argument for a bool.
    pub fn get(value: Option<Float>, name: &str) -> Result<Option<f64>> {
        match value {
            None => Ok(None),
            Some(Float::Val(v)) => Ok(Some(v)),
            Some(Float::Bool(b)) => Err(Error::type_(format!(
                "invalid {name} {}: expected a number, not bool",
                if b { "True" } else { "False" }
            ))),
        }
    }
}

impl<'a, 'py> FromPyObject<'a, 'py> for Float {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        if let Ok(b) = obj.cast::<PyBool>() {
            return Ok(Float::Bool(b.is_true()));
        }
        Ok(Float::Val(obj.extract()?))
    }
}

/// A flag given by keyword: `True` or `False` (None, or not given: `default`). Anything else,
/// an int included, is a TypeError naming the argument and the value.
pub fn flag_arg(name: &str, value: Option<&Bound<'_, PyAny>>, default: bool) -> Result<bool> {
    match value {
        None => Ok(default),
        Some(v) if v.is_none() => Ok(default),
        Some(v) => v.cast::<PyBool>().map(|b| b.is_true()).map_err(|_| {
            Error::type_(format!("invalid {name} {}: expected True or False", py_repr(v)))
        }),
    }
}

/// `repr(value)`, for messages (empty if repr itself fails).
fn py_repr(value: &Bound<'_, PyAny>) -> String {
    value.repr().map(|r| r.to_string()).unwrap_or_default()
}

/// `Umem(hugepages=...)`: `False` (normal pages), `True` (huge pages or an error), `None`
/// (huge pages when enough are free). Anything else is a TypeError naming the value.
#[derive(Clone, Copy, Debug)]
pub struct HugePagesArg(pub HugePages);

impl<'a, 'py> FromPyObject<'a, 'py> for HugePagesArg {
    type Error = Error;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> Result<Self> {
        if obj.is_none() {
            return Ok(HugePagesArg(HugePages::IfAvailable));
        }
        match obj.cast::<PyBool>() {
            Ok(b) if b.is_true() => Ok(HugePagesArg(HugePages::Yes)),
            Ok(_) => Ok(HugePagesArg(HugePages::No)),
            Err(_) => Err(Error::type_(format!(
                "invalid hugepages {}: expected True, False or None (use them if free)",
                py_repr(&obj)
            ))),
        }
    }
}

/// A non-negative integer argument that must fit in u32.
pub fn u32_arg(name: &'static str, value: Int) -> Result<u32> {
    let value = value.get(name)?;
    u32::try_from(value).map_err(|_| {
        Error::value(format!("invalid {name} {value}: must be from 0 to {}", u32::MAX))
    })
}

/// An optional integer argument in `min..=max` (None: any).
pub fn opt_int_arg<T: TryFrom<i64>>(
    name: &str,
    value: Option<Int>,
    min: i64,
    max: i64,
) -> Result<Option<T>> {
    match value.map(|v| v.get(name)).transpose()? {
        None => Ok(None),
        Some(v) if (min..=max).contains(&v) => Ok(T::try_from(v).ok()),
        Some(v) => Err(Error::value(format!(
            "invalid {name} {v}: must be from {min} to {max}, or None for any"
        ))),
    }
}

/// An XDP attach mode: "auto", "native" or "generic".
pub fn mode_arg(mode: &str) -> Result<AttachMode> {
    mode.parse().map_err(|e: ParseAttachModeError| Error::value(e.to_string()))
}

/// A timeout in seconds, as a wait: `None` is forever, and so are `inf` and finite values too
/// large for a `Duration` (over 584 billion years: no wait could tell them from forever).
/// Negative and NaN timeouts are refused, naming the value.
pub fn timeout_arg(timeout: Option<f64>) -> Result<Option<Duration>> {
    match timeout {
        None => Ok(None),
        Some(t) if t >= 0.0 => Ok(Duration::try_from_secs_f64(t).ok()),
        Some(t) => Err(Error::value(format!(
            "invalid timeout {t}: must be >= 0 seconds (inf or None: no limit)"
        ))),
    }
}

/// The longest `coalesce` a receive takes: more is surely not meant (it is in seconds, like
/// the timeout), and an rx ring holds far less than a second of frames at any useful rate.
const MAX_COALESCE: Duration = Duration::from_secs(1);

/// A receive's `coalesce`, in seconds: None or 0 is off; otherwise from 0 to 1 second.
/// Negative, NaN and larger values are refused, naming the value.
pub fn coalesce_arg(coalesce: Option<f64>) -> Result<Option<Duration>> {
    match coalesce.map(Duration::try_from_secs_f64) {
        None => Ok(None),
        Some(Ok(d)) if d <= MAX_COALESCE => Ok((!d.is_zero()).then_some(d)),
        Some(_) => Err(Error::value(format!(
            "invalid coalesce {}: must be from 0 to 1 second (0 or None: off)",
            coalesce.unwrap_or_default()
        ))),
    }
}

/// The checked arguments of a receive (`recv` and `batches`, of Socket and Port), in the
/// order Python gives them: `max` frames, the `timeout` for the first and the `coalesce` sleep.
#[derive(Clone, Copy, Debug)]
pub struct RecvArgs {
    pub max: u32,
    pub timeout: Option<Duration>,
    pub coalesce: Option<Duration>,
}

impl RecvArgs {
    /// Checks each argument, naming the bad one ([`u32_arg`], [`timeout_arg`],
    /// [`coalesce_arg`]).
    pub fn new(max: Int, timeout: Option<Float>, coalesce: Option<Float>) -> Result<Self> {
        let max = u32_arg("max", max)?;
        let timeout = timeout_arg(Float::get(timeout, "timeout")?)?;
        Ok(RecvArgs { max, timeout, coalesce: coalesce_arg(Float::get(coalesce, "coalesce")?)? })
    }

    /// How long to let frames gather before receiving: `coalesce`, except with timeout 0
    /// (which never sleeps).
    pub fn coalescing(&self) -> Option<Duration> {
        self.coalesce.filter(|_| self.timeout != Some(Duration::ZERO))
    }
}

/// What ends a waiting receive early besides its source's close: a `BatchIterator`'s
/// `close()` from another thread (its flag). A set flag ends the coalescing sleep and the wait
/// for the first frame as their timeout would, within a wait slice: nothing more is received.
/// `Stop::NEVER` for the plain `recv` calls.
#[derive(Clone, Copy, Debug)]
pub struct Stop<'a>(Option<&'a AtomicBool>);

impl<'a> Stop<'a> {
    /// A receive that only its source's close ends.
    pub const NEVER: Stop<'static> = Stop(None);

    /// A receive that `flag` (once set) also ends.
    pub fn on(flag: &'a AtomicBool) -> Self {
        Stop(Some(flag))
    }

    /// Whether the receive should end now.
    pub fn is_set(self) -> bool {
        self.0.is_some_and(|f| f.load(Ordering::Acquire))
    }
}

/// What is left until `deadline` (None: forever), as a timeout.
pub fn time_left(deadline: Option<Instant>) -> Option<Duration> {
    deadline.map(|d| d.saturating_duration_since(Instant::now()))
}

/// A receive's coalescing sleep: `span` (at most until `deadline`) without the GIL, not woken
/// by arriving frames, so that they gather on the rx ring and one wakeup takes many. A span
/// longer than [`WAIT_SLICE`] is slept in slices, between which Python's signal handlers run
/// and `closed()` raises `what`'s closed error; a set `stop` ends it early. The kernel's timer
/// slack (50 µs for a thread by default) may lengthen it.
pub fn linger(
    py: Python<'_>,
    span: Duration,
    deadline: Option<Instant>,
    stop: Stop<'_>,
    what: &'static str,
    closed: impl Fn() -> bool,
) -> Result<()> {
    let now = Instant::now();
    let end = now.checked_add(span).unwrap_or(now);
    let end = deadline.map_or(end, |d| d.min(end));
    loop {
        let nap = end.saturating_duration_since(Instant::now()).min(WAIT_SLICE);
        if nap.is_zero() {
            return Ok(());
        }
        py.detach(move || std::thread::sleep(nap));
        if Instant::now() < end {
            end_of_slice(py, None, "", what, &closed)?;
            if stop.is_set() {
                return Ok(());
            }
        }
    }
}

/// When a wait of `timeout` started now ends: None for forever, which includes a deadline
/// beyond what `Instant` can represent (where `Instant + Duration` would panic).
pub fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
}

/// The longest a waiting call sleeps without the GIL before it looks at signals (Ctrl-C) and
/// at `close()` from another thread.
pub const WAIT_SLICE: Duration = Duration::from_millis(100);

/// The next sleep of a wait that ends at `deadline` (None: never): [`WAIT_SLICE`] or what is
/// left, whichever is shorter (zero once the deadline has passed).
pub fn wait_slice(deadline: Option<Instant>) -> Duration {
    match deadline {
        Some(d) => d.saturating_duration_since(Instant::now()).min(WAIT_SLICE),
        None => WAIT_SLICE,
    }
}

/// The end of one wait slice that did not return what was waited for: `failed`, the slice's
/// error if any (EINTR is none: a signal, whose Python handlers run next), is raised as
/// `call`'s; then Python's signal handlers run (raising what they raise, Ctrl-C's
/// KeyboardInterrupt), and `closed()` (checked after them) raises `what`'s closed error.
pub fn end_of_slice(
    py: Python<'_>,
    failed: Option<std::io::Error>,
    call: &'static str,
    what: &'static str,
    closed: impl FnOnce() -> bool,
) -> Result<()> {
    if let Some(e) = failed
        && e.raw_os_error() != Some(afxdp::sys::errno::EINTR)
    {
        return Err(afxdp::Error::Syscall { call, source: e }.into());
    }
    py.check_signals()?;
    if closed() {
        return Err(Error::closed(what));
    }
    Ok(())
}

/// A Python index (negative counts from the end) into `len` items; None when out of range.
pub fn norm_index(i: isize, len: usize) -> Option<usize> {
    let j = if i < 0 { i.checked_add_unsigned(len)? } else { i };
    usize::try_from(j).ok().filter(|&j| j < len)
}

/// Runs `f` with the bytes of a bytes-like object (bytes without a copy; others via the buffer
/// protocol, copied into a contiguous vector). The conversion, which may run Python code, is
/// complete before `f` runs.
pub fn with_bytes<R>(obj: &Bound<'_, PyAny>, f: impl FnOnce(&[u8]) -> Result<R>) -> Result<R> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return f(b.as_bytes());
    }
    let buf = PyBuffer::<u8>::get(obj).map_err(|_| {
        Error::type_(format!(
            "a bytes-like object is required, not {:?}",
            obj.get_type().name().map(|n| n.to_string()).unwrap_or_default()
        ))
    })?;
    let v = buf.to_vec(obj.py())?;
    f(&v)
}
