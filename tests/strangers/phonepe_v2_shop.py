"""A stranger: a shop on PhonePe PG v2 that the harness did not write, with a contract unlike the reference's.

Written only for the tests, as a team's own backend would be:

- no public create endpoint: orders are inserted straight into MongoDB (``orders``) by an upstream
  checkout flow, as ``{_id: ObjectId, merchantOrderId, amountPaise, status: "CREATED", receiptIssued:
  false, receiptNumber: null, receiptFile: null, customer: {...}}``;
- ``POST /hooks/phonepe``: PhonePe PG v2 callbacks, ``Authorization: sha256("username:password")`` in
  lowercase hex (checked here, with this file's own code), body ``{event, payload: {merchantId,
  merchantOrderId, orderId, state, amount, paymentDetails}}``. The event decides (``payload.state`` is
  informative); ``checkout.order.completed`` marks the order PAID and issues a receipt,
  ``checkout.order.failed`` marks a CREATED order FAILED (a PAID one stays PAID);
- the receipt gets a number of the shop's own (``counters``), ``R-000123``, that appears only in the
  PDF's Title ("Receipt R-000123") and its page text; the file is ``receipt-<number>-<unix ms>.pdf``,
  written whole (a temporary file, then linked into place: an existing receipt is never overwritten);
- every accepted callback is answered ``200 {"ok": true}``, whatever it did: only the side effects and
  the state say what happened. 401 bad Authorization, 400 malformed, 404 unknown order, 422 amount
  mismatch, each changing nothing; 500 ``{"ok": false}`` when a receipt could not be written;
- ``GET /orders/{merchantOrderId}`` -> ``{"data": {...}}`` (``_id`` as a string), ``GET /healthz``.

``--variant vulnerable`` reads the order and, when ``receiptIssued`` is not true, takes a number
(read the counter, then write it), renders the receipt and only then sets the flag: racing duplicates
all pass the check, and make a receipt each (with the same number or different ones).
``--variant fixed`` claims the receipt with one ``find_one_and_update`` on ``receiptIssued != true``;
only the winner takes a number (``$inc``, atomically) and renders; a failed generation gives the
claim back. ``--fail-generations N`` makes the first N generations fail (to show the rollback).

    python tests/strangers/phonepe_v2_shop.py --port 8124 --receipts DIR --mongo-uri mongodb://... \\
        --database shop --variant fixed [--username U --password P]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pymongo
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fpdf import FPDF
from pymongo import ReturnDocument
from pymongo.errors import PyMongoError
from starlette.concurrency import run_in_threadpool

DEFAULT_USERNAME = "v2shop-webhook"
DEFAULT_PASSWORD = "v2shop-webhook-password"
EVENTS = {"checkout.order.completed": "COMPLETED", "checkout.order.failed": "FAILED"}
COUNTER_ID = "receiptNumber"
SHOP_NAME = "Kirana Corner Online"


class BadInput(ValueError):
    """The callback body is not a PhonePe PG v2 callback this shop understands."""


def authorization_for(username: str, password: str) -> str:
    """PhonePe PG v2: the Authorization header is SHA256("username:password"), lowercase hex."""
    return hashlib.sha256(f"{username}:{password}".encode()).hexdigest()


def rupees(paise: int) -> str:
    """49900 paise -> '499.00'; 12345678 -> '1,23,456.78' (Indian grouping)."""
    whole, frac = divmod(paise, 100)
    digits = str(whole)
    if len(digits) > 3:
        head, tail = digits[:-3], digits[-3:]
        groups = []
        while len(head) > 2:
            head, groups = head[:-2], [head[-2:], *groups]
        digits = ",".join([head, *groups, tail]) if head else ",".join([*groups, tail])
    return f"{digits}.{frac:02d}"


def parse_callback(raw: bytes) -> tuple[str, dict]:
    """``(event, payload)`` of a well-formed callback; BadInput naming what is wrong otherwise."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadInput("body is not JSON") from None
    if not isinstance(body, dict):
        raise BadInput("body is not a JSON object")
    event = body.get("event")
    if event not in EVENTS:
        raise BadInput(f"unknown event {event!r}")
    payload = body.get("payload")
    if not isinstance(payload, dict):
        raise BadInput("payload is missing or not an object")
    for name in ("merchantOrderId", "orderId", "state"):
        if not isinstance(payload.get(name), str) or not payload[name]:
            raise BadInput(f"payload.{name} is missing or not a string")
    amount = payload.get("amount")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise BadInput("payload.amount is missing or not a positive integer (paise)")
    if not isinstance(payload.get("paymentDetails", []), list):
        raise BadInput("payload.paymentDetails is not a list")
    return event, payload


