"""Conformance, program group: the kernel cases that run their own XDP program (kernel:
test_xsk.h; programs in progs/xsk_xdp_progs.c). Ours are in tests/fixtures/conformance_xdp.c,
built once per session with clang and loaded with ``afxdp.Program.load``.

The sender is an AF_XDP socket on end a, the receiver a socket on end b registered with the
program; every wait has a deadline. Where afxdp has no API for what a case needs (reading the
kernel's view of the program and its maps, an XSKMAP entry at a key other than the socket's
queue), the test makes the ``bpf()`` system calls itself (:class:`Bpf`).
"""

from __future__ import annotations

import ctypes
import os
import platform
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cases import MODES, Mode

afxdp = pytest.importorskip("afxdp")

from afxdp.testing import numbered_frame, parse_numbered  # noqa: E402

FIXTURE_C = Path(__file__).resolve().parent.parent / "fixtures" / "conformance_xdp.c"
DEADLINE = 5.0  # seconds for any one wait
PACKETS = 256  # per case: the kernel streams more; this wraps the rings and stays quick
MB_PACKETS = 64  # multi-buffer cases (DEFAULT_BATCH_SIZE in the kernel's adjust-tail cases)
JUMBO_MTU = 9000
FRAME = 4096
RX_CAPACITY = FRAME - 256  # packet bytes per received frame (XDP_PACKET_HEADROOM)
EOPNOTSUPP = 95


# --- the C fixture ----------------------------------------------------------------------------


def find_clang() -> str | None:
    for name in ("clang-22", "clang"):
        if path := shutil.which(name):
            return path
    return None


