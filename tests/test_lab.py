"""Tests of afxdp.lab, the private two-namespace veth lab.

Most tests are privileged (see the policy in conftest.py); the option and privilege checks at the
end run anywhere.
"""

from __future__ import annotations

import inspect
import json
import os
import random
import select
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from afxdp.lab import IFINDEX_A, IFINDEX_B, NETNS_DIR, Lab, LabCommandError, require_privileges
from afxdp.packet import dns_query, dns_query_frame, ipv4_udp
from afxdp.testing import numbered_frame

ETH_P_ALL = 0x0003
LAB_SOURCE = inspect.getfile(Lab)


def thread_netns_inode() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


def existing_namespaces() -> set[str]:
    return set(os.listdir(NETNS_DIR)) if os.path.isdir(NETNS_DIR) else set()


def link_details(lab: Lab, side: str) -> dict[str, Any]:
    out = lab.run(side, ["ip", "-d", "-j", "link", "show", "dev", lab.ifname(side)]).stdout
    (details,) = json.loads(out)
    return details


# --- creation ------------------------------------------------------------------------------------


@pytest.mark.privileged
def test_creates_two_namespaces_joined_by_veth(lab: Lab) -> None:
    assert {lab.ns_a, lab.ns_b} <= existing_namespaces()
    assert lab.ns_a.startswith("afxdp-") and lab.ns_b.startswith("afxdp-")
    assert len(lab.if_a) <= 15 and len(lab.if_b) <= 15
    for side, ifname, mac in (("a", lab.if_a, lab.mac_a), ("b", lab.if_b, lab.mac_b)):
        details = link_details(lab, side)
        assert details["ifname"] == ifname
        assert details["address"] == mac
        assert details["mtu"] == 1500
        assert details["operstate"] == "UP"
        assert details["qdisc"] == "noqueue"
        assert details["linkinfo"]["info_kind"] == "veth"
        assert details["num_rx_queues"] == details["num_tx_queues"] == 1
    assert (lab.mac_a, lab.mac_b) == ("02:00:00:00:00:01", "02:00:00:00:00:02")
    assert (lab.ip_a, lab.ip_b) == ("10.11.0.1", "10.11.0.2")
    addresses = lab.run("a", ["ip", "-4", "-o", "addr", "show", "dev", lab.if_a]).stdout
    assert "10.11.0.1/24" in addresses
    with pytest.raises(LabCommandError):
        lab.run("b", ["ip", "link", "show", "dev", lab.if_a])  # each end only in its own netns
    assert lab.ns_a in repr(lab) and "[closed]" not in repr(lab)


@pytest.mark.privileged
def test_options_queues_and_mtu(lab_factory: Callable[..., Lab]) -> None:
    lab = lab_factory(queues=4, mtu=3000)
    for side in ("a", "b"):
        details = link_details(lab, side)
        assert details["mtu"] == 3000
        assert details["num_rx_queues"] == details["num_tx_queues"] == 4
        queues = lab.run(side, ["ls", f"/sys/class/net/{lab.ifname(side)}/queues"]).stdout.split()
        assert sorted(queues) == [f"{kind}-{q}" for kind in ("rx", "tx") for q in range(4)]


@pytest.mark.privileged
def test_ping_a_to_b(lab: Lab) -> None:
    if shutil.which("ping"):
        argv = ["ping", "-c1", "-W2", lab.ip_b]
    else:  # iputils-ping is not always installed: send one ICMP echo from Python instead
        argv = [sys.executable, "-c", ICMP_ECHO_SCRIPT, lab.ip_b]
    done = lab.run("a", argv, timeout=10)
    assert done.returncode == 0, done.stdout + done.stderr


