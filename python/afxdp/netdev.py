"""Interface queries: the one place afxdp's Python code asks about a network interface.

The CLI (does the interface exist, is it up, its MAC, is a program attached), the lab (is a veth
end running, its ifindex) and ``afxdp info`` (:mod:`afxdp.ifinfo`) all ask through these
functions; nothing else in the package opens a netlink socket or calls ``SIOCETHTOOL``.

Where each fact comes from:

* Index, MTU and flags (so "up" and "running"): the Rust core, through
  ``afxdp._native.Interface`` (:func:`interface`; also the ``ifindex``, ``mtu`` and ``flags`` of
  :func:`link`). The core resolves a name exactly as ``Socket`` and ``Program`` do, so the CLI's
  checks and the library agree. ``flags`` are the ``SIOCGIFFLAGS`` bits (the low 16: ``IFF_UP``,
  ``IFF_RUNNING``, ...). The core's ``queue_count`` (the XSKMAP size) and ``rx_queues`` /
  ``tx_queues`` (the queues in use, which bound the queue ids) are on
  ``afxdp._native.Interface`` too.
* The one stdlib fallback: only when ``afxdp._native`` cannot be imported (the test-suite and
  ``python -m afxdp.lab`` load the lab, ``afxdp.testing`` and this module from a source tree
  without the compiled extension), index, MTU and flags are read from the ``RTM_GETLINK``
  answer instead (flags cut to the same 16 bits). Nothing else has a fallback.
* What only this module asks, in any case:

  - :func:`link` (``RTM_GETLINK``, rtnetlink): MAC, operstate, link kind, the allocated rx/tx
    queue counts and the attached XDP programs (``IFLA_XDP``); :func:`attached_programs` is a
    view of it.
  - :func:`channels`, :func:`driver_info` (``SIOCETHTOOL``: ``ETHTOOL_GCHANNELS``,
    ``ETHTOOL_GDRVINFO``): the driver's current and maximum channels, which ``afxdp info``
    shows, and who the driver is. :func:`queue_counts` reports the rx/tx queue counts from the
    current channels, else from rtnetlink's allocated counts, else from sysfs.
  - :func:`xdp_features`: the generic-netlink ``netdev`` family (kernel >= 6.3,
    ``NETDEV_CMD_DEV_GET``): the XDP features the driver declares.
  - :func:`program_name`: ``bpf(BPF_PROG_GET_FD_BY_ID)`` + ``BPF_OBJ_GET_INFO_BY_FD`` (needs
    CAP_SYS_ADMIN; None without it).

Everything is asked in the network namespace of the *calling thread*, so this works inside
:meth:`afxdp.lab.Lab.enter` (``/sys/class/net`` would show the namespace that mounted /sys
instead, which is why sysfs is only the last resort for queue counts). Each optional query that
fails (unsupported by the driver, too old a kernel, not privileged) returns None.

Constants are mirrored from the kernel UAPI headers named next to them. Apart from the optional
``afxdp._native``, this module is stdlib-only and imports nothing else from the package.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import platform
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from afxdp._native import Interface as _CoreInterface

#: The core's interface facts (``afxdp._native.Interface``); None without the compiled extension,
#: which selects the stdlib fallback (see the module doc).
_core_interface: Callable[[str], _CoreInterface] | None
try:
    from afxdp._native import Interface as _core_interface
except ImportError:
    _core_interface = None

__all__ = [
    "Channels",
    "DriverInfo",
    "Interface",
    "Link",
    "XdpFeatures",
    "XdpMode",
    "XdpProgram",
    "attached_programs",
    "channels",
    "check_interface",
    "driver_info",
    "interface",
    "is_running",
    "link",
    "program_name",
    "queue_counts",
    "xdp_features",
]

#: How an XDP program is attached: by the driver (XDP_FLAGS_DRV_MODE), by the kernel on skbs
#: (XDP_FLAGS_SKB_MODE) or by the NIC itself (XDP_FLAGS_HW_MODE).
XdpMode = Literal["native", "generic", "offload"]
#: Where :func:`queue_counts` found the counts.
QueuesSource = Literal["ethtool", "netlink", "sysfs"]

# --- kernel ABI ----------------------------------------------------------------------------------

# linux/netlink.h
_NETLINK_ROUTE = 0
_NETLINK_GENERIC = 16
_NLM_F_REQUEST = 0x1
_NLMSG_NOOP = 1
_NLMSG_ERROR = 2
_NLMSG_DONE = 3
_NLA_TYPE_MASK = ~(0x8000 | 0x4000) & 0xFFFF  # without NLA_F_NESTED | NLA_F_NET_BYTEORDER
_NLMSGHDR = struct.Struct("=IHHII")  # struct nlmsghdr: len, type, flags, seq, pid (16 bytes)
_NLATTR = struct.Struct("=HH")  # struct nlattr: len, type

# linux/rtnetlink.h
_RTM_GETLINK = 18
_IFINFOMSG = struct.Struct("=BxHiII")  # struct ifinfomsg: family, pad, type, index, flags, change

# linux/if_link.h
_IFLA_ADDRESS = 1
_IFLA_IFNAME = 3
_IFLA_MTU = 4
_IFLA_OPERSTATE = 16
_IFLA_LINKINFO = 18
_IFLA_INFO_KIND = 1  # inside IFLA_LINKINFO
_IFLA_NUM_TX_QUEUES = 31
_IFLA_NUM_RX_QUEUES = 32
_IFLA_XDP = 43
_IFLA_XDP_ATTACHED = 2  # inside IFLA_XDP
_IFLA_XDP_DRV_PROG_ID = 5
_IFLA_XDP_SKB_PROG_ID = 6
_IFLA_XDP_HW_PROG_ID = 7
#: IFLA_XDP_*_PROG_ID -> attach mode, in the order the report lists them.
_XDP_MODE_OF_ATTR: dict[int, XdpMode] = {
    _IFLA_XDP_DRV_PROG_ID: "native",
    _IFLA_XDP_SKB_PROG_ID: "generic",
    _IFLA_XDP_HW_PROG_ID: "offload",
}
#: enum IF_OPER_* (RFC 2863 operational status), by value.
_OPERSTATES = ("unknown", "notpresent", "down", "lowerlayerdown", "testing", "dormant", "up")

# linux/if.h
IFF_UP = 0x1
IFF_LOOPBACK = 0x8
IFF_RUNNING = 0x40
_IFNAMSIZ = 16
#: SIOCGIFFLAGS reports flags as a short: the core's flags, and the fallback's, are these bits.
_IFF_SIOCGIFFLAGS_MASK = 0xFFFF

# linux/genetlink.h
_GENL_ID_CTRL = 16
_CTRL_CMD_GETFAMILY = 3
_CTRL_ATTR_FAMILY_ID = 1
_CTRL_ATTR_FAMILY_NAME = 2
_GENLMSGHDR = struct.Struct("=BBxx")  # struct genlmsghdr: cmd, version, reserved

# linux/netdev.h (YNL-generated from Documentation/netlink/specs/netdev.yaml; kernel >= 6.3)
_NETDEV_FAMILY_NAME = b"netdev"
_NETDEV_FAMILY_VERSION = 1
_NETDEV_CMD_DEV_GET = 1
_NETDEV_A_DEV_IFINDEX = 1
_NETDEV_A_DEV_XDP_FEATURES = 3  # u64, enum netdev_xdp_act
_NETDEV_A_DEV_XDP_ZC_MAX_SEGS = 4  # u32 (kernel >= 6.6)
_NETDEV_A_DEV_XDP_RX_METADATA_FEATURES = 5  # u64, enum netdev_xdp_rx_metadata (kernel >= 6.8)
_NETDEV_A_DEV_XSK_FEATURES = 6  # u64, enum netdev_xsk_flags (kernel >= 6.8)
#: enum netdev_xdp_act, names as in netdev.yaml (what `ynl` and `ip` print).
_XDP_ACT_NAMES = (
    (0x01, "basic"),  # XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX: native (driver) XDP
    (0x02, "redirect"),  # XDP_REDIRECT out of this device's XDP program (what AF_XDP needs)
    (0x04, "ndo-xmit"),  # ndo_xdp_xmit: a redirect target
    (0x08, "xsk-zerocopy"),  # AF_XDP zero-copy
    (0x10, "hw-offload"),
    (0x20, "rx-sg"),  # multi-buffer (non-linear) frames in the driver's napi poll
    (0x40, "ndo-xmit-sg"),  # multi-buffer frames through ndo_xdp_xmit
)
#: enum netdev_xdp_rx_metadata: kfuncs an XDP program can call on this device.
_XDP_RX_METADATA_NAMES = ((0x1, "timestamp"), (0x2, "hash"), (0x4, "vlan-tag"))
#: enum netdev_xsk_flags: AF_XDP TX metadata the driver implements.
_XSK_FLAG_NAMES = ((0x1, "tx-timestamp"), (0x2, "tx-checksum"), (0x4, "tx-launch-time-fifo"))

# linux/sockios.h, linux/ethtool.h
_SIOCETHTOOL = 0x8946
_ETHTOOL_GDRVINFO = 0x03
_ETHTOOL_GCHANNELS = 0x3C
_ETHTOOL_SGRO = 0x2C
#: struct ethtool_drvinfo: cmd, driver[32], version[32], fw_version[32], bus_info[32],
#: erom_version[32], reserved2[12], n_priv_flags, n_stats, testinfo_len, eedump_len, regdump_len.
_ETHTOOL_DRVINFO = struct.Struct("=I32s32s32s32s32s12s5I")
#: struct ethtool_channels: cmd, max_rx, max_tx, max_other, max_combined, rx_count, tx_count,
#: other_count, combined_count.
_ETHTOOL_CHANNELS = struct.Struct("=9I")
_IFREQ_SIZE = 40  # struct ifreq: name[16] + the union (24 bytes on 64-bit, fits a pointer)

# linux/bpf.h
_BPF_PROG_GET_FD_BY_ID = 13
_BPF_OBJ_GET_INFO_BY_FD = 15
_BPF_GET_FD_BY_ID_ATTR = struct.Struct("=III")  # union bpf_attr: prog_id, next_id, open_flags
_BPF_INFO_ATTR = struct.Struct("=IIQ")  # union bpf_attr .info: bpf_fd, info_len, info (pointer)
_BPF_PROG_INFO_NAME_OFFSET = 64  # offsetof(struct bpf_prog_info, name)
_BPF_OBJ_NAME_LEN = 16
#: __NR_bpf by machine (arch/*/unistd tables; asm-generic for arm64, riscv64, loongarch64).
_SYS_BPF = {
    "x86_64": 321,
    "i386": 357,
    "i686": 357,
    "aarch64": 280,
    "arm64": 280,
    "riscv64": 280,
    "loongarch64": 280,
    "s390x": 351,
}

_NETLINK_TIMEOUT = 5.0  # seconds; the kernel answers at once, this only stops a hang

# --- the data ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DriverInfo:
    """``ETHTOOL_GDRVINFO``: who drives the interface. Empty strings where the driver says
    nothing (veth has no bus, most virtual devices no firmware)."""

    driver: str
    version: str
    firmware: str
    bus_info: str


@dataclass(frozen=True)
class Channels:
    """``ETHTOOL_GCHANNELS``: current and maximum channel counts. A NIC usually has
    ``combined`` channels (one rx + one tx queue each); veth reports separate ``rx``/``tx``."""

    max_rx: int
    max_tx: int
    max_other: int
    max_combined: int
    rx: int
    tx: int
    other: int
    combined: int


@dataclass(frozen=True)
class XdpFeatures:
    """What the driver declares through the ``netdev`` generic-netlink family (kernel >= 6.3).

    ``actions`` are the names of the ``NETDEV_XDP_ACT_*`` bits in ``mask`` ("basic", "redirect",
    "ndo-xmit", "xsk-zerocopy", "hw-offload", "rx-sg", "ndo-xmit-sg"; unknown bits as "bit-N").
    The other fields are ``None`` when the kernel does not report them.
    """

    mask: int
    actions: tuple[str, ...]
    zc_max_segs: int | None = None
    rx_metadata: tuple[str, ...] | None = None
    xsk: tuple[str, ...] | None = None

    def __contains__(self, action: object) -> bool:
        return action in self.actions


@dataclass(frozen=True)
class XdpProgram:
    """An XDP program attached to the interface. ``name`` is the kernel's (at most 15 bytes);
    ``None`` when this process may not open the program (needs CAP_SYS_ADMIN)."""

    mode: XdpMode
    id: int
    name: str | None = None


class LinkFlags:
    """``up`` and ``running`` from the ``flags`` field of the dataclasses that describe an
    interface (:class:`Interface`, :class:`Link`, ``afxdp.ifinfo.InterfaceInfo``)."""

    flags: int

    @property
    def up(self) -> bool:
        """Administratively up (``IFF_UP``)."""
        return bool(self.flags & IFF_UP)

    @property
    def running(self) -> bool:
        """Up with carrier, ready to pass traffic (``IFF_RUNNING``)."""
        return bool(self.flags & IFF_RUNNING)


@dataclass(frozen=True)
class Interface(LinkFlags):
    """What :func:`interface` found: an interface's index, MTU and flags (``SIOCGIFFLAGS``, the
    low 16 bits), from the Rust core (or, without the compiled extension, from rtnetlink)."""

    name: str
    index: int
    mtu: int
    flags: int


@dataclass(frozen=True)
class Link(LinkFlags):
    """What :func:`link` found about one interface: its :class:`Interface` facts (``ifindex``,
    ``mtu``, ``flags``) and what ``RTM_GETLINK`` says besides.

    ``num_rx_queues``/``num_tx_queues`` are the allocated queue counts (``IFLA_NUM_*_QUEUES``),
    None when the kernel does not report them; :func:`queue_counts` gives the usable ones.
    """

    name: str
    ifindex: int
    mac: str | None
    mtu: int
    flags: int
    operstate: str
    kind: str | None
    num_rx_queues: int | None
    num_tx_queues: int | None
    programs: tuple[XdpProgram, ...]


# --- netlink -------------------------------------------------------------------------------------


def _attr(attr_type: int, payload: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes."""
    length = _NLATTR.size + len(payload)
    return _NLATTR.pack(length, attr_type) + payload + bytes(-length % 4)


