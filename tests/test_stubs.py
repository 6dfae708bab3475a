"""The .pyi stubs describe the compiled module exactly: mypy's stubtest finds no difference
(beyond the documented allowlist), and the promises stubtest cannot check hold at run time:
@final classes refuse subclassing, __exit__ returns None, Stats._asdict() is a dict."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

afxdp = pytest.importorskip("afxdp")
from afxdp import _native  # noqa: E402

STUB = Path(afxdp.__file__).with_name("_native.pyi")
ALLOWLIST = Path(__file__).resolve().parent.parent / "python" / "stubtest-allowlist.txt"


def test_stubtest_finds_no_difference(tmp_path: Path) -> None:
    # The whole package as installed: _native.pyi against the compiled module, and every
    # pure-Python module against mypy's reading of its source.
    # Run from tmp_path so the source tree cannot shadow the installed package.
    done = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "afxdp", "--allowlist", str(ALLOWLIST)],
        cwd=tmp_path,
        env={**os.environ, "MYPY_CACHE_DIR": str(tmp_path / "mypy-cache")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _final_in_stub() -> dict[str, bool]:
    tree = ast.parse(STUB.read_text())
    return {
        node.name: any(isinstance(d, ast.Name) and d.id == "final" for d in node.decorator_list)
        for node in tree.body
        if isinstance(node, ast.ClassDef)
    }


@pytest.mark.parametrize("name", sorted(_final_in_stub()))
def test_final_in_stub_exactly_when_subclassing_fails(name: str) -> None:
    cls = getattr(_native, name)
    try:
        type("Sub", (cls,), {})
    except TypeError:
        subclassable = False
    else:
        subclassable = True
    assert _final_in_stub()[name] is not subclassable


def test_every_class_but_the_exception_is_final() -> None:
    assert {n for n, final in _final_in_stub().items() if not final} == {"VerifierError"}


def test_exit_returns_none() -> None:
    umem = afxdp.Umem(64, 2048)
    assert umem.__exit__(None, None, None) is None
    assert umem.closed


@pytest.mark.privileged
def test_stats_asdict_is_a_dict_of_every_counter_in_repr_order(lab) -> None:
    with lab.enter("b"):
        sock = afxdp.Socket(lab.if_b, 0, umem=afxdp.Umem(64, 2048))
    with sock:
        stats = sock.stats()
    counters = stats._asdict()
    assert isinstance(counters, dict)
    assert set(counters) == {n for n in dir(stats) if not n.startswith("_")}
    assert counters == {name: getattr(stats, name) for name in counters}
    assert repr(stats) == "Stats(" + ", ".join(f"{k}={v}" for k, v in counters.items()) + ")"
    assert counters["filled"] > 0  # the fill ring was filled at bind: real values, not zeros


def _stub_classes() -> dict[str, set[str]]:
    tree = ast.parse(STUB.read_text())
    classes: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            members = set()
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    members.add(item.name)
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    members.add(item.target.id)
            classes[node.name] = members
    return classes


def _public(names: set[str] | list[str]) -> set[str]:
    return {n for n in names if not n.startswith("__")}


def test_stub_lists_every_class_of_the_module() -> None:
    runtime = {n for n, v in vars(_native).items() if isinstance(v, type)}
    assert set(_stub_classes()) == runtime


@pytest.mark.parametrize("name", sorted(_stub_classes()))
def test_stub_members_match_runtime(name: str) -> None:
    cls = getattr(_native, name)
    stub = _public(_stub_classes()[name])
    runtime = _public(dir(cls))
    if issubclass(cls, BaseException):
        # Exceptions: the stub annotates the attributes set on each raised instance (not on the
        # class), and lists no inherited members; compare what the class itself adds.
        stub -= _stub_instance_attributes(name)
        runtime -= _public(dir(cls.__base__))
    assert stub == runtime, f"only in stub: {stub - runtime}; only at runtime: {runtime - stub}"


def _stub_instance_attributes(name: str) -> set[str]:
    tree = ast.parse(STUB.read_text())
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return {
                item.target.id
                for item in node.body
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)
            }
    return set()


def test_package_reexports_the_module() -> None:
    for name in afxdp.__all__:
        assert getattr(afxdp, name) is getattr(_native, name)
