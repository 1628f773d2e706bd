"""A stranger built like a real Razorpay donation server: a donation paid twice over is thanked for twice.

Written only for the tests, the way a small trust's Node/Express/Mongoose backend is built (here
FastAPI + pymongo, the same shape):

- donations are created upstream (the checkout flow) straight into MongoDB, ``donations``:
  ``{_id, orderId, donorName, donorPhone, amount (rupees, a number; a numeric string is read as one,
  as Mongoose casts it), status: "created", receiptSent: false, ...}``;
- ``POST /razorpay/webhook``: ``X-Razorpay-Signature`` = hex HMAC-SHA256 of the raw body under the
  webhook secret (checked here, with this file's own code), ``X-Razorpay-Event-Id`` logged; body
  Razorpay's ``{"event": "payment.captured" | "payment.failed", "payload": {"payment": {"entity":
  {"id", "order_id", "amount" (paise), ...}}}}``. A captured payment marks the donation ``paid`` and then
  (a) posts ``{orderId, amount (rupees), donor: {name, phone}, receiptNo}`` as JSON to the donations API
      (``DONATIONS_API_URL``, else ``$SINK_URL/donations`` when a run's sink points it there),
  (b) renders a PDF receipt ``<receipts>/Donation_Receipt_<donorPhone>.pdf`` (fpdf2; one file per donor,
      so a duplicate OVERWRITES it, as the real server does) printing the order id and the amount in
      rupees, slowly (``--work-ms``, a headless browser's time), and
  (c) uploads that PDF as multipart/form-data (``phone``, ``caption``, file part ``document``,
      application/pdf) to a HARD-CODED ``https://graph.whatsapp-gateway.example/v1/messages`` with httpx
      (``trust_env``: ``HTTPS_PROXY`` routes it through a forward proxy, ``SSL_CERT_FILE`` is the CA it
      trusts; ``NO_PROXY`` keeps loopback calls direct).
  Answers are JSON: ``{"status": "ok", "receipt": "sent" | "already"}``; ``{"status": "error",
  "receipt": "failed"}`` with 500 asks the gateway to deliver again; 401 a bad signature, 404 an
  unknown order.
- ``GET /healthz``.

Variants (``--variant``):

``vulnerable``  the original: read ``receiptSent``, do the slow work (post, render, upload), then set it.
                Duplicates delivered at once all pass the check: the donations API gets several
                records and the donor several WhatsApp messages, while the disk shows one file (each
                duplicate overwrote the same name).
``fixed``       the design document's fix (receipt-race-fix.md): an atomic claim
                ``find_one_and_update({_id, receiptSent: {$ne: true}}, {$set: {receiptSent: true}})``
                before any work; a delivery that finds the flag set answers 200 "already"; a send that
                throws gives the claim back (``receiptSent: false``) and answers 500.

``--wrong-amount`` (either variant): the uploaded PDF is rendered again for WhatsApp with the amount
one rupee too high (the file on disk, the API record and the caption stay right): only a rule that
reads the uploaded attachment can tell.

    python tests/strangers/donation_server.py --port 8150 --receipts DIR --mongo-uri mongodb://... \\
        --database trust --variant fixed [--secret S | $RAZORPAY_WEBHOOK_SECRET] [--work-ms 300] \\
        [--donations-api-url URL] [--wrong-amount]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pymongo
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fpdf import FPDF
from pymongo import ReturnDocument
from starlette.concurrency import run_in_threadpool

VARIANTS = ("vulnerable", "fixed")
WHATSAPP_URL = "https://graph.whatsapp-gateway.example/v1/messages"  # hard-coded, as the real integration is
OUTBOUND_TIMEOUT = 10.0


def rupees(value: Any) -> float | int:
    """The donation's amount as a number of rupees (Mongoose casts a numeric string to its Number field)."""
    number = float(value)
    return int(number) if number.is_integer() else round(number, 2)


def signature_ok(secret: bytes, raw: bytes, header: str | None) -> bool:
    expected = hmac.new(secret, raw, hashlib.sha256).hexdigest()
    return bool(header) and hmac.compare_digest(expected, header.strip().lower())