def _parse_attrs(data: bytes | memoryview, offset: int = 0) -> dict[int, bytes]:
    """Attribute type (flags masked) -> payload, for a run of netlink attributes."""
    attrs: dict[int, bytes] = {}
    end = len(data)
    while offset + _NLATTR.size <= end:
        length, attr_type = _NLATTR.unpack_from(data, offset)
        if length < _NLATTR.size or offset + length > end:
            break
        attrs[attr_type & _NLA_TYPE_MASK] = bytes(data[offset + _NLATTR.size : offset + length])
        offset += (length + 3) & ~3
    return attrs


def _u32(payload: bytes | None) -> int | None:
    return None if payload is None or len(payload) < 4 else struct.unpack_from("=I", payload)[0]


def _u64(payload: bytes | None) -> int | None:
    return None if payload is None or len(payload) < 8 else struct.unpack_from("=Q", payload)[0]


def _string(payload: bytes | None) -> str | None:
    return None if payload is None else payload.split(b"\0", 1)[0].decode(errors="replace")


def _netlink_request(protocol: int, msg_type: int, body: bytes) -> bytes:
    """Send one request (not a dump), return the payload of the answer.

    Raises:
        OSError: with the kernel's errno when it answers with an error (e.g. ENODEV, ENOENT),
            ETIMEDOUT when it does not answer, EBADMSG when the answer is malformed.
    """
    seq = 1
    header = _NLMSGHDR.pack(_NLMSGHDR.size + len(body), msg_type, _NLM_F_REQUEST, seq, 0)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, protocol) as sock:
        sock.settimeout(_NETLINK_TIMEOUT)
        sock.bind((0, 0))
        sock.send(header + body)
        while True:
            # MSG_TRUNC makes recv_into return the datagram's real size, so nothing is cut off.
            try:
                size = sock.recv_into(bytearray(1), 1, socket.MSG_PEEK | socket.MSG_TRUNC)
                reply = sock.recv(max(size, _NLMSGHDR.size))
            except TimeoutError:
                raise OSError(errno.ETIMEDOUT, "netlink: no answer from the kernel") from None
            offset = 0
            while offset + _NLMSGHDR.size <= len(reply):
                length, kind, _flags, reply_seq, _pid = _NLMSGHDR.unpack_from(reply, offset)
                if length < _NLMSGHDR.size or offset + length > len(reply):
                    raise OSError(errno.EBADMSG, "netlink: truncated message")
                payload = reply[offset + _NLMSGHDR.size : offset + length]
                offset += (length + 3) & ~3
                if reply_seq != seq or kind in (_NLMSG_NOOP, _NLMSG_DONE):
                    continue
                if kind == _NLMSG_ERROR:
                    code = -struct.unpack_from("=i", payload)[0] if len(payload) >= 4 else 0
                    if code:
                        raise OSError(code, os.strerror(code))
                    continue  # an ACK: the answer comes (came) separately
                return payload


