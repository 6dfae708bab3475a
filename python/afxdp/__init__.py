"""afxdp: AF_XDP sockets for Python.

Kernel-bypass packet I/O in batches: a Rust core owns the UMEM, the fill/completion/rx/tx rings
and the XDP program; Python receives and sends whole batches and edits frames in place through
the buffer protocol (zero copy).

    import afxdp
    with afxdp.Program.attach("eth0") as prog, afxdp.Socket("eth0", 0, program=prog) as sock:
        batch = sock.recv(64, timeout=1)
        batch.write_at(0, b"\\xff" * 6)     # destination MAC := broadcast, in every frame
        sock.send(batch)

Every rx queue at once, over one shared Umem (`afxdp.Port`):

    with afxdp.Port("eth0") as port:
        batch = port.recv(64, timeout=1)    # from one queue with frames, fair across queues
        port.send(batch)                    # back out of batch.queue

Privileges: AF_XDP sockets need CAP_NET_RAW, XDP programs CAP_NET_ADMIN and CAP_BPF (root has
them all).
"""

from afxdp._native import (
    POLLIN,
    POLLOUT,
    BatchIterator,
    Frame,
    FrameBatch,
    Packet,
    Port,
    Program,
    Rule,
    Socket,
    Stats,
    UIntArray,
    Umem,
    UmemFrames,
    VerifierError,
    __version__,
    generate,
)

__all__ = [
    "POLLIN",
    "POLLOUT",
    "BatchIterator",
    "Frame",
    "FrameBatch",
    "Packet",
    "Port",
    "Program",
    "Rule",
    "Socket",
    "Stats",
    "UIntArray",
    "Umem",
    "UmemFrames",
    "VerifierError",
    "__version__",
    "generate",
]
