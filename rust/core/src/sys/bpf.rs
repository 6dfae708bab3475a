//! What the core needs from the kernel for BPF beyond what aya covers: `BPF_PROG_TEST_RUN` in
//! live-frames mode (the traffic generator), `BPF_PROG_LOAD` of a device-bound XDP program and
//! its `BPF_LINK_CREATE` (aya has no `prog_ifindex`), and detaching a program's XDP links
//! whatever copies of their descriptors exist (`BPF_LINK_DETACH`).

use std::ffi::{CStr, c_void};
use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// `BPF_PROG_TEST_RUN` (alias `BPF_PROG_RUN`), the `bpf(2)` command, from `linux/bpf.h`
/// (<https://github.com/torvalds/linux/blob/v6.18/include/uapi/linux/bpf.h>).
const BPF_PROG_TEST_RUN: libc::c_long = 10;
/// `BPF_F_TEST_XDP_LIVE_FRAMES` from `linux/bpf.h` (5.18): transmit the frames the program
/// returns `XDP_TX`/`XDP_REDIRECT` for, instead of returning the result to userspace.
pub const BPF_F_TEST_XDP_LIVE_FRAMES: u32 = 1 << 1;

/// The `test` member of `union bpf_attr` (`linux/bpf.h`), used by `BPF_PROG_TEST_RUN`. The
/// kernel reads `size_of` bytes and wants every byte after `batch_size` zero, hence the explicit
/// tail padding.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct BpfAttrTestRun {
    pub prog_fd: u32,
    pub retval: u32,
    pub data_size_in: u32,
    pub data_size_out: u32,
    pub data_in: u64,
    pub data_out: u64,
    pub repeat: u32,
    pub duration: u32,
    pub ctx_size_in: u32,
    pub ctx_size_out: u32,
    pub ctx_in: u64,
    pub ctx_out: u64,
    pub flags: u32,
    pub cpu: u32,
    pub batch_size: u32,
    pub _pad: u32,
}
const _: () = assert!(size_of::<BpfAttrTestRun>() == 80);
const _: () = assert!(std::mem::offset_of!(BpfAttrTestRun, data_in) == 16);
const _: () = assert!(std::mem::offset_of!(BpfAttrTestRun, repeat) == 32);
const _: () = assert!(std::mem::offset_of!(BpfAttrTestRun, ctx_in) == 48);
const _: () = assert!(std::mem::offset_of!(BpfAttrTestRun, flags) == 64);
const _: () = assert!(std::mem::offset_of!(BpfAttrTestRun, batch_size) == 72);

/// `bpf(BPF_PROG_TEST_RUN, attr, sizeof *attr)`.
///
/// # Safety
///
/// The pointers in `attr` (`data_in`, `data_out`, `ctx_in`, `ctx_out`) must be null or point to
/// live buffers of the sizes given in `attr`, readable (in) or writable (out) for the call.
pub unsafe fn prog_test_run(attr: &mut BpfAttrTestRun) -> io::Result<()> {
    // SAFETY: `attr` is a fully initialised `bpf_attr.test`; the caller guarantees the buffers
    // it points to.
    unsafe { bpf(BPF_PROG_TEST_RUN, attr) }.map(drop)
}

/// `bpf(cmd, attr, sizeof *attr)`: the one door to the `bpf(2)` system call. Returns its
/// non-negative result (a new descriptor for the commands that make one).
///
/// # Safety
///
/// `attr` must be the member of `union bpf_attr` that `cmd` reads, fully initialised (every
/// byte the kernel reads, padding included, zero where unused), and every pointer in it null or
/// pointing to a live buffer of the size `attr` gives, readable or writable as the kernel
/// uses it, for the call.
unsafe fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: the caller's contract; the size passed is `attr`'s own.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            std::ptr::from_mut(attr).cast::<c_void>(),
            size_of::<T>() as libc::c_uint,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ret)
}

