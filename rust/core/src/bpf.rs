//! The built-in XDP program: load, attach, XSKMAP registration, detach.
//!
//! AF_XDP sockets only receive what an XDP program on the interface redirects to them. afxdp
//! ships one program, `afxdp_redirect` (source in `xdp-ebpf/`, object committed as
//! `rust/core/bpf/afxdp.bpf.o` and embedded here): it redirects every packet to the socket
//! registered in its XSKMAP at the packet's rx queue index, and passes the packet to the kernel
//! stack (`XDP_PASS`) when that queue has no socket, so ARP, neighbour discovery and queues
//! without a socket keep working.
//!
//! [`XdpProgram::attach_builtin`] loads the program with the XSKMAP sized to the interface's
//! queue count ([`interface_queue_count`]) and attaches it; [`XdpProgram::register`] puts a bound
//! socket into the map at its queue; dropping the [`XdpProgram`] (or [`XdpProgram::detach`])
//! removes the program from the interface.
//!
//! # Lifetime of the attachment
//!
//! aya attaches through a BPF link (`bpf_link_create`, kernel ≥ 5.9) and falls back to netlink
//! only when the kernel rejects links with `EINVAL`. A link belongs to its file descriptor: the
//! program is detached when the [`XdpProgram`] is dropped or the process exits, even by
//! `SIGKILL`. A `fork()` without `exec` duplicates that descriptor, so the program stays attached
//! until the child exits too. On the netlink fallback (kernels < 5.9) a killed process leaves the
//! program attached (`ip link set dev IFNAME xdp off` removes it).
//!
//! # Minimum kernel version
//!
//! 4.18 for XSKMAP and `bpf_redirect_map` into it; 5.3 for the fallback action in the low bits
//! of the `bpf_redirect_map` flags (older kernels drop packets of queues without a socket);
//! 5.9 for BPF links. Tested on 6.18.
//!
//! # Privileges
//!
//! Loading and attaching need `CAP_BPF` and `CAP_NET_ADMIN` (or root); creating an XSKMAP needs
//! `CAP_NET_ADMIN`.
//!
//! # Network namespaces
//!
//! Interface names and indexes are resolved in the calling thread's network namespace, which
//! is also where the program is attached.

use std::{
    error::Error as StdError,
    ffi::{CString, c_char, c_void},
    fmt, io,
    mem::size_of,
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
    str::FromStr,
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{MapData, MapError, XskMap},
    programs::{ProgramError, Xdp, XdpMode, xdp::XdpLinkId},
};

/// The compiled XDP program (ELF object), built from `xdp-ebpf/` by `scripts/build-ebpf.sh`.
static PROGRAM_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("CARGO_MANIFEST_DIR"), "/bpf/afxdp.bpf.o"));

/// Name of the XDP program in [`PROGRAM_OBJECT`].
const PROGRAM_NAME: &str = "afxdp_redirect";

/// Name of the XSKMAP in [`PROGRAM_OBJECT`] (rx queue index → AF_XDP socket).
const MAP_NAME: &str = "XSKS";

/// How the XDP program is attached to the interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AttachMode {
    /// Native first, generic when the driver cannot run XDP natively.
    #[default]
    Auto,
    /// Native (driver) mode, `XDP_FLAGS_DRV_MODE`: the program runs in the driver before an
    /// skb is allocated. Needs driver support (veth has it).
    Native,
    /// Generic (skb) mode, `XDP_FLAGS_SKB_MODE`: the program runs in the kernel stack after
    /// skb allocation. Works on every interface, slower.
    Generic,
}

impl AttachMode {
    /// The mode's name: `"auto"`, `"native"` or `"generic"` (what [`FromStr`] accepts).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Native => "native",
            Self::Generic => "generic",
        }
    }
}

impl fmt::Display for AttachMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing an [`AttachMode`] from a string other than `auto`, `native`, `generic`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid XDP attach mode {value:?}: expected \"auto\", \"native\" or \"generic\"")]
pub struct ParseAttachModeError {
    /// The string that was not a mode.
    pub value: String,
}

impl FromStr for AttachMode {
    type Err = ParseAttachModeError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "auto" => Ok(Self::Auto),
            "native" => Ok(Self::Native),
            "generic" => Ok(Self::Generic),
            _ => Err(ParseAttachModeError {
                value: value.to_owned(),
            }),
        }
    }
}

/// Errors of loading, attaching and driving the XDP program.
///
/// Where the kernel returned an errno it is kept (see [`BpfError::errno`]), so the bindings can
/// raise an `OSError` with the real code.
#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    /// No interface of that name in this network namespace.
    #[error("no such network interface: {ifname:?}")]
    NoSuchInterface {
        /// The name that was looked up.
        ifname: String,
    },

    /// Loading the object or the program into the kernel failed. For a verifier rejection
    /// `message` includes the verifier log; `EPERM` means missing privileges.
    #[error("loading the XDP program failed: {message}{}", privilege_hint(*errno))]
    Load {
        /// The errno of the failing `bpf()` call, if any.
        errno: Option<i32>,
        /// What failed, with aya's error chain.
        message: String,
    },

    /// Attaching to the interface failed. Common errnos: `EBUSY` (another XDP program is
    /// attached in this mode, e.g. by `ip link` or another process), `EEXIST` (a program is
    /// attached in the other mode), `EOPNOTSUPP` (no native XDP in this driver), `ERANGE`
    /// (native mode on veth with an MTU above one page), `EPERM`.
    #[error("attaching the XDP program to {ifname} in {mode} mode failed: {message}{}", privilege_hint(*errno))]
    Attach {
        /// The interface.
        ifname: String,
        /// The mode tried: `"native"` or `"generic"`.
        mode: &'static str,
        /// The errno of the failing call, if any.
        errno: Option<i32>,
        /// What failed, with aya's error chain.
        message: String,
    },

    /// Updating (`"update"`) or deleting (`"delete"`) an XSKMAP entry failed. Common errnos:
    /// `EBADF` (not a file descriptor), `EOPNOTSUPP` (not an AF_XDP socket).
    #[error("XSKMAP {op} at queue {key} failed: {message}")]
    Map {
        /// `"update"` or `"delete"`.
        op: &'static str,
        /// The queue index.
        key: u32,
        /// The errno of `bpf_map_update_elem`/`bpf_map_delete_elem`, if any.
        errno: Option<i32>,
        /// What failed, with aya's error chain.
        message: String,
    },

    /// The queue index is not below the XSKMAP size (the interface's queue count).
    #[error("queue {queue} is out of range: the XSKMAP has {max} entries")]
    QueueOutOfRange {
        /// The queue index given.
        queue: u32,
        /// The XSKMAP size; valid queues are `0..max`.
        max: u32,
    },

    /// The program was detached; it cannot be used any more.
    #[error("the XDP program is detached")]
    Detached,

    /// Querying the interface failed (`call` is `"ETHTOOL_GCHANNELS"` or `"RTM_GETLINK"`).
    #[error("{call} on {ifname} failed: {message}")]
    Query {
        /// The request that failed.
        call: &'static str,
        /// The interface.
        ifname: String,
        /// The errno, if any.
        errno: Option<i32>,
        /// What failed.
        message: String,
    },
}

