"""Create/use/close cycles leak neither file descriptors nor memory (privileged)."""

from __future__ import annotations

import gc
import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from helpers import numbered

afxdp = pytest.importorskip("afxdp")

pytestmark = pytest.mark.privileged


def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def _rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


QUEUES = 4  # one thread per queue: the kernel's ~10 ms close (an RCU grace period) overlaps


@pytest.mark.slow
def test_10000_create_use_close_cycles_leak_nothing(lab_factory) -> None:
    lab = lab_factory(queues=QUEUES)
    umems = [afxdp.Umem(64, 2048) for _ in range(QUEUES)]
    payload = numbered(lab, 0)

    def cycles(queue: int, n: int) -> None:
        with lab.enter("a"):
            for _ in range(n):
                sock = afxdp.Socket(
                    lab.if_a,
                    queue,
                    umem=umems[queue],
                    rx_size=64,
                    tx_size=64,
                    fill_size=64,
                    comp_size=64,
                )
                with sock:
                    batch = sock.alloc(1)
                    batch[0].write(payload)
                    assert sock.send(batch) == 1
                    sock.complete()

    def run(per_queue: int) -> None:
        with ThreadPoolExecutor(QUEUES) as pool:
            for f in [pool.submit(cycles, q, per_queue) for q in range(QUEUES)]:
                f.result()

    run(500 // QUEUES)  # warm-up: allocator pools, lazily created Python objects
    gc.collect()
    fds, rss = _fd_count(), _rss_kib()
    run(9_500 // QUEUES)
    gc.collect()
    assert _fd_count() == fds
    assert _rss_kib() - rss < 4096, f"RSS grew by {_rss_kib() - rss} KiB"
    for umem in umems:
        assert umem.free_frames == 64 and not umem.in_use
