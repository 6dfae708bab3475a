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
    ffi::{c_char, c_void},
    fmt, io,
    mem::size_of,
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
    str::FromStr,
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, MapData, MapError, PerCpuArray, PerCpuValues, XskMap},
    programs::{ProgramError, Xdp, XdpMode, xdp::XdpLinkId},
};

/// The compiled XDP program (ELF object), built from `xdp-ebpf/` by `scripts/build-ebpf.sh`.
static PROGRAM_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("CARGO_MANIFEST_DIR"), "/bpf/afxdp.bpf.o"));

/// Name of the XDP program in [`PROGRAM_OBJECT`].
const PROGRAM_NAME: &str = "afxdp_redirect";

/// Name of the XSKMAP in [`PROGRAM_OBJECT`] (rx queue index → AF_XDP socket).
const MAP_NAME: &str = "XSKS";

/// The two rule sets of the built-in program (`Array<RawRuleSet>`, 2 entries).
const RULES_MAP: &str = "RULES";
/// Index 0: which rule set is active (`Array<u32>`).
const ACTIVE_MAP: &str = "ACTIVE";
/// Per-CPU hit counters (`PerCpuArray<u64>`), laid out as described at [`hit_index`].
const HITS_MAP: &str = "HITS";

/// The most rules the built-in program takes ([`XdpProgram::set_rules`]).
pub const MAX_RULES: usize = 16;

/// A match rule of the built-in program: every condition that is `Some` must hold.
///
/// * `ethertype`: the ethertype after at most one 802.1Q or 802.1ad VLAN tag (so `0x0800`
///   matches IPv4 whether or not it is tagged once).
/// * `ip_proto`: the IPv4 protocol, or the IPv6 next header after up to four hop-by-hop,
///   routing, fragment and destination-options extension headers (AH and ESP are not walked:
///   their own number is the protocol). Only IPv4 and IPv6 packets match.
/// * `dst_port`: the destination port of TCP, UDP, UDP-Lite, SCTP or DCCP. Never matches a
///   non-first IP fragment (it has no transport header) or another protocol.
///
/// The default rule (all `None`) matches every packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Rule {
    /// Ethertype, `>= 0x0600`.
    pub ethertype: Option<u16>,
    /// IP protocol number (6 TCP, 17 UDP, 58 ICMPv6, ...).
    pub ip_proto: Option<u8>,
    /// Transport destination port.
    pub dst_port: Option<u16>,
}

impl Rule {
    /// The smallest ethertype: values below are IEEE 802.3 lengths.
    pub const MIN_ETHERTYPE: u16 = 0x0600;

    fn to_raw(self) -> RawRule {
        let mut raw = RawRule::default();
        if let Some(ethertype) = self.ethertype {
            raw.ethertype = ethertype;
            raw.flags |= MATCH_ETHERTYPE;
        }
        if let Some(proto) = self.ip_proto {
            raw.ip_proto = proto;
            raw.flags |= MATCH_IP_PROTO;
        }
        if let Some(port) = self.dst_port {
            raw.dst_port = port;
            raw.flags |= MATCH_DST_PORT;
        }
        raw
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ethertype = self.ethertype.map(|e| format!("0x{e:04x}"));
        let field = |v: Option<String>| v.unwrap_or_else(|| "None".to_owned());
        write!(
            f,
            "Rule(ethertype={}, ip_proto={}, dst_port={})",
            field(ethertype),
            field(self.ip_proto.map(|p| p.to_string())),
            field(self.dst_port.map(|p| p.to_string())),
        )
    }
}

/// `RawRule::flags` bits, as in `xdp-ebpf/src/main.rs`.
const MATCH_ETHERTYPE: u8 = 1;
const MATCH_IP_PROTO: u8 = 2;
const MATCH_DST_PORT: u8 = 4;

/// `struct Rule` of `xdp-ebpf/src/main.rs`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct RawRule {
    ethertype: u16,
    dst_port: u16,
    ip_proto: u8,
    flags: u8,
    _pad: [u8; 2],
}

/// `struct RuleSet` of `xdp-ebpf/src/main.rs`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct RawRuleSet {
    count: u32,
    _pad: u32,
    rules: [RawRule; MAX_RULES],
}

const _: () = assert!(size_of::<RawRule>() == 8);
const _: () = assert!(size_of::<RawRuleSet>() == 8 + 8 * MAX_RULES);

