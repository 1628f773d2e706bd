"""A stranger: a PhonePe PG v2 checkout backend, the stdlib way (http.server + SQLite + JSON invoices).

Written only for the tests, as a small team's own checkout service would be, built unlike the other
strangers: no framework, a ``ThreadingHTTPServer``, one SQLite file, and an "invoice" per paid order
written as a JSON document into a directory.

- ``POST /api/orders`` ``{"amount": <paise>}`` -> 201 ``{"id": "ord_…", "merchantOrderId": "CO…",
  "amount", "status": "CREATED"}`` (the merchantOrderId is what the PhonePe checkout is opened with);
- ``GET /api/orders/{id}`` -> 200 ``{"id", "merchantOrderId", "amount", "status": CREATED | PAID |
  FAILED, "phonepeOrderId", "invoiceNumber" (null until invoiced), "invoiceFile", "paidAt"}``, 404
  ``{"error"}``; ``GET /healthz`` -> ``{"ok": true}``;
- ``POST /webhooks/phonepe``: PhonePe PG v2 callbacks, ``Authorization`` header and body ``{"event":
  "checkout.order.completed" | "checkout.order.failed", "payload": {merchantId, merchantOrderId,
  orderId, state, amount, paymentDetails: [...]}}``. A paid order gets ONE invoice (the status change
  to PAID is an atomic claim: ``UPDATE … WHERE status != 'PAID'``), numbered ``INV-000123`` by the
  service, written whole as ``<invoices>/INV-000123.json`` = ``{"invoiceNumber", "merchantOrderId",
  "orderId", "amountPaise", "amountRupees", "issuedAt", "lines"}``; a failed event marks a CREATED
  order FAILED (never a PAID one).

Answers: 200 ``{"ok": true, "invoice": "issued" | "already" | "none", "status": <order status>}``;
asks-gateway also 200 ``{"ok": true, "invoice": "none", "ignored": "<why>", "status"}`` when the
gateway does not confirm what the event says; 401 ``{"ok": false, "error"}`` bad or missing
Authorization; 400 malformed; 404 unknown merchantOrderId; 422 amount differs from the order's; 502
gateway unreachable. A 4xx/5xx never changes anything.

Variants (``--variant``):

``any-auth``      needs an Authorization header but accepts any value; trusts the body (event, amount).
``checks-auth``   Authorization must be sha256("username:password") (constant-time compare); still trusts
                  the body: anyone who has seen one header can mark any order paid.
``asks-gateway``  checks Authorization, then asks PhonePe's order status API (``--gateway-url``: an
                  O-Bearer token from ``/v1/oauth/token``, then ``GET /checkout/v2/order/{id}/status``)
                  and acts only when the gateway agrees: paid when the gateway says COMPLETED and its
                  amount equals the order's; FAILED when the gateway says FAILED. Otherwise 200 ignored.

    python tests/strangers/v2_checkout.py --port 8131 --receipts INVOICES_DIR --db FILE.sqlite \\
        --variant asks-gateway --username U --password P --gateway-url http://127.0.0.1:8100 \\
        [--client-id ID --client-secret S --client-version 1]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import re
import secrets
import sqlite3
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

EVENTS = {"checkout.order.completed": "COMPLETED", "checkout.order.failed": "FAILED"}
VARIANTS = ("any-auth", "checks-auth", "asks-gateway")
MAX_BODY = 64 * 1024

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    id TEXT PRIMARY KEY,
    merchant_order_id TEXT NOT NULL UNIQUE,
    amount INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'CREATED',
    phonepe_order_id TEXT,
    invoice_number TEXT,
    invoice_file TEXT,
    paid_at INTEGER,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counters (name, value) VALUES ('invoice', 0);
"""


class Refused(Exception):
    def __init__(self, status: int, error: str):
        super().__init__(error)
        self.status, self.error = status, error


def authorization_for(username: str, password: str) -> str:
    return hashlib.sha256(f"{username}:{password}".encode()).hexdigest()


def rupees(paise: int) -> str:
    return f"{paise // 100}.{paise % 100:02d}"


