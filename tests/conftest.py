"""Shared pytest set-up: the ``privileged`` policy and the veth ``lab`` fixtures.

Privileged-test policy: a test marked ``@pytest.mark.privileged`` (or using the ``privileged``,
``lab`` or ``lab_factory`` fixture) needs root, or CAP_NET_ADMIN + CAP_SYS_ADMIN, and the ``ip``
command. Without them it is skipped; but when ``AFXDP_REQUIRE_PRIVILEGED=1`` is set (CI runs as
root) it fails instead, so a broken CI machine cannot turn the AF_XDP tests into silent skips.

``afxdp.netdev``, ``afxdp.lab``, ``afxdp.packet``, ``afxdp.testing``, ``afxdp.ifinfo`` and
``afxdp.pcap`` are stdlib-only. When the installed package cannot be imported
(no compiled ``afxdp._native`` yet), they are loaded from the source tree under their usual names,
so ``from afxdp.lab import Lab`` (or ``importlib.import_module("afxdp.pcap")``) works in
tests either way. ``sys.path`` is left alone, so an
installed wheel is never shadowed by the source tree.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

# Hypothesis profiles (tests/prop_support.py explains the example counts): "ci", the default, is
# derandomized so every run tries the same examples and a failure reproduces; "dev" draws new
# examples each run; "soak" (`pytest --hypothesis-profile=soak`) draws ten times as many. No
# deadline: privileged examples wait on a veth and a loaded machine must not fail them.
# Function-scoped fixtures (the lab) are shared by every example of a test on purpose.
# Only the property-based suites (test_prop_*.py) need hypothesis; the rest runs without it.
try:
    from hypothesis import HealthCheck, settings
except ImportError:
    pass
else:
    _PROFILE_COMMON: dict[str, Any] = {
        "deadline": None,
        "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        "print_blob": True,
    }
    settings.register_profile("ci", derandomize=True, database=None, **_PROFILE_COMMON)
    settings.register_profile("dev", **_PROFILE_COMMON)
    settings.register_profile("soak", max_examples=1000, **_PROFILE_COMMON)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

SOURCE_PACKAGE = Path(__file__).resolve().parent.parent / "python" / "afxdp"
REQUIRE_PRIVILEGED_ENV = "AFXDP_REQUIRE_PRIVILEGED"


def _load_stdlib_module(name: str) -> ModuleType:
    """Import ``afxdp.<name>``, or load it from the source tree if the package does not import."""
    qualified = f"afxdp.{name}"
    try:
        return importlib.import_module(qualified)
    except ImportError:
        pass
    spec = importlib.util.spec_from_file_location(qualified, SOURCE_PACKAGE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[qualified] = module  # lets "from afxdp.<name> import X" find it without the parent
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[qualified]
        raise
    return module


netdev_module = _load_stdlib_module("netdev")
lab_module = _load_stdlib_module("lab")  # after netdev, which it imports
packet_module = _load_stdlib_module("packet")
testing_module = _load_stdlib_module("testing")  # after packet, which it imports
ifinfo_module = _load_stdlib_module("ifinfo")  # after netdev, which it imports
pcap_module = _load_stdlib_module("pcap")  # after packet, which it imports


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--conformance-table",
        metavar="PATH",
        default=None,
        help="write the AF_XDP conformance table (case x mode, from this run's outcomes of "
        "tests/conformance) to PATH, e.g. docs/conformance.md",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "slow: takes several seconds (long streams, whole lab runs, many cycles); deselect with "
        "-m 'not slow' for a quick run",
    )
    config.addinivalue_line(
        "markers",
        "privileged: needs root or CAP_NET_ADMIN + CAP_SYS_ADMIN and iproute2; skipped without "
        f"them, failed instead when {REQUIRE_PRIVILEGED_ENV}=1",
    )


def ensure_privileged() -> None:
    """Skip the current test, or fail it under AFXDP_REQUIRE_PRIVILEGED=1, when unprivileged."""
    problem = lab_module.privileges_problem()
    if problem is None:
        return
    if os.environ.get(REQUIRE_PRIVILEGED_ENV) == "1":
        pytest.fail(
            f"{REQUIRE_PRIVILEGED_ENV}=1 but this test cannot run: {problem}", pytrace=False
        )
    pytest.skip(f"privileged test: {problem}")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("privileged") is not None:
        ensure_privileged()


@pytest.fixture
def privileged() -> None:
    """Apply the privileged-test policy (same as the ``privileged`` marker)."""
    ensure_privileged()


@pytest.fixture
def lab(privileged: None) -> Iterator[Any]:
    """A fresh default :class:`afxdp.lab.Lab`, always closed after the test."""
    with lab_module.Lab() as the_lab:
        yield the_lab


@pytest.fixture
def lab_factory(privileged: None) -> Iterator[Callable[..., Any]]:
    """Call it with :class:`afxdp.lab.Lab` options (``queues=``, ``mtu=``, ...); labs are closed
    after the test."""
    labs: list[Any] = []

    def make(**options: Any) -> Any:
        new_lab = lab_module.Lab(**options)
        labs.append(new_lab)
        return new_lab

    yield make
    errors = []
    for made in labs:
        try:
            made.close()
        except Exception as exc:
            errors.append(exc)
    if errors:
        raise errors[0]
