//! Python bindings of the afxdp core (the `afxdp._native` module): one file per class,
//! argument converters in `convert`, the one mapping of errors to Python exceptions in
//! `errors`, the lock discipline in `sync`. No policy lives here.

mod array;
mod batch;
mod batches;
mod buffer;
mod convert;
mod errors;
mod frame;
mod generate;
mod netdev;
mod packet;
mod port;
mod program;
mod rules;
mod socket;
mod stats;
mod sync;
mod umem;
mod umem_frames;

#[pyo3::pymodule]
mod _native {
    #[pymodule_export]
    use super::array::PyUIntArray;
    #[pymodule_export]
    use super::batch::PyFrameBatch;
    #[pymodule_export]
    use super::batches::PyBatches;
    #[pymodule_export]
    use super::errors::VerifierError;
    #[pymodule_export]
    use super::frame::PyFrame;
    #[pymodule_export]
    use super::generate::generate;
    #[pymodule_export]
    use super::netdev::PyInterface;
    #[pymodule_export]
    use super::packet::PyPacket;
    #[pymodule_export]
    use super::port::PyPort;
    #[pymodule_export]
    use super::program::PyProgram;
    #[pymodule_export]
    use super::rules::PyRule;
    #[pymodule_export]
    use super::socket::PySocket;
    #[pymodule_export]
    use super::stats::PyStats;
    #[pymodule_export]
    use super::umem::PyUmem;
    #[pymodule_export]
    use super::umem_frames::PyUmemFrames;

    #[pymodule_init]
    fn init(m: &pyo3::Bound<'_, pyo3::types::PyModule>) -> pyo3::PyResult<()> {
        use pyo3::types::PyModuleMethods;
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        m.add("POLLIN", super::socket::POLLIN)?;
        m.add("POLLOUT", super::socket::POLLOUT)?;
        Ok(())
    }
}