def _getlink(ifname: str) -> tuple[bytes, dict[int, bytes]]:
    """RTM_GETLINK by name: (struct ifinfomsg, its attributes)."""
    body = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
    body += _attr(_IFLA_IFNAME, os.fsencode(ifname) + b"\0")
    payload = _netlink_request(_NETLINK_ROUTE, _RTM_GETLINK, body)
    if len(payload) < _IFINFOMSG.size:
        raise OSError(errno.EBADMSG, "RTM_GETLINK: short answer")
    return payload[: _IFINFOMSG.size], _parse_attrs(payload, _IFINFOMSG.size)


def _genl_request(family: int, cmd: int, version: int, attrs: bytes) -> dict[int, bytes]:
    payload = _netlink_request(_NETLINK_GENERIC, family, _GENLMSGHDR.pack(cmd, version) + attrs)
    return _parse_attrs(payload, _GENLMSGHDR.size)


def _genl_family_id(name: bytes) -> int | None:
    """The id of generic-netlink family ``name``, or None when the kernel has no such family."""
    try:
        attrs = _genl_request(
            _GENL_ID_CTRL, _CTRL_CMD_GETFAMILY, 1, _attr(_CTRL_ATTR_FAMILY_NAME, name + b"\0")
        )
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise
    family = attrs.get(_CTRL_ATTR_FAMILY_ID)
    return None if family is None or len(family) < 2 else struct.unpack_from("=H", family)[0]


