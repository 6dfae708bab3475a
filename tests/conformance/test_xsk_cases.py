"""The conformance table itself: every kernel case has exactly one test, in its group's module,
and the rendered table accounts for every case x mode cell."""

from __future__ import annotations

import ast
from pathlib import Path

from cases import CASES, GROUPS, MODES

from conftest import render_table

HERE = Path(__file__).parent


def _tests_in(group: str) -> list[str]:
    path = HERE / f"test_xsk_{group}.py"
    if not path.exists():
        return []
    tree = ast.parse(path.read_text())
    return [
        node.name.removeprefix("test_")
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    ]


def test_every_kernel_case_has_one_test_in_its_group_module() -> None:
    assert len(CASES) == 36  # the kernel's tests[] in test_xsk.h (Linux 6.18)
    found = {group: _tests_in(group) for group in GROUPS}
    for case in CASES:
        assert found[case.group].count(case.name) == 1, (case.name, case.group)
    named = {case.name for case in CASES}
    strays = [name for tests in found.values() for name in tests if name.isupper()]
    assert set(strays) <= named, set(strays) - named


def test_the_table_has_a_cell_for_every_case_and_mode() -> None:
    outcomes = {(CASES[0].name, MODES[0].name): "pass", (CASES[1].name, MODES[0].name): "fail"}
    table = render_table(outcomes)
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert len(rows) == len(CASES)
    assert all(len(row.split(" | ")) == 2 + len(MODES) for row in rows)
    assert rows[0].split(" | ")[2] == "pass"
    assert rows[1].split(" | ")[2] == "**FAIL**"
    not_applicable = sum(len(case.not_applicable) for case in CASES)
    cells = len(CASES) * len(MODES)
    assert f"1 pass, 1 fail, {not_applicable} n/a, {cells - 2 - not_applicable} not run" in table
    assert "veth has no hardware rings" in table
