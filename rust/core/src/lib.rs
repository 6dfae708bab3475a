//! afxdp core: AF_XDP sockets in plain Rust (no Python).
//!
//! Layers, bottom up: [`sys`] (the kernel ABI and raw syscalls), [`ring`] (producer/consumer
//! cursors over the kernel-shared rings), [`umem`] (the mmap'd frame region and the frame pool
//! with its ownership model), [`socket`] (ring setup, bind, wakeups, statistics) and [`bpf`]
//! (the embedded XDP program, attached with aya). Beside them, [`generator`] pushes a packet
//! template out of an interface at kernel speed (`BPF_PROG_TEST_RUN` with live frames).

pub mod bpf;
pub mod error;
pub mod generator;
pub mod ring;
pub mod socket;
pub mod sys;
pub mod umem;

pub use error::{Error, Result};
