"""A stranger: a donations backend the harness did not write, signed the Standard Webhooks way.

Written only for the tests, as a team's own backend would be, with a contract unlike the reference
service's: donations are created at ``POST /v1/donations`` (nested JSON, uuid string ids, an
``orderRef`` the gateway knows), the gateway's webhook ``POST /v1/hooks/payments`` carries
``webhook-id`` / ``webhook-timestamp`` / ``webhook-signature`` checked by this file's own code, and
the answer is ``202 Accepted`` at once: the work happens in a background thread 40-120 ms later.
Its side effect is a row in MongoDB (collection ``receipts``), not a file.

``--variant vulnerable`` reads the donation, and if no receipt was issued yet, works, inserts the
receipt row and sets the flag: duplicates that race all pass the check. ``--variant fixed`` claims
the donation atomically (``find_one_and_update`` on ``receiptIssued != true``), only the winner
inserts the row, and a failure rolls the claim back.

``GET /internal/work`` counts background jobs accepted and finished, so a test can wait until the
work has settled instead of sleeping (the harness's profile does not use it).

    python tests/strangers/donations_service.py --port 8124 --mongo-uri mongodb://127.0.0.1:27017/ \\
        --database donations --variant fixed --secret whsec_...
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import json
import random
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any

import uvicorn
from bson import ObjectId
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pymongo import MongoClient
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

TOLERANCE_S = 5 * 60
DONOR_FIELDS = ("name", "email", "phone")
EVENT_TYPES = ("payment.succeeded", "payment.failed")


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret."""
    encoded = secret.removeprefix("whsec_")
    return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)