def _names(mask: int, table: tuple[tuple[int, str], ...]) -> tuple[str, ...]:
    """The names of the bits set in ``mask``; bits the table lacks as "bit-N"."""
    known = 0
    names = []
    for bit, name in table:
        known |= bit
        if mask & bit:
            names.append(name)
    rest = mask & ~known
    names.extend(f"bit-{n}" for n in range(rest.bit_length()) if rest >> n & 1)
    return tuple(names)


def _xdp_features(ifindex: int) -> XdpFeatures | None:
    """NETDEV_CMD_DEV_GET; None when the kernel lacks the netdev family or the query fails."""
    try:
        family = _genl_family_id(_NETDEV_FAMILY_NAME)
        if family is None:
            return None
        attrs = _genl_request(
            family,
            _NETDEV_CMD_DEV_GET,
            _NETDEV_FAMILY_VERSION,
            _attr(_NETDEV_A_DEV_IFINDEX, struct.pack("=I", ifindex)),
        )
    except OSError:
        return None
    mask = _u64(attrs.get(_NETDEV_A_DEV_XDP_FEATURES))
    if mask is None:
        return None
    rx_metadata = _u64(attrs.get(_NETDEV_A_DEV_XDP_RX_METADATA_FEATURES))
    xsk = _u64(attrs.get(_NETDEV_A_DEV_XSK_FEATURES))
    return XdpFeatures(
        mask=mask,
        actions=_names(mask, _XDP_ACT_NAMES),
        zc_max_segs=_u32(attrs.get(_NETDEV_A_DEV_XDP_ZC_MAX_SEGS)),
        rx_metadata=None if rx_metadata is None else _names(rx_metadata, _XDP_RX_METADATA_NAMES),
        xsk=None if xsk is None else _names(xsk, _XSK_FLAG_NAMES),
    )


