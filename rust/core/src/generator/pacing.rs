//! Chunk sizing and rate pacing: how many packets the next `BPF_PROG_TEST_RUN` pushes, and how
//! long to wait first so that a rate is never exceeded.

use std::time::{Duration, Instant};

use super::{Generator, MAX_CHUNK};

/// How chunks are sized: short when a call costs ~10 µs (program pinned in the dispatcher),
/// long enough to amortise two RCU grace periods per call when it is not.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timing {
    /// The work aimed for in one chunk, so that count, duration and signals are checked often.
    chunk_time: Duration,
    /// With `rate`, chunks carry this much time's worth of packets.
    pacing_quantum: Duration,
    /// The largest chunk.
    max_chunk: u32,
}

/// Chunks when the program is pinned in the dispatcher.
pub(crate) const PINNED: Timing = Timing {
    chunk_time: Duration::from_millis(2),
    pacing_quantum: Duration::from_millis(1),
    max_chunk: MAX_CHUNK,
};
/// Chunks when it is not (no `CAP_SYS_ADMIN` for the private namespace).
pub(crate) const UNPINNED: Timing = Timing {
    chunk_time: Duration::from_millis(200),
    pacing_quantum: Duration::from_millis(100),
    max_chunk: 1 << 21,
};

/// The first chunk, before the rate of the interface is known.
const FIRST_CHUNK: u32 = 1024;
/// With `rate`, a schedule this far behind is restarted from now instead of caught up in a
/// burst (the process was stopped, or the interface cannot go that fast).
const PACING_SLACK: Duration = Duration::from_millis(50);
/// The longest sleep between two looks at the clock.
const MAX_NAP: Duration = Duration::from_secs(1);

impl Generator {
    /// With a rate: how long to sleep before the next chunk is due (at most until `end` or
    /// `slice_end`, and at most [`MAX_NAP`]), or `None` when it is due now. A schedule more than
    /// [`PACING_SLACK`] behind restarts from now.
    pub(crate) fn ahead_of_rate(
        &mut self,
        now: Instant,
        end: Option<Instant>,
        slice_end: Option<Instant>,
    ) -> Option<Duration> {
        let rate = self.rate?;
        let origin = *self.pace_origin.get_or_insert(now);
        // `None`: so far ahead that it does not fit a Duration or an Instant (a tiny rate).
        let due = Duration::try_from_secs_f64((self.sent - self.pace_base) as f64 / rate)
            .ok()
            .and_then(|ahead| origin.checked_add(ahead));
        if due.is_none_or(|due| due > now) {
            let wake = [due, end, slice_end].into_iter().flatten().min();
            let nap = wake.map_or(MAX_NAP, |wake| wake.saturating_duration_since(now));
            return Some(nap.min(MAX_NAP));
        }
        if let Some(due) = due
            && now.saturating_duration_since(due) > PACING_SLACK
        {
            self.pace_origin = Some(now);
            self.pace_base = self.sent;
        }
        None
    }

    /// The size of the next chunk: at most what the count leaves, about `chunk_time` of work
    /// (or `pacing_quantum` at the rate), and about what fits before the end of the duration.
    /// Float-to-integer casts saturate, so no rate or estimate can overflow here.
    pub(crate) fn chunk_size(&self, now: Instant, end: Option<Instant>) -> u32 {
        let timing = self.timing;
        let mut chunk = match self.pps_estimate {
            Some(pps) => (pps * timing.chunk_time.as_secs_f64()) as u64,
            None => u64::from(FIRST_CHUNK),
        };
        if let Some(rate) = self.rate {
            chunk = chunk.min((rate * timing.pacing_quantum.as_secs_f64()).round() as u64);
        }
        if let (Some(end), Some(pps)) = (end, self.pps_estimate) {
            chunk = chunk.min((pps * end.saturating_duration_since(now).as_secs_f64()) as u64);
        }
        if let Some(count) = self.count {
            chunk = chunk.min(count.saturating_sub(self.sent));
        }
        chunk.clamp(1, u64::from(timing.max_chunk)) as u32
    }
}
