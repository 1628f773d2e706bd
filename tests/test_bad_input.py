"""Bad input gets a clear 4xx, changes nothing, and never writes a file."""

from __future__ import annotations

import base64
import json

import httpx
import pytest
from helpers import HTTP_TIMEOUT, create_payments, receipt_files, target_of

from harness.signing import callback_payload, signed_callback, x_verify
from harness.profile.legacy import UAT_SALT_KEY

# Real service processes: `pytest -m 'not slow'` leaves these out.
pytestmark = pytest.mark.slow

API = "/api/public/service-charges"


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    from harness.reference import start_service

    svc = start_service(tmp_path_factory.mktemp("receipts"), mode="atomic", generation_delay_ms=0)
    yield svc
    svc.stop()


@pytest.fixture
def payment(service):
    return create_payments(target_of(service), 1)[0]


def _callback(payment, *, amount=None, state="COMPLETED", merchant="PGTESTPAYUAT", mtid=None):
    payload = callback_payload(merchant, mtid or payment.merchant_transaction_id,
                               payment.amount if amount is None else amount, state)
    return signed_callback(payload, UAT_SALT_KEY, 1)


def _signed_raw(response_field: str) -> tuple[bytes, dict]:
    return json.dumps({"response": response_field}).encode(), {"X-VERIFY": x_verify(response_field, UAT_SALT_KEY, 1),
                                                                "Content-Type": "application/json"}


def _cases(payment):
    good_body, good_headers = _callback(payment)
    valid_b64 = json.loads(good_body)["response"]
    not_schema = base64.b64encode(json.dumps({"success": True, "data": {"amount": "lots"}}).encode()).decode()
    return {
        "missing X-VERIFY": (401, good_body, {"Content-Type": "application/json"}),
        "wrong X-VERIFY": (401, good_body, {**good_headers, "X-VERIFY": x_verify(valid_b64, "not-the-salt", 1)}),
        "wrong salt index": (401, good_body, {**good_headers, "X-VERIFY": x_verify(valid_b64, UAT_SALT_KEY, 2)}),
        "not JSON": (400, b"{not json", good_headers),
        "no response field": (400, b'{"payload": "x"}', good_headers),
        "response not a string": (400, b'{"response": 12}', good_headers),
        "bad base64": (400, *_signed_raw("%%%not-base64%%%")),
        "base64 of non-JSON": (400, *_signed_raw(base64.b64encode(b"\xff\xfe binary").decode())),
        "payload not matching schema": (400, *_signed_raw(not_schema)),
        "unknown transaction": (404, *_callback(payment, mtid="MTDOESNOTEXIST")),
        "path traversal transaction id": (404, *_callback(payment, mtid="../../../../tmp/evil")),
        "amount differs from the charge": (409, *_callback(payment, amount=payment.amount + 1)),
        "unknown merchant": (400, *_callback(payment, merchant="SOMEONEELSE")),
        "body over 64 KiB": (413, b'{"response": "' + b"A" * (65 * 1024) + b'"}', good_headers),
    }


CASES = list(_cases(type("P", (), {"merchant_transaction_id": "MT0", "amount": 1})()).keys())


@pytest.mark.parametrize("case", CASES)
def test_bad_callback_is_rejected_and_changes_nothing(service, payment, case):
    status, body, headers = _cases(payment)[case]
    url = service.url + API
    before = httpx.get(f"{url}/{payment.id}", timeout=HTTP_TIMEOUT).json()
    files_before = receipt_files(service)

    response = httpx.post(f"{url}/phonepe/callback", content=body, headers=headers, timeout=HTTP_TIMEOUT)

    assert response.status_code == status, response.text
    assert response.json()["error"]  # a clear message, not an empty body
    assert httpx.get(f"{url}/{payment.id}", timeout=HTTP_TIMEOUT).json() == before
    assert receipt_files(service) == files_before