ICMP_ECHO_SCRIPT = textwrap.dedent("""
    import socket, struct, sys
    def checksum(data):
        total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
        total = (total & 0xffff) + (total >> 16)
        return ~(total + (total >> 16)) & 0xffff
    body = struct.pack("!HH", 0x4242, 1) + b"afxdp-lab"
    request = struct.pack("!BBH", 8, 0, checksum(b"\\x08\\x00\\x00\\x00" + body + b"\\x00")) + body
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    s.settimeout(2)
    s.sendto(request, (sys.argv[1], 0))
    while True:
        reply = s.recv(2048)[20:]
        if reply[0] == 0 and reply[4:] == body:
            print("echo reply from", sys.argv[1])
            break
""")


@pytest.mark.slow
@pytest.mark.privileged
def test_ipv6_disabled_and_wire_silent(lab: Lab) -> None:
    for side in ("a", "b"):
        with lab.enter(side):
            for conf in ("all", "default", lab.ifname(side)):
                with open(f"/proc/sys/net/ipv6/conf/{conf}/disable_ipv6") as knob:
                    assert knob.read().strip() == "1", (side, conf)
        assert lab.run(side, ["ip", "-6", "-o", "addr", "show"]).stdout.strip() == ""
    with lab.enter("b"):
        capture = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    with capture:
        capture.bind((lab.if_b, 0))
        # No DAD, RS, MLD, ARP or anything else arrives on an idle lab...
        assert frames_within(capture, 1.5) == []
        # ...and the capture would have seen IPv6 chatter had IPv6 been on (positive control).
        with lab.enter("a"), open(f"/proc/sys/net/ipv6/conf/{lab.if_a}/disable_ipv6", "w") as knob:
            knob.write("0")
        seen = frames_within(capture, 3.0, stop_after_first=True)
        assert seen and seen[0][12:14] == b"\x86\xdd"


def frames_within(
    sock: socket.socket, seconds: float, stop_after_first: bool = False
) -> list[bytes]:
    frames: list[bytes] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if select.select([sock], [], [], left)[0]:
            frames.append(sock.recv(65535))
            if stop_after_first:
                break
    return frames


@pytest.mark.privileged
def test_static_neighbours(lab_factory: Callable[..., Lab]) -> None:
    lab = lab_factory()
    assert "PERMANENT" in lab.run("a", ["ip", "neigh", "show", lab.ip_b]).stdout
    assert lab.mac_b in lab.run("a", ["ip", "neigh", "show", lab.ip_b]).stdout
    assert lab.mac_a in lab.run("b", ["ip", "neigh", "show", lab.ip_a]).stdout
    bare = lab_factory(static_neighbours=False)
    assert bare.run("a", ["ip", "neigh", "show"]).stdout.strip() == ""


# --- entering namespaces -------------------------------------------------------------------------


@pytest.mark.privileged
def test_enter_switches_only_the_current_thread(lab: Lab) -> None:
    outside = thread_netns_inode()
    with pytest.raises(OSError):
        socket.if_nametoindex(lab.if_a)
    other_thread_inode: list[int] = []
    go, done = threading.Event(), threading.Event()

    def other_thread() -> None:
        go.wait(5)
        other_thread_inode.append(thread_netns_inode())
        done.set()

    worker = threading.Thread(target=other_thread)
    worker.start()
    with lab.enter("a") as entered:
        assert entered is lab
        inside_a = thread_netns_inode()
        assert inside_a != outside
        assert socket.if_nametoindex(lab.if_a) == IFINDEX_A
        go.set()
        done.wait(5)
        with lab.enter("b"):  # nesting works and restores the outer namespace
            inside_b = thread_netns_inode()
            assert socket.if_nametoindex(lab.if_b) == IFINDEX_B
            with pytest.raises(OSError):
                socket.if_nametoindex(lab.if_a)
        assert thread_netns_inode() == inside_a
    worker.join()
    assert len({outside, inside_a, inside_b}) == 3
    assert other_thread_inode == [outside]
    assert thread_netns_inode() == outside
    assert lab.ifindex("a") == IFINDEX_A
    with pytest.raises(OSError):
        socket.if_nametoindex(lab.if_a)


