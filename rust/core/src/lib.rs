//! afxdp core: AF_XDP sockets in plain Rust (no Python).
//!
//! Layers, bottom up:
//!
//! * [`sys`]: the only code that calls the kernel. `sys::if_xdp` mirrors `linux/if_xdp.h`,
//!   `sys::xsk` has one typed function per socket option or call, `sys::netdev` resolves an
//!   [`Interface`] once (index, MTU, flags, queue count), `sys::bpf` the `bpf()` command aya
//!   lacks plus namespaces and signal masks, `sys::fork` tells a forked child apart; mappings
//!   and `membarrier` live in `sys` itself.
//! * [`ring`]: producer/consumer cursors over the kernel-shared rings (no syscalls).
//! * [`umem`]: the mmap'd frame region and the frame pool with its ownership model.
//! * [`addr`]: ring addresses and the frames they name, aligned and unaligned.
//! * [`socket`]: ring setup, bind, wakeups, statistics, and the ring-size policy.
//! * [`rxmeta`]: per-packet receive metadata (timestamps) written by the XDP program before
//!   each packet, read back from the frame.
//! * [`txmeta`]: per-packet transmit requests (checksum offload, completion timestamp,
//!   launch time) written before each packet, and the completion timestamps read back.
//! * [`port`]: a socket on every rx queue of an interface over one shared UMEM, received from
//!   fairly and waited on with one `epoll` descriptor.
//! * [`bpf`]: the embedded XDP program, attached with aya: `program` (load, attach, register,
//!   detach), `rules` (match rules, two rule sets), `object` (ELF objects), `errors`.
//!
//! Beside them, [`generator`] pushes a packet template out of an interface at kernel speed
//! (`BPF_PROG_TEST_RUN` with live frames): `template`, `pacing`, `test_run`.
//!
//! One error type, [`Error`], covers them all; BPF-only and generator-only errors nest in it
//! ([`Error::Bpf`], [`Error::Generate`]). The layouts shared with the XDP programs come from
//! the `afxdp-ebpf-common` crate (`xdp-ebpf/common`), which the programs use too.
//!
//! Objects (UMEM, socket, program) refuse to be used in a process forked after they were made
//! ([`Error::ForkedChild`]): the kernel keeps working with the parent's memory and rings.

pub mod addr;
pub mod bpf;
pub mod error;
pub mod generator;
pub mod port;
pub mod ring;
pub mod rxmeta;
pub mod socket;
pub mod sys;
pub mod txmeta;
pub mod umem;

pub use error::{Error, Result};
pub use sys::Interface;
