//! What the benchmark examples (`rxdrop`, `l2fwd`, `txonly`) share.

/// This process's CPU time so far, in seconds: user + system, and user space alone.
#[derive(Clone, Copy)]
pub struct Cpu {
    total: f64,
    user: f64,
}

impl Cpu {
    /// The CPU time used so far.
    pub fn now() -> Cpu {
        let (user, system) = afxdp::sys::process_times();
        Cpu { total: (user + system).as_secs_f64(), user: user.as_secs_f64() }
    }

    /// The CPU time used since `self` per packet, as the figures every example prints:
    /// `cpu_ns_per_packet=… user_ns_per_packet=…` (the rest of the first is the kernel's).
    pub fn per_packet(&self, packets: u64) -> String {
        let now = Cpu::now();
        let per = |secs: f64| secs * 1e9 / packets.max(1) as f64;
        format!(
            "cpu_ns_per_packet={:.1} user_ns_per_packet={:.1}",
            per(now.total - self.total),
            per(now.user - self.user)
        )
    }
}
