//! The XDP program of afxdp.
//!
//! Every packet is redirected to the AF_XDP socket registered in [`XSKS`] at the index of the
//! receive queue it arrived on. When that slot is empty (a queue without a socket) the program
//! returns `XDP_PASS`, so ARP, neighbour discovery and everything else the sockets don't claim
//! reach the kernel stack untouched.
//!
//! Userspace (`rust/core/src/bpf.rs`) sizes the map to the interface's queue count before load
//! and fills it with socket fds.

#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::xdp_action,
    macros::{map, xdp},
    maps::XskMap,
    programs::XdpContext,
};

/// AF_XDP sockets, keyed by rx queue index. The size here is only a default: the loader
/// resizes it to the interface's queue count.
#[map]
static XSKS: XskMap = XskMap::with_max_entries(64, 0);

/// Redirect to the socket of this packet's rx queue, or pass it to the kernel stack.
#[xdp]
pub fn afxdp_redirect(ctx: XdpContext) -> u32 {
    let queue = ctx.rx_queue_index();
    // The low bits of the flags are the action the helper returns when `XSKS[queue]` holds no
    // socket; either way its return value is the verdict.
    match XSKS.redirect(queue, u64::from(xdp_action::XDP_PASS)) {
        Ok(action) | Err(action) => action,
    }
}

/// The license declared to the kernel. `bpf_redirect_map` does not need a GPL-compatible one,
/// but GPL-only helpers such as `bpf_trace_printk` (handy while debugging) do.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
