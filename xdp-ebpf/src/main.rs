//! The XDP program of afxdp.
//!
//! A packet leaves the kernel stack only when (1) it matches the active rule set (an empty set
//! matches everything) and (2) an AF_XDP socket is registered in [`XSKS`] at the index of the
//! receive queue it arrived on. Everything else returns `XDP_PASS`, so ARP, neighbour
//! discovery, SSH and whatever the rules don't claim reach the kernel stack untouched.
//!
//! # Rules
//!
//! A rule has up to three conditions, all of which must hold: the ethertype (after at most one
//! 802.1Q or 802.1ad VLAN tag), the IP protocol (IPv4 protocol, or the IPv6 next header after
//! up to [`IPV6_EXT_HEADERS`] hop-by-hop, routing, fragment and destination-options extension
//! headers), and the destination port (TCP, UDP, UDP-Lite, SCTP or DCCP; never matched on a
//! non-first IP fragment, which carries no transport header, nor on an IPv4 header shorter than
//! 20 bytes, which is malformed). A packet matches the set when it
//! matches any rule. The first matching rule's hit counter is incremented.
//!
//! # Changing rules atomically
//!
//! [`RULES`] holds two rule sets; [`ACTIVE`] says which one is in use. Userspace
//! (`rust/core/src/bpf/rules.rs`) writes the inactive set, waits for an RCU grace period (so every
//! program run that starts later sees the whole new set), flips [`ACTIVE`], and waits for a
//! grace period again (so no run still reads the old set before it is rewritten next time).
//! The program reads [`ACTIVE`] once per packet, so each packet is judged by exactly one
//! complete rule set, old or new.
//!
//! [`Rule`], [`RuleSet`], their flags and [`MAX_RULES`] come from `afxdp-ebpf-common`
//! (`xdp-ebpf/common`), which the core (`rust/core/src/bpf/rules.rs`) uses as well. The map
//! names must stay those in its `names` module.

#![no_std]
#![no_main]
// `asm!` for the kfunc stand-in calls (see `call_kfunc`); built with RUSTC_BOOTSTRAP=1.
#![feature(asm_experimental_arch)]

use afxdp_ebpf_common::{
    MATCH_DST_PORT, MATCH_ETHERTYPE, MATCH_IP_PROTO, MAX_RULES, NO_SOCKET_QUEUES, RX_META_HASH,
    RX_META_HW_TIMESTAMP, RX_META_LEN, RX_META_MAGIC, RX_META_TIMESTAMP, Rule, RuleSet, RxMeta,
    kfunc,
};
use aya_ebpf::{
    bindings::xdp_action,
    helpers::generated::{bpf_ktime_get_tai_ns, bpf_xdp_adjust_meta, bpf_xdp_get_buff_len},
    macros::{map, xdp},
    maps::{Array, PerCpuArray, XskMap},
    programs::XdpContext,
};

/// IPv6 extension headers walked to find the transport protocol.
const IPV6_EXT_HEADERS: usize = 4;

/// AF_XDP sockets, keyed by rx queue index. The size here is only a default: the loader
/// resizes it to the interface's queue count.
#[map]
static XSKS: XskMap = XskMap::with_max_entries(64, 0);

/// The two rule sets (see the module documentation).
#[map]
static RULES: Array<RuleSet> = Array::with_max_entries(2, 0);

/// Index 0: the active rule set, 0 or 1.
#[map]
static ACTIVE: Array<u32> = Array::with_max_entries(1, 0);

/// Per-CPU packet counters: `HITS[set * MAX_RULES + i]` counts packets whose first matching
/// rule was rule `i` of set `set`; `HITS[2 * MAX_RULES + set]` counts packets set `set` did not
/// match (passed to the stack).
#[map]
static HITS: PerCpuArray<u64> = PerCpuArray::with_max_entries(2 * MAX_RULES as u32 + 2, 0);

/// Per-CPU counters by rx queue: packets bound for [`XSKS`] (the rules matched) that found no
/// socket registered for their queue, and so went to the kernel stack. Queues from
/// `NO_SOCKET_QUEUES - 1` on share the last counter. Userspace sums them to warn about traffic
/// on a queue nobody listens to.
#[map]
static NO_SOCKET: PerCpuArray<u64> = PerCpuArray::with_max_entries(NO_SOCKET_QUEUES, 0);

