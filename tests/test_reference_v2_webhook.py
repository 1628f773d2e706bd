"""The reference service's PhonePe PG v2 webhook, checked by the harness's own v2 signing.

The webhook's ``Authorization`` is sha256 of ``username:password``; the harness computes it with
``harness.signing`` (``phonepe-v2``), independently of the service's check. A webhook takes the
v1 callback's path from the charge on: the same claim per mode, the same receipt, the same answer.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Callable

import httpx
import pytest
from helpers import create_payments, receipt_files, target_of

from harness.senders.burst import PreparedRequest, fire
from harness.reference import start_service
from harness.signing import callback_payload, scheme, signed_callback, v2_webhook_body, v2_webhook_payload
from harness.profile.legacy import UAT_SALT_KEY
from harness.profile.payments import Payment

# Real service processes: `pytest -m 'not slow'` leaves these out.
pytestmark = pytest.mark.slow

API = "/api/public/service-charges"
WEBHOOK = API + "/phonepe/webhook"
MERCHANT = "PGTESTPAYUAT"
USERNAME = "v2-test-merchant"
PASSWORD = "pw-v2-never-logged-5c1e9b"  # distinctive, so the log can be searched for it
# The service's local defaults (reference_service.config), for a service started without credentials.
DEFAULT_USERNAME, DEFAULT_PASSWORD = "race-harness", "race-harness-webhook"
DUPLICATES = 5
RACE_TRIES = 5  # payments tried before the vulnerable mode must have doubled a receipt


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """One atomic service with webhook credentials of its own (not the defaults), no generation delay."""
    tmp = tmp_path_factory.mktemp("v2")
    svc = start_service(tmp / "receipts", mode="atomic", generation_delay_ms=0, log_path=tmp / "service.log",
                        webhook_username=USERNAME, webhook_password=PASSWORD)
    yield svc
    svc.stop()


@pytest.fixture
def payment(service) -> Payment:
    return create_payments(target_of(service), 1)[0]


def _payload(payment: Payment, state: str = "COMPLETED") -> dict:
    return v2_webhook_payload(MERCHANT, payment.merchant_transaction_id, f"OMO{payment.id[:20]}", payment.amount,
                              state)


def _signed(payload: dict, username: str = USERNAME, password: str = PASSWORD) -> tuple[bytes, dict[str, str]]:
    body = v2_webhook_body(payload)
    headers = {**scheme("phonepe-v2", username=username, password=password).sign(body),
               "Content-Type": "application/json"}
    return body, headers


def _post(service, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(service.url + WEBHOOK, content=body, headers=headers, timeout=30)


def _charge(service, payment: Payment) -> dict:
    return httpx.get(f"{service.url}{API}/{payment.id}", timeout=10).json()


def _receipts_of(service, payment: Payment) -> list:
    return [p for p in receipt_files(service) if payment.merchant_transaction_id in p.name]


# -- the happy paths ---------------------------------------------------------------------------------

def test_completed_webhook_generates_exactly_one_receipt(service, payment):
    response = _post(service, *_signed(_payload(payment)))

    assert response.status_code == 200, response.text
    assert response.json()["receipt"] == "generated"
    assert _charge(service, payment)["receiptGenerated"] is True
    assert len(_receipts_of(service, payment)) == 1


def test_repeated_completed_webhook_is_answered_already_generated(service, payment):
    delivery = _signed(_payload(payment))
    _post(service, *delivery)

    response = _post(service, *delivery)

    assert response.json()["receipt"] == "already_generated"
    assert len(_receipts_of(service, payment)) == 1


def test_failed_webhook_marks_the_charge_failed_without_a_receipt(service, payment):
    response = _post(service, *_signed(_payload(payment, "FAILED")))

    assert response.status_code == 200, response.text
    assert response.json()["receipt"] == "not_paid"
    assert _charge(service, payment)["paymentStatus"] == "failed"
    assert _receipts_of(service, payment) == []


@pytest.mark.parametrize("state", ["COMPLETED", "FAILED"])
def test_webhook_answers_as_the_v1_callback_does(service, state):
    by_webhook, by_callback = create_payments(target_of(service), 2)
    callback = signed_callback(callback_payload(MERCHANT, by_callback.merchant_transaction_id, by_callback.amount,
                                                state), UAT_SALT_KEY, 1)

    webhook_answer = _post(service, *_signed(_payload(by_webhook, state))).json()
    callback_answer = httpx.post(service.url + API + "/phonepe/callback", content=callback[0], headers=callback[1],
                                 timeout=30).json()

    ignore = {"chargeId", "merchantTransactionId", "receiptPath"}
    assert webhook_answer.keys() == callback_answer.keys()
    assert {k: v for k, v in webhook_answer.items() if k not in ignore} == \
        {k: v for k, v in callback_answer.items() if k not in ignore}


def test_webhook_records_the_last_payment_attempts_transaction_id(service, payment):
    payload = _payload(payment)
    payload["payload"]["paymentDetails"][-1]["transactionId"] = "OM-V2-TXN-1"

    _post(service, *_signed(payload))

    assert _charge(service, payment)["transactionId"] == "OM-V2-TXN-1"


# -- concurrent duplicates -----------------------------------------------------------------------------

def _webhook_request(service, payment: Payment, username: str, password: str) -> PreparedRequest:
    body, headers = _signed(_payload(payment), username, password)
    return PreparedRequest("POST", service.url + WEBHOOK, tuple(headers.items()), body, payment=payment.id,
                           channel="webhook")


def _race(service, payment: Payment) -> int:
    """DUPLICATES identical webhooks for ``payment``, released together: how many receipt files it got."""
    request = _webhook_request(service, payment, DEFAULT_USERNAME, DEFAULT_PASSWORD)
    burst = fire([request] * DUPLICATES, timeout=30)
    assert burst.all_responded(), burst.summary()
    assert {e.status for e in burst.history.events} == {200}, burst.summary()
    return len(_receipts_of(service, payment))


@pytest.fixture
def racing_service(reference_service) -> Callable[[str], Any]:
    """A service in ``mode`` with the default webhook credentials and a generation time that leaves a race window."""
    return lambda mode: reference_service(mode, generation_delay_ms=200)


def test_simultaneous_webhooks_double_the_receipt_in_vulnerable_mode(racing_service):
    service = racing_service("vulnerable")
    counts = []
    for payment in create_payments(target_of(service), RACE_TRIES):
        counts.append(_race(service, payment))
        if counts[-1] > 1:
            break
    assert max(counts) > 1, counts


def test_simultaneous_webhooks_make_exactly_one_receipt_in_atomic_mode(racing_service):
    service = racing_service("atomic")
    payments = create_payments(target_of(service), 2)

    assert [_race(service, payment) for payment in payments] == [1, 1]


# -- bad input: a 4xx, and nothing changes -----------------------------------------------------------

def _without(field_name: str) -> Callable[[Payment], tuple[bytes, dict]]:
    def make(payment: Payment) -> tuple[bytes, dict]:
        payload = _payload(payment)
        del payload["payload"][field_name]
        return _signed(payload)
    return make


def _with_headers(headers: dict[str, str]) -> Callable[[Payment], tuple[bytes, dict]]:
    return lambda payment: (v2_webhook_body(_payload(payment)), {"Content-Type": "application/json", **headers})


def _raw(body: bytes) -> Callable[[Payment], tuple[bytes, dict]]:
    return lambda payment: (body, _signed({})[1])


def _changed(**changes: Any) -> Callable[[Payment], tuple[bytes, dict]]:
    """A completed webhook with these fields of its ``payload`` changed."""
    def make(payment: Payment) -> tuple[bytes, dict]:
        payload = _payload(payment)
        payload["payload"].update({k: v(payment) if callable(v) else v for k, v in changes.items()})
        return _signed(payload)
    return make


def _event(event: str) -> Callable[[Payment], tuple[bytes, dict]]:
    def make(payment: Payment) -> tuple[bytes, dict]:
        payload = _payload(payment)
        payload["event"] = event
        return _signed(payload)
    return make


def _token(username: str, password: str) -> str:
    return hashlib.sha256(f"{username}:{password}".encode()).hexdigest()


BAD = {
    "missing Authorization": (401, _with_headers({})),
    "wrong password": (401, lambda p: _signed(_payload(p), password="not-the-password")),
    "wrong username": (401, lambda p: _signed(_payload(p), username="someone-else")),
    "the local default credentials": (401, lambda p: _signed(_payload(p), DEFAULT_USERNAME, DEFAULT_PASSWORD)),
    "uppercase hex": (401, _with_headers({"Authorization": _token(USERNAME, PASSWORD).upper()})),
    "Bearer prefix": (401, _with_headers({"Authorization": "Bearer " + _token(USERNAME, PASSWORD)})),
    "v1 X-VERIFY instead": (401, _with_headers({"X-VERIFY": "0" * 64 + "###1"})),
    "not JSON, unauthenticated": (401, lambda p: (b"{not json", {"Content-Type": "application/json"})),
    "not JSON": (400, _raw(b"{not json")),
    "JSON but not an object": (400, _raw(b'["checkout.order.completed"]')),
    "unknown event": (400, _event("checkout.order.refunded")),
    "no event": (400, _event("")),
    "state contradicts the event": (400, _changed(state="FAILED")),
    "amount not a number": (400, _changed(amount="lots")),
    **{f"no {name}": (400, _without(name))
       for name in ("merchantId", "merchantOrderId", "orderId", "state", "amount", "paymentDetails")},
    "unknown order": (404, _changed(merchantOrderId="MTDOESNOTEXIST")),
    "path traversal order id": (404, _changed(merchantOrderId="../../../../tmp/evil")),
    "amount differs from the charge": (409, _changed(amount=lambda p: p.amount + 1)),
    "unknown merchant": (400, _changed(merchantId="SOMEONEELSE")),
    "body over 64 KiB": (413, _raw(b'{"event": "' + b"A" * (65 * 1024) + b'"}')),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_webhook_is_rejected_and_changes_nothing(service, payment, case):
    status, make = BAD[case]
    before, files_before = _charge(service, payment), receipt_files(service)

    response = _post(service, *make(payment))

    assert response.status_code == status, response.text
    assert response.json()["success"] is False
    assert _charge(service, payment) == before
    assert receipt_files(service) == files_before


def test_webhook_password_never_appears_in_the_service_log(service, payment):
    _post(service, *_signed(_payload(payment)))
    _post(service, *_signed(_payload(payment), password="not-the-password"))

    log = service.log_text()
    assert PASSWORD not in log
    assert _token(USERNAME, PASSWORD) not in log
    assert PASSWORD not in " ".join(service.args)


def test_a_rejected_webhook_does_not_echo_the_authorization_it_got(service, payment):
    sent = _token(USERNAME, "a-guess")

    response = _post(service, v2_webhook_body(_payload(payment)), {"Authorization": sent})

    assert sent not in response.text
    assert json.loads(response.text)["error"]


def test_serve_help_does_not_show_the_webhook_password(monkeypatch):
    from reference_service.server import build_parser

    monkeypatch.setenv("RH_WEBHOOK_PASSWORD", PASSWORD)

    assert PASSWORD not in build_parser().format_help()
