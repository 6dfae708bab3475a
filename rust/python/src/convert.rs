//! Argument converters: each names the argument and the value it refuses.

use std::time::{Duration, Instant};

use afxdp::bpf::{AttachMode, ParseAttachModeError};
use pyo3::buffer::PyBuffer;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::errors::{Error, Result};

/// A non-negative integer argument that must fit in u32.
pub fn u32_arg(name: &'static str, value: i64) -> Result<u32> {
    u32::try_from(value).map_err(|_| {
        Error::value(format!("invalid {name} {value}: must be from 0 to {}", u32::MAX))
    })
}

/// An optional integer argument in `min..=max` (None: any).
pub fn opt_int_arg<T: TryFrom<i64>>(
    name: &str,
    value: Option<i64>,
    min: i64,
    max: i64,
) -> Result<Option<T>> {
    match value {
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

/// When a wait of `timeout` started now ends: None for forever, which includes a deadline
/// beyond what `Instant` can represent (where `Instant + Duration` would panic).
pub fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
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
