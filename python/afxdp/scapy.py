"""scapy over an AF_XDP socket: ``sniff(opened_socket=...)`` and ``sendp(..., socket=...)``.

::

    from scapy.all import Ether, IP, UDP, sendp, sniff
    from afxdp.scapy import AfxdpScapySocket

    with AfxdpScapySocket("eth0", rules=[afxdp.Rule(dst_port=53)]) as s:
        packets = sniff(opened_socket=s, count=10, timeout=5)
        sendp(Ether(dst="52:54:00:12:34:56") / IP(dst="192.0.2.7") / UDP(dport=53), socket=s)

scapy is an optional extra (``pip install afxdp[scapy]``): this module imports it, nothing else
in afxdp does. Each packet is copied out of its frame (scapy dissects bytes) and the frames go
back to the pool at once, so this is for tools and tests, not for line rate.

As with every afxdp receiver, the packets the XDP program matches leave the kernel stack while
the socket is open: pass ``rules`` to take only what you want to see.
"""

from __future__ import annotations

import errno
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, Literal

from scapy.config import conf
from scapy.layers.l2 import Ether
from scapy.packet import Packet
from scapy.supersocket import SuperSocket

import afxdp

__all__ = ["AfxdpScapySocket"]

#: How long send() waits for a free frame (completions) before giving up, in seconds.
SEND_TIMEOUT = 1.0


class AfxdpScapySocket(SuperSocket):
    """A scapy layer-2 socket over an :class:`afxdp.Socket`.

    Args:
        iface: the interface; the adapter then attaches the built-in program (``mode``,
            ``rules``) and opens a socket on ``queue`` (``socket_options`` go to
            :class:`afxdp.Socket`), and closes both in :meth:`close`.
        queue: the queue to bind.
        sock: instead of `iface`, an open :class:`afxdp.Socket` to use; it stays open and its
            owner's after :meth:`close`.
        rules: the program's match rules (:class:`afxdp.Rule`); None: every packet of the queue.
        mode: the program's attach mode ("auto", "native", "generic").
        batch: frames taken from the rx ring per call.

    Raises:
        ValueError: both or neither of `iface` and `sock`; and what :class:`afxdp.Program` and
            :class:`afxdp.Socket` raise.
    """

    desc = "AF_XDP socket (afxdp)"

    def __init__(
        self,
        iface: str | None = None,
        queue: int = 0,
        *,
        sock: afxdp.Socket | None = None,
        rules: Sequence[afxdp.Rule] | None = None,
        mode: Literal["auto", "native", "generic"] = "auto",
        batch: int = 64,
        **socket_options: Any,
    ) -> None:
        # SuperSocket.__init__ would open a socket of its own: not called.
        self.closed = False
        self._received: deque[tuple[bytes, float]] = deque()
        self._batch = batch
        self._program: afxdp.Program | None = None
        if (iface is None) == (sock is None):
            self.closed = True
            raise ValueError("give either iface or sock")
        if sock is None:
            assert iface is not None
            self._program = afxdp.Program.attach(iface, mode=mode, rules=rules)
            try:
                sock = afxdp.Socket(iface, queue, program=self._program, **socket_options)
            except BaseException:
                self._program.close()
                self.closed = True
                raise
        self.sock = sock
        self.iface = sock.ifname

    # -- receiving --

    def _take(self) -> None:
        with self.sock.recv(self._batch, 0.0) as batch:
            now = time.time()
            # Whole packets: a multi-buffer socket's chains joined.
            self._received.extend((packet, now) for packet in batch.to_list())

    def recv_raw(self, x: int = 65535) -> tuple[type[Packet] | None, bytes | None, float | None]:
        """The next received frame as (Ether, bytes, time), or (None, None, None) when none is
        waiting (scapy's sniff then selects again)."""
        if not self._received:
            self._take()
        if not self._received:
            return None, None, None
        data, stamp = self._received.popleft()
        return Ether, data[:x], stamp

    def ready(self) -> bool:
        """A frame is waiting: buffered here or in the socket's rx ring."""
        return bool(self._received) or (not self.sock.closed and self.sock.rx_available > 0)

    @staticmethod
    def select(
        sockets: list[SuperSocket], remain: float | None = conf.recv_poll_rate
    ) -> list[SuperSocket]:
        """The sockets with a frame waiting, at once; else scapy's select() on the fds (an AF_XDP
        socket is readable while its rx ring holds frames)."""
        ready: list[SuperSocket] = [
            s for s in sockets if isinstance(s, AfxdpScapySocket) and s.ready()
        ]
        return ready or SuperSocket.select(sockets, remain)

    # -- sending --

    def send(self, x: Packet | bytes) -> int:
        """Copies the packet into a free frame (on a multi-buffer socket, as many chained
        frames as it needs) and transmits it; returns its length.

        Raises:
            ValueError: the packet does not fit a frame (or `max_frags` chained frames).
            OSError: ENOBUFS when no frame came free within :data:`SEND_TIMEOUT` seconds.
        """
        data = bytes(x)
        if isinstance(x, Packet):
            x.sent_time = time.time()
        deadline = time.monotonic() + SEND_TIMEOUT
        while True:
            self.sock.complete()
            if self.sock.send_packets([data]) == 1:
                break
            if time.monotonic() >= deadline:
                raise OSError(errno.ENOBUFS, "no free frame to send (the TX ring is full)")
            self.sock.poll(0.01, afxdp.POLLOUT)
        self.sock.complete()
        return len(data)

    # -- lifecycle --

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        """Closes the socket and the program if this adapter opened them; idempotent."""
        if self.closed:
            return
        self.closed = True
        self._received.clear()
        if self._program is not None:
            self.sock.close()
            self._program.close()

    def __repr__(self) -> str:
        return f"<AfxdpScapySocket {self.sock!r}{' [closed]' if self.closed else ''}>"