def signature_ok(key: bytes, headers: Any, body: bytes, now: float) -> bool:
    """The Standard Webhooks check: a fresh timestamp and one ``v1,<base64 HMAC-SHA256>`` that matches."""
    msg_id, stamp, signatures = (headers.get(h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature"))
    if not (msg_id and stamp and signatures):
        return False
    try:
        sent_at = int(stamp)
    except ValueError:
        return False
    if abs(now - sent_at) > TOLERANCE_S:
        return False
    expected = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    for versioned in signatures.split(" "):
        version, _, signature = versioned.partition(",")
        if version != "v1":
            continue
        try:
            candidate = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            continue
        if hmac.compare_digest(expected, candidate):
            return True
    return False


def missing_field(body: Any) -> str | None:
    """The first required field of a create request that is absent or of the wrong kind, as a dotted path."""
    if not isinstance(body, dict):
        return "body"
    donor = body.get("donor")
    if not isinstance(donor, dict):
        return "donor"
    for name in DONOR_FIELDS:
        if not isinstance(donor.get(name), str) or not donor[name]:
            return f"donor.{name}"
    if not isinstance(body.get("campaign"), str) or not body["campaign"]:
        return "campaign"
    amount = body.get("amount")
    if not isinstance(amount, dict):
        return "amount"
    value = amount.get("value")
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return "amount.value"
    if amount.get("currency") != "INR":
        return "amount.currency"
    return None


def build(db: Any, variant: str, key: bytes, delay_ms: tuple[float, float], work_ms: float) -> FastAPI:
    app = FastAPI()
    donations, receipts = db["donations"], db["receipts"]
    counts = {"accepted": 0, "finished": 0, "failed": 0}
    counts_lock = threading.Lock()

    def count(name: str) -> None:
        with counts_lock:
            counts[name] += 1

    def issue_receipt(donation: dict) -> None:
        """Do the work, insert the receipt row, and mark the donation."""
        time.sleep(work_ms / 1000)
        receipt_no = f"RCPT-{uuid.uuid4().hex[:10].upper()}"
        receipts.insert_one({"_id": ObjectId(), "donationRef": donation["orderRef"],
                             "amountPaise": donation["amount"]["value"],
                             "issuedAt": datetime.now(timezone.utc), "receiptNo": receipt_no})
        donations.update_one({"_id": donation["_id"]},
                             {"$set": {"status": "succeeded", "receiptIssued": True, "receiptNo": receipt_no}})

    def succeeded(donation_id: str) -> None:
        if variant == "vulnerable":
            donation = donations.find_one({"_id": donation_id})
            if donation.get("receiptIssued") is True:  # check, then act: racing duplicates all pass
                return
            issue_receipt(donation)
            return
        donation = donations.find_one_and_update({"_id": donation_id, "receiptIssued": {"$ne": True}},
                                                 {"$set": {"receiptIssued": True}})
        if donation is None:  # another delivery won the claim
            return
        try:
            issue_receipt(donation)
        except Exception:
            donations.update_one({"_id": donation_id}, {"$set": {"receiptIssued": False}})  # roll the claim back
            raise

    def work(event_type: str, donation_id: str) -> None:
        time.sleep(random.uniform(*delay_ms) / 1000)
        try:
            if event_type == "payment.succeeded":
                succeeded(donation_id)
            else:
                donations.update_one({"_id": donation_id, "status": "pending"}, {"$set": {"status": "failed"}})
        except Exception:
            count("failed")
            raise
        finally:
            count("finished")

    def start_work(event_type: str, donation_id: str) -> None:
        """Run after the answer is sent: hand the job to a thread of its own and free the connection."""
        threading.Thread(target=work, args=(event_type, donation_id), daemon=True).start()

    def error(message: str, status: int) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    @app.get("/healthz")
    def health() -> dict:
        return {"status": "ok"}

    @app.get("/internal/work")
    def work_counts() -> dict:
        with counts_lock:
            return dict(counts)

    @app.post("/v1/donations")
    async def create(request: Request) -> JSONResponse:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return error("the body is not JSON", 400)
        missing = missing_field(body)
        if missing:
            return error(f"{missing} is required", 422)
        donation = {"_id": str(uuid.uuid4()), "orderRef": f"don_{uuid.uuid4().hex}",
                    "donor": {name: body["donor"][name] for name in DONOR_FIELDS}, "campaign": body["campaign"],
                    "amount": {"value": body["amount"]["value"], "currency": "INR"}, "status": "pending",
                    "receiptIssued": False, "createdAt": datetime.now(timezone.utc)}
        await run_in_threadpool(donations.insert_one, donation)
        return JSONResponse({"data": {"id": donation["_id"], "orderRef": donation["orderRef"],
                                      "status": donation["status"]}}, status_code=201)

    @app.get("/v1/donations/{donation_id}")
    def read(donation_id: str) -> JSONResponse:
        donation = donations.find_one({"_id": donation_id})
        if donation is None:
            return error("no such donation", 404)
        donation["id"] = donation.pop("_id")
        donation["createdAt"] = donation["createdAt"].isoformat()
        return JSONResponse({"data": donation})

    @app.post("/v1/hooks/payments")
    async def payment_hook(request: Request) -> JSONResponse:
        body = await request.body()
        if not signature_ok(key, request.headers, body, time.time()):
            return error("invalid webhook signature", 401)
        try:
            event = json.loads(body)
            event_type, data = event["type"], event["data"]
            order_ref, amount = data["orderRef"], data["amount"]
        except (ValueError, KeyError, TypeError):
            return error("not a payment event", 400)
        if event_type not in EVENT_TYPES:
            return error(f"unknown event type {event_type!r}", 400)
        donation = await run_in_threadpool(donations.find_one, {"orderRef": order_ref}, {"amount": 1})
        if donation is None:
            return error("unknown orderRef", 404)
        if amount != donation["amount"]["value"]:
            return error("amount does not match the donation", 422)
        count("accepted")
        return JSONResponse({"accepted": True}, status_code=202,
                            background=BackgroundTask(start_work, event_type, donation["_id"]))

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mongo-uri", required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--variant", choices=("vulnerable", "fixed"), required=True)
    parser.add_argument("--secret", required=True, help="whsec_<base64 key>")
    parser.add_argument("--delay-ms", type=float, nargs=2, default=(40.0, 120.0), metavar=("MIN", "MAX"),
                        help="how long after answering the background work starts (uniformly random)")
    parser.add_argument("--work-ms", type=float, default=50.0, help="how long issuing a receipt takes")
    args = parser.parse_args()
    try:
        key = secret_key(args.secret)
    except (binascii.Error, ValueError):
        parser.error("--secret is not whsec_<base64>")
    client: MongoClient = MongoClient(args.mongo_uri, serverSelectionTimeoutMS=10_000)
    app = build(client[args.database], args.variant, key, tuple(args.delay_ms), args.work_ms)
    try:
        uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
    finally:
        client.close()


if __name__ == "__main__":
    main()
