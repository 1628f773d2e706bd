"""The PhonePe simulator: a status API the verify path can be pointed at outside tests."""

from __future__ import annotations

import httpx
import pytest
from helpers import HTTP_TIMEOUT, create_payments, receipt_files, target_of

from harness.profile.legacy import UAT_MERCHANT_ID, UAT_SALT_KEY
from harness.reference import start_simulator
from harness.signing import status_headers
from reference_service.simulator import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_CLIENT_VERSION,
)

# Real service processes: `pytest -m 'not slow'` leaves these out.
pytestmark = pytest.mark.slow


@pytest.fixture
def simulator(tmp_path):
    sim = start_simulator(log_path=tmp_path / "simulator.log")
    yield sim
    sim.stop()


def test_status_api_refuses_a_wrongly_signed_request(simulator):
    path = f"/pg/v1/status/{UAT_MERCHANT_ID}/MT1"
    httpx.put(f"{simulator.url}/sim/transactions/MT1", json={"amount": 100}, timeout=HTTP_TIMEOUT).raise_for_status()
    wrong = status_headers(path, UAT_MERCHANT_ID, "not-the-salt", 1)
    assert httpx.get(simulator.url + path, headers=wrong, timeout=HTTP_TIMEOUT).status_code == 401
    right = status_headers(path, UAT_MERCHANT_ID, UAT_SALT_KEY, 1)
    answer = httpx.get(simulator.url + path, headers=right, timeout=HTTP_TIMEOUT).json()
    assert (answer["code"], answer["data"]["state"], answer["data"]["amount"]) == ("PAYMENT_SUCCESS", "COMPLETED", 100)


def test_service_verify_path_asks_the_simulator_and_generates_the_receipt(start_reference, simulator):
    service = start_reference("atomic", generation_delay_ms=0, phonepe_base_url=simulator.url)
    target = target_of(service, gateway_url=simulator.url)
    (payment,) = create_payments(target, 1)
    with httpx.Client(timeout=30) as client:  # a status call or a delivery, then a PDF
        target.set_gateway_state(client, payment, "COMPLETED")
        answer = client.post(target.url(target.verify_path, payment)).json()
    assert answer["receipt"] == "generated"
    assert len(receipt_files(service)) == 1


def test_simulator_signs_and_delivers_a_callback_the_service_accepts(start_reference, simulator):
    service = start_reference("atomic", generation_delay_ms=0)
    target = target_of(service, gateway_url=simulator.url)
    (payment,) = create_payments(target, 1)
    with httpx.Client(timeout=30) as client:  # a status call or a delivery, then a PDF
        target.set_gateway_state(client, payment, "COMPLETED")
        delivered = client.post(f"{simulator.url}/sim/transactions/{payment.merchant_transaction_id}/callback",
                                json={"url": target.url(target.callback_path)}).json()
    assert delivered["status"] == 200 and '"receipt":"generated"' in delivered["body"].replace(" ", "")


def test_pending_status_leaves_the_charge_unpaid(start_reference, simulator):
    service = start_reference("atomic", generation_delay_ms=0, phonepe_base_url=simulator.url)
    target = target_of(service, gateway_url=simulator.url)
    (payment,) = create_payments(target, 1)
    with httpx.Client(timeout=30) as client:  # a status call or a delivery, then a PDF
        target.set_gateway_state(client, payment, "PENDING")
        answer = client.post(target.url(target.verify_path, payment)).json()
    assert (answer["receipt"], answer["paymentStatus"]) == ("not_paid", "pending")
    assert receipt_files(service) == []


# -- PhonePe PG v2: the O-Bearer token, the order status API, and how often a service asked ------------

V2_CREDENTIALS = {"client_id": DEFAULT_CLIENT_ID, "client_version": DEFAULT_CLIENT_VERSION,
                  "client_secret": DEFAULT_CLIENT_SECRET, "grant_type": "client_credentials"}


@pytest.fixture(scope="module")
def v2_simulator(tmp_path_factory):
    sim = start_simulator(log_path=tmp_path_factory.mktemp("v2-simulator") / "simulator.log")
    yield sim
    sim.stop()


def v2_token(url: str) -> str:
    answer = httpx.post(f"{url}/v1/oauth/token", data=V2_CREDENTIALS, timeout=HTTP_TIMEOUT)
    answer.raise_for_status()
    grant = answer.json()
    assert grant["token_type"] == "O-Bearer" and grant["expires_at"] > 0
    return grant["access_token"]


