//! [`XdpProgram`]: load, attach, register sockets, detach (its match rules are in `rules`).

use std::fmt;
use std::os::fd::{AsFd, RawFd};

use afxdp_ebpf_common::names;
use aya::Ebpf;
use aya::maps::{MapData, XskMap};
use aya::programs::links::FdLink;
use aya::programs::{ProgramError, Xdp};

use super::attach::{AttachmentKey, Link, attach, attach_auto, attach_error};
use super::attach::{attachment_key, attachments};
use super::devbound;
use super::errors::program_load_error;
use super::errors::{BpfError, errno_of, error_chain, load_error, map_error, missing_in_object};
use super::object::{builtin_map, load_builtin, load_custom};
use super::rules::{Rule, Steering, validate_rules};
use super::{AttachMode, BuiltinOptions};
use crate::error::{Error, Result};
use crate::sys::{self, ForkGuard, Interface, errno};

/// An XDP program attached to one interface with its XSKMAP: the built-in program
/// ([`attach_builtin`](Self::attach_builtin), [`attach_with_rules`](Self::attach_with_rules))
/// or one from a user's object ([`load`](Self::load)).
///
/// Owns the loaded program, its maps and the attachment (a BPF link): dropping it, or
/// [`detach`](Self::detach), removes the program from the interface and unloads it.
///
/// Its methods take `&mut self`; share it between threads behind a `Mutex`.
///
/// In a process forked after it was attached, every method fails with
/// [`Error::ForkedChild`], and dropping it (or [`detach`](Self::detach)) only closes the child's
/// copies of its descriptors: the parent's program stays attached and its XSKMAP untouched.
pub struct XdpProgram {
    iface: Interface,
    mode: AttachMode,
    pub(super) map_size: u32,
    /// The program's name in its object.
    program_name: String,
    /// `None` once detached.
    pub(super) attached: Option<Attached>,
    /// The process the program was attached in.
    guard: ForkGuard,
    /// The built-in program's switches (all off for a custom program).
    options: BuiltinOptions,
}

/// What exists while the program is attached. Dropping it detaches and unloads.
pub(super) struct Attached {
    /// The XSKMAP, taken out of `ebpf` so it is typed once.
    xsks: XskMap<MapData>,
    /// The rule maps of the built-in program; `None` for a custom program.
    pub(super) steering: Option<Steering>,
    /// The attachment.
    link: Link,
    /// The loaded object (owns the maps and, for [`Link::Aya`], the program and its link).
    ebpf: Ebpf,
    /// Where it is attached, in this process's list of attachments.
    key: AttachmentKey,
}

// The Python bindings keep an `XdpProgram` in a `Mutex` inside a `#[pyclass]`.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<XdpProgram>();
};

impl fmt::Debug for XdpProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XdpProgram")
            .field("ifname", &self.iface.name())
            .field("ifindex", &self.iface.index())
            .field("program", &self.program_name)
            .field("mode", &self.mode)
            .field("map_size", &self.map_size)
            .field("options", &self.options)
            .field("attached", &self.is_attached())
            .finish()
    }
}

impl XdpProgram {
    /// Loads the built-in program and attaches it to `iface`, with no rules: every packet
    /// of a queue with a registered socket goes to that socket.
    ///
    /// The XSKMAP gets one entry per queue of the interface ([`Interface::queue_count`]).
    /// [`AttachMode::Auto`] tries native mode, then generic mode; it does not fall back when
    /// native mode fails with `EBUSY`, `EEXIST`, `EPERM` or `EACCES`, which generic mode would
    /// hit as well.
    ///
    /// # Errors
    ///
    /// [`Error::NoSuchInterface`], [`Error::Syscall`] (queue count), [`BpfError::Load`],
    /// [`BpfError::MissingCapability`], [`BpfError::Attach`] (in [`Error::Bpf`]).
    pub fn attach_builtin(iface: &Interface, mode: AttachMode) -> Result<XdpProgram> {
        Self::attach_with_rules(iface, mode, &[])
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
        iface: &Interface,
        mode: AttachMode,
        rules: &[Rule],
    ) -> Result<XdpProgram> {
        Self::attach_builtin_with(iface, mode, rules, BuiltinOptions::default())
    }

