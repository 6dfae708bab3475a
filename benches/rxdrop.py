#!/usr/bin/env python3
"""Receive-and-drop loop in Python, the twin of rust/core/examples/rxdrop.rs.

    rxdrop.py IFNAME [SECONDS] [native|generic] [BATCH] [batch|perframe]

`batch`: count each batch and release it (the batch API, no per-frame Python work);
`perframe`: also touch every frame from Python (len + first byte), the per-frame path.
Prints one `key=value` line like the Rust twin.
"""

from __future__ import annotations

import resource
import sys
import time

import afxdp


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def main() -> int:
    ifname = sys.argv[1]
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
    mode = sys.argv[3] if len(sys.argv) > 3 else "native"
    batch = int(sys.argv[4]) if len(sys.argv) > 4 else 64
    style = sys.argv[5] if len(sys.argv) > 5 else "batch"
    with (
        afxdp.Program.attach(ifname, mode=mode) as prog,
        afxdp.Socket(ifname, 0, program=prog, tx_size=0) as sock,
    ):
        print("ready", flush=True)
        packets = nbytes = 0
        first = None
        deadline = time.monotonic() + seconds + 10
        while time.monotonic() < deadline:
            got = sock.recv(batch, timeout=0.1)
            n = len(got)
            if not n:
                continue
            if first is None:
                first = (time.monotonic(), cpu_seconds())
                deadline = time.monotonic() + seconds
            packets += n
            if style == "perframe":
                for frame in got:
                    nbytes += len(frame)
                    if frame[0] & 1:  # touch the data: multicast bit of the destination MAC
                        pass
            else:
                nbytes += sum(got.lengths)
            got.release()
        if first is None:
            print("no packet received", file=sys.stderr)
            return 1
        secs = time.monotonic() - first[0]
        cpu = cpu_seconds() - first[1]
        s = sock.stats()
        print(
            f"impl=python-{style} packets={packets} bytes={nbytes} seconds={secs:.3f} "
            f"pps={packets / secs:.0f} cpu_ns_per_packet={cpu * 1e9 / packets:.1f} "
            f"rx_dropped={s.rx_dropped} rx_ring_full={s.rx_ring_full} "
            f"fill_empty={s.rx_fill_ring_empty_descs}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
