"""The PhonePe PG v2 checkout stranger (tests/strangers/v2_checkout.py) does what its docstring says.

Each variant runs as a real process (stdlib http.server + SQLite), with the PhonePe simulator as the
gateway the asks-gateway variant asks; everything is checked over HTTP and on disk, with httpx and
json only: none of the harness's profile machinery, except the one test that loads the profile.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from _strangers import STRANGERS, stranger

from harness.profile import load_profile

# Real processes (the simulator and three services): `pytest -m 'not slow'` leaves these out.
pytestmark = pytest.mark.slow

USERNAME, PASSWORD = "co-webhook", "co-webhook-password-for-tests"
AUTHORIZATION = hashlib.sha256(f"{USERNAME}:{PASSWORD}".encode()).hexdigest()
AMOUNT = 49_900
TIMEOUT = 30.0
PROFILE = STRANGERS / "v2_checkout.toml"


@dataclass
class Checkout:
    url: str
    invoices: Path
    gateway: str

    def create(self, amount: int = AMOUNT) -> dict:
        answer = httpx.post(f"{self.url}/api/orders", json={"amount": amount}, timeout=TIMEOUT)
        assert answer.status_code == 201, answer.text
        return answer.json()

    def order(self, order_id: str) -> dict:
        answer = httpx.get(f"{self.url}/api/orders/{order_id}", timeout=TIMEOUT)
        answer.raise_for_status()
        return answer.json()

    def invoices_of(self, merchant_order_id: str) -> list[dict]:
        found = [json.loads(p.read_text()) for p in sorted(self.invoices.glob("INV-*.json"))]
        return [doc for doc in found if doc["merchantOrderId"] == merchant_order_id]

    def deliver(self, merchant_order_id: str, amount: int = AMOUNT, event: str = "checkout.order.completed",
                authorization: str | None = AUTHORIZATION) -> httpx.Response:
        headers = {"Content-Type": "application/json"}
        if authorization is not None:
            headers["Authorization"] = authorization
        return httpx.post(f"{self.url}/webhooks/phonepe", content=callback(merchant_order_id, amount, event),
                          headers=headers, timeout=TIMEOUT)

    def tell_gateway(self, merchant_order_id: str, state: str, amount: int = AMOUNT) -> None:
        httpx.put(f"{self.gateway}/sim/transactions/{merchant_order_id}", json={"amount": amount, "state": state},
                  timeout=TIMEOUT).raise_for_status()

    def gateway_queries(self, merchant_order_id: str) -> int:
        return httpx.get(f"{self.gateway}/sim/transactions/{merchant_order_id}", timeout=TIMEOUT).json()["queries"]


def callback(merchant_order_id: str, amount: int = AMOUNT, event: str = "checkout.order.completed") -> bytes:
    state = "COMPLETED" if event.endswith("completed") else "FAILED"
    return json.dumps({"event": event, "payload": {
        "merchantId": "RHCHECKOUTUAT", "merchantOrderId": merchant_order_id, "orderId": f"OMO{uuid.uuid4().hex[:20]}",
        "state": state, "amount": amount, "expireAt": 1_764_000_000_000,
        "paymentDetails": [{"paymentMode": "UPI_INTENT", "transactionId": f"OM{uuid.uuid4().hex[:20]}",
                            "timestamp": 1_764_000_000_000, "amount": amount, "state": state}]},
    }, separators=(",", ":")).encode()


@contextlib.contextmanager
def running(workdir: Path, variant: str, gateway: str) -> Iterator[Checkout]:
    with stranger("v2_checkout.py", workdir / "invoices", "--db", str(workdir / "checkout.sqlite"),
                  "--variant", variant, "--username", USERNAME, "--password", PASSWORD,
                  "--gateway-url", gateway, log=workdir / "checkout.log") as service:
        yield Checkout(service.url, workdir / "invoices", gateway)


@pytest.fixture(scope="module")
def any_auth(tmp_path_factory, gateway) -> Iterator[Checkout]:
    with running(tmp_path_factory.mktemp("any-auth"), "any-auth", gateway) as service:
        yield service


@pytest.fixture(scope="module")
def checks_auth(tmp_path_factory, gateway) -> Iterator[Checkout]:
    with running(tmp_path_factory.mktemp("checks-auth"), "checks-auth", gateway) as service:
        yield service


@pytest.fixture(scope="module")
def asks_gateway(tmp_path_factory, gateway) -> Iterator[Checkout]:
    with running(tmp_path_factory.mktemp("asks-gateway"), "asks-gateway", gateway) as service:
        yield service


def test_any_auth_accepts_a_made_up_authorization_and_marks_the_order_paid(any_auth):
    order = any_auth.create()
    answer = any_auth.deliver(order["merchantOrderId"], authorization="anything-at-all")
    assert answer.status_code == 200 and answer.json()["invoice"] == "issued"
    state = any_auth.order(order["id"])
    (invoice,) = any_auth.invoices_of(order["merchantOrderId"])
    assert state["status"] == "PAID" and state["invoiceNumber"] == invoice["invoiceNumber"]
    assert state["invoiceFile"] == f"{invoice['invoiceNumber']}.json" and invoice["amountPaise"] == AMOUNT


def test_any_auth_answers_401_to_a_callback_without_authorization(any_auth):
    order = any_auth.create()
    assert any_auth.deliver(order["merchantOrderId"], authorization=None).status_code == 401
    assert any_auth.order(order["id"])["status"] == "CREATED" and any_auth.invoices_of(order["merchantOrderId"]) == []


def test_a_second_completed_callback_makes_no_second_invoice(any_auth):
    order = any_auth.create()
    outcomes = [any_auth.deliver(order["merchantOrderId"]).json()["invoice"] for _ in range(3)]
    assert outcomes == ["issued", "already", "already"]
    assert len(any_auth.invoices_of(order["merchantOrderId"])) == 1


def test_failed_after_completed_leaves_the_order_paid(any_auth):
    order = any_auth.create()
    any_auth.deliver(order["merchantOrderId"])
    answer = any_auth.deliver(order["merchantOrderId"], event="checkout.order.failed")
    assert answer.status_code == 200 and answer.json()["status"] == "PAID"
    assert any_auth.order(order["id"])["status"] == "PAID" and len(any_auth.invoices_of(order["merchantOrderId"])) == 1


def test_failed_marks_a_created_order_failed(any_auth):
    order = any_auth.create()
    assert any_auth.deliver(order["merchantOrderId"], event="checkout.order.failed").json()["status"] == "FAILED"
    assert any_auth.order(order["id"])["status"] == "FAILED" and any_auth.invoices_of(order["merchantOrderId"]) == []


def test_unknown_order_is_404(any_auth):
    assert any_auth.deliver("CO-NO-SUCH-ORDER").status_code == 404


def test_amount_unlike_the_orders_is_422_and_changes_nothing(any_auth):
    order = any_auth.create()
    assert any_auth.deliver(order["merchantOrderId"], amount=AMOUNT + 100).status_code == 422
    assert any_auth.order(order["id"])["status"] == "CREATED" and any_auth.invoices_of(order["merchantOrderId"]) == []


def test_checks_auth_answers_401_to_a_made_up_authorization(checks_auth):
    order = checks_auth.create()
    made_up = hashlib.sha256(b"someone:else").hexdigest()
    assert checks_auth.deliver(order["merchantOrderId"], authorization=made_up).status_code == 401
    assert checks_auth.order(order["id"])["status"] == "CREATED"
    assert checks_auth.invoices_of(order["merchantOrderId"]) == []


def test_checks_auth_trusts_the_body_of_a_rightly_authorised_callback_without_asking(checks_auth):
    order = checks_auth.create()
    checks_auth.tell_gateway(order["merchantOrderId"], "PENDING")  # the gateway says unpaid; nobody asks it
    assert checks_auth.deliver(order["merchantOrderId"]).json()["invoice"] == "issued"
    assert checks_auth.order(order["id"])["status"] == "PAID"
    assert checks_auth.gateway_queries(order["merchantOrderId"]) == 0


def test_asks_gateway_ignores_a_completed_body_when_the_gateway_says_pending(asks_gateway):
    order = asks_gateway.create()
    asks_gateway.tell_gateway(order["merchantOrderId"], "PENDING")
    answer = asks_gateway.deliver(order["merchantOrderId"])
    assert answer.status_code == 200 and answer.json()["invoice"] == "none" and "PENDING" in answer.json()["ignored"]
    assert asks_gateway.order(order["id"])["status"] == "CREATED"
    assert asks_gateway.invoices_of(order["merchantOrderId"]) == []
    assert asks_gateway.gateway_queries(order["merchantOrderId"]) == 1


def test_asks_gateway_pays_when_the_gateway_says_completed_with_the_orders_amount(asks_gateway):
    order = asks_gateway.create()
    asks_gateway.tell_gateway(order["merchantOrderId"], "COMPLETED")
    assert asks_gateway.deliver(order["merchantOrderId"]).json()["invoice"] == "issued"
    assert asks_gateway.order(order["id"])["status"] == "PAID"
    assert len(asks_gateway.invoices_of(order["merchantOrderId"])) == 1


def test_asks_gateway_answers_422_when_the_gateway_paid_another_amount(asks_gateway):
    order = asks_gateway.create()
    asks_gateway.tell_gateway(order["merchantOrderId"], "COMPLETED", amount=AMOUNT - 100)
    assert asks_gateway.deliver(order["merchantOrderId"]).status_code == 422
    assert asks_gateway.order(order["id"])["status"] == "CREATED"


def test_asks_gateway_ignores_an_order_the_gateway_does_not_know(asks_gateway):
    order = asks_gateway.create()
    answer = asks_gateway.deliver(order["merchantOrderId"])
    assert answer.status_code == 200 and answer.json()["invoice"] == "none"
    assert asks_gateway.order(order["id"])["status"] == "CREATED"


def test_asks_gateway_answers_401_to_a_made_up_authorization_without_asking(asks_gateway):
    order = asks_gateway.create()
    asks_gateway.tell_gateway(order["merchantOrderId"], "COMPLETED")
    assert asks_gateway.deliver(order["merchantOrderId"], authorization="made-up").status_code == 401
    assert asks_gateway.gateway_queries(order["merchantOrderId"]) == 0
    assert asks_gateway.order(order["id"])["status"] == "CREATED"


def test_profile_loads_with_its_variables(tmp_path):
    profile = load_profile(PROFILE, {
        "V2CO_BASE_URL": "http://127.0.0.1:1", "V2CO_INVOICES_DIR": str(tmp_path),
        "V2CO_WEBHOOK_USERNAME": USERNAME, "V2CO_WEBHOOK_PASSWORD": PASSWORD,
        "V2CO_GATEWAY_URL": "http://127.0.0.1:2"})
    assert profile.spec.name == "v2-checkout"
    callback_channel = profile.spec.deliveries["callback"]
    assert callback_channel.signing.scheme == "phonepe-v2" and callback_channel.gateway_url == "http://127.0.0.1:2"
    assert set(callback_channel.states) == {"COMPLETED", "FAILED"}


def test_completed_and_failed_in_one_burst_make_one_invoice_and_leave_it_paid(any_auth):
    from concurrent.futures import ThreadPoolExecutor

    order = any_auth.create()
    events = ["checkout.order.completed", "checkout.order.failed"] * 6
    with ThreadPoolExecutor(len(events)) as pool:
        statuses = list(pool.map(lambda e: any_auth.deliver(order["merchantOrderId"], event=e).status_code, events))
    assert statuses == [200] * len(events)
    assert len(any_auth.invoices_of(order["merchantOrderId"])) == 1
    # a FAILED that won the race marks the order FAILED first; a COMPLETED after it still pays it (once)
    assert any_auth.order(order["id"])["status"] == "PAID"
