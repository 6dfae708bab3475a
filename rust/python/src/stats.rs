//! `Stats`: a snapshot of a socket's kernel and library counters.

use afxdp::socket::Stats;
use pyo3::prelude::*;

/// Socket statistics: the kernel's (`XDP_STATISTICS`) and the library's counters.
#[pyclass(name = "Stats", module = "afxdp._native", frozen, get_all)]
pub struct PyStats {
    /// Packets dropped for other reasons than a full rx ring or an empty fill ring (e.g. too
    /// large for a frame).
    rx_dropped: u64,
    rx_invalid_descs: u64,
    tx_invalid_descs: u64,
    rx_ring_full: u64,
    rx_fill_ring_empty_descs: u64,
    tx_ring_empty_descs: u64,
    received: u64,
    sent: u64,
    filled: u64,
    completed: u64,
}

const STAT_FIELDS: [&str; 10] = [
    "rx_dropped",
    "rx_invalid_descs",
    "tx_invalid_descs",
    "rx_ring_full",
    "rx_fill_ring_empty_descs",
    "tx_ring_empty_descs",
    "received",
    "sent",
    "filled",
    "completed",
];

impl From<Stats> for PyStats {
    fn from(s: Stats) -> Self {
        let (k, c) = (s.kernel, s.counters);
        PyStats {
            rx_dropped: k.rx_dropped,
            rx_invalid_descs: k.rx_invalid_descs,
            tx_invalid_descs: k.tx_invalid_descs,
            rx_ring_full: k.rx_ring_full,
            rx_fill_ring_empty_descs: k.rx_fill_ring_empty_descs,
            tx_ring_empty_descs: k.tx_ring_empty_descs,
            received: c.received,
            sent: c.sent,
            filled: c.filled,
            completed: c.completed,
        }
    }
}

impl PyStats {
    fn values(&self) -> [u64; 10] {
        [
            self.rx_dropped,
            self.rx_invalid_descs,
            self.tx_invalid_descs,
            self.rx_ring_full,
            self.rx_fill_ring_empty_descs,
            self.tx_ring_empty_descs,
            self.received,
            self.sent,
            self.filled,
            self.completed,
        ]
    }
}

#[pymethods]
impl PyStats {
    /// The counters as a dict.
    fn _asdict(&self) -> Vec<(&'static str, u64)> {
        STAT_FIELDS.iter().copied().zip(self.values()).collect()
    }

    fn __repr__(&self) -> String {
        let body: Vec<String> =
            STAT_FIELDS.iter().zip(self.values()).map(|(k, v)| format!("{k}={v}")).collect();
        format!("Stats({})", body.join(", "))
    }
}