def test_v2_oauth_refuses_a_wrong_client_secret(v2_simulator):
    wrong = {**V2_CREDENTIALS, "client_secret": "not-the-secret"}
    answer = httpx.post(f"{v2_simulator.url}/v1/oauth/token", data=wrong, timeout=HTTP_TIMEOUT)
    assert answer.status_code == 401 and answer.json()["code"] == "AUTHORIZATION_FAILED"


def test_v2_order_status_answers_what_the_harness_told_it(v2_simulator):
    httpx.put(f"{v2_simulator.url}/sim/transactions/MO-V2-1", json={"amount": 4990, "state": "COMPLETED"},
              timeout=HTTP_TIMEOUT).raise_for_status()
    answer = httpx.get(f"{v2_simulator.url}/checkout/v2/order/MO-V2-1/status",
                       headers={"Authorization": f"O-Bearer {v2_token(v2_simulator.url)}"}, timeout=HTTP_TIMEOUT)
    assert answer.status_code == 200
    order = answer.json()
    assert (order["state"], order["amount"]) == ("COMPLETED", 4990)
    assert order["orderId"].startswith("OMO") and order["expireAt"] > 0
    (detail,) = order["paymentDetails"]
    assert (detail["state"], detail["amount"]) == ("COMPLETED", 4990) and detail["transactionId"]


def test_v2_order_status_refuses_a_bad_token(v2_simulator):
    httpx.put(f"{v2_simulator.url}/sim/transactions/MO-V2-2", json={"amount": 100, "state": "COMPLETED"},
              timeout=HTTP_TIMEOUT).raise_for_status()
    for authorization in ("O-Bearer made-up-token", f"Bearer {v2_token(v2_simulator.url)}", ""):
        answer = httpx.get(f"{v2_simulator.url}/checkout/v2/order/MO-V2-2/status",
                           headers={"Authorization": authorization}, timeout=HTTP_TIMEOUT)
        assert answer.status_code == 401, authorization
    assert httpx.get(f"{v2_simulator.url}/sim/transactions/MO-V2-2", timeout=HTTP_TIMEOUT).json()["queries"] == 0


def test_v2_order_status_of_an_unknown_order_is_404(v2_simulator):
    answer = httpx.get(f"{v2_simulator.url}/checkout/v2/order/MO-NEVER-TOLD/status",
                       headers={"Authorization": f"O-Bearer {v2_token(v2_simulator.url)}"}, timeout=HTTP_TIMEOUT)
    assert answer.status_code == 404 and answer.json()["code"] == "ORDER_NOT_FOUND"
    seen = httpx.get(f"{v2_simulator.url}/sim/transactions/MO-NEVER-TOLD", timeout=HTTP_TIMEOUT)
    assert seen.status_code == 404 and seen.json()["queries"] == 1


def test_sim_counts_v1_and_v2_status_queries_per_transaction(v2_simulator):
    url = v2_simulator.url
    httpx.put(f"{url}/sim/transactions/MO-V2-3", json={"amount": 250, "state": "PENDING"},
              timeout=HTTP_TIMEOUT).raise_for_status()
    assert httpx.get(f"{url}/sim/transactions/MO-V2-3", timeout=HTTP_TIMEOUT).json()["queries"] == 0
    bearer = {"Authorization": f"O-Bearer {v2_token(url)}"}
    for _ in range(2):
        assert httpx.get(f"{url}/checkout/v2/order/MO-V2-3/status", headers=bearer,
                         timeout=HTTP_TIMEOUT).json()["state"] == "PENDING"
    path = f"/pg/v1/status/{UAT_MERCHANT_ID}/MO-V2-3"
    assert httpx.get(url + path, headers=status_headers(path, UAT_MERCHANT_ID, UAT_SALT_KEY, 1),
                     timeout=HTTP_TIMEOUT).status_code == 200
    seen = httpx.get(f"{url}/sim/transactions/MO-V2-3", timeout=HTTP_TIMEOUT).json()
    assert seen == {"merchantTransactionId": "MO-V2-3", "amount": 250, "state": "PENDING",
                    "transactionId": seen["transactionId"], "queries": 3}
