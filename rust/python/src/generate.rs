//! `afxdp.generate()`: the core's traffic generator (`afxdp::generator`), with the GIL released
//! while packets are pushed and signals checked between slices of chunks.

use std::time::Duration;

use afxdp::Interface;
use afxdp::generator::{GenerateOptions, Generator};
use pyo3::prelude::*;

use crate::convert::{Float, Int, with_bytes};
use crate::errors::{Error, Result};

/// How long packets are pushed without the GIL before it is taken back to check for signals
/// (Ctrl-C). Inside a slice, the core already stops after the chunk in progress when a signal
/// arrives for this thread, so Ctrl-C takes effect within a chunk (a few ms).
const SLICE: Duration = Duration::from_millis(50);

/// Pushes `packet` (a whole Ethernet frame, bytes-like) out of interface `ifname` at kernel
/// speed, and returns exactly how many copies were pushed.
///
/// It runs a tiny XDP program over the packet with `BPF_PROG_TEST_RUN` in live-frames mode
/// (Linux >= 5.18): the kernel redirects copy after copy out of the interface from pages of its
/// own, millions per second from one core, without a socket. It stops after `count` packets or
/// `duration` seconds, whichever comes first; at least one of them is required. `rate` caps the
/// packets per second (paced in ~1 ms steps). With `src_ports` > 1 the UDP source port cycles
/// through that many values from the template's own, and the UDP checksum is kept valid; that
/// needs an Ethernet (at most one 802.1Q/802.1ad tag) / IPv4 or IPv6 / UDP template.
/// `batch_size` (1..256) is the kernel's batch of packets per flush.
///
/// The interface name is resolved in the calling thread's network namespace. The packet must be
/// 14 to 3408 bytes (with 4 KiB pages) and fit the interface's MTU. The count is of copies handed
/// to the redirect: a copy the interface cannot take is dropped there and counted, if at all, by
/// the interface (veth: `ethtool -S` tx_queue_N_xdp_xmit_errors). A veth drops every copy,
/// without counting, unless its peer runs a native-mode XDP program (a generic-mode one does
/// not count) or has GRO on.
///
/// `progress`, a callable, is called with `(sent, seconds)` about every 50 ms and once at the
/// end: the packets pushed so far and the time spent pushing them (from the first packet;
/// loading and unloading the generator's program, some 20-100 ms, are not in it), so
/// `sent / seconds` is the rate of the run itself. An exception it raises stops the generator
/// and propagates (as Ctrl-C does).
///
/// The GIL is released while packets are pushed. Ctrl-C raises KeyboardInterrupt within 50 ms
/// (the count so far is then lost; `progress` has seen it up to the last slice).
///
/// Raises ValueError (no count or duration, a bad value: the message names it), OSError
/// ENODEV (unknown interface), PermissionError (no CAP_BPF/CAP_NET_ADMIN), OSError EINVAL
/// (kernel older than 5.18), VerifierError.
#[pyfunction]
#[pyo3(signature = (ifname, packet, count = None, *, duration = None, rate = None, src_ports = Int::Val(1), batch_size = Int::Val(64), progress = None),
       text_signature = "(ifname, packet, count=None, *, duration=None, rate=None, src_ports=1, batch_size=64, progress=None)")]
#[allow(clippy::too_many_arguments)]
pub fn generate(
    py: Python<'_>,
    ifname: String,
    packet: &Bound<'_, PyAny>,
    count: Option<Int>,
    duration: Option<Float>,
    rate: Option<Float>,
    src_ports: Int,
    batch_size: Int,
    progress: Option<Bound<'_, PyAny>>,
) -> Result<u64> {
    if let Some(p) = &progress
        && !p.is_callable()
    {
        return Err(Error::type_(format!(
            "progress must be a callable taking (sent, seconds), not {}",
            p.get_type().name()?
        )));
    }
    let count = count.map(|c| c.get_u64("count")).transpose()?;
    let (duration, rate) = (Float::get(duration, "duration")?, Float::get(rate, "rate")?);
    let duration = match duration {
        None => None,
        Some(d) => Some(Duration::try_from_secs_f64(d).map_err(|_| {
            // `{d:?}`: 1e300, not its 301 digits.
            Error::value(format!(
                "invalid duration {d:?}: must be a number of seconds from 0 to 2**64, or None"
            ))
        })?),
    };
    let src_ports = src_ports.get("src_ports")?;
    let src_ports = u32::try_from(src_ports).map_err(|_| {
        Error::value(format!("invalid src_ports {src_ports}: must be from 1 to 65536"))
    })?;
    let batch_size = batch_size.get("batch_size")?;
    let batch_size = u32::try_from(batch_size).map_err(|_| {
        Error::value(format!(
            "invalid batch_size {batch_size}: must be from 1 to {}",
            afxdp::generator::MAX_BATCH_SIZE
        ))
    })?;
    let options = GenerateOptions { count, duration, rate, src_ports, batch_size };
    let packet = with_bytes(packet, |p| Ok(p.to_vec()))?;

    let mut generator =
        py.detach(|| Generator::new(&Interface::by_name(&ifname)?, &packet, &options))?;
    let result = loop {
        match py.detach(|| generator.run_for(SLICE)).map_err(Error::from) {
            Ok(done) => {
                if let Err(interrupt) = py.check_signals() {
                    break Err(interrupt.into());
                }
                // No lock is held: the generator is this call's own.
                if let Some(p) = &progress
                    && let Err(e) = p.call1((generator.sent(), generator.elapsed().as_secs_f64()))
                {
                    break Err(e.into());
                }
                if done {
                    break Ok(generator.sent());
                }
            }
            Err(e) => break Err(e),
        }
    };
    // Unloading waits for an RCU grace period (the program leaves the XDP dispatcher).
    py.detach(move || drop(generator));
    result
}
