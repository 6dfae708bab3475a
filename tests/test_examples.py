"""The main job and the examples run in a private lab and report what they did (privileged)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("afxdp")

from helpers import EXAMPLES, lab_names, link_names, netns_names

pytestmark = pytest.mark.privileged

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_lab_main_job_delivers_everything_and_cleans_up(privileged) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "afxdp", "lab", "--duration", "1.5", "--job", "dns-flood"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )
    assert out.returncode == 0, out.stderr
    m = re.search(r"summary \[dns-flood\]: .*received ([\d,]+) .*sent ([\d,]+)", out.stdout)
    assert m, out.stdout
    received, sent = (int(g.replace(",", "")) for g in m.groups())
    assert sent > 10_000
    assert received == sent
    assert "rx_dropped=0" in out.stdout
    # Only what this run created: other labs may come and go beside it.
    namespaces, devices = lab_names(out.stdout)
    assert not namespaces & netns_names()
    assert not devices & link_names()


def test_lab_main_job_reports_bad_options_in_one_line(privileged) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "afxdp", "lab", "--size", "10"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )
    assert out.returncode == 2
    assert out.stderr.strip() == "afxdp: --size must be at least 60 bytes, not 10"


@pytest.mark.slow
def test_dns_flood_sends_and_reports_rates(privileged) -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "dns_flood.py"), "--lab", "--duration", "1.5"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert re.search(r"[\d,]+ pkt/s +[\d,]+ bytes/s", out.stdout), out.stdout
    m = re.search(r"sent ([\d,]+) DNS queries", out.stdout)
    assert m and int(m.group(1).replace(",", "")) > 10_000, out.stdout


def run_under_dns_flood(
    lab, script: str, args: list[str], banner: str, queries: int, flood_seconds: int
) -> str:
    """Starts examples/`script` on end b, waits for its `banner` line, sends `queries` DNS queries
    from end a (examples/dns_flood.py) and returns what the script printed after the banner."""
    proc = lab.popen(
        "b",
        [sys.executable, str(EXAMPLES / script), lab.if_b, *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith(banner)
    time.sleep(0.2)
    flood = lab.run(
        "a",
        [
            sys.executable,
            str(EXAMPLES / "dns_flood.py"),
            lab.if_a,
            "--count",
            str(queries),
            "--duration",
            str(flood_seconds),
        ],
        timeout=60,
    )
    assert f"sent {queries:,} DNS queries" in flood.stdout
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    return rest


@pytest.mark.slow
def test_rebroadcast_example_sends_back_what_it_receives(lab) -> None:
    rest = run_under_dns_flood(
        lab, "rebroadcast.py", ["--duration", "3", "--mode", "native"], "rebroadcasting on", 1000, 2
    )
    assert "rebroadcast 1,000 frames" in rest, rest


@pytest.mark.parametrize("args", [[], ["--per-frame"]])
def test_l2fwd_example_forwards_back_with_macs_swapped(lab, args) -> None:
    rest = run_under_dns_flood(
        lab,
        "l2fwd.py",
        ["--mode", "native", "--count", "500", "--duration", "20", *args],
        "l2fwd on",
        500,
        5,
    )
    assert "forwarded 500 frames" in rest, rest


@pytest.mark.slow
def test_l2fwd_runs_in_the_lab_with_afxdp_lab_run() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "afxdp",
            "lab",
            "--duration",
            "1.5",
            "--rate",
            "1000",
            "--run",
            str(EXAMPLES / "l2fwd.py"),
            "--duration",
            "2.5",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
    )
    assert out.returncode == 0, out.stderr
    offered = int(re.search(r"offered ([\d,]+) packets", out.stdout).group(1).replace(",", ""))
    forwarded = int(re.search(r"forwarded ([\d,]+) frames", out.stdout).group(1).replace(",", ""))
    assert offered > 1000 and forwarded == offered


@pytest.mark.slow
@pytest.mark.parametrize(
    ("script", "args", "expect"),
    [
        ("dumpframes.py", ["--count", "3", "--duration", "10"], r"dumped 3 frames"),
        ("dns_flood.py", ["--count", "1000", "--duration", "5"], r"sent 1,000 DNS queries"),
        ("rebroadcast.py", ["--duration", "2"], r"rebroadcast [\d,]+ frames"),
    ],
)
def test_every_example_runs_in_the_lab(script, args, expect) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "afxdp",
            "lab",
            "--duration",
            "1",
            "--rate",
            "500",
            "--run",
            str(EXAMPLES / script),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(expect, out.stdout), out.stdout
    assert re.search(rf"{script} exited with 0", out.stdout)
