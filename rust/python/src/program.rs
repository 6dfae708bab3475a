//! `Program`: an XDP program attached to an interface, with its XSKMAP and rules.

use std::collections::HashMap;
use std::sync::Mutex;

use afxdp::Interface;
use afxdp::bpf::{BuiltinOptions, XdpProgram};
use pyo3::prelude::*;

use crate::convert::{Int, mode_arg, u32_arg, with_bytes};
use crate::errors::{Error, Result};
use crate::rules::{PyRule, rules_arg};
use crate::socket::PySocket;
use crate::sync::{Turnstile, lock};

/// An XDP program attached to an interface. The built-in one (`Program.attach`) redirects
/// packets that match its rules (all, without rules) on every queue with a registered socket to
/// that socket and passes everything else to the kernel stack; `Program.load` attaches a
/// program from the user's own object.
#[pyclass(name = "Program", module = "afxdp._native", frozen)]
pub struct PyProgram {
    prog: Mutex<Option<XdpProgram>>,
    ifname: String,
    /// XSKMAP entries this object made: key (the queue, for the built-in program) -> socket fd.
    entries: Mutex<HashMap<u32, i32>>,
    /// Serialises `set_rules` calls, whose steps wait for RCU grace periods between them.
    rules_turn: Turnstile,
}

impl PyProgram {
    /// Whether `fd` is registered at some key (and the program still attached).
    pub fn has_entry(&self, fd: i32) -> bool {
        lock(&self.prog).is_some() && lock(&self.entries).values().any(|&f| f == fd)
    }

    /// Removes the XSKMAP entries that hold the socket `fd`, which is closing. The kernel
    /// would remove them only when the socket is released, and a forked child's copy of its
    /// descriptor delays that: until the child exits, its queue would be redirected to a
    /// socket nobody reads. In a forked child nothing is removed (the map is the parent's).
    pub(crate) fn forget_socket(&self, fd: i32) {
        let keys: Vec<u32> =
            lock(&self.entries).iter().filter(|&(_, &f)| f == fd).map(|(&k, _)| k).collect();
        for key in keys {
            // A failure (detached, a forked child) leaves the entry where it is.
            let _ = self.remove_entry(key);
        }
    }

    /// Removes whatever socket is registered at `key` from the XSKMAP and from `entries`.
    fn remove_entry(&self, key: u32) -> Result<()> {
        self.with(|p| p.unregister(key))?;
        lock(&self.entries).remove(&key);
        Ok(())
    }

    /// Puts `socket` into the XSKMAP at `key` (None: its queue); the socket then keeps the
    /// program alive.
    pub fn register_socket(
        slf: &Bound<'_, Self>,
        socket: &PySocket,
        key: Option<u32>,
    ) -> Result<()> {
        let me = slf.get();
        let (queue, fd, ifindex) = socket.queue_fd_ifindex()?;
        // The XSKMAP steers within the interface: a socket bound to another one would be sent
        // every packet of its queue and could receive none of them.
        let (prog_ifindex, builtin, size, rx_meta) =
            me.with(|p| Ok((p.ifindex(), p.is_builtin(), p.map_size(), p.may_write_rx_meta())))?;
        if ifindex != prog_ifindex {
            return Err(Error::value(format!(
                "cannot register a socket bound to {:?} (ifindex {ifindex}) with the program on \
                 {:?} (ifindex {prog_ifindex}): it could receive none of the packets redirected to it",
                socket.ifname(),
                me.ifname
            )));
        }
        if !socket.has_rx() {
            // The kernel drops every packet redirected to a socket without an rx ring.
            return Err(Error::value(format!(
                "cannot register the socket on queue {queue} of {:?}: it has no rx ring \
                 (rx_size=0), so the kernel would drop every packet redirected to it",
                socket.ifname()
            )));
        }
        let key = key.unwrap_or(queue);
        if builtin && key != queue {
            // The built-in program redirects a packet to the entry of its rx queue, and the
            // kernel hands a socket only packets of the queue it is bound to.
            return Err(Error::value(format!(
                "key {key}: the built-in program redirects each packet to the XSKMAP entry of \
                 its rx queue, so a socket bound to queue {queue} receives only at key {queue}; \
                 other keys are for a program loaded from an object (Program.load)"
            )));
        }
        // (The built-in program's range check is the core's, on the queue.)
        if !builtin && key >= size {
            return Err(Error::value(format!(
                "key {key} is out of range: the XSKMAP of the program on {:?} has {size} \
                 entries (keys 0 to {})",
                me.ifname,
                size.saturating_sub(1)
            )));
        }
        if rx_meta {
            // Before the socket receives from it: no stale metadata in refilled frames.
            socket.expect_rx_meta()?;
        }
        me.with(|p| p.register(key, fd))?;
        lock(&me.entries).insert(key, fd);
        // The socket keeps its program (and so the attachment) alive.
        socket.set_program(slf.clone().unbind());
        Ok(())
    }

    fn new(prog: XdpProgram, ifname: String) -> Self {
        PyProgram {
            prog: Mutex::new(Some(prog)),
            ifname,
            entries: Mutex::new(HashMap::new()),
            rules_turn: Turnstile::default(),
        }
    }

