"""The seed's second code path: manual verify calls (asking PhonePe's status API) racing callbacks."""

from __future__ import annotations

import httpx
import pytest
import respx
from _inprocess import serve_in_thread
from helpers import HTTP_TIMEOUT, create_payments, outcomes

from harness.senders.burst import fire
from harness.signing import callback_payload, x_verify
from harness.profile.legacy import UAT_SALT_KEY, Target
from reference_service import ServiceConfig, create_app

# Real service processes: `pytest -m 'not slow'` leaves these out.
pytestmark = pytest.mark.slow

STATUS_BASE = "https://phonepe.invalid/apis/pg-sandbox"


@pytest.fixture
def phonepe():
    """PhonePe's status API, mocked: COMPLETED for whatever transaction it is asked about."""
    router = respx.MockRouter(assert_all_called=False)
    asked = []

    def status(request: httpx.Request, mid: str, mtid: str) -> httpx.Response:
        path = request.url.path.removeprefix("/apis/pg-sandbox")
        if request.headers.get("X-VERIFY") != x_verify(path, UAT_SALT_KEY, 1) or request.headers.get("X-MERCHANT-ID") != mid:
            return httpx.Response(401, json={"success": False, "code": "UNAUTHORIZED"})
        asked.append(mtid)
        return httpx.Response(200, json=callback_payload(mid, mtid, router.amounts[mtid]))

    router.amounts = {}
    router.asked = asked
    router.get(url__regex=r"/pg/v1/status/(?P<mid>[^/]+)/(?P<mtid>[^/]+)$").mock(side_effect=status)
    return router


@pytest.fixture
def verify_service(phonepe, tmp_path):
    def start(mode: str):
        config = ServiceConfig(mode=mode, receipts_dir=tmp_path / mode, generation_delay_ms=100,
                               phonepe_base_url=STATUS_BASE)
        client = httpx.AsyncClient(transport=httpx.MockTransport(phonepe.async_handler))
        return serve_in_thread(create_app(config, http_client=client))

    return start


def _mix(target: Target, payment, callbacks: int, verifies: int):
    return [target.callback_request(payment)] * callbacks + [target.verify_request(payment)] * verifies


def test_verify_alone_marks_paid_and_generates_the_receipt(verify_service, phonepe, tmp_path):
    with verify_service("atomic") as url:
        target = Target(base_url=url)
        (payment,) = create_payments(target, 1)
        phonepe.amounts[payment.merchant_transaction_id] = payment.amount
        response = httpx.post(target.url(target.verify_path, payment), timeout=30)
        assert response.json()["receipt"] == "generated"
        assert phonepe.asked == [payment.merchant_transaction_id]
        assert len(list((tmp_path / "atomic").iterdir())) == 1


def test_callbacks_and_verify_calls_racing_make_exactly_one_receipt_when_atomic(verify_service, phonepe, tmp_path):
    with verify_service("atomic") as url:
        target = Target(base_url=url)
        for payment in create_payments(target, 10):
            phonepe.amounts[payment.merchant_transaction_id] = payment.amount
            burst = fire(_mix(target, payment, 3, 3), timeout=30)
            assert outcomes(target, burst) == ["already_generated"] * 5 + ["generated"], burst.summary()
        files = list((tmp_path / "atomic").iterdir())
        assert len(files) == 10


def test_callbacks_and_verify_calls_racing_duplicate_receipts_when_vulnerable(verify_service, phonepe, tmp_path):
    with verify_service("vulnerable") as url:
        target = Target(base_url=url)
        payments = create_payments(target, 5)
        for payment in payments:
            phonepe.amounts[payment.merchant_transaction_id] = payment.amount
            fire(_mix(target, payment, 2, 2), timeout=30)
        files = list((tmp_path / "vulnerable").iterdir())
        assert len(files) > len(payments)


def test_unreachable_status_api_is_a_502_and_changes_nothing(tmp_path):
    config = ServiceConfig(receipts_dir=tmp_path / "r", phonepe_base_url="http://127.0.0.1:9")
    with serve_in_thread(create_app(config)) as url:
        target = Target(base_url=url)
        (payment,) = create_payments(target, 1)
        response = httpx.post(target.url(target.verify_path, payment), timeout=HTTP_TIMEOUT)
        assert response.status_code == 502
        assert httpx.get(target.url(target.state_path, payment), timeout=HTTP_TIMEOUT).json()["paymentStatus"] == "pending"
        assert list((tmp_path / "r").iterdir()) == []
