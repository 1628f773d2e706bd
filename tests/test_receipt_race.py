"""Truly concurrent duplicate callbacks against the running service, over real sockets."""

from __future__ import annotations

import httpx
import pytest
from helpers import create_payments, outcomes, receipt_files, target_of

from _poll import clock_anchor
from harness.senders.burst import fire

# Real service processes: `pytest -m 'not slow'` leaves these out.
pytestmark = pytest.mark.slow

TRIALS = 20


def _race(service, duplicates: int, trials: int) -> list[tuple[int, list[str]]]:
    """For each trial, a new payment hit by ``duplicates`` simultaneous callbacks: (files, outcomes)."""
    target = target_of(service)
    results = []
    for payment in create_payments(target, trials):
        burst = fire([target.callback_request(payment)] * duplicates, timeout=30)
        assert burst.all_responded(), burst.summary()
        files = [p for p in receipt_files(service) if payment.merchant_transaction_id in p.name]
        results.append((len(files), outcomes(target, burst)))
    return results


@pytest.mark.parametrize("duplicates", [5, 20])
def test_vulnerable_mode_writes_several_receipts_in_most_trials(start_reference, duplicates):
    service = start_reference("vulnerable", generation_delay_ms=100)
    results = _race(service, duplicates, trials=10)
    duplicated = sum(files > 1 for files, _ in results)
    assert duplicated > len(results) // 2, results


@pytest.mark.parametrize("duplicates", [5, 20])
def test_atomic_mode_writes_exactly_one_receipt_every_trial(start_reference, duplicates):
    service = start_reference("atomic", generation_delay_ms=100)
    for files, answers in _race(service, duplicates, trials=TRIALS):
        assert files == 1
        assert answers == ["already_generated"] * (duplicates - 1) + ["generated"]


def test_failed_generation_rolls_back_and_the_next_callback_makes_exactly_one(start_reference):
    service = start_reference("atomic", generation_delay_ms=20, failure_rate=1.0)
    target = target_of(service)
    (payment,) = create_payments(target, 1)

    first = fire([target.callback_request(payment)] * 5, timeout=30)
    # How many fail is timing: the claim is given back after each failure, so a duplicate that comes
    # later than one generation (on a loaded machine) claims again and fails too. Never a receipt.
    answers = outcomes(target, first)
    assert "failed" in answers and set(answers) <= {"failed", "already_generated"}, answers
    assert receipt_files(service) == []
    assert httpx.get(target.url(target.state_path, payment), timeout=30).json()["receiptGenerated"] is False

    httpx.put(service.url + "/_admin/faults", json={"failure_rate": 0.0}, timeout=30).raise_for_status()
    retry = fire([target.callback_request(payment)] * 5, timeout=30)

    assert outcomes(target, retry) == ["already_generated"] * 4 + ["generated"]
    assert len(receipt_files(service)) == 1
    state = httpx.get(target.url(target.state_path, payment), timeout=30).json()
    assert state["receiptGenerated"] is True
    assert state["receiptPath"].endswith(receipt_files(service)[0].name)


def test_server_arrival_is_stamped_when_the_request_is_complete_not_when_its_headers_came(start_reference):
    service = start_reference("atomic", generation_delay_ms=0)
    target = target_of(service)
    (payment,) = create_payments(target, 1)
    # The burst's clock starts at an instant whose wall time is read with it (not mapped later, where
    # a stall between two clock reads would shift every time by the stall).
    wall, perf = clock_anchor()
    # Hold every final byte back for 300 ms after the rest of each request was sent.
    burst = fire([target.callback_request(payment)] * 3, timeout=30, settle=0.3, clock_origin=perf)
    released = wall + burst.release_started  # no final byte left before this
    for event in burst.history:
        # 5 ms for the two clocks and the stamp's float; a stamp taken at the headers would be 300 ms early.
        assert event.server_arrival >= released - 0.005, "arrival stamped before the final byte was sent"