/// Non-zero: write an [`RxMeta`] (the receive timestamp) before every packet handed to
/// [`XSKS`]. A read-only global the loader sets (`names::RX_META_ON`): the kernel freezes it
/// before verification, so with 0 the verifier drops the metadata code altogether.
#[unsafe(no_mangle)]
static RX_META_ON: u32 = 0;

/// Non-zero (with [`RX_META_ON`]): also ask the device for the packet's receive timestamp and
/// hash (`bpf_xdp_metadata_rx_*`, see [`call_kfunc`]). Set only when the loader binds the
/// program to its device (`names::RX_DEVICE_META_ON`); with 0 the verifier removes the calls.
#[unsafe(no_mangle)]
static RX_DEVICE_META_ON: u32 = 0;

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const ETH_HLEN: usize = 14;
const VLAN_HLEN: usize = 4;
const IPV6_HLEN: usize = 40;

/// What the rules look at, parsed once per packet. Plain integers rather than `Option`s:
/// every field is always written, so no register the verifier sees is ever uninitialised.
struct Headers {
    ethertype: u16,
    /// IP protocol; meaningful when `has_ip_proto`.
    ip_proto: u8,
    has_ip_proto: bool,
    /// Destination port; meaningful when `has_dst_port`.
    dst_port: u16,
    has_dst_port: bool,
}

/// The `N` bytes at `offset` in the packet, if they are all inside it.
///
/// Callers read whole headers (at least 2 bytes) through this one check: a check for a single
/// byte is compiled to `data + offset >= data_end`, which the verifier cannot use to bound a
/// variable offset.
#[inline(always)]
fn header<const N: usize>(ctx: &XdpContext, offset: usize) -> Option<[u8; N]> {
    let start = ctx.data();
    if start + offset + N > ctx.data_end() {
        return None;
    }
    // SAFETY: the check above keeps all `N` bytes inside the packet.
    Some(unsafe { core::ptr::read_unaligned((start + offset) as *const [u8; N]) })
}

#[inline(always)]
fn be16(bytes: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([bytes[at], bytes[at + 1]])
}

/// Whether `proto` carries its destination port at bytes 2..4 of its header.
#[inline(always)]
fn has_ports(proto: u8) -> bool {
    // TCP, UDP, DCCP, SCTP, UDP-Lite.
    matches!(proto, 6 | 17 | 33 | 132 | 136)
}

#[inline(always)]
fn parse(ctx: &XdpContext) -> Headers {
    let mut headers = Headers {
        ethertype: 0,
        ip_proto: 0,
        has_ip_proto: false,
        dst_port: 0,
        has_dst_port: false,
    };
    let Some(eth) = header::<ETH_HLEN>(ctx, 0) else {
        return headers;
    };
    let mut ethertype = be16(&eth, 12);
    let mut l3 = ETH_HLEN;
    if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
        let Some(tag) = header::<VLAN_HLEN>(ctx, ETH_HLEN) else {
            return headers;
        };
        ethertype = be16(&tag, 2);
        l3 += VLAN_HLEN;
    }
    headers.ethertype = ethertype;

    // `has_transport`: a transport header follows at `l4` (if the packet is long enough).
    let (proto, l4, has_transport) = match ethertype {
        ETH_P_IP => {
            let Some(ip) = header::<20>(ctx, l3) else {
                return headers;
            };
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            // A header length below 20 bytes is malformed: `l3 + ihl` would point inside the
            // IPv4 header, whose bytes 2..4 (the total length) would pass for a port. The ports
            // must also lie inside the packet's total length: a short packet's frame is padded
            // (to 60 bytes on Ethernet), and the padding is no header.
            let total = usize::from(be16(&ip, 2));
            let first = be16(&ip, 6) & 0x1fff == 0;
            (ip[9], l3 + ihl, ihl >= 20 && first && ihl + 4 <= total)
        }
        ETH_P_IPV6 => {
            let Some(ip) = header::<IPV6_HLEN>(ctx, l3) else {
                return headers;
            };
            let mut next = ip[6];
            let mut offset = l3 + IPV6_HLEN;
            let mut first_fragment = true;
            for _ in 0..IPV6_EXT_HEADERS {
                // Every extension header walked here is at least 8 octets.
                if !matches!(next, 0 | 43 | 44 | 60) {
                    break;
                }
                let Some(ext) = header::<8>(ctx, offset) else {
                    return headers;
                };
                let fragment = next == 44;
                if fragment {
                    // Fragment header: 8 octets; fragment offset in the upper 13 bits.
                    first_fragment = be16(&ext, 2) & 0xfff8 == 0;
                    offset += 8;
                } else {
                    // Hop-by-hop, routing, destination options: length in 8-octet units,
                    // not counting the first 8.
                    offset += (usize::from(ext[1]) + 1) * 8;
                }
                next = ext[0];
                if fragment && !first_fragment {
                    // A later fragment carries data, not headers (RFC 8200): its protocol is
                    // the fragment header's next header, and nothing after it is walked.
                    break;
                }
            }
            // As for IPv4, the ports must lie inside the payload the header announces.
            let payload = usize::from(be16(&ip, 4));
            (next, offset, first_fragment && offset + 4 <= l3 + IPV6_HLEN + payload)
        }
        _ => return headers,
    };
    headers.ip_proto = proto;
    headers.has_ip_proto = true;
    if has_transport && has_ports(proto) {
        if let Some(ports) = header::<4>(ctx, l4) {
            headers.dst_port = be16(&ports, 2);
            headers.has_dst_port = true;
        }
    }
    headers
}

