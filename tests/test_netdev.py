"""afxdp.netdev and afxdp._native.Interface: the interface facts come from the Rust core.

Checked against ``ip -j link show`` (iproute2 asks rtnetlink, a different path from the core's
ioctls) on the lab's own veth and on the ``lo`` of a lab namespace: index, MTU, flags, up and
running; the queue count against the lab's ``numrxqueues``. The stdlib fallback of
:mod:`afxdp.netdev` (only without the compiled extension) must give the same facts.
"""

from __future__ import annotations

import errno
import importlib
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

# Installed, or loaded from the source tree by conftest.py (stdlib-only without the extension).
netdev = importlib.import_module("afxdp.netdev")

NETDEV_SOURCE = Path(__file__).resolve().parent.parent / "python" / "afxdp" / "netdev.py"

#: iproute2's names of the SIOCGIFFLAGS bits (print_link_flags in ip/ipaddress.c). It never prints
#: IFF_RUNNING (0x40): "NO-CARRIER" stands for up and not running. LOWER_UP, DORMANT and ECHO
#: (bits 16-18) are beyond what SIOCGIFFLAGS reports.
IP_FLAG_BITS = {
    "UP": 0x1,
    "BROADCAST": 0x2,
    "DEBUG": 0x4,
    "LOOPBACK": 0x8,
    "POINTOPOINT": 0x10,
    "NOTRAILERS": 0x20,
    "NOARP": 0x80,
    "PROMISC": 0x100,
    "ALLMULTI": 0x200,
    "MASTER": 0x400,
    "SLAVE": 0x800,
    "MULTICAST": 0x1000,
    "PORTSEL": 0x2000,
    "AUTOMEDIA": 0x4000,
    "DYNAMIC": 0x8000,
}
IFF_RUNNING = 0x40


def _native() -> ModuleType:
    return pytest.importorskip("afxdp._native")


def ip_link(lab: Any, side: str, ifname: str) -> dict[str, Any]:
    """``ip -j link show dev IFNAME`` inside the lab's namespace ``side``."""
    out = lab.run(side, ["ip", "-j", "link", "show", "dev", ifname]).stdout
    (entry,) = json.loads(out)
    assert isinstance(entry, dict)
    return entry


def assert_same_as_ip(iface: Any, shown: dict[str, Any]) -> None:
    """The core's facts (``afxdp._native.Interface`` or ``netdev.Interface``) equal iproute2's."""
    assert iface.index == shown["ifindex"]
    assert iface.mtu == shown["mtu"]
    named = {name for name in shown["flags"] if name in IP_FLAG_BITS}
    assert {name for name, bit in IP_FLAG_BITS.items() if iface.flags & bit} == named
    assert iface.up == ("UP" in shown["flags"])
    # Up and not running is what iproute2 prints as NO-CARRIER; down is never running.
    running = bool(iface.flags & IFF_RUNNING)
    assert running == (iface.up and "NO-CARRIER" not in shown["flags"])
    assert iface.flags < 0x10000  # the SIOCGIFFLAGS bits only


# --- unprivileged: names that cannot resolve ------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "shown"),  # the core quotes the name as Rust's {:?} does
    [
        ("afxdp-none0", '"afxdp-none0"'),
        ("x" * 15, '"xxxxxxxxxxxxxxx"'),
        ("", '""'),
        ("x" * 16, '"xxxxxxxxxxxxxxxx"'),
        ("a\0b", '"a\\0b"'),
        ("a/b", '"a/b"'),
        # An alias suffix: if_nametoindex resolved it to lo (it cuts ":x" off).
        ("lo:x", '"lo:x"'),
        ("lo\tx", '"lo\\tx"'),
    ],
)
def test_native_interface_unknown_name_is_enodev_naming_it(name: str, shown: str) -> None:
    with pytest.raises(OSError) as caught:
        _native().Interface(name)
    assert type(caught.value) is OSError and caught.value.errno == errno.ENODEV
    assert str(caught.value) == f"[Errno {errno.ENODEV}] no such network interface: {shown}"


def test_native_interface_name_must_be_str() -> None:
    with pytest.raises(TypeError):
        _native().Interface(b"lo")


@pytest.mark.parametrize("name", ["afxdp-none0", "x" * 16, "a\udcffb", "lo:x", "lo x"])
def test_netdev_unknown_name_is_enodev_naming_it(name: str) -> None:
    for query in (netdev.interface, netdev.link, netdev.attached_programs):
        with pytest.raises(OSError) as caught:
            query(name)
        assert caught.value.errno == errno.ENODEV
        assert str(caught.value) == f"[Errno {errno.ENODEV}] no such network interface: {name!r}"


@pytest.mark.privileged
def test_ethtool_queries_answer_none_for_a_name_no_interface_can_have(lab) -> None:
    # The ethtool ioctls cut an alias suffix (":x") off, as they cut the bytes past the 15th,
    # and answered for the interface whose name was left.
    with lab.enter("b"):
        assert netdev.driver_info(lab.if_b) is not None
        assert netdev.channels(lab.if_b) is not None
        for name in (f"{lab.if_b}:x", f"{lab.if_b}:0"):
            assert netdev.driver_info(name) is None
            assert netdev.channels(name) is None


def test_netdev_asks_the_core_when_the_extension_is_there() -> None:
    assert netdev._core_interface is _native().Interface


# --- privileged: the lab's veth and lo, against iproute2 -----------------------------------------


