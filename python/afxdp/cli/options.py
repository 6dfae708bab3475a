"""The command line: the parser, xdpsock's familiar socket options and the checks on each value.

Every value is checked here, before anything is created, so a bad option is one line on stderr
and exit status 2 (argparse's own convention), never a traceback.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import afxdp

DESCRIPTION = (
    "The ``afxdp`` command: xdpsock's workloads, a capture tool and a generator, from Python."
)
COMMANDS_HELP = """\
    afxdp lab                      the main job in a private veth lab (no spare NIC needed)
    afxdp rxdrop IFACE             receive and drop, with live rates
    afxdp txonly IFACE             transmit a packet template as fast as possible
    afxdp l2fwd IFACE [IFACE2]     swap MACs and send back (or forward to IFACE2)
    afxdp rebroadcast IFACE        destination MAC := ff:ff:ff:ff:ff:ff, send back
    afxdp dump IFACE               capture what reaches the socket (pcap with --write)
    afxdp gen IFACE                kernel-speed traffic generator (BPF_PROG_TEST_RUN)
    afxdp info IFACE               driver, queues, XDP modes and zero-copy support"""

#: The longest run any command accepts, in seconds.
MAX_DURATION = 24 * 3600.0
PROTOCOLS = {"icmp": 1, "tcp": 6, "udp": 17, "icmpv6": 58, "sctp": 132}
#: The jobs of ``afxdp lab``, in the order ``--job all`` runs them (see :mod:`afxdp.cli.labjobs`).
LAB_JOB_NAMES = ("gen-rx", "dns-flood", "rebroadcast")


class UsageError(Exception):
    """A bad option value: reported as one line, exit status 2."""


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


def _add_socket_options(p: argparse.ArgumentParser, *, rx: bool = True) -> None:
    """xdpsock's familiar options."""
    p.add_argument("ifname", metavar="IFACE", help="network interface")
    p.add_argument("-q", "--queue", type=_queue, default=0, help="queue id (default 0)")
    copy = p.add_mutually_exclusive_group()
    copy.add_argument(
        "-c", "--copy", dest="zerocopy", action="store_const", const=False, help="force copy mode"
    )
    copy.add_argument(
        "-z",
        "--zero-copy",
        dest="zerocopy",
        action="store_const",
        const=True,
        help="force zero-copy mode (default: zero-copy when the driver has it)",
    )
    if rx:
        mode = p.add_mutually_exclusive_group()
        mode.add_argument(
            "-N",
            "--native",
            dest="mode",
            action="store_const",
            const="native",
            help="attach the XDP program in native (driver) mode",
        )
        mode.add_argument(
            "-S",
            "--generic",
            dest="mode",
            action="store_const",
            const="generic",
            help="attach the XDP program in generic (skb) mode (default: native, else generic)",
        )
        p.set_defaults(mode="auto")
        p.add_argument(
            "--port",
            type=_port,
            action="append",
            default=[],
            help="only packets to this destination port leave the kernel stack (repeatable)",
        )
        p.add_argument(
            "--proto",
            type=_protocol,
            default=None,
            help="only this IP protocol leaves the kernel stack (udp, tcp, icmp, N)",
        )
    p.add_argument("-b", "--batch", type=_positive_u32, default=64, help="frames per call (64)")
    p.add_argument("--frames", type=_positive_u32, default=4096, help="UMEM frames (4096)")
    p.add_argument(
        "-f",
        "--frame-size",
        type=_positive_u32,
        default=4096,
        help="UMEM frame size: 2048 or 4096 (4096)",
    )
    p.add_argument(
        "-m",
        "--no-need-wakeup",
        dest="need_wakeup",
        action="store_false",
        help="bind without XDP_USE_NEED_WAKEUP",
    )
    p.add_argument(
        "-d",
        "--duration",
        type=_duration,
        default=10.0,
        help="stop after this many seconds (default 10)",
    )
    p.add_argument(
        "-C", "--count", type=_positive_int, default=None, help="stop after this many packets"
    )
    p.add_argument(
        "-i",
        "--interval",
        type=_duration,
        default=1.0,
        help="seconds between rate lines (default 1)",
    )


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
    """The ``afxdp`` parser; ``args.command`` names the subcommand to run."""
    p = argparse.ArgumentParser(
        prog="afxdp",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=COMMANDS_HELP,
    )
    p.add_argument("--version", action="version", version=f"afxdp {afxdp.__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    q = sub.add_parser("lab", help="the main job in a private veth lab (no spare NIC needed)")
    q.add_argument(
        "-d",
        "--duration",
        type=_duration,
        default=9.0,
        help="total seconds, shared by the jobs (default 9)",
    )
    q.add_argument(
        "--job",
        choices=["all", *LAB_JOB_NAMES],
        default="all",
        help="run one job only (default: all three, one after the other)",
    )
    q.add_argument(
        "--mode",
        choices=["auto", "native", "generic"],
        default="native",
        help="XDP attach mode of the receivers (default native)",
    )
    q.add_argument("-b", "--batch", type=_positive_u32, default=64, help="frames per call (64)")
    q.add_argument("-s", "--size", type=int, default=64, help="frame size in bytes, >= 60 (64)")
    q.add_argument(
        "--rate",
        type=_positive_int,
        default=None,
        help="generator packets/s (default: as fast as it goes; 10,000 with --run)",
    )
    q.add_argument(
        "--run",
        nargs=argparse.REMAINDER,
        metavar="SCRIPT ARGS",
        help="run SCRIPT IFACE ARGS... in namespace b under generated traffic "
        "(e.g. --run examples/dumpframes.py --count 5)",
    )

    for name, text in (
        ("rxdrop", "receive and drop"),
        ("rebroadcast", "destination MAC := broadcast, send back out"),
    ):
        q = sub.add_parser(name, help=text)
        _add_socket_options(q)

    q = sub.add_parser("l2fwd", help="swap MAC addresses and send back (or forward to IFACE2)")
    _add_socket_options(q)
    q.add_argument(
        "ifname2",
        metavar="IFACE2",
        nargs="?",
        default=None,
        help="forward to this interface instead (frames are copied)",
    )

    q = sub.add_parser("txonly", help="transmit a packet template as fast as possible")
    _add_socket_options(q, rx=False)
    q.add_argument("-s", "--size", type=int, default=64, help="packet size, >= 60 (64)")
    q.add_argument("--packet", type=_hex_packet, default=None, help="the frame to send, in hex")

    q = sub.add_parser("dump", help="capture frames that reach the socket (pcap with --write)")
    _add_socket_options(q)
    q.set_defaults(count=10)
    q.add_argument(
        "-w",
        "--write",
        metavar="FILE",
        default=None,
        help="write a pcap file (tcpdump, Wireshark, scapy read it)",
    )

    q = sub.add_parser("gen", help="kernel-speed traffic generator (BPF_PROG_TEST_RUN)")
    q.add_argument("ifname", metavar="IFACE")
    q.add_argument("-C", "--count", type=_positive_int, default=None, help="packets to push")
    q.add_argument(
        "-d",
        "--duration",
        type=_duration,
        default=None,
        help="seconds (default 10 when --count is not given)",
    )
    q.add_argument("-r", "--rate", type=_positive_int, default=None, help="packets/s limit")
    q.add_argument("-s", "--size", type=int, default=64, help="packet size, >= 60 (64)")
    q.add_argument("--packet", type=_hex_packet, default=None, help="the frame to send, in hex")
    q.add_argument(
        "--src-ports",
        type=_src_ports,
        default=1,
        help="vary the UDP source port over N values (flows for multi-queue receivers)",
    )

    q = sub.add_parser("info", help="driver, queues, XDP modes and zero-copy support")
    q.add_argument("ifname", metavar="IFACE")

    for q in sub.choices.values():
        q.add_argument(
            "--json",
            action="store_true",
            help="print JSON Lines: one object per rate line and a final summary (raw integers)",
        )
    return p
