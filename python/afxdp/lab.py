"""A private veth lab: two network namespaces joined by one veth pair.

The test-suite and the ``lab`` entry point use it to get a world of their own in which AF_XDP
sockets can be bound and frames sent without touching any interface of the host::

    ns_a (afxdp-<hex>-a)                      ns_b (afxdp-<hex>-b)
    if_a  afx<hex>a  02:00:00:00:00:01  <--->  if_b  afx<hex>b  02:00:00:00:00:02
          10.11.0.1/24                               10.11.0.2/24

What the lab sets up, and why:

* The namespace names are random (prefix ``afxdp-``) so that concurrent runs never collide; the
  addresses are fixed because each lab's namespaces are private.
* IPv6 is disabled (``all``, ``default`` and each veth) *before* the links go up, so no DAD, RS or
  MLD frames are ever sent: they would land in AF_XDP sockets and break exact-count tests
  (test_xsk.sh in the kernel does the same).
* Each side gets a permanent neighbour entry for the other (``static_neighbours=True``), so the
  kernel stack sends unicast IPv4 without ARP first: no ARP frame shows up in a receiver either.
* ``__init__`` waits until both ends report ``IFF_RUNNING``. Until the kernel's linkwatch work has
  run, a veth that is "up" still has the ``noop`` qdisc and silently drops what is sent. The two
  ends get different ifindexes (:data:`IFINDEX_A`, :data:`IFINDEX_B`) so that this takes
  milliseconds, not the ~1 s of a rate-limited linkwatch run.

Everything is removed by :meth:`Lab.close` (idempotent, also called by ``__exit__``, at interpreter
exit, and on SIGTERM when no other handler is installed: the module installs its own when it is
imported in the main thread, for labs made in any thread). A KeyboardInterrupt never cuts an
``ip`` command or a namespace switch in half. The veth is deleted explicitly first, so
it is gone (and any XDP program detached) even if a process or socket keeps a namespace alive.
A lab belongs to the process that made it: a forked child (``os.fork``, ``multiprocessing``'s
fork) never removes it, neither by ``close()`` nor at its exit nor on its SIGTERM.

This module is stdlib-only and imports only :mod:`afxdp.netdev` and :mod:`afxdp._netns` (the
namespace switch and the KeyboardInterrupt guard) from the package, so the test-suite can load
it without the compiled extension.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import errno
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from types import FrameType, TracebackType
from typing import Any, Literal

from afxdp._netns import _NetnsSwitch, _sigint_deferred
from afxdp.netdev import _set_gro, is_running, link

__all__ = [
    "IFINDEX_A",
    "IFINDEX_B",
    "IP_A",
    "IP_B",
    "MAC_A",
    "MAC_B",
    "PREFIX_LEN",
    "Lab",
    "LabCommandError",
    "privileges_problem",
    "require_privileges",
]

Side = Literal["a", "b"]
SIDES: tuple[Side, Side] = ("a", "b")

#: MAC address of ``if_a`` (locally administered, unicast).
MAC_A = "02:00:00:00:00:01"
#: MAC address of ``if_b``.
MAC_B = "02:00:00:00:00:02"
#: IPv4 address of ``if_a``.
IP_A = "10.11.0.1"
#: IPv4 address of ``if_b``.
IP_B = "10.11.0.2"
#: Prefix length of both addresses.
PREFIX_LEN = 24
#: Interface index of ``if_a`` inside ``ns_a``, and of ``if_b`` inside ``ns_b``. They must differ:
#: linkwatch treats a carrier change as urgent only when a device's ifindex differs from its
#: iflink (the peer's ifindex). In two fresh namespaces both ends would get index 2, and bringing
#: them up would then wait for the rate-limited linkwatch run (about 1 s) before traffic flows.
IFINDEX_A = 2
IFINDEX_B = 3

NAMESPACE_PREFIX = "afxdp-"
NETNS_DIR = "/run/netns"

_CAP_NET_ADMIN = 12
_CAP_SYS_ADMIN = 21
_PRIVILEGE_HINT = "needs root or CAP_NET_ADMIN + CAP_SYS_ADMIN"


class LabCommandError(subprocess.CalledProcessError):
    """A command run for (or inside) the lab exited non-zero.

    Unlike :class:`subprocess.CalledProcessError`, its message includes the command's stderr, which
    is where ``ip`` says what went wrong.
    """

    def __str__(self) -> str:
        cmd = self.cmd if isinstance(self.cmd, str) else " ".join(map(str, self.cmd))
        stderr = self.stderr
        if isinstance(stderr, bytes):
            stderr = stderr.decode(errors="replace")
        detail = (stderr or "").strip() or "(no stderr)"
        return f"command {cmd!r} exited with status {self.returncode}: {detail}"


# --- privileges and tools ------------------------------------------------------------------------


def _find_ip() -> str | None:
    """Path of the iproute2 ``ip`` binary; also looks in sbin dirs missing from a user's PATH."""
    return shutil.which("ip") or next(
        (
            p
            for p in ("/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip")
            if os.access(p, os.X_OK)
        ),
        None,
    )


