"""Helpers shared by the privileged tests: a socket pair across the lab, numbered frames, drain.

Imported as ``helpers`` (pytest puts tests/ on sys.path). Nothing here imports the compiled
extension at import time, so unprivileged test modules may import it too.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from afxdp.testing import numbered_frame, parse_numbered

if TYPE_CHECKING:
    import afxdp


def _examples() -> Path:
    spec = importlib.util.find_spec("afxdp")
    if spec is not None and spec.origin is not None:
        return Path(spec.origin).parent / "examples"
    return Path(__file__).resolve().parent.parent / "python" / "afxdp" / "examples"


#: The examples of the afxdp under test (shipped inside the package; the source tree's examples/
#: links there), so a suite run against an installed wheel runs the examples users get.
EXAMPLES = _examples()


def netns_names() -> set[str]:
    """The named network namespaces on the host (other labs' included: compare only names a
    test created itself)."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def link_names() -> set[str]:
    """The interfaces of this (the host's) namespace."""
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line}


def lab_names(out: str) -> tuple[set[str], set[str]]:
    """The namespaces and devices an ``afxdp lab`` run printed in its first lines."""
    found = re.findall(r"netns (\S+)\s+dev (\S+)", out)
    assert len(found) == 2, out
    return {ns for ns, _ in found}, {dev for _, dev in found}


@dataclass
class Pair:
    """A transmit-only socket on end a, and on end b the program and a receiving socket."""

    lab: Any
    tx: afxdp.Socket  # on end a, unregistered, no rx ring
    rx: afxdp.Socket  # on end b, registered with prog
    prog: afxdp.Program


@contextmanager
def socket_pair(
    lab: Any,
    *,
    mode: str = "native",
    tx_frames: int = 2048,
    rx_frames: int = 4096,
    frame_size: int = 4096,
    headroom: int = 0,
    unaligned: bool = False,
    hugepages: bool | None = False,
    busy_poll_usecs: int | None = None,
    timestamps: bool = False,
    tx_options: dict[str, Any] | None = None,
    **rx_options: Any,
) -> Iterator[Pair]:
    """A :class:`Pair` on ``lab``, each socket with its own Umem; everything closed afterwards.
    The Umem options (``frame_size`` to ``hugepages``) and ``busy_poll_usecs`` go to both
    sides, ``rx_options`` to the receiving socket (e.g. ``tx_size=0``), ``tx_options`` to the
    sending one (e.g. ``{"multi_buffer": True}``, ``{"tx_size": 64}``), ``timestamps`` to the
    program."""
    import afxdp

    def umem(frames: int) -> afxdp.Umem:
        return afxdp.Umem(frames, frame_size, headroom, unaligned=unaligned, hugepages=hugepages)

    with ExitStack() as stack:
        with lab.enter("a"):
            tx = stack.enter_context(
                afxdp.Socket(
                    lab.if_a,
                    0,
                    umem=umem(tx_frames),
                    busy_poll_usecs=busy_poll_usecs,
                    **{"rx_size": 0, **(tx_options or {})},
                )
            )
        with lab.enter("b"):
            prog = stack.enter_context(
                afxdp.Program.attach(lab.if_b, mode=mode, timestamps=timestamps)
            )
            rx = stack.enter_context(
                afxdp.Socket(
                    lab.if_b,
                    0,
                    umem=umem(rx_frames),
                    program=prog,
                    busy_poll_usecs=busy_poll_usecs,
                    **rx_options,
                )
            )
        yield Pair(lab, tx, rx, prog)


def numbered(lab: Any, seq: int, size: int = 64) -> bytes:
    """Numbered frame ``seq`` of ``size`` bytes from the lab's end a to its end b."""
    return numbered_frame(seq, size, lab.mac_a, lab.mac_b)


def numbered_run(lab: Any, first: int, count: int, size: int = 64) -> list[bytes]:
    """Numbered frames ``first .. first+count-1`` (see :func:`numbered`)."""
    return [numbered(lab, seq, size) for seq in range(first, first + count)]


def drain(sock: afxdp.Socket, expect: int | None = None, timeout: float = 3.0) -> list[int | None]:
    """Receives until ``expect`` frames arrived (None: until ``timeout``) or ``timeout`` passed;
    returns their sequence numbers (None for a frame that is not an intact numbered frame).
    Every batch is released."""
    got: list[int | None] = []
    deadline = time.monotonic() + timeout
    while (expect is None or len(got) < expect) and time.monotonic() < deadline:
        with sock.recv(256, timeout=min(0.05, max(0.0, deadline - time.monotonic()))) as batch:
            got += [parse_numbered(memoryview(frame)) for frame in batch]
    return got


def wait_until(condition, timeout: float = 3.0) -> bool:
    """Whether ``condition()`` came true within ``timeout`` seconds (checked every 5 ms)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True
