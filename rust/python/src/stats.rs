//! `Stats`: a snapshot of a socket's kernel and library counters.
//!
//! One list below declares every counter once: the class's attributes (with their docstrings),
//! the field order of `repr` and `_asdict`, and where each value comes from.

use afxdp::socket::Stats;
use pyo3::prelude::*;
use pyo3::types::PyDict;

macro_rules! stats {
    ($($(#[doc = $doc:literal])* $field:ident <- $part:ident;)*) => {
        /// Socket statistics: the kernel's (`XDP_STATISTICS`) and the library's counters, as
        /// attributes; `_asdict()` gives them as a dict.
        #[pyclass(name = "Stats", module = "afxdp._native", frozen, get_all)]
        pub struct PyStats {
            $($(#[doc = $doc])* $field: u64,)*
        }

        /// The counters' names, in order.
        const FIELDS: &[&str] = &[$(stringify!($field)),*];

        impl From<Stats> for PyStats {
            fn from(s: Stats) -> Self {
                PyStats { $($field: s.$part.$field,)* }
            }
        }

        impl PyStats {
            /// The counters' values, in the order of [`FIELDS`].
            fn values(&self) -> Vec<u64> {
                vec![$(self.$field),*]
            }
        }
    };
}

stats! {
    /// Packets the kernel dropped before the rx ring: too long for a frame (`Umem.rx_capacity`),
    /// or, in copy mode, no free frame because the fill ring was empty (those also count in
    /// `rx_fill_ring_empty_descs`). A full rx ring counts in `rx_ring_full` instead.
    rx_dropped <- kernel;
    /// Invalid descriptors on the rx ring (the kernel never writes any: should stay 0).
    rx_invalid_descs <- kernel;
    /// Descriptors on the tx ring the kernel skipped as invalid (length 0 or too long, an
    /// address outside the UMEM). afxdp's `send()` never queues one; the conformance suite
    /// (tests/conformance/rawxsk.py) shows the kernel's count for each kind.
    tx_invalid_descs <- kernel;
    /// Packets dropped because the rx ring was full (the application reads too slowly).
    rx_ring_full <- kernel;
    /// Times the kernel found the fill ring empty when a packet arrived (the packet was
    /// dropped: see `rx_dropped`).
    rx_fill_ring_empty_descs <- kernel;
    /// Times the kernel found the tx ring empty when asked to transmit.
    tx_ring_empty_descs <- kernel;
    /// Frames the library took from the rx ring.
    received <- counters;
    /// Frames the library put on the tx ring.
    sent <- counters;
    /// Frames the library put on the fill ring.
    filled <- counters;
    /// Frames the library took back from the completion ring.
    completed <- counters;
}

#[pymethods]
impl PyStats {
    /// The counters as a dict, in attribute order.
    fn _asdict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        for (name, value) in FIELDS.iter().zip(self.values()) {
            dict.set_item(name, value)?;
        }
        Ok(dict)
    }

    fn __repr__(&self) -> String {
        let body: Vec<String> =
            FIELDS.iter().zip(self.values()).map(|(k, v)| format!("{k}={v}")).collect();
        format!("Stats({})", body.join(", "))
    }
}
