"""A stranger: a donation server whose side effects leave it (an e-mail, a CRM post) as well as land on disk.

Written only for the tests, the way a small NGO's backend is: donations are created at
``POST /api/donations``; Razorpay's webhook ``POST /webhooks/razorpay`` is checked by this file's own
verifier (``X-Razorpay-Signature``: hex HMAC-SHA256 of the raw body); a captured payment gets a PDF
receipt written as ``Receipt_<donor name>.pdf`` (one name per payer: a second write overwrites the
first, in place: an e-mail may carry a copy cut short), which is then e-mailed to the donor over SMTP (``SMTP_HOST``/``SMTP_PORT``) and
posted to the CRM at a hard-coded ``https://crm.example.com/v1/donations`` (through ``HTTPS_PROXY``,
trusting ``REQUESTS_CA_BUNDLE``) after the webhook was answered.

``--variant vulnerable`` checks ``receipt_sent`` and sets it after the work: racing duplicates all pass
the check, so the donor gets several e-mails and the CRM several posts, while the disk shows one
file. ``--variant fixed`` claims the donation under a lock before any work.

    SMTP_HOST=127.0.0.1 SMTP_PORT=2525 HTTPS_PROXY=http://127.0.0.1:8080 REQUESTS_CA_BUNDLE=ca.pem \\
        python tests/strangers/donation_mailer.py --port 8125 --receipts /tmp/receipts --variant fixed --secret s
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import re
import smtplib
import threading
import time
import uuid
from email.message import EmailMessage
from pathlib import Path

import requests
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from fpdf import FPDF

CRM_URL = "https://crm.example.com/v1/donations"  # hard-coded, as integrations often are


def signature_ok(secret: bytes, body: bytes, header: str | None) -> bool:
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return bool(header) and hmac.compare_digest(expected, header.strip().lower())


def receipt_pdf(donation: dict, receipt_no: str) -> bytes:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    rupees = donation["amount"] / 100
    for line in (f"Donation receipt {receipt_no}", f"Donor: {donation['donor']['name']}",
                 f"Order {donation['order_id']}", f"Amount INR {rupees:,.2f}", "Thank you for your support."):
        pdf.cell(0, 10, line, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def build(receipts: Path, variant: str, secret: bytes, work_ms: float) -> FastAPI:
    app = FastAPI()
    donations: dict[str, dict] = {}
    by_order: dict[str, str] = {}
    lock = threading.Lock()

    def write_receipt(donation: dict, receipt_no: str) -> Path:
        """In place (truncate, then write): a copy read in between is cut short."""
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", donation["donor"]["name"])
        path = receipts / f"Receipt_{safe}.pdf"
        path.write_bytes(receipt_pdf(donation, receipt_no))
        return path

    def send(donation: dict, receipt_no: str, path: Path) -> None:
        """After the answer: e-mail the receipt as it is on disk now, and tell the CRM."""
        message = EmailMessage()
        message["From"], message["To"] = "receipts@ngo.example", donation["donor"]["email"]
        message["Subject"] = f"Your donation receipt for {donation['order_id']}"
        message.set_content(f"Dear {donation['donor']['name']}, thank you. Your receipt {receipt_no} is attached.")
        message.add_attachment(path.read_bytes(), maintype="application", subtype="pdf", filename=path.name)
        with smtplib.SMTP(os.environ.get("SMTP_HOST", "127.0.0.1"), int(os.environ.get("SMTP_PORT", "25")),
                          timeout=10) as smtp:
            smtp.send_message(message)
        requests.post(CRM_URL, json={"donation": {"order_id": donation["order_id"], "amount": donation["amount"],
                                                  "donor": donation["donor"]["name"], "receipt": receipt_no}},
                      timeout=10)

    def captured(donation: dict) -> None:
        if variant == "vulnerable":
            if donation["receipt_sent"]:  # check ... (racing duplicates all get past it)
                return
            time.sleep(work_ms / 1000)
        else:
            with lock:
                if donation["receipt_sent"]:
                    return
                donation["receipt_sent"] = True  # the claim, before any work
        receipt_no = f"R-{uuid.uuid4().hex[:8].upper()}"
        donation["status"], donation["receipt_no"] = "paid", receipt_no
        path = write_receipt(donation, receipt_no)
        donation["receipt_sent"] = True  # ... then act
        threading.Thread(target=send, args=(donation, receipt_no, path), daemon=True).start()

    @app.get("/healthz")
    def health() -> dict:
        return {"status": "ok"}

    @app.post("/api/donations")
    async def create(request: Request) -> JSONResponse:
        try:
            body = json.loads(await request.body())
            donor = {"name": str(body["donor"]["name"]), "email": str(body["donor"]["email"])}
            amount = body["amount"]
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": "donor.name, donor.email and amount are required"}, status_code=422)
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            return JSONResponse({"error": "amount is a positive number of paise"}, status_code=422)
        donation = {"id": uuid.uuid4().hex, "order_id": f"order_{uuid.uuid4().hex[:14]}", "donor": donor,
                    "amount": amount, "status": "created", "receipt_sent": False, "receipt_no": None}
        donations[donation["id"]], by_order[donation["order_id"]] = donation, donation["id"]
        return JSONResponse({"id": donation["id"], "order_id": donation["order_id"]}, status_code=201)

    @app.get("/api/donations/{donation_id}")
    def read(donation_id: str) -> JSONResponse:
        donation = donations.get(donation_id)
        if donation is None:
            return JSONResponse({"error": "no such donation"}, status_code=404)
        return JSONResponse({k: v for k, v in donation.items() if k != "donor"})

    @app.post("/webhooks/razorpay")
    async def hook(request: Request) -> JSONResponse:
        body = await request.body()
        if not signature_ok(secret, body, request.headers.get("x-razorpay-signature")):
            return JSONResponse({"error": "invalid signature"}, status_code=400)
        try:
            event = json.loads(body)
            entity = event["payload"]["payment"]["entity"]
            order_id, amount = entity["order_id"], entity["amount"]
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": "not a payment event"}, status_code=400)
        donation = donations.get(by_order.get(order_id, ""))
        if donation is None:
            return JSONResponse({"error": "unknown order"}, status_code=404)
        if amount != donation["amount"]:
            return JSONResponse({"error": "amount does not match"}, status_code=400)
        if event.get("event") == "payment.captured":
            await run_in_threadpool(captured, donation)
        elif event.get("event") == "payment.failed" and donation["status"] == "created":
            donation["status"] = "failed"
        return JSONResponse({"status": "ok"})

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--receipts", type=Path, required=True)
    parser.add_argument("--variant", choices=("vulnerable", "fixed"), required=True)
    parser.add_argument("--secret", required=True, help="the Razorpay webhook secret")
    parser.add_argument("--work-ms", type=float, default=60.0, help="how long the vulnerable check-then-act window is")
    args = parser.parse_args()
    args.receipts.mkdir(parents=True, exist_ok=True)
    app = build(args.receipts, args.variant, args.secret.encode(), args.work_ms)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
