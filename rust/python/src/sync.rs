//! Locking, and the bindings' one rule about it: a Rust lock is never held across Python code
//! (argument extraction, `__index__`, building Python objects, callbacks) nor across a GIL
//! release (`py.detach`). Another thread holding the GIL and waiting for that lock would
//! deadlock the process for good (Ctrl-C included), and Python code run under a lock can call
//! back into the same object and deadlock on the non-reentrant lock. So every binding converts
//! its arguments first, locks, does Rust work, unlocks, and only then waits or builds results.

use std::sync::{Mutex, MutexGuard};

/// Locks a mutex; poisoning cannot leave our state half-updated (each update is one
/// assignment), so a poisoned lock is used as is.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
