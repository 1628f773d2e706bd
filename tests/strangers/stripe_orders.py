"""A stranger: an order backend paid through Stripe, built on Starlette + SQLite, fulfilling orders as rows.

Written only for the tests, the way a small store's Stripe integration is built (its own signature
check, no Stripe SDK):

- ``POST /orders`` ``{"amount": <minor units>, "currency": "inr"}`` -> 201 ``{"order": {"id": "ord_…",
  "amount", "currency", "status": "pending", "fulfilment": null}, "client_secret": "pi_…_secret_…"}``
  (a PaymentIntent is opened with ``metadata.order_id`` = the order id);
- ``GET /orders/{id}`` -> 200 ``{"order": {"id", "amount", "currency", "status": pending | processing |
  paid | failed, "fulfilment": "ful_…" | null, "payment_intent"}}``, 404 ``{"error"}``;
- ``GET /fulfilments`` -> ``{"fulfilments": [{"id": "ful_…", "order_id", "amount", "currency",
  "payment_intent", "created"}]}``: the warehouse's pick list; a row is the side effect, one per
  shipment (``?order_id=`` narrows it);
- ``POST /stripe/webhook``: ``Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "t.body")>``
  (checked here, with this file's own code; several v1 entries are allowed, as during secret
  rotation), body a Stripe event ``{"id": "evt_…", "type", "data": {"object": {"id": "pi_…", "object":
  "payment_intent", "amount", "currency", "status", "metadata": {"order_id"}}}}``. Events:
  ``payment_intent.succeeded`` pays the order and inserts its fulfilment row (paying is an atomic claim,
  ``UPDATE … WHERE status != 'paid'``, in the same transaction as the insert), ``payment_intent.processing``
  marks a pending order processing, ``payment_intent.payment_failed`` marks an unpaid order failed;
  other event types are acknowledged and ignored;
- ``GET /healthz``.

Answers: 200 ``{"received": true, "fulfilment": "created" | "already" | "none", "status"}``; 400
``{"error"}`` for a missing, malformed, wrong or expired signature (as Stripe's libraries do) and for a
body that is not an event; 404 unknown order; 422 an amount unlike the order's. A 4xx changes nothing.

Variants (``--variant``):

``fixed``              verifies the signature and that ``t`` is within 300 s of now (either way); paid once;
                       a failed or processing event after paid changes nothing.
``ignores-timestamp``  verifies the HMAC over ``t.body`` but never looks at ``t``'s age: a captured
                       delivery replays forever.
``unpays``             verifies properly, but mirrors every event's status onto the order: a
                       ``payment_failed`` (or ``processing``) after paid sets it back (the fulfilment made
                       stays), and a later ``succeeded`` pays again and makes a second fulfilment.

    python tests/strangers/stripe_orders.py --port 8140 --db FILE.sqlite --variant fixed \\
        [--secret whsec_… | $STRIPE_WEBHOOK_SECRET] [--tolerance 300]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import threading
import time
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

VARIANTS = ("fixed", "ignores-timestamp", "unpays")
DEFAULT_SECRET = "whsec_stripe_orders_default_secret"
STATUS_OF = {"payment_intent.succeeded": "paid", "payment_intent.processing": "processing",
             "payment_intent.payment_failed": "failed"}

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    id TEXT PRIMARY KEY,
    amount INTEGER NOT NULL,
    currency TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    payment_intent TEXT NOT NULL,
    fulfilment TEXT,
    created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS fulfilments (
    id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL REFERENCES orders(id),
    amount INTEGER NOT NULL,
    currency TEXT NOT NULL,
    payment_intent TEXT NOT NULL,
    event_id TEXT,
    created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS events (id TEXT, type TEXT, order_id TEXT, received INTEGER);
"""


class SignatureError(ValueError):
    pass


def verify_signature(header: str | None, body: bytes, secret: str, tolerance: float | None,
                     now: float | None = None) -> int:
    """The signed ``t`` of a valid ``Stripe-Signature``; SignatureError otherwise (``tolerance`` None: any age)."""
    if not header:
        raise SignatureError("No Stripe-Signature header")
    timestamp, candidates = None, []
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        if name == "t":
            timestamp = value
        elif name == "v1":
            candidates.append(value)
    if timestamp is None or not timestamp.isdigit() or not candidates:
        raise SignatureError("Unable to extract timestamp and signatures from header")
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise SignatureError("No signatures found matching the expected signature for payload")
    t = int(timestamp)
    if tolerance is not None and abs((time.time() if now is None else now) - t) > tolerance:
        raise SignatureError("Timestamp outside the tolerance zone")
    return t