@pytest.mark.privileged
def test_enter_restores_on_exception(lab: Lab) -> None:
    outside = thread_netns_inode()
    with pytest.raises(ZeroDivisionError), lab.enter("b"):
        assert thread_netns_inode() != outside
        1 / 0  # noqa: B018
    assert thread_netns_inode() == outside


@pytest.mark.privileged
def test_sockets_stay_in_their_namespace(lab: Lab) -> None:
    with lab.enter("b"):
        receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with lab.enter("a"):
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with receiver, sender:  # used from outside both namespaces
        receiver.bind((lab.ip_b, 9000))
        receiver.settimeout(2)
        sender.sendto(b"across the veth", (lab.ip_b, 9000))
        data, (source, _) = receiver.recvfrom(100)
    assert (data, source) == (b"across the veth", lab.ip_a)


@pytest.mark.privileged
def test_frames_built_by_packet_module_pass_kernel_checks(lab: Lab) -> None:
    """The receiving kernel verifies IPv4 and UDP checksums, so it is an independent oracle."""
    with lab.enter("b"):
        receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        dns_server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with lab.enter("a"):
        injector = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        injector.bind((lab.if_a, 0))
    with receiver, dns_server, injector:
        receiver.bind((lab.ip_b, 9000))
        dns_server.bind((lab.ip_b, 53))
        receiver.settimeout(2)
        dns_server.settimeout(2)
        macs_ips = (lab.mac_a, lab.mac_b, lab.ip_a, lab.ip_b)

        good = numbered_frame(7, 1000, *macs_ips)
        injector.send(good)
        assert receiver.recv(2000) == good[42:]

        bad = bytearray(numbered_frame(8, 200, *macs_ips))
        bad[-1] ^= 0xFF  # payload no longer matches the UDP checksum: the kernel must drop it
        injector.send(bad)
        injector.send(numbered_frame(9, 200, *macs_ips))
        assert receiver.recv(2000)[8:16] == (9).to_bytes(8, "big")

        short = ipv4_udp(*macs_ips[:2], *macs_ips[2:], 40000, 9000, b"abc")
        assert len(short) == 60
        injector.send(short)
        assert receiver.recv(2000) == b"abc"  # padding trimmed by the IPv4 total length

        injector.send(dns_query_frame(*macs_ips, src_port=40001, name="example.net", txid=77))
        message, (source, port) = dns_server.recvfrom(2000)
        assert message == dns_query("example.net", "A", txid=77)
        assert (source, port) == (lab.ip_a, 40001)


# --- commands ------------------------------------------------------------------------------------


@pytest.mark.privileged
def test_run_reports_command_and_stderr(lab: Lab) -> None:
    assert lab.run("b", ["ip", "-o", "link", "show", "dev", lab.if_b]).stdout.startswith(
        f"{IFINDEX_B}: {lab.if_b}@"
    )
    with pytest.raises(LabCommandError) as caught:
        lab.run("a", ["sh", "-c", "echo something broke >&2; exit 3"])
    assert caught.value.returncode == 3
    assert "something broke" in str(caught.value) and "exit 3" in str(caught.value)
    assert isinstance(caught.value, subprocess.CalledProcessError)
    assert lab.run("a", ["false"], check=False).returncode == 1
    with pytest.raises(ValueError):
        lab.run("c", ["true"])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        lab.run("a", "true")


