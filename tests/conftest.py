"""Fixtures shared by the suite: reference services as real processes on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import httpx
import pytest

from harness.embedded import ServiceProcess
from harness.pytest_plugin import target_of
from harness.target import Payment, Target


pytest_plugins = ["pytester"]


@pytest.fixture
def start_reference(reference_service) -> Callable[..., ServiceProcess]:
    """The race-harness pytest plugin's ``reference_service`` factory, under the suite's older name."""
    return reference_service


def create_payments(target: Target, count: int, amount: int = 49_900) -> list[Payment]:
    with httpx.Client(timeout=10) as client:
        return [target.create_payment(client, amount + i) for i in range(count)]


def receipt_files(service: ServiceProcess) -> list[Path]:
    return sorted(service.receipts_dir.iterdir())


def outcomes(target: Target, burst) -> list[str | None]:
    """What the service said happened to the receipt, for every request of a burst, sorted."""
    return sorted((target.outcome_of(e.body) for e in burst.history), key=str)
