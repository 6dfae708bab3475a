"""What the installed distribution carries: its metadata, the shipped examples, and
``afxdp lab --run examples/NAME.py`` finding them from any directory (as after ``pip install``)."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest

afxdp = pytest.importorskip("afxdp")

from afxdp.cli import labjobs  # noqa: E402
from afxdp.cli.options import UsageError  # noqa: E402

EXAMPLE_NAMES = ["dns_flood.py", "dumpframes.py", "l2fwd.py", "rebroadcast.py"]


def test_metadata_has_the_spdx_license_and_classifiers() -> None:
    meta = importlib.metadata.metadata("afxdp")
    assert meta["License-Expression"] == "MIT OR Apache-2.0"
    classifiers = meta.get_all("Classifier") or []
    assert "Typing :: Typed" in classifiers
    assert any(c.startswith("Development Status :: ") for c in classifiers)
    assert not any(c.startswith("License :: ") for c in classifiers)  # PEP 639: the expression only
    urls = meta.get_all("Project-URL") or []
    assert not [u for u in urls if "example.invalid" in u or "example.com" in u], urls
    licenses = meta.get_all("License-File") or []
    assert sorted(licenses) == ["LICENSE-APACHE", "LICENSE-MIT"]


def test_the_package_ships_the_examples_and_py_typed() -> None:
    package = Path(afxdp.__file__).parent
    assert (package / "py.typed").is_file()
    assert (package / "_native.pyi").is_file()
    assert sorted(p.name for p in labjobs.EXAMPLES_DIR.glob("*.py")) == EXAMPLE_NAMES
    assert package / "examples" == labjobs.EXAMPLES_DIR


@pytest.mark.parametrize("spelling", ["examples/l2fwd.py", "l2fwd.py", "l2fwd"])
def test_run_finds_a_shipped_example_from_any_directory(spelling, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # no examples/ here
    assert labjobs.find_script(spelling) == str(labjobs.EXAMPLES_DIR / "l2fwd.py")


def test_run_prefers_an_existing_file(tmp_path, monkeypatch) -> None:
    mine = tmp_path / "examples" / "l2fwd.py"
    mine.parent.mkdir()
    mine.write_text("print('mine')\n")
    monkeypatch.chdir(tmp_path)
    assert labjobs.find_script("examples/l2fwd.py") == "examples/l2fwd.py"
    assert labjobs.find_script(str(mine)) == str(mine)


@pytest.mark.parametrize("script", ["examples/nosuch.py", "nosuch", "elsewhere/l2fwd.py"])
def test_run_names_a_missing_script_and_the_shipped_ones(script, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match=re.escape(repr(script))) as info:
        labjobs.find_script(script)
    assert all(name in str(info.value) for name in EXAMPLE_NAMES)


def test_lab_run_with_a_missing_script_is_a_usage_error_before_any_lab(tmp_path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "afxdp", "lab", "--run", "examples/nosuch.py"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert out.returncode == 2, out
    assert out.stderr.strip().splitlines() == [out.stderr.strip()], out.stderr
    assert "no such script: 'examples/nosuch.py'" in out.stderr
    assert "netns" not in out.stdout  # no lab was made


@pytest.mark.slow
@pytest.mark.privileged
def test_lab_run_examples_name_runs_the_shipped_example(tmp_path) -> None:
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
            "examples/rebroadcast.py",
            "--duration",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"running {labjobs.EXAMPLES_DIR / 'rebroadcast.py'} " in out.stdout, out.stdout
    assert re.search(r"rebroadcast [\d,]+ frames", out.stdout), out.stdout
    assert "rebroadcast.py exited with 0" in out.stdout
