"""What a probe may not change, and what it may: the judging rules on hand-made states and answers.

A probe's forged delivery may not pay an order, set its claim or its side-effect field, or make its record
vanish; a late FAILED may not un-pay it or clear what it made. Anything else the service does with an
order's status (CREATED -> PENDING, a flag it keeps for rejected deliveries) is said, never called a hole.
"""

from __future__ import annotations

import pytest

from harness.probe import HOLE, IGNORED, REJECTED, UNKNOWN, ProbeResult, catalogue
from harness.probe.probes import scheme_facts, Forger
from harness.probe.session import forbidden_changes, regressions, settle, shown_answer
from harness.profile import load_profile
from harness.signing import scheme
from harness.signing.forgery import signature_headers, with_other_credentials

CREATED = {"paymentStatus": "CREATED", "paid": False, "receiptGenerated": False, "receiptPath": None}
PAID = {"paymentStatus": "PAID", "paid": True, "receiptGenerated": True, "receiptPath": "INV-1.json"}


def test_an_order_marked_paid_by_a_forged_delivery_is_a_hole():
    holes, _ = forbidden_changes(CREATED, {**CREATED, "paymentStatus": "PAID", "paid": True})
    assert holes == ["paid: status 'CREATED' -> 'PAID'"]


def test_a_claim_or_side_effect_field_set_by_a_forged_delivery_is_a_hole():
    assert forbidden_changes(CREATED, {**CREATED, "receiptGenerated": True})[0] == ["claimed: its claim flag was set"]
    assert forbidden_changes(CREATED, {**CREATED, "receiptPath": "x.pdf"})[0] == ["its side-effect field was set: 'x.pdf'"]


def test_a_status_that_moved_without_paying_is_a_note_not_a_hole():
    holes, notes = forbidden_changes(CREATED, {**CREATED, "paymentStatus": "PENDING"})
    assert holes == [] and notes == ["status 'CREATED' -> 'PENDING' (not paid)"]


def test_a_late_failed_that_un_pays_or_clears_the_claim_is_a_regression():
    assert regressions(PAID, {**PAID, "paymentStatus": "FAILED", "paid": False})[0][0].startswith("un-paid")
    assert "claim flag was cleared" in regressions(PAID, {**PAID, "receiptGenerated": False})[0][0]


def test_a_paid_order_whose_status_moved_but_stays_paid_is_a_note():
    holes, notes = regressions(PAID, {**PAID, "paymentStatus": "PAID_LATE_FAILURE_IGNORED"}, "status")
    assert holes == [] and notes == ["status 'PAID' -> 'PAID_LATE_FAILURE_IGNORED' (still paid)"]


def _result(*statuses: int | None) -> ProbeResult:
    result = ProbeResult("p", "t", UNKNOWN)
    result.sent = [{"phase": "attack", "status": s, "error": None if s else "read: ReadTimeout"} for s in statuses]
    return result


@pytest.mark.parametrize(("statuses", "outcome"), [((401,), REJECTED), ((200,), IGNORED), ((401, 200), IGNORED),
                                                   ((None,), UNKNOWN), ((401, None), UNKNOWN)])
def test_an_unchanged_probe_is_rejected_accepted_or_unknown_by_its_answers(statuses, outcome):
    result = _result(*statuses)
    settle(result, [], [])
    assert result.outcome == outcome


def test_a_change_is_a_hole_whatever_the_answer_said():
    result = _result(401)
    settle(result, ["paid: status 'CREATED' -> 'PAID'"], [])
    assert result.outcome == HOLE


def test_an_answer_is_masked_whole_before_it_is_cut():
    secret = "f" * 64
    body = {"echo": "x" * 130 + secret}  # the secret straddles the cut
    shown = shown_answer(body, {secret})
    assert "ffffffff" not in shown and "***" in shown


def test_a_bare_base64_standard_webhooks_secret_can_still_be_forged_against():
    real = scheme("standard-webhooks", secret="MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    assert signature_headers(real, b"{}") == ["webhook-signature"]
    assert with_other_credentials(real).secret != real.secret


def _profile(tmp_path, body: str):
    text = f'''version = 1
name = "no-amount"
base_url = "http://127.0.0.1:9"
[payments]
source = "http"
path = "/orders"
body = {{ amount = "{{amount}}" }}
id = "id"
[deliveries.callback]
path = "/hook"
body = {body}
states = {{ COMPLETED = "paid", FAILED = "failed" }}
signing = {{ scheme = "stripe", secret = "whsec_abcdefghijklmnop" }}
[state]
source = "http"
path = "/orders/{{id}}"
paid = {{ field = "status", values = ["paid"] }}
'''
    path = tmp_path / "p.toml"
    path.write_text(text)
    return load_profile(path)


def test_a_body_that_does_not_say_the_amount_gets_no_wrong_amount_probe(tmp_path):
    profile = _profile(tmp_path, '{ order = "{transaction}", type = "{state}" }')
    applies, skipped = catalogue(profile)
    assert "wrong-amount" not in {p.name for p in applies}
    assert "does not say the amount" in {s.name: s.reason for s in skipped}["wrong-amount"]
    assert scheme_facts(Forger(profile))["covers_body"] is True  # two orders' bodies differ: Stripe covers them


def test_a_body_that_names_neither_order_nor_amount_is_not_said_to_be_unprotected(tmp_path):
    profile = _profile(tmp_path, '{ type = "{state}" }')
    facts = scheme_facts(Forger(profile))
    assert facts["covers_body"] is None
    applies, skipped = catalogue(profile)
    assert not {"unprotected-body", "tampered-body"} & {p.name for p in applies}
    assert "names neither the order nor its amount" in {s.name: s.reason for s in skipped}["unprotected-body"]