// SAFETY: plain integers, no padding the compiler owns (explicit `_pad` fields), any bit
// pattern valid.
unsafe impl aya::Pod for RawRuleSet {}

/// The `HITS` index of rule `rule` of set `set`; `rule == MAX_RULES` is the set's counter of
/// packets no rule matched.
fn hit_index(set: u32, rule: usize) -> u32 {
    if rule == MAX_RULES {
        (2 * MAX_RULES) as u32 + set
    } else {
        set * MAX_RULES as u32 + rule as u32
    }
}

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
            _ => Err(ParseAttachModeError { value: value.to_owned() }),
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

    /// A custom object has no program or map of the name asked for, or, when no name was
    /// given, not exactly one candidate.
    #[error("{message}")]
    NotInObject {
        /// `"program"` or `"map"`.
        kind: &'static str,
        /// The name asked for, if any.
        name: Option<String>,
        /// What is missing and what the object has.
        message: String,
    },

    /// A program or map of a custom object has the wrong type (e.g. the `xsk_map` is a hash
    /// map, or the program is not an XDP program).
    #[error("{kind} `{name}` in the object is {found}, not {expected}")]
    WrongType {
        /// `"program"` or `"map"`.
        kind: &'static str,
        /// Its name.
        name: String,
        /// The type needed.
        expected: &'static str,
        /// The type found.
        found: String,
    },

    /// The kernel verifier rejected the program; `log` is its output.
    #[error("the kernel verifier rejected XDP program `{program}`{}:\n{log}", errno.map(|e| format!(" ({})", io::Error::from_raw_os_error(e))).unwrap_or_default())]
    Verifier {
        /// The program's name.
        program: String,
        /// The errno of `BPF_PROG_LOAD` (`EACCES` or `EINVAL`, usually).
        errno: Option<i32>,
        /// The verifier log.
        log: String,
    },

    /// More rules than the built-in program takes.
    #[error("too many rules: {count} (the built-in program takes at most {max})")]
    TooManyRules {
        /// The number of rules given.
        count: usize,
        /// [`MAX_RULES`].
        max: usize,
    },

    /// A rule the program cannot express.
    #[error("invalid rule {rule}: {reason}")]
    InvalidRule {
        /// The rule.
        rule: Rule,
        /// Why.
        reason: &'static str,
    },

    /// Match rules need the built-in program; this one was loaded from a custom object.
    #[error(
        "match rules need the built-in program; the program on {ifname} was loaded from a custom object"
    )]
    NoRules {
        /// The interface.
        ifname: String,
    },

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
            Self::Verifier { errno, .. } => *errno,
            Self::QueueOutOfRange { .. }
            | Self::Detached
            | Self::NotInObject { .. }
            | Self::WrongType { .. }
            | Self::TooManyRules { .. }
            | Self::InvalidRule { .. }
            | Self::NoRules { .. } => None,
        }
    }
}

/// An XDP program attached to one interface with its XSKMAP: the built-in program
/// ([`attach_builtin`](Self::attach_builtin), [`attach_with_rules`](Self::attach_with_rules))
/// or one from a user's object ([`load`](Self::load)).
///
/// Owns the loaded program, its maps and the attachment (a BPF link): dropping it, or
/// [`detach`](Self::detach), removes the program from the interface and unloads it.
/// Its methods take `&mut self`; share it between threads behind a `Mutex`.
pub struct XdpProgram {
    ifname: String,
    ifindex: u32,
    mode: AttachMode,
    map_size: u32,
    /// The program's name in its object.
    program_name: String,
    /// `None` once detached.
    attached: Option<Attached>,
}

/// What exists while the program is attached. Dropping it detaches and unloads.
struct Attached {
    /// The XSKMAP, taken out of `ebpf` so it is typed once.
    xsks: XskMap<MapData>,
    /// The rule maps of the built-in program; `None` for a custom program.
    steering: Option<Steering>,
    /// The attachment of the program in `ebpf`.
    link: XdpLinkId,
    /// The loaded object (owns the program and, through it, the link).
    ebpf: Ebpf,
}

/// The built-in program's rule maps and the rules in force.
struct Steering {
    rules: Array<MapData, RawRuleSet>,
    active: Array<MapData, u32>,
    hits: PerCpuArray<MapData, u64>,
    /// The set `active` points at: 0 or 1.
    active_set: u32,
    /// The rules of the active set.
    current: Vec<Rule>,
}

