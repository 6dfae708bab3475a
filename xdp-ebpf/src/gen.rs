//! The traffic generator's XDP program, `afxdp_gen`.
//!
//! It is never attached to an interface: userspace (`rust/core/src/generator/`) runs it with
//! `BPF_PROG_TEST_RUN` and `BPF_F_TEST_XDP_LIVE_FRAMES` over a packet template, and the kernel
//! performs whatever the program returns for every repetition. The program returns
//! `bpf_redirect(ifindex, 0)`, so each run sends one copy of the template out of the interface
//! in [`Config::ifindex`].
//!
//! # Source ports
//!
//! With [`REWRITE_SRC_PORT`] set, the UDP source port of each packet becomes
//! `port_base + runs % port_count`, where `runs` counts this CPU's runs ([`COUNTERS`]), and the
//! UDP checksum is updated incrementally (RFC 1624, eqn. 3) from the frame's current port and
//! checksum. In live-frames mode the kernel recycles pages without rewriting them, so a frame
//! holds either the pristine template or whatever an earlier run left in it: the update never
//! assumes which. A zero checksum ("none", IPv4) stays zero.
//!
//! [`Config`] (`GenConfig`) and its flags come from `afxdp-ebpf-common` (`xdp-ebpf/common`),
//! which the core (`rust/core/src/generator/`) uses as well. The map names must stay those in
//! its `names` module.

#![no_std]
#![no_main]

use afxdp_ebpf_common::{GenConfig as Config, REWRITE_SRC_PORT};
use aya_ebpf::{
    bindings::xdp_action,
    helpers::generated::bpf_redirect,
    macros::{map, xdp},
    maps::{Array, PerCpuArray},
    programs::XdpContext,
};

/// The largest `Config::udp_offset` the program follows: Ethernet, one VLAN tag and an IPv4
/// header with the most options is 14 + 4 + 60 = 78 bytes. Bounding the offset lets the verifier
/// check the packet access.
const MAX_UDP_OFFSET: usize = 128;

/// UDP header length.
const UDP_HLEN: usize = 8;

/// Index 0: the configuration.
#[map]
static CONFIG: Array<Config> = Array::with_max_entries(1, 0);

/// Index 0: runs of the program on each CPU. Userspace sums it to count exactly how many
/// packets a test run pushed, even one that was cut short, and the source port cycles with it.
#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// One's complement update of a 16-bit checksum `check` when a 16-bit word of the data changes
/// from `old` to `new`: `~(~check + ~old + new)` (RFC 1624, eqn. 3).
#[inline(always)]
fn csum_replace(check: u16, old: u16, new: u16) -> u16 {
    let mut sum = u32::from(!check) + u32::from(!old) + u32::from(new);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}

/// Sets the UDP source port of the frame to `port` and updates the checksum.
#[inline(always)]
fn set_src_port(ctx: &XdpContext, offset: usize, port: u16) {
    if offset > MAX_UDP_OFFSET {
        return;
    }
    let start = ctx.data();
    // One check for the whole header: the verifier needs `start + offset + 8 <= end`.
    if start + offset + UDP_HLEN > ctx.data_end() {
        return;
    }
    let udp = (start + offset) as *mut u8;
    // SAFETY: the check above keeps all 8 bytes of the UDP header inside the packet, which the
    // program may write; unaligned accesses because the offset can be odd.
    unsafe {
        let old = u16::from_be(core::ptr::read_unaligned(udp.cast::<u16>()));
        let check_ptr = udp.add(6).cast::<u16>();
        let check = u16::from_be(core::ptr::read_unaligned(check_ptr));
        core::ptr::write_unaligned(udp.cast::<u16>(), port.to_be());
        if check != 0 {
            // Zero means "no checksum" (IPv4): keep it. A computed zero goes on the wire as
            // 0xffff, as the kernel's own UDP code and its BPF_F_MARK_MANGLED_0 do.
            let new = match csum_replace(check, old, port) {
                0 => 0xffff,
                sum => sum,
            };
            core::ptr::write_unaligned(check_ptr, new.to_be());
        }
    }
}

/// Redirects the packet to `Config::ifindex`, rewriting its UDP source port first when asked.
#[xdp]
pub fn afxdp_gen(ctx: XdpContext) -> u32 {
    let Some(config) = CONFIG.get(0) else {
        return xdp_action::XDP_DROP;
    };
    let mut runs = 0;
    if let Some(counter) = COUNTERS.get_ptr_mut(0) {
        // SAFETY: this CPU's slot of a per-CPU array, valid for the program's run; XDP runs
        // with migration disabled, so no other run touches it meanwhile.
        unsafe {
            runs = *counter;
            *counter = runs + 1;
        }
    }
    let count = config.port_count;
    if config.flags & REWRITE_SRC_PORT != 0 && count > 1 {
        let port = config.port_base + (runs % u64::from(count)) as u32;
        set_src_port(&ctx, config.udp_offset as usize, port as u16);
    }
    // SAFETY: a BPF helper taking plain integers.
    unsafe { bpf_redirect(config.ifindex, 0) as u32 }
}

/// The license declared to the kernel (no GPL-only helper is used).
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