def _effective_capabilities() -> int | None:
    """The CapEff bit mask of this process, or None when /proc does not tell."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except OSError:
        pass
    return None


def privileges_problem() -> str | None:
    """Why this process cannot build a lab, or None when it can (as far as can be told cheaply).

    Checks the effective capabilities (CAP_NET_ADMIN for links and addresses, CAP_SYS_ADMIN for
    ``setns`` and the namespace bind mounts) and that ``ip`` and ``/proc/thread-self`` exist.
    """
    if _find_ip() is None:
        return "the iproute2 'ip' command is missing (install iproute2)"
    caps = _effective_capabilities()
    if caps is None:
        return "cannot read CapEff from /proc/self/status"
    missing = [
        name
        for name, bit in (("CAP_NET_ADMIN", _CAP_NET_ADMIN), ("CAP_SYS_ADMIN", _CAP_SYS_ADMIN))
        if not caps >> bit & 1
    ]
    if missing:
        return f"the veth lab {_PRIVILEGE_HINT} (missing: {', '.join(missing)})"
    if not os.path.exists("/proc/thread-self/ns/net"):
        return "/proc/thread-self/ns/net is missing (kernel too old or /proc not mounted)"
    return None


def require_privileges() -> None:
    """Raise if this process cannot build a lab.

    Raises:
        RuntimeError: the ``ip`` command (iproute2) is missing, or /proc lacks what is needed.
        PermissionError: the process lacks CAP_NET_ADMIN or CAP_SYS_ADMIN.
    """
    problem = privileges_problem()
    if problem is None:
        return
    if "CAP_" in problem:
        raise PermissionError(errno.EPERM, problem)
    raise RuntimeError(problem)


# --- process-wide cleanup ------------------------------------------------------------------------
#
# Labs still open at interpreter exit are closed by atexit. SIGTERM (when nobody else handles it)
# closes them too and then kills the process with SIGTERM as the default action would. Python runs
# signal handlers in the main thread between bytecodes, so the handler must not cut a lab's
# construction or teardown in half (an `ip netns add` that finishes after the cleanup would leak):
# those run inside `_critical()`, the handler defers to the end of the main thread's critical
# section and waits (briefly) for other threads' ones.

_live_labs: set[Lab] = set()
_state = threading.Condition(threading.RLock())  # guards _live_labs and _busy; RLock: re-entrant
_busy: dict[int, int] = {}  # thread id -> nesting depth of critical sections
_sigterm_pending = False
_terminating = False
_sigterm_installed = False


def _forget_labs_in_child() -> None:
    """After ``fork()``, in the child: the labs are the parent's, so the child's exit and SIGTERM
    cleanup must not see them, and the lock may have been copied held by a thread the child does
    not have (a fresh one replaces it)."""
    global _state, _sigterm_pending, _terminating
    _state = threading.Condition(threading.RLock())
    _live_labs.clear()
    _busy.clear()
    _sigterm_pending = _terminating = False


os.register_at_fork(after_in_child=_forget_labs_in_child)


@contextlib.contextmanager
def _critical() -> Iterator[None]:
    """Mark lab construction or teardown, which SIGTERM cleanup must not interrupt."""
    ident = threading.get_ident()
    with _state:
        _busy[ident] = _busy.get(ident, 0) + 1
    try:
        yield
    finally:
        with _state:
            _busy[ident] -= 1
            if not _busy[ident]:
                del _busy[ident]
                _state.notify_all()
        if _sigterm_pending and ident == threading.main_thread().ident and ident not in _busy:
            _terminate()


def _close_all_labs() -> None:
    """Close every lab still open; report but do not raise errors (runs at exit and on SIGTERM)."""
    with _state:
        labs = list(_live_labs)
    for lab in labs:
        try:
            lab.close()
        except Exception as exc:
            print(f"afxdp.lab: cleanup of {lab!r} failed: {exc}", file=sys.stderr)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    """SIGTERM handler: clean up now, or when the main thread leaves its critical section."""
    global _sigterm_pending
    _sigterm_pending = True
    if threading.get_ident() not in _busy:
        _terminate()


def _terminate() -> None:
    """SIGTERM: remove all labs, then die of SIGTERM as the default action would."""
    if _remove_all_labs_for_good():
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)


def _remove_all_labs_for_good() -> bool:
    """Stop new labs from starting, let other threads finish set-up/teardown, close all labs.

    Runs at interpreter exit and on SIGTERM; returns False if it had already run.
    """
    global _terminating
    with _state:
        if _terminating:
            return False
        _terminating = True  # from now on no new lab starts (Lab.__init__ checks it)
        _state.wait_for(lambda: set(_busy) <= {threading.get_ident()}, timeout=5)
    _close_all_labs()
    return True


def _install_sigterm_handler() -> None:
    """Clean up on SIGTERM, but only from the main thread and only if nobody else handles it.
    Called at import (in the main thread, usually) and by every Lab (a lab made in another
    thread of a process that imported this module there has it from the import)."""
    global _sigterm_installed
    if _sigterm_installed or threading.current_thread() is not threading.main_thread():
        return
    _sigterm_installed = True
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)


atexit.register(_remove_all_labs_for_good)
_install_sigterm_handler()


# --- the lab -------------------------------------------------------------------------------------


class Lab:
    """Two private network namespaces ``a`` and ``b`` joined by a veth pair; see the module doc.

    Args:
        queues: number of rx and tx queues of each veth end (``numrxqueues``/``numtxqueues``).
        mtu: MTU of both ends. Native XDP on veth refuses MTUs above about 3.5 KB unless the
            program is frags-aware.
        static_neighbours: add permanent neighbour entries so IPv4 unicast needs no ARP.
        ready_timeout: seconds to wait for both ends to become ``IFF_RUNNING``.

    Raises:
        PermissionError / RuntimeError: see :func:`require_privileges`.
        LabCommandError: an ``ip`` command failed (its stderr is in the message). Whatever had been
            created is removed before the error propagates.
        RuntimeError: the process is already removing its labs for exit or SIGTERM.
    """

    def __init__(
        self,
        queues: int = 1,
        mtu: int = 1500,
        *,
        static_neighbours: bool = True,
        ready_timeout: float = 5.0,
    ) -> None:
        if not 1 <= queues <= 4096:
            raise ValueError(f"queues must be in 1..4096, not {queues}")
        if not 68 <= mtu <= 65535:
            raise ValueError(f"mtu must be in 68..65535, not {mtu}")
        require_privileges()
        ip = _find_ip()
        assert ip is not None  # checked by require_privileges()
        self._ip = ip
        self.queues = queues
        self.mtu = mtu
        tag = _unused_tag()
        self.ns_a = f"{NAMESPACE_PREFIX}{tag}-a"
        self.ns_b = f"{NAMESPACE_PREFIX}{tag}-b"
        self.if_a = f"afx{tag}a"
        self.if_b = f"afx{tag}b"
        self.mac_a, self.mac_b = MAC_A, MAC_B
        self.ip_a, self.ip_b = IP_A, IP_B
        self.prefix_len = PREFIX_LEN
        self._closed = False
        self._pid = os.getpid()  # a forked child's close() removes nothing
        self._close_lock = threading.RLock()  # serialises close() across threads
        self._children: list[subprocess.Popen[Any]] = []
        self._owned_netns: list[str] = []  # only what this lab created is ever deleted
        _install_sigterm_handler()
        with _critical():
            with _state:
                # Checked after _critical() counted this thread: exit cleanup waits, or we stop.
                if _terminating:
                    raise RuntimeError("afxdp.lab: the process is terminating (SIGTERM)")
                _live_labs.add(self)  # before anything exists, so exit handlers see partial labs
            try:
                self._build(static_neighbours, ready_timeout)
            except BaseException:
                self.close()
                raise

    # -- construction --

    def _build(self, static_neighbours: bool, ready_timeout: float) -> None:
        """Create namespaces, sysctls, veth, addresses and links, in the order that matters."""
        for name in (self.ns_a, self.ns_b):
            # Owned from before the call, and the call is never cut short (`_run_ip`), so an
            # interruption cannot leak the namespace; disowned when `ip` refuses because the
            # name exists (then it is someone else's).
            self._owned_netns.append(name)
            try:
                _run_checked([self._ip, "netns", "add", name])
            except LabCommandError:
                self._owned_netns.remove(name)
                raise
        for side in SIDES:
            self._disable_ipv6(side, ("all", "default"))
        queues = f"numtxqueues {self.queues} numrxqueues {self.queues}"
        self._ip_batch(
            self.ns_a,
            [
                f"link add {self.if_a} index {IFINDEX_A} {queues} mtu {self.mtu} "
                f"address {self.mac_a} type veth peer name {self.if_b} index {IFINDEX_B} "
                f"{queues} mtu {self.mtu} address {self.mac_b} netns {self.ns_b}",
            ],
        )
        for side in SIDES:
            self._disable_ipv6(side, (self.ifname(side),))  # before "up": no DAD/RS/MLD ever
        for side in SIDES:
            ifname, peer = self.ifname(side), self._other(side)
            commands = [
                f"address add {self.ip(side)}/{self.prefix_len} dev {ifname}",
                "link set lo up",
                f"link set {ifname} up",
            ]
            if static_neighbours:
                neighbour = f"{self.ip(peer)} lladdr {self.mac(peer)}"
                commands.append(f"neigh replace {neighbour} dev {ifname} nud permanent")
            self._ip_batch(self.netns(side), commands)
        self._wait_running(ready_timeout)

    def _ip_batch(self, netns: str, commands: Sequence[str]) -> None:
        """Run ``ip -n netns -batch -`` with ``commands``; one process for several commands."""
        argv = [self._ip, "-n", netns, "-batch", "-"]
        _run_checked(argv, input="\n".join(commands) + "\n")

    def _disable_ipv6(self, side: Side, confs: Sequence[str]) -> None:
        """Write 1 to ``net.ipv6.conf.<conf>.disable_ipv6`` inside namespace ``side``.

        /proc/sys/net resolves against the *calling thread's* netns, so entering is enough; no
        ``sysctl`` binary or extra process is needed. A kernel without IPv6 has nothing to disable.
        """
        with self.enter(side):
            if not os.path.isdir("/proc/sys/net/ipv6"):
                return
            for conf in confs:
                path = f"/proc/sys/net/ipv6/conf/{conf}/disable_ipv6"
                with open(path, "w", encoding="ascii") as knob:
                    knob.write("1\n")
                with open(path, encoding="ascii") as knob:
                    if knob.read().strip() != "1":
                        raise RuntimeError(f"{path} in {self.netns(side)} did not stay 1")

    def _wait_running(self, timeout: float) -> None:
        """Wait until both ends are IFF_RUNNING (linkwatch has run, so the qdisc is attached)."""
        deadline = time.monotonic() + timeout
        for side in SIDES:
            with self.enter(side):
                while not is_running(self.ifname(side)):
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{self.ifname(side)} not running after {timeout} s")
                    time.sleep(0.001)

    # -- naming helpers --

    @staticmethod
    def _check_side(side: str) -> Side:
        if side not in ("a", "b"):
            raise ValueError(f"side must be 'a' or 'b', not {side!r}")
        return side  # type: ignore[return-value]

    @staticmethod
    def _other(side: Side) -> Side:
        return "b" if side == "a" else "a"

    def netns(self, side: Side) -> str:
        """Name of the namespace of ``side`` ('a' or 'b')."""
        return self.ns_a if self._check_side(side) == "a" else self.ns_b

    def ifname(self, side: Side) -> str:
        """Name of the veth end that lives in namespace ``side``."""
        return self.if_a if self._check_side(side) == "a" else self.if_b

    def mac(self, side: Side) -> str:
        """MAC address of the veth end of ``side``."""
        return self.mac_a if self._check_side(side) == "a" else self.mac_b

    def ip(self, side: Side) -> str:
        """IPv4 address of the veth end of ``side``."""
        return self.ip_a if self._check_side(side) == "a" else self.ip_b

    def ifindex(self, side: Side) -> int:
        """Interface index of the veth end of ``side`` (only meaningful inside that namespace)."""
        with self.enter(side):
            return link(self.ifname(side)).ifindex

    # -- using the namespaces --

    def enter(self, side: Side) -> contextlib.AbstractContextManager[Lab]:
        """Move the *current thread* into namespace ``side`` for the body of the ``with``.

        Uses ``setns(fd, CLONE_NEWNET)`` on ``/run/netns/<name>`` and restores the thread's original
        netns (saved from ``/proc/thread-self/ns/net``) on exit, also when the body raises. Other
        threads are not affected. Things to know:

        * Sockets and other fds created inside stay bound to that namespace after leaving, so an
          AF_XDP socket can be created inside and used from anywhere.
        * Threads *started* inside inherit the namespace for their whole life.
        * ``/proc/self/net`` shows the main thread's namespace; use ``/proc/thread-self/net``.
          ``/sys/class/net`` shows the namespace that mounted /sys; use :meth:`run` for sysfs.
        """
        if self._closed:
            raise ValueError(f"{self!r} is closed")
        return _NetnsSwitch(f"{NETNS_DIR}/{self.netns(side)}", self)

    def set_gro(self, side: Side, enabled: bool = True) -> None:
        """Turn GRO on (or off) at end ``side``. A veth drops every frame redirected into it by
        XDP (what :func:`afxdp.generate` sends) unless its peer runs a *native* XDP program or
        has GRO on: with a generic-mode program at the receiving end, turn GRO on there.

        Raises:
            OSError: the kernel refused (the message names the interface).
        """
        with self.enter(side):
            if not _set_gro(self.ifname(side), enabled):
                raise OSError(errno.EOPNOTSUPP, f"could not turn GRO on {self.ifname(side)}")

    def _netns_argv(self, side: Side, argv: Sequence[str]) -> list[str]:
        if self._closed:
            raise ValueError(f"{self!r} is closed")
        if isinstance(argv, (str, bytes)):
            raise TypeError("argv must be a sequence of arguments, not a string")
        return [self._ip, "netns", "exec", self.netns(side), *map(str, argv)]

    def run(
        self, side: Side, argv: Sequence[str], **kwargs: Any
    ) -> subprocess.CompletedProcess[Any]:
        """Run ``argv`` inside namespace ``side`` (``ip netns exec``) and wait for it.

        Defaults differ from :func:`subprocess.run`: ``check=True``, ``text=True`` and output
        captured (unless ``stdout``/``stderr`` is given). A non-zero exit raises
        :class:`LabCommandError`, whose message includes the command and its stderr. Note that
        ``ip netns exec`` remounts /sys for the command, so sysfs shows the namespace's devices.
        """
        kwargs.setdefault("check", True)
        kwargs.setdefault("text", True)
        if not {"stdout", "stderr", "capture_output"} & kwargs.keys():
            kwargs["capture_output"] = True
        try:
            return subprocess.run(self._netns_argv(side, argv), **kwargs)
        except subprocess.CalledProcessError as exc:
            raise LabCommandError(exc.returncode, exc.cmd, exc.output, exc.stderr) from None

    def popen(self, side: Side, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` inside namespace ``side`` (``ip netns exec``); kwargs go to Popen.

        The process is terminated by :meth:`close` if it is still running then.
        """
        proc = subprocess.Popen(self._netns_argv(side, argv), **kwargs)
        self._children.append(proc)
        return proc

    # -- teardown --

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return self._closed

    def close(self) -> None:
        """Remove the veth and both namespaces; idempotent.

        Stops processes started with :meth:`popen`, deletes the veth pair (synchronously, which
        detaches XDP programs and unbinds AF_XDP sockets), then deletes each namespace, retrying
        briefly on EBUSY, and verifies that its ``/run/netns`` entry is gone.

        In a forked child it removes nothing (the lab is its parent's) and only marks this
        process's copy closed.

        Raises:
            RuntimeError: a namespace could not be removed (its name is in the message).
        """
        if os.getpid() != self._pid:
            self._closed = True
            return
        with self._close_lock, _critical():
            if self._closed:
                return
            self._stop_children()
            self._delete_veth()
            leftovers = [ns for ns in self._owned_netns if not _delete_netns(self._ip, ns)]
            # Only now: if this was interrupted (KeyboardInterrupt), atexit still sees the lab.
            self._closed = True
            with _state:
                _live_labs.discard(self)
            if leftovers:
                raise RuntimeError(f"could not remove network namespace(s): {', '.join(leftovers)}")

    def _stop_children(self) -> None:
        """Terminate (then kill) processes from :meth:`popen` that are still running."""
        for proc in self._children:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self._children.clear()

    def _delete_veth(self) -> None:
        """Delete the veth pair (both ends go together); absent namespaces or links are fine."""
        if self.ns_a in self._owned_netns and os.path.exists(f"{NETNS_DIR}/{self.ns_a}"):
            _run_ip([self._ip, "-n", self.ns_a, "link", "del", self.if_a])

    def __enter__(self) -> Lab:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = " [closed]" if self._closed else ""
        return (
            f"<Lab {self.ns_a}/{self.if_a} <-> {self.ns_b}/{self.if_b} "
            f"queues={self.queues} mtu={self.mtu}{state}>"
        )

    def summary(self) -> str:
        """A few lines describing the lab, for people (the ``lab`` entry point prints it)."""
        lines = [
            f"{side}: netns {self.netns(side)}  dev {self.ifname(side)}  "
            f"mac {self.mac(side)}  ip {self.ip(side)}/{self.prefix_len}"
            for side in SIDES
        ]
        lines.append(
            f"queues {self.queues}  mtu {self.mtu}  (enter with: ip netns exec <netns> ...)"
        )
        return "\n".join(lines)