/// What to do about EPERM/EACCES from `bpf()` or the attach: name the capabilities.
fn privilege_hint(errno: Option<i32>) -> &'static str {
    match errno {
        Some(libc::EPERM | libc::EACCES) => {
            " (loading and attaching XDP programs needs CAP_BPF and CAP_NET_ADMIN, or CAP_SYS_ADMIN: run as root)"
        }
        _ => "",
    }
}

impl BpfError {
    /// The errno behind this error, if the kernel returned one (`ENODEV` for
    /// [`BpfError::NoSuchInterface`]); `None` for errors found before any system call.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Load { errno, .. }
            | Self::Attach { errno, .. }
            | Self::Map { errno, .. }
            | Self::Query { errno, .. } => *errno,
            // What if_nametoindex() and the kernel say for an unknown interface.
            Self::NoSuchInterface { .. } => Some(libc::ENODEV),
            Self::QueueOutOfRange { .. } | Self::Detached => None,
        }
    }
}

/// The built-in XDP program, loaded and attached to one interface.
///
/// Owns the loaded program, its XSKMAP and the attachment (a BPF link): dropping it, or
/// [`detach`](Self::detach), removes the program from the interface and unloads it.
/// Its methods take `&mut self`; share it between threads behind a `Mutex`.
pub struct XdpProgram {
    ifname: String,
    ifindex: u32,
    mode: AttachMode,
    map_size: u32,
    /// `None` once detached.
    attached: Option<Attached>,
}

/// What exists while the program is attached. Dropping it detaches and unloads.
struct Attached {
    /// The XSKMAP, taken out of `ebpf` so it is typed once.
    xsks: XskMap<MapData>,
    /// The attachment of the `afxdp_redirect` program in `ebpf`.
    link: XdpLinkId,
    /// The loaded object (owns the program and, through it, the link).
    ebpf: Ebpf,
}

// The Python bindings keep an `XdpProgram` in a `Mutex` inside a `#[pyclass]`.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<XdpProgram>();
};

impl fmt::Debug for XdpProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XdpProgram")
            .field("ifname", &self.ifname)
            .field("ifindex", &self.ifindex)
            .field("mode", &self.mode)
            .field("map_size", &self.map_size)
            .field("attached", &self.is_attached())
            .finish()
    }
}

impl XdpProgram {
    /// Loads the built-in program and attaches it to `ifname`.
    ///
    /// The XSKMAP gets one entry per queue of the interface ([`interface_queue_count`]).
    /// [`AttachMode::Auto`] tries native mode, then generic mode; it does not fall back when
    /// native mode fails with `EBUSY`, `EEXIST`, `EPERM` or `EACCES`, which generic mode would
    /// hit as well.
    ///
    /// # Errors
    ///
    /// [`BpfError::NoSuchInterface`], [`BpfError::Query`] (queue count), [`BpfError::Load`],
    /// [`BpfError::Attach`].
    pub fn attach_builtin(ifname: &str, mode: AttachMode) -> Result<XdpProgram, BpfError> {
        let ifindex = interface_index(ifname)?;
        let queues = interface_queue_count(ifname)?.max(1);

        let mut ebpf = EbpfLoader::new()
            // No CO-RE relocations in this program: skip parsing the kernel's BTF. The
            // object's own BTF is still loaded.
            .btf(None)
            .map_max_entries(MAP_NAME, queues)
            .load(PROGRAM_OBJECT)
            .map_err(|e| load_error(&e))?;
        let xsks = ebpf
            .take_map(MAP_NAME)
            .ok_or_else(|| missing_in_object("map", MAP_NAME))
            .and_then(|map| XskMap::try_from(map).map_err(|e| load_error(&e)))?;
        let map_size = xsks.len();

        let program: &mut Xdp = ebpf
            .program_mut(PROGRAM_NAME)
            .ok_or_else(|| missing_in_object("program", PROGRAM_NAME))?
            .try_into()
            .map_err(|e: ProgramError| load_error(&e))?;
        program.load().map_err(|e| load_error(&e))?;

        let (link, mode) = match mode {
            AttachMode::Auto => attach_auto(program, ifname, ifindex)?,
            mode => (attach(program, ifname, ifindex, mode)?, mode),
        };

        Ok(XdpProgram {
            ifname: ifname.to_owned(),
            ifindex,
            mode,
            map_size,
            attached: Some(Attached { xsks, link, ebpf }),
        })
    }

    /// Registers an AF_XDP socket for `queue`: `XSKMAP[queue] = socket_fd`, replacing any
    /// socket registered there before.
    ///
    /// Register a socket after it is bound to (this interface, `queue`) and has an RX ring
    /// and frames on its FILL ring: packets redirected to a socket that is not bound are
    /// dropped, and a socket bound to another queue or interface never receives them. The map
    /// holds its own reference to the socket (`socket_fd` only has to be open during the call);
    /// closing the socket removes it from the map.
    ///
    /// # Errors
    ///
    /// [`BpfError::Detached`], [`BpfError::QueueOutOfRange`] when `queue >= map_size()`,
    /// [`BpfError::Map`] (e.g. `EBADF`, or `EOPNOTSUPP` for a socket that is not AF_XDP).
    pub fn register(&mut self, queue: u32, socket_fd: RawFd) -> Result<(), BpfError> {
        let xsks = self.xsks_at(queue)?;
        xsks.set(queue, socket_fd, 0)
            .map_err(|e| map_error("update", queue, e))
    }