class Store:
    def __init__(self, path: Path):
        self.path = path
        self.local = threading.local()
        self.db.executescript(SCHEMA)

    @property
    def db(self) -> sqlite3.Connection:
        if getattr(self.local, "db", None) is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA busy_timeout=30000")
            self.local.db = db
        return self.local.db

    def create(self, amount: int, currency: str) -> dict:
        order_id = "ord_" + secrets.token_hex(10)
        intent = "pi_" + secrets.token_hex(12)
        self.db.execute("INSERT INTO orders (id, amount, currency, payment_intent, created) VALUES (?, ?, ?, ?, ?)",
                        (order_id, amount, currency, intent, int(time.time())))
        return self.order(order_id)

    def order(self, order_id: str) -> dict | None:
        row = self.db.execute("SELECT * FROM orders WHERE id = ?", (order_id,)).fetchone()
        return None if row is None else {k: row[k] for k in ("id", "amount", "currency", "status", "fulfilment",
                                                             "payment_intent")}

    def fulfilments(self, order_id: str | None) -> list[dict]:
        sql, args = "SELECT * FROM fulfilments", ()
        if order_id:
            sql, args = sql + " WHERE order_id = ?", (order_id,)
        return [dict(row) for row in self.db.execute(sql + " ORDER BY created, id", args)]

    def pay(self, order: dict, intent: str, event_id: str) -> str | None:
        """Mark paid and insert the fulfilment, in one transaction; None when it was paid already."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            fulfilment = "ful_" + secrets.token_hex(10)
            if db.execute("UPDATE orders SET status = 'paid', fulfilment = ? WHERE id = ? AND status != 'paid'",
                          (fulfilment, order["id"])).rowcount != 1:
                db.execute("ROLLBACK")
                return None
            db.execute("INSERT INTO fulfilments (id, order_id, amount, currency, payment_intent, event_id, created) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (fulfilment, order["id"], order["amount"], order["currency"], intent, event_id,
                        int(time.time() * 1000)))
            db.execute("COMMIT")
            return fulfilment
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def set_status(self, order_id: str, status: str, only_from: tuple[str, ...] | None) -> None:
        if only_from is None:  # the naive mirror: whatever Stripe last said
            self.db.execute("UPDATE orders SET status = ? WHERE id = ?", (status, order_id))
        else:
            marks = ",".join("?" * len(only_from))
            self.db.execute(f"UPDATE orders SET status = ? WHERE id = ? AND status IN ({marks})",
                            (status, order_id, *only_from))

    def log_event(self, event_id: str, kind: str, order_id: str) -> None:
        self.db.execute("INSERT INTO events VALUES (?, ?, ?, ?)", (event_id, kind, order_id, int(time.time())))


def refuse(status: int, error: str) -> JSONResponse:
    return JSONResponse({"error": error}, status_code=status)


def build(store: Store, variant: str, secret: str, tolerance: float) -> Starlette:
    def handle_event(event: dict) -> JSONResponse:
        kind = event.get("type")
        intent = (event.get("data") or {}).get("object")
        if not isinstance(kind, str) or not isinstance(intent, dict):
            return refuse(400, "not a Stripe event")
        if kind not in STATUS_OF:
            return JSONResponse({"received": True, "fulfilment": "none", "ignored": kind})
        order_id = (intent.get("metadata") or {}).get("order_id")
        if not isinstance(order_id, str):
            return refuse(400, "data.object.metadata.order_id is missing")
        order = store.order(order_id)
        if order is None:
            return refuse(404, "no such order")
        amount = intent.get("amount")
        if amount != order["amount"] or isinstance(amount, bool):
            return refuse(422, "amount does not match the order")
        store.log_event(str(event.get("id")), kind, order_id)
        status = STATUS_OF[kind]
        if status == "paid":
            fulfilment = store.pay(order, str(intent.get("id")), str(event.get("id")))
            return JSONResponse({"received": True, "fulfilment": "created" if fulfilment else "already",
                                 "status": "paid"})
        if variant == "unpays":
            store.set_status(order_id, status, None)
        else:
            store.set_status(order_id, status, ("pending",) if status == "processing" else ("pending", "processing"))
        return JSONResponse({"received": True, "fulfilment": "none", "status": store.order(order_id)["status"]})

    async def webhook(request: Request) -> JSONResponse:
        body = await request.body()
        try:
            verify_signature(request.headers.get("stripe-signature"), body, secret,
                             None if variant == "ignores-timestamp" else tolerance)
        except SignatureError as exc:
            return refuse(400, f"Webhook signature verification failed: {exc}")
        try:
            event = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return refuse(400, "body is not JSON")
        if not isinstance(event, dict):
            return refuse(400, "not a Stripe event")
        return await run_in_threadpool(handle_event, event)

    async def create_order(request: Request) -> JSONResponse:
        try:
            data = await request.json()
        except ValueError:
            return refuse(400, "body is not JSON")
        amount = data.get("amount") if isinstance(data, dict) else None
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            return refuse(400, "amount must be a positive integer (minor units)")
        currency = str(data.get("currency") or "inr").lower()
        order = await run_in_threadpool(store.create, amount, currency)
        return JSONResponse({"order": order, "client_secret": f"{order['payment_intent']}_secret_"
                                                              f"{secrets.token_hex(8)}"}, status_code=201)

    async def get_order(request: Request) -> JSONResponse:
        order = await run_in_threadpool(store.order, request.path_params["order_id"])
        return JSONResponse({"order": order}) if order else refuse(404, "no such order")

    async def list_fulfilments(request: Request) -> JSONResponse:
        rows = await run_in_threadpool(store.fulfilments, request.query_params.get("order_id"))
        return JSONResponse({"fulfilments": rows})

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    return Starlette(routes=[
        Route("/healthz", health),
        Route("/orders", create_order, methods=["POST"]),
        Route("/orders/{order_id}", get_order),
        Route("/fulfilments", list_fulfilments),
        Route("/stripe/webhook", webhook, methods=["POST"]),
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", type=Path, required=True, help="the SQLite file")
    parser.add_argument("--variant", choices=VARIANTS, required=True)
    parser.add_argument("--secret", default=os.environ.get("STRIPE_WEBHOOK_SECRET", DEFAULT_SECRET))
    parser.add_argument("--tolerance", type=float, default=300.0, help="seconds a signature stays valid")
    args = parser.parse_args()
    args.db.parent.mkdir(parents=True, exist_ok=True)
    app = build(Store(args.db), args.variant, args.secret, args.tolerance)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