#[inline(always)]
fn matches(rule: &Rule, headers: &Headers) -> bool {
    if rule.flags & MATCH_ETHERTYPE != 0 && rule.ethertype != headers.ethertype {
        return false;
    }
    if rule.flags & MATCH_IP_PROTO != 0
        && !(headers.has_ip_proto && headers.ip_proto == rule.ip_proto)
    {
        return false;
    }
    if rule.flags & MATCH_DST_PORT != 0
        && !(headers.has_dst_port && headers.dst_port == rule.dst_port)
    {
        return false;
    }
    true
}

#[inline(always)]
fn count(index: u32) {
    if let Some(counter) = HITS.get_ptr_mut(index) {
        // SAFETY: a per-CPU slot, only touched by this CPU (XDP runs with preemption off).
        unsafe { *counter += 1 };
    }
}

/// Redirect to the socket of this packet's rx queue when the active rules match, else pass
/// the packet to the kernel stack.
///
/// Frags-aware (section `xdp.frags`): it attaches in native mode on a veth whose MTU is above
/// a page, and multi-buffer (`XDP_USE_SG`) sockets get packets longer than a frame. The rules
/// read headers through `ctx.data()..ctx.data_end()`, the first buffer, which holds at least
/// the headers they look at.
#[xdp(frags)]
pub fn afxdp_redirect(ctx: XdpContext) -> u32 {
    let set = match ACTIVE.get_ptr(0) {
        // SAFETY: an array slot, valid for the program's run; read once (see module docs).
        Some(p) => (unsafe { core::ptr::read_volatile(p) }) & 1,
        None => 0,
    };
    let Some(rule_set) = RULES.get(set) else {
        return xdp_action::XDP_PASS;
    };
    if rule_set.count != 0 {
        let headers = parse(&ctx);
        let mut hit = None;
        for i in 0..MAX_RULES {
            if i as u32 >= rule_set.count {
                break;
            }
            if matches(&rule_set.rules[i], &headers) {
                hit = Some(i as u32);
                break;
            }
        }
        match hit {
            Some(i) => count(set * MAX_RULES as u32 + i),
            None => {
                count(2 * MAX_RULES as u32 + set);
                return xdp_action::XDP_PASS;
            }
        }
    }
    // SAFETY: a global of this program, read-only.
    if unsafe { core::ptr::read_volatile(&RX_META_ON) } != 0 {
        write_rx_meta(&ctx);
    }
    // The low bits of the flags are the action the helper returns when `XSKS[queue]` holds no
    // socket; either way its return value is the verdict.
    let queue = ctx.rx_queue_index();
    match XSKS.redirect(queue, u64::from(xdp_action::XDP_PASS)) {
        Ok(action) => action,
        Err(action) => {
            let slot = if queue < NO_SOCKET_QUEUES { queue } else { NO_SOCKET_QUEUES - 1 };
            if let Some(counter) = NO_SOCKET.get_ptr_mut(slot) {
                // SAFETY: a per-CPU slot, only touched by this CPU (XDP runs with preemption
                // off).
                unsafe { *counter += 1 };
            }
            action
        }
    }
}

