"""Fixtures shared by the suite: reference services as real processes on loopback."""

from __future__ import annotations

import sys
from typing import Callable, Iterator

import pytest

from harness.local.service import ServiceProcess

pytest_plugins = ["pytester"]


@pytest.fixture
def start_reference(reference_service) -> Callable[..., ServiceProcess]:
    """The race-harness pytest plugin's ``reference_service`` factory, under the suite's older name."""
    return reference_service


@pytest.fixture
def exactly_once_targets() -> str:
    """The built-in targets that are the exactly-once invariants alone: on a busy CI machine timing
    targets would flip verdicts that the invariants decide."""
    return "exactly-once"


@pytest.fixture
def fast_switching():
    """Switch threads almost every bytecode, so a non-atomic find-then-update is split between its halves."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(previous)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that starts a reference service (through its fixtures) is slow: `pytest -m 'not slow'` is the
    quick pass over the oracle, the senders, the reports and the rest that runs in-process."""
    for item in items:
        if "reference_service" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def mitmdump() -> str:
    """mitmproxy's mitmdump for the sink's proxy channel (installed once into its own venv when missing)."""
    from _cached_venv import mitmdump as find

    return find()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory) -> Iterator[str]:
    """The PhonePe simulator (its v1 status API and v2 order status) as a gateway the strangers ask: its URL."""
    from harness.reference import start_simulator

    simulator = start_simulator(log_path=tmp_path_factory.mktemp("gateway") / "simulator.log")
    yield simulator.url
    simulator.stop()
