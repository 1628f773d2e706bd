"""The oracle on side effects a profile describes: keys the service assigned, rows, silent answers, missing evidence."""

from __future__ import annotations

import pytest

from harness.history import Event, History
from harness.observe.observation import Observation, ReceiptFile
from harness.oracle import (
    ORPHAN, SHARED_KEY, WRONG_AMOUNT, Evidence, PlannedPayment, check, exactly_one_receipt, one_generation,
    receipt_files, state_agrees_with_disk,
)
from harness.oracle.overlap import in_flight_together
from harness.oracle.result import CheckResult
from harness.verdict.result import decide
from harness.profile.payments import Payment

A, B = Payment("pa", "RHA", 49_900), Payment("pb", "RHB", 10_000)
FIELDS = {"paid": "status", "claim": "issued", "effect": "receiptNo", "effect_is": "key"}


def state(number: str | None, *, paid: bool = True) -> dict:
    return {"paymentStatus": "PAID" if paid else "CREATED", "paid": paid, "receiptGenerated": number is not None,
            "receiptPath": number, "join": {"receiptNo": number}}


def numbered(number: str, *, text: str = "", amount: int | None = None, name: str | None = None) -> ReceiptFile:
    """A PDF receipt keyed by the number the service printed in its title (joined through the state)."""
    return ReceiptFile(name or f"receipt-{number}.pdf", 900, readable=True, title=f"Receipt {number}", text=text,
                       keyed=True, key=number, joins="state.receiptNo", amount=amount)


def row(ref: str, amount: int, name: str) -> ReceiptFile:
    return ReceiptFile(name, 0, readable=True, source="mongo", keyed=True, key=ref, joins="transaction",
                       amount=amount, data={"donationRef": ref, "amountPaise": amount})


def evidence(receipts: list[ReceiptFile], states: dict[str, dict | None] | None = None, *,
             baseline: set[str] | None = None, events: list[Event] | None = None,
             answers: bool = True) -> Evidence:
    observation = Observation(receipts=receipts, receipts_dir="/r", state=states or {},
                              state_source="mongodb" if states is not None else "none", state_fields=dict(FIELDS),
                              effect_sources=["files /r/*"], effect_kinds=["receipt"], baseline=baseline,
                              answers_described=answers)
    delivered = [Event(index=i, payment=p.id, channel="callback", t_release=0.0, t_response=0.01, status=200)
                 for i, p in enumerate((A, B))]
    return Evidence([PlannedPayment(A, True), PlannedPayment(B, True)], History(events=events or delivered),
                    observation)


def counts(result: CheckResult) -> dict:
    return result.details["receipts_per_payment"]


def test_a_receipt_number_joins_its_payment_through_the_state():
    ev = evidence([numbered("R-1"), numbered("R-2")], {"pa": state("R-1"), "pb": state("R-2")})
    assert counts(exactly_one_receipt(ev)) == {"pa": 1, "pb": 1}
    assert exactly_one_receipt(ev).valid and state_agrees_with_disk(ev).valid


def test_a_duplicate_whose_number_the_state_lost_still_counts_for_the_payment_its_page_names():
    ev = evidence([numbered("R-1", text="Order RHA"), numbered("R-3", text="Order RHA"), numbered("R-2")],
                  {"pa": state("R-1"), "pb": state("R-2")}, baseline=set())
    result = exactly_one_receipt(ev)
    assert counts(result) == {"pa": 2, "pb": 1} and result.valid is False


def test_a_new_effect_that_no_payment_names_is_an_orphan():
    ev = evidence([numbered("R-1"), numbered("R-2"), numbered("R-3")], {"pa": state("R-1"), "pb": state("R-2")},
                  baseline=set())
    result = receipt_files(ev)
    assert [(v.kind, v.files) for v in result.violations] == [(ORPHAN, ["receipt-R-3.pdf"])]


