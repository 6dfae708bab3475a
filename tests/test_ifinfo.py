"""afxdp.ifinfo: what `afxdp info IFACE` reports, through afxdp.netdev (rtnetlink, ethtool
ioctls, netdev genetlink, bpf).

Unprivileged tests read ``lo`` (present in every network namespace) and unknown names; privileged
ones read the lab's veth end inside namespace ``b``, with and without an afxdp.Program attached.
What veth reports on kernel 6.18 (checked here): driver "veth" version "1.0", no bus, ethtool
channels rx/tx = the lab's queue count and combined 0, XDP features basic, redirect, rx-sg (plus
ndo-xmit and ndo-xmit-sg only while the *peer* has a native XDP program), never xsk-zerocopy; RX
metadata timestamp, hash, vlan-tag. ``lo``: no driver info, no channels, one queue (from
rtnetlink), no XDP features at all.
"""

from __future__ import annotations

import errno
import importlib
import json
from types import ModuleType

import pytest

# Installed, or loaded from the source tree by conftest.py (both are stdlib-only).
ifinfo = importlib.import_module("afxdp.ifinfo")
netdev = importlib.import_module("afxdp.netdev")


def _afxdp() -> ModuleType:
    return pytest.importorskip("afxdp")


# --- unprivileged: lo and unknown names ----------------------------------------------------------


def test_lo_is_ifindex_1_up_and_running() -> None:
    info = ifinfo.interface_info("lo")
    assert info.name == "lo" and info.ifindex == 1
    assert info.mtu >= 68
    assert info.up and info.running and info.loopback
    assert info.mac == "00:00:00:00:00:00"


def test_lo_has_no_driver_info_no_xdp_features_and_one_queue() -> None:
    info = ifinfo.interface_info("lo")
    assert info.driver is None or isinstance(info.driver.driver, str)  # loopback has no drvinfo
    assert info.channels is None
    assert (info.rx_queues, info.tx_queues) == (1, 1)
    assert info.queues_source in ("netlink", "sysfs")
    if info.xdp_features is not None:  # kernel >= 6.3
        assert info.xdp_features.actions == ()
        assert info.native_xdp is False and info.zerocopy is False
        assert info.advice.startswith("no native XDP")
    assert info.programs == ()


def test_format_info_of_lo_states_the_facts() -> None:
    info = ifinfo.interface_info("lo")
    text = ifinfo.format_info(info)
    assert text.splitlines()[0].startswith("lo (ifindex 1")
    assert f"mtu {info.mtu}" in text and "up, running" in text
    assert "driver:" in text and "queues:     rx 1  tx 1" in text
    assert "programs:   none attached" in text
    assert f"advice:     {info.advice}" in text


def test_as_dict_is_json_and_carries_derived_fields() -> None:
    data = ifinfo.interface_info("lo").as_dict()
    assert json.loads(json.dumps(data))["ifindex"] == 1
    assert data["up"] is True and isinstance(data["advice"], str)


@pytest.mark.parametrize("name", ["afxdp-none0", "x" * 15, "", "x" * 16, "a/b", "a\0b"])
def test_unknown_interface_raises_enodev(name: str) -> None:
    with pytest.raises(OSError) as caught:
        ifinfo.interface_info(name)
    assert caught.value.errno == errno.ENODEV
    assert str(caught.value) == f"[Errno {errno.ENODEV}] no such network interface: {name!r}"


def test_interface_name_must_be_str() -> None:
    with pytest.raises(TypeError):
        ifinfo.interface_info(b"lo")


def test_optional_queries_degrade_to_none(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object) -> None:
        raise OSError(errno.EPERM, "not allowed")

    monkeypatch.setattr(netdev, "_genl_family_id", fail)
    monkeypatch.setattr(netdev, "_ethtool", lambda *args: None)
    info = ifinfo.interface_info("lo")
    assert info.xdp_features is None and info.native_xdp is None and info.zerocopy is None
    assert info.driver is None and info.channels is None
    assert info.rx_queues == 1 and info.queues_source == "netlink"
    assert "XDP features unknown" in info.advice
    assert "features unknown" in ifinfo.format_info(info)


def test_kernel_without_netdev_family_gives_none(monkeypatch: pytest.MonkeyPatch) -> None:
    real_request = netdev._genl_request

    def no_family(family: int, cmd: int, version: int, attrs: bytes) -> dict[int, bytes]:
        if family == netdev._GENL_ID_CTRL:
            raise OSError(errno.ENOENT, "no such family")
        return real_request(family, cmd, version, attrs)

    monkeypatch.setattr(netdev, "_genl_request", no_family)
    assert netdev._genl_family_id(b"netdev") is None
    assert ifinfo.interface_info("lo").xdp_features is None


def _made_up(**changes: object) -> object:
    """An InterfaceInfo of a made-up NIC (for the advice and format logic)."""
    features = ifinfo.XdpFeatures(
        mask=0x2F,
        actions=("basic", "redirect", "ndo-xmit", "xsk-zerocopy", "rx-sg"),
        zc_max_segs=1,
    )
    fields: dict[str, object] = dict(
        name="eth9",
        ifindex=7,
        mac="02:00:00:00:00:09",
        mtu=1500,
        flags=0x1 | 0x40,
        operstate="up",
        driver=ifinfo.DriverInfo("ice", "6.18", "4.40", "0000:3b:00.0"),
        channels=ifinfo.Channels(0, 0, 1, 64, 0, 0, 1, 8),
        rx_queues=8,
        tx_queues=8,
        queues_source="ethtool",
        xdp_features=features,
    )
    fields.update(changes)
    return ifinfo.InterfaceInfo(**fields)


