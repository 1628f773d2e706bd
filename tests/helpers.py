"""Helpers the tests share (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx

from harness.local.service import ServiceProcess
from harness.reference import target_of  # noqa: F401 (re-exported for the tests)
from harness.profile.payments import Payment
from harness.profile.legacy import Target

# A test's own request to a service it started: httpx's 5 s default is too short for a loaded CI machine,
# where a fresh service's answer can stall for seconds (the bound only has to end a hung test).
HTTP_TIMEOUT = 30.0


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