def test_an_effect_that_was_there_before_the_run_is_someone_elses_not_an_orphan():
    ev = evidence([numbered("R-1"), numbered("R-2"), numbered("R-0")], {"pa": state("R-1"), "pb": state("R-2")},
                  baseline={"receipt-R-0.pdf"})
    result = receipt_files(ev)
    assert not result.violations and result.details["foreign_files"] == ["receipt-R-0.pdf"]


def test_one_number_given_to_two_payments_is_a_violation_and_each_receipt_still_finds_its_payment():
    ev = evidence([numbered("R-1", text="Order RHA", name="a.pdf"), numbered("R-1", text="Order RHB", name="b.pdf")],
                  {"pa": state("R-1"), "pb": state("R-1")}, baseline=set())
    assert [(v.kind, v.files) for v in receipt_files(ev).violations] == [(SHARED_KEY, ["a.pdf", "b.pdf"])]
    assert counts(exactly_one_receipt(ev)) == {"pa": 1, "pb": 1}


def test_rows_are_keyed_by_their_field_and_their_amount_is_checked():
    ev = evidence([row("RHA", 49_900, "r1"), row("RHB", 99, "r2")])
    assert counts(exactly_one_receipt(ev)) == {"pa": 1, "pb": 1}
    assert [(v.kind, v.payment) for v in receipt_files(ev).violations] == [(WRONG_AMOUNT, "pb")]


def test_two_rows_for_one_payment_are_duplicates_named_as_records():
    ev = evidence([row("RHA", 49_900, "r1"), row("RHA", 49_900, "r2"), row("RHB", 10_000, "r3")])
    (violation,) = exactly_one_receipt(ev).violations
    assert violation.payment == "pa" and "2 records" in violation.message


def test_a_profile_without_state_does_not_make_the_state_check_and_stays_decidable():
    ev = evidence([row("RHA", 49_900, "r1"), row("RHB", 10_000, "r2")])
    result = state_agrees_with_disk(ev)
    assert (result.made, result.valid, result.status) == (False, None, "not made")
    assert decide([result, CheckResult("x", "x", True)], []).exit_code == 0


def test_silent_answers_do_not_make_the_generation_check():
    result = one_generation(evidence([], answers=False))
    assert not result.made and "answers" in result.details["reason"]


def test_the_state_naming_a_number_no_receipt_carries_disagrees():
    ev = evidence([numbered("R-1"), numbered("R-2")], {"pa": state("R-7"), "pb": state("R-2")}, baseline=set())
    messages = [v.message for v in state_agrees_with_disk(ev).violations]
    assert messages == ["receiptNo names a side effect that does not exist"]


def test_a_missing_kind_of_effect_is_missing_even_when_another_kind_is_there():
    ev = evidence([row("RHA", 49_900, "r1"), row("RHB", 10_000, "r2")])
    ev.observation.effect_kinds = ["receipt", "receipt e-mail"]
    kinds = {(v.payment, v.kind) for v in exactly_one_receipt(ev).violations}
    assert kinds == {("pa", "missing-receipt"), ("pb", "missing-receipt")}


def _sent(index: int, released: float, answered: float | None) -> Event:
    return Event(index=index, payment="pa", channel="callback", t_release=released, t_response=answered,
                 status=200 if answered is not None else None)


@pytest.mark.parametrize("times, expected", [
    ([(0.0, 0.010), (0.001, 0.012), (0.002, 0.011)], True),
    ([(0.0, 0.010), (0.020, 0.030)], False),
    ([(0.0, 0.010), (0.001, None)], None),
])
def test_a_silent_service_is_raced_when_every_duplicate_left_before_the_first_answer(times, expected):
    batch = [_sent(i, released, answered) for i, (released, answered) in enumerate(times)]
    assert in_flight_together(batch)[0] is expected


def test_check_adds_settled_only_when_the_profile_waits():
    ev = evidence([row("RHA", 49_900, "r1"), row("RHB", 10_000, "r2")])
    assert "settled" not in {c.name for c in check(ev)}
    ev.observation.settled = False
    settled = next(c for c in check(ev) if c.name == "settled")
    assert settled.valid is None and settled.made