@pytest.mark.privileged
def test_native_facts_equal_ip_link_for_a_veth(lab) -> None:
    with lab.enter("b"):
        iface = _native().Interface(lab.if_b)
    assert iface.name == lab.if_b and iface.mtu == lab.mtu and iface.up
    assert iface.flags & IFF_RUNNING  # the lab waits for IFF_RUNNING
    assert_same_as_ip(iface, ip_link(lab, "b", lab.if_b))
    assert iface.index == lab.ifindex("b")
    assert repr(iface) == (
        f'Interface(name="{lab.if_b}", index={iface.index}, mtu={lab.mtu}, '
        f"flags={iface.flags:#x}, up=True, queue_count=1, rx_queues=1, tx_queues=1)"
    )


@pytest.mark.privileged
def test_native_facts_follow_the_link_down_and_a_new_mtu(lab) -> None:
    native = _native()
    lab.run("b", ["ip", "link", "set", "dev", lab.if_b, "down", "mtu", "1280"])
    with lab.enter("b"):
        iface = native.Interface(lab.if_b)
    assert not iface.up and not iface.flags & IFF_RUNNING and iface.mtu == 1280
    assert_same_as_ip(iface, ip_link(lab, "b", lab.if_b))
    with lab.enter("b"), pytest.raises(OSError) as caught:
        netdev.check_interface(lab.if_b)
    assert caught.value.errno == errno.ENETDOWN


@pytest.mark.privileged
def test_native_facts_of_lo_in_a_lab_namespace(lab) -> None:
    with lab.enter("a"):
        iface = _native().Interface("lo")
    assert iface.index == 1 and iface.up and iface.flags & IP_FLAG_BITS["LOOPBACK"]
    # Loopback has no ETHTOOL_GCHANNELS: the core says 1.
    assert iface.queue_count == iface.rx_queues == iface.tx_queues == 1
    assert_same_as_ip(iface, ip_link(lab, "a", "lo"))


@pytest.mark.privileged
@pytest.mark.parametrize("queues", [1, 4])
def test_native_queue_count_is_the_veth_queue_count(lab_factory, queues: int) -> None:
    lab = lab_factory(queues=queues)
    for side in ("a", "b"):
        with lab.enter(side):
            iface = _native().Interface(lab.ifname(side))
            assert iface.queue_count == iface.rx_queues == iface.tx_queues == queues


@pytest.mark.privileged
def test_unknown_name_is_the_error_socket_raises(lab) -> None:
    afxdp = pytest.importorskip("afxdp")
    with lab.enter("b"):
        with pytest.raises(OSError) as from_socket:
            afxdp.Socket(lab.if_a, 0)  # the peer's name: not in this namespace
        with pytest.raises(OSError) as from_interface:
            _native().Interface(lab.if_a)
    assert type(from_interface.value) is type(from_socket.value)
    assert from_interface.value.errno == from_socket.value.errno == errno.ENODEV
    assert str(from_interface.value) == str(from_socket.value)
    assert f'"{lab.if_a}"' in str(from_interface.value)


@pytest.mark.privileged
def test_netdev_facts_are_the_core_facts(lab) -> None:
    native = _native()
    with lab.enter("b"):
        core = native.Interface(lab.if_b)
        found = netdev.interface(lab.if_b)
        linked = netdev.link(lab.if_b)
        running = netdev.is_running(lab.if_b)
    assert (found.name, found.index, found.mtu, found.flags) == (
        core.name,
        core.index,
        core.mtu,
        core.flags,
    )
    assert (linked.ifindex, linked.mtu, linked.flags) == (core.index, core.mtu, core.flags)
    assert running and linked.running and found.up
    assert linked.mac == lab.mac_b and linked.kind == "veth"


_FALLBACK_CHILD = """
import importlib.util, json, sys
sys.modules["afxdp._native"] = None  # the compiled extension cannot be imported
spec = importlib.util.spec_from_file_location("afxdp.netdev", sys.argv[1])
netdev = importlib.util.module_from_spec(spec)
sys.modules["afxdp.netdev"] = netdev
spec.loader.exec_module(netdev)
assert netdev._core_interface is None
found = netdev.interface(sys.argv[2])
linked = netdev.link(sys.argv[2])
print(json.dumps({
    "interface": [found.name, found.index, found.mtu, found.flags],
    "link": [linked.ifindex, linked.mtu, linked.flags],
    "running": netdev.is_running(sys.argv[2]),
}))
"""


@pytest.mark.privileged
def test_stdlib_fallback_without_the_extension_gives_the_same_facts(lab) -> None:
    """Without afxdp._native (the lab loaded from a source tree), netdev reads rtnetlink; the
    facts are the core's, flags included (cut to the same 16 bits)."""
    with lab.enter("b"):
        core = _native().Interface(lab.if_b)
    child = lab.run(
        "b",
        [sys.executable, "-c", _FALLBACK_CHILD, str(NETDEV_SOURCE), lab.if_b],
        timeout=30,
    )
    got = json.loads(child.stdout)
    assert got["interface"] == [core.name, core.index, core.mtu, core.flags]
    assert got["link"] == [core.index, core.mtu, core.flags]
    assert got["running"] is True


@pytest.mark.privileged
def test_stdlib_fallback_reports_enodev_naming_the_interface(lab) -> None:
    child = lab.run(
        "b",
        [sys.executable, "-c", _FALLBACK_CHILD, str(NETDEV_SOURCE), "afxdp-none0"],
        check=False,
        timeout=30,
    )
    assert child.returncode == 1
    assert child.stderr.strip().splitlines()[-1] == (
        f"OSError: [Errno {errno.ENODEV}] no such network interface: 'afxdp-none0'"
    )
