"""The Stripe orders stranger (tests/strangers/stripe_orders.py) does what its docstring says.

Each variant runs as a real process (Starlette + SQLite); webhooks are signed here with hmac (the
service's own check is what is tested), and everything is read back over HTTP. Only the last test
uses the harness: it loads the profile.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from _strangers import STRANGERS, stranger

from harness.profile import load_profile

# Real processes (three services): `pytest -m 'not slow'` leaves these out.
pytestmark = pytest.mark.slow

SECRET = "whsec_stripe-orders-test-secret"
AMOUNT = 129_900
TIMEOUT = 30.0
PROFILE = STRANGERS / "stripe_orders.toml"


def event(order_id: str, kind: str = "payment_intent.succeeded", amount: int = AMOUNT) -> bytes:
    status = {"payment_intent.succeeded": "succeeded", "payment_intent.payment_failed": "requires_payment_method",
              "payment_intent.processing": "processing"}[kind]
    return json.dumps({"id": f"evt_{uuid.uuid4().hex[:24]}", "object": "event", "type": kind,
                       "created": int(time.time()), "data": {"object": {
                           "id": f"pi_{uuid.uuid4().hex[:24]}", "object": "payment_intent", "amount": amount,
                           "currency": "inr", "status": status, "metadata": {"order_id": order_id}}}},
                      separators=(",", ":")).encode()


def signature(body: bytes, secret: str = SECRET, at: float | None = None) -> str:
    t = int(time.time() if at is None else at)
    return f"t={t},v1={hmac.new(secret.encode(), f'{t}.'.encode() + body, hashlib.sha256).hexdigest()}"


@dataclass
class Orders:
    url: str

    def create(self, amount: int = AMOUNT) -> str:
        answer = httpx.post(f"{self.url}/orders", json={"amount": amount, "currency": "inr"}, timeout=TIMEOUT)
        assert answer.status_code == 201, answer.text
        return answer.json()["order"]["id"]

    def status(self, order_id: str) -> str:
        return httpx.get(f"{self.url}/orders/{order_id}", timeout=TIMEOUT).json()["order"]["status"]

    def fulfilments(self, order_id: str) -> list[dict]:
        return httpx.get(f"{self.url}/fulfilments", params={"order_id": order_id}, timeout=TIMEOUT).json()["fulfilments"]

    def deliver(self, body: bytes, stripe_signature: str | None) -> httpx.Response:
        headers = {"Content-Type": "application/json"}
        if stripe_signature is not None:
            headers["Stripe-Signature"] = stripe_signature
        return httpx.post(f"{self.url}/stripe/webhook", content=body, headers=headers, timeout=TIMEOUT)

    def signed(self, order_id: str, kind: str = "payment_intent.succeeded", amount: int = AMOUNT,
               at: float | None = None) -> httpx.Response:
        body = event(order_id, kind, amount)
        return self.deliver(body, signature(body, at=at))


@contextlib.contextmanager
def running(workdir: Path, variant: str) -> Iterator[Orders]:
    with stranger("stripe_orders.py", None, "--db", str(workdir / "orders.sqlite"), "--variant", variant,
                  "--secret", SECRET, log=workdir / "orders.log") as service:
        yield Orders(service.url)


@pytest.fixture(scope="module")
def fixed(tmp_path_factory) -> Iterator[Orders]:
    with running(tmp_path_factory.mktemp("fixed"), "fixed") as service:
        yield service


@pytest.fixture(scope="module")
def ignores_timestamp(tmp_path_factory) -> Iterator[Orders]:
    with running(tmp_path_factory.mktemp("ignores-timestamp"), "ignores-timestamp") as service:
        yield service


@pytest.fixture(scope="module")
def unpays(tmp_path_factory) -> Iterator[Orders]:
    with running(tmp_path_factory.mktemp("unpays"), "unpays") as service:
        yield service


def test_fixed_pays_a_rightly_signed_succeeded_event_once(fixed):
    order = fixed.create()
    outcomes = [fixed.signed(order).json()["fulfilment"] for _ in range(2)]
    assert outcomes == ["created", "already"] and fixed.status(order) == "paid"
    (row,) = fixed.fulfilments(order)
    assert row["amount"] == AMOUNT


def test_fixed_answers_400_to_a_signature_an_hour_old(fixed):
    order = fixed.create()
    answer = fixed.signed(order, at=time.time() - 3600)
    assert answer.status_code == 400 and "tolerance" in answer.json()["error"]
    assert fixed.status(order) == "pending" and fixed.fulfilments(order) == []


def test_fixed_answers_400_to_a_signature_from_the_future(fixed):
    order = fixed.create()
    assert fixed.signed(order, at=time.time() + 3600).status_code == 400
    assert fixed.status(order) == "pending"


def test_fixed_answers_400_to_unsigned_wrongly_signed_and_tampered_events(fixed):
    order = fixed.create()
    body = event(order)
    other = signature(body, secret="whsec_someone-else")
    tampered = signature(event(order, amount=AMOUNT + 1))  # signed another body
    for header in (None, "t=1,v1=deadbeef", other, tampered, "v1=abc"):
        assert fixed.deliver(body, header).status_code == 400, header
    assert fixed.status(order) == "pending" and fixed.fulfilments(order) == []


def test_fixed_keeps_a_paid_order_paid_after_a_failed_event(fixed):
    order = fixed.create()
    fixed.signed(order)
    answer = fixed.signed(order, "payment_intent.payment_failed")
    assert answer.status_code == 200 and answer.json()["status"] == "paid"
    fixed.signed(order, "payment_intent.processing")
    fixed.signed(order)
    assert fixed.status(order) == "paid" and len(fixed.fulfilments(order)) == 1


def test_fixed_marks_a_pending_order_failed(fixed):
    order = fixed.create()
    assert fixed.signed(order, "payment_intent.payment_failed").json()["status"] == "failed"
    assert fixed.fulfilments(order) == []


def test_unknown_order_is_404_and_another_amount_is_422(fixed):
    assert fixed.signed("ord_no_such_order").status_code == 404
    order = fixed.create()
    assert fixed.signed(order, amount=AMOUNT + 100).status_code == 422
    assert fixed.status(order) == "pending" and fixed.fulfilments(order) == []


def test_ignores_timestamp_accepts_a_signature_an_hour_old(ignores_timestamp):
    order = ignores_timestamp.create()
    answer = ignores_timestamp.signed(order, at=time.time() - 3600)
    assert answer.status_code == 200 and answer.json()["fulfilment"] == "created"
    assert ignores_timestamp.status(order) == "paid"


def test_ignores_timestamp_still_refuses_a_wrong_hmac(ignores_timestamp):
    order = ignores_timestamp.create()
    body = event(order)
    assert ignores_timestamp.deliver(body, signature(body, secret="whsec_someone-else")).status_code == 400
    assert ignores_timestamp.status(order) == "pending"


def test_unpays_sets_a_paid_order_failed_and_fulfils_it_again(unpays):
    order = unpays.create()
    assert unpays.signed(order).json()["fulfilment"] == "created"
    assert unpays.signed(order, "payment_intent.payment_failed").json()["status"] == "failed"
    assert unpays.status(order) == "failed" and len(unpays.fulfilments(order)) == 1
    assert unpays.signed(order).json()["fulfilment"] == "created"
    assert unpays.status(order) == "paid" and len(unpays.fulfilments(order)) == 2


def test_unpays_still_refuses_a_stale_signature(unpays):
    order = unpays.create()
    assert unpays.signed(order, at=time.time() - 3600).status_code == 400
    assert unpays.status(order) == "pending"


def test_profile_loads_with_its_variables():
    profile = load_profile(PROFILE, {"STRIPE_ORDERS_BASE_URL": "http://127.0.0.1:1", "STRIPE_ORDERS_SECRET": SECRET})
    assert profile.spec.name == "stripe-orders"
    channel = profile.spec.deliveries["callback"]
    assert channel.signing.scheme == "stripe"
    assert channel.states["COMPLETED"]["state"] == "payment_intent.succeeded"
    assert channel.states["FAILED"]["state"] == "payment_intent.payment_failed"
