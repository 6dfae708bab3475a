"""What to know about a network interface before using AF_XDP on it (``afxdp info IFACE``).

:func:`interface_info` gathers what :mod:`afxdp.netdev` asks the kernel (rtnetlink, ethtool
ioctls, the netdev generic-netlink family, bpf), with no ``ip`` or ``ethtool`` subprocess, and
:func:`format_info` words it for people.

Only the link lookup is essential: an unknown interface raises ``OSError(ENODEV)``. Each other
query that fails (unsupported by the driver, too old a kernel, not privileged) leaves its field
``None``. Everything is asked in the network namespace of the *calling thread*, so this works
inside :meth:`afxdp.lab.Lab.enter`.

This module is stdlib-only and imports only :mod:`afxdp.netdev` from the package, so it works
without the compiled extension.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from afxdp.netdev import (
    IFF_LOOPBACK,
    Channels,
    DriverInfo,
    LinkFlags,
    QueuesSource,
    XdpFeatures,
    XdpMode,
    XdpProgram,
    channels,
    driver_info,
    link,
    queue_counts,
    xdp_features,
)

__all__ = [
    "Channels",
    "DriverInfo",
    "InterfaceInfo",
    "XdpFeatures",
    "XdpMode",
    "XdpProgram",
    "format_info",
    "interface_info",
]


@dataclass(frozen=True)
class InterfaceInfo(LinkFlags):
    """What :func:`interface_info` found out about one interface; see the module doc.

    ``rx_queues``/``tx_queues`` are the queue counts an AF_XDP socket can bind to (queue ids
    ``0 .. rx_queues-1``), taken from the ethtool channels when the driver reports them, else from
    rtnetlink's allocated counts (``IFLA_NUM_RX_QUEUES``), else from ``/sys/class/net``;
    ``queues_source`` says which ("ethtool", "netlink" or "sysfs", or None when none answered).
    """

    name: str
    ifindex: int
    mac: str | None
    mtu: int
    flags: int
    operstate: str
    kind: str | None = None
    driver: DriverInfo | None = None
    channels: Channels | None = None
    rx_queues: int | None = None
    tx_queues: int | None = None
    queues_source: QueuesSource | None = None
    xdp_features: XdpFeatures | None = None
    programs: tuple[XdpProgram, ...] = field(default_factory=tuple)

    @property
    def loopback(self) -> bool:
        return bool(self.flags & IFF_LOOPBACK)

    @property
    def native_xdp(self) -> bool | None:
        """The driver runs XDP programs itself (feature "basic"); None: the kernel does not say."""
        return None if self.xdp_features is None else "basic" in self.xdp_features

    @property
    def zerocopy(self) -> bool | None:
        """AF_XDP zero-copy is possible (feature "xsk-zerocopy"); None: the kernel does not say."""
        return None if self.xdp_features is None else "xsk-zerocopy" in self.xdp_features

    @property
    def advice(self) -> str:
        """One line: which XDP mode and AF_XDP mode to expect, and what is in the way."""
        if self.xdp_features is None:
            parts = [
                "XDP features unknown (kernel < 6.3 has no netdev genetlink family): "
                "try native mode; generic (skb) mode and AF_XDP copy mode always work"
            ]
        elif not self.native_xdp:
            parts = ["no native XDP: generic (skb) mode only, AF_XDP copy mode"]
        elif "redirect" not in self.xdp_features:
            parts = ["native XDP without XDP_REDIRECT: AF_XDP needs generic (skb) mode"]
        elif not self.zerocopy:
            parts = ["native XDP, copy mode only (no AF_XDP zero-copy)"]
        else:
            parts = ["native XDP with AF_XDP zero-copy"]
        if not self.up:
            parts.append(f"interface is down (ip link set {self.name} up)")
        elif not self.running:
            parts.append("no carrier (not running)")
        if self.programs:
            held = ", ".join(f"{p.mode} id {p.id}" for p in self.programs)
            parts.append(f"an XDP program is already attached ({held})")
        return "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        """The fields plus the derived ``up``, ``running``, ``native_xdp``, ``zerocopy`` and
        ``advice``, as plain data (for JSON)."""
        data = asdict(self)
        for name in ("up", "running", "native_xdp", "zerocopy", "advice"):
            data[name] = getattr(self, name)
        return data


# --- the public functions ------------------------------------------------------------------------


def interface_info(ifname: str) -> InterfaceInfo:
    """Everything :class:`InterfaceInfo` holds about ``ifname``, in the calling thread's netns.

    Raises:
        TypeError: ``ifname`` is not a str.
        OSError: ENODEV when there is no such interface (or the name cannot be one); another
            errno when rtnetlink itself fails. Optional queries never raise; their fields are None.
    """
    found = link(ifname)
    channel_counts = channels(found.name)
    rx_queues, tx_queues, source = queue_counts(found, channel_counts)
    return InterfaceInfo(
        name=found.name,
        ifindex=found.ifindex,
        mac=found.mac,
        mtu=found.mtu,
        flags=found.flags,
        operstate=found.operstate,
        kind=found.kind,
        driver=driver_info(found.name),
        channels=channel_counts,
        rx_queues=rx_queues,
        tx_queues=tx_queues,
        queues_source=source,
        xdp_features=xdp_features(found.ifindex),
        programs=found.programs,
    )


def format_info(info: InterfaceInfo) -> str:
    """A human-readable report of ``info``, one fact per line."""
    state = (
        ", ".join(word for word, on in (("up", info.up), ("running", info.running)) if on) or "down"
    )
    lines = [
        f"{info.name} (ifindex {info.ifindex}{', ' + info.kind if info.kind else ''})",
        f"  link:       mac {info.mac or '-'}  mtu {info.mtu}  {state}"
        f" (operstate {info.operstate})",
    ]
    if info.driver is None:
        lines.append("  driver:     none reported (ETHTOOL_GDRVINFO unsupported)")
    else:
        d = info.driver
        labelled = (("version", d.version), ("firmware", d.firmware), ("bus", d.bus_info))
        extra = "".join(f"  {label} {value}" for label, value in labelled if value)
        lines.append(f"  driver:     {d.driver or '-'}{extra}")
    if info.rx_queues is None:
        lines.append("  queues:     unknown")
    else:
        queues = (
            f"  queues:     rx {info.rx_queues}  tx {info.tx_queues}  (from {info.queues_source})"
        )
        c = info.channels
        if c is not None:
            queues += (
                f"; channels rx {c.rx}/{c.max_rx}  tx {c.tx}/{c.max_tx}  "
                f"combined {c.combined}/{c.max_combined} (current/max)"
            )
        lines.append(queues)
    features = info.xdp_features
    if features is None:
        lines.append(
            "  xdp:        features unknown"
            " (no answer from the netdev genetlink family: kernel < 6.3?)"
        )
    else:
        lines.append(f"  xdp:        {', '.join(features.actions) or 'none'}")
        zerocopy = "yes" if info.zerocopy else "no"
        if features.zc_max_segs is not None:
            zerocopy += f" (zc max segs {features.zc_max_segs})"
        lines.append(f"  zero-copy:  {zerocopy}")
        if info.kind == "veth" and info.native_xdp and "ndo-xmit" not in features:
            lines.append(
                "  note:       not an XDP_REDIRECT target now (no ndo-xmit): veth adds it while"
                " its peer has a native XDP program"
            )
        if features.rx_metadata is not None:
            lines.append(f"  rx meta:    {', '.join(features.rx_metadata) or 'none'}")
        if features.xsk is not None:
            lines.append(f"  xsk tx:     {', '.join(features.xsk) or 'none'}")
    if not info.programs:
        lines.append("  programs:   none attached")
    for n, program in enumerate(info.programs):
        label = "  programs:  " if n == 0 else "             "
        name = f" {program.name!r}" if program.name is not None else " (name needs CAP_SYS_ADMIN)"
        lines.append(f"{label} {program.mode} id {program.id}{name}")
    lines.append(f"  advice:     {info.advice}")
    return "\n".join(lines)