@pytest.mark.privileged
def test_popen_runs_inside_and_is_stopped_by_close(lab_factory: Callable[..., Lab]) -> None:
    lab = lab_factory()
    proc = lab.popen(
        "b",
        ["sh", "-c", f"ip -o link show dev {lab.if_b}; exec sleep 60"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert lab.if_b in proc.stdout.readline()
    lab.close()
    assert proc.poll() is not None
    proc.stdout.close()


# --- teardown ------------------------------------------------------------------------------------


@pytest.mark.privileged
def test_close_removes_namespaces_and_is_idempotent(privileged: None) -> None:
    lab = Lab()
    names = {lab.ns_a, lab.ns_b}
    assert names <= existing_namespaces()
    lab.close()
    assert not names & existing_namespaces()
    assert lab.closed and "[closed]" in repr(lab)
    lab.close()
    with pytest.raises(ValueError), lab.enter("a"):
        pass
    with pytest.raises(ValueError):
        lab.run("a", ["true"])


@pytest.mark.privileged
def test_exception_inside_with_still_removes_everything(privileged: None) -> None:
    names: set[str] = set()
    with pytest.raises(RuntimeError, match="boom"), Lab() as lab:
        names = {lab.ns_a, lab.ns_b}
        with lab.enter("a"):
            raise RuntimeError("boom")
    assert names and not names & existing_namespaces()


@pytest.mark.privileged
def test_close_with_a_thread_still_inside(privileged: None) -> None:
    """A thread (or socket) inside keeps the namespace alive, but its name and the veth go."""
    lab = Lab()
    with lab.enter("a"):
        lab.close()
        with pytest.raises(OSError):
            socket.if_nametoindex(lab.if_a)
    assert not {lab.ns_a, lab.ns_b} & existing_namespaces()


@pytest.mark.privileged
def test_failed_creation_removes_only_what_it_created(
    privileged: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If namespace b's name turns out to be taken, a is removed and b is never deleted."""
    module = sys.modules[Lab.__module__]
    tag = os.urandom(4).hex()
    taken, created = f"afxdp-{tag}-b", f"afxdp-{tag}-a"
    real_run_checked, real_delete = module._run_checked, module._delete_netns
    deleted: list[str] = []

    def run_checked(argv: list[str], input: str | None = None) -> Any:
        if argv[1:] == ["netns", "add", taken]:  # what `ip` says when the name exists
            raise LabCommandError(
                1, argv, "", f'Cannot create namespace file "/run/netns/{taken}": File exists'
            )
        return real_run_checked(argv, input)

    def delete_netns(ip: str, name: str) -> bool:
        deleted.append(name)
        return bool(real_delete(ip, name))

    monkeypatch.setattr(module, "_unused_tag", lambda: tag)
    monkeypatch.setattr(module, "_run_checked", run_checked)
    monkeypatch.setattr(module, "_delete_netns", delete_netns)
    with pytest.raises(LabCommandError, match=f"netns add {taken}.*File exists"):
        Lab()
    assert deleted == [created]
    assert created not in existing_namespaces()


CHILD_PRELUDE = textwrap.dedent(f"""
    import importlib.util, signal, sys, time
    # A shell without job control starts background jobs with SIGINT ignored; undo that here.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    spec = importlib.util.spec_from_file_location("afxdp.lab", {LAB_SOURCE!r})
    lab_module = importlib.util.module_from_spec(spec)
    sys.modules["afxdp.lab"] = lab_module
    spec.loader.exec_module(lab_module)
""")


def lab_child(script: str) -> subprocess.Popen[str]:
    """A Python process running CHILD_PRELUDE + `script`, its stdin, stdout and stderr piped
    (text)."""
    return subprocess.Popen(
        [sys.executable, "-c", CHILD_PRELUDE + script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def reap(child: subprocess.Popen[str], names: set[str]) -> set[str]:
    """Kills `child` if it still runs, then removes and returns those of `names` (its lab's
    namespaces) that are still there: only after a failure, which the caller asserts."""
    if child.poll() is None:
        child.kill()
        child.wait()
    leftover = names & existing_namespaces()
    for name in leftover:
        subprocess.run(["ip", "netns", "delete", name], check=False)
    return leftover


# Each child waits on stdin rather than sleeping, so it also ends when this process dies.
CHILD_SCRIPTS = {
    "sigterm": "lab = lab_module.Lab()\nprint(lab.ns_a, lab.ns_b, flush=True)\n"
    "sys.stdin.readline()\n",
    "sigint": "with lab_module.Lab() as lab:\n"
    "    print(lab.ns_a, lab.ns_b, flush=True)\n    sys.stdin.readline()\n",
    "atexit": "lab = lab_module.Lab()\nprint(lab.ns_a, lab.ns_b, flush=True)\n"
    "sys.stdin.readline()\n",
    # The lab made in another thread: the handler must have been installed all the same (it
    # can only be installed from the main thread).
    "sigterm-thread": "import threading\nlabs = []\n"
    "made = threading.Thread(target=lambda: labs.append(lab_module.Lab()))\n"
    "made.start()\nmade.join()\nprint(labs[0].ns_a, labs[0].ns_b, flush=True)\n"
    "sys.stdin.readline()\n",
}


@pytest.mark.privileged
@pytest.mark.parametrize("ending", ["sigterm", "sigint", "atexit", "sigterm-thread"])
def test_process_ending_removes_labs(privileged: None, ending: str) -> None:
    names: set[str] = set()
    with lab_child(CHILD_SCRIPTS[ending]) as child:
        try:
            assert child.stdout is not None
            names = set(child.stdout.readline().split())
            assert len(names) == 2 and names <= existing_namespaces()
            if ending.startswith("sigterm"):
                child.send_signal(signal.SIGTERM)
            elif ending == "sigint":
                child.send_signal(signal.SIGINT)
            _, stderr = child.communicate(input="\n" if ending == "atexit" else None, timeout=20)
        finally:
            leftover = reap(child, names)
    expected = {"sigint": -signal.SIGINT, "atexit": 0}.get(ending, -signal.SIGTERM)
    assert child.returncode == expected, stderr
    assert not leftover


# Says when it is ready, then makes a lab when told to ("go"), printing its tag first.
INTERRUPTED_BUILD = """
pick = lab_module._unused_tag
def tagged():
    tag = pick()
    print(tag, flush=True)
    return tag
lab_module._unused_tag = tagged
print("ready", flush=True)
sys.stdin.readline()
lab_module.Lab()
"""


@pytest.mark.privileged
def test_a_lab_interrupted_while_it_is_made_leaves_no_namespace(privileged: None) -> None:
    # A KeyboardInterrupt landing while subprocess.run was starting `ip netns add` (after the
    # fork, before run() had the process to kill or wait for) left `ip` running: close() found
    # no namespace yet and counted it gone, then `ip` made it. Interrupts at random moments of
    # the first milliseconds, one child process each (before the fix, about 1 in 7 leaked).
    rng = random.Random(1414)
    leaked: list[str] = []
    for _ in range(40):
        tag = ""
        with lab_child(INTERRUPTED_BUILD) as child:
            try:
                assert child.stdin is not None and child.stdout is not None
                assert child.stdout.readline() == "ready\n"
                child.stdin.write("go\n")
                child.stdin.flush()
                time.sleep(rng.uniform(0, 0.004))
                child.send_signal(signal.SIGINT)
                tag = child.stdout.readline().strip()
                child.communicate(timeout=20)
            finally:
                reap(child, set())
        time.sleep(0.15)  # an orphaned `ip netns add` would have finished by now
        leaked += reap(child, {f"afxdp-{tag}-a", f"afxdp-{tag}-b"} if tag else set())
    assert not leaked, f"{len(leaked)} namespace(s) left by interrupted labs: {leaked}"


@pytest.mark.privileged
def test_a_keyboardinterrupt_never_leaves_the_thread_in_the_labs_namespace(lab: Lab) -> None:
    # The interrupt could land after setns() into the lab's namespace and before the
    # try/finally that switches back (or in the switch back): the thread stayed there, and
    # kept the namespace alive after close(). One forked child per interrupt, each entering
    # and leaving in a loop until the SIGINT.
    rng = random.Random(1415)
    stuck = 0
    for _ in range(40):
        ready, report = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover (the child)
            code = 1
            try:
                os.close(ready)
                own = thread_netns_inode()
                os.write(report, b"r")
                try:
                    while True:
                        with lab.enter("b"):
                            pass
                except KeyboardInterrupt:
                    pass
                code = 0 if thread_netns_inode() == own else 3
            finally:
                os._exit(code)
        os.close(report)
        try:
            assert os.read(ready, 1) == b"r"
            time.sleep(rng.uniform(0, 0.02))
            os.kill(pid, signal.SIGINT)
        finally:
            os.close(ready)
            _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        assert code in (0, 3), f"the child failed otherwise: {code}"
        stuck += code == 3
    assert not stuck, f"{stuck} of 40 interrupts left the thread in the lab's namespace"


FORKING_CHILD = """
import multiprocessing, os
lab = lab_module.Lab()
print(lab.ns_a, lab.ns_b, flush=True)
pid = os.fork()
if pid == 0:
    lab.close()  # the child's copy: must remove nothing
    sys.exit(0)  # the child's exit handlers: must remove nothing either
os.waitpid(pid, 0)
worker = multiprocessing.get_context("fork").Process(target=time.sleep, args=(10,))
worker.start()
time.sleep(0.3)
worker.terminate()  # SIGTERM: the inherited handler must not remove the parent's lab
worker.join(5)
print(worker.exitcode, flush=True)
sys.stdin.readline()
lab.close()
"""


@pytest.mark.privileged
def test_a_forked_child_never_removes_its_parents_lab(privileged: None) -> None:
    names: set[str] = set()
    with lab_child(FORKING_CHILD) as child:
        try:
            assert child.stdout is not None
            names = set(child.stdout.readline().split())
            assert len(names) == 2, child.stderr.read() if child.stderr else ""
            exitcode = child.stdout.readline().strip()
            assert exitcode == str(-signal.SIGTERM), exitcode
            assert names <= existing_namespaces(), "a child removed the parent's lab"
            _, stderr = child.communicate(input="\n", timeout=20)
        finally:
            leftover = reap(child, names)
    assert child.returncode == 0, stderr
    assert not leftover


# --- unprivileged --------------------------------------------------------------------------------


def test_invalid_options_are_rejected_before_anything_is_created() -> None:
    with pytest.raises(ValueError):
        Lab(queues=0)
    with pytest.raises(ValueError):
        Lab(mtu=67)


def test_lab_command_without_privileges_is_one_line() -> None:
    """``python -m afxdp.lab`` without capabilities (setpriv drops them all, as for a user):
    one line on stderr naming what is missing, exit status 1, no traceback."""
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    out = subprocess.run(
        ["setpriv", "--bounding-set=-all", "--inh-caps=-all", sys.executable, "-m", "afxdp.lab"],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 1, out
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "CAP_NET_ADMIN" in lines[0], out.stderr


@pytest.mark.parametrize(("args", "named"), [(["--queues", "0"], "0"), (["--mtu", "67"], "67")])
def test_lab_command_bad_option_is_a_usage_error(args: list[str], named: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "afxdp.lab", *args],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 2, out
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].endswith(f"not {named}"), out.stderr


def test_require_privileges_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    module = sys.modules[Lab.__module__]
    monkeypatch.setattr(module, "_effective_capabilities", lambda: 1 << 12)  # NET_ADMIN only
    with pytest.raises(
        PermissionError, match=r"CAP_NET_ADMIN \+ CAP_SYS_ADMIN.*missing: CAP_SYS_ADMIN\)"
    ):
        require_privileges()
    with pytest.raises(PermissionError):
        Lab()
    monkeypatch.setattr(module, "_find_ip", lambda: None)
    with pytest.raises(RuntimeError, match="'ip' command is missing"):
        require_privileges()