/// Hit counters of the active rule set, summed over CPUs ([`XdpProgram::rule_stats`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleStats {
    /// Packets whose first matching rule was `rules[i]`, for each rule in force. They left
    /// the stack when their queue had a registered socket, else they were passed.
    pub hits: Vec<u64>,
    /// Packets no rule matched, passed to the kernel stack.
    pub unmatched: u64,
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
            .field("program", &self.program_name)
            .field("mode", &self.mode)
            .field("map_size", &self.map_size)
            .field("attached", &self.is_attached())
            .finish()
    }
}

/// Checks what [`Rule`] alone cannot: the count and the ethertype range.
fn validate_rules(rules: &[Rule]) -> Result<(), BpfError> {
    if rules.len() > MAX_RULES {
        return Err(BpfError::TooManyRules { count: rules.len(), max: MAX_RULES });
    }
    for rule in rules {
        if rule.ethertype.is_some_and(|e| e < Rule::MIN_ETHERTYPE) {
            return Err(BpfError::InvalidRule {
                rule: *rule,
                reason: "ethertypes start at 0x0600; smaller values are IEEE 802.3 lengths",
            });
        }
    }
    Ok(())
}

/// The map `name` of the built-in object, typed.
fn builtin_map<M>(ebpf: &mut Ebpf, name: &str) -> Result<M, BpfError>
where
    M: TryFrom<aya::maps::Map, Error = MapError>,
{
    ebpf.take_map(name)
        .ok_or_else(|| missing_in_object("map", name))
        .and_then(|map| M::try_from(map).map_err(|e| load_error(&e)))
}