def test_advice_for_each_kind_of_device() -> None:
    assert _made_up().advice == "native XDP with AF_XDP zero-copy"
    copy_only = ifinfo.XdpFeatures(mask=0x3, actions=("basic", "redirect"))
    assert _made_up(xdp_features=copy_only).advice == (
        "native XDP, copy mode only (no AF_XDP zero-copy)"
    )
    no_redirect = ifinfo.XdpFeatures(mask=0x1, actions=("basic",))
    assert "AF_XDP needs generic" in _made_up(xdp_features=no_redirect).advice
    down = _made_up(flags=0, operstate="down", programs=(ifinfo.XdpProgram("native", 5, "x"),))
    assert down.advice == (
        "native XDP with AF_XDP zero-copy; interface is down (ip link set eth9 up); "
        "an XDP program is already attached (native id 5)"
    )


def test_format_info_of_a_zero_copy_nic() -> None:
    text = ifinfo.format_info(
        _made_up(
            programs=(
                ifinfo.XdpProgram("native", 12, None),
                ifinfo.XdpProgram("generic", 13, "afxdp_redirect"),
            )
        )
    )
    assert "driver:     ice  version 6.18  firmware 4.40  bus 0000:3b:00.0" in text
    assert "combined 8/64" in text and "queues:     rx 8  tx 8" in text
    assert "xsk-zerocopy" in text and "zero-copy:  yes (zc max segs 1)" in text
    assert "native id 12 (name needs CAP_SYS_ADMIN)" in text
    assert "generic id 13 'afxdp_redirect'" in text


def test_feature_bits_are_named_as_in_netdev_yaml() -> None:
    assert netdev._names(0x7F | 0x100, netdev._XDP_ACT_NAMES) == (
        "basic",
        "redirect",
        "ndo-xmit",
        "xsk-zerocopy",
        "hw-offload",
        "rx-sg",
        "ndo-xmit-sg",
        "bit-8",
    )


# --- privileged: the lab's veth ------------------------------------------------------------------


def veth_info(lab) -> object:
    with lab.enter("b"):
        return ifinfo.interface_info(lab.if_b)


@pytest.mark.privileged
def test_veth_driver_mac_and_queues(lab_factory) -> None:
    lab = lab_factory(queues=4)
    info = veth_info(lab)
    assert info.name == lab.if_b and info.ifindex == lab.ifindex("b")
    assert info.mac == lab.mac_b and info.mtu == lab.mtu
    assert info.up and info.running and info.operstate == "up"
    assert info.kind == "veth"
    assert info.driver is not None and info.driver.driver == "veth"
    assert info.channels is not None
    assert (info.channels.rx, info.channels.tx, info.channels.combined) == (4, 4, 0)
    assert (info.channels.max_rx, info.channels.max_tx) == (4, 4)
    assert (info.rx_queues, info.tx_queues, info.queues_source) == (4, 4, "ethtool")


@pytest.mark.privileged
def test_veth_xdp_features_native_copy_mode_only(lab) -> None:
    info = veth_info(lab)
    features = info.xdp_features
    assert features is not None, "kernel 6.18 has the netdev genetlink family"
    # veth declares ndo-xmit only while its peer has a native XDP program (see the next test).
    assert features.actions == ("basic", "redirect", "rx-sg")
    assert "xsk-zerocopy" not in features and features.zc_max_segs is None
    assert info.native_xdp is True and info.zerocopy is False
    assert info.advice == "native XDP, copy mode only (no AF_XDP zero-copy)"
    assert features.rx_metadata == ("timestamp", "hash", "vlan-tag")
    assert info.programs == ()
    text = ifinfo.format_info(info)
    assert "programs:   none attached" in text and "no ndo-xmit" in text


@pytest.mark.privileged
def test_veth_is_a_redirect_target_while_its_peer_has_native_xdp(lab) -> None:
    afxdp = _afxdp()
    with lab.enter("a"), afxdp.Program.attach(lab.if_a, mode="native"):
        features = veth_info(lab).xdp_features
    assert features is not None
    assert {"basic", "redirect", "ndo-xmit", "ndo-xmit-sg"} <= set(features.actions)
    assert "xsk-zerocopy" not in features
    assert "ndo-xmit" not in veth_info(lab).xdp_features


@pytest.mark.privileged
@pytest.mark.parametrize("mode", ["native", "generic"])
def test_attached_program_shows_mode_id_and_name(lab, mode: str) -> None:
    afxdp = _afxdp()
    with lab.enter("b"), afxdp.Program.attach(lab.if_b, mode=mode):
        info = ifinfo.interface_info(lab.if_b)
    assert len(info.programs) == 1
    program = info.programs[0]
    assert program.mode == mode and program.id > 0
    assert program.name == "afxdp_redirect"
    text = ifinfo.format_info(info)
    assert f"programs:   {mode} id {program.id} 'afxdp_redirect'" in text
    assert f"already attached ({mode} id {program.id})" in info.advice
    assert veth_info(lab).programs == ()  # detached when the Program closed


@pytest.mark.privileged
def test_program_name_needs_bpf_access(lab, monkeypatch: pytest.MonkeyPatch) -> None:
    afxdp = _afxdp()

    def denied(cmd: int, attr: bytearray) -> int:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(netdev, "_bpf", denied)
    with lab.enter("b"), afxdp.Program.attach(lab.if_b, mode="native"):
        info = ifinfo.interface_info(lab.if_b)
    assert [(p.mode, p.name) for p in info.programs] == [("native", None)]
    assert "(name needs CAP_SYS_ADMIN)" in ifinfo.format_info(info)


@pytest.mark.privileged
def test_lo_inside_a_lab_namespace(lab) -> None:
    with lab.enter("b"):
        info = ifinfo.interface_info("lo")
    assert info.ifindex == 1 and info.up
    assert info.xdp_features is not None and info.xdp_features.actions == ()
