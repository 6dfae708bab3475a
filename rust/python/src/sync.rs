//! Locking, and the bindings' one rule about it: a Rust lock is never held across Python code
//! (argument extraction, `__index__`, building Python objects, callbacks) nor across a GIL
//! release (`py.detach`). Another thread holding the GIL and waiting for that lock would
//! deadlock the process for good (Ctrl-C included), and Python code run under a lock can call
//! back into the same object and deadlock on the non-reentrant lock. So every binding converts
//! its arguments first, locks, does Rust work, unlocks, and only then waits or builds results.

use std::sync::{Condvar, Mutex, MutexGuard};

use pyo3::Python;

use crate::convert::WAIT_SLICE;
use crate::errors::Result;

/// Locks a mutex; poisoning cannot leave our state half-updated (each update is one
/// assignment), so a poisoned lock is used as is.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A turn to run a multi-step operation that waits between its steps: one holder at a time,
/// taken while the GIL is released, so a thread holding the GIL never blocks on it. Unlike a
/// `MutexGuard`, the [`Turn`] may be held across `py.detach` and Python code: its mutex is
/// locked only for a moment to flip the flag.
#[derive(Default)]
pub struct Turnstile {
    busy: Mutex<bool>,
    freed: Condvar,
}

/// The current turn of a [`Turnstile`]; dropping it lets the next waiter in.
pub struct Turn<'a>(&'a Turnstile);

impl Turnstile {
    /// Waits (without the GIL) until no one else holds a turn, and takes it. The wait runs in
    /// slices of [`WAIT_SLICE`]: before each, `check` runs (with the GIL) and its error ends
    /// the wait (the object closed, or a forked child, whose copy of the turn may be held by a
    /// thread it does not have); after each, Python's signal handlers run.
    pub fn enter(&self, py: Python<'_>, check: impl Fn() -> Result<()>) -> Result<Turn<'_>> {
        loop {
            check()?;
            let taken = py.detach(|| {
                let busy = lock(&self.busy);
                let (mut busy, _) = self
                    .freed
                    .wait_timeout_while(busy, WAIT_SLICE, |busy| *busy)
                    .unwrap_or_else(|e| e.into_inner());
                !std::mem::replace(&mut *busy, true)
            });
            if taken {
                return Ok(Turn(self));
            }
            py.check_signals()?;
        }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        *lock(&self.0.busy) = false;
        self.0.freed.notify_one();
    }
}
