"""The PhonePe PG v2 shop stranger (tests/strangers/phonepe_v2_shop.py) does what its profile says.

The service is checked on its own, as real processes (a SecantusDB wire server and the shop), with
pymongo, httpx and pypdf only: none of the harness's profile machinery. Orders go straight into the
shop's database, as its upstream checkout flow would put them; duplicates of one signed callback are
released together by a barrier, one connection each. Also here: the wire server's own atomicity,
which the fixed variant's claim and receipt counter stand on.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import re
import threading
import tomllib
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx
import pymongo
import pytest
from _strangers import STRANGERS, stranger
from _wire import fresh_database, wire_server
from helpers import claim_winners
from pymongo import ReturnDocument
from pypdf import PdfReader

# Real processes (a wire server and shops): `pytest -m 'not slow'` leaves these out.
pytestmark = pytest.mark.slow

USERNAME, PASSWORD = "rh-shop-webhook", "uat-v2-password"
AUTHORIZATION = hashlib.sha256(f"{USERNAME}:{PASSWORD}".encode()).hexdigest()
DUPLICATES = 5
RACE_TRIES = 5  # orders the vulnerable shop gets to show a double receipt
AMOUNT = 49_900
PROFILE = STRANGERS / "phonepe_v2_shop.toml"


@dataclass(frozen=True)
class Receipt:
    name: str
    title: str
    text: str

    @property
    def number(self) -> str:
        return self.title.removeprefix("Receipt ")


@dataclass
class Shop:
    url: str
    receipts_dir: Path
    db: pymongo.database.Database

    def insert_order(self, amount: int = AMOUNT) -> str:
        """An order as the upstream checkout flow leaves it; its merchantOrderId."""
        merchant_order_id = f"MO{uuid.uuid4().hex[:16].upper()}"
        self.db.orders.insert_one({"merchantOrderId": merchant_order_id, "amountPaise": amount, "status": "CREATED",
                                   "receiptIssued": False, "receiptNumber": None, "receiptFile": None,
                                   "customer": {"name": "Asha Rao", "phone": "9999999999"}})
        return merchant_order_id

    def order(self, merchant_order_id: str) -> dict:
        return self.db.orders.find_one({"merchantOrderId": merchant_order_id})

    def receipts_of(self, merchant_order_id: str) -> list[Receipt]:
        """The receipt PDFs whose page names the order (the file name and Title carry only the receipt number)."""
        found = []
        for path in sorted(self.receipts_dir.glob("receipt-*.pdf")):
            reader = PdfReader(path)
            receipt = Receipt(path.name, reader.metadata.title, reader.pages[0].extract_text())
            if f"Merchant order: {merchant_order_id}\n" in receipt.text + "\n":
                found.append(receipt)
        return found

    def snapshot(self, merchant_order_id: str) -> tuple:
        """Everything a callback for the order could change: the order, the counter, the receipts."""
        return (self.order(merchant_order_id), self.db.counters.find_one(),
                sorted(p.name for p in self.receipts_dir.iterdir()))

    def post(self, body: bytes, authorization: str | None = AUTHORIZATION) -> httpx.Response:
        headers = {"Content-Type": "application/json"}
        if authorization is not None:
            headers["Authorization"] = authorization
        return httpx.post(self.url + "/hooks/phonepe", content=body, headers=headers, timeout=60)

    def burst(self, body: bytes, duplicates: int = DUPLICATES) -> list[int]:
        """``duplicates`` identical signed callbacks released together; their status codes."""
        barrier = threading.Barrier(duplicates, timeout=60)
        statuses: list[int] = []

        def send() -> None:
            with httpx.Client(base_url=self.url, timeout=60) as client:
                client.get("/healthz")  # the connection is open before the barrier: only the callback is left
                barrier.wait()
                statuses.append(client.post("/hooks/phonepe", content=body,
                                            headers={"Authorization": AUTHORIZATION,
                                                     "Content-Type": "application/json"}).status_code)

        senders = [threading.Thread(target=send) for _ in range(duplicates)]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join(90)
        assert not any(sender.is_alive() for sender in senders), "a duplicate was not answered"
        return statuses


def callback(merchant_order_id: str, amount: int = AMOUNT, event: str = "checkout.order.completed") -> bytes:
    state = "COMPLETED" if event.endswith("completed") else "FAILED"
    return json.dumps({"event": event, "payload": {
        "merchantId": "RHSHOPUAT", "merchantOrderId": merchant_order_id, "orderId": f"OMO{uuid.uuid4().hex[:20]}",
        "state": state, "amount": amount,
        "paymentDetails": [{"paymentMode": "UPI_QR", "transactionId": f"OM{uuid.uuid4().hex[:20]}",
                            "timestamp": 1_764_000_000_000, "amount": amount, "state": state}]},
    }, separators=(",", ":")).encode()


@contextlib.contextmanager
def running_shop(workdir: Path, variant: str, *extra: str) -> Iterator[Shop]:
    server = wire_server()
    database = fresh_database()
    client: pymongo.MongoClient = pymongo.MongoClient(server.uri, serverSelectionTimeoutMS=30_000)
    try:
        with stranger("phonepe_v2_shop.py", workdir / "receipts", "--mongo-uri", server.uri, "--database", database,
                      "--variant", variant, "--username", USERNAME, "--password", PASSWORD, *extra,
                      log=workdir / "shop.log", timeout=120) as service:
            yield Shop(service.url, service.receipts_dir, client[database])
    finally:
        client.close()


@pytest.fixture(scope="module")
def vulnerable_shop(tmp_path_factory) -> Iterator[Shop]:
    with running_shop(tmp_path_factory.mktemp("vulnerable"), "vulnerable") as shop:
        yield shop


@pytest.fixture(scope="module")
def fixed_shop(tmp_path_factory) -> Iterator[Shop]:
    with running_shop(tmp_path_factory.mktemp("fixed"), "fixed") as shop:
        yield shop


@pytest.fixture(scope="module")
def fixed_bursts(fixed_shop) -> dict[str, list[int]]:
    """Three orders on the fixed shop, each sent DUPLICATES racing completed callbacks: order -> status codes."""
    orders = [fixed_shop.insert_order(AMOUNT + n) for n in range(3)]
    return {order: fixed_shop.burst(callback(order, AMOUNT + n)) for n, order in enumerate(orders)}


# -- racing duplicates ---------------------------------------------------------------------------------

def test_vulnerable_shop_issues_several_receipts_for_an_order_whose_duplicates_raced(vulnerable_shop):
    per_order = []
    for _ in range(RACE_TRIES):  # one double receipt is all this needs to show; a loaded machine may take a few
        order = vulnerable_shop.insert_order()
        assert vulnerable_shop.burst(callback(order)) == [200] * DUPLICATES
        per_order.append(len(vulnerable_shop.receipts_of(order)))
        if per_order[-1] > 1:
            break
    assert max(per_order) > 1, f"receipts per order: {per_order}"


def test_fixed_shop_answers_every_racing_duplicate_alike(fixed_bursts):
    assert all(statuses == [200] * DUPLICATES for statuses in fixed_bursts.values()), fixed_bursts


def test_fixed_shop_issues_exactly_one_receipt_per_order(fixed_shop, fixed_bursts):
    assert {order: len(fixed_shop.receipts_of(order)) for order in fixed_bursts} == dict.fromkeys(fixed_bursts, 1)


def test_fixed_shop_numbers_every_receipt_differently(fixed_shop, fixed_bursts):
    numbers = [receipt.number for order in fixed_bursts for receipt in fixed_shop.receipts_of(order)]
    assert len(set(numbers)) == len(numbers) == len(fixed_bursts), numbers


def test_fixed_shops_state_names_the_receipt_it_issued(fixed_shop, fixed_bursts):
    for order in fixed_bursts:
        (receipt,) = fixed_shop.receipts_of(order)
        state = fixed_shop.order(order)
        assert (state["status"], state["receiptIssued"], state["receiptNumber"], state["receiptFile"]) == \
            ("PAID", True, receipt.number, receipt.name)


def test_fixed_shop_gives_the_claim_back_when_a_receipt_cannot_be_written(tmp_path):
    with running_shop(tmp_path, "fixed", "--fail-generations", "1") as shop:
        order = shop.insert_order()
        assert shop.post(callback(order)).status_code == 500
        assert (shop.order(order)["receiptIssued"], shop.receipts_of(order)) == (False, [])
        assert shop.burst(callback(order)) == [200] * DUPLICATES
        assert len(shop.receipts_of(order)) == 1


# -- what a receipt says -------------------------------------------------------------------------------

def test_receipt_carries_its_number_in_the_title_and_name_and_the_amount_in_rupees(fixed_shop):
    order = fixed_shop.insert_order(12_345_678)
    assert fixed_shop.post(callback(order, 12_345_678)).status_code == 200
    (receipt,) = fixed_shop.receipts_of(order)
    assert re.fullmatch(r"R-\d{6}", receipt.number), receipt.title
    assert re.fullmatch(rf"receipt-{receipt.number}-\d{{13}}\.pdf", receipt.name)
    assert f"Receipt {receipt.number}" in receipt.text and "Amount: Rs 1,23,456.78" in receipt.text
    assert order not in receipt.name and order not in receipt.title


def test_profile_patterns_find_the_shops_receipt_number_and_amount(fixed_shop):
    profile = tomllib.loads(PROFILE.read_text())
    (effect,) = profile["effects"]
    order = fixed_shop.insert_order(12_345_678)
    assert fixed_shop.post(callback(order, 12_345_678)).status_code == 200
    (receipt,) = fixed_shop.receipts_of(order)
    assert fnmatch.fnmatch(receipt.name, effect["glob"])
    assert re.search(effect["key"]["pattern"], receipt.title).group(1) == fixed_shop.order(order)["receiptNumber"]
    rupees = re.search(effect["amount"]["pattern"], receipt.text).group(1)
    assert round(float(rupees.replace(",", "")) * 100) == 12_345_678


# -- state over HTTP -----------------------------------------------------------------------------------

def test_order_state_over_http_is_the_database_document(fixed_shop):
    order = fixed_shop.insert_order()
    answer = httpx.get(f"{fixed_shop.url}/orders/{order}", timeout=60)
    stored = fixed_shop.order(order)
    assert answer.status_code == 200
    assert answer.json() == {"data": {**stored, "_id": str(stored["_id"])}}


def test_order_state_of_an_unknown_order_is_404(fixed_shop):
    assert httpx.get(f"{fixed_shop.url}/orders/MO-NOBODY", timeout=60).status_code == 404


# -- refused callbacks change nothing ------------------------------------------------------------------

@pytest.mark.parametrize("authorization", [
    None,
    hashlib.sha256(f"{USERNAME}:wrong-password".encode()).hexdigest(),
    AUTHORIZATION.upper(),
    f"{USERNAME}:{PASSWORD}",
    f"SHA256 {AUTHORIZATION}x",
], ids=["missing", "wrong-password", "uppercase-hex", "plain-credentials", "garbled"])
def test_callback_without_the_right_authorization_is_401_and_changes_nothing(fixed_shop, authorization):
    order = fixed_shop.insert_order()
    before = fixed_shop.snapshot(order)
    assert fixed_shop.post(callback(order), authorization=authorization).status_code == 401
    assert fixed_shop.snapshot(order) == before


MALFORMED = {
    "not-json": b"{event: completed",
    "not-an-object": b"[]",
    "unknown-event": json.dumps({"event": "checkout.order.refunded", "payload": {}}).encode(),
    "no-payload": json.dumps({"event": "checkout.order.completed"}).encode(),
    "amount-as-text": callback("{order}").replace(b'"amount":49900', b'"amount":"49900"', 1),
    "no-merchant-order-id": callback("{order}").replace(b'"merchantOrderId"', b'"merchantOrderID"'),
    "empty": b"",
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_callback_is_400_and_changes_nothing(fixed_shop, body):
    order = fixed_shop.insert_order()
    before = fixed_shop.snapshot(order)
    answer = fixed_shop.post(body.replace(b"{order}", order.encode()))
    assert answer.status_code == 400 and answer.json()["ok"] is False
    assert fixed_shop.snapshot(order) == before


def test_callback_for_an_unknown_order_is_404(fixed_shop):
    assert fixed_shop.post(callback("MO-NOBODY")).status_code == 404


def test_callback_with_another_amount_is_422_and_changes_nothing(fixed_shop):
    order = fixed_shop.insert_order()
    before = fixed_shop.snapshot(order)
    assert fixed_shop.post(callback(order, AMOUNT + 100)).status_code == 422
    assert fixed_shop.snapshot(order) == before


# -- failed payments -----------------------------------------------------------------------------------

def test_failed_event_marks_a_created_order_failed_without_a_receipt(fixed_shop):
    order = fixed_shop.insert_order()
    assert fixed_shop.post(callback(order, event="checkout.order.failed")).status_code == 200
    assert (fixed_shop.order(order)["status"], fixed_shop.receipts_of(order)) == ("FAILED", [])


def test_failed_event_after_payment_leaves_the_order_paid(fixed_shop):
    order = fixed_shop.insert_order()
    assert fixed_shop.post(callback(order)).status_code == 200
    assert fixed_shop.post(callback(order, event="checkout.order.failed")).status_code == 200
    assert fixed_shop.order(order)["status"] == "PAID"


# -- the wire server's atomicity, which the fixed variant stands on --------------------------------------

@pytest.fixture
def wire_db() -> Iterator[pymongo.database.Database]:
    client: pymongo.MongoClient = pymongo.MongoClient(wire_server().uri, serverSelectionTimeoutMS=30_000)
    yield client[fresh_database()]
    client.close()


def test_wire_server_claim_on_ne_true_is_won_once_by_racing_threads(wire_db, fast_switching):
    def winners() -> int:
        order_id = wire_db.orders.insert_one({"receiptIssued": False}).inserted_id
        return claim_winners(lambda: wire_db.orders.find_one_and_update(
            {"_id": order_id, "receiptIssued": {"$ne": True}}, {"$set": {"receiptIssued": True}}))

    assert [winners() for _ in range(10)] == [1] * 10


def test_wire_server_inc_hands_racing_threads_distinct_numbers(wire_db, fast_switching):
    wire_db.counters.insert_one({"_id": "receiptNumber", "seq": 0})
    taken: list[int] = []

    def take() -> int:
        seq = wire_db.counters.find_one_and_update({"_id": "receiptNumber"}, {"$inc": {"seq": 1}},
                                                   return_document=ReturnDocument.AFTER)["seq"]
        taken.append(seq)
        return seq

    assert claim_winners(take) == 20
    assert sorted(taken) == list(range(1, 21))