    /// Removes the socket registered for `queue`, if any; the queue's packets go back to
    /// the kernel stack. Unregistering an empty queue is not an error.
    ///
    /// # Errors
    ///
    /// [`BpfError::Detached`], [`BpfError::QueueOutOfRange`], [`BpfError::Map`].
    pub fn unregister(&mut self, queue: u32) -> Result<(), BpfError> {
        let xsks = self.xsks_at(queue)?;
        match xsks.unset(queue) {
            Ok(()) => Ok(()),
            Err(e) => match map_error("delete", queue, e) {
                BpfError::Map {
                    errno: Some(libc::ENOENT),
                    ..
                } => Ok(()),
                other => Err(other),
            },
        }
    }

    /// Detaches the program from the interface and unloads it, with its XSKMAP. Idempotent;
    /// also done on drop. Sockets stay open and bound, and their queues' packets go back to
    /// the kernel stack.
    ///
    /// # Errors
    ///
    /// [`BpfError::Attach`] if the kernel refused to detach; the program is unloaded anyway.
    pub fn detach(&mut self) -> Result<(), BpfError> {
        let Some(Attached {
            xsks,
            link,
            mut ebpf,
        }) = self.attached.take()
        else {
            return Ok(());
        };
        let detached = match ebpf.program_mut(PROGRAM_NAME).map(<&mut Xdp>::try_from) {
            Some(Ok(program)) => program.detach(link),
            Some(Err(e)) => Err(e),
            None => Err(ProgramError::NotLoaded),
        };
        // Unload the program, then close the map.
        drop(ebpf);
        drop(xsks);
        detached.map_err(|e| BpfError::Attach {
            ifname: self.ifname.clone(),
            mode: self.mode.as_str(),
            errno: errno_of(&e),
            message: format!("detaching: {}", error_chain(&e)),
        })
    }

    /// Whether the program is attached: true from [`attach_builtin`](Self::attach_builtin)
    /// until [`detach`](Self::detach) or drop. (The kernel detaches it by itself when the
    /// interface is deleted; this object does not notice.)
    pub fn is_attached(&self) -> bool {
        self.attached.is_some()
    }

    /// The mode the program was attached in: [`AttachMode::Native`] or
    /// [`AttachMode::Generic`], never [`AttachMode::Auto`].
    pub fn mode(&self) -> AttachMode {
        self.mode
    }

    /// The interface name given to [`attach_builtin`](Self::attach_builtin).
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The interface index (in the network namespace the program was attached in).
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The number of XSKMAP entries: valid queues for [`register`](Self::register) are
    /// `0..map_size()`.
    pub fn map_size(&self) -> u32 {
        self.map_size
    }

    /// The XSKMAP, if attached and `queue` is in range.
    fn xsks_at(&mut self, queue: u32) -> Result<&mut XskMap<MapData>, BpfError> {
        let max = self.map_size;
        let attached = self.attached.as_mut().ok_or(BpfError::Detached)?;
        if queue >= max {
            return Err(BpfError::QueueOutOfRange { queue, max });
        }
        Ok(&mut attached.xsks)
    }
}

impl Drop for XdpProgram {
    fn drop(&mut self) {
        // Nothing to report to: the program is unloaded whatever the result.
        let _ = self.detach();
    }
}

/// Attaches `program` to `ifindex` in `mode` (Native or Generic).
fn attach(
    program: &mut Xdp,
    ifname: &str,
    ifindex: u32,
    mode: AttachMode,
) -> Result<XdpLinkId, BpfError> {
    let xdp_mode = match mode {
        AttachMode::Native => XdpMode::Driver,
        AttachMode::Generic => XdpMode::Skb,
        AttachMode::Auto => unreachable!("Auto is resolved by the caller"),
    };
    program.attach_to_if_index(ifindex, xdp_mode).map_err(|e| {
        let errno = errno_of(&e);
        let hint = match errno {
            Some(libc::EBUSY) => {
                "; another XDP program is attached to IFNAME in this mode, by another process \
                 or by `ip link` (`ip link set dev IFNAME xdp off` removes the latter)"
            }
            Some(libc::EEXIST) => {
                "; an XDP program is attached in the other mode (native and generic \
                 can't be active at the same time)"
            }
            Some(libc::ERANGE) if mode == AttachMode::Native => {
                "; on veth: the peer's MTU is too large for native XDP without frags support \
                 (at most about one page)"
            }
            _ => "",
        };
        BpfError::Attach {
            ifname: ifname.to_owned(),
            mode: mode.as_str(),
            errno,
            message: format!("{}{}", error_chain(&e), hint.replace("IFNAME", ifname)),
        }
    })
}

/// Attaches `program` in native mode, else in generic mode; returns the mode used.
fn attach_auto(
    program: &mut Xdp,
    ifname: &str,
    ifindex: u32,
) -> Result<(XdpLinkId, AttachMode), BpfError> {
    let native = match attach(program, ifname, ifindex, AttachMode::Native) {
        Ok(link) => return Ok((link, AttachMode::Native)),
        Err(error) => error,
    };
    // Another program attached, or missing privileges: generic mode would fail as well, and
    // the native error says why.
    if matches!(
        native.errno(),
        Some(libc::EBUSY | libc::EEXIST | libc::EPERM | libc::EACCES)
    ) {
        return Err(native);
    }
    match attach(program, ifname, ifindex, AttachMode::Generic) {
        Ok(link) => Ok((link, AttachMode::Generic)),
        Err(BpfError::Attach {
            ifname,
            mode,
            errno,
            message,
        }) => Err(BpfError::Attach {
            ifname,
            mode,
            errno,
            message: format!("{message} (after native mode failed: {native})"),
        }),
        Err(other) => Err(other),
    }
}

