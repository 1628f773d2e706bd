"""A stranger: a receipt service the harness did not write, with the reference service's HTTP contract.

Written only for the tests, as a team's own backend would be: its own store (a dict), its own
PhonePe X-VERIFY check, receipts in its own words ("Order ref ...", "Total paid: Rs. 1,234.56"),
no PDF Subject, file names that do not carry the transaction id, no X-Arrival-Ns, no Server-Timing,
no /metrics. ``--variant vulnerable`` checks the flag and generates (duplicates race through);
``--variant fixed`` claims atomically under a lock and rolls back on failure.

    python tests/strangers/wording_service.py --port 8123 --receipts DIR --variant fixed
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import threading
import uuid
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fpdf import FPDF

SALT_KEY = "099eb0cd-02cf-4e2a-8aca-3e6c6aff0399"  # PhonePe's public UAT salt key
SALT_INDEX = "1"


def rupees(paise: int) -> str:
    """1234567 paise -> '12,345.67' (western grouping, unlike the reference service)."""
    return f"{paise // 100:,}.{paise % 100:02d}"


def render(order: dict) -> bytes:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    for line in ("ACME Expo Services - Payment acknowledgement", f"Order ref {order['merchantTransactionId']}",
                 f"Total paid: Rs. {rupees(order['amount'])}", "Thank you for your business."):
        pdf.cell(0, 8, line, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def build(receipts: Path, variant: str, generation_delay: float) -> FastAPI:
    app = FastAPI()
    orders: dict[str, dict] = {}
    by_transaction: dict[str, str] = {}
    lock = threading.Lock()

    def answer(outcome: str, order: dict, status: int = 200) -> JSONResponse:
        return JSONResponse({"success": True, "receipt": outcome, "receiptPath": order.get("receiptPath")},
                            status_code=status)

    @app.get("/healthz")
    async def health() -> dict:
        return {"ok": True}

    @app.post("/api/public/service-charges")
    async def create(request: Request) -> JSONResponse:
        body = await request.json()
        oid = uuid.uuid4().hex[:12]
        order = {"id": oid, "merchantTransactionId": f"ORD{uuid.uuid4().hex[:16].upper()}",
                 "amount": int(body["amount"]), "paymentStatus": "pending", "receiptGenerated": False,
                 "receiptPath": None}
        orders[oid] = order
        by_transaction[order["merchantTransactionId"]] = oid
        return JSONResponse(order, status_code=201)

    @app.get("/api/public/service-charges/{oid}")
    async def state(oid: str) -> JSONResponse:
        if oid not in orders:
            return JSONResponse({"error": "not found"}, status_code=404)
        return JSONResponse(orders[oid])

    @app.post("/api/public/service-charges/phonepe/callback")
    async def callback(request: Request) -> JSONResponse:
        raw = await request.body()
        try:
            response = json.loads(raw)["response"]
            payload = json.loads(base64.b64decode(response))
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": "bad body"}, status_code=400)
        expected = hashlib.sha256((response + SALT_KEY).encode()).hexdigest() + "###" + SALT_INDEX
        if request.headers.get("x-verify") != expected:
            return JSONResponse({"error": "bad signature"}, status_code=401)
        data = payload.get("data", {})
        oid = by_transaction.get(data.get("merchantTransactionId"))
        if oid is None:
            return JSONResponse({"error": "unknown transaction"}, status_code=404)
        order = orders[oid]
        if data.get("state") != "COMPLETED":
            return answer("not_paid", order)
        order["paymentStatus"] = "paid"
        if variant == "vulnerable":
            if order["receiptGenerated"]:  # check, then act: duplicates that arrive together all pass
                return answer("already_generated", order)
        else:
            with lock:  # the atomic claim: one winner
                if order["receiptGenerated"]:
                    return answer("already_generated", order)
                order["receiptGenerated"] = True
        try:
            await asyncio.sleep(generation_delay)
            path = receipts / f"{uuid.uuid4().hex}.pdf"
            path.write_bytes(render(order))
        except Exception:
            order["receiptGenerated"] = False  # roll the claim back
            return answer("failed", order, 500)
        order["receiptGenerated"], order["receiptPath"] = True, str(path)
        return answer("generated", order)

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--receipts", type=Path, required=True)
    parser.add_argument("--variant", choices=("vulnerable", "fixed"), required=True)
    parser.add_argument("--generation-delay-ms", type=float, default=200.0)
    args = parser.parse_args()
    args.receipts.mkdir(parents=True, exist_ok=True)
    app = build(args.receipts, args.variant, args.generation_delay_ms / 1000)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
