"""The PhonePe simulator: a status API the verify path can be pointed at outside tests."""

from __future__ import annotations

import httpx
import pytest
from helpers import HTTP_TIMEOUT, create_payments, receipt_files, target_of

from harness.reference import start_simulator
from harness.signing import status_headers
from harness.profile.legacy import UAT_MERCHANT_ID, UAT_SALT_KEY

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