/// The descriptor `bpf()` just returned for `cmd`.
fn new_fd(fd: libc::c_long) -> OwnedFd {
    // SAFETY: a new descriptor the kernel just returned, owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

/// One live-frames `BPF_PROG_TEST_RUN`: the kernel runs `prog_fd` `repeat` times, each time on
/// a fresh copy of `packet`, `batch_size` copies at a time, and performs the program's
/// verdicts. Returns once all `repeat` runs are done.
pub fn test_run_live(
    prog_fd: RawFd,
    packet: &[u8],
    repeat: u32,
    batch_size: u32,
) -> io::Result<()> {
    let mut attr = BpfAttrTestRun {
        prog_fd: prog_fd as u32,
        data_size_in: packet.len() as u32,
        data_in: packet.as_ptr() as u64,
        // data_out and ctx_out must stay NULL in live mode; no ctx_in: the packets "arrive" on
        // the loopback device of the calling thread's network namespace, where the redirect
        // looks its ifindex up.
        repeat,
        flags: BPF_F_TEST_XDP_LIVE_FRAMES,
        batch_size,
        ..BpfAttrTestRun::default()
    };
    // SAFETY: `data_in` points to `packet`, alive for the call, of the length given; the other
    // pointers are null.
    unsafe { prog_test_run(&mut attr) }
}

/// `BPF_PROG_LOAD` and `BPF_LINK_CREATE`, `bpf(2)` commands (`linux/bpf.h`).
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
/// `BPF_PROG_TYPE_XDP` (`enum bpf_prog_type`).
const BPF_PROG_TYPE_XDP: u32 = 6;
/// `BPF_XDP` (`enum bpf_attach_type`): the attach type of an XDP link.
const BPF_XDP: u32 = 37;
/// `BPF_F_XDP_HAS_FRAGS` (5.18): the program handles multi-buffer packets (`xdp.frags`).
pub const BPF_F_XDP_HAS_FRAGS: u32 = 1 << 5;
/// `BPF_F_XDP_DEV_BOUND_ONLY` (6.3): bound to the device `prog_ifindex` names without being
/// offloaded to it, which the `bpf_xdp_metadata_rx_*` kfuncs require.
pub const BPF_F_XDP_DEV_BOUND_ONLY: u32 = 1 << 6;
/// `XDP_FLAGS_DRV_MODE` (`linux/if_link.h`): attach in the driver (native mode).
pub const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

/// The `BPF_PROG_LOAD` member of `union bpf_attr`, up to `log_true_size` (6.4); the kernel
/// zero-fills what a shorter attribute leaves out.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct BpfAttrProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    prog_btf_fd: u32,
    func_info_rec_size: u32,
    func_info: u64,
    func_info_cnt: u32,
    line_info_rec_size: u32,
    line_info: u64,
    line_info_cnt: u32,
    attach_btf_id: u32,
    attach_prog_fd: u32,
    core_relo_cnt: u32,
    fd_array: u64,
    core_relos: u64,
    core_relo_rec_size: u32,
    log_true_size: u32,
}
const _: () = assert!(size_of::<BpfAttrProgLoad>() == 144);
const _: () = assert!(std::mem::offset_of!(BpfAttrProgLoad, prog_name) == 48);
const _: () = assert!(std::mem::offset_of!(BpfAttrProgLoad, prog_ifindex) == 64);
const _: () = assert!(std::mem::offset_of!(BpfAttrProgLoad, fd_array) == 120);

/// The `BPF_LINK_CREATE` member of `union bpf_attr`, up to `flags` (the XDP link needs no
/// more).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct BpfAttrLinkCreate {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
}

/// An XDP program to load with [`load_xdp_program`].
#[derive(Clone, Copy, Debug)]
pub struct XdpProgramLoad<'a> {
    /// The instructions, each `struct bpf_insn` as a native-endian u64.
    pub insns: &'a [u64],
    /// The license (a GPL-compatible one for kfunc calls).
    pub license: &'a CStr,
    /// The program's name, as the kernel shows it (cut to 15 bytes).
    pub name: &'a str,
    /// `BPF_F_*` load flags.
    pub flags: u32,
    /// The device to bind the program to, or 0.
    pub ifindex: u32,
}