def render(order: dict, number: str) -> bytes:
    pdf = FPDF()
    pdf.set_title(f"Receipt {number}")
    pdf.set_author(SHOP_NAME)
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    customer = order.get("customer") or {}
    for line in (f"{SHOP_NAME} - Tax receipt", f"Receipt {number}",
                 f"Merchant order: {order['merchantOrderId']}",
                 f"Customer: {customer.get('name', '-')}",
                 f"Amount: Rs {rupees(order['amountPaise'])}",
                 "Paid via PhonePe. Thank you for shopping with us."):
        pdf.cell(0, 8, line, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def write_whole(receipts: Path, number: str, data: bytes) -> str:
    """Write ``receipt-<number>-<unix ms>.pdf`` whole; never over an existing file (the ms moves on). Its name."""
    temporary = receipts / f".writing-{uuid.uuid4().hex}.tmp"
    with open(temporary, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    try:
        now_ms = time.time_ns() // 1_000_000
        for ms in range(now_ms, now_ms + 1000):
            name = f"receipt-{number}-{ms}.pdf"
            try:
                os.link(temporary, receipts / name)  # atomic, and refuses an existing name
                return name
            except FileExistsError:
                continue
    finally:
        temporary.unlink(missing_ok=True)
    raise FileExistsError(f"no free name for receipt {number}")


def public(order: dict) -> dict:
    return {**order, "_id": str(order["_id"])}


def build(receipts: Path, db: Any, variant: str, username: str, password: str,
          generation_delay: float, fail_generations: int) -> FastAPI:
    app = FastAPI()
    orders, counters = db.orders, db.counters
    expected_authorization = authorization_for(username, password)
    failures_left = [fail_generations]
    failures_lock = threading.Lock()

    def refuse(status: int, error: str) -> JSONResponse:
        return JSONResponse({"ok": False, "error": error}, status_code=status)

    def generate(order: dict, number: str) -> str:
        """Render and write the receipt (slowly, as a real PDF service is); its file name."""
        time.sleep(generation_delay)  # this handler runs in a worker thread: racing duplicates overlap here
        with failures_lock:
            failing = failures_left[0] > 0
            failures_left[0] -= failing
        if failing:
            raise OSError("injected: the receipt could not be written")
        return write_whole(receipts, number, render(order, number))

    def next_number_racy() -> str:
        """Read the counter, then write it: two callers at once take the same number."""
        current = counters.find_one({"_id": COUNTER_ID}) or {"seq": 0}
        seq = current["seq"] + 1
        counters.update_one({"_id": COUNTER_ID}, {"$set": {"seq": seq}}, upsert=True)
        return f"R-{seq:06d}"

    def next_number_atomic() -> str:
        counter = counters.find_one_and_update({"_id": COUNTER_ID}, {"$inc": {"seq": 1}}, upsert=True,
                                               return_document=ReturnDocument.AFTER)
        return f"R-{counter['seq']:06d}"

    def issue_vulnerable(order: dict) -> JSONResponse:
        if order.get("receiptIssued") is True:  # check, then act: duplicates that arrive together all pass
            return JSONResponse({"ok": True})
        number = next_number_racy()
        try:
            name = generate(order, number)
        except OSError:
            return refuse(500, "receipt failed")
        orders.update_one({"_id": order["_id"]},
                          {"$set": {"receiptIssued": True, "receiptNumber": number, "receiptFile": name}})
        return JSONResponse({"ok": True})

    def issue_fixed(order: dict) -> JSONResponse:
        claimed = orders.find_one_and_update({"_id": order["_id"], "receiptIssued": {"$ne": True}},
                                             {"$set": {"receiptIssued": True}},
                                             return_document=ReturnDocument.AFTER)
        if claimed is None:  # somebody else issued it, or is issuing it now
            return JSONResponse({"ok": True})
        try:
            number = next_number_atomic()
            name = generate(claimed, number)
        except (OSError, PyMongoError):
            orders.update_one({"_id": order["_id"]}, {"$set": {"receiptIssued": False}})  # give the claim back
            return refuse(500, "receipt failed")
        orders.update_one({"_id": order["_id"]}, {"$set": {"receiptNumber": number, "receiptFile": name}})
        return JSONResponse({"ok": True})

    @app.get("/healthz")
    def health() -> JSONResponse:
        try:
            db.client.admin.command("ping")
        except PyMongoError as exc:
            return refuse(503, f"database: {exc.__class__.__name__}")
        return JSONResponse({"ok": True})

    @app.get("/orders/{merchant_order_id}")
    def order_state(merchant_order_id: str) -> JSONResponse:
        order = orders.find_one({"merchantOrderId": merchant_order_id})
        if order is None:
            return refuse(404, "no such order")
        return JSONResponse({"data": public(order)})

    @app.post("/hooks/phonepe")
    async def callback(request: Request) -> JSONResponse:
        raw = await request.body()
        supplied = request.headers.get("authorization", "")
        if not hmac.compare_digest(supplied.encode(), expected_authorization.encode()):
            return refuse(401, "bad Authorization")
        try:
            event, payload = parse_callback(raw)
        except BadInput as exc:
            return refuse(400, str(exc))
        return await run_in_threadpool(handle, event, payload)  # pymongo blocks: off the event loop

    def handle(event: str, payload: dict) -> JSONResponse:
        order = orders.find_one({"merchantOrderId": payload["merchantOrderId"]})
        if order is None:
            return refuse(404, "unknown merchantOrderId")
        if payload["amount"] != order.get("amountPaise"):
            return refuse(422, "amount does not match the order")
        if EVENTS[event] == "FAILED":
            orders.update_one({"_id": order["_id"], "status": "CREATED"}, {"$set": {"status": "FAILED"}})
            return JSONResponse({"ok": True})
        orders.update_one({"_id": order["_id"], "status": {"$ne": "PAID"}},
                          {"$set": {"status": "PAID", "phonepeOrderId": payload["orderId"],
                                    "paidAt": time.time_ns() // 1_000_000}})
        order = orders.find_one({"_id": order["_id"]})
        return issue_vulnerable(order) if variant == "vulnerable" else issue_fixed(order)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--receipts", type=Path, required=True)
    parser.add_argument("--mongo-uri", required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--variant", choices=("vulnerable", "fixed"), required=True)
    parser.add_argument("--username", default=DEFAULT_USERNAME, help="the PhonePe webhook username")
    parser.add_argument("--password", default=DEFAULT_PASSWORD, help="the PhonePe webhook password")
    parser.add_argument("--generation-delay-ms", type=float, default=50.0)
    parser.add_argument("--fail-generations", type=int, default=0)
    args = parser.parse_args()
    args.receipts.mkdir(parents=True, exist_ok=True)
    client: pymongo.MongoClient = pymongo.MongoClient(args.mongo_uri, serverSelectionTimeoutMS=10_000)
    db = client[args.database]
    db.orders.create_index([("merchantOrderId", pymongo.ASCENDING)], unique=True)
    db.counters.update_one({"_id": COUNTER_ID}, {"$setOnInsert": {"seq": 0}}, upsert=True)
    app = build(args.receipts, db, args.variant, args.username, args.password,
                args.generation_delay_ms / 1000, args.fail_generations)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