impl XdpProgram {
    /// Loads the built-in program and attaches it to `ifname`, with no rules: every packet
    /// of a queue with a registered socket goes to that socket.
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
        Self::attach_with_rules(ifname, mode, &[])
    }

    /// Like [`attach_builtin`](Self::attach_builtin), with match rules in force from the
    /// first packet: only packets matching one of `rules` leave the kernel stack (an empty
    /// slice matches every packet).
    ///
    /// # Errors
    ///
    /// Those of [`attach_builtin`](Self::attach_builtin), and [`BpfError::TooManyRules`] or
    /// [`BpfError::InvalidRule`] before anything is loaded.
    pub fn attach_with_rules(
        ifname: &str,
        mode: AttachMode,
        rules: &[Rule],
    ) -> Result<XdpProgram, BpfError> {
        validate_rules(rules)?;
        let ifindex = interface_index(ifname)?;
        let queues = interface_queue_count(ifname)?.max(1);
        let mut ebpf = EbpfLoader::new()
            // No CO-RE relocations in this program: skip parsing the kernel's BTF. The
            // object's own BTF is still loaded.
            .btf(None)
            .map_max_entries(MAP_NAME, queues)
            .load(PROGRAM_OBJECT)
            .map_err(|e| load_error(&e))?;
        let mut steering = Steering {
            rules: builtin_map(&mut ebpf, RULES_MAP)?,
            active: builtin_map(&mut ebpf, ACTIVE_MAP)?,
            hits: builtin_map(&mut ebpf, HITS_MAP)?,
            active_set: 0,
            current: Vec::new(),
        };
        // Set 0 is active (the array starts zeroed); fill it before the program is attached.
        steering.write_set(0, rules)?;
        steering.current = rules.to_vec();
        let xsks = builtin_map(&mut ebpf, MAP_NAME)?;
        Self::attach_loaded(ebpf, xsks, Some(steering), PROGRAM_NAME, ifname, ifindex, mode)
    }

    /// Loads XDP program `program` from a user's ELF object (built with aya or clang; legacy
    /// or BTF-defined maps) and attaches it to `ifname`. Sockets register into its XSKMAP
    /// `xsk_map` keyed by queue, as with the built-in program; what they receive is up to the
    /// program's logic. When `program` (or `xsk_map`) is `None`, the object must have exactly
    /// one XDP program (or XSKMAP), which is used. The XSKMAP keeps the size the object gives
    /// it. Match rules ([`set_rules`](Self::set_rules)) are not available.
    ///
    /// The object is relocated against the kernel's BTF (`/sys/kernel/btf/vmlinux`) when
    /// there is one, so CO-RE programs load.
    ///
    /// # Errors
    ///
    /// [`BpfError::Load`] (not a BPF ELF object, map creation failed),
    /// [`BpfError::NotInObject`] (no such program or map; the message lists what the object
    /// has), [`BpfError::WrongType`] (not an XDP program, not an XSKMAP),
    /// [`BpfError::Verifier`] (with the verifier log), [`BpfError::NoSuchInterface`],
    /// [`BpfError::Attach`].
    pub fn load(
        object: &[u8],
        ifname: &str,
        program: Option<&str>,
        xsk_map: Option<&str>,
        mode: AttachMode,
    ) -> Result<XdpProgram, BpfError> {
        let ifindex = interface_index(ifname)?;
        // The ELF parser wants the object 8-byte aligned.
        let mut aligned = vec![0u64; object.len().div_ceil(8)];
        // SAFETY: `aligned` has at least `object.len()` bytes; u64 has no invalid bit patterns.
        let aligned_bytes = unsafe {
            std::slice::from_raw_parts_mut(aligned.as_mut_ptr().cast::<u8>(), object.len())
        };
        aligned_bytes.copy_from_slice(object);
        let mut ebpf = EbpfLoader::new().load(aligned_bytes).map_err(|e| load_error(&e))?;

        let program = pick_name(
            "program",
            program,
            ebpf.programs().map(|(name, p)| (name, matches!(p, aya::programs::Program::Xdp(_)))),
            "XDP program",
        )?;
        match ebpf.program(&program) {
            Some(aya::programs::Program::Xdp(_)) => {}
            Some(other) => {
                return Err(BpfError::WrongType {
                    kind: "program",
                    name: program,
                    expected: "an XDP program",
                    found: format!("a {:?} program", other.prog_type()),
                });
            }
            None => unreachable!("pick_name returns a name of the object"),
        }
        let map_name = pick_name(
            "map",
            xsk_map,
            ebpf.maps().map(|(name, m)| (name, matches!(m, aya::maps::Map::XskMap(_)))),
            "XSKMAP",
        )?;
        let map = ebpf.take_map(&map_name).expect("pick_name returns a name of the object");
        let found = map_kind(&map);
        let xsks = XskMap::try_from(map).map_err(|_| BpfError::WrongType {
            kind: "map",
            name: map_name.clone(),
            expected: "an XSKMAP (BPF_MAP_TYPE_XSKMAP)",
            found,
        })?;
        Self::attach_loaded(ebpf, xsks, None, &program, ifname, ifindex, mode)
    }

    /// Loads `program_name` of `ebpf` into the kernel and attaches it.
    fn attach_loaded(
        mut ebpf: Ebpf,
        xsks: XskMap<MapData>,
        steering: Option<Steering>,
        program_name: &str,
        ifname: &str,
        ifindex: u32,
        mode: AttachMode,
    ) -> Result<XdpProgram, BpfError> {
        let map_size = xsks.len();
        let program: &mut Xdp = ebpf
            .program_mut(program_name)
            .ok_or_else(|| missing_in_object("program", program_name))?
            .try_into()
            .map_err(|e: ProgramError| load_error(&e))?;
        program.load().map_err(|e| program_load_error(program_name, e, load_error))?;

        let (link, mode) = match mode {
            AttachMode::Auto => attach_auto(program, ifname, ifindex)?,
            mode => (attach(program, ifname, ifindex, mode)?, mode),
        };

        Ok(XdpProgram {
            ifname: ifname.to_owned(),
            ifindex,
            mode,
            map_size,
            program_name: program_name.to_owned(),
            attached: Some(Attached { xsks, steering, link, ebpf }),
        })
    }

    /// Replaces the match rules of the built-in program, atomically for the data path: each
    /// packet is judged by the complete old set or the complete new set, never a mix, and
    /// none is lost on the way (the program stays attached). An empty slice matches every
    /// packet. The new set's hit counters start at zero.
    ///
    /// Takes two RCU grace periods (about 10–30 ms): the new set is written to the inactive
    /// slot, published, and the old slot is only reused once no program run can still read
    /// it (see [`crate::sys::synchronize_rcu`]).
    ///
    /// # Errors
    ///
    /// [`BpfError::TooManyRules`], [`BpfError::InvalidRule`], [`BpfError::Detached`],
    /// [`BpfError::NoRules`] (a custom program), [`BpfError::Map`].
    pub fn set_rules(&mut self, rules: &[Rule]) -> Result<(), BpfError> {
        validate_rules(rules)?;
        let steering = self.steering_mut()?;
        let next = steering.active_set ^ 1;
        steering.zero_hits(next)?;
        steering.write_set(next, rules)?;
        // Every run that starts from now on sees the new set once it reads `next`.
        crate::sys::synchronize_rcu();
        steering.active.set(0, next, 0).map_err(|e| map_error("update", 0, e))?;
        // No run still reads the old set: the next call may overwrite it.
        crate::sys::synchronize_rcu();
        steering.active_set = next;
        steering.current = rules.to_vec();
        Ok(())
    }

    /// The rules in force (empty: every packet matches). Empty for a custom program.
    pub fn rules(&self) -> &[Rule] {
        match self.attached.as_ref().and_then(|a| a.steering.as_ref()) {
            Some(steering) => &steering.current,
            None => &[],
        }
    }

    /// Whether this is the built-in program (which takes rules).
    pub fn has_rules(&self) -> bool {
        self.attached.as_ref().is_some_and(|a| a.steering.is_some())
    }

    /// The hit counters of the rules in force, counted since they were set.
    ///
    /// # Errors
    ///
    /// [`BpfError::Detached`], [`BpfError::NoRules`], [`BpfError::Map`].
    pub fn rule_stats(&mut self) -> Result<RuleStats, BpfError> {
        Ok(RuleStats { hits: self.rule_hits()?, unmatched: self.unmatched()? })
    }

    /// [`RuleStats::hits`] alone.
    ///
    /// # Errors
    ///
    /// As [`rule_stats`](Self::rule_stats).
    pub fn rule_hits(&mut self) -> Result<Vec<u64>, BpfError> {
        let steering = self.steering_mut()?;
        let set = steering.active_set;
        (0..steering.current.len()).map(|rule| steering.hit_count(hit_index(set, rule))).collect()
    }

    /// [`RuleStats::unmatched`] alone (one map lookup).
    ///
    /// # Errors
    ///
    /// As [`rule_stats`](Self::rule_stats).
    pub fn unmatched(&mut self) -> Result<u64, BpfError> {
        let steering = self.steering_mut()?;
        steering.hit_count(hit_index(steering.active_set, MAX_RULES))
    }

    /// The name of the XDP program in its object (`"afxdp_redirect"` for the built-in one).
    pub fn program_name(&self) -> &str {
        &self.program_name
    }

    fn steering_mut(&mut self) -> Result<&mut Steering, BpfError> {
        let ifname = &self.ifname;
        let attached = self.attached.as_mut().ok_or(BpfError::Detached)?;
        attached.steering.as_mut().ok_or_else(|| BpfError::NoRules { ifname: ifname.clone() })
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
        xsks.set(queue, socket_fd, 0).map_err(|e| map_error("update", queue, e))
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
                BpfError::Map { errno: Some(libc::ENOENT), .. } => Ok(()),
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
        let Some(Attached { xsks, steering, link, mut ebpf }) = self.attached.take() else {
            return Ok(());
        };
        let detached = match ebpf.program_mut(&self.program_name).map(<&mut Xdp>::try_from) {
            Some(Ok(program)) => program.detach(link),
            Some(Err(e)) => Err(e),
            None => Err(ProgramError::NotLoaded),
        };
        // Unload the program, then close the maps.
        drop(ebpf);
        drop(xsks);
        drop(steering);
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

impl Steering {
    /// Writes `rules` into rule set `set`.
    fn write_set(&mut self, set: u32, rules: &[Rule]) -> Result<(), BpfError> {
        let mut raw = RawRuleSet { count: rules.len() as u32, ..RawRuleSet::default() };
        for (slot, rule) in raw.rules.iter_mut().zip(rules) {
            *slot = rule.to_raw();
        }
        self.rules.set(set, raw, 0).map_err(|e| map_error("update", set, e))
    }

    /// Zeroes the hit counters of rule set `set`.
    fn zero_hits(&mut self, set: u32) -> Result<(), BpfError> {
        let cpus = aya::util::nr_cpus().map_err(|(what, e)| BpfError::Load {
            errno: e.raw_os_error(),
            message: format!("{what}: {e}"),
        })?;
        for rule in 0..=MAX_RULES {
            let index = hit_index(set, rule);
            let zeros = PerCpuValues::try_from(vec![0u64; cpus])
                .map_err(|e| map_error("update", index, MapError::from(e)))?;
            self.hits.set(index, zeros, 0).map_err(|e| map_error("update", index, e))?;
        }
        Ok(())
    }

    /// `HITS[index]` summed over CPUs.
    fn hit_count(&self, index: u32) -> Result<u64, BpfError> {
        let values = self.hits.get(&index, 0).map_err(|e| map_error("lookup", index, e))?;
        Ok(values.iter().sum())
    }
}

/// The name of the `kind` ("program" or "map") to use: `wanted` if the object has it, else,
/// when `wanted` is `None`, the only candidate (`(name, is_candidate)` pairs).
fn pick_name<'a>(
    kind: &'static str,
    wanted: Option<&str>,
    names: impl Iterator<Item = (&'a str, bool)>,
    candidate: &str,
) -> Result<String, BpfError> {
    let mut all: Vec<(&str, bool)> = names.collect();
    all.sort_unstable();
    let list = |only_candidates: bool| {
        let names: Vec<&str> =
            all.iter().filter(|(_, c)| *c || !only_candidates).map(|(n, _)| *n).collect();
        if names.is_empty() { "none".to_owned() } else { names.join(", ") }
    };
    match wanted {
        Some(name) if all.iter().any(|(n, _)| *n == name) => Ok(name.to_owned()),
        Some(name) => Err(BpfError::NotInObject {
            kind,
            name: Some(name.to_owned()),
            message: format!(
                "the object has no {kind} named {name:?} (its {kind}s: {})",
                list(false)
            ),
        }),
        None => {
            let candidates: Vec<&str> = all.iter().filter(|(_, c)| *c).map(|(n, _)| *n).collect();
            match candidates[..] {
                [only] => Ok(only.to_owned()),
                _ => Err(BpfError::NotInObject {
                    kind,
                    name: None,
                    message: format!(
                        "the object has {} {candidate}s ({}): name the one to use",
                        candidates.len(),
                        list(true)
                    ),
                }),
            }
        }
    }
}

/// The kernel type of a map, for error messages.
fn map_kind(map: &aya::maps::Map) -> String {
    use aya::maps::Map;
    let kind = match map {
        Map::Array(_) => "an array map (BPF_MAP_TYPE_ARRAY)",
        Map::PerCpuArray(_) => "a per-CPU array map (BPF_MAP_TYPE_PERCPU_ARRAY)",
        Map::HashMap(_) => "a hash map (BPF_MAP_TYPE_HASH)",
        Map::PerCpuHashMap(_) => "a per-CPU hash map (BPF_MAP_TYPE_PERCPU_HASH)",
        Map::LruHashMap(_) => "an LRU hash map (BPF_MAP_TYPE_LRU_HASH)",
        Map::DevMap(_) => "a device map (BPF_MAP_TYPE_DEVMAP)",
        Map::DevMapHash(_) => "a device hash map (BPF_MAP_TYPE_DEVMAP_HASH)",
        Map::CpuMap(_) => "a CPU map (BPF_MAP_TYPE_CPUMAP)",
        Map::ProgramArray(_) => "a program array (BPF_MAP_TYPE_PROG_ARRAY)",
        Map::RingBuf(_) => "a ring buffer (BPF_MAP_TYPE_RINGBUF)",
        Map::PerfEventArray(_) => "a perf event array (BPF_MAP_TYPE_PERF_EVENT_ARRAY)",
        Map::XskMap(_) => "an XSKMAP",
        _ => return "a map of another type".to_owned(),
    };
    kind.to_owned()
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
    if matches!(native.errno(), Some(libc::EBUSY | libc::EEXIST | libc::EPERM | libc::EACCES)) {
        return Err(native);
    }
    match attach(program, ifname, ifindex, AttachMode::Generic) {
        Ok(link) => Ok((link, AttachMode::Generic)),
        Err(BpfError::Attach { ifname, mode, errno, message }) => Err(BpfError::Attach {
            ifname,
            mode,
            errno,
            message: format!("{message} (after native mode failed: {native})"),
        }),
        Err(other) => Err(other),
    }
}

/// The error of `BPF_PROG_LOAD` for program `name`: [`BpfError::Load`] for missing privileges
/// (`EPERM` is no verdict of the verifier), [`BpfError::Verifier`] with the log for a rejection,
/// `other` for anything else.
pub(crate) fn program_load_error(
    name: &str,
    error: ProgramError,
    other: fn(&(dyn StdError + 'static)) -> BpfError,
) -> BpfError {
    match error {
        ProgramError::LoadError { io_error, .. }
            if io_error.raw_os_error() == Some(libc::EPERM) =>
        {
            BpfError::Load {
                errno: Some(libc::EPERM),
                message: format!("loading XDP program `{name}`: {io_error}"),
            }
        }
        ProgramError::LoadError { io_error, verifier_log } => BpfError::Verifier {
            program: name.to_owned(),
            errno: io_error.raw_os_error(),
            log: format!("{verifier_log:?}").trim_end().to_owned(),
        },
        e => other(&e),
    }
}

/// A [`BpfError::Load`] from an aya error, keeping the errno and the verifier log.
fn load_error(error: &(dyn StdError + 'static)) -> BpfError {
    BpfError::Load { errno: errno_of(error), message: error_chain(error) }
}

/// A [`BpfError::Load`] for an object that lacks `name` (the embedded object is broken).
fn missing_in_object(kind: &str, name: &str) -> BpfError {
    BpfError::Load { errno: None, message: format!("the embedded object has no {kind} `{name}`") }
}

/// A [`BpfError`] from an XSKMAP error.
fn map_error(op: &'static str, key: u32, error: MapError) -> BpfError {
    match error {
        MapError::OutOfBounds { index, max_entries } => {
            BpfError::QueueOutOfRange { queue: index, max: max_entries }
        }
        error => BpfError::Map { op, key, errno: errno_of(&error), message: error_chain(&error) },
    }
}

/// The first OS error code in `error`'s source chain.
pub(crate) fn errno_of(error: &(dyn StdError + 'static)) -> Option<i32> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(errno) = e.downcast_ref::<io::Error>().and_then(io::Error::raw_os_error) {
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
pub(crate) fn error_chain(error: &(dyn StdError + 'static)) -> String {
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
    crate::sys::if_nametoindex(ifname)
        .ok_or_else(|| BpfError::NoSuchInterface { ifname: ifname.to_owned() })
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
        return Err(BpfError::NoSuchInterface { ifname: ifname.to_owned() });
    }
    for (dst, src) in ifr_name.iter_mut().zip(ifname.bytes()) {
        *dst = src as c_char;
    }
    let mut channels = EthtoolChannels { cmd: ETHTOOL_GCHANNELS, ..EthtoolChannels::default() };
    let mut request =
        IfreqEthtool { ifr_name, ifr_data: (&raw mut channels).cast(), _union_rest: [0; 16] };

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
            Some(libc::ENODEV) => Err(BpfError::NoSuchInterface { ifname: ifname.to_owned() }),
            _ => Err(query_error(error)),
        };
    }
    Ok([channels.max_combined, channels.max_rx, channels.combined_count, channels.rx_count, 1]
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
        libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE)
    };
    if fd < 0 {
        return Err(os_error(io::Error::last_os_error()));
    }
    // SAFETY: `fd` is a freshly created descriptor that nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: `request` is a live buffer of `request.len()` bytes. Unbound netlink sockets
    // send to the kernel (address 0), so no address is needed.
    let sent = unsafe { libc::send(socket.as_raw_fd(), request.as_ptr().cast(), request.len(), 0) };
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
            return Err(query_error(None, format!("reply truncated ({received} bytes)")));
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
                let errno =
                    if body.len() >= 4 { (u32_at(body, 0) as i32).wrapping_neg() } else { 0 };
                if errno == 0 {
                    continue; // An acknowledgement.
                }
                let error = io::Error::from_raw_os_error(errno);
                return Err(if errno == libc::ENODEV {
                    BpfError::NoSuchInterface { ifname: ifname.to_owned() }
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
    let xdp = netlink_attributes(attributes).find(|&(kind, _)| kind == IFLA_XDP)?.1;
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
    fn rules_encode_their_conditions_as_flags() {
        let any = Rule::default().to_raw();
        assert_eq!(any.flags, 0);
        let rule = Rule { ethertype: Some(0x86dd), ip_proto: Some(17), dst_port: Some(53) };
        let raw = rule.to_raw();
        assert_eq!(
            (raw.ethertype, raw.ip_proto, raw.dst_port, raw.flags),
            (0x86dd, 17, 53, MATCH_ETHERTYPE | MATCH_IP_PROTO | MATCH_DST_PORT)
        );
        let port_only = Rule { dst_port: Some(0), ..Rule::default() };
        assert_eq!(port_only.to_raw().flags, MATCH_DST_PORT, "port 0 is a condition too");
        assert_eq!(rule.to_string(), "Rule(ethertype=0x86dd, ip_proto=17, dst_port=53)");
    }

    #[test]
    fn rule_validation() {
        assert!(validate_rules(&[Rule::default(); MAX_RULES]).is_ok());
        match validate_rules(&[Rule::default(); MAX_RULES + 1]) {
            Err(BpfError::TooManyRules { count, max }) => assert_eq!((count, max), (17, 16)),
            other => panic!("{other:?}"),
        }
        let short = Rule { ethertype: Some(0x05ff), ..Rule::default() };
        let error = validate_rules(&[Rule::default(), short]).unwrap_err();
        assert!(error.to_string().contains("ethertype=0x05ff"), "{error}");
    }

    #[test]
    fn hit_counters_do_not_overlap() {
        let mut seen = std::collections::HashSet::new();
        for set in 0..2 {
            for rule in 0..=MAX_RULES {
                assert!(seen.insert(hit_index(set, rule)));
            }
        }
        assert_eq!(seen.len(), 2 * MAX_RULES + 2);
        assert_eq!(*seen.iter().max().unwrap() as usize, 2 * MAX_RULES + 1);
    }

    #[test]
    fn picks_names_from_an_object() {
        let names = || [("b_prog", true), ("a_prog", true), ("tc_prog", false)].into_iter();
        assert_eq!(
            pick_name("program", Some("tc_prog"), names(), "XDP program").unwrap(),
            "tc_prog"
        );
        let missing = pick_name("program", Some("nope"), names(), "XDP program").unwrap_err();
        assert_eq!(
            missing.to_string(),
            "the object has no program named \"nope\" (its programs: a_prog, b_prog, tc_prog)"
        );
        let ambiguous = pick_name("program", None, names(), "XDP program").unwrap_err();
        assert_eq!(
            ambiguous.to_string(),
            "the object has 2 XDP programs (a_prog, b_prog): name the one to use"
        );
        let one = [("only", true), ("other", false)].into_iter();
        assert_eq!(pick_name("map", None, one, "XSKMAP").unwrap(), "only");
        let none = pick_name("map", None, std::iter::empty(), "XSKMAP").unwrap_err();
        assert_eq!(none.to_string(), "the object has 0 XSKMAPs (none): name the one to use");
    }

    #[test]
    fn embedded_object_is_an_ebpf_elf() {
        assert_eq!(&PROGRAM_OBJECT[..4], b"\x7fELF");
        assert_eq!(PROGRAM_OBJECT[4], 2, "ELFCLASS64");
        assert_eq!(u16_at(PROGRAM_OBJECT, 18), 247, "EM_BPF");
        assert_eq!(PROGRAM_OBJECT.as_ptr() as usize % 8, 0, "include_bytes_aligned");
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
            let output = Command::new(args[0]).args(&args[1..]).output().expect(args[0]);
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
                let nanos = std::time::SystemTime::UNIX_EPOCH.elapsed().unwrap().subsec_nanos();
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
                receiver.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                sender.send_to(b"afxdp", receiver.local_addr().unwrap()).unwrap();
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
            std::net::UdpSocket::bind("0.0.0.0:0").expect("udp socket").into()
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
                    assert!(netns.udp_delivered(), "{requested:?}: XDP_PASS fallback broken");

                    // An unbound AF_XDP socket at queue 0: redirected packets are dropped.
                    let xsk = xsk_socket();
                    program.register(0, xsk.as_raw_fd()).unwrap();
                    assert!(!netns.udp_delivered(), "{requested:?}: not redirected to the socket");
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
                assert!(matches!(error, BpfError::Map { op: "update", key: 1, .. }), "{error}");
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
                        BpfError::Attach { mode: "native", errno: Some(libc::EBUSY), .. }
                    ),
                    "{error}"
                );
                drop(first);
                // Native mode on veth needs the peer's MTU <= about one page for a program
                // without frags support: ERANGE, and Auto falls back to generic mode.
                let peer = netns.peer.as_str();
                run(&["ip", "-n", peer, "link", "set", "dev", "veth0", "mtu", "9000"]);
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
                let id = attached_program_id("veth1").unwrap().expect("attached by the child");
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
