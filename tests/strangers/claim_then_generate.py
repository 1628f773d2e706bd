"""A stranger built like the design document's fix, to be killed mid-generation: a claim flag set before a slow receipt.

Written only for the tests, as a team's own Razorpay backend would be:

- ``POST /api/charges`` ``{"amount": paise}`` -> ``201 {"id", "orderId"}``: a charge, CREATED, in MongoDB
  (``charges``: ``{_id, orderId, amountPaise, status, receiptGenerated, receiptPath}``);
- ``POST /webhooks/razorpay``: ``X-Razorpay-Signature`` = hex HMAC-SHA256 of the raw body under the
  webhook secret (checked here, with this file's own code), body ``{"event": "payment.captured" |
  "payment.failed", "payload": {"order_id", "amount"}}``. A captured payment marks the charge PAID and
  makes its receipt; 2xx means "done, do not send again", anything else asks the gateway to retry;
- the receipt is a PDF (``receipt-<orderId>-<unix ms>.pdf``, Subject the order id, the amount on its
  page), rendered slowly — ``--generation-ms`` (1000), as a headless browser would — in a worker
  thread, written to a temporary file and renamed into place (temporary files a killed process left
  are removed when it starts again); ``Generating receipt for <orderId>`` is printed when it starts;
- after its receipt, a charge is announced to the CRM: ``POST $NOTIFY_URL`` ``{"orderId", "receipt"}``
  (``--notify-url``, else ``$SINK_URL/crm/receipts`` when a run's sink points it there; none when unset);
- ``GET /api/charges/{id}`` -> the charge, ``GET /healthz``.

Variants (``--variant``):

``claim``  the design document's fix: ``find_one_and_update({_id, receiptGenerated: {$ne: true}},
           {$set: {receiptGenerated: true}})``, then generate, then save the path; a generation that
           throws gives the claim back. A delivery that finds the flag set answers 200 "already".
           Duplicates are safe — but a process killed between the claim and the saved path leaves the
           flag set and no receipt, and every redelivery is answered 200 "already": the receipt is lost.
           A CRM notice that fails is an error like any other: the claim is rolled back, and the
           redelivery makes a second receipt.
``lease``  its twin that survives a crash: the claim is a lease (``leaseUntil``, ``leaseToken``; a
           claim finds no live lease), the receipt is renamed into place only if the completion still
           holds the lease (fencing: ``update_one({_id, leaseToken})``), and a delivery that meets a
           live lease answers 409 (retry later) instead of 200. A killed owner's lease runs out and
           the gateway's next redelivery makes the receipt. The CRM notice is an outbox step: a
           delivery is acknowledged only once it was sent (``notified``); a failed one is answered
           503, and the redelivery sends it without making the receipt again.
``lease-unfenced``  the lease without the fencing: the completion saves the path whoever holds the lease
           now. An owner paused past its lease (a GC pause, a frozen VM) wakes up and completes after
           another delivery took the lease over: two receipts.
``check-then-act``  the vulnerable original: read the flag, generate, then set it; duplicates that
           race all pass the check and make a receipt each.

    python tests/strangers/claim_then_generate.py --port 8140 --receipts DIR --mongo-uri mongodb://... \\
        --database shop --variant claim [--secret S] [--generation-ms 1000] [--lease-seconds 2]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pymongo
import uvicorn
from bson import ObjectId
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fpdf import FPDF
from pymongo import ReturnDocument
from starlette.concurrency import run_in_threadpool

VARIANTS = ("claim", "lease", "lease-unfenced", "check-then-act")
# The CRM call gives up after NOTIFY_TIMEOUT; the notice's lease outlives that call by the receipt's lease, so a
# live sender is never overtaken, and a killed sender's notice is free again well inside a gateway's retries
# (PhonePe's last retry comes ~6 s after the first delivery; a 10 s lease outlived all of them).
NOTIFY_TIMEOUT = 1.0


def build_app(args: argparse.Namespace) -> FastAPI:
    app = FastAPI()
    client: pymongo.MongoClient = pymongo.MongoClient(args.mongo_uri, serverSelectionTimeoutMS=5000)
    charges = client[args.database]["charges"]
    receipts = Path(args.receipts)
    receipts.mkdir(parents=True, exist_ok=True)
    notice_lease = NOTIFY_TIMEOUT + args.lease_seconds

    def recover() -> None:
        """At start: a receipt a killed process completed (its name saved) but never renamed into place is
        renamed now; one it never completed is removed (its claim or lease gives the payment back)."""
        for stale in receipts.glob(".receipt-*.pdf.tmp"):
            final = stale.name[1:].removesuffix(".tmp")
            if charges.find_one({"receiptPath": final}, {"_id": 1}) is not None:
                os.rename(stale, receipts / final)
            else:
                stale.unlink(missing_ok=True)

    recover()

    def render(charge: dict[str, Any], temporary: Path) -> Path:
        """The receipt in a temporary file (the browser's slow part), not yet in place."""
        print(f"Generating receipt for {charge['orderId']}", flush=True)
        for _ in range(20):  # a browser's steps (load, lay out, print): work done, not a deadline waited for
            time.sleep(args.generation_ms / 20000)
        pdf = FPDF()
        pdf.set_subject(charge["orderId"])
        pdf.set_title(f"Receipt {charge['orderId']}")
        pdf.add_page()
        pdf.set_font("Helvetica", size=12)
        pdf.cell(0, 10, f"Order: {charge['orderId']}")
        pdf.ln()
        pdf.cell(0, 10, f"Amount: {charge['amountPaise']} paise")
        pdf.output(str(temporary))
        return temporary

    def place(temporary: Path, charge: dict[str, Any]) -> str:
        final = receipts / f"receipt-{charge['orderId']}-{int(time.time() * 1000)}.pdf"
        os.rename(temporary, final)
        return final.name

    def notify(charge: dict[str, Any], name: str) -> None:
        """The CRM notice (raises when the CRM does not take it: a 5xx, a reset, or no answer in NOTIFY_TIMEOUT)."""
        if not args.notify_url:
            return
        body = json.dumps({"orderId": charge["orderId"], "receipt": name}).encode()
        request = urllib.request.Request(args.notify_url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=NOTIFY_TIMEOUT) as answer:  # HTTPError (an exception) on 4xx/5xx
            answer.read()

    def notified(charge_id: ObjectId) -> Any:
        """lease: the outbox step — the notice is claimed like the receipt (a lease of its own), sent, and
        only then marked sent; until it is, deliveries are answered 503 (or 409 while another sends it)."""
        if not args.notify_url:
            return {"receipt": "already"}
        token, now = uuid.uuid4().hex, time.time()
        charge = charges.find_one_and_update(
            {"_id": charge_id, "notified": {"$ne": True},
             "$or": [{"noticeUntil": None}, {"noticeUntil": {"$lt": now}}]},
            {"$set": {"noticeUntil": now + notice_lease, "noticeToken": token}}, return_document=ReturnDocument.AFTER)
        if charge is None:
            done = charges.find_one({"_id": charge_id}, {"notified": 1})
            if done and done.get("notified"):
                return {"receipt": "already"}
            return JSONResponse({"receipt": "pending", "notice": "in progress"}, status_code=409)
        try:
            notify(charge, charge["receiptPath"])
        except Exception:
            charges.update_one({"_id": charge_id, "noticeToken": token}, {"$unset": {"noticeUntil": "", "noticeToken": ""}})
            return JSONResponse({"receipt": "pending", "notice": "failed"}, status_code=503)
        charges.update_one({"_id": charge_id}, {"$set": {"notified": True}, "$unset": {"noticeUntil": "", "noticeToken": ""}})
        return {"receipt": "already", "notice": "sent"}

    def generate_claimed(charge: dict[str, Any]) -> str:
        """claim / check-then-act: render, put in place, save the path (rollback on error is the caller's)."""
        name = place(render(charge, receipts / f".receipt-{charge['orderId']}-{uuid.uuid4().hex[:8]}.pdf.tmp"), charge)
        charges.update_one({"_id": charge["_id"]}, {"$set": {"receiptGenerated": True, "receiptPath": name}})
        notify(charge, name)
        return name

    def generate_leased(charge: dict[str, Any], token: str) -> str | None:
        """lease: render, then complete only while the lease is still ours (fencing), then put in place."""
        name = f"receipt-{charge['orderId']}-{token[:12]}.pdf"
        temporary = render(charge, receipts / f".{name}.tmp")  # its final name saved first: see recover()
        fence = {"leaseToken": token} if args.variant == "lease" else {}
        try:
            done = charges.update_one({"_id": charge["_id"], **fence},
                                      {"$set": {"receiptGenerated": True, "receiptPath": name},
                                       "$unset": {"leaseUntil": "", "leaseToken": ""}})
        except Exception:  # the database is out of reach: nothing was completed, so nothing may appear
            temporary.unlink(missing_ok=True)
            raise
        if done.modified_count != 1:  # the lease ran out and another delivery took it: ours is void
            temporary.unlink(missing_ok=True)
            return None
        os.rename(temporary, receipts / name)
        return name

    @app.get("/healthz")
    def healthz() -> dict[str, bool]:
        return {"ok": True}

    @app.post("/api/charges", status_code=201)
    def create(body: dict[str, Any]) -> dict[str, str]:
        order = f"order_{uuid.uuid4().hex[:14]}"
        inserted = charges.insert_one({"orderId": order, "amountPaise": int(body["amount"]), "status": "CREATED",
                                       "receiptGenerated": False, "receiptPath": None})
        return {"id": str(inserted.inserted_id), "orderId": order}

    @app.get("/api/charges/{charge_id}")
    def read(charge_id: str) -> Any:
        doc = charges.find_one({"_id": ObjectId(charge_id)})
        if doc is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        return {**{k: v for k, v in doc.items() if k != "_id"}, "id": str(doc["_id"])}

    @app.post("/webhooks/razorpay")
    async def webhook(request: Request) -> Any:
        raw = await request.body()
        expected = hmac.new(args.secret.encode(), raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(request.headers.get("x-razorpay-signature", ""), expected):
            return JSONResponse({"error": "bad signature"}, status_code=401)
        event = json.loads(raw)
        order = event.get("payload", {}).get("order_id")
        charge = charges.find_one({"orderId": order})
        if charge is None:
            return JSONResponse({"error": "unknown order"}, status_code=404)
        if event.get("event") == "payment.failed":
            charges.update_one({"_id": charge["_id"], "status": "CREATED"}, {"$set": {"status": "FAILED"}})
            return {"status": "failed"}
        if event.get("event") != "payment.captured":
            return JSONResponse({"error": "unknown event"}, status_code=400)
        charges.update_one({"_id": charge["_id"]}, {"$set": {"status": "PAID"}})
        return await run_in_threadpool(receipt, charge["_id"])

    def receipt(charge_id: ObjectId) -> Any:
        if args.variant == "check-then-act":
            charge = charges.find_one({"_id": charge_id})
            if charge.get("receiptGenerated"):
                return {"receipt": "already"}
            try:
                return {"receipt": "generated", "file": generate_claimed(charge)}
            except Exception:
                return JSONResponse({"receipt": "failed"}, status_code=500)
        if args.variant == "claim":
            charge = charges.find_one_and_update({"_id": charge_id, "receiptGenerated": {"$ne": True}},
                                                 {"$set": {"receiptGenerated": True}},
                                                 return_document=ReturnDocument.AFTER)
            if charge is None:
                return {"receipt": "already"}
            try:
                return {"receipt": "generated", "file": generate_claimed(charge)}
            except Exception:  # the design's rollback: a generation that throws gives the claim back
                charges.update_one({"_id": charge_id}, {"$set": {"receiptGenerated": False}})
                return JSONResponse({"receipt": "failed"}, status_code=500)
        token, now = uuid.uuid4().hex, time.time()
        charge = charges.find_one_and_update(
            {"_id": charge_id, "receiptGenerated": {"$ne": True},
             "$or": [{"leaseUntil": None}, {"leaseUntil": {"$lt": now}}]},
            {"$set": {"leaseUntil": now + args.lease_seconds, "leaseToken": token}},
            return_document=ReturnDocument.AFTER)
        if charge is None:
            done = charges.find_one({"_id": charge_id}, {"receiptGenerated": 1})
            if done and done.get("receiptGenerated"):
                return notified(charge_id)
            return JSONResponse({"receipt": "in progress"}, status_code=409)  # the gateway retries later
        try:
            name = generate_leased(charge, token)
        except Exception:
            try:  # give the lease back; if the database is out of reach, it runs out by itself
                charges.update_one({"_id": charge_id, "leaseToken": token},
                                   {"$unset": {"leaseUntil": "", "leaseToken": ""}})
            except Exception:
                pass
            return JSONResponse({"receipt": "failed"}, status_code=500)
        if name is None:
            return JSONResponse({"receipt": "superseded"}, status_code=409)
        sent = notified(charge_id)
        if isinstance(sent, JSONResponse):
            return sent
        return {"receipt": "generated", "file": name}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--receipts", required=True)
    parser.add_argument("--mongo-uri", required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--variant", choices=VARIANTS, required=True)
    parser.add_argument("--secret", default=os.environ.get("WEBHOOK_SECRET"),
                        help="the webhook secret (default: $WEBHOOK_SECRET, so that it is in no process list)")
    parser.add_argument("--generation-ms", type=float, default=1000.0)
    sink = os.environ.get("SINK_URL")
    parser.add_argument("--notify-url", default=os.environ.get("NOTIFY_URL") or (sink and f"{sink}/crm/receipts"),
                        help="the CRM's receipt notices (default: $NOTIFY_URL, else $SINK_URL/crm/receipts; none "
                             "when unset)")
    parser.add_argument("--lease-seconds", type=float, default=float(os.environ.get("LEASE_SECONDS", "2")))
    args = parser.parse_args()
    if not args.secret:
        parser.error("the webhook secret: --secret or $WEBHOOK_SECRET")
    print(f"claim_then_generate ({args.variant}) on 127.0.0.1:{args.port}", flush=True)
    uvicorn.run(build_app(args), host="127.0.0.1", port=args.port, log_level="warning", workers=1)


if __name__ == "__main__":
    main()
