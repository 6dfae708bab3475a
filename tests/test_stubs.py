"""The .pyi stubs describe the compiled module exactly: same classes, same public members."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

afxdp = pytest.importorskip("afxdp")
from afxdp import _native  # noqa: E402

STUB = Path(afxdp.__file__).with_name("_native.pyi")


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