/// A [`BpfError::Load`] from an aya error, keeping the errno and the verifier log.
fn load_error(error: &(dyn StdError + 'static)) -> BpfError {
    BpfError::Load {
        errno: errno_of(error),
        message: error_chain(error),
    }
}

/// A [`BpfError::Load`] for an object that lacks `name` (the embedded object is broken).
fn missing_in_object(kind: &str, name: &str) -> BpfError {
    BpfError::Load {
        errno: None,
        message: format!("the embedded object has no {kind} `{name}`"),
    }
}

/// A [`BpfError`] from an XSKMAP error.
fn map_error(op: &'static str, key: u32, error: MapError) -> BpfError {
    match error {
        MapError::OutOfBounds { index, max_entries } => BpfError::QueueOutOfRange {
            queue: index,
            max: max_entries,
        },
        error => BpfError::Map {
            op,
            key,
            errno: errno_of(&error),
            message: error_chain(&error),
        },
    }
}

/// The first OS error code in `error`'s source chain.
fn errno_of(error: &(dyn StdError + 'static)) -> Option<i32> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(errno) = e
            .downcast_ref::<io::Error>()
            .and_then(io::Error::raw_os_error)
        {
            return Some(errno);
        }
        if let Some(errno) = e
            .downcast_ref::<aya::sys::NetlinkError>()
            .and_then(aya::sys::NetlinkError::raw_os_error)
        {
            return Some(errno);
        }
        current = e.source();
    }
    None
}

/// `error` and its sources joined by ": " (aya's messages put the detail, e.g. the errno, in
/// the source). A source whose text the message already contains is skipped.
fn error_chain(error: &(dyn StdError + 'static)) -> String {
    let mut message = error.to_string();
    let mut current = error.source();
    while let Some(e) = current {
        let text = e.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        current = e.source();
    }
    message
}

/// The index of `ifname` in the calling thread's network namespace.
fn interface_index(ifname: &str) -> Result<u32, BpfError> {
    let no_such = || BpfError::NoSuchInterface {
        ifname: ifname.to_owned(),
    };
    let name = CString::new(ifname).map_err(|_| no_such())?;
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
    match unsafe { libc::if_nametoindex(name.as_ptr()) } {
        0 => Err(no_such()),
        ifindex => Ok(ifindex),
    }
}

/// `struct ethtool_channels` from `linux/ethtool.h`.
#[repr(C)]
#[derive(Debug, Default)]
struct EthtoolChannels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}
const _: () = assert!(size_of::<EthtoolChannels>() == 36);

/// `ETHTOOL_GCHANNELS` from `linux/ethtool.h`: get the channel (queue) counts.
const ETHTOOL_GCHANNELS: u32 = 0x3c;

/// `struct ifreq` with its union used as `ifr_data` (the `SIOCETHTOOL` argument).
#[repr(C)]
struct IfreqEthtool {
    ifr_name: [c_char; libc::IFNAMSIZ],
    ifr_data: *mut c_void,
    /// The rest of the union (`struct ifmap` is the largest member).
    _union_rest: [u8; 16],
}
const _: () = assert!(size_of::<IfreqEthtool>() == size_of::<libc::ifreq>());

/// The number of queues to size an XSKMAP for `ifname`.
///
/// Asks the driver with `ETHTOOL_GCHANNELS` (`ioctl(SIOCETHTOOL)` on a datagram socket, so it
/// sees the calling thread's network namespace; `/sys/class/net` does not inside
/// `ip netns exec`) and returns the largest of the maximum and current combined and rx channel
/// counts, at least 1; 1 when the driver does not implement the request (`EOPNOTSUPP`). This is
/// an upper bound like libxdp's: a veth reports the queues it was created with.
///
/// # Errors
///
/// [`BpfError::NoSuchInterface`]; [`BpfError::Query`] with `call = "ETHTOOL_GCHANNELS"` when the
/// socket or the ioctl fails otherwise.
pub fn interface_queue_count(ifname: &str) -> Result<u32, BpfError> {
    interface_index(ifname)?; // NoSuchInterface, and rejects names with NUL bytes.
    let query_error = |error: io::Error| BpfError::Query {
        call: "ETHTOOL_GCHANNELS",
        ifname: ifname.to_owned(),
        errno: error.raw_os_error(),
        message: error.to_string(),
    };

    let mut ifr_name = [0 as c_char; libc::IFNAMSIZ];
    if ifname.len() >= ifr_name.len() {
        return Err(BpfError::NoSuchInterface {
            ifname: ifname.to_owned(),
        });
    }
    for (dst, src) in ifr_name.iter_mut().zip(ifname.bytes()) {
        *dst = src as c_char;
    }
    let mut channels = EthtoolChannels {
        cmd: ETHTOOL_GCHANNELS,
        ..EthtoolChannels::default()
    };
    let mut request = IfreqEthtool {
        ifr_name,
        ifr_data: (&raw mut channels).cast(),
        _union_rest: [0; 16],
    };

    // SAFETY: socket() takes no pointers; the result is checked below.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(query_error(io::Error::last_os_error()));
    }
    // SAFETY: `fd` is a freshly created descriptor that nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: `request` is a valid `struct ifreq` whose `ifr_data` points to `channels`, a
    // `struct ethtool_channels` with `cmd` set, which the kernel fills in; both live on this
    // stack frame for the duration of the call.
    let ret = unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCETHTOOL, &raw mut request) };
    if ret < 0 {
        let error = io::Error::last_os_error();
        return match error.raw_os_error() {
            Some(libc::EOPNOTSUPP) => Ok(1),
            Some(libc::ENODEV) => Err(BpfError::NoSuchInterface {
                ifname: ifname.to_owned(),
            }),
            _ => Err(query_error(error)),
        };
    }
    Ok([
        channels.max_combined,
        channels.max_rx,
        channels.combined_count,
        channels.rx_count,
        1,
    ]
    .into_iter()
    .max()
    .unwrap_or(1))
}