# --- ethtool ioctl -------------------------------------------------------------------------------


def _ethtool(ifname: str, request: bytearray) -> bytearray | None:
    """SIOCETHTOOL with ``request`` (its first u32 is the command); None when it fails
    (EOPNOTSUPP: the driver does not implement the command, or no such interface)."""
    if not _valid_name(ifname):
        return None
    buffer = (ctypes.c_char * len(request)).from_buffer(request)
    ifreq = struct.pack("16sP", os.fsencode(ifname), ctypes.addressof(buffer))
    ifreq = ifreq.ljust(_IFREQ_SIZE, b"\0")
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            fcntl.ioctl(sock.fileno(), _SIOCETHTOOL, ifreq)  # the kernel writes into `request`
    except OSError:
        return None
    finally:
        del buffer  # release the export of `request`
    return request


def _set_gro(ifname: str, enabled: bool) -> bool:
    """``ETHTOOL_SGRO``: turn generic receive offload on or off; False when the driver refuses
    (or there is no such interface)."""
    request = bytearray(struct.pack("=II", _ETHTOOL_SGRO, int(enabled)))
    return _ethtool(ifname, request) is not None


def _driver_info(ifname: str) -> DriverInfo | None:
    request = bytearray(_ETHTOOL_DRVINFO.size)
    struct.pack_into("=I", request, 0, _ETHTOOL_GDRVINFO)
    if _ethtool(ifname, request) is None:
        return None
    _cmd, driver, version, firmware, bus, *_rest = _ETHTOOL_DRVINFO.unpack(request)
    text = [_string(raw) or "" for raw in (driver, version, firmware, bus)]
    return DriverInfo(*text)