/// Prepends an [`RxMeta`] with the current `CLOCK_TAI` time to the packet (the XDP metadata
/// area, which AF_XDP copies into the frame right before the packet). A driver without
/// metadata support refuses `bpf_xdp_adjust_meta`: the packet then goes without.
#[inline(always)]
fn write_rx_meta(ctx: &XdpContext) {
    // SAFETY: helpers called with the program's own context.
    let now = unsafe { bpf_ktime_get_tai_ns() };
    // SAFETY: as above.
    let len = unsafe { bpf_xdp_get_buff_len(ctx.ctx) } as u32;
    // SAFETY: as above; a negative delta grows the metadata area.
    if unsafe { bpf_xdp_adjust_meta(ctx.ctx, -(RX_META_LEN as i32)) } != 0 {
        return;
    }
    // Read after the adjustment (it moves `data_meta`).
    let meta = ctx.metadata();
    if meta + RX_META_LEN > ctx.data() {
        return;
    }
    let mut value = RxMeta {
        rx_timestamp: now,
        flags: RX_META_TIMESTAMP,
        len,
        magic: RX_META_MAGIC,
        ..RxMeta::default()
    };
    // SAFETY: a global of this program, read-only.
    if unsafe { core::ptr::read_volatile(&RX_DEVICE_META_ON) } != 0 {
        add_device_meta(ctx, &mut value);
    }
    // SAFETY: the check above keeps all `RX_META_LEN` bytes inside the metadata area.
    unsafe { core::ptr::write_unaligned(meta as *mut RxMeta, value) };
}

/// Fills in what the device knows about the packet: its receive timestamp and its receive hash
/// with the hash's type, each with its flag when the device has it (the kfunc returned 0). A
/// device timestamp of 0 means none (veth returns 0 for packets without one).
#[inline(always)]
fn add_device_meta(ctx: &XdpContext, value: &mut RxMeta) {
    let mut stamp: u64 = 0;
    // SAFETY: the kernel writes a u64 through the second argument; `ctx.ctx` is the context.
    let ret =
        unsafe { call_kfunc::<{ kfunc::RX_TIMESTAMP }>(ctx.ctx as u64, &raw mut stamp as u64, 0) };
    if ret == 0 && stamp != 0 {
        value.rx_hw_timestamp = stamp;
        value.flags |= RX_META_HW_TIMESTAMP;
    }
    let mut hash: u32 = 0;
    let mut hash_type: u32 = 0;
    // SAFETY: the kernel writes a u32 through each of the second and third arguments.
    let ret = unsafe {
        call_kfunc::<{ kfunc::RX_HASH }>(
            ctx.ctx as u64,
            &raw mut hash as u64,
            &raw mut hash_type as u64,
        )
    };
    if ret == 0 {
        value.rx_hash = hash;
        value.rx_hash_type = hash_type as u16;
        value.flags |= RX_META_HASH;
    }
}

/// `call ID` with three arguments: the stand-in for a kfunc call that the loader rewrites (see
/// `afxdp_ebpf_common::kfunc`). Returns the function's `int` result.
///
/// # Safety
///
/// Only for the `kfunc` ids, with the arguments their kernel functions take.
#[inline(always)]
unsafe fn call_kfunc<const ID: i32>(a: u64, b: u64, c: u64) -> i32 {
    let ret: u64;
    // SAFETY: the caller passes what the kernel function expects; a call clobbers r0-r5.
    unsafe {
        core::arch::asm!(
            "call {id}",
            id = const ID,
            inlateout("r1") a => _,
            inlateout("r2") b => _,
            inlateout("r3") c => _,
            lateout("r0") ret,
            lateout("r4") _,
            lateout("r5") _,
        );
    }
    ret as i32
}

/// The license declared to the kernel. `bpf_redirect_map` does not need a GPL-compatible one,
/// but kfunc calls (the device metadata) and GPL-only helpers such as `bpf_trace_printk` do.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