// rtnetlink constants from linux/rtnetlink.h, linux/netlink.h and linux/if_link.h.
const NLMSG_HDRLEN: usize = 16;
const IFINFOMSG_LEN: usize = 16;
const NLA_HDRLEN: usize = 4;
const NLA_TYPE_MASK: u16 = 0x3fff;
const IFLA_XDP: u16 = 43;
const IFLA_XDP_PROG_ID: u16 = 4;
const IFLA_XDP_DRV_PROG_ID: u16 = 5;
const IFLA_XDP_SKB_PROG_ID: u16 = 6;
const IFLA_XDP_HW_PROG_ID: u16 = 7;

/// The id of the XDP program attached to `ifname`, if any, whoever attached it and in
/// whatever mode (`bpftool prog show id ID` describes it). With programs in several modes
/// at once, the native one's id is returned.
///
/// Asks the kernel with an rtnetlink `RTM_GETLINK` request and reads the `IFLA_XDP`
/// attributes, as `ip link show` does. Meant for tests and diagnostics.
///
/// # Errors
///
/// [`BpfError::NoSuchInterface`]; [`BpfError::Query`] with `call = "RTM_GETLINK"`.
pub fn attached_program_id(ifname: &str) -> Result<Option<u32>, BpfError> {
    let ifindex = interface_index(ifname)?;
    let query_error = |errno: Option<i32>, message: String| BpfError::Query {
        call: "RTM_GETLINK",
        ifname: ifname.to_owned(),
        errno,
        message,
    };
    let os_error = |error: io::Error| query_error(error.raw_os_error(), error.to_string());

    // struct nlmsghdr + struct ifinfomsg, native byte order.
    const SEQ: u32 = 1;
    let mut request = Vec::with_capacity(NLMSG_HDRLEN + IFINFOMSG_LEN);
    request.extend_from_slice(&((NLMSG_HDRLEN + IFINFOMSG_LEN) as u32).to_ne_bytes()); // nlmsg_len
    request.extend_from_slice(&libc::RTM_GETLINK.to_ne_bytes()); // nlmsg_type
    request.extend_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes()); // nlmsg_flags
    request.extend_from_slice(&SEQ.to_ne_bytes()); // nlmsg_seq
    request.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid
    request.extend_from_slice(&[libc::AF_UNSPEC as u8, 0]); // ifi_family, pad
    request.extend_from_slice(&0u16.to_ne_bytes()); // ifi_type
    request.extend_from_slice(&ifindex.to_ne_bytes()); // ifi_index
    request.extend_from_slice(&0u32.to_ne_bytes()); // ifi_flags
    request.extend_from_slice(&0u32.to_ne_bytes()); // ifi_change

    // SAFETY: socket() takes no pointers; the result is checked below.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(os_error(io::Error::last_os_error()));
    }
    // SAFETY: `fd` is a freshly created descriptor that nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: `request` is a live buffer of `request.len()` bytes. Unbound netlink sockets
    // send to the kernel (address 0), so no address is needed.
    let sent = unsafe {
        libc::send(
            socket.as_raw_fd(),
            request.as_ptr().cast(),
            request.len(),
            0,
        )
    };
    if sent < 0 {
        return Err(os_error(io::Error::last_os_error()));
    }

    // The answer is one RTM_NEWLINK message (a few KiB with statistics) or an NLMSG_ERROR.
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        // SAFETY: `buffer` is a live, writable buffer of `buffer.len()` bytes.
        let received = unsafe {
            libc::recv(
                socket.as_raw_fd(),
                buffer.as_mut_ptr().cast(),
                buffer.len(),
                libc::MSG_TRUNC,
            )
        };
        let received = match usize::try_from(received) {
            Ok(n) => n,
            Err(_) => {
                let error = io::Error::last_os_error();
                if error.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(os_error(error));
            }
        };
        if received > buffer.len() {
            return Err(query_error(
                None,
                format!("reply truncated ({received} bytes)"),
            ));
        }
        let mut messages = &buffer[..received];
        while messages.len() >= NLMSG_HDRLEN {
            let len = u32_at(messages, 0) as usize;
            if len < NLMSG_HDRLEN || len > messages.len() {
                return Err(query_error(None, format!("malformed reply (length {len})")));
            }
            let msg_type = u16_at(messages, 4);
            let seq = u32_at(messages, 8);
            let body = &messages[NLMSG_HDRLEN..len];
            messages = &messages[align4(len).min(messages.len())..];
            if seq != SEQ {
                continue;
            }
            if msg_type == libc::NLMSG_ERROR as u16 {
                // struct nlmsgerr starts with the negative errno.
                let errno = if body.len() >= 4 {
                    (u32_at(body, 0) as i32).wrapping_neg()
                } else {
                    0
                };
                if errno == 0 {
                    continue; // An acknowledgement.
                }
                let error = io::Error::from_raw_os_error(errno);
                return Err(if errno == libc::ENODEV {
                    BpfError::NoSuchInterface {
                        ifname: ifname.to_owned(),
                    }
                } else {
                    os_error(error)
                });
            }
            if msg_type == libc::RTM_NEWLINK && body.len() >= IFINFOMSG_LEN {
                return Ok(xdp_program_id(&body[IFINFOMSG_LEN..]));
            }
        }
    }
}

/// The program id in the `IFLA_XDP` attribute among `attributes` (the rtattrs of an
/// `RTM_NEWLINK` message), if a program is attached.
fn xdp_program_id(attributes: &[u8]) -> Option<u32> {
    let xdp = netlink_attributes(attributes)
        .find(|&(kind, _)| kind == IFLA_XDP)?
        .1;
    let id_of = |wanted: u16| {
        netlink_attributes(xdp)
            .find(|&(kind, value)| kind == wanted && value.len() >= 4)
            .map(|(_, value)| u32_at(value, 0))
            .filter(|&id| id != 0)
    };
    // PROG_ID when one program is attached; the per-mode ids when several are (MULTI).
    id_of(IFLA_XDP_PROG_ID)
        .or_else(|| id_of(IFLA_XDP_DRV_PROG_ID))
        .or_else(|| id_of(IFLA_XDP_SKB_PROG_ID))
        .or_else(|| id_of(IFLA_XDP_HW_PROG_ID))
}