def _unused_tag() -> str:
    """A random 8-hex-digit tag whose namespace names are not taken yet."""
    while True:
        tag = secrets.token_hex(4)
        if not any(os.path.exists(f"{NETNS_DIR}/{NAMESPACE_PREFIX}{tag}-{side}") for side in SIDES):
            return tag


def _run_ip(argv: list[str], input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run an ``ip`` command to its end, stdout and stderr captured: a KeyboardInterrupt waits
    until it has ended (one interrupted at the wrong moment would finish unseen)."""
    with _sigint_deferred():
        return subprocess.run(argv, input=input, capture_output=True, text=True, check=False)


def _run_checked(argv: list[str], input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``argv``; raise :class:`LabCommandError` (with stderr) when it fails."""
    done = _run_ip(argv, input)
    if done.returncode != 0:
        raise LabCommandError(done.returncode, argv, done.stdout, done.stderr)
    return done


def _delete_netns(ip: str, name: str, attempts: int = 50) -> bool:
    """Delete namespace ``name``, retrying on EBUSY; True when its /run/netns entry is gone."""
    path = f"{NETNS_DIR}/{name}"
    stderr = ""
    for _ in range(attempts):
        if not os.path.exists(path):
            return True
        done = _run_ip([ip, "netns", "delete", name])
        stderr = done.stderr.strip()
        if not os.path.exists(path):
            return True
        if "busy" not in stderr.lower():
            break  # a real error: retrying will not help
        time.sleep(0.02)
    print(f"afxdp.lab: ip netns delete {name}: {stderr}", file=sys.stderr)
    return False


def main(argv: Sequence[str] | None = None) -> int:
    """Build a lab, print it, keep it until Enter / Ctrl-C / end of input, then remove it."""
    parser = argparse.ArgumentParser(prog="afxdp-lab", description=main.__doc__)
    parser.add_argument("--queues", type=_int_in(1, 4096, "queues"), default=1)
    parser.add_argument("--mtu", type=_int_in(68, 65535, "mtu"), default=1500)
    args = parser.parse_args(argv)
    try:
        with Lab(queues=args.queues, mtu=args.mtu) as lab:
            print(lab.summary(), flush=True)
            print("press Enter or Ctrl-C to remove it", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                sys.stdin.readline()
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        # No privileges, no `ip`, a failed `ip` command: one line, not a traceback.
        text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        print(f"afxdp-lab: {' '.join(text.split())}", file=sys.stderr)
        return 1
    return 0


def _int_in(low: int, high: int, name: str) -> Callable[[str], int]:
    """An argparse type: an integer in low..high; the error names the value."""

    def int_in(text: str) -> int:
        try:
            value = int(text, 0)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid integer {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{name} must be in {low}..{high}, not {value}")
        return value

    return int_in


if __name__ == "__main__":
    sys.exit(main())