def _channels(ifname: str) -> Channels | None:
    request = bytearray(_ETHTOOL_CHANNELS.size)
    struct.pack_into("=I", request, 0, _ETHTOOL_GCHANNELS)
    if _ethtool(ifname, request) is None:
        return None
    return Channels(*_ETHTOOL_CHANNELS.unpack(request)[1:])


def _sysfs_queues(ifname: str, ifindex: int) -> tuple[int, int] | None:
    """Counts of /sys/class/net/IFACE/queues/{rx,tx}-*, if /sys shows this thread's namespace
    (checked by the ifindex, which is unique only within one namespace: a best effort)."""
    base = f"/sys/class/net/{ifname}"
    try:
        with open(f"{base}/ifindex", encoding="ascii") as f:
            if int(f.read()) != ifindex:
                return None
        entries = os.listdir(f"{base}/queues")
    except (OSError, ValueError):
        return None
    return (
        sum(e.startswith("rx-") for e in entries),
        sum(e.startswith("tx-") for e in entries),
    )


# --- bpf -----------------------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _bpf(cmd: int, attr: bytearray) -> int:
    """The bpf(2) syscall; returns its result or raises OSError."""
    number = _SYS_BPF.get(platform.machine())
    if number is None:
        raise OSError(errno.ENOSYS, f"bpf syscall number unknown on {platform.machine()}")
    buffer = (ctypes.c_char * len(attr)).from_buffer(attr)
    try:
        result: int = _libc.syscall(
            ctypes.c_long(number), ctypes.c_int(cmd), buffer, ctypes.c_uint(len(attr))
        )
    finally:
        del buffer
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def _program_name(prog_id: int) -> str | None:
    """The kernel's name of program ``prog_id``; None without CAP_SYS_ADMIN or once it is gone."""
    try:
        fd = _bpf(_BPF_PROG_GET_FD_BY_ID, bytearray(_BPF_GET_FD_BY_ID_ATTR.pack(prog_id, 0, 0)))
    except OSError:
        return None
    try:
        info = bytearray(_BPF_PROG_INFO_NAME_OFFSET + _BPF_OBJ_NAME_LEN)  # up to and with `name`
        info_buffer = (ctypes.c_char * len(info)).from_buffer(info)
        try:
            attr = bytearray(_BPF_INFO_ATTR.pack(fd, len(info), ctypes.addressof(info_buffer)))
            _bpf(_BPF_OBJ_GET_INFO_BY_FD, attr)
        finally:
            del info_buffer
    except OSError:
        return None
    finally:
        os.close(fd)
    return _string(bytes(info[_BPF_PROG_INFO_NAME_OFFSET:]))