    /// Like [`attach_with_rules`](Self::attach_with_rules), with the program's switches set
    /// from `options` (receive timestamps: [`BuiltinOptions::rx_timestamps`]).
    ///
    /// # Errors
    ///
    /// Those of [`attach_with_rules`](Self::attach_with_rules).
    pub fn attach_builtin_with(
        iface: &Interface,
        mode: AttachMode,
        rules: &[Rule],
        options: BuiltinOptions,
    ) -> Result<XdpProgram> {
        validate_rules(rules)?;
        if options.device_metadata && mode == AttachMode::Generic {
            return Err(Error::InvalidArgument {
                name: "mode",
                value: mode.as_str().to_owned(),
                why: "device metadata needs a program bound to the device, and the kernel \
                      attaches device-bound programs in native mode only"
                    .to_owned(),
            });
        }
        let queues = iface.queue_count()?.max(1);
        let mut ebpf = load_builtin(queues, &options)?;
        // Relocated while `ebpf` still holds every map.
        let device_bound =
            options.device_metadata.then(|| devbound::prepare(&ebpf, iface)).transpose()?;
        let mut steering = Steering {
            rules: builtin_map(&mut ebpf, names::RULES)?,
            active: builtin_map(&mut ebpf, names::ACTIVE)?,
            hits: builtin_map(&mut ebpf, names::HITS)?,
            no_socket: builtin_map(&mut ebpf, names::NO_SOCKET)?,
            active_set: 0,
            current: Vec::new(),
        };
        // Set 0 is active (the array starts zeroed); fill it before the program is attached.
        steering.write_set(0, rules)?;
        steering.current = rules.to_vec();
        let xsks = builtin_map(&mut ebpf, names::XSKS)?;
        let mut program = match device_bound {
            None => Self::attach_loaded(ebpf, xsks, Some(steering), names::PROGRAM, iface, mode)?,
            Some(insns) => Self::attach_device_bound(ebpf, xsks, steering, &insns, iface)?,
        };
        program.options = options;
        Ok(program)
    }

    /// Loads the prepared device-bound program (`insns`, [`devbound::prepare`]) and links it to
    /// `iface` in native mode.
    fn attach_device_bound(
        ebpf: Ebpf,
        xsks: XskMap<MapData>,
        steering: Steering,
        insns: &[u64],
        iface: &Interface,
    ) -> Result<XdpProgram> {
        let program = devbound::load(insns, iface)?;
        let key = attachment_key(iface);
        let mode = AttachMode::Native;
        let link =
            sys::bpf::xdp_link_create(program.as_fd(), iface.index(), sys::bpf::XDP_FLAGS_DRV_MODE)
                .map_err(|e| attach_error(iface, key, mode, e.raw_os_error(), e.to_string()))?;
        Ok(Self::attached(
            iface,
            mode,
            names::PROGRAM,
            Attached { xsks, steering: Some(steering), link: Link::DeviceBound(link), ebpf, key },
        ))
    }

    /// Loads XDP program `program` from a user's ELF object (built with aya or clang; legacy
    /// or BTF-defined maps) and attaches it to `iface`. Sockets register into its XSKMAP
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
    /// [`BpfError::Verifier`] (with the verifier log), [`BpfError::Attach`].
    pub fn load(
        object: &[u8],
        iface: &Interface,
        program: Option<&str>,
        xsk_map: Option<&str>,
        mode: AttachMode,
    ) -> Result<XdpProgram> {
        let (ebpf, program, xsks) = load_custom(object, program, xsk_map)?;
        Self::attach_loaded(ebpf, xsks, None, &program, iface, mode)
    }

