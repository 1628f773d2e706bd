"""Fixtures shared by the suite: reference services as real processes on loopback."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Callable

import httpx
import pytest

from harness.embedded import ServiceProcess
from harness.reference import target_of
from harness.target import Payment, Target


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


def claim_winners(claim, *args, threads: int = 20) -> int:
    """How many of ``threads`` threads, released together by a barrier, got a claim (a non-None answer)."""
    barrier = threading.Barrier(threads)
    wins = []

    def racer() -> None:
        barrier.wait()
        if claim(*args) is not None:
            wins.append(1)

    racers = [threading.Thread(target=racer) for _ in range(threads)]
    for t in racers:
        t.start()
    for t in racers:
        t.join(10)
    return len(wins)


def create_payments(target: Target, count: int, amount: int = 49_900) -> list[Payment]:
    with httpx.Client(timeout=10) as client:
        return [target.create_payment(client, amount + i) for i in range(count)]


def receipt_files(service: ServiceProcess) -> list[Path]:
    return sorted(service.receipts_dir.iterdir())


def outcomes(target: Target, burst) -> list[str | None]:
    """What the service said happened to the receipt, for every request of a burst, sorted."""
    return sorted((target.outcome_of(e.body) for e in burst.history), key=str)