/// Iterates over netlink attributes (`struct nlattr`/`struct rtattr`): (type, payload).
fn netlink_attributes(mut bytes: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if bytes.len() < NLA_HDRLEN {
            return None;
        }
        let len = usize::from(u16_at(bytes, 0));
        if len < NLA_HDRLEN || len > bytes.len() {
            return None;
        }
        let kind = u16_at(bytes, 2) & NLA_TYPE_MASK;
        let payload = &bytes[NLA_HDRLEN..len];
        bytes = &bytes[align4(len).min(bytes.len())..];
        Some((kind, payload))
    })
}

fn align4(len: usize) -> usize {
    (len + 3) & !3
}

fn u16_at(bytes: &[u8], offset: usize) -> u16 {
    u16::from_ne_bytes([bytes[offset], bytes[offset + 1]])
}

fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    u32::from_ne_bytes(bytes[offset..offset + 4].try_into().expect("4 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attach_mode_round_trips() {
        for mode in [AttachMode::Auto, AttachMode::Native, AttachMode::Generic] {
            assert_eq!(mode.as_str().parse::<AttachMode>(), Ok(mode));
            assert_eq!(mode.to_string(), mode.as_str());
        }
        let error = "drv".parse::<AttachMode>().unwrap_err();
        assert_eq!(error.value, "drv");
        assert!(error.to_string().contains("\"drv\""), "{error}");
    }

    #[test]
    fn embedded_object_is_an_ebpf_elf() {
        assert_eq!(&PROGRAM_OBJECT[..4], b"\x7fELF");
        assert_eq!(PROGRAM_OBJECT[4], 2, "ELFCLASS64");
        assert_eq!(u16_at(PROGRAM_OBJECT, 18), 247, "EM_BPF");
        assert_eq!(
            PROGRAM_OBJECT.as_ptr() as usize % 8,
            0,
            "include_bytes_aligned"
        );
    }

    #[test]
    fn unknown_interface() {
        let name = "afxdp-none0";
        for result in [
            interface_queue_count(name).map(drop),
            attached_program_id(name).map(drop),
            XdpProgram::attach_builtin(name, AttachMode::Auto).map(drop),
        ] {
            match result {
                Err(BpfError::NoSuchInterface { ifname }) => assert_eq!(ifname, name),
                other => panic!("expected NoSuchInterface, got {other:?}"),
            }
        }
        assert!(matches!(
            interface_queue_count("bad\0name"),
            Err(BpfError::NoSuchInterface { .. })
        ));
    }

    #[test]
    fn loopback_queries() {
        // `lo` exists in every network namespace; its driver has no ETHTOOL_GCHANNELS.
        assert_eq!(interface_queue_count("lo").unwrap(), 1);
        assert_eq!(attached_program_id("lo").unwrap(), None);
    }

    #[test]
    fn parses_xdp_attributes() {
        fn attr(kind: u16, payload: &[u8]) -> Vec<u8> {
            let mut out = Vec::new();
            out.extend_from_slice(&((NLA_HDRLEN + payload.len()) as u16).to_ne_bytes());
            out.extend_from_slice(&kind.to_ne_bytes());
            out.extend_from_slice(payload);
            out.resize(align4(out.len()), 0);
            out
        }
        let ifname = attr(3, b"veth1\0");
        let attached_none = [attr(IFLA_XDP, &attr(2, &[0])), ifname.clone()].concat();
        assert_eq!(xdp_program_id(&attached_none), None);
        let nested = [attr(2, &[1]), attr(IFLA_XDP_PROG_ID, &42u32.to_ne_bytes())].concat();
        let one = [ifname.clone(), attr(IFLA_XDP | 0x8000, &nested)].concat();
        assert_eq!(xdp_program_id(&one), Some(42));
        let multi = [
            attr(2, &[4]),
            attr(IFLA_XDP_SKB_PROG_ID, &7u32.to_ne_bytes()),
            attr(IFLA_XDP_DRV_PROG_ID, &9u32.to_ne_bytes()),
        ]
        .concat();
        assert_eq!(xdp_program_id(&attr(IFLA_XDP, &multi)), Some(9));
        assert_eq!(xdp_program_id(&ifname), None);
        assert_eq!(xdp_program_id(&[1, 0]), None);
    }

    /// Privileged tests: each runs in its own pair of network namespaces with a veth pair
    /// (`veth0` in `<name>-peer`, `veth1` in `<name>`, where the program goes), deleted
    /// afterwards. Run them as root with `cargo test -p afxdp bpf:: -- --ignored`.
    mod privileged {
        use std::{
            io::{BufRead, BufReader},
            net::UdpSocket,
            process::{Command, Stdio},
            sync::atomic::{AtomicU32, Ordering},
            time::{Duration, Instant},
        };

        use super::*;

        /// Two network namespaces joined by a veth pair; deleted on drop.
        struct VethNetns {
            /// Holds `veth1` (10.211.0.1/24), where the tests attach.
            name: String,
            /// Holds `veth0` (10.211.0.2/24), the traffic source.
            peer: String,
        }

        fn run(args: &[&str]) -> String {
            let output = Command::new(args[0])
                .args(&args[1..])
                .output()
                .expect(args[0]);
            assert!(
                output.status.success(),
                "{args:?} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            String::from_utf8_lossy(&output.stdout).into_owned()
        }

        impl VethNetns {
            fn new(queues: u32) -> VethNetns {
                static COUNTER: AtomicU32 = AtomicU32::new(0);
                // Unique across processes and runs: pid, clock, counter.
                let nanos = std::time::SystemTime::UNIX_EPOCH
                    .elapsed()
                    .unwrap()
                    .subsec_nanos();
                let name = format!(
                    "afxdp-tmp-{}-{nanos:x}-{}",
                    std::process::id(),
                    COUNTER.fetch_add(1, Ordering::Relaxed)
                );
                let peer = format!("{name}-peer");
                run(&["ip", "netns", "add", &name]);
                let netns = VethNetns { name, peer }; // Deleted on drop from here on.
                run(&["ip", "netns", "add", &netns.peer]);
                let q = queues.to_string();
                #[rustfmt::skip]
                run(&["ip", "-n", &netns.name, "link", "add", "veth1",
                      "numtxqueues", &q, "numrxqueues", &q, "type", "veth",
                      "peer", "name", "veth0", "netns", &netns.peer,
                      "numtxqueues", &q, "numrxqueues", &q]);
                for (ns, dev, addr) in [
                    (&netns.name, "veth1", "10.211.0.1/24"),
                    (&netns.peer, "veth0", "10.211.0.2/24"),
                ] {
                    let sysctl = format!("net.ipv6.conf.{dev}.disable_ipv6=1");
                    run(&["ip", "netns", "exec", ns, "sysctl", "-qw", &sysctl]);
                    run(&["ip", "-n", ns, "addr", "add", addr, "dev", dev]);
                    run(&["ip", "-n", ns, "link", "set", dev, "up"]);
                }
                netns
            }

            /// Runs `body` on a thread in the namespace holding `veth1`.
            fn enter<T: Send>(&self, body: impl FnOnce() -> T + Send) -> T {
                in_netns(&self.name, body)
            }

            /// `ip -d link show dev veth1`.
            fn link_details(&self) -> String {
                run(&["ip", "-n", &self.name, "-d", "link", "show", "dev", "veth1"])
            }

            /// Whether a UDP datagram from the peer reaches a socket on veth1's address, i.e.
            /// veth1's packets (ARP included: the peer's neighbour cache is flushed first) reach
            /// the kernel stack.
            fn udp_delivered(&self) -> bool {
                run(&["ip", "-n", &self.peer, "neigh", "flush", "dev", "veth0"]);
                let receiver = in_netns(&self.name, || UdpSocket::bind("10.211.0.1:0").unwrap());
                let sender = in_netns(&self.peer, || UdpSocket::bind("10.211.0.2:0").unwrap());
                receiver
                    .set_read_timeout(Some(Duration::from_secs(2)))
                    .unwrap();
                sender
                    .send_to(b"afxdp", receiver.local_addr().unwrap())
                    .unwrap();
                let mut buffer = [0; 16];
                matches!(receiver.recv_from(&mut buffer), Ok((5, _)))
            }
        }

        /// Runs `body` on a thread that entered the network namespace `name`.
        fn in_netns<T: Send>(name: &str, body: impl FnOnce() -> T + Send) -> T {
            let path = format!("/run/netns/{name}");
            std::thread::scope(|scope| {
                scope
                    .spawn(|| {
                        let file = std::fs::File::open(&path).expect(&path);
                        // SAFETY: `file` is an open netns file; setns only changes the network
                        // namespace of this scoped, short-lived thread.
                        let ret = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                        assert_eq!(ret, 0, "setns: {}", io::Error::last_os_error());
                        body()
                    })
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
        }

        impl Drop for VethNetns {
            fn drop(&mut self) {
                for ns in [&self.name, &self.peer] {
                    let _ = Command::new("ip").args(["netns", "del", ns]).status();
                }
            }
        }

        /// A new AF_XDP socket, not bound: enough for the XSKMAP, which doesn't check binding.
        fn xsk_socket() -> OwnedFd {
            // SAFETY: socket() takes no pointers; the result is checked below.
            let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
            assert!(fd >= 0, "socket(AF_XDP): {}", io::Error::last_os_error());
            // SAFETY: `fd` is a freshly created descriptor that nothing else owns.
            unsafe { OwnedFd::from_raw_fd(fd) }
        }

        fn udp_socket() -> OwnedFd {
            std::net::UdpSocket::bind("0.0.0.0:0")
                .expect("udp socket")
                .into()
        }

        #[test]
        #[ignore = "needs root: creates network namespaces and attaches XDP programs"]
        fn attach_register_detach_in_each_mode() {
            // `ip link` names the mode after the MTU: "mtu 1500 xdp" or "mtu 1500 xdpgeneric".
            for (requested, expected, ip_mode) in [
                (AttachMode::Native, AttachMode::Native, " xdp "),
                (AttachMode::Generic, AttachMode::Generic, " xdpgeneric "),
                (AttachMode::Auto, AttachMode::Native, " xdp "),
            ] {
                let netns = VethNetns::new(1);
                assert!(netns.udp_delivered(), "no connectivity before attaching");
                netns.enter(|| {
                    assert_eq!(attached_program_id("veth1").unwrap(), None);
                    let mut program = XdpProgram::attach_builtin("veth1", requested).unwrap();
                    assert!(program.is_attached());
                    assert_eq!(program.mode(), expected);
                    assert_eq!(program.ifname(), "veth1");
                    assert_eq!(program.ifindex(), interface_index("veth1").unwrap());
                    assert_eq!(program.map_size(), 1);
                    let id = attached_program_id("veth1").unwrap().expect("a program id");
                    let details = netns.link_details();
                    eprintln!("{requested:?}: {details}");
                    let first_line = details.lines().next().unwrap();
                    assert!(first_line.contains(ip_mode), "{requested:?}: {details}");
                    assert!(details.contains(&format!("id {id}")), "{details}");

                    // No socket registered: everything goes to the kernel stack (XDP_PASS).
                    assert!(
                        netns.udp_delivered(),
                        "{requested:?}: XDP_PASS fallback broken"
                    );

                    // An unbound AF_XDP socket at queue 0: redirected packets are dropped.
                    let xsk = xsk_socket();
                    program.register(0, xsk.as_raw_fd()).unwrap();
                    assert!(
                        !netns.udp_delivered(),
                        "{requested:?}: not redirected to the socket"
                    );
                    program.unregister(0).unwrap();
                    program.unregister(0).unwrap(); // Already empty: not an error.
                    assert!(netns.udp_delivered(), "{requested:?}: still redirected");

                    program.detach().unwrap();
                    assert!(!program.is_attached());
                    program.detach().unwrap(); // Idempotent.
                    assert_eq!(attached_program_id("veth1").unwrap(), None);
                    let details = netns.link_details();
                    assert!(!details.contains("prog/xdp"), "{details}");
                    assert!(matches!(
                        program.register(0, xsk.as_raw_fd()),
                        Err(BpfError::Detached)
                    ));
                    assert!(matches!(program.unregister(0), Err(BpfError::Detached)));
                });
            }
        }

        #[test]
        #[ignore = "needs root: creates network namespaces and attaches XDP programs"]
        fn map_errors_keep_errno() {
            let netns = VethNetns::new(4);
            netns.enter(|| {
                assert_eq!(interface_queue_count("veth1").unwrap(), 4);
                let mut program = XdpProgram::attach_builtin("veth1", AttachMode::Generic).unwrap();
                assert_eq!(program.map_size(), 4);
                let xsk = xsk_socket();
                program.register(3, xsk.as_raw_fd()).unwrap();
                match program.register(4, xsk.as_raw_fd()) {
                    Err(BpfError::QueueOutOfRange { queue: 4, max: 4 }) => {}
                    other => panic!("expected QueueOutOfRange, got {other:?}"),
                }
                assert!(matches!(
                    program.unregister(9),
                    Err(BpfError::QueueOutOfRange { queue: 9, max: 4 })
                ));
                let udp = udp_socket();
                let error = program.register(1, udp.as_raw_fd()).unwrap_err();
                eprintln!("{error}");
                assert_eq!(error.errno(), Some(libc::EOPNOTSUPP), "{error}");
                assert!(
                    matches!(
                        error,
                        BpfError::Map {
                            op: "update",
                            key: 1,
                            ..
                        }
                    ),
                    "{error}"
                );
                let error = program.register(1, -1).unwrap_err();
                eprintln!("{error}");
                assert_eq!(error.errno(), Some(libc::EBADF), "{error}");
                program.unregister(3).unwrap();
                drop(program); // Drop detaches.
                assert_eq!(attached_program_id("veth1").unwrap(), None);
            });
        }

        #[test]
        #[ignore = "needs root: creates network namespaces and attaches XDP programs"]
        fn attach_conflicts_keep_errno() {
            let netns = VethNetns::new(1);
            netns.enter(|| {
                let first = XdpProgram::attach_builtin("veth1", AttachMode::Native).unwrap();
                let error = XdpProgram::attach_builtin("veth1", AttachMode::Native).unwrap_err();
                eprintln!("{error}");
                assert_eq!(error.errno(), Some(libc::EBUSY), "{error}");
                let error = XdpProgram::attach_builtin("veth1", AttachMode::Generic).unwrap_err();
                eprintln!("{error}");
                assert_eq!(error.errno(), Some(libc::EEXIST), "{error}");
                // Auto does not fall back to generic mode on a conflict.
                let error = XdpProgram::attach_builtin("veth1", AttachMode::Auto).unwrap_err();
                assert!(
                    matches!(
                        error,
                        BpfError::Attach {
                            mode: "native",
                            errno: Some(libc::EBUSY),
                            ..
                        }
                    ),
                    "{error}"
                );
                drop(first);
                // Native mode on veth needs the peer's MTU <= about one page for a program
                // without frags support: ERANGE, and Auto falls back to generic mode.
                let peer = netns.peer.as_str();
                run(&[
                    "ip", "-n", peer, "link", "set", "dev", "veth0", "mtu", "9000",
                ]);
                let error = XdpProgram::attach_builtin("veth1", AttachMode::Native).unwrap_err();
                eprintln!("{error}");
                assert_eq!(error.errno(), Some(libc::ERANGE), "{error}");
                let program = XdpProgram::attach_builtin("veth1", AttachMode::Auto).unwrap();
                assert_eq!(program.mode(), AttachMode::Generic);
                assert!(netns.link_details().contains(" xdpgeneric "));
            });
        }

        /// Not a test on its own: the child process of `sigkill_detaches`, which attaches,
        /// says so on stdout, then waits to be killed.
        #[test]
        #[ignore = "helper process for sigkill_detaches"]
        fn sigkill_child() {
            let Ok(ifname) = std::env::var("AFXDP_TEST_SIGKILL_CHILD") else {
                return;
            };
            let program = XdpProgram::attach_builtin(&ifname, AttachMode::Native).unwrap();
            println!("AFXDP-ATTACHED {}", program.mode());
            std::thread::sleep(Duration::from_secs(60));
        }

        #[test]
        #[ignore = "needs root: creates network namespaces and attaches XDP programs"]
        fn sigkill_detaches() {
            let netns = VethNetns::new(1);
            // `module_path!()` is `afxdp::bpf::tests::privileged`; libtest names drop the crate.
            let module = module_path!().split_once("::").map_or("", |(_, rest)| rest);
            let test_name = format!("{module}::sigkill_child");
            netns.enter(|| {
                // Spawned from this thread, the child starts in its network namespace.
                let mut child = Command::new(std::env::current_exe().unwrap())
                    .args([&test_name, "--exact", "--ignored", "--nocapture"])
                    .env("AFXDP_TEST_SIGKILL_CHILD", "veth1")
                    .stdout(Stdio::piped())
                    .spawn()
                    .unwrap();
                let stdout = BufReader::new(child.stdout.take().unwrap());
                let attached = stdout
                    .lines()
                    .map_while(Result::ok)
                    .any(|line| line.contains("AFXDP-ATTACHED native"));
                assert!(attached, "the child did not attach");
                let id = attached_program_id("veth1")
                    .unwrap()
                    .expect("attached by the child");
                assert!(netns.link_details().contains(&format!("prog/xdp id {id}")));

                // SAFETY: kill() takes no pointers; the pid is our own child's.
                let ret = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
                assert_eq!(ret, 0);
                let status = child.wait().unwrap();
                assert!(!status.success());

                // The link's last fd closed with the process: the program is gone.
                let deadline = Instant::now() + Duration::from_secs(5);
                while attached_program_id("veth1").unwrap().is_some() {
                    assert!(Instant::now() < deadline, "still attached after SIGKILL");
                    std::thread::sleep(Duration::from_millis(20));
                }
                assert!(!netns.link_details().contains("prog/xdp"));
            });
        }
    }
}
