//! Clocks: reading `CLOCK_REALTIME`, `CLOCK_TAI` and `CLOCK_MONOTONIC`, and the offset that
//! turns a reading of one of the latter two into realtime (what Python's `time.time_ns()`
//! reads), for the timestamps XDP programs take with `bpf_ktime_get_tai_ns` or
//! `bpf_ktime_get_ns`.

/// A kernel clock an XDP program can read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Clock {
    /// `CLOCK_REALTIME`: nanoseconds since the Unix epoch (`time.time_ns()`).
    Realtime,
    /// `CLOCK_TAI`: realtime plus the TAI−UTC offset the system was told (a whole number of
    /// seconds, often 0 or 37); `bpf_ktime_get_tai_ns` (kernel ≥ 6.1).
    Tai,
    /// `CLOCK_MONOTONIC`: nanoseconds since boot, excluding suspend; `bpf_ktime_get_ns`.
    Monotonic,
}

impl Clock {
    fn id(self) -> libc::clockid_t {
        match self {
            Clock::Realtime => libc::CLOCK_REALTIME,
            Clock::Tai => libc::CLOCK_TAI,
            Clock::Monotonic => libc::CLOCK_MONOTONIC,
        }
    }
}

/// The clock's current time in nanoseconds (0 if the clock can't be read, which Linux never
/// does for these three).
pub fn now_ns(clock: Clock) -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; the clock ids are Linux's own.
    if unsafe { libc::clock_gettime(clock.id(), &mut ts) } != 0 {
        return 0;
    }
    ts.tv_sec.saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec)
}

/// Nanoseconds to add to a reading of `clock` to get realtime at the same instant.
///
/// * `Tai`: the two clocks tick together and differ by a whole number of seconds, so the
///   measured difference is rounded to the second: exact, whatever the measuring delay.
/// * `Monotonic`: the clocks drift apart (NTP slews realtime, steps move it), so this is
///   measured now: a realtime reading between two monotonic ones, against their midpoint, the
///   tightest of three tries (the error is below half that window, tens of ns).
pub fn realtime_offset_ns(clock: Clock) -> i64 {
    match clock {
        Clock::Realtime => 0,
        Clock::Tai => {
            let realtime = now_ns(Clock::Realtime);
            let tai = now_ns(Clock::Tai);
            let diff = tai - realtime;
            // Round to the nearest second: realtime − TAI is −(TAI−UTC).
            -((diff + diff.signum() * 500_000_000) / 1_000_000_000 * 1_000_000_000)
        }
        Clock::Monotonic => {
            let mut best = (i64::MAX, 0);
            for _ in 0..3 {
                let before = now_ns(Clock::Monotonic);
                let realtime = now_ns(Clock::Realtime);
                let after = now_ns(Clock::Monotonic);
                let window = after - before;
                if window < best.0 {
                    best = (window, realtime - (before + window / 2));
                }
            }
            best.1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tai_offset_is_whole_seconds_and_converts_now() {
        let offset = realtime_offset_ns(Clock::Tai);
        assert_eq!(offset % 1_000_000_000, 0, "{offset}");
        let before = now_ns(Clock::Realtime);
        let converted = now_ns(Clock::Tai) + offset;
        let after = now_ns(Clock::Realtime);
        assert!(before <= converted && converted <= after, "{before} {converted} {after}");
    }

    #[test]
    fn monotonic_offset_converts_now() {
        let offset = realtime_offset_ns(Clock::Monotonic);
        let before = now_ns(Clock::Realtime);
        let converted = now_ns(Clock::Monotonic) + offset;
        let after = now_ns(Clock::Realtime);
        // The offset's own error is below a microsecond on any sane host.
        assert!(
            before - 1_000 <= converted && converted <= after + 1_000,
            "{before} {converted} {after}"
        );
        assert_eq!(realtime_offset_ns(Clock::Realtime), 0);
    }
}
