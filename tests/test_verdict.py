"""A verdict you can trust: the oracle's soft spots, each shown with the evidence that used to mislead it.

Unit-level cases build the evidence by hand (events, receipts, observation problems); the cases that
need a real network go through real processes and sockets: the reference service, a stranger
service with its own receipts, and a TCP relay that delays or refuses connections.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import httpx
import pytest
from _strangers import stranger
from fpdf import FPDF
from helpers import HTTP_TIMEOUT

from harness import Plan, RunConfig, run_race
from harness.cli.main import main
from harness.observe.content import amount_named, transactions_named
from harness.history import Event, History
from harness.verdict.measure import processing_ms
from harness.observe.observation import STATE, Observation, Problem, ReceiptFile
from harness.observe.files import read_receipt, scan_receipts
from harness.oracle import (
    Evidence, PlannedPayment, exactly_one_receipt, overlap, receipt_files, state_agrees_with_disk,
)
from harness.reference import profile_of, target_of
from harness.local.relay import Relay
from harness.verdict.result import EXIT_INCONCLUSIVE, EXIT_INVALID, EXIT_OK, EXIT_USAGE, Coverage, decide
from harness.oracle.result import CheckResult
from harness.run.session import build_requests, prepare_payments, send, verify_history
from harness.profile.payments import Payment

PAYMENT = Payment("p1", "MT1", 49_900)


def _evidence(events: list[Event], receipts: list[ReceiptFile] | None = None, *, problems: list[Problem] = (),
              payments: list[Payment] = (PAYMENT,), state: dict | None = None) -> Evidence:
    observation = Observation(receipts=receipts or [], receipts_dir="/receipts", state=state or {},
                              state_source="http", problems=list(problems))
    return Evidence([PlannedPayment(p, True) for p in payments], History(events=events), observation)


def _answer(index: int, outcome: str, *, answered: float, arrival: float | None = None,
            duration_ms: float | None = None, round_: int = 0, clock: str | None = None) -> Event:
    meta: dict = {"round": round_}
    if duration_ms is not None:
        meta["server_timing"] = {"app": duration_ms}
    if clock is not None:
        meta["clock"] = clock
    return Event(index, "p1", "callback", t_release=0.0 + 10 * round_, t_response=answered + 10 * round_,
                 status=200, body={"receipt": outcome}, outcome=outcome, server_arrival=arrival, meta=meta)


def _pdf(*lines: str, subject: str | None = None) -> bytes:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    if subject:
        pdf.set_subject(subject)
    for line in lines:
        pdf.cell(0, 8, line, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


# -- item 2: overlap from the service's own processing time ------------------------------------------

def test_a_duplicate_arriving_after_the_reported_processing_time_did_not_overlap():
    # The winner's answer came back late (a slow network), but the service says it worked 30 ms.
    events = [_answer(0, "generated", answered=0.53, arrival=1000.0, duration_ms=30),
              _answer(1, "already_generated", answered=0.65, arrival=1000.15, duration_ms=1)]
    assert overlap(events)[0] is False


def test_a_duplicate_arriving_within_the_reported_processing_time_overlapped():
    events = [_answer(0, "generated", answered=0.53, arrival=1000.0, duration_ms=300),
              _answer(1, "already_generated", answered=0.65, arrival=1000.15, duration_ms=1)]
    assert overlap(events) == (True, "arrivals and processing time reported by the service")


def test_without_processing_time_a_duplicate_inside_the_round_trip_is_not_called_overlapped():
    # Arrival stamps alone: 150 ms after the winner arrived, inside its 530 ms round trip. Whether
    # the generation was still running then cannot be told; the answers came back after the winner's.
    events = [_answer(0, "generated", answered=0.53, arrival=1000.0),
              _answer(1, "already_generated", answered=0.65, arrival=1000.15)]
    assert overlap(events)[0] is None


def test_the_reference_service_reports_its_processing_time_in_server_timing(start_reference):
    service = start_reference("atomic", generation_delay_ms=120)
    (payment,) = _create(target_of(service), 1)
    response = httpx.post(target_of(service).url(target_of(service).callback_path),
                          content=target_of(service).callback_request(payment).body,
                          headers=dict(target_of(service).callback_request(payment).headers), timeout=HTTP_TIMEOUT)
    name, _, duration = response.headers["server-timing"].partition(";dur=")
    assert name == "app" and float(duration) >= 120  # the generation's delay is inside the processing time
    assert response.json()["receipt"] == "generated"


@pytest.fixture
def slow_return_relay(start_reference):
    """A vulnerable service with a 30 ms generation behind a relay: the k-th connection's requests
    reach the service k × 150 ms late, and every answer comes back 500 ms late."""
    service = start_reference("vulnerable", generation_delay_ms=30)
    with Relay(int(service.url.rsplit(":", 1)[1]), up_delay=lambda k: 0.15 * k, down_delay=lambda k: 0.5) as relay:
        yield service, relay


def test_duplicates_that_reached_the_service_apart_are_not_judged_overlapped_through_a_slow_network(
        slow_return_relay):
    service, relay = slow_return_relay
    direct = profile_of(service)
    plan = Plan(payments=1, duplicates=3)
    with httpx.Client(timeout=10) as client:
        payments = prepare_payments(direct, plan, client)
    history = History()
    send(build_requests(plan, payments, direct.with_base_url(relay.url)), sync="last-byte", timeout=30,
         history=history)

    report = verify_history(direct, plan, payments, history, targets_file="exactly-once")

    arrivals = sorted(e.server_arrival for e in history)
    assert arrivals[-1] - arrivals[0] > 0.2  # they really reached the service apart ...
    assert [e.outcome for e in history].count("generated") == 1  # ... so one generation, no duplicate
    exercised = next(c for c in report.checks if c.name == "race-exercised")
    assert exercised.valid is None, exercised.details  # a race that did not happen is no pass
    assert report.verdict.exit_code == EXIT_INCONCLUSIVE


# -- item 3: receipts in a correct stranger's own words ----------------------------------------------

@pytest.mark.parametrize("printed", ["49900 paise", "Rs. 499.00", "INR 499.00", "Total: 499.00", "Rs.499",
                                     "₹ 499.00"])
def test_the_amount_is_found_in_the_forms_people_print(printed):
    assert amount_named(f"Order ref MT1\n{printed}", 49_900)[0] is True


def test_indian_and_western_digit_grouping_both_read_as_the_same_amount():
    assert amount_named("INR 4,99,000.50", 49_900_050)[0] is True
    assert amount_named("INR 499,000.50", 49_900_050)[0] is True


def test_another_money_amount_is_a_mismatch_but_a_page_without_money_is_unknown():
    assert amount_named("Total paid: Rs. 500.00", 49_900) == (False, ["500.00"])
    assert amount_named("Thank you, see you on 25/11", 49_900) == (None, [])


def test_a_transaction_id_is_matched_as_a_whole_token_only():
    assert transactions_named("Order ref MT10 and XMT1", {"MT1"}) == set()
    assert transactions_named("Order ref: MT1.", {"MT1"}) == {"MT1"}


def test_a_receipt_in_other_words_without_subject_is_grouped_and_checked_by_its_text(tmp_path):
    path = tmp_path / "3f2a.pdf"
    path.write_bytes(_pdf("Payment acknowledgement", "Order ref MT1", "Total paid: Rs. 499.00"))
    ev = _evidence([_answer(0, "generated", answered=0.2)], [read_receipt(path)])
    assert exactly_one_receipt(ev).valid is True
    assert receipt_files(ev).valid is True


def test_a_receipt_naming_neither_transaction_nor_amount_is_unknown_never_a_failure(tmp_path):
    path = tmp_path / "receipt-MT1.pdf"  # owned by its name, but the page says nothing checkable
    path.write_bytes(_pdf("Thank you for your payment"))
    result = receipt_files(_evidence([_answer(0, "generated", answered=0.2)], [read_receipt(path)]))
    assert result.valid is None and result.violations == []


def test_a_receipt_printing_another_amount_in_other_words_is_a_violation(tmp_path):
    path = tmp_path / "3f2a.pdf"
    path.write_bytes(_pdf("Order ref MT1", "Total paid: Rs. 500.00"))
    result = receipt_files(_evidence([_answer(0, "generated", answered=0.2)], [read_receipt(path)]))
    assert result.valid is False and [v.kind for v in result.violations] == ["wrong-amount"]


@pytest.mark.parametrize("variant, expected", [("fixed", EXIT_OK), ("vulnerable", EXIT_INVALID)])
def test_run_against_a_stranger_with_its_own_receipt_wording(tmp_path, variant, expected, capsys):
    with stranger("wording_service.py", tmp_path / "receipts", "--variant", variant,
                  log=tmp_path / "stranger.log") as service:
        code = main(["run", "--quiet", "--target", service.url, "--receipts-dir", str(service.receipts_dir),
                     "--payments", "4", "--duplicates", "5", "--targets", "exactly-once",
                     "--report-dir", str(tmp_path / "out"), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == expected, [c for c in report["checks"] if c["valid"] is not True]
    if variant == "vulnerable":
        duplicated = next(c for c in report["checks"] if c["name"] == "exactly-one-receipt")["violations"]
        assert duplicated and all(v["kind"] == "duplicate-receipts" for v in duplicated)


# -- item 4: processing time per delivery round ------------------------------------------------------

def test_processing_time_is_measured_within_each_round_not_across_the_interval_between_rounds():
    events = [_answer(0, "generated", answered=0.2), _answer(1, "already_generated", answered=0.05),
              _answer(2, "already_generated", answered=0.03, round_=1),
              _answer(3, "already_generated", answered=0.04, round_=1)]
    assert processing_ms(events) == 200.0


# -- item 7: a declared signing scheme is honoured or refused ----------------------------------------

def test_a_target_file_naming_a_scheme_the_harness_cannot_sign_is_a_usage_error(tmp_path, capsys):
    target_file = tmp_path / "target.json"
    target_file.write_text(json.dumps({"base_url": "http://127.0.0.1:9", "signing": {"scheme": "stripe"}}))
    code = main(["run", "--quiet", "--target-file", str(target_file)])
    assert code == EXIT_USAGE
    assert "signing.scheme 'stripe'" in capsys.readouterr().err


# -- item 8: problems and violations have kinds ------------------------------------------------------

def test_a_state_problem_mentioning_receipts_leaves_the_receipt_checks_judged(tmp_path):
    path = tmp_path / "r.pdf"
    path.write_bytes(_pdf("Order ref MT1", "Rs. 499.00"))
    ev = _evidence([_answer(0, "generated", answered=0.2)], [read_receipt(path)],
                   problems=[Problem(STATE, "cannot read state: the receipts service timed out")])
    assert exactly_one_receipt(ev).valid is True
    assert state_agrees_with_disk(ev).valid is None


# -- item 9: every round that generated is judged ----------------------------------------------------

def test_a_later_round_whose_duplicates_did_not_overlap_its_generation_is_not_a_pass():
    events = [_answer(0, "failed", answered=0.2, arrival=1000.0, duration_ms=150),  # round 0 raced
              _answer(1, "already_generated", answered=0.01, arrival=1000.001, duration_ms=1),
              _answer(2, "generated", answered=0.2, arrival=1010.0, duration_ms=30, round_=1),  # round 1 did not
              _answer(3, "already_generated", answered=0.3, arrival=1010.1, duration_ms=1, round_=1)]
    assert overlap(events)[0] is False


# -- item 10: times on different clocks are never compared -------------------------------------------

def test_answers_measured_on_another_workers_clock_prove_no_overlap():
    events = [_answer(0, "generated", answered=5.2, clock="worker-a"),
              _answer(1, "already_generated", answered=0.01, clock="worker-b")]
    assert overlap(events)[0] is None
    same = [_answer(0, "generated", answered=5.2, clock="worker-a"),
            _answer(1, "already_generated", answered=0.01, clock="worker-a")]
    assert overlap(same)[0] is True


# -- item 13: a receipt vanishing while the directory is read ----------------------------------------

def test_a_receipt_vanishing_between_listing_and_reading_affects_only_that_file(tmp_path, monkeypatch):
    for name, ref in (("a.pdf", "MT1"), ("b.pdf", "MT2"), ("c.pdf", "MT3")):
        (tmp_path / name).write_bytes(_pdf(f"Order ref {ref}", "Rs. 499.00"))
    import harness.observe.files as observe_module

    real = observe_module.read_receipt

    def vanish_b(path: Path) -> ReceiptFile:
        if path.name == "b.pdf":
            path.unlink()  # deleted after the listing, before it is read
        return real(path)

    monkeypatch.setattr(observe_module, "read_receipt", vanish_b)
    receipts, problems = scan_receipts(tmp_path)
    assert [r.name for r in receipts] == ["a.pdf", "c.pdf"]
    assert [(p.kind, p.file) for p in problems] == [("receipt-vanished", "b.pdf")]

    payments = [Payment("p1", "MT1", 49_900), Payment("p3", "MT3", 49_900)]
    events = [Event(0, "p1", t_release=0, t_response=0.1, status=200), Event(1, "p3", t_release=0, t_response=0.1,
                                                                              status=200)]
    ev = _evidence(events, receipts, problems=problems, payments=payments)
    assert exactly_one_receipt(ev).valid is True and receipt_files(ev).valid is True


def test_a_temporary_receipt_renamed_into_place_while_the_directory_is_read_is_found_under_its_new_name(
        tmp_path, monkeypatch):
    (tmp_path / ".r.pdf.tmp").write_bytes(_pdf("Order ref MT1", "Rs. 499.00"))
    import harness.observe.files as observe_module

    real = observe_module.read_receipt

    def renamed(path: Path) -> ReceiptFile:
        if path.name == ".r.pdf.tmp":
            path.rename(tmp_path / "r.pdf")
        return real(path)

    monkeypatch.setattr(observe_module, "read_receipt", renamed)
    receipts, _ = scan_receipts(tmp_path)
    assert [r.name for r in receipts] == ["r.pdf"]


# -- issue 15: undelivered is not missing ------------------------------------------------------------

def _create(target, count):
    with httpx.Client(timeout=10) as client:
        return [target.create_payment(client, 49_900 + i) for i in range(count)]


def test_most_payments_unjudged_is_inconclusive_unless_a_judged_payment_broke_an_invariant():
    errors = CheckResult("no-errors", "", False)
    duplicate = CheckResult("exactly-one-receipt", "", False)
    assert decide([errors], [], Coverage(judged=2, paid=10)).exit_code == EXIT_INCONCLUSIVE
    assert decide([errors, duplicate], [], Coverage(judged=2, paid=10)).exit_code == EXIT_INVALID
    assert decide([errors], [], Coverage(judged=6, paid=10)).exit_code == EXIT_INVALID


def test_a_service_killed_partway_judges_delivered_payments_and_leaves_the_rest_unjudged(start_reference):
    service = start_reference("atomic", generation_delay_ms=100)
    killed = []

    def kill_after_the_first_wave(stage: str, done: int, total: int) -> None:
        if stage == "sending" and not killed:
            os.kill(service.pid, signal.SIGKILL)  # the waves after this one find nobody listening
            service.process.wait(10)
            killed.append(done)

    # 60 payments × 5 = 300 requests: a first wave of 51 payments (255 requests), then 9 payments
    plan = Plan(payments=60, duplicates=5)
    report = run_race(RunConfig(plan=plan, profile=profile_of(service), targets_file="exactly-once"),
                      progress=kill_after_the_first_wave)

    rows = {r["payment"]: r for r in report.payments}
    starved = [r for r in rows.values() if not r["judged"]]
    assert killed == [255] and len(starved) == 9 and all(r["delivered"] == 0 for r in starved)
    assert report.metrics["payments_unjudged"] == 9 and report.metrics["payments_judged"] == 51
    checks = {c.name: c for c in report.checks}
    assert checks["exactly-one-receipt"].valid is True  # the 51 that were delivered: one receipt each
    assert not [v for v in checks["exactly-one-receipt"].violations if v.kind == "missing-receipt"]
    errors = checks["no-errors"]
    assert errors.valid is False and len(errors.violations) == 45
    assert all(v.kind == "transport-error" for v in errors.violations)
    assert report.verdict.exit_code == EXIT_INVALID  # transport errors, with most payments judged


def test_a_service_killed_before_any_delivery_is_inconclusive(start_reference):
    service = start_reference("atomic", generation_delay_ms=0)

    def kill_once_payments_exist(stage: str, done: int, total: int) -> None:
        if stage == "creating payments" and done == total:
            os.kill(service.pid, signal.SIGKILL)
            service.process.wait(10)

    report = run_race(RunConfig(plan=Plan(payments=4, duplicates=3), profile=profile_of(service),
                                targets_file="exactly-once"), progress=kill_once_payments_exist)
    assert report.metrics["payments_unjudged"] == 4
    assert not [v for c in report.checks for v in c.violations if v.kind == "missing-receipt"]
    assert report.verdict.exit_code == EXIT_INCONCLUSIVE, report.verdict.summary


def test_payments_starved_by_a_relay_refusing_every_second_connection_are_unjudged(start_reference):
    service = start_reference("atomic", generation_delay_ms=150)
    direct = profile_of(service)
    plan = Plan(payments=8, duplicates=2)
    with httpx.Client(timeout=10) as client:
        payments = prepare_payments(direct, plan, client)
    history = History()
    with Relay(int(service.url.rsplit(":", 1)[1]), refuse=lambda k: k % 2 == 1) as relay:
        send(build_requests(plan, payments, direct.with_base_url(relay.url)), sync="last-byte", timeout=30,
             history=history)
        refused = relay.stats.refused

    report = verify_history(direct, plan, payments, history, targets_file="exactly-once")

    assert refused == 8
    by_payment = history.by_payment()
    starved = {pid for pid, events in by_payment.items() if not any(e.delivered for e in events)}
    assert {r["payment"] for r in report.payments if not r["judged"]} == starved
    checks = {c.name: c for c in report.checks}
    missing = {v.payment for v in checks["exactly-one-receipt"].violations if v.kind == "missing-receipt"}
    assert not missing & starved
    assert checks["no-errors"].valid is False and len(checks["no-errors"].violations) == 8
    mostly_unjudged = len(starved) * 2 > len(payments)
    assert report.verdict.exit_code == (EXIT_INCONCLUSIVE if mostly_unjudged else EXIT_INVALID)


# -- the demo's story ---------------------------------------------------------------------------------

@pytest.mark.parametrize("before, after, expected", [
    ((False, EXIT_INVALID), (True, EXIT_OK), EXIT_OK),
    ((False, EXIT_INVALID), (True, 2), EXIT_OK),  # a missed timing target after the fix is shown, not the story
    ((False, EXIT_INVALID), (False, EXIT_INVALID), EXIT_INVALID),  # duplicates after the fix
    ((False, EXIT_INVALID), (None, EXIT_INCONCLUSIVE), EXIT_INCONCLUSIVE),
    ((True, EXIT_OK), (True, EXIT_OK), EXIT_INCONCLUSIVE),  # the vulnerable run showed nothing: proved nothing
])
def test_the_demo_exits_0_only_when_duplicates_before_and_every_invariant_after(before, after, expected):
    from harness.cli.run import demo_exit
    from harness.verdict.result import Verdict

    assert demo_exit(Verdict(*before, ""), Verdict(*after, "")) == expected
