"""Fixtures shared by the suite: reference services as real processes on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import httpx
import pytest

from harness.embedded import ServiceProcess, start_service
from harness.target import Payment, Target


@pytest.fixture
def start_reference(tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    """A factory: start the reference service (mode, flags) with its own receipts directory."""
    started: list[ServiceProcess] = []

    def start(mode: str = "atomic", *, name: str | None = None, **kwargs) -> ServiceProcess:
        receipts = tmp_path / (name or f"receipts-{mode}-{len(started)}")
        service = start_service(receipts, mode=mode, log_path=tmp_path / f"service-{len(started)}.log", **kwargs)
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


def target_of(service: ServiceProcess, **changes) -> Target:
    return Target(base_url=service.url, receipts_dir=str(service.receipts_dir), **changes)


def create_payments(target: Target, count: int, amount: int = 49_900) -> list[Payment]:
    with httpx.Client(timeout=10) as client:
        return [target.create_payment(client, amount + i) for i in range(count)]


def receipt_files(service: ServiceProcess) -> list[Path]:
    return sorted(service.receipts_dir.iterdir())


def outcomes(target: Target, burst) -> list[str | None]:
    """What the service said happened to the receipt, for every request of a burst, sorted."""
    return sorted((target.outcome_of(e.body) for e in burst.history), key=str)
