"""Each checker fails on the fault it looks for and passes on a correct service.

The runs are real: the reference service as a process, last-byte bursts over sockets, receipts on
disk. Faults on disk (a deleted, corrupted or forged file) are made after the run, then the same
run is judged again from the files as they are now.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import target_of

from harness import Plan, RunConfig, run_race
from harness.history import Event, History
from harness.observe.observation import Observation, ReceiptFile
from harness.oracle import (
    Evidence, PlannedPayment, check, exactly_one_receipt, no_errors, one_generation, overlap, race_exercised,
    receipt_files, state_agrees_with_disk,
)
from harness.verdict.result import EXIT_INCONCLUSIVE, EXIT_INVALID
from harness.run import reverify
from harness.profile.payments import Payment


@pytest.fixture
def race(start_reference, exactly_once_targets):
    """Run a race against a reference service that stays up, so the run can be judged again later."""

    def run(mode: str = "atomic", *, payments: int = 4, duplicates: int = 5, unpaid: int = 1,
            failure_rate: float = 0.0, sync: str = "last-byte"):
        service = start_reference(mode, generation_delay_ms=150, failure_rate=failure_rate)
        config = RunConfig(plan=Plan(payments=payments, duplicates=duplicates, unpaid=unpaid),
                           profile=target_of(service).to_profile(), service_pid=service.pid, sync=sync,
                           targets_file=exactly_once_targets, label=mode)
        return run_race(config)

    return run


def _check(report, name):
    return next(c for c in report.checks if c.name == name)


def _receipts(report) -> Path:
    return Path(report.config["target"]["receipts_dir"])


def test_atomic_service_passes_every_checker(race):
    report = race("atomic")
    assert [c.valid for c in report.checks] == [True] * len(report.checks), report.explain()
    assert report.verdict.exit_code == 0
    assert report.metrics["duplicate_attempts"] == 4 * 4


def test_vulnerable_service_fails_exactly_one_receipt_naming_payments_and_files(race):
    report = race("vulnerable")
    result = _check(report, "exactly-one-receipt")
    assert result.valid is False
    assert report.verdict.exit_code == EXIT_INVALID
    duplicated = {v.payment for v in result.violations}
    assert len(duplicated) >= 3  # of 4 paid payments, simultaneous duplicates nearly always all race
    for violation in result.violations:
        assert len(violation.files) > 1 and all(f.endswith(".pdf") for f in violation.files)


def test_generation_failures_without_retry_leave_missing_receipts(race):
    report = race("atomic", failure_rate=1.0)
    missing = [v for v in _check(report, "exactly-one-receipt").violations if v.kind == "missing-receipt"]
    assert len(missing) == 4
    assert _check(report, "state-agrees-with-disk").valid is False
    assert report.metrics["rollbacks"] == 4


def test_deleted_receipt_is_reported_missing_and_state_disagrees(race):
    report = race("atomic")
    victim = sorted(_receipts(report).iterdir())[0]
    victim.unlink()

    again = reverify(report)

    assert _check(again, "exactly-one-receipt").valid is False
    state = _check(again, "state-agrees-with-disk")
    assert state.valid is False and any(victim.name in v.files for v in state.violations)


def test_corrupted_receipt_is_reported_unreadable(race):
    report = race("atomic")
    victim = sorted(_receipts(report).iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:200])

    again = reverify(report)

    files = _check(again, "receipt-files")
    assert files.valid is False
    assert any(v.files == [victim.name] and "unreadable" in v.message for v in files.violations)


def test_leftover_temporary_file_is_a_file_conflict(race):
    report = race("atomic")
    (_receipts(report) / "receipt-MT1-1.pdf.tmp").write_bytes(b"%PDF-1.3 partial")

    again = reverify(report)

    assert any(v.kind == "file-conflict" for v in _check(again, "receipt-files").violations)
    assert again.metrics["file_conflicts"] == 1


def test_receipt_for_an_unpaid_charge_is_a_violation(race):
    from reference_service.receipts import (
        render_receipt,  # a forger's tool, not the oracle's
    )

    report = race("atomic")
    unpaid = next(r for r in report.payments if r["expected"] == "unpaid")
    forged = {"_id": unpaid["payment"], "merchantTransactionId": unpaid["merchant_transaction_id"],
              "amount": unpaid["amount"]}
    (_receipts(report) / f"receipt-{unpaid['merchant_transaction_id']}-1.pdf").write_bytes(render_receipt(forged))

    again = reverify(report)

    violations = _check(again, "exactly-one-receipt").violations
    assert [(v.payment, v.message) for v in violations] == [(unpaid["payment"], "receipt for an unpaid payment (1 file(s))")]


def test_receipt_with_the_wrong_amount_is_a_violation(race):
    from reference_service.receipts import render_receipt

    report = race("atomic", unpaid=0)
    row = report.payments[0]
    victim = _receipts(report) / row["receipt_files"][0]
    victim.write_bytes(render_receipt({"_id": row["payment"], "merchantTransactionId": row["merchant_transaction_id"],
                                       "amount": row["amount"] + 1}))

    again = reverify(report)

    assert [v.kind for v in _check(again, "receipt-files").violations] == ["wrong-amount"]


@pytest.mark.parametrize("mode", ["atomic", "vulnerable"])
def test_duplicates_that_never_overlap_are_inconclusive_not_a_pass(race, mode):
    report = race(mode, payments=2, duplicates=3, unpaid=0, sync="sequential")
    assert _check(report, "race-exercised").valid is None
    assert _check(report, "exactly-one-receipt").valid is True  # the vulnerable service looks safe ...
    assert report.verdict.exit_code == EXIT_INCONCLUSIVE  # ... and the verdict refuses to call it a pass


def test_single_request_per_payment_is_inconclusive(race):
    report = race("atomic", payments=2, duplicates=1, unpaid=0)
    assert _check(report, "race-exercised").valid is None


def _evidence(events: list[Event], *, paid: bool = True, receipts: list[ReceiptFile] | None = None,
              state: dict | None = None, injected: bool = False) -> Evidence:
    payment = Payment("p1", "MT1", 100)
    observation = Observation(receipts=receipts or [], receipts_dir="/receipts", state={"p1": state} if state else {},
                              state_source="http" if state else "none")
    return Evidence([PlannedPayment(payment, paid)], History(events=events), observation, injected)


def _receipt(name: str = "receipt-MT1-1.pdf") -> ReceiptFile:
    return ReceiptFile(name, 900, readable=True, subject="MT1", text="Receipt for MT1: Rs. 1.00")


def _answer(index: int, outcome: str, *, released: float = 0.0, answered: float = 0.2, path: str | None = None,
            arrival: float | None = None) -> Event:
    body = {"receipt": outcome, "receiptPath": path}
    return Event(index, "p1", "callback", t_release=released, t_response=answered, status=200, body=body,
                 outcome=outcome, server_arrival=arrival)


def test_two_generations_reporting_one_file_are_an_overwrite():
    events = [_answer(0, "generated", path="/r/receipt-MT1-1.pdf"), _answer(1, "generated", path="/r/receipt-MT1-1.pdf")]
    result = receipt_files(_evidence(events, receipts=[_receipt()]))
    assert result.valid is False
    assert [(v.message, v.events) for v in result.violations] == [
        ("file conflict: 2 generations wrote the same file", [0, 1])]


def test_two_generated_answers_are_a_violation_even_with_one_file_and_no_paths():
    # A service that names receipts by payment overwrites one file and would look exactly-once on disk.
    events = [_answer(i, "generated") for i in range(3)]
    ev = _evidence(events, receipts=[_receipt()])
    assert exactly_one_receipt(ev).valid is True
    result = one_generation(ev)
    assert result.valid is False and result.violations[0].events == [0, 1, 2]


def test_an_unpaid_control_marked_paid_with_a_receipt_path_disagrees_with_disk():
    state = {"paymentStatus": "paid", "receiptGenerated": True, "receiptPath": "/r/receipt-MT1-1.pdf"}
    result = state_agrees_with_disk(_evidence([], paid=False, receipts=[_receipt()], state=state))
    assert [v.message for v in result.violations] == ["an unpaid control payment is marked paid",
                                                      "an unpaid charge has receiptGenerated or a receiptPath"]


def test_a_receipt_path_naming_another_file_than_the_one_on_disk_disagrees():
    state = {"paymentStatus": "paid", "receiptGenerated": True, "receiptPath": "/r/receipt-OTHER-2.pdf"}
    receipts = [_receipt("receipt-MT1-1.pdf"), ReceiptFile("receipt-OTHER-2.pdf", 900, readable=True, subject="OTHER")]
    result = state_agrees_with_disk(_evidence([_answer(0, "generated")], receipts=receipts, state=state))
    assert [v.message for v in result.violations] == ["receiptPath names another file than the receipt on disk"]


def test_without_arrival_stamps_losers_answered_after_the_winner_prove_no_overlap():
    # A service that handles one request at a time: the winner answers first, the rest queue behind it.
    events = [_answer(0, "generated", answered=0.2)] + [_answer(i, "already_generated", answered=0.2 + i / 100)
                                                        for i in range(1, 5)]
    assert overlap(events)[0] is None
    assert race_exercised(_evidence(events)).valid is None


def test_without_arrival_stamps_losers_answered_before_the_winner_prove_overlap():
    events = [_answer(0, "generated", answered=0.2)] + [_answer(i, "already_generated", answered=0.01)
                                                        for i in range(1, 5)]
    assert overlap(events) == (True, "every other request was answered before the first generation finished")


def test_arrival_stamps_after_the_winner_finished_are_not_an_overlap():
    events = [_answer(0, "generated", released=0.0, answered=0.2, arrival=1000.0),
              _answer(1, "already_generated", released=0.0, answered=0.5, arrival=1000.3)]
    assert overlap(events)[0] is False


def test_only_server_errors_marked_as_injected_are_excused_in_a_faulted_run():
    crash = Event(0, "p1", status=500, body={"injectedFault": "crash_after_claim"}, meta={"injected_fault": "crash"})
    real = Event(1, "p1", status=500, body={"error": "boom"})
    result = no_errors(_evidence([crash, real], injected=True))
    assert result.details["injected_server_errors"] == 1
    assert [v.events for v in result.violations] == [[1]]


def test_server_errors_and_transport_errors_fail_no_errors():
    events = [Event(0, "p1", status=200, body={"receipt": "generated"}),
              Event(1, "p1", status=502, body={"error": "status API unreachable"}),
              Event(2, "p1", error="read: connection reset")]
    result = no_errors(_evidence(events))
    assert result.valid is False
    assert [v.events for v in result.violations] == [[1], [2]]


def test_a_checker_that_raises_is_unknown_never_a_pass():
    def broken(evidence):
        raise RuntimeError("boom")

    (result,) = check(_evidence([]), (broken,))
    assert result.valid is None and "boom" in result.details["reason"]