class Store:
    """The SQLite file; one connection per thread (sqlite3 connections are not shared across threads)."""

    def __init__(self, path: Path):
        self.path = path
        self.local = threading.local()
        with self.connect() as db:
            db.executescript(SCHEMA)

    def connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)  # autocommit; BEGIN IMMEDIATE by hand
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA busy_timeout=30000")
        return db

    @property
    def db(self) -> sqlite3.Connection:
        if getattr(self.local, "db", None) is None:
            self.local.db = self.connect()
        return self.local.db

    def create(self, amount: int) -> dict:
        order_id = "ord_" + secrets.token_hex(8)
        merchant_order_id = "CO" + secrets.token_hex(8).upper()
        self.db.execute("INSERT INTO orders (id, merchant_order_id, amount, created_at) VALUES (?, ?, ?, ?)",
                        (order_id, merchant_order_id, amount, int(time.time() * 1000)))
        return self.by_id(order_id)

    def by_id(self, order_id: str) -> dict | None:
        row = self.db.execute("SELECT * FROM orders WHERE id = ?", (order_id,)).fetchone()
        return public(row) if row else None

    def by_merchant_order_id(self, merchant_order_id: str) -> dict | None:
        row = self.db.execute("SELECT * FROM orders WHERE merchant_order_id = ?", (merchant_order_id,)).fetchone()
        return public(row) if row else None

    def claim_paid(self, order_id: str, phonepe_order_id: str) -> str | None:
        """Mark the order PAID and take an invoice number, in one transaction; None when it was PAID already."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            changed = db.execute("UPDATE orders SET status = 'PAID', phonepe_order_id = ?, paid_at = ? "
                                 "WHERE id = ? AND status != 'PAID'",
                                 (phonepe_order_id, int(time.time() * 1000), order_id)).rowcount
            if changed != 1:
                db.execute("ROLLBACK")
                return None
            db.execute("UPDATE counters SET value = value + 1 WHERE name = 'invoice'")
            (value,) = db.execute("SELECT value FROM counters WHERE name = 'invoice'").fetchone()
            number = f"INV-{value:06d}"
            db.execute("UPDATE orders SET invoice_number = ? WHERE id = ?", (number, order_id))
            db.execute("COMMIT")
            return number
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def invoiced(self, order_id: str, file_name: str) -> None:
        self.db.execute("UPDATE orders SET invoice_file = ? WHERE id = ?", (file_name, order_id))

    def mark_failed(self, order_id: str) -> bool:
        return self.db.execute("UPDATE orders SET status = 'FAILED' WHERE id = ? AND status = 'CREATED'",
                               (order_id,)).rowcount == 1


def public(row: sqlite3.Row) -> dict:
    return {"id": row["id"], "merchantOrderId": row["merchant_order_id"], "amount": row["amount"],
            "status": row["status"], "phonepeOrderId": row["phonepe_order_id"],
            "invoiceNumber": row["invoice_number"], "invoiceFile": row["invoice_file"], "paidAt": row["paid_at"]}


def write_invoice(invoices: Path, number: str, order: dict, phonepe_order_id: str) -> str:
    """``<invoices>/<number>.json``, written whole (a temporary file renamed into place). Its name."""
    document = {"invoiceNumber": number, "merchantOrderId": order["merchantOrderId"], "orderId": phonepe_order_id,
                "amountPaise": order["amount"], "amountRupees": rupees(order["amount"]), "currency": "INR",
                "issuedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "lines": [{"description": f"Order {order['merchantOrderId']}", "amountPaise": order["amount"]}]}
    name = f"{number}.json"
    temporary = invoices / f".{name}.{secrets.token_hex(4)}.tmp"
    temporary.write_text(json.dumps(document, indent=2))
    os.replace(temporary, invoices / name)
    return name


class Gateway:
    """PhonePe PG v2's order status API, with a cached O-Bearer token."""

    def __init__(self, url: str, client_id: str, client_secret: str, client_version: str):
        self.url = url.rstrip("/")
        self.form = urllib.parse.urlencode({"client_id": client_id, "client_version": client_version,
                                            "client_secret": client_secret,
                                            "grant_type": "client_credentials"}).encode()
        self.lock = threading.Lock()
        self.token: tuple[str, float] | None = None

    def _token(self, fresh: bool = False) -> str:
        with self.lock:
            if fresh or self.token is None or self.token[1] < time.time() + 60:
                request = urllib.request.Request(self.url + "/v1/oauth/token", data=self.form, method="POST",
                                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
                with urllib.request.urlopen(request, timeout=10) as answer:
                    grant = json.load(answer)
                self.token = (grant["access_token"], float(grant["expires_at"]))
            return self.token[0]

    def order_status(self, merchant_order_id: str) -> dict | None:
        """The gateway's order status answer; None when the gateway does not know the order."""
        path = f"/checkout/v2/order/{urllib.parse.quote(merchant_order_id, safe='')}/status"
        for fresh in (False, True):
            request = urllib.request.Request(self.url + path, headers={
                "Authorization": f"O-Bearer {self._token(fresh)}", "Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:
                    return json.load(answer)
            except urllib.error.HTTPError as exc:
                if exc.code == 404:
                    return None
                if exc.code != 401 or fresh:
                    raise
        raise AssertionError("unreachable")


def parse_callback(raw: bytes) -> tuple[str, dict]:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise Refused(400, "body is not JSON") from None
    if not isinstance(body, dict) or body.get("event") not in EVENTS:
        raise Refused(400, "unknown or missing event")
    payload = body.get("payload")
    if not isinstance(payload, dict):
        raise Refused(400, "payload is missing")
    if not isinstance(payload.get("merchantOrderId"), str) or not payload["merchantOrderId"]:
        raise Refused(400, "payload.merchantOrderId is missing")
    amount = payload.get("amount")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise Refused(400, "payload.amount is not a positive integer (paise)")
    return body["event"], payload


class Checkout:
    def __init__(self, store: Store, invoices: Path, variant: str, authorization: str, gateway: Gateway | None):
        self.store, self.invoices, self.variant = store, invoices, variant
        self.authorization, self.gateway = authorization, gateway
        self.webhook_delay = 0.0  # seconds each webhook waits before it is handled (--webhook-delay-ms)

    def check_authorization(self, supplied: str | None) -> None:
        if not supplied:
            raise Refused(401, "missing Authorization")
        if self.variant == "any-auth":  # "PhonePe always sends it": present is enough
            return
        if not hmac.compare_digest(supplied.strip().lower().encode(), self.authorization.encode()):
            raise Refused(401, "bad Authorization")

    def webhook(self, authorization: str | None, raw: bytes) -> dict:
        self.check_authorization(authorization)
        event, payload = parse_callback(raw)
        order = self.store.by_merchant_order_id(payload["merchantOrderId"])
        if order is None:
            raise Refused(404, "unknown merchantOrderId")
        if payload["amount"] != order["amount"]:
            raise Refused(422, "amount does not match the order")
        phonepe_order_id = str(payload.get("orderId") or "")
        if self.variant == "asks-gateway":
            said = self.ask_gateway(order)
            if said is None:
                return {"ok": True, "invoice": "none", "ignored": "the gateway does not know this order",
                        "status": order["status"]}
            if said.get("amount") != order["amount"]:
                raise Refused(422, "the gateway's amount does not match the order")
            if said.get("state") != EVENTS[event]:
                return {"ok": True, "invoice": "none", "status": order["status"],
                        "ignored": f"the gateway says {said.get('state')}, the callback {EVENTS[event]}"}
            phonepe_order_id = str(said.get("orderId") or phonepe_order_id)
        if EVENTS[event] == "FAILED":
            self.store.mark_failed(order["id"])
            return {"ok": True, "invoice": "none", "status": self.store.by_id(order["id"])["status"]}
        number = self.store.claim_paid(order["id"], phonepe_order_id)
        if number is None:
            return {"ok": True, "invoice": "already", "status": "PAID"}
        self.store.invoiced(order["id"], write_invoice(self.invoices, number, order, phonepe_order_id))
        return {"ok": True, "invoice": "issued", "status": "PAID"}

    def ask_gateway(self, order: dict) -> dict | None:
        assert self.gateway is not None
        try:
            return self.gateway.order_status(order["merchantOrderId"])
        except (OSError, ValueError, KeyError) as exc:
            raise Refused(502, f"cannot ask the gateway: {exc.__class__.__name__}") from None


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # a burst of deliveries must not overflow the listen backlog (default 5)


ORDER_PATH = re.compile(r"^/api/orders/([A-Za-z0-9_]+)$")


def handler_for(checkout: Checkout) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "v2-checkout/1.0"

        def log_message(self, format: str, *args: Any) -> None:  # quiet: the tests read answers, not logs
            pass

        def answer(self, status: int, document: dict) -> None:
            data = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self.close_connection = True  # the body is left unread
                raise Refused(413, "body too large")
            return self.rfile.read(length) if length > 0 else b""

        def do_GET(self) -> None:
            path = urllib.parse.urlsplit(self.path).path
            if path == "/healthz":
                return self.answer(200, {"ok": True})
            match = ORDER_PATH.match(path)
            if match:
                order = checkout.store.by_id(match.group(1))
                return self.answer(200, order) if order else self.answer(404, {"error": "no such order"})
            self.answer(404, {"error": "not found"})

        def do_POST(self) -> None:
            path = urllib.parse.urlsplit(self.path).path
            try:
                raw = self.body()
                if path == "/api/orders":
                    self.answer(201, self.create(raw))
                elif path == "/webhooks/phonepe":
                    # A webhook handler behind a slow queue or a cold start: the work waits, so does the answer.
                    time.sleep(checkout.webhook_delay)
                    self.answer(200, checkout.webhook(self.headers.get("Authorization"), raw))
                else:
                    self.answer(404, {"error": "not found"})
            except Refused as exc:
                self.answer(exc.status, {"ok": False, "error": exc.error})
            except (sqlite3.Error, OSError) as exc:
                self.answer(500, {"ok": False, "error": exc.__class__.__name__})

        def create(self, raw: bytes) -> dict:
            try:
                amount = json.loads(raw).get("amount")
            except (ValueError, AttributeError, UnicodeDecodeError):
                raise Refused(400, "body is not a JSON object") from None
            if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
                raise Refused(400, "amount must be a positive integer (paise)")
            return checkout.store.create(amount)

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--receipts", type=Path, required=True, help="where invoices are written")
    parser.add_argument("--db", type=Path, help="the SQLite file (default: <receipts>/../checkout.sqlite)")
    parser.add_argument("--variant", choices=VARIANTS, required=True)
    parser.add_argument("--username", default=os.environ.get("PHONEPE_WEBHOOK_USERNAME", "checkout-webhook"))
    parser.add_argument("--password", default=os.environ.get("PHONEPE_WEBHOOK_PASSWORD", "checkout-webhook-pass"))
    parser.add_argument("--gateway-url", default=os.environ.get("PHONEPE_BASE_URL"))
    parser.add_argument("--client-id", default=os.environ.get("PHONEPE_CLIENT_ID", "RHV2CLIENT"))
    parser.add_argument("--client-secret", default=os.environ.get("PHONEPE_CLIENT_SECRET", "rh-v2-client-secret"))
    parser.add_argument("--client-version", default=os.environ.get("PHONEPE_CLIENT_VERSION", "1"))
    parser.add_argument("--webhook-delay-ms", type=float, default=0.0,
                        help="wait this long before handling each webhook (a slow queue, a cold start)")
    args = parser.parse_args()
    if args.variant == "asks-gateway" and not args.gateway_url:
        parser.error("--variant asks-gateway needs --gateway-url (PhonePe's API base URL)")
    args.receipts.mkdir(parents=True, exist_ok=True)
    db_path = args.db or args.receipts.resolve().parent / "checkout.sqlite"
    db_path.parent.mkdir(parents=True, exist_ok=True)
    gateway = (Gateway(args.gateway_url, args.client_id, args.client_secret, args.client_version)
               if args.variant == "asks-gateway" else None)
    checkout = Checkout(Store(db_path), args.receipts, args.variant,
                        authorization_for(args.username, args.password), gateway)
    checkout.webhook_delay = args.webhook_delay_ms / 1000
    server = Server(("127.0.0.1", args.port), handler_for(checkout))
    server.serve_forever()


if __name__ == "__main__":
    main()
