//! What the benchmark examples (`rxdrop`, `l2fwd`, `txonly`) share.

/// This process's CPU time (user + system) in seconds.
pub fn cpu_seconds() -> f64 {
    afxdp::sys::process_cpu_time().as_secs_f64()
}
