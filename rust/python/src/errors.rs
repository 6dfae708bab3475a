//! The one place where errors become Python exceptions: the core's errors (`From` impls, so `?`
//! converts them; the XDP program's and the generator's nest in the core's), the bindings' own
//! (`Error::value` and friends) and the module's exception class, `VerifierError`.
//!
//! The orphan rule forbids `impl From<afxdp::Error> for PyErr` here (both are foreign), so the
//! bindings return [`Result`], whose [`Error`] wraps a `PyErr` and converts from each core error
//! type. PyO3 accepts any error type that converts into `PyErr` from a `#[pymethods]` function.

use afxdp::bpf::BpfError;
use afxdp::generator::GenerateError;
use afxdp::sys::errno;
use pyo3::exceptions::{
    PyBufferError, PyIndexError, PyOSError, PyRuntimeError, PyTypeError, PyValueError,
};
use pyo3::prelude::*;

pyo3::create_exception!(
    afxdp._native,
    VerifierError,
    PyOSError,
    "The kernel verifier rejected an XDP program. An OSError (errno EACCES or EINVAL, usually); `program` is the program's name and `log` the verifier's output."
);

/// A Python exception on its way out of the bindings.
#[derive(Debug)]
pub struct Error(PyErr);

/// The result type of every binding.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// `ValueError(msg)`: a bad value, or an object that is closed or used up.
    pub fn value(msg: impl Into<String>) -> Self {
        Error(PyValueError::new_err(msg.into()))
    }

    /// `TypeError(msg)`: an argument of the wrong type.
    pub fn type_(msg: impl Into<String>) -> Self {
        Error(PyTypeError::new_err(msg.into()))
    }

    /// `IndexError(msg)`.
    pub fn index(msg: impl Into<String>) -> Self {
        Error(PyIndexError::new_err(msg.into()))
    }

    /// `KeyError(msg)`: a key a mapping does not have (a queue a Port has no socket on).
    pub fn key(msg: impl Into<String>) -> Self {
        Error(pyo3::exceptions::PyKeyError::new_err(msg.into()))
    }

    /// `BufferError(msg)`: memory with live exports would be released or recycled.
    pub fn buffer(msg: impl Into<String>) -> Self {
        Error(PyBufferError::new_err(msg.into()))
    }

    /// `OSError(errno, msg)`, which picks the matching subclass itself (EPERM ->
    /// PermissionError, ...); a plain `OSError(msg)` without an errno.
    pub fn os(errno: Option<i32>, msg: impl Into<String>) -> Self {
        let msg = msg.into();
        Error(match errno {
            Some(errno) => PyOSError::new_err((errno, msg)),
            None => PyOSError::new_err(msg),
        })
    }

    /// `OSError(errno, msg, filename)`.
    pub fn os_file(errno: i32, msg: String, filename: String) -> Self {
        Error(PyOSError::new_err((errno, msg, filename)))
    }

    /// The `ValueError` of an object used after `close()`.
    pub fn closed(what: &'static str) -> Self {
        afxdp::Error::Closed { what }.into()
    }
}

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        e.0
    }
}

impl From<PyErr> for Error {
    fn from(e: PyErr) -> Self {
        Error(e)
    }
}

impl From<afxdp::Error> for Error {
    fn from(e: afxdp::Error) -> Self {
        use afxdp::Error as E;
        let msg = e.to_string();
        match e {
            E::Syscall { ref source, .. } => Error::os(source.raw_os_error(), msg),
            E::NoSuchInterface { .. } => Error::os(Some(errno::ENODEV), msg),
            E::NoHugePages { .. } => Error::os(Some(errno::ENOMEM), msg),
            E::KernelTooOld { .. } => Error::os(None, msg),
            E::ForkedChild { .. } => Error(PyRuntimeError::new_err(msg)),
            E::Generate(g) => generate_error(g),
            E::InvalidArgument { .. }
            | E::QueueOutOfRange { .. }
            | E::PacketTooLong { .. }
            | E::FrameNotOwned { .. }
            | E::Closed { .. } => Error::value(msg),
            E::Bpf(b) => b.into(),
        }
    }
}

impl From<BpfError> for Error {
    fn from(e: BpfError) -> Self {
        let msg = e.to_string();
        match (&e, e.errno()) {
            (BpfError::Verifier { program, errno, log }, _) => Python::attach(|py| {
                let err = VerifierError::new_err((errno.unwrap_or(errno::EINVAL), msg.clone()));
                let value = err.value(py);
                // Setting attributes on a fresh exception object cannot fail in practice; if it
                // did, the message still carries the name and the log.
                let _ = value.setattr("program", program);
                let _ = value.setattr("log", log);
                Error(err)
            }),
            (
                BpfError::Detached
                | BpfError::NotInObject { .. }
                | BpfError::WrongType { .. }
                | BpfError::TooManyRules { .. }
                | BpfError::InvalidRule { .. }
                | BpfError::NoRules { .. },
                _,
            ) => Error::value(msg),
            (_, errno) => Error::os(errno, msg),
        }
    }
}

/// The generator's own errors: with an errno `OSError` (PermissionError for EPERM, ...), the
/// rest `ValueError`.
fn generate_error(e: GenerateError) -> Error {
    let msg = e.to_string();
    match (&e, e.errno()) {
        (_, Some(errno)) => Error::os(Some(errno), msg),
        (GenerateError::TestRun { .. }, None) => Error::os(None, msg),
        _ => Error::value(msg),
    }
}