/// A refused `BPF_PROG_LOAD`: the error and the verifier's log (empty when none was asked
/// for or it said nothing).
#[derive(Debug)]
pub struct LoadRefused {
    /// The errno of the call.
    pub error: io::Error,
    /// The verifier log.
    pub log: String,
}

/// The largest verifier log read back on a refusal (libbpf's default is the same order).
const VERIFIER_LOG_SIZE: usize = 4 << 20;

/// `bpf(BPF_PROG_LOAD)` of an XDP program. Loads without a verifier log first (the log costs
/// time); on a refusal, loads again with one so the error carries it.
pub fn load_xdp_program(program: &XdpProgramLoad<'_>) -> Result<OwnedFd, LoadRefused> {
    let mut name = [0u8; 16];
    let len = program.name.len().min(15);
    name[..len].copy_from_slice(&program.name.as_bytes()[..len]);
    let mut attr = BpfAttrProgLoad {
        prog_type: BPF_PROG_TYPE_XDP,
        insn_cnt: program.insns.len() as u32,
        insns: program.insns.as_ptr() as u64,
        license: program.license.as_ptr() as u64,
        prog_flags: program.flags,
        prog_name: name,
        prog_ifindex: program.ifindex,
        expected_attach_type: BPF_XDP,
        ..BpfAttrProgLoad::default()
    };
    let load = |attr: &mut BpfAttrProgLoad| {
        // SAFETY: `attr` is a fully initialised `bpf_attr` for BPF_PROG_LOAD; its pointers
        // (instructions, license, log) point to live buffers of the sizes given, for the call.
        unsafe { bpf(BPF_PROG_LOAD, attr) }.map(new_fd)
    };
    let error = match load(&mut attr) {
        Ok(fd) => return Ok(fd),
        Err(error) => error,
    };
    if error.raw_os_error() == Some(libc::EPERM) {
        // No privilege: the verifier never ran.
        return Err(LoadRefused { error, log: String::new() });
    }
    let mut log = vec![0u8; VERIFIER_LOG_SIZE];
    attr.log_level = 1;
    attr.log_size = log.len() as u32;
    attr.log_buf = log.as_mut_ptr() as u64;
    match load(&mut attr) {
        // Refused once, accepted now: take it (the verifier's verdict does not depend on
        // the log).
        Ok(fd) => Ok(fd),
        Err(error) => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            Err(LoadRefused { error, log: String::from_utf8_lossy(&log[..end]).into_owned() })
        }
    }
}

const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_LINK_GET_FD_BY_ID: libc::c_long = 30;
const BPF_LINK_GET_NEXT_ID: libc::c_long = 31;
const BPF_LINK_DETACH: libc::c_long = 34;
const BPF_LINK_TYPE_XDP: u32 = 6;

/// The `bpf_attr` of BPF_LINK_GET_FD_BY_ID and BPF_LINK_GET_NEXT_ID (`link_id` or
/// `start_id`, `next_id`, `open_flags`).
#[repr(C)]
struct BpfAttrById {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

/// The `bpf_attr` of BPF_LINK_DETACH.
#[repr(C)]
struct BpfAttrLinkDetach {
    link_fd: u32,
}

/// `bpf(BPF_LINK_GET_FD_BY_ID)`: a new descriptor of the BPF link with kernel id `id`.
/// Needs `CAP_SYS_ADMIN`.
fn link_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = BpfAttrById { id, next_id: 0, open_flags: 0 };
    // SAFETY: `attr` is a fully initialised `bpf_attr` for BPF_LINK_GET_FD_BY_ID, no pointers.
    unsafe { bpf(BPF_LINK_GET_FD_BY_ID, &mut attr) }.map(new_fd)
}

