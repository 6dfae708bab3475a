"""``--coalesce USECS`` on the receiving workloads (``recv(coalesce=)``).

The option tables are checked without privileges; in a lab, ``rxdrop --coalesce`` must count a
paced stream exactly and wake up far less often than once per burst (its voluntary context
switches, read from /proc while the stream runs).
"""

from __future__ import annotations

import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

afxdp = pytest.importorskip("afxdp")

from afxdp.cli import build_parser, options  # noqa: E402
from afxdp.testing import numbered_frame  # noqa: E402
from test_cli import AFXDP, finish, start  # noqa: E402
from test_cli_json import finish_json, of_type, start_json  # noqa: E402

RECEIVERS = ("rxdrop", "l2fwd", "rebroadcast", "dump")


@pytest.mark.parametrize("command", RECEIVERS)
def test_every_receiver_takes_coalesce(command) -> None:
    parse = build_parser().parse_args
    assert options.coalesce(parse([command, "eth0", "--coalesce", "250"])) == 250e-6
    assert options.coalesce(parse([command, "eth0"])) is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["rxdrop", "afxdp-none0", "--coalesce", "0"], "must be > 0, not 0"),
        (["l2fwd", "afxdp-none0", "--coalesce", "1000001"], "must be 1..1000000, not 1000001"),
        (["dump", "afxdp-none0", "--coalesce", "soon"], "invalid integer 'soon'"),
        (["txonly", "afxdp-none0", "--coalesce", "100"], "unrecognized arguments: --coalesce"),
    ],
)
def test_bad_coalesce_values_exit_2_naming_the_value(args, message) -> None:
    out = subprocess.run([*AFXDP, *args], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr.strip().splitlines()[-1]
    assert "Traceback" not in out.stderr


def switches(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("voluntary_ctxt_switches:")[1].split()[0])


def paced_stream(lab, chunks: int, chunk: int, gap: float) -> None:
    """`chunks` bursts of `chunk` numbered 64-byte frames, a -> b, one every `gap` seconds."""
    with ExitStack() as stack:
        with lab.enter("a"):
            tx = stack.enter_context(
                afxdp.Socket(lab.if_a, 0, umem=afxdp.Umem(1024, 2048), rx_size=0)
            )
        deadline = time.monotonic() + 10
        for i in range(chunks):
            frames = [numbered_frame(i * chunk + k, 64, lab.mac_a, lab.mac_b) for k in range(chunk)]
            sent = 0
            while sent < chunk:
                assert time.monotonic() < deadline, "send stalled"
                sent += tx.send_packets(frames[sent:])
                tx.complete()
            time.sleep(gap)
        while tx.in_flight and time.monotonic() < deadline:
            tx.complete()
            time.sleep(0.001)


@pytest.mark.privileged
def test_rxdrop_coalesce_counts_exactly_with_few_wakeups(lab) -> None:
    chunks, chunk = 100, 20
    rx, first = start_json(
        lab,
        "b",
        [
            "rxdrop",
            lab.if_b,
            "-N",
            "-b",
            "256",
            "--coalesce",
            "50000",
            "-C",
            str(chunks * chunk),
            "-d",
            "20",
        ],
    )
    assert first["coalesce_usecs"] == 50000
    before = switches(rx.pid)
    # A burst every 2 ms for 0.2 s or more: a wakeup per burst without coalescing (about 100),
    # one per 50 ms with it (with a wait in poll after each, at most a dozen or so).
    paced_stream(lab, chunks, chunk, 0.002)
    woke = switches(rx.pid) - before
    summary = of_type(finish_json(rx, first), "summary")[0]
    assert summary["received"] == chunks * chunk
    assert woke < 40, f"{woke} wakeups for {chunks} bursts"


@pytest.mark.privileged
def test_the_start_line_names_coalescing_and_its_absence(lab) -> None:
    rx = start(lab, "b", ["rxdrop", lab.if_b, "--coalesce", "100", "-d", "0.5"])
    assert "; coalescing 100 us" in rx.first_line  # type: ignore[attr-defined]
    finish(rx)
    rx, first = start_json(lab, "b", ["rxdrop", lab.if_b, "-d", "0.5"])
    assert first["coalesce_usecs"] is None
    finish_json(rx, first)