@pytest.mark.parametrize("state", ["FAILED", "PENDING"])
def test_late_failed_or_pending_callback_never_downgrades_a_paid_charge(service, payment, state):
    url = service.url + API
    body, headers = _callback(payment)
    generated = httpx.post(f"{url}/phonepe/callback", content=body, headers=headers, timeout=30)  # writes a PDF
    assert generated.json()["receipt"] == "generated"
    paid = httpx.get(f"{url}/{payment.id}", timeout=HTTP_TIMEOUT).json()
    files = receipt_files(service)

    body, headers = _callback(payment, state=state)
    response = httpx.post(f"{url}/phonepe/callback", content=body, headers=headers, timeout=HTTP_TIMEOUT)

    assert response.status_code == 200
    assert response.json()["receipt"] == "not_paid"
    assert httpx.get(f"{url}/{payment.id}", timeout=HTTP_TIMEOUT).json() == paid
    assert receipt_files(service) == files


def test_failed_callback_marks_a_pending_charge_failed_without_a_receipt(service, payment):
    url = service.url + API
    files = receipt_files(service)
    body, headers = _callback(payment, state="FAILED")
    response = httpx.post(f"{url}/phonepe/callback", content=body, headers=headers, timeout=HTTP_TIMEOUT)
    assert response.json()["receipt"] == "not_paid"
    charge = httpx.get(f"{url}/{payment.id}", timeout=HTTP_TIMEOUT).json()
    assert (charge["paymentStatus"], charge["receiptGenerated"]) == ("failed", False)
    assert receipt_files(service) == files


@pytest.mark.parametrize("body", [
    {"vendorName": "v", "exhibitionId": "e", "amount": 0},
    {"vendorName": "v", "exhibitionId": "e", "amount": -5},
    {"vendorName": "v", "exhibitionId": "e", "amount": "100"},
    {"vendorName": "", "exhibitionId": "e", "amount": 100},
    {"vendorName": "v", "exhibitionId": "e"},
    {"vendorName": "v", "exhibitionId": "e", "amount": 100, "receiptPath": "/etc/passwd"},
])
def test_invalid_charge_is_rejected_with_400(service, body):
    response = httpx.post(service.url + API, json=body, timeout=HTTP_TIMEOUT)
    assert response.status_code == 400
    assert "invalid request" in response.json()["error"]


@pytest.mark.parametrize("charge_id", ["..%2F..%2Fetc%2Fpasswd", "nothex", "0" * 31, "%00"])
def test_unknown_or_malformed_charge_ids_are_404(service, charge_id):
    for method, suffix in (("GET", ""), ("GET", "/receipt"), ("POST", "/verify")):
        response = httpx.request(method, f"{service.url}{API}/{charge_id}{suffix}")
        assert response.status_code == 404, (method, suffix, response.text)


@pytest.mark.parametrize("transaction_id", ["../evil", "/etc/passwd", "MT1/../../x", "MT\x00", "A" * 65, ""])
def test_receipt_names_refuse_any_transaction_id_that_could_leave_the_directory(tmp_path, transaction_id):
    from reference_service.receipts import UnsafeName, receipt_path

    with pytest.raises(UnsafeName):
        receipt_path(tmp_path, transaction_id)


def test_a_stored_receipt_path_outside_the_directory_is_never_served(tmp_path):
    from _inprocess import serve_in_thread

    from reference_service import ServiceConfig, create_app, open_store

    store = open_store(None)
    charge = store.create(vendor_name="v", exhibition_id="e", amount=100, merchant_transaction_id="MT1")
    secret = tmp_path / "secret.pdf"
    secret.write_bytes(b"%PDF-1.4 not yours")
    store.save_receipt(charge["_id"], str(secret))  # as if the database had been tampered with
    with serve_in_thread(create_app(ServiceConfig(receipts_dir=tmp_path / "receipts"), store=store)) as url:
        response = httpx.get(f"{url}{API}/{charge['_id']}/receipt", timeout=HTTP_TIMEOUT)
    assert response.status_code == 404 and b"not yours" not in response.content