/// `bpf(BPF_LINK_DETACH)`: detaches BPF link `link` from its hook (an XDP link: its program
/// leaves the interface) however many descriptors of it are open, a forked child's copies
/// included; the link object itself stays, detached, until its last descriptor closes.
pub fn link_detach(link: BorrowedFd<'_>) -> io::Result<()> {
    let mut attr = BpfAttrLinkDetach { link_fd: link.as_raw_fd() as u32 };
    // SAFETY: `attr` is a fully initialised `bpf_attr` for BPF_LINK_DETACH, with no pointers.
    unsafe { bpf(BPF_LINK_DETACH, &mut attr) }.map(drop)
}

/// The `bpf_attr` of BPF_OBJ_GET_INFO_BY_FD.
#[repr(C)]
struct BpfAttrGetInfo {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// The head of `struct bpf_link_info` (type, id, prog_id), with room for the rest, which the
/// kernel fills up to `info_len` and which is not read here.
#[repr(C)]
#[derive(Default)]
struct BpfLinkInfo {
    kind: u32,
    id: u32,
    prog_id: u32,
    _rest: [u32; 29],
}

/// The id after `start` of a BPF link in the system (`BPF_LINK_GET_NEXT_ID`); None after the
/// last one.
fn next_link_id(start: u32) -> io::Result<Option<u32>> {
    let mut attr = BpfAttrById { id: start, next_id: 0, open_flags: 0 };
    // SAFETY: `attr` is a fully initialised `bpf_attr` for BPF_LINK_GET_NEXT_ID, no pointers.
    match unsafe { bpf(BPF_LINK_GET_NEXT_ID, &mut attr) } {
        Ok(_) => Ok(Some(attr.next_id)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// (type, program id) of BPF link `link`.
fn link_kind_and_program(link: BorrowedFd<'_>) -> io::Result<(u32, u32)> {
    let mut info = BpfLinkInfo::default();
    let mut attr = BpfAttrGetInfo {
        bpf_fd: link.as_raw_fd() as u32,
        info_len: size_of::<BpfLinkInfo>() as u32,
        info: std::ptr::from_mut(&mut info) as u64,
    };
    // SAFETY: `attr.info` points at `info`, writable for `info_len` bytes, for the call.
    unsafe { bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr) }?;
    Ok((info.kind, info.prog_id))
}

/// Detaches every XDP BPF link of program `program_id` with `BPF_LINK_DETACH`, so that the
/// program leaves its interface now even where a forked child still holds a copy of the link's
/// descriptor (closing the last copy is what detaches it otherwise); returns how many. Needs
/// `CAP_SYS_ADMIN` (to open links by id). A link that goes away meanwhile is skipped.
pub fn detach_xdp_links_of(program_id: u32) -> io::Result<u32> {
    let (mut next, mut detached) = (0, 0);
    while let Some(id) = next_link_id(next)? {
        next = id;
        let Ok(link) = link_fd_by_id(id) else { continue };
        if link_kind_and_program(link.as_fd())? == (BPF_LINK_TYPE_XDP, program_id) {
            link_detach(link.as_fd())?;
            detached += 1;
        }
    }
    Ok(detached)
}

/// `bpf(BPF_LINK_CREATE)` attaching XDP program `program` to interface `ifindex` with
/// `XDP_FLAGS_*` `xdp_flags`; the program stays attached as long as the returned link
/// descriptor (or a copy of it) is open.
pub fn xdp_link_create(
    program: BorrowedFd<'_>,
    ifindex: u32,
    xdp_flags: u32,
) -> io::Result<OwnedFd> {
    let mut attr = BpfAttrLinkCreate {
        prog_fd: program.as_raw_fd() as u32,
        target_ifindex: ifindex,
        attach_type: BPF_XDP,
        flags: xdp_flags,
    };
    // SAFETY: `attr` is a fully initialised `bpf_attr` for BPF_LINK_CREATE, with no pointers.
    unsafe { bpf(BPF_LINK_CREATE, &mut attr) }.map(new_fd)
}
