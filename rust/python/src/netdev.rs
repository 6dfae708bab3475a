//! `Interface`: what the core knows about a network interface, for `afxdp.netdev` (the CLI,
//! `afxdp info`, the lab), so Python does not ask the kernel for these facts a second time.

use afxdp::Interface;
use pyo3::prelude::*;

use crate::errors::Result;

/// A network interface of the calling thread's network namespace, as the core sees it: the
/// name resolved once to its index, then the MTU, the flags and the queue counts, all read when
/// the object is made (a snapshot: make a new one to see changes).
///
/// An unknown name (or one that cannot be an interface name) raises OSError(ENODEV) naming it,
/// as Socket and Program do.
#[pyclass(name = "Interface", module = "afxdp._native", frozen, get_all)]
pub struct PyInterface {
    /// The name it was resolved from.
    name: String,
    /// The interface index (in the network namespace it was resolved in).
    index: u32,
    /// The MTU (`SIOCGIFMTU`).
    mtu: u32,
    /// The interface flags (`SIOCGIFFLAGS`, the low 16 bits: IFF_UP, IFF_RUNNING, ...).
    flags: u32,
    /// The XSKMAP size: the largest ethtool channel count, maximum or current (1 when the
    /// driver reports none), so the map has an entry for every queue the NIC can have.
    queue_count: u32,
    /// The rx queues in use now (current ethtool channels: combined + rx): a Port on every
    /// queue opens these.
    rx_queues: u32,
    /// The tx queues in use now (combined + tx). A socket binds to a queue below the larger
    /// of `rx_queues` and `tx_queues`.
    tx_queues: u32,
}

#[pymethods]
impl PyInterface {
    #[new]
    fn new(ifname: &str) -> Result<Self> {
        let iface = Interface::by_name(ifname)?;
        let (rx_queues, tx_queues) = iface.active_queues()?;
        Ok(PyInterface {
            rx_queues,
            tx_queues,
            mtu: iface.mtu()?,
            flags: iface.flags()?,
            queue_count: iface.queue_count()?,
            index: iface.index(),
            name: iface.name().to_owned(),
        })
    }

    /// Whether the interface is administratively up (`IFF_UP` in `flags`).
    #[getter]
    fn up(&self) -> bool {
        self.flags & afxdp::sys::netdev::IFF_UP != 0
    }

    fn __repr__(&self) -> String {
        format!(
            "Interface(name={:?}, index={}, mtu={}, flags={:#x}, up={}, queue_count={}, \
             rx_queues={}, tx_queues={})",
            self.name,
            self.index,
            self.mtu,
            self.flags,
            if self.up() { "True" } else { "False" },
            self.queue_count,
            self.rx_queues,
            self.tx_queues
        )
    }
}