def _programs(xdp: bytes | None) -> tuple[XdpProgram, ...]:
    """The programs in an IFLA_XDP attribute: one id per attach mode (IFLA_XDP_*_PROG_ID)."""
    if xdp is None:
        return ()
    attrs = _parse_attrs(xdp)
    if not attrs.get(_IFLA_XDP_ATTACHED, b"\0")[0]:
        return ()
    programs = []
    for attr_type, mode in _XDP_MODE_OF_ATTR.items():
        prog_id = _u32(attrs.get(attr_type))
        if prog_id:
            programs.append(XdpProgram(mode, prog_id, _program_name(prog_id)))
    return tuple(programs)


# --- the public functions ------------------------------------------------------------------------


def _valid_name(ifname: str) -> bool:
    """The kernel's rule (``dev_valid_name``): 1 to 15 bytes, not "." or "..", no "/", ":" or
    whitespace. Checked before any ioctl: ``SIOCGIFINDEX`` and the ethtool ioctls would cut an
    alias suffix ("eth0:x") or a 16th byte off and answer for another interface."""
    encoded = os.fsencode(ifname)
    return (
        bool(encoded)
        and len(encoded) < _IFNAMSIZ
        and encoded not in (b".", b"..")
        and not any(c in encoded for c in b"/:\0 \t\n\v\f\r")
    )


def _no_such_interface(ifname: str) -> OSError:
    return OSError(errno.ENODEV, f"no such network interface: {ifname!r}")


def _check_name(ifname: object) -> str:
    """``ifname`` if it is a str that can name an interface; TypeError, or OSError(ENODEV)."""
    if not isinstance(ifname, str):
        raise TypeError(f"interface name must be a str, not {type(ifname).__name__}")
    if not _valid_name(ifname):
        raise _no_such_interface(ifname)
    return ifname


def _rtnetlink(ifname: str) -> tuple[bytes, dict[int, bytes]]:
    """:func:`_getlink`, its errors worded with the name (ENODEV as from :func:`interface`)."""
    try:
        return _getlink(ifname)
    except OSError as exc:
        if exc.errno == errno.ENODEV:
            raise _no_such_interface(ifname) from None
        raise OSError(exc.errno, f"RTM_GETLINK {ifname!r}: {exc.strerror}") from None


def _from_rtnetlink(ifname: str, ifinfomsg: bytes, attrs: dict[int, bytes]) -> Interface:
    """The stdlib fallback of :func:`interface`: the facts in an ``RTM_GETLINK`` answer."""
    _family, _type, ifindex, flags, _change = _IFINFOMSG.unpack(ifinfomsg)
    return Interface(
        name=_string(attrs.get(_IFLA_IFNAME)) or ifname,
        index=ifindex,
        mtu=_u32(attrs.get(_IFLA_MTU)) or 0,
        flags=flags & _IFF_SIOCGIFFLAGS_MASK,
    )


def _from_core(ifname: str, core: Callable[[str], _CoreInterface]) -> Interface:
    try:
        found = core(ifname)
    except UnicodeEncodeError:  # a lone surrogate: not a name the core (or Socket) can resolve
        raise _no_such_interface(ifname) from None
    except OSError as exc:
        if exc.errno == errno.ENODEV:
            raise _no_such_interface(ifname) from None
        raise
    return Interface(name=found.name, index=found.index, mtu=found.mtu, flags=found.flags)


def interface(ifname: str) -> Interface:
    """The index, MTU and flags of ``ifname`` in the calling thread's network namespace, from the
    Rust core (``afxdp._native.Interface``); from rtnetlink only without the compiled extension.

    Raises:
        TypeError: ``ifname`` is not a str.
        OSError: ENODEV naming ``ifname`` when there is no such interface (or the name cannot
            be one); another errno when the kernel refuses the query.
    """
    _check_name(ifname)
    if _core_interface is not None:
        return _from_core(ifname, _core_interface)
    return _from_rtnetlink(ifname, *_rtnetlink(ifname))