@pytest.fixture(scope="session")
def conformance_object(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/fixtures/conformance_xdp.c compiled with clang (as tests/test_steering.py does)."""
    clang = find_clang()
    if clang is None:
        message = (
            "clang is needed to build the conformance XDP programs "
            "(scripts/install-ebpf-toolchain.sh installs clang-22)"
        )
        if os.environ.get("AFXDP_REQUIRE_PRIVILEGED") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    out = tmp_path_factory.mktemp("bpf") / "conformance_xdp.o"
    multiarch = subprocess.run(
        ["gcc", "-print-multiarch"], capture_output=True, text=True
    ).stdout.strip()
    include = f"-I/usr/include/{multiarch or 'x86_64-linux-gnu'}"
    subprocess.run(
        [clang, "-O2", "-g", "-target", "bpf", include, "-c", str(FIXTURE_C), "-o", str(out)],
        check=True,
    )
    return out


# --- bpf(2), for what afxdp does not expose ---------------------------------------------------

BPF_MAP_UPDATE_ELEM = 2
BPF_PROG_GET_FD_BY_ID = 13
BPF_MAP_GET_FD_BY_ID = 14
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_MAP_TYPE_XSKMAP = 17
_SYS_BPF = {"x86_64": 321, "aarch64": 280}


class Bpf:
    """The few bpf() commands the tests need, on a zeroed 128-byte ``union bpf_attr``."""

    _libc = ctypes.CDLL(None, use_errno=True)

    @classmethod
    def _call(cls, cmd: int, attr: ctypes.Array[ctypes.c_char]) -> int:
        nr = _SYS_BPF.get(platform.machine())
        if nr is None:
            pytest.fail(f"no bpf() syscall number known for {platform.machine()}")
        ret = cls._libc.syscall(nr, cmd, attr, ctypes.sizeof(attr))
        if ret < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return ret

    @staticmethod
    def _attr(*fields: tuple[int, str, int]) -> ctypes.Array[ctypes.c_char]:
        attr = ctypes.create_string_buffer(128)
        for offset, kind, value in fields:
            target = ctypes.c_uint32 if kind == "I" else ctypes.c_uint64
            target.from_buffer(attr, offset).value = value
        return attr

    @classmethod
    def fd_by_id(cls, kind: str, obj_id: int) -> int:
        """A new fd for program or map ``obj_id`` (the caller closes it); OSError ENOENT once
        the kernel freed the object."""
        cmd = BPF_PROG_GET_FD_BY_ID if kind == "prog" else BPF_MAP_GET_FD_BY_ID
        return cls._call(cmd, cls._attr((0, "I", obj_id)))

    @classmethod
    def exists(cls, kind: str, obj_id: int) -> bool:
        try:
            os.close(cls.fd_by_id(kind, obj_id))
        except FileNotFoundError:
            return False
        return True

    @classmethod
    def _info(cls, fd: int, info: ctypes.Array[ctypes.c_char]) -> None:
        addr = ctypes.addressof(info)
        cls._call(
            BPF_OBJ_GET_INFO_BY_FD, cls._attr((0, "I", fd), (4, "I", len(info)), (8, "Q", addr))
        )

    @classmethod
    def prog_map_ids(cls, prog_id: int) -> list[int]:
        """The maps program ``prog_id`` uses (``bpf_prog_info.map_ids``)."""
        ids = (ctypes.c_uint32 * 16)()
        info = ctypes.create_string_buffer(256)
        ctypes.c_uint32.from_buffer(info, 52).value = len(ids)  # nr_map_ids
        ctypes.c_uint64.from_buffer(info, 56).value = ctypes.addressof(ids)  # map_ids
        fd = cls.fd_by_id("prog", prog_id)
        try:
            cls._info(fd, info)
        finally:
            os.close(fd)
        return list(ids[: ctypes.c_uint32.from_buffer(info, 52).value])

    @classmethod
    def map_info(cls, map_id: int) -> tuple[int, int, str]:
        """(type, max_entries, name) of map ``map_id``."""
        info = ctypes.create_string_buffer(128)
        fd = cls.fd_by_id("map", map_id)
        try:
            cls._info(fd, info)
        finally:
            os.close(fd)
        kind = ctypes.c_uint32.from_buffer(info, 0).value
        entries = ctypes.c_uint32.from_buffer(info, 16).value
        return kind, entries, info.raw[24:40].split(b"\0", 1)[0].decode()

    @classmethod
    def xskmap_update(cls, map_id: int, key: int, socket_fd: int) -> None:
        """``xskmap[key] = socket_fd`` (what ``Program.register`` does at the socket's queue)."""
        key_c, value_c = ctypes.c_uint32(key), ctypes.c_uint32(socket_fd)
        fd = cls.fd_by_id("map", map_id)
        try:
            cls._call(
                BPF_MAP_UPDATE_ELEM,
                cls._attr(
                    (0, "I", fd),
                    (8, "Q", ctypes.addressof(key_c)),
                    (16, "Q", ctypes.addressof(value_c)),
                ),
            )
        finally:
            os.close(fd)


def attached_prog_id(lab: Any, side: str = "b") -> int | None:
    """The id of the XDP program on the lab's interface, as ``ip -d link show`` reports it
    (native or generic), or None when nothing is attached."""
    out = lab.run(side, ["ip", "-d", "link", "show", "dev", lab.ifname(side)]).stdout
    found = re.search(r"prog/xdp id (\d+)", out)
    return int(found.group(1)) if found else None


def xskmap_of(prog_id: int) -> int:
    """The id of the XSKMAP program ``prog_id`` uses."""
    xskmaps = [m for m in Bpf.prog_map_ids(prog_id) if Bpf.map_info(m)[0] == BPF_MAP_TYPE_XSKMAP]
    assert len(xskmaps) == 1, xskmaps
    return xskmaps[0]


# --- sockets and traffic ----------------------------------------------------------------------


@dataclass
class Rig:
    lab: Any
    tx: afxdp.Socket  # end a, transmit only
    rx: afxdp.Socket  # end b, registered with prog
    prog: afxdp.Program


@contextmanager
def rig(
    lab: Any, obj: Path, program: str, mode: Mode, *, multi_buffer: bool = False
) -> Iterator[Rig]:
    """``program`` of the fixture loaded on end b in the test's mode, a receiving socket
    registered with it, and a transmit-only socket on end a; all closed afterwards."""
    with ExitStack() as stack:
        with lab.enter("a"):
            tx = stack.enter_context(
                afxdp.Socket(
                    lab.if_a,
                    0,
                    umem=afxdp.Umem(2048, FRAME),
                    rx_size=0,
                    busy_poll_usecs=mode.busy_poll_usecs,
                    multi_buffer=multi_buffer,
                )
            )
        with lab.enter("b"):
            prog = stack.enter_context(
                afxdp.Program.load(
                    obj, lab.if_b, program=program, xsk_map="xsks", mode=mode.xdp_mode
                )
            )
            rx = stack.enter_context(
                afxdp.Socket(
                    lab.if_b,
                    0,
                    umem=afxdp.Umem(4096, FRAME),
                    program=prog,
                    tx_size=0,
                    busy_poll_usecs=mode.busy_poll_usecs,
                    multi_buffer=multi_buffer,
                )
            )
        assert prog.program_name == program and prog.mode == mode.xdp_mode and rx.registered
        yield Rig(lab, tx, rx, prog)


def send_all(tx: afxdp.Socket, packets: list[bytes]) -> None:
    """Queues every packet, in order, and waits until all are completed."""
    sent = 0
    deadline = time.monotonic() + DEADLINE
    while sent < len(packets):
        assert time.monotonic() < deadline, f"sent {sent} of {len(packets)}"
        sent += tx.send_packets(packets[sent:])
        tx.complete()
    while tx.in_flight and time.monotonic() < deadline:
        tx.complete()
        time.sleep(0.0005)
    assert tx.in_flight == 0, f"{tx.in_flight} frames never completed"


@dataclass
class Received:
    data: bytes
    frames: list[int]  # frame lengths (several: a multi-buffer chain)
    hw_timestamp: int | None  # of the first frame: where the program's metadata is
    rx_hash: int | None


def receive(sock: afxdp.Socket, count: int, settle: float = 0.1) -> list[Received]:
    """Receives packets until ``count`` arrived (or the deadline), then for ``settle`` seconds
    more, so that a packet too many is seen too."""
    got: list[Received] = []
    deadline = time.monotonic() + DEADLINE
    settled: float | None = None
    while time.monotonic() < deadline:
        if len(got) >= count:
            settled = settled or time.monotonic() + settle
            if time.monotonic() > settled:
                break
        with sock.recv(256, timeout=0.02) as batch:
            for packet in batch.packets():
                first = packet.frames[0]
                got.append(
                    Received(
                        bytes(packet),
                        [len(f) for f in packet.frames],
                        first.rx_hw_timestamp,
                        first.rx_hash,
                    )
                )
    return got


def frames_of(lab: Any, count: int, size: int = 64, dst: str | None = None) -> list[bytes]:
    return [numbered_frame(seq, size, lab.mac_a, dst or lab.mac_b) for seq in range(count)]


def signed32(value: int | None) -> int | None:
    return None if value is None else value - (1 << 32) if value & 0x80000000 else value


# --- the cases --------------------------------------------------------------------------------


def _stream_ok(sock: afxdp.Socket, sent: list[bytes]) -> None:
    got = receive(sock, len(sent))
    assert [parse_numbered(g.data) for g in got] == list(range(len(sent)))
    assert all(g.data == sent[i] for i, g in enumerate(got))


def _wait_gone(lab: Any, prog_id: int, map_id: int | None) -> None:
    """Waits until nothing is attached to end b and the kernel freed program ``prog_id`` (and
    map ``map_id``); their release is deferred (RCU), hence the poll."""
    deadline = time.monotonic() + DEADLINE
    left: list[str] = []
    while time.monotonic() < deadline:
        checks = [
            (f"a program attached to {lab.if_b}", attached_prog_id(lab) is None),
            (f"program {prog_id} exists", not Bpf.exists("prog", prog_id)),
        ]
        if map_id is not None:
            checks.append((f"XSKMAP {map_id} exists", not Bpf.exists("map", map_id)))
        left = [what for what, gone in checks if not gone]
        if not left:
            return
        time.sleep(0.01)
    raise AssertionError(f"still there after {DEADLINE} s: {left}")


def test_XDP_PROG_CLEANUP(lab: Any, conformance_object: Path, mode: Mode) -> None:
    """Traffic through one socket, then through a second one of the same Umem and queue that
    takes its XSKMAP entry over (the kernel's swap_xsk_resources); after everything is closed,
    nothing is attached to the interface and the kernel has freed the program and its XSKMAP.
    Twice, so the second attach starts from what the first left: the first time the sockets
    close before the program, the second time the program closes first, while a socket is
    still in its XSKMAP (the program goes at once; the map lives until that socket closes,
    because an XSKMAP entry holds a reference on its map)."""
    for program_first in (False, True):
        assert attached_prog_id(lab) is None
        with rig(lab, conformance_object, "cf_redirect", mode) as r:
            prog_id = attached_prog_id(lab)
            assert prog_id is not None
            link = lab.run("b", ["ip", "link", "show", "dev", lab.if_b]).stdout
            assert ("xdpgeneric" in link) == (mode.xdp_mode == "generic"), link
            map_id = xskmap_of(prog_id)
            assert Bpf.exists("prog", prog_id) and Bpf.exists("map", map_id)
            assert Bpf.map_info(map_id)[2] == "xsks"
            sent = frames_of(lab, PACKETS)
            send_all(r.tx, sent)
            _stream_ok(r.rx, sent)
            with lab.enter("b"):
                second = afxdp.Socket(
                    lab.if_b, 0, umem=r.rx.umem, tx_size=0, busy_poll_usecs=mode.busy_poll_usecs
                )
            with second:
                r.prog.register(second)
                assert second.registered and not r.rx.registered
                send_all(r.tx, sent)
                _stream_ok(second, sent)
                assert receive(r.rx, 0, settle=0.05) == []
                if program_first:
                    r.prog.close()
                    assert not r.prog.attached and not second.registered
                    _wait_gone(lab, prog_id, None)
                    assert Bpf.exists("map", map_id), "the XSKMAP went while a socket was in it"
                    send_all(r.tx, sent)
                    assert receive(second, 0, settle=0.05) == [], "received with no program"
        assert r.prog.closed and not r.prog.attached and r.rx.closed and second.closed
        _wait_gone(lab, prog_id, map_id)


def test_XDP_DROP_HALF(lab: Any, conformance_object: Path, mode: Mode) -> None:
    """The program drops every other frame it sees: exactly the 1st, 3rd, ... arrive, in order,
    intact."""
    with rig(lab, conformance_object, "cf_drop_half", mode) as r:
        sent = frames_of(lab, PACKETS)
        send_all(r.tx, sent)
        got = receive(r.rx, PACKETS // 2)
        assert [parse_numbered(g.data) for g in got] == list(range(0, PACKETS, 2))
        assert all(g.data == sent[2 * i] for i, g in enumerate(got))
        assert r.rx.stats().rx_dropped == 0


def test_XDP_SHARED_UMEM(lab: Any, conformance_object: Path, mode: Mode) -> None:
    """Two sockets of one Umem on one queue, in XSKMAP entries 0 and 1; the program picks the
    entry from the destination MAC (as the kernel's xsk_xdp_shared_umem does). Even frames go
    to end b's own MAC (entry 0), odd ones to a MAC ending in 03 (entry 1): each socket gets
    exactly its frames, in order, intact."""
    other_mac = "02:00:00:00:00:03"
    with ExitStack() as stack:
        with lab.enter("a"):
            tx = stack.enter_context(
                afxdp.Socket(
                    lab.if_a,
                    0,
                    umem=afxdp.Umem(2048, FRAME),
                    rx_size=0,
                    busy_poll_usecs=mode.busy_poll_usecs,
                )
            )
        with lab.enter("b"):
            prog = stack.enter_context(
                afxdp.Program.load(
                    conformance_object,
                    lab.if_b,
                    program="cf_steer_by_mac",
                    xsk_map="xsks",
                    mode=mode.xdp_mode,
                )
            )
            umem = afxdp.Umem(4096, FRAME)
            first = stack.enter_context(
                afxdp.Socket(
                    lab.if_b,
                    0,
                    umem=umem,
                    program=prog,
                    tx_size=0,
                    busy_poll_usecs=mode.busy_poll_usecs,
                )
            )
            second = stack.enter_context(
                afxdp.Socket(
                    lab.if_b, 0, umem=umem, tx_size=0, busy_poll_usecs=mode.busy_poll_usecs
                )
            )
        assert first.shares_fill_ring and second.shares_fill_ring
        # afxdp registers a socket at the key of its queue only (Program.register): entry 1
        # of the XSKMAP is written here with bpf() directly.
        prog_id = attached_prog_id(lab)
        assert prog_id is not None
        Bpf.xskmap_update(xskmap_of(prog_id), 1, second.fileno())
        assert first.registered
        sent = [
            numbered_frame(seq, 64, lab.mac_a, lab.mac_b if seq % 2 == 0 else other_mac)
            for seq in range(PACKETS)
        ]
        send_all(tx, sent)
        for sock, parity in ((first, 0), (second, 1)):
            got = receive(sock, PACKETS // 2)
            assert [parse_numbered(g.data) for g in got] == list(range(parity, PACKETS, 2))
            assert all(g.data == sent[parity + 2 * i] for i, g in enumerate(got))
        assert first.stats().received + second.stats().received == PACKETS


def _metadata(rig_: Rig, sent: list[bytes]) -> None:
    send_all(rig_.tx, sent)
    got = receive(rig_.rx, len(sent))
    # A packet longer than a frame arrives as a chain (multi-buffer sockets only).
    assert [len(g.frames) for g in got] == [-(-len(p) // RX_CAPACITY) for p in sent[: len(got)]]
    assert [parse_numbered(g.data) for g in got] == list(range(len(sent)))
    assert all(g.data == sent[i] for i, g in enumerate(got))
    # The program numbered the frames it redirected; the numbers reach Python through afxdp's
    # metadata record (rx_hw_timestamp and rx_hash carry them; docs/timestamps.md).
    assert [g.hw_timestamp for g in got] == list(range(len(sent)))
    assert [g.rx_hash for g in got] == list(range(len(sent)))


def test_XDP_METADATA_COPY(lab: Any, conformance_object: Path, mode: Mode) -> None:
    with rig(lab, conformance_object, "cf_metadata", mode) as r:
        _metadata(r, frames_of(lab, PACKETS))


def test_XDP_METADATA_COPY_MULTI_BUFF(
    lab_factory: Any, conformance_object: Path, mode: Mode
) -> None:
    """The same on multi-buffer sockets with a frags program, 9000-MTU packets (chains of three
    frames, the metadata before the first) between small ones."""
    lab = lab_factory(mtu=JUMBO_MTU)
    sizes = [JUMBO_MTU + 14, 64, 4000, 3840]
    with rig(lab, conformance_object, "cf_metadata", mode, multi_buffer=True) as r:
        sent = [
            numbered_frame(seq, sizes[seq % len(sizes)], lab.mac_a, lab.mac_b)
            for seq in range(MB_PACKETS)
        ]
        _metadata(r, sent)


# --- bpf_xdp_adjust_tail ----------------------------------------------------------------------
#
# The kernel's cases send DEFAULT_BATCH_SIZE (64) packets of 128 bytes (6144 with multi-buffer)
# through xsk_xdp_adjust_tail and expect every one resized: by -4 and +4 bytes, by -4096 and
# +2047 with multi-buffer. Its program drops a frame the helper refuses, except that
# -EOPNOTSUPP marks the case "not supported" (is_adjust_tail_supported): skipped. Ours passes a
# refused frame on unchanged with the helper's return value in the metadata (rx_hash), so each
# frame shows what the helper did.

EINVAL = 22
MB_SIZE = 3072 * 2  # XSK_UMEM__LARGE_FRAME_SIZE * 2


def _adjust_tail(r: Rig, sent: list[bytes], delta: int, refused: tuple[int, ...] = ()) -> int:
    """Sends ``sent`` through a cf_tail_* program that moved the tail by ``delta``; every frame
    must arrive, in order: resized as asked (a grown tail ending in b"TAIL"), or, when the
    helper returned one of ``refused``, unchanged. Returns how many were resized."""
    send_all(r.tx, sent)
    got = receive(r.rx, len(sent))
    assert len(got) == len(sent), f"{len(got)} of {len(sent)} arrived; {r.rx.stats()}"
    resized = 0
    for seq, (g, packet) in enumerate(zip(got, sent, strict=True)):
        ret = signed32(g.rx_hash)
        assert ret == 0 or ret in refused, f"frame {seq}: bpf_xdp_adjust_tail returned {ret}"
        if ret != 0:
            want = packet
        elif delta < 0:
            want = packet[: len(packet) + delta]
        else:
            want = packet + bytes(delta - 4) + b"TAIL"
        assert g.data == want, f"frame {seq} (helper returned {ret}), {len(g.data)} bytes"
        assert len(g.frames) == -(-len(want) // RX_CAPACITY), g.frames
        resized += ret == 0
    return resized


def test_XDP_ADJUST_TAIL_SHRINK(lab: Any, conformance_object: Path, mode: Mode) -> None:
    with rig(lab, conformance_object, "cf_tail_shrink", mode) as r:
        assert _adjust_tail(r, frames_of(lab, 64, 128), -4) == 64


def test_XDP_ADJUST_TAIL_SHRINK_MULTI_BUFF(
    lab_factory: Any, conformance_object: Path, mode: Mode
) -> None:
    """6144-byte packets (two frames) lose 4096 bytes: one 2048-byte frame arrives."""
    lab = lab_factory(mtu=JUMBO_MTU)
    with rig(lab, conformance_object, "cf_tail_shrink_mb", mode, multi_buffer=True) as r:
        assert _adjust_tail(r, frames_of(lab, MB_PACKETS, MB_SIZE), -4096) == MB_PACKETS


def test_XDP_ADJUST_TAIL_GROW(lab: Any, conformance_object: Path, mode: Mode) -> None:
    """Growing needs tailroom after the packet, which on veth is what the sender's skb
    allocation left over (AF_XDP copy-mode transmit allocates headroom + length). Measured
    here, skb and driver mode alike: 100- and 200- to 1400-byte frames always grow, while of
    the kernel's 128-byte frames (and 64-byte ones) about 4 in 5 are refused with -EINVAL,
    apparently because headroom + 128 bytes fill the skb's slab object exactly (inferred from
    the sizes, not traced). The kernel's program drops refused frames, so its case would fail
    here. So: 200-byte frames must all grow; of 128-byte frames each either grows or is
    refused with -EINVAL and arrives unchanged, never anything else."""
    with rig(lab, conformance_object, "cf_tail_grow", mode) as r:
        assert _adjust_tail(r, frames_of(lab, 64, 200), 4) == 64
        _adjust_tail(r, frames_of(lab, 64, 128), 4, refused=(-EINVAL,))


def test_XDP_ADJUST_TAIL_GROW_MULTI_BUFF(lab_factory: Any, conformance_object: Path) -> None:
    """Not applicable in any mode (cases.py): the test checks the reason in each, a
    -EOPNOTSUPP from bpf_xdp_adjust_tail for every frame, which arrives unchanged."""
    lab = lab_factory(mtu=JUMBO_MTU)
    for mode in MODES:
        with rig(lab, conformance_object, "cf_tail_grow_mb", mode, multi_buffer=True) as r:
            sent = frames_of(lab, 16, MB_SIZE)
            resized = _adjust_tail(r, sent, 2047, refused=(-EOPNOTSUPP,))
            assert resized == 0, f"{mode.name}: {resized} of {len(sent)} grew: applicable now"