    /// Loads `program_name` of `ebpf` into the kernel and attaches it.
    fn attach_loaded(
        mut ebpf: Ebpf,
        xsks: XskMap<MapData>,
        steering: Option<Steering>,
        program_name: &str,
        iface: &Interface,
        mode: AttachMode,
    ) -> Result<XdpProgram> {
        let program: &mut Xdp = ebpf
            .program_mut(program_name)
            .ok_or_else(|| missing_in_object("program", program_name))?
            .try_into()
            .map_err(|e: ProgramError| load_error(&e))?;
        program.load().map_err(|e| program_load_error(program_name, e, load_error))?;

        let key = attachment_key(iface);
        let (link, mode) = match mode {
            AttachMode::Auto => attach_auto(program, iface, key)?,
            mode => (attach(program, iface, key, mode)?, mode),
        };
        let link = Link::Aya(link);
        Ok(Self::attached(iface, mode, program_name, Attached { xsks, steering, link, ebpf, key }))
    }

    /// The program just attached as `attached`, noted in this process's attachments.
    fn attached(
        iface: &Interface,
        mode: AttachMode,
        program_name: &str,
        attached: Attached,
    ) -> XdpProgram {
        attachments().get_or_insert_default().insert(attached.key);
        XdpProgram {
            iface: iface.clone(),
            mode,
            map_size: attached.xsks.len(),
            program_name: program_name.to_owned(),
            attached: Some(attached),
            guard: ForkGuard::new(),
            options: BuiltinOptions::default(),
        }
    }

    /// Whether the built-in program writes receive timestamps ([`BuiltinOptions::rx_timestamps`];
    /// false for a custom program, whatever it writes).
    pub fn rx_timestamps(&self) -> bool {
        self.options.writes_rx_meta()
    }

    /// Whether the built-in program asks the device for receive timestamps and hashes
    /// ([`BuiltinOptions::device_metadata`]): it is then bound to the interface.
    pub fn device_metadata(&self) -> bool {
        self.options.device_metadata
    }

    /// Whether the program may write receive metadata before packets: the built-in one with
    /// timestamps, or any custom one. A UMEM receiving from it should clear stale metadata
    /// ([`crate::umem::Umem::expect_rx_meta`]).
    pub fn may_write_rx_meta(&self) -> bool {
        self.options.writes_rx_meta() || !self.has_rules()
    }

    /// The name of the XDP program in its object (`"afxdp_redirect"` for the built-in one).
    pub fn program_name(&self) -> &str {
        &self.program_name
    }

    /// [`Error::ForkedChild`] in a process forked after the program was attached.
    pub fn check_fork(&self) -> Result<()> {
        self.guard.check("XdpProgram")
    }

    fn attached_mut(&mut self) -> Result<&mut Attached> {
        self.check_fork()?;
        Ok(self.attached.as_mut().ok_or(BpfError::Detached)?)
    }

    /// The built-in program's rule maps and counters, for `what` (named in the error when the
    /// program came from a custom object).
    pub(super) fn steering_for(&mut self, what: &'static str) -> Result<&mut Steering> {
        let ifname = self.iface.name().to_owned();
        let attached = self.attached_mut()?;
        Ok(attached.steering.as_mut().ok_or(BpfError::NoRules { ifname, what })?)
    }