def receipt_pdf(donation: dict[str, Any], receipt_no: str, amount: float) -> bytes:
    pdf = FPDF()
    pdf.set_title(f"Donation Receipt {receipt_no}")
    pdf.set_subject(str(donation["orderId"]))
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    for line in ("Donation Receipt", f"Receipt No: {receipt_no}", f"Donor: {donation.get('donorName', '')}",
                 f"Phone: {donation.get('donorPhone', '')}", f"Order ID: {donation['orderId']}",
                 f"Amount: Rs. {amount:,.2f}", "Thank you for your generous support."):
        pdf.cell(0, 10, line, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def build_app(args: argparse.Namespace) -> FastAPI:
    app = FastAPI()
    client: pymongo.MongoClient = pymongo.MongoClient(args.mongo_uri, serverSelectionTimeoutMS=5000)
    donations = client[args.database]["donations"]
    receipts = Path(args.receipts)
    receipts.mkdir(parents=True, exist_ok=True)
    # One client for every outbound call, as a Node server has one axios: it honours HTTP(S)_PROXY, NO_PROXY
    # and SSL_CERT_FILE from the environment (trust_env), which is how the WhatsApp call meets a proxy.
    http = httpx.Client(timeout=OUTBOUND_TIMEOUT, trust_env=True)
    secret = args.secret.encode()

    def post_record(donation: dict[str, Any], receipt_no: str) -> None:
        if not args.donations_api_url:
            return
        answer = http.post(args.donations_api_url, json={
            "orderId": donation["orderId"], "amount": rupees(donation["amount"]),
            "donor": {"name": donation.get("donorName"), "phone": donation.get("donorPhone")},
            "receiptNo": receipt_no})
        answer.raise_for_status()

    def write_receipt(donation: dict[str, Any], receipt_no: str) -> Path:
        """The PDF on disk: one name per donor (a second write overwrites the first), slowly."""
        print(f"[RECEIPT] generating receipt for {donation['orderId']}", flush=True)
        for _ in range(10):  # a headless browser's steps: work done, not a deadline waited for
            time.sleep(args.work_ms / 10000)
        safe = re.sub(r"[^0-9A-Za-z+_-]+", "_", str(donation.get("donorPhone") or "unknown"))
        path = receipts / f"Donation_Receipt_{safe}.pdf"
        path.write_bytes(receipt_pdf(donation, receipt_no, rupees(donation["amount"])))
        return path

    def upload(donation: dict[str, Any], receipt_no: str, path: Path) -> None:
        amount = rupees(donation["amount"])
        document = path.read_bytes()
        if args.wrong_amount:  # the WhatsApp template renders its own copy, from the wrong amount
            document = receipt_pdf(donation, receipt_no, amount + 1)
        caption = (f"Thank you {donation.get('donorName', '')}! Your donation receipt for order "
                   f"{donation['orderId']} (Rs. {amount:,.2f})")
        answer = http.post(WHATSAPP_URL, data={"phone": str(donation.get("donorPhone", "")), "caption": caption},
                           files={"document": (path.name, document, "application/pdf")})
        answer.raise_for_status()

    def send_receipt(donation: dict[str, Any]) -> None:
        receipt_no = f"DN-{int(time.time() * 1000)}"
        post_record(donation, receipt_no)
        path = write_receipt(donation, receipt_no)
        upload(donation, receipt_no, path)
        print(f"[RECEIPT] sent {path.name} for {donation['orderId']}", flush=True)

    def captured(donation_id: Any) -> Any:
        if args.variant == "vulnerable":
            donation = donations.find_one({"_id": donation_id})
            if donation.get("receiptSent"):
                return {"status": "ok", "receipt": "already"}
            try:
                send_receipt(donation)
            except Exception as exc:  # noqa: BLE001 - any throw is a failed send, answered 500
                print(f"[WEBHOOK] receipt failed: {exc.__class__.__name__}: {exc}", flush=True)
                return JSONResponse({"status": "error", "receipt": "failed"}, status_code=500)
            donations.update_one({"_id": donation_id}, {"$set": {"receiptSent": True}})
            return {"status": "ok", "receipt": "sent"}
        donation = donations.find_one_and_update({"_id": donation_id, "receiptSent": {"$ne": True}},
                                                 {"$set": {"receiptSent": True}},
                                                 return_document=ReturnDocument.AFTER)
        if donation is None:
            print("[WEBHOOK] Another webhook already sending the receipt - skipping", flush=True)
            return {"status": "ok", "receipt": "already"}
        print("[WEBHOOK] This webhook won the race - sending the receipt", flush=True)
        try:
            send_receipt(donation)
        except Exception as exc:  # noqa: BLE001 - the design's rollback: another delivery may try again
            print(f"[WEBHOOK] receipt failed, flag reset: {exc.__class__.__name__}: {exc}", flush=True)
            donations.update_one({"_id": donation_id}, {"$set": {"receiptSent": False}})
            return JSONResponse({"status": "error", "receipt": "failed"}, status_code=500)
        return {"status": "ok", "receipt": "sent"}

    def handle(event: dict[str, Any]) -> Any:
        payment = ((event.get("payload") or {}).get("payment") or {}).get("entity") or {}
        order = payment.get("order_id")
        donation = donations.find_one({"orderId": order}, {"_id": 1})
        if donation is None:
            return JSONResponse({"status": "error", "error": "unknown order"}, status_code=404)
        if event.get("event") == "payment.failed":
            donations.update_one({"_id": donation["_id"], "status": "created"}, {"$set": {"status": "failed"}})
            return {"status": "ok", "receipt": "none"}
        if event.get("event") != "payment.captured":
            return {"status": "ok", "receipt": "ignored"}
        donations.update_one({"_id": donation["_id"]},
                             {"$set": {"status": "paid", "razorpayPaymentId": payment.get("id"),
                                       "paidAt": time.time()}})
        return captured(donation["_id"])

    @app.get("/healthz")
    def healthz() -> dict[str, bool]:
        return {"ok": True}

    @app.post("/razorpay/webhook")
    async def webhook(request: Request) -> Any:
        raw = await request.body()
        if not signature_ok(secret, raw, request.headers.get("x-razorpay-signature")):
            return JSONResponse({"status": "error", "error": "invalid signature"}, status_code=401)
        try:
            event = json.loads(raw)
        except ValueError:
            return JSONResponse({"status": "error", "error": "not JSON"}, status_code=400)
        print(f"[WEBHOOK] {event.get('event')} event {request.headers.get('x-razorpay-event-id', '-')}", flush=True)
        return await run_in_threadpool(handle, event)

    return app


def main() -> None:
    env = os.environ.get
    sink = env("SINK_URL")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(env("PORT", "8150")))
    parser.add_argument("--receipts", default=env("RECEIPTS_DIR", "receipts"))
    parser.add_argument("--mongo-uri", default=env("MONGO_URI"))
    parser.add_argument("--database", default=env("MONGO_DB", "donations"))
    parser.add_argument("--variant", choices=VARIANTS, default=env("VARIANT", "vulnerable"))
    parser.add_argument("--secret", default=env("RAZORPAY_WEBHOOK_SECRET"),
                        help="the webhook secret (default: $RAZORPAY_WEBHOOK_SECRET, so that it is in no process list)")
    parser.add_argument("--work-ms", type=float, default=float(env("RECEIPT_WORK_MS", "300")),
                        help="how long rendering a receipt takes (default: $RECEIPT_WORK_MS, else 300)")
    parser.add_argument("--donations-api-url", default=env("DONATIONS_API_URL") or (sink and f"{sink}/donations"),
                        help="the donations API (default: $DONATIONS_API_URL, else $SINK_URL/donations; none if unset)")
    parser.add_argument("--wrong-amount", action="store_true",
                        default=env("WRONG_AMOUNT", "").lower() in ("1", "true", "yes"),
                        help="the uploaded PDF says one rupee more (default: $WRONG_AMOUNT)")
    args = parser.parse_args()
    if not args.secret:
        parser.error("the webhook secret: --secret or $RAZORPAY_WEBHOOK_SECRET")
    if not args.mongo_uri:
        parser.error("the database: --mongo-uri or $MONGO_URI")
    print(f"donation_server ({args.variant}{', wrong amount' if args.wrong_amount else ''}) on 127.0.0.1:{args.port}, "
          f"donations API {args.donations_api_url or 'none'}", flush=True)
    uvicorn.run(build_app(args), host="127.0.0.1", port=args.port, log_level="warning", workers=1)


if __name__ == "__main__":
    main()
