//! The generator's program and its kernel runs: loading and configuring `afxdp_gen`, pinning it
//! in the XDP dispatcher, and one chunk of `BPF_PROG_TEST_RUN` with every signal blocked.

use std::error::Error as StdError;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use afxdp_ebpf_common::{GenConfig, REWRITE_SRC_PORT, names};
use aya::maps::{Array, MapData, PerCpuArray};
use aya::programs::{ProgramError, Xdp};
use aya::{Ebpf, EbpfLoader};

use super::{GenerateError, Generator, UdpTemplate};
use crate::bpf::BpfError;
use crate::bpf::errors::{errno_of, error_chain, program_load_error};
use crate::bpf::with_loader;
use crate::error::Result;
use crate::sys::bpf::test_run_live;
use crate::sys::thread::{BlockedSignals, in_new_netns, this_thread_netns};
use crate::sys::{Interface, errno};

/// The generator's XDP program (ELF object), built from `xdp-ebpf/src/gen.rs` by
/// `scripts/build-ebpf.sh`.
static GEN_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("CARGO_MANIFEST_DIR"), "/bpf/afxdp_gen.bpf.o"));

/// [`GenConfig`] as an aya map value.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default)]
struct PodGenConfig(GenConfig);

// SAFETY: `GenConfig` is `#[repr(C)]` plain integers with an explicit padding field (no
// padding the compiler owns, asserted in afxdp-ebpf-common); any bit pattern is valid.
unsafe impl aya::Pod for PodGenConfig {}

/// The loaded, configured program.
pub(crate) struct Loaded {
    pub(crate) ebpf: Ebpf,
    pub(crate) prog_fd: RawFd,
    pub(crate) counters: PerCpuArray<MapData, u64>,
    /// The private network namespace whose loopback device pins the program, if it could be
    /// made.
    pub(crate) pin_netns: Option<OwnedFd>,
}

/// Loads `afxdp_gen`, configured to redirect to `iface` (rewriting the UDP source port through
/// `src_ports` values when `template` is given), and pins it when it can.
pub(crate) fn load(
    iface: &Interface,
    template: Option<UdpTemplate>,
    src_ports: u32,
) -> Result<Loaded> {
    static LOADER: Mutex<Option<EbpfLoader<'static>>> = Mutex::new(None);
    let mut ebpf =
        with_loader(&LOADER, |loader| loader.load(GEN_OBJECT)).map_err(|e| load_error(&e))?;
    let mut config_map: Array<MapData, PodGenConfig> = take_map(&mut ebpf, names::CONFIG)?;
    let counters: PerCpuArray<MapData, u64> = take_map(&mut ebpf, names::COUNTERS)?;
    let config = GenConfig {
        ifindex: iface.index(),
        udp_offset: template.map_or(0, |t| t.udp_offset as u32),
        port_base: template.map_or(0, |t| u32::from(t.src_port)),
        port_count: src_ports,
        flags: if template.is_some() { REWRITE_SRC_PORT } else { 0 },
        _pad: 0,
    };
    config_map.set(0, PodGenConfig(config), 0).map_err(|e| BpfError::Map {
        op: "update",
        key: 0,
        errno: errno_of(&e),
        message: format!("writing the generator's configuration: {}", error_chain(&e)),
    })?;

    let program: &mut Xdp = ebpf
        .program_mut(names::GEN_PROGRAM)
        .ok_or_else(|| BpfError::Load {
            errno: None,
            message: format!("the embedded object has no program `{}`", names::GEN_PROGRAM),
        })?
        .try_into()
        .map_err(|e: ProgramError| load_error(&e))?;
    program.load().map_err(|e| program_load_error(names::GEN_PROGRAM, e, load_error))?;
    let prog_fd = program.fd().map_err(|e| load_error(&e))?.as_fd().as_raw_fd();
    // Best effort: without the pin, chunks are longer (see the module documentation).
    let pin_netns = pin_in_dispatcher(program).ok();
    Ok(Loaded { ebpf, prog_fd, counters, pin_netns })
}

/// Attaches `program` in generic mode to the loopback device of a new, private network
/// namespace, so that it stays in the kernel's XDP dispatcher (see the module documentation);
/// returns a descriptor of the namespace, which keeps it (and the attachment) alive. The link
/// belongs to `program` and is removed when the program is dropped.
fn pin_in_dispatcher(program: &mut Xdp) -> io::Result<OwnedFd> {
    /// The loopback device's ifindex in every network namespace.
    const LOOPBACK_IFINDEX: u32 = 1;
    in_new_netns(|| {
        let netns = this_thread_netns()?;
        program
            .attach_to_if_index(LOOPBACK_IFINDEX, aya::programs::XdpMode::Skb)
            .map_err(|e| io::Error::other(error_chain(&e)))?;
        Ok(netns)
    })
}

impl Generator {
    /// One `BPF_PROG_TEST_RUN` of `repeat` packets with every signal blocked. Returns whether a
    /// signal the caller had not blocked became pending meanwhile.
    pub(crate) fn push(&mut self, repeat: u32) -> Result<bool> {
        let blocked = BlockedSignals::block_all()
            .map_err(|source| GenerateError::TestRun { sent: self.sent, source })?;
        let start = Instant::now();
        let result = test_run_live(self.prog_fd, &self.packet, repeat, self.batch_size);
        let elapsed = start.elapsed();
        let signal_pending = blocked.newly_pending();
        drop(blocked); // Pending signals are delivered here, on this thread.
        match result {
            Ok(()) => {
                self.sent += u64::from(repeat);
                if elapsed > Duration::ZERO {
                    self.pps_estimate = Some(f64::from(repeat) / elapsed.as_secs_f64());
                }
                Ok(signal_pending)
            }
            // Only a signal that cannot be blocked (SIGSTOP, or ptrace) gets here: the chunk
            // stopped part-way; the program's run counter says how far.
            Err(e) if e.raw_os_error() == Some(errno::EINTR) => {
                self.sent = self
                    .runs()
                    .map_err(|source| GenerateError::TestRun { sent: self.sent, source })?;
                Ok(true)
            }
            Err(source) => {
                if let Ok(runs) = self.runs() {
                    self.sent = runs;
                }
                Err(GenerateError::TestRun { sent: self.sent, source }.into())
            }
        }
    }

    /// The program's runs since it was loaded, summed over CPUs.
    pub(crate) fn runs(&self) -> io::Result<u64> {
        let values = self
            .counters
            .get(&0, 0)
            .map_err(|e| io::Error::from_raw_os_error(errno_of(&e).unwrap_or(errno::EIO)))?;
        Ok(values.iter().sum())
    }
}

/// The map `name` of the generator's object, typed.
fn take_map<M>(ebpf: &mut Ebpf, name: &str) -> Result<M>
where
    M: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf.take_map(name).ok_or_else(|| BpfError::Load {
        errno: None,
        message: format!("the embedded object has no map `{name}`"),
    })?;
    Ok(M::try_from(map).map_err(|e| load_error(&e))?)
}

/// A [`BpfError::Load`] from an aya error, keeping the errno.
fn load_error(error: &(dyn StdError + 'static)) -> BpfError {
    BpfError::Load {
        errno: errno_of(error),
        message: format!("the traffic generator's program: {}", error_chain(error)),
    }
}