def test_a_zero_default_in_the_state_is_no_receipt_number_and_not_shared():
    ev = evidence([numbered("R-1"), numbered("R-2")], {"pa": state("R-1"), "pb": state("R-2")}, baseline=set())
    ev.observation.state["pa"]["join"]["receiptNo"] = 0
    ev.observation.state["pb"]["join"]["receiptNo"] = 0
    assert not any(v.kind == SHARED_KEY for v in receipt_files(ev).violations)


def test_rows_joined_by_their_key_are_checked_without_an_amount_rule():
    rows = [row("RHA", 0, "r1"), row("RHB", 0, "r2")]
    for r in rows:
        r.amount = None
    assert receipt_files(evidence(rows)).valid is True


def test_files_a_glob_chose_are_read_whatever_their_format_and_stray_dotfiles_are_not_theirs(tmp_path):
    from harness.observe.effects import read_effects
    from harness.profile.schema import EffectSection

    (tmp_path / "receipt-RHA.html").write_text("<p>Receipt for RHA: Rs 499.00</p>")
    (tmp_path / ".DS_Store").write_bytes(b"\x00\x01")
    (tmp_path / ".receipt-RHB.html.tmp").write_text("half")
    section = EffectSection.model_validate({"source": "files", "dir": str(tmp_path), "glob": "receipt-*.html",
                                            "key": {"from": "name", "pattern": r"receipt-(\w+)\.html"}})
    records, problems = read_effects(section, "http://127.0.0.1:9", None)
    by_name = {r.name: r for r in records}
    assert set(by_name) == {"receipt-RHA.html", ".receipt-RHB.html.tmp"} and not problems
    assert by_name["receipt-RHA.html"].readable and by_name["receipt-RHA.html"].is_final
    assert not by_name[".receipt-RHB.html.tmp"].is_final


def test_a_state_map_that_finds_no_record_is_a_profile_mistake():
    from harness.profile import load_profile
    from harness.run.judge import state_miss

    profile = load_profile("reference", {"RECEIPTS_DIR": "/r"})
    missing = Observation(state={"pa": None, "pb": None})
    unpaid_field = Observation(state={"pa": {"paymentStatus": None}, "pb": {"paymentStatus": None}})
    assert "no record found for any of the 2 payments" in state_miss(profile, missing)
    assert "'paymentStatus' is in none of the 2 records" in state_miss(profile, unpaid_field)
    assert state_miss(profile, Observation(state={"pa": {"paymentStatus": "paid"}})) is None


def test_a_file_two_kinds_read_is_owned_by_each_kinds_own_key():
    # The same file name; its name says RHA but the number its text prints belongs to B's state: the "receipt pdf"
    # kind gives it to A and the "receipt number" kind to B — never one owner for both.
    shared = "Donation_Receipt_9999.pdf"
    receipts = [ReceiptFile(shared, 900, readable=True, text="R-2", keyed=True, key="RHA", joins="transaction",
                            kind="receipt pdf"),
                ReceiptFile(shared, 900, readable=True, text="R-2", keyed=True, key="R-2", joins="state.receiptNo",
                            kind="receipt number")]
    ev = evidence(receipts, {"pa": state("R-1"), "pb": state("R-2")})
    assert [r.kind for r in ev.receipts_of(A)] == ["receipt pdf"]
    assert [r.kind for r in ev.receipts_of(B)] == ["receipt number"]


def test_an_unreadable_file_two_kinds_read_is_one_violation_not_two():
    shared = dict(name="Donation_Receipt_1.pdf", size=10, readable=False, error="unreadable PDF: truncated")
    receipts = [ReceiptFile(**shared, kind="receipt pdf"), ReceiptFile(**shared, kind="receipt number")]
    ev = evidence(receipts, {"pa": state(None), "pb": state(None)})
    assert [v.files for v in receipt_files(ev).violations] == [["Donation_Receipt_1.pdf"]]