    /// Registers an AF_XDP socket for `queue`: `XSKMAP[queue] = socket_fd`, replacing any
    /// socket registered there before. `queue` is the XSKMAP key: the built-in program
    /// redirects a packet to the entry of its rx queue, so with it the key is the socket's
    /// queue; a program loaded from an object ([`XdpProgram::load`]) picks the key its own way
    /// (several sockets bound to one queue, say, each at its own key).
    ///
    /// Register a socket after it is bound to (this interface, `queue`) and has an RX ring
    /// and frames on its FILL ring: packets redirected to a socket that is not bound are
    /// dropped, and a socket bound to another queue or interface never receives them. The map
    /// holds its own reference to the socket (`socket_fd` only has to be open during the call);
    /// closing the socket removes it from the map.
    ///
    /// # Errors
    ///
    /// [`BpfError::Detached`], [`Error::QueueOutOfRange`] when `queue >= map_size()`,
    /// [`BpfError::Map`] (e.g. `EBADF`, or `EOPNOTSUPP` for a socket that is not AF_XDP),
    /// [`Error::ForkedChild`].
    pub fn register(&mut self, queue: u32, socket_fd: RawFd) -> Result<()> {
        let xsks = self.xsks_at(queue)?;
        xsks.set(queue, socket_fd, 0).map_err(|e| map_error("update", queue, e))
    }

    /// Removes the socket registered for `queue`, if any; the queue's packets go back to
    /// the kernel stack. Unregistering an empty queue is not an error.
    ///
    /// # Errors
    ///
    /// [`BpfError::Detached`], [`Error::QueueOutOfRange`], [`BpfError::Map`],
    /// [`Error::ForkedChild`].
    pub fn unregister(&mut self, queue: u32) -> Result<()> {
        let xsks = self.xsks_at(queue)?;
        match xsks.unset(queue) {
            Ok(()) => Ok(()),
            Err(e) => match map_error("delete", queue, e) {
                Error::Bpf(BpfError::Map { errno: Some(errno::ENOENT), .. }) => Ok(()),
                other => Err(other),
            },
        }
    }