    fn detached(&self) -> Error {
        Error::value(format!("the program on {:?} is detached", self.ifname))
    }

    /// Runs `f` on the attached program, under its lock: `f` must not run Python code. In a
    /// forked child it raises RuntimeError instead (the program is the parent's).
    fn with<R>(&self, f: impl FnOnce(&mut XdpProgram) -> afxdp::Result<R>) -> Result<R> {
        let mut g = lock(&self.prog);
        let p = g.as_mut().ok_or_else(|| self.detached())?;
        p.check_fork()?;
        Ok(f(p)?)
    }
}

#[pymethods]
impl PyProgram {
    /// Loads the built-in program and attaches it to `ifname`. `mode`: "auto" (native, else
    /// generic), "native" (driver) or "generic" (skb). Attached through a BPF link: it goes
    /// away when this object is closed or collected, and when the process dies.
    ///
    /// `rules`: an iterable of `Rule` (at most 16). Only packets matching one of them leave
    /// the kernel stack; None or empty: every packet of a queue with a registered socket.
    ///
    /// `timestamps`: stamp every packet redirected to a socket with the time the program saw
    /// it (XDP metadata before the packet), read as `Frame.rx_timestamp` and
    /// `FrameBatch.rx_timestamps`.
    ///
    /// `device_metadata`: also ask the device for each packet's receive timestamp and hash
    /// (`Frame.rx_hw_timestamp`, `Frame.rx_hash`; None where the device gives none), through
    /// the kernel's `bpf_xdp_metadata_rx_*` kfuncs; implies `timestamps`. The program is then
    /// bound to the interface, which needs Linux 6.3 and native mode (ValueError with
    /// mode="generic"; "auto" means native).
    #[staticmethod]
    #[pyo3(signature = (
        ifname, mode = "auto", rules = None, *, timestamps = false, device_metadata = false
    ))]
    fn attach(
        py: Python<'_>,
        ifname: String,
        mode: &str,
        rules: Option<&Bound<'_, PyAny>>,
        timestamps: bool,
        device_metadata: bool,
    ) -> Result<Self> {
        let mode = mode_arg(mode)?;
        let rules = rules_arg(rules)?;
        let name = ifname.clone();
        let options = BuiltinOptions::default()
            .with_rx_timestamps(timestamps)
            .with_device_metadata(device_metadata);
        let prog = py.detach(move || {
            XdpProgram::attach_builtin_with(&Interface::by_name(&name)?, mode, &rules, options)
        })?;
        Ok(Self::new(prog, ifname))
    }

    /// Loads XDP program `program` from an ELF object (a path or the bytes of one, built with
    /// aya or clang) and attaches it to `ifname`; sockets register into its XSKMAP `xsk_map`
    /// at their queue. With `program`/`xsk_map` None, the object's only XDP program / XSKMAP.
    /// Errors: ValueError naming a missing program or map or a map of the wrong type,
    /// VerifierError (with `.log`) when the kernel rejects the program.
    #[staticmethod]
    #[pyo3(signature = (obj, ifname, *, program = None, xsk_map = None, mode = "auto"))]
    fn load(
        py: Python<'_>,
        obj: &Bound<'_, PyAny>,
        ifname: String,
        program: Option<String>,
        xsk_map: Option<String>,
        mode: &str,
    ) -> Result<Self> {
        let mode = mode_arg(mode)?;
        // Bytes first: os.fspath() accepts bytes too and would take the object for a path.
        let object: Vec<u8> = if let Ok(bytes) = with_bytes(obj, |b| Ok(b.to_vec())) {
            bytes
        } else if let Ok(path) = obj.extract::<std::path::PathBuf>() {
            std::fs::read(&path).map_err(|e| {
                let msg = format!("reading the BPF object {}: {e}", path.display());
                match e.raw_os_error() {
                    Some(errno) => Error::os_file(errno, msg, path.display().to_string()),
                    None => Error::os(None, msg),
                }
            })?
        } else {
            return Err(Error::type_(
                "obj must be a path (str or os.PathLike) or a bytes-like object holding an ELF object",
            ));
        };
        let name = ifname.clone();
        let prog = py.detach(move || {
            let iface = Interface::by_name(&name)?;
            XdpProgram::load(&object, &iface, program.as_deref(), xsk_map.as_deref(), mode)
        })?;
        Ok(Self::new(prog, ifname))
    }

    /// Replaces the match rules without reattaching, atomically for the data path (each
    /// packet is judged by the whole old or the whole new set). Takes ~10-30 ms, during which
    /// other threads run and may use the program; concurrent calls take turns.
    fn set_rules(&self, py: Python<'_>, rules: &Bound<'_, PyAny>) -> Result<()> {
        let rules = rules_arg(Some(rules))?;
        // The program's lock is held for each step, never across a wait (another thread
        // holding the GIL would block on it while this one needs the GIL back). The turn keeps
        // two calls from interleaving their steps.
        let _turn = self.rules_turn.enter(py, || self.with(|_| Ok(())))?;
        let staged = self.with(|p| p.stage_rules(&rules))?;
        py.detach(afxdp::sys::synchronize_rcu);
        self.with(|p| p.activate_rules(staged))?;
        // The slot just retired may be read by runs in progress: the next call's stage
        // overwrites it only after this grace period (it waits for the turn).
        py.detach(afxdp::sys::synchronize_rcu);
        Ok(())
    }

    /// The rules in force, as a list (empty: every packet matches).
    #[getter]
    fn rules(&self) -> Result<Vec<PyRule>> {
        self.with(|p| Ok(p.rules().iter().map(|&rule| PyRule { rule }).collect()))
    }

    /// Hit counters of the rules in force since they were set: a list of (Rule, packets)
    /// pairs, packets counted for the first rule they matched.
    fn rule_stats(&self) -> Result<Vec<(PyRule, u64)>> {
        self.with(|p| {
            let hits = p.rule_hits()?;
            Ok(p.rules().iter().zip(hits).map(|(&rule, n)| (PyRule { rule }, n)).collect())
        })
    }

    /// Packets that matched no rule (and went to the kernel stack) since the rules were set.
    fn unmatched(&self) -> Result<u64> {
        self.with(XdpProgram::unmatched)
    }

    /// Whether the built-in program stamps packets (`attach(..., timestamps=True)` or
    /// `device_metadata=True`); False for a program loaded from an object, whatever it writes.
    #[getter]
    fn timestamps(&self) -> Result<bool> {
        self.with(|p| Ok(p.rx_timestamps()))
    }

    /// Whether the built-in program asks the device for receive timestamps and hashes
    /// (`attach(..., device_metadata=True)`), bound to the interface.
    #[getter]
    fn device_metadata(&self) -> Result<bool> {
        self.with(|p| Ok(p.device_metadata()))
    }

    /// The XDP program's name in its object ("afxdp_redirect" for the built-in one).
    #[getter]
    fn program_name(&self) -> Result<String> {
        self.with(|p| Ok(p.program_name().to_owned()))
    }

    /// Puts `socket` into the XSKMAP at `key`, by default its queue: packets the program
    /// redirects there now reach it. The socket must be bound to this program's interface and
    /// have an rx ring (ValueError otherwise). The built-in program redirects by rx queue, so with it `key`
    /// must be the socket's queue; a program from an object may use any key below `map_size`.
    #[pyo3(signature = (socket, key=None))]
    fn register(slf: &Bound<'_, Self>, socket: &PySocket, key: Option<Int>) -> Result<()> {
        let key = key.map(|k| u32_arg("key", k)).transpose()?;
        Self::register_socket(slf, socket, key)
    }

    /// Removes whatever socket is registered at `queue` (the XSKMAP key).
    pub(crate) fn unregister(&self, queue: Int) -> Result<()> {
        self.remove_entry(u32_arg("queue", queue)?)
    }

    /// Per rx queue (index = queue), the packets the built-in program meant for an AF_XDP
    /// socket (its rules matched) that found none registered for their queue and went to the
    /// kernel stack instead, since it was attached: traffic on a queue nobody listens to.
    /// ValueError for a program loaded from an object (it has no such counters).
    pub(crate) fn no_socket_counts(&self) -> Result<Vec<u64>> {
        self.with(|p| p.no_socket_counts())
    }

    /// Detaches the program from the interface. Idempotent.
    pub(crate) fn detach(&self) -> Result<()> {
        let prog = lock(&self.prog).take();
        if let Some(mut p) = prog {
            p.detach()?;
        }
        Ok(())
    }

    /// Same as `detach()`.
    fn close(&self) -> Result<()> {
        self.detach()
    }

    #[getter]
    fn attached(&self) -> bool {
        lock(&self.prog).as_ref().is_some_and(XdpProgram::is_attached)
    }

    #[getter]
    fn closed(&self) -> bool {
        !self.attached()
    }

    #[getter]
    fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The mode actually in use: "native" or "generic" (None once detached).
    #[getter]
    fn mode(&self) -> Option<&'static str> {
        lock(&self.prog).as_ref().map(|p| p.mode().as_str())
    }

    /// Number of XSKMAP entries: the keys a socket can be registered at (for the built-in
    /// program, the queues).
    #[getter]
    fn map_size(&self) -> Result<u32> {
        self.with(|p| Ok(p.map_size()))
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Leaving the block detaches the program; the exception, if any, propagates (returns
    /// None).
    #[pyo3(signature = (exc_type, exc_value, traceback, /))]
    #[allow(unused_variables)]
    fn __exit__(
        &self,
        exc_type: Option<Bound<'_, PyAny>>,
        exc_value: Option<Bound<'_, PyAny>>,
        traceback: Option<Bound<'_, PyAny>>,
    ) -> Result<()> {
        self.detach()?;
        Ok(())
    }

    fn __repr__(&self) -> String {
        match self.mode() {
            Some(m) => format!("<afxdp.Program ifname={:?} mode={m}>", self.ifname),
            None => format!("<afxdp.Program ifname={:?} [detached]>", self.ifname),
        }
    }
}
