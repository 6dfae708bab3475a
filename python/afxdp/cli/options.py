"""The command line: the parser, xdpsock's familiar socket options and the checks on each value.

Every value is checked here, before anything is created, so a bad option is one line on stderr
and exit status 2 (argparse's own convention), never a traceback.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import afxdp
from afxdp import packet

DESCRIPTION = "xdpsock's workloads, a capture tool and a generator, from Python (AF_XDP)."
COMMANDS_HELP = """\
commands (afxdp COMMAND --help for each one's options and an example):
    afxdp lab                      the main job in a private veth lab (no spare NIC needed)
    afxdp rxdrop IFACE             receive and drop, with live rates
    afxdp txonly IFACE             transmit a packet template as fast as possible
    afxdp l2fwd IFACE [IFACE2]     swap MACs and send back (or forward to IFACE2)
    afxdp rebroadcast IFACE        destination MAC := ff:ff:ff:ff:ff:ff, send back
    afxdp dump IFACE               capture what reaches the socket (pcap with --write)
    afxdp gen IFACE                kernel-speed traffic generator (BPF_PROG_TEST_RUN)
    afxdp info IFACE               driver, queues, XDP modes and zero-copy support

IFACE can also be given as -i/--interface IFACE, as xdpsock spells it. Every command takes
--json for scripts."""

#: The longest run any command accepts, in seconds.
MAX_DURATION = 24 * 3600.0
PROTOCOLS = {"icmp": 1, "tcp": 6, "udp": 17, "icmpv6": 58, "sctp": 132}
#: The jobs of ``afxdp lab``, in the order ``--job all`` runs them (see :mod:`afxdp.cli.labjobs`).
LAB_JOB_NAMES = ("gen-rx", "dns-flood", "rebroadcast")


#: The template's defaults (txonly and gen): a broadcast frame between private addresses.
#: A real target is set with --dst-mac, --dst-ip and --dst-port.
DEFAULT_DST_MAC = "ff:ff:ff:ff:ff:ff"
DEFAULT_SRC_IP = "10.255.255.1"
DEFAULT_DST_IP = "10.255.255.2"
DEFAULT_PORT = 9


class UsageError(Exception):
    """A bad option value: reported as one line, exit status 2."""


#: ``-B`` alone: xdpsock's busy-poll timeout in microseconds (its SO_BUSY_POLL value).
XDPSOCK_BUSY_POLL_USECS = 20
#: The largest SO_BUSY_POLL (an int) and SO_BUSY_POLL_BUDGET (a u16) the kernel takes.
MAX_BUSY_POLL_USECS = (1 << 31) - 1
MAX_BUSY_POLL_BUDGET = (1 << 16) - 1
#: ``--coalesce``: at most 1 s, the most ``recv(coalesce=)`` takes.
MAX_COALESCE_USECS = 1_000_000

#: The largest IPv4 frame: an Ethernet header and a 65535-byte IPv4 packet.
MAX_FRAME = 14 + 65535
#: The lab's veth MTU plus the Ethernet header.
MAX_LAB_FRAME = 1514
U32_MAX = (1 << 32) - 1
I64_MAX = (1 << 63) - 1


def _int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {text!r}") from None


def _positive(high: int) -> Callable[[str], int]:
    """An argparse type: an integer in 1..high (the range of what it is passed to)."""

    def positive_int(text: str) -> int:
        value = _int(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, not {value}")
        if value > high:
            raise argparse.ArgumentTypeError(f"must be 1..{high}, not {value}")
        return value

    return positive_int


_positive_int = _positive(I64_MAX)  # counts and rates
_positive_u32 = _positive(U32_MAX)  # frame counts and sizes, batch sizes


def _queue(text: str) -> int:
    value = _int(text)
    if not 0 <= value <= U32_MAX:
        raise argparse.ArgumentTypeError(f"queue must be 0..{U32_MAX}, not {value}")
    return value


def _queues(text: str) -> list[int] | str:
    """``all``, or queue ids separated by commas (``0,2``): the queues of a Port."""
    if text.strip().lower() == "all":
        return "all"
    queues = [_queue(part) for part in text.split(",") if part.strip()]
    if not queues:
        raise argparse.ArgumentTypeError(f"expected 'all' or queue ids like 0,2, not {text!r}")
    if len(set(queues)) != len(queues):
        raise argparse.ArgumentTypeError(f"a queue is listed twice in {text!r}")
    return queues


def _src_ports(text: str) -> int:
    value = _int(text)
    if not 1 <= value <= 65536:
        raise argparse.ArgumentTypeError(f"must be 1..65536, not {value}")
    return value


def check_size(args: argparse.Namespace) -> None:
    """Raises UsageError when ``--size`` cannot be a frame of this command."""
    size = getattr(args, "size", None)
    if size is None:
        return
    if size < 60:
        raise UsageError(f"--size must be at least 60 bytes, not {size}")
    if args.command == "lab" and size > MAX_LAB_FRAME:
        raise UsageError(
            f"--size must be at most {MAX_LAB_FRAME} bytes (the lab's MTU is 1500), not {size}"
        )
    if size > MAX_FRAME:
        raise UsageError(f"--size must be at most {MAX_FRAME} bytes, not {size}")
    frame_size = getattr(args, "frame_size", None)
    if args.command == "txonly" and args.packet is None and size > frame_size:
        raise UsageError(f"--size {size} does not fit a {frame_size}-byte frame (--frame-size)")


def _duration(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of seconds {text!r}") from None
    if not 0 < value <= MAX_DURATION:
        raise argparse.ArgumentTypeError(f"must be in (0, {MAX_DURATION:.0f}] seconds, not {text}")
    return value


def _protocol(text: str) -> int:
    if text.lower() in PROTOCOLS:
        return PROTOCOLS[text.lower()]
    try:
        value = int(text, 0)
    except ValueError:
        names = ", ".join(PROTOCOLS)
        raise argparse.ArgumentTypeError(
            f"unknown protocol {text!r} (use {names} or a number)"
        ) from None
    if not 0 <= value <= 255:
        raise argparse.ArgumentTypeError(f"protocol number must be 0..255, not {value}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0..65535, not {value}")
    return value


def _hex_packet(text: str) -> bytes:
    cleaned = text.replace(":", "").replace(" ", "")
    try:
        data = bytes.fromhex(cleaned)
    except ValueError:
        raise argparse.ArgumentTypeError(
            "--packet must be hex digits (e.g. ffffffffffff0200...)"
        ) from None
    if len(data) < 14:
        raise argparse.ArgumentTypeError(
            f"--packet is {len(data)} bytes; a frame needs at least 14"
        )
    return data


def _count_or_zero(text: str) -> int:
    """``--count`` of dump: 0 means no limit (until interrupted)."""
    value = _int(text)
    if not 0 <= value <= I64_MAX:
        raise argparse.ArgumentTypeError(f"must be 0..{I64_MAX} (0: no limit), not {value}")
    return value


def _mac(text: str) -> str:
    try:
        packet.mac_bytes(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def _ipv4(text: str) -> str:
    try:
        packet.ip4_bytes(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{e} (the template is IPv4/UDP)") from None
    return text


# --- the option tables ------------------------------------------------------------------------
#
# Each subcommand is a list of option tables; an option is its flags and add_argument's keywords,
# and options that share a `group` exclude each other. A new option is one more row.


@dataclass(frozen=True)
class Opt:
    """One command-line option: ``add_argument(*flags, **kwargs)``; `group` names a mutually
    exclusive group of the subcommand."""

    flags: tuple[str, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    group: str | None = None


def _opt(*flags: str, group: str | None = None, **kwargs: Any) -> Opt:
    return Opt(flags, kwargs, group)


#: The interface: positional (``afxdp rxdrop eth0``) or xdpsock's ``-i/--interface eth0``.
INTERFACE = (
    _opt("ifname", metavar="IFACE", nargs="?", default=None, help="network interface"),
    _opt(
        "-i",
        "--interface",
        dest="interface",
        metavar="IFACE",
        default=None,
        help="network interface (xdpsock's spelling; instead of the positional IFACE)",
    ),
)

#: xdpsock's socket and run options, for every workload on a socket.
SOCKET = (
    _opt("-q", "--queue", type=_queue, default=0, help="queue id (default 0)"),
    _opt(
        "-c",
        "--copy",
        group="copy",
        dest="zerocopy",
        action="store_const",
        const=False,
        help="force copy mode",
    ),
    _opt(
        "-z",
        "--zero-copy",
        group="copy",
        dest="zerocopy",
        action="store_const",
        const=True,
        help="force zero-copy mode (default: zero-copy when the driver has it)",
    ),
    _opt("-b", "--batch", type=_positive_u32, default=64, help="frames per call (64)"),
    _opt("--frames", type=_positive_u32, default=4096, help="UMEM frames (4096)"),
    _opt(
        "-f",
        "--frame-size",
        type=_positive_u32,
        default=4096,
        help="UMEM frame size: a power of two from 2048 to the page size (4096)",
    ),
    _opt(
        "-m",
        "--no-need-wakeup",
        dest="need_wakeup",
        action="store_false",
        help="bind without XDP_USE_NEED_WAKEUP",
    ),
    _opt(
        "-B",
        group="busy",
        dest="busy_poll",
        action="store_const",
        const=XDPSOCK_BUSY_POLL_USECS,
        default=None,
        help=f"preferred busy polling as xdpsock's -B: --busy-poll {XDPSOCK_BUSY_POLL_USECS}",
    ),
    _opt(
        "--busy-poll",
        group="busy",
        dest="busy_poll",
        type=_positive(MAX_BUSY_POLL_USECS),
        metavar="USECS",
        help="preferred busy polling: SO_PREFER_BUSY_POLL, SO_BUSY_POLL of USECS microseconds and "
        "SO_BUSY_POLL_BUDGET on every socket (needs CAP_NET_ADMIN; default: off)",
    ),
    _opt(
        "--busy-budget",
        type=_positive(MAX_BUSY_POLL_BUDGET),
        default=None,
        metavar="N",
        help="packets one busy poll may process, with -B/--busy-poll (default: --batch, as "
        f"xdpsock, at most {MAX_BUSY_POLL_BUDGET})",
    ),
)

#: Receiving on several queues at once, through one afxdp.Port.
QUEUES = (
    _opt(
        "--queues",
        type=_queues,
        default=None,
        metavar="all|Q,Q,...",
        help="receive on these queues through one Port (a socket per queue over one shared "
        "UMEM of --frames frames per queue) instead of -q; rates per queue",
    ),
)

_INTERVAL = _opt(
    "-n",
    "--interval",
    type=_duration,
    default=1.0,
    help="seconds between rate lines (default 1)",
)

#: When a workload stops.
RUN = (
    _opt(
        "-d",
        "--duration",
        type=_duration,
        default=10.0,
        help="stop after this many seconds (default 10)",
    ),
    _opt("-C", "--count", type=_positive_int, default=None, help="stop after this many packets"),
    _INTERVAL,
)

#: When dump stops: --count 0 (no limit) runs until interrupted unless --duration is given.
DUMP_RUN = (
    _opt(
        "-d",
        "--duration",
        type=_duration,
        default=None,
        help="stop after this many seconds (default 10; none with --count 0)",
    ),
    _opt(
        "-C",
        "--count",
        type=_count_or_zero,
        default=10,
        help="stop after this many frames (default 10; 0: until interrupted)",
    ),
    _INTERVAL,
)

#: The receivers' XDP program: attach mode and match rules.
RECEIVE = (
    _opt(
        "-N",
        "--native",
        group="mode",
        dest="mode",
        action="store_const",
        const="native",
        default="auto",
        help="attach the XDP program in native (driver) mode",
    ),
    _opt(
        "-S",
        "--generic",
        group="mode",
        dest="mode",
        action="store_const",
        const="generic",
        help="attach the XDP program in generic (skb) mode (default: native, else generic)",
    ),
    _opt(
        "--port",
        type=_port,
        action="append",
        default=[],
        help="only packets to this destination port leave the kernel stack (repeatable)",
    ),
    _opt(
        "--proto",
        type=_protocol,
        default=None,
        help="only this IP protocol leaves the kernel stack (udp, tcp, icmp, N)",
    ),
    _opt(
        "--coalesce",
        type=_positive(MAX_COALESCE_USECS),
        default=None,
        metavar="USECS",
        help="with fewer than --batch frames ready, let frames gather for USECS microseconds "
        "before each receive (recv(coalesce=)): fewer wakeups for more latency (default: off)",
    ),
)

#: The packet template of txonly and gen: IPv4/UDP from these fields, or ``--packet HEX``.
TEMPLATE = (
    _opt("-s", "--size", type=int, default=64, help="packet size, >= 60 (64)"),
    _opt("--packet", type=_hex_packet, default=None, help="the whole frame to send, in hex"),
    _opt(
        "--src-mac",
        type=_mac,
        default=None,
        help="source MAC (default: the interface's own)",
    ),
    _opt("--dst-mac", type=_mac, default=None, help=f"destination MAC (default {DEFAULT_DST_MAC})"),
    _opt("--src-ip", type=_ipv4, default=None, help=f"source IPv4 address ({DEFAULT_SRC_IP})"),
    _opt("--dst-ip", type=_ipv4, default=None, help=f"destination IPv4 address ({DEFAULT_DST_IP})"),
    _opt("--src-port", type=_port, default=None, help=f"UDP source port ({DEFAULT_PORT})"),
    _opt("--dst-port", type=_port, default=None, help=f"UDP destination port ({DEFAULT_PORT})"),
)
#: The template fields ``--packet`` excludes (the argparse dests of TEMPLATE's field options).
TEMPLATE_FIELDS = ("src_mac", "dst_mac", "src_ip", "dst_ip", "src_port", "dst_port")

JSON = (
    _opt(
        "--json",
        action="store_true",
        help="print JSON Lines instead of text (raw integers): the objects README.md lists for "
        "this command, the last a summary",
    ),
)


@dataclass(frozen=True)
class Command:
    """A subcommand: its one-line help, its description, an example and its option tables."""

    help: str
    description: str
    example: str
    options: tuple[tuple[Opt, ...], ...]
    defaults: dict[str, Any] = field(default_factory=dict)


_LEAVES_STACK = (
    "Packets the XDP program matches (every packet of the queue without --port/--proto) are "
    "redirected to the socket and leave the kernel stack: the host does not see them while "
    "it runs."
)

SUBCOMMANDS: dict[str, Command] = {
    "lab": Command(
        "the main job in a private veth lab (no spare NIC needed)",
        "Builds two network namespaces and a veth pair, runs the jobs (the kernel generator "
        "into a Python receiver, a DNS-query flood, a rebroadcast round trip) or --run SCRIPT "
        "under generated traffic, and removes everything on exit, Ctrl-C or error.",
        "afxdp lab --duration 6\n  afxdp lab --queues 4\n"
        "  afxdp lab --run examples/dumpframes.py --count 5",
        (
            (
                _opt(
                    "-d",
                    "--duration",
                    type=_duration,
                    default=9.0,
                    help="total seconds, shared by the jobs (default 9)",
                ),
                _opt(
                    "--job",
                    choices=["all", *LAB_JOB_NAMES],
                    default="all",
                    help="run one job only (default: all three, one after the other)",
                ),
                _opt(
                    "--mode",
                    choices=["auto", "native", "generic"],
                    default="native",
                    help="XDP attach mode of the receivers (default native)",
                ),
                _opt(
                    "--queues",
                    type=_positive(64),
                    default=1,
                    help="queues of each veth end (default 1): with more, the receivers are "
                    "Ports on every queue, the senders spread over them, and the rate lines "
                    "show each queue's rate",
                ),
                _opt("-b", "--batch", type=_positive_u32, default=64, help="frames per call (64)"),
                _opt("-s", "--size", type=int, default=64, help="frame size in bytes, >= 60 (64)"),
                _opt(
                    "--rate",
                    type=_positive_int,
                    default=None,
                    help="generator packets/s (default: as fast as it goes; 10,000 with --run)",
                ),
                _opt(
                    "--run",
                    nargs=argparse.REMAINDER,
                    metavar="SCRIPT ARGS",
                    help="run SCRIPT IFACE ARGS... in namespace b under generated traffic "
                    "(e.g. --run examples/dumpframes.py --count 5); examples/NAME.py finds the "
                    "examples shipped with afxdp from any directory",
                ),
            ),
            JSON,
        ),
    ),
    "rxdrop": Command(
        "receive and drop, with live rates",
        "Receives on one queue and drops every frame, printing packets/s, bits/s and the "
        f"kernel's drop counters each interval. {_LEAVES_STACK}",
        "afxdp rxdrop -i eth0 -q 0 -N --port 4789 -d 30\n  afxdp rxdrop eth0 --queues all",
        (INTERFACE, SOCKET, QUEUES, RUN, RECEIVE, JSON),
    ),
    "txonly": Command(
        "transmit a packet template as fast as possible",
        "Writes one IPv4/UDP template (or --packet HEX) into every UMEM frame and transmits "
        "it in a loop on one queue.",
        "afxdp txonly -i eth0 --dst-mac 52:54:00:12:34:56 --dst-ip 192.0.2.7 -C 1000000",
        (INTERFACE, SOCKET, RUN, TEMPLATE, JSON),
    ),
    "l2fwd": Command(
        "swap MAC addresses and send back (or forward to IFACE2)",
        "Receives, swaps the source and destination MAC of each frame and sends it back out "
        "of the same interface, or forwards it to IFACE2 (zero copy: the sockets share one "
        "UMEM; with --queues, out of the same queue of IFACE2). " + _LEAVES_STACK,
        "afxdp l2fwd eth0 -S\n  afxdp l2fwd -i eth0 eth1\n  afxdp l2fwd eth0 eth1 --queues 0,1",
        (
            INTERFACE,
            (
                _opt(
                    "ifname2",
                    metavar="IFACE2",
                    nargs="?",
                    default=None,
                    help="forward to this interface instead (zero copy, one shared UMEM)",
                ),
            ),
            SOCKET,
            QUEUES,
            RUN,
            RECEIVE,
            JSON,
        ),
    ),
    "rebroadcast": Command(
        "destination MAC := ff:ff:ff:ff:ff:ff, send back out",
        "Receives, sets each frame's destination MAC to broadcast in place and sends the same "
        f"frames back out. {_LEAVES_STACK}",
        "afxdp rebroadcast eth0 --port 9000",
        (INTERFACE, SOCKET, QUEUES, RUN, RECEIVE, JSON),
    ),
    "dump": Command(
        "capture frames that reach the socket (pcap with --write)",
        "Prints one line per frame, or writes a pcap file (-w FILE; -w - for standard output). "
        "Unlike tcpdump this takes the packets, it does not copy them: "
        + _LEAVES_STACK[0].lower()
        + _LEAVES_STACK[1:]
        + " Use --port/--proto to take only what you want to see. --count 0 captures until "
        "interrupted (Ctrl-C), then prints the summary.",
        "afxdp dump eth0 --port 53 -C 100 -w dns.pcap\n"
        "  afxdp dump -i eth0 --proto udp -C 0 -w - | tcpdump -n -r -",
        (
            INTERFACE,
            SOCKET,
            QUEUES,
            DUMP_RUN,
            RECEIVE,
            (
                _opt(
                    "-w",
                    "--write",
                    metavar="FILE",
                    default=None,
                    help="write a pcap file (tcpdump, Wireshark, scapy read it); - for stdout",
                ),
            ),
            JSON,
        ),
    ),
    "gen": Command(
        "kernel-speed traffic generator (BPF_PROG_TEST_RUN)",
        "Pushes copies of an IPv4/UDP template (or --packet HEX) out of the interface from "
        "inside the kernel (BPF_PROG_TEST_RUN with live frames), paced with --rate.",
        "afxdp gen -i eth0 --dst-mac 52:54:00:12:34:56 --dst-ip 192.0.2.7 --dst-port 4789 "
        "-C 1000000 --rate 100000",
        (
            INTERFACE,
            (
                _opt("-C", "--count", type=_positive_int, default=None, help="packets to push"),
                _opt(
                    "-d",
                    "--duration",
                    type=_duration,
                    default=None,
                    help="seconds (default 10 when --count is not given)",
                ),
                _opt("-r", "--rate", type=_positive_int, default=None, help="packets/s limit"),
                _opt(
                    "--src-ports",
                    type=_src_ports,
                    default=1,
                    help="vary the UDP source port over N values (flows for multi-queue receivers)",
                ),
            ),
            TEMPLATE,
            JSON,
        ),
    ),
    "info": Command(
        "driver, queues, XDP modes and zero-copy support",
        "Reports what matters before using AF_XDP on an interface: driver, queue counts, XDP "
        "and zero-copy support, the XDP programs already attached. Changes nothing.",
        "afxdp info eth0\n  afxdp info -i eth0 --json",
        (INTERFACE, JSON),
    ),
}


def _add_options(p: argparse.ArgumentParser, table: tuple[Opt, ...]) -> None:
    groups: dict[str, Any] = {}
    for opt in table:
        target: Any = p
        if opt.group is not None:
            if opt.group not in groups:
                groups[opt.group] = p.add_mutually_exclusive_group()
            target = groups[opt.group]
        target.add_argument(*opt.flags, **opt.kwargs)


def resolve_interface(args: argparse.Namespace) -> None:
    """Sets ``args.ifname`` from the positional IFACE or ``-i/--interface``; with ``-i``, a
    positional of l2fwd is IFACE2. Raises UsageError when there is none or one too many."""
    if not hasattr(args, "interface"):
        return
    given = args.interface
    if given is not None and args.ifname is not None:
        if getattr(args, "ifname2", ...) is None:  # afxdp l2fwd -i eth0 eth1
            args.ifname2 = args.ifname
        else:
            raise UsageError(
                f"the interface is given twice ({args.ifname!r} and -i {given!r}): give one"
            )
    if given is not None:
        args.ifname = given
    if args.ifname is None:
        raise UsageError("which interface? give IFACE or -i IFACE")


#: The most frames a Umem takes (the library refuses more).
MAX_FRAMES = 1 << 24


def check_umem(args: argparse.Namespace) -> None:
    """Refuses a ``--frames`` or ``--frame-size`` the Umem would refuse, before anything exists."""
    frames = getattr(args, "frames", None)
    if frames is not None and frames > MAX_FRAMES:
        raise UsageError(f"--frames must be at most {MAX_FRAMES}, not {frames}")
    frame_size = getattr(args, "frame_size", None)
    page = os.sysconf("SC_PAGE_SIZE")
    if frame_size is not None and (
        frame_size < 2048 or frame_size > page or frame_size & (frame_size - 1)
    ):
        raise UsageError(
            f"--frame-size must be a power of two from 2048 to {page} (the page size), "
            f"not {frame_size}"
        )


def check_src_ports(args: argparse.Namespace) -> None:
    """Refuses a ``--src-ports`` that runs past port 65535 from the template's source port."""
    count = getattr(args, "src_ports", None)
    if count is None or getattr(args, "packet", None) is not None:
        return  # a --packet's own port is checked by the generator
    first = args.src_port if args.src_port is not None else DEFAULT_PORT
    if first + count - 1 > 65535:
        raise UsageError(
            f"--src-ports {count} from source port {first} runs past 65535 "
            f"(at most {65536 - first})"
        )


def check(args: argparse.Namespace) -> None:
    """The checks argparse cannot make alone; raises UsageError."""
    resolve_interface(args)
    check_size(args)
    check_umem(args)
    check_src_ports(args)
    if getattr(args, "packet", None) is not None:
        given = [f"--{name.replace('_', '-')}" for name in TEMPLATE_FIELDS if getattr(args, name)]
        if given:
            raise UsageError(f"--packet is the whole frame: leave out {', '.join(given)}")
    check_busy_poll(args)
    if args.command == "dump" and args.write == "-" and args.json:
        raise UsageError("-w - writes the pcap to stdout: --json cannot share it")


def check_busy_poll(args: argparse.Namespace) -> None:
    """Refuses ``--busy-budget`` without busy polling (it would be ignored silently)."""
    budget = getattr(args, "busy_budget", None)
    if budget is not None and getattr(args, "busy_poll", None) is None:
        raise UsageError(f"--busy-budget {budget} needs -B or --busy-poll USECS (busy polling)")


def busy_poll(args: argparse.Namespace) -> tuple[int | None, int | None]:
    """``(busy_poll_usecs, busy_poll_budget)`` for Socket/Port from ``-B``/``--busy-poll`` and
    ``--busy-budget``: the budget defaults to the batch size, as xdpsock's ``-B`` sets it;
    ``(None, None)`` when busy polling is off."""
    usecs = getattr(args, "busy_poll", None)
    if usecs is None:
        return None, None
    budget = args.busy_budget
    if budget is None:
        budget = min(args.batch, MAX_BUSY_POLL_BUDGET)
    return usecs, budget


def coalesce(args: argparse.Namespace) -> float | None:
    """``recv(coalesce=)`` in seconds from ``--coalesce USECS``; None when it is off."""
    usecs = getattr(args, "coalesce", None)
    return None if usecs is None else usecs / 1e6


def rules(args: argparse.Namespace) -> list[afxdp.Rule] | None:
    """The program's match rules from ``--port`` and ``--proto``; None: every packet."""
    ports = getattr(args, "port", [])
    proto = getattr(args, "proto", None)
    if ports:
        return [afxdp.Rule(ip_proto=proto, dst_port=port) for port in ports]
    if proto is not None:
        return [afxdp.Rule(ip_proto=proto)]
    return None


def build_parser() -> argparse.ArgumentParser:
    """The ``afxdp`` parser (from :data:`SUBCOMMANDS`); ``args.command`` names the subcommand."""
    p = argparse.ArgumentParser(
        prog="afxdp",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=COMMANDS_HELP,
    )
    p.add_argument("--version", action="version", version=f"afxdp {afxdp.__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in SUBCOMMANDS.items():
        q = sub.add_parser(
            name,
            help=command.help,
            description=command.description,
            epilog=f"example:\n  {command.example}",
            formatter_class=_Formatter,
        )
        for table in command.options:
            _add_options(q, table)
        q.set_defaults(**command.defaults)
    return p


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Wraps the description to the terminal; keeps the example's lines as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("example:"):
            return super()._fill_text(text, width, indent)
        return argparse.HelpFormatter._fill_text(self, text, width, indent)