    /// Detaches the program from the interface and unloads it, with its XSKMAP. Idempotent;
    /// also done on drop. Sockets stay open and bound, and their queues' packets go back to
    /// the kernel stack.
    ///
    /// In a forked child it only closes the child's copies of the descriptors (the parent's
    /// program stays attached) and returns `Ok`.
    ///
    /// # Errors
    ///
    /// [`BpfError::Attach`] if the kernel refused to detach; the program is unloaded anyway.
    pub fn detach(&mut self) -> Result<()> {
        let Some(Attached { xsks, steering, link, mut ebpf, key }) = self.attached.take() else {
            return Ok(());
        };
        // Closing a BPF link's descriptor detaches the program only once no forked child
        // holds a copy of it: the parent detaches it through the kernel first (best effort:
        // closing still does it when no copy exists).
        let detached = match link {
            // Closing the link detaches the program, unless it is a forked child's copy (then
            // only the copy closes; the parent's program stays).
            Link::DeviceBound(link) => {
                if !self.guard.forked() {
                    let _ = crate::sys::bpf::link_detach(link.as_fd());
                }
                drop(link);
                Ok(())
            }
            Link::Aya(link) => {
                let program = ebpf.program_mut(&self.program_name).map(<&mut Xdp>::try_from);
                if self.guard.forked() {
                    // A netlink attachment would be removed from the interface by dropping its
                    // link (the parent's program!); a BPF link's descriptor copy only closes.
                    // Take the link out so that `ebpf` has none left to detach, and close only
                    // a BPF link.
                    if let Some(Ok(program)) = program
                        && let Ok(link) = program.take_link(link)
                    {
                        drop(FdLink::try_from(link));
                    }
                    return Ok(());
                }
                match program {
                    Some(Ok(program)) => {
                        if let Ok(info) = program.info() {
                            let _ = crate::sys::bpf::detach_xdp_links_of(info.id());
                        }
                        program.detach(link)
                    }
                    Some(Err(e)) => Err(e),
                    None => Err(ProgramError::NotLoaded),
                }
            }
        };
        if self.guard.forked() {
            return Ok(());
        }
        // Unload the program, then close the maps.
        drop(ebpf);
        drop(xsks);
        drop(steering);
        if let Some(set) = attachments().as_mut() {
            set.remove(&key);
        }
        detached.map_err(|e| {
            BpfError::Attach {
                ifname: self.iface.name().to_owned(),
                mode: self.mode.as_str(),
                errno: errno_of(&e),
                message: format!("detaching: {}", error_chain(&e)),
            }
            .into()
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

    /// The interface.
    pub fn interface(&self) -> &Interface {
        &self.iface
    }

    /// The interface name.
    pub fn ifname(&self) -> &str {
        self.iface.name()
    }

    /// The interface index (in the network namespace the program was attached in).
    pub fn ifindex(&self) -> u32 {
        self.iface.index()
    }

    /// Whether this is the built-in program (its XSKMAP indexed by rx queue), not one loaded
    /// from an object; false once detached.
    pub fn is_builtin(&self) -> bool {
        self.attached.as_ref().is_some_and(|a| a.steering.is_some())
    }

    /// The number of XSKMAP entries: valid queues for [`register`](Self::register) are
    /// `0..map_size()`.
    pub fn map_size(&self) -> u32 {
        self.map_size
    }

    /// The XSKMAP, if attached and `queue` is in range.
    fn xsks_at(&mut self, queue: u32) -> Result<&mut XskMap<MapData>> {
        let count = self.map_size;
        let ifname = self.iface.name().to_owned();
        let attached = self.attached_mut()?;
        if queue >= count {
            return Err(Error::QueueOutOfRange { ifname, queue, count });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::test_support::*;

    #[test]
    fn unknown_interface() {
        let name = "afxdp-none0";
        match Interface::by_name(name) {
            Err(Error::NoSuchInterface { ifname }) => assert_eq!(ifname, name),
            other => panic!("expected NoSuchInterface, got {other:?}"),
        }
        assert!(attached_program_id(name).is_err());
    }

    #[test]
    fn loopback_has_no_program() {
        assert_eq!(attached_program_id("lo").unwrap(), None);
    }

    /// Privileged tests: each runs in its own pair of network namespaces with a veth pair
    /// (`veth0` in `<name>-peer`, `veth1` in `<name>`, where the program goes), deleted
    /// afterwards. Run them as root with `cargo test -p afxdp bpf:: -- --ignored`.
    mod privileged {
        use std::os::fd::AsRawFd;

        use super::super::*;
        use crate::bpf::test_support::*;

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
                    let mut program = XdpProgram::attach_builtin(&veth1(), requested).unwrap();
                    assert!(program.is_attached());
                    assert_eq!(program.mode(), expected);
                    assert_eq!(program.ifname(), "veth1");
                    assert_eq!(program.ifindex(), veth1().index());
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
                        Err(Error::Bpf(BpfError::Detached))
                    ));
                    assert!(matches!(program.unregister(0), Err(Error::Bpf(BpfError::Detached))));
                });
            }
        }

        #[test]
        #[ignore = "needs root: creates network namespaces and attaches XDP programs"]
        fn map_errors_keep_errno() {
            let netns = VethNetns::new(4);
            netns.enter(|| {
                assert_eq!(veth1().queue_count().unwrap(), 4);
                let mut program =
                    XdpProgram::attach_builtin(&veth1(), AttachMode::Generic).unwrap();
                assert_eq!(program.map_size(), 4);
                let xsk = xsk_socket();
                program.register(3, xsk.as_raw_fd()).unwrap();
                match program.register(4, xsk.as_raw_fd()) {
                    Err(Error::QueueOutOfRange { queue: 4, count: 4, .. }) => {}
                    other => panic!("expected QueueOutOfRange, got {other:?}"),
                }
                assert!(matches!(
                    program.unregister(9),
                    Err(Error::QueueOutOfRange { queue: 9, count: 4, .. })
                ));
                let udp = udp_socket();
                let error = program.register(1, udp.as_raw_fd()).unwrap_err();
                eprintln!("{error}");
                assert_eq!(error.errno(), Some(libc::EOPNOTSUPP), "{error}");
                assert!(
                    matches!(error, Error::Bpf(BpfError::Map { op: "update", key: 1, .. })),
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
    }
}