def link(ifname: str) -> Link:
    """The :func:`interface` facts of ``ifname`` and what ``RTM_GETLINK`` says besides, in the
    calling thread's network namespace.

    Raises:
        TypeError: ``ifname`` is not a str.
        OSError: ENODEV when there is no such interface (or the name cannot be one); another
            errno when the core's query or rtnetlink itself fails.
    """
    _check_name(ifname)
    found = None if _core_interface is None else _from_core(ifname, _core_interface)
    ifinfomsg, attrs = _rtnetlink(ifname)
    if found is None:
        found = _from_rtnetlink(ifname, ifinfomsg, attrs)
    address = attrs.get(_IFLA_ADDRESS)
    operstate = attrs.get(_IFLA_OPERSTATE, b"\0")[0]
    linkinfo = attrs.get(_IFLA_LINKINFO)
    return Link(
        name=found.name,
        ifindex=found.index,
        mac=":".join(f"{b:02x}" for b in address) if address else None,
        mtu=found.mtu,
        flags=found.flags,
        operstate=_OPERSTATES[operstate] if operstate < len(_OPERSTATES) else str(operstate),
        kind=_string(_parse_attrs(linkinfo).get(_IFLA_INFO_KIND)) if linkinfo else None,
        num_rx_queues=_u32(attrs.get(_IFLA_NUM_RX_QUEUES)),
        num_tx_queues=_u32(attrs.get(_IFLA_NUM_TX_QUEUES)),
        programs=_programs(attrs.get(_IFLA_XDP)),
    )


def check_interface(ifname: str, require_up: bool = True) -> Interface:
    """The :func:`interface` facts of ``ifname``, after checking that it exists (and, with
    ``require_up``, that it is up).

    Raises:
        OSError: ENODEV naming ``ifname`` when it does not exist or cannot be a name, ENETDOWN
            saying how to bring it up when it is down.
    """
    if not isinstance(ifname, str) or not _valid_name(ifname):
        raise OSError(errno.ENODEV, f"invalid interface name {ifname!r}")
    found = interface(ifname)
    if require_up and not found.up:
        raise OSError(
            errno.ENETDOWN,
            f"interface {ifname} is down (bring it up with: ip link set {ifname} up)",
        )
    return found


def is_running(ifname: str) -> bool:
    """``IFF_RUNNING``: up with carrier (for veth: linkwatch has run and attached the qdisc)."""
    return interface(ifname).running


def attached_programs(ifname: str) -> tuple[XdpProgram, ...]:
    """The XDP programs attached to ``ifname``, one per attach mode; () when none."""
    _check_name(ifname)
    _ifinfomsg, attrs = _rtnetlink(ifname)
    return _programs(attrs.get(_IFLA_XDP))


def channels(ifname: str) -> Channels | None:
    """``ETHTOOL_GCHANNELS``; None when the driver does not implement it."""
    return _channels(ifname)


def driver_info(ifname: str) -> DriverInfo | None:
    """``ETHTOOL_GDRVINFO``; None when the driver does not implement it."""
    return _driver_info(ifname)


def xdp_features(ifindex: int) -> XdpFeatures | None:
    """``NETDEV_CMD_DEV_GET``; None when the kernel lacks the netdev family or the query fails."""
    return _xdp_features(ifindex)


def program_name(prog_id: int) -> str | None:
    """The kernel's name of program ``prog_id``; None without CAP_SYS_ADMIN or once it is gone."""
    return _program_name(prog_id)


def queue_counts(
    found: Link, channel_counts: Channels | None = None
) -> tuple[int | None, int | None, QueuesSource | None]:
    """(rx, tx, source): the queue counts an AF_XDP socket can bind to (queue ids
    ``0 .. rx-1``), from the ethtool channels when the driver reports them (pass them in when
    already asked), else from rtnetlink's allocated counts, else from ``/sys/class/net``;
    source None when none answered."""
    if channel_counts is None:
        channel_counts = _channels(found.name)
    if channel_counts is not None and channel_counts.rx + channel_counts.combined > 0:
        return (
            channel_counts.rx + channel_counts.combined,
            channel_counts.tx + channel_counts.combined,
            "ethtool",
        )
    if found.num_rx_queues is not None:
        return found.num_rx_queues, found.num_tx_queues, "netlink"
    counted = _sysfs_queues(found.name, found.ifindex)
    if counted is not None:
        return counted[0], counted[1], "sysfs"
    return None, None, None
