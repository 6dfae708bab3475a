"""Conformance, ring-size group: HW_SW_MIN_RING_SIZE and HW_SW_MAX_RING_SIZE (kernel:
test_xsk.h). The kernel's cases set the device's hardware rings (ETHTOOL_SRINGPARAM) to their
smallest and largest sizes and stream through AF_XDP rings sized to match. veth has no
hardware rings, so the cases are n/a in every mode (cases.py); each test here runs once, with
no mode, and checks that reason on a lab veth (ETHTOOL_GRINGPARAM answers EOPNOTSUPP), then
the software side: afxdp sockets with the smallest and the largest rings afxdp accepts carry a
stream, and sizes out of range are refused naming the value."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import socket
import struct
import time
from contextlib import ExitStack
from typing import Any

import pytest

from helpers import numbered_run, socket_pair

afxdp = pytest.importorskip("afxdp")

from afxdp.testing import parse_numbered  # noqa: E402

SIOCETHTOOL = 0x8946
ETHTOOL_GRINGPARAM = 0x10  # struct ethtool_ringparam: cmd and 8 u32
ETHTOOL_GCHANNELS = 0x3C  # struct ethtool_channels: cmd and 8 u32 (veth answers this one)
MIN_RING = 1  # afxdp's smallest ring: a power of two
MAX_RING = 1 << 20  # afxdp's largest (rust/core/src/socket/config.rs MAX_RING_SIZE)


def _ethtool(ifname: str, cmd: int) -> tuple[int, ...]:
    """An ETHTOOL_G* ioctl whose answer is ``cmd`` and 8 u32 (ringparam and channels are);
    returns the 8 values, or raises OSError with the kernel's errno."""
    data = ctypes.create_string_buffer(struct.pack("9I", cmd, *[0] * 8))
    ifreq = struct.pack("16sP", ifname.encode(), ctypes.addressof(data)).ljust(40, b"\0")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        fcntl.ioctl(sock.fileno(), SIOCETHTOOL, ifreq)
    return struct.unpack("9I", data.raw[:36])[1:]


def _veth_has_no_hardware_rings(lab: Any) -> None:
    """The n/a reason, checked: the ethtool ioctl works on the lab's veth (channels), but
    ring parameters are not supported there."""
    for side in ("a", "b"):
        with lab.enter(side):
            channels = _ethtool(lab.ifname(side), ETHTOOL_GCHANNELS)
            assert channels[0] >= 1  # max_rx: the plumbing reads real answers
            with pytest.raises(OSError) as raised:
                _ethtool(lab.ifname(side), ETHTOOL_GRINGPARAM)
            assert raised.value.errno == errno.EOPNOTSUPP


def _lockstep(pair: Any, count: int) -> list[int | None]:
    """One packet at a time (the rings may hold just one): send, then wait for it."""
    got: list[int | None] = []
    for payload in numbered_run(pair.lab, 0, count):
        deadline = time.monotonic() + 3
        while pair.tx.send_packets([payload]) != 1:
            assert time.monotonic() < deadline, f"tx ring stuck after {len(got)} packets"
            pair.tx.complete()
        with pair.rx.recv(1, timeout=3) as batch:
            got += [parse_numbered(memoryview(frame)) for frame in batch]
        pair.tx.complete()
    return got


def _stream(pair: Any, count: int) -> list[int | None]:
    assert pair.tx.send_packets(numbered_run(pair.lab, 0, count)) == count
    got: list[int | None] = []
    deadline = time.monotonic() + 5
    while len(got) < count and time.monotonic() < deadline:
        with pair.rx.recv(count, timeout=0.05) as batch:
            got += [parse_numbered(memoryview(frame)) for frame in batch]
    return got


def _refused(lab: Any, option: str, value: int) -> None:
    with lab.enter("a"), pytest.raises(ValueError, match=rf"\b{value}\b"):
        afxdp.Socket(lab.if_a, 0, umem=afxdp.Umem(64, 4096), **{option: value})


def test_HW_SW_MIN_RING_SIZE(lab: Any) -> None:
    _veth_has_no_hardware_rings(lab)
    rings = {"rx_size": MIN_RING, "fill_size": MIN_RING}
    tx_rings = {"tx_size": MIN_RING, "comp_size": MIN_RING}
    with socket_pair(lab, tx_size=0, tx_options=tx_rings, **rings) as pair:
        assert _lockstep(pair, 64) == list(range(64))
        assert pair.rx.stats().rx_dropped == 0
    for option in ("rx_size", "tx_size", "fill_size", "comp_size"):
        _refused(lab, option, 3)  # not a power of two
    for option in ("fill_size", "comp_size"):
        _refused(lab, option, 0)  # these rings cannot be left out


def test_HW_SW_MAX_RING_SIZE(lab: Any) -> None:
    _veth_has_no_hardware_rings(lab)
    count = 2048  # the kernel's batch in this case (XSK_RING_PROD__DEFAULT_NUM_DESCS)
    rings = {"rx_size": MAX_RING, "fill_size": MAX_RING}
    tx_rings = {"tx_size": MAX_RING, "comp_size": MAX_RING}
    with ExitStack() as stack:
        pair = stack.enter_context(
            socket_pair(lab, tx_frames=count, tx_size=0, tx_options=tx_rings, **rings)
        )
        assert _stream(pair, count) == list(range(count))
        stats = pair.rx.stats()
        assert stats.rx_dropped == stats.rx_ring_full == 0
    for option in ("rx_size", "tx_size", "fill_size", "comp_size"):
        _refused(lab, option, 2 * MAX_RING)
