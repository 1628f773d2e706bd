"""The lease mode closes the seed's hole; atomic shows it. No fault ever makes two receipts."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest
from helpers import create_payments, outcomes, receipt_files, target_of

from harness import reverify
from harness.burst import fire
from harness.matrix import FAULTS
from harness.reference import FaultFlags
from harness.target import Payment, Target

# Real processes, nested pytest or Locust runs: `pytest -m 'not slow'` leaves these out.
pytestmark = pytest.mark.slow

CRASH = FaultFlags(crash_after_claim_rate=1.0)


def _check(report, name):
    return next(c for c in report.checks if c.name == name)


def test_atomic_mode_under_a_crash_after_claim_leaves_stuck_payments_reported_missing(race):
    report = race(payments=4, duplicates=5, mode="atomic", faults=CRASH, transient_faults=True,
                  rounds=2, round_interval=0.3)
    missing = [v for v in _check(report, "exactly-one-receipt").violations if v.message.startswith("missing")]
    assert len(missing) == 4  # the retry round cannot help: the flag stays set forever
    assert report.metrics["missing_receipts"] == 4


def test_lease_mode_under_a_crash_after_claim_ends_with_exactly_one_receipt_after_expiry(race):
    report = race(payments=4, duplicates=5, mode="lease", faults=CRASH, transient_faults=True,
                  lease_seconds=0.5, rounds=2, round_interval=0.8)
    assert report.valid, report.explain()
    assert report.metrics["receipts_per_payment_min"] == report.metrics["receipts_per_payment_max"] == 1
    assert _check(report, "no-errors").details["injected_server_errors"] == 4
    assert reverify(report).valid  # judged again later, the injected crashes are still the fault, not a finding


# What shows that each fault really struck in a run (a fault that never fired proves nothing).
FIRED = {
    "none": lambda report: True,
    "generation failure": lambda report: report.metrics["rollbacks"] > 0,
    "crash after claim": lambda report: _check(report, "no-errors").details["injected_server_errors"] > 0,
    "slow store": lambda report: report.metrics["processing_ms_max"] >= 100,
}


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("mode", ["atomic", "lease"])
def test_no_fault_ever_yields_two_receipts(race, mode, fault):
    report = race(payments=3, duplicates=6, mode=mode, faults=FAULTS[fault], transient_faults=FAULTS[fault].active(),
                  lease_seconds=0.5, rounds=2, round_interval=0.7, generation_delay_ms=100)
    assert FIRED[fault](report), f"the {fault} fault never struck: {report.metrics}"
    assert report.metrics["payments_with_duplicates"] == 0, report.explain()
    assert report.metrics["receipts_per_payment_max"] <= 1
    assert _check(report, "one-generation").valid is True


def test_a_slow_former_owner_cannot_overwrite_the_newer_owners_receipt(start_reference):
    service = start_reference("lease", generation_delay_ms=1200, lease_seconds=0.4)
    target = target_of(service)
    (payment,) = create_payments(target, 1)
    answers = {}

    def deliver(name: str) -> None:
        answers[name] = fire([target.callback_request(payment)], timeout=30)

    first = threading.Thread(target=deliver, args=("first",))
    first.start()
    time.sleep(0.7)  # the first owner's lease has expired; it is still generating
    deliver("second")
    first.join(30)

    assert outcomes(target, answers["first"]) == ["already_generated"]  # fenced out, its file discarded
    assert outcomes(target, answers["second"]) == ["generated"]
    files = receipt_files(service)
    assert len(files) == 1 and not files[0].name.startswith(".")
    state = httpx.get(target.url(target.state_path, payment)).json()
    assert state["receiptPath"].endswith(files[0].name)


def test_a_later_delivery_regenerates_a_receipt_whose_file_was_lost(race):
    report = race(payments=2, duplicates=3, mode="lease")
    receipts = report.config["target"]["receipts_dir"]
    lost = sorted(Path(receipts).iterdir())[0]
    lost.unlink()
    assert not reverify(report).valid

    row = next(r for r in report.payments if lost.name in r["receipt_files"])
    t = Target(base_url=report.config["target"]["base_url"], receipts_dir=receipts)
    burst = fire([t.callback_request(Payment(row["payment"], row["merchant_transaction_id"], row["amount"]))] * 3)

    assert outcomes(t, burst) == ["already_generated", "already_generated", "generated"]
    assert reverify(report).valid


def test_a_completed_receipt_left_under_its_temporary_name_is_renamed_into_place(race):
    report = race(payments=1, duplicates=2, mode="lease")
    receipts = Path(report.config["target"]["receipts_dir"])
    (final,) = list(receipts.iterdir())
    final.rename(receipts / f".{final.name}.tmp")  # as if the process died between completion and rename
    row = report.payments[0]
    t = Target(base_url=report.config["target"]["base_url"], receipts_dir=str(receipts))

    burst = fire([t.callback_request(Payment(row["payment"], row["merchant_transaction_id"], row["amount"]))])

    assert outcomes(t, burst) == ["already_generated"]
    assert [p.name for p in receipts.iterdir()] == [final.name]
    assert reverify(report).valid


def test_the_sweep_completes_payments_whose_owner_crashed(start_reference):
    service = start_reference("lease", generation_delay_ms=50, lease_seconds=0.3, faults=CRASH)
    target = target_of(service)
    payments = create_payments(target, 3)
    for payment in payments:
        fire([target.callback_request(payment)] * 3)
    assert receipt_files(service) == []

    httpx.put(service.url + "/_admin/faults", json={"crash_after_claim_rate": 0.0}).raise_for_status()
    time.sleep(0.5)
    swept = httpx.post(service.url + "/_admin/sweep").json()["swept"]

    assert swept == {"generated": 3}
    assert len(receipt_files(service)) == 3


def test_the_sweep_renames_an_interrupted_completion_and_regenerates_a_lost_receipt(race):
    report = race(payments=2, duplicates=2, mode="lease", generation_delay_ms=0)
    receipts = Path(report.config["target"]["receipts_dir"])
    interrupted, lost = sorted(receipts.iterdir())
    interrupted.rename(receipts / f".{interrupted.name}.tmp")
    lost.unlink()

    swept = httpx.post(report.config["target"]["base_url"] + "/_admin/sweep").json()["swept"]

    assert swept == {"repaired": 1, "generated": 1}
    assert interrupted.exists() and len(list(receipts.iterdir())) == 2
    assert reverify(report).valid


def test_the_sweep_is_refused_outside_lease_mode(start_reference):
    service = start_reference("atomic", generation_delay_ms=0)
    response = httpx.post(service.url + "/_admin/sweep")
    assert response.status_code == 409 and "lease" in response.json()["error"]


def test_publishing_a_receipt_twice_is_harmless_for_whoever_comes_second(tmp_path):
    from reference_service.receipts import publish_receipt, write_temp_receipt

    final = write_temp_receipt(tmp_path, {"_id": "c1", "merchantTransactionId": "MT1", "amount": 100})
    publish_receipt(final)  # the owner
    publish_receipt(final)  # a delivery repairing what it thought was an interrupted completion
    assert [p.name for p in tmp_path.iterdir()] == [final.name]


def test_the_sweep_removes_a_temporary_receipt_whose_owner_died_before_completing(race):
    report = race(payments=1, duplicates=2, mode="lease", generation_delay_ms=0, lease_seconds=0.3)
    receipts = Path(report.config["target"]["receipts_dir"])
    orphan = receipts / ".receipt-MT0DEAD-1.pdf.tmp"  # written, never completed: its owner died
    orphan.write_bytes(b"%PDF-1.4 half a receipt")
    assert not reverify(report).valid  # the oracle sees the leftover as a file conflict

    time.sleep(0.4)  # older than a lease: no owner can still complete it
    swept = httpx.post(report.config["target"]["base_url"] + "/_admin/sweep").json()["swept"]

    assert swept == {"orphans_removed": 1}
    assert not orphan.exists() and reverify(report).valid
