"""A small PhonePe simulator: the PG v1 status API and a callback signer, for running outside tests.

    python -m reference_service.simulator --port 8100
    curl -X PUT localhost:8100/sim/transactions/MT123 -d '{"amount": 1000, "state": "COMPLETED"}'
    curl -X POST localhost:8100/sim/transactions/MT123/callback -d '{"url": "http://127.0.0.1:8000/api/public/service-charges/phonepe/callback"}'
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import sys
from typing import Literal, Sequence

import httpx
import uvicorn
from fastapi import FastAPI, Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from .config import UAT_MERCHANT_ID, UAT_SALT_INDEX, UAT_SALT_KEY
from .phonepe import checksum

_CODES = {"COMPLETED": "PAYMENT_SUCCESS", "FAILED": "PAYMENT_ERROR", "PENDING": "PAYMENT_PENDING"}


class Transaction(BaseModel):
    amount: int = Field(gt=0)
    state: Literal["COMPLETED", "FAILED", "PENDING"] = "COMPLETED"
    transactionId: str | None = None


class CallbackRequest(BaseModel):
    url: str


def payment_payload(merchant_id: str, merchant_transaction_id: str, txn: Transaction) -> dict:
    return {
        "success": txn.state == "COMPLETED",
        "code": _CODES[txn.state],
        "message": f"Payment {txn.state.lower()}",
        "data": {
            "merchantId": merchant_id,
            "merchantTransactionId": merchant_transaction_id,
            "transactionId": txn.transactionId,
            "amount": txn.amount,
            "state": txn.state,
            "responseCode": "SUCCESS" if txn.state == "COMPLETED" else txn.state,
            "paymentInstrument": {"type": "UPI", "utr": "206378866112"},
        },
    }


def signed_callback(payload: dict, salt_key: str, salt_index: int) -> tuple[bytes, dict[str, str]]:
    """The body and headers PhonePe's server-to-server callback carries."""
    response = base64.b64encode(json.dumps(payload).encode()).decode()
    headers = {"Content-Type": "application/json", "X-VERIFY": checksum(response, salt_key, salt_index)}
    return json.dumps({"response": response}).encode(), headers


def create_simulator(merchant_id: str = UAT_MERCHANT_ID, salt_key: str = UAT_SALT_KEY,
                     salt_index: int = UAT_SALT_INDEX) -> FastAPI:
    app = FastAPI(title="PhonePe simulator")
    transactions: dict[str, Transaction] = {}
    app.state.transactions = transactions

    @app.put("/sim/transactions/{mtid}")
    async def set_transaction(mtid: str, txn: Transaction) -> dict:
        if txn.transactionId is None:
            txn.transactionId = "T" + secrets.token_hex(10).upper()
        transactions[mtid] = txn
        return {"merchantTransactionId": mtid, **txn.model_dump()}

    @app.get("/pg/v1/status/{mid}/{mtid}")
    async def status(mid: str, mtid: str, x_verify: str | None = Header(default=None),
                     x_merchant_id: str | None = Header(default=None)) -> JSONResponse:
        path = f"/pg/v1/status/{mid}/{mtid}"
        if mid != merchant_id or x_merchant_id != merchant_id or x_verify != checksum(path, salt_key, salt_index):
            return JSONResponse({"success": False, "code": "UNAUTHORIZED", "message": "bad checksum"}, 401)
        txn = transactions.get(mtid)
        if txn is None:
            return JSONResponse({"success": False, "code": "TRANSACTION_NOT_FOUND",
                                 "message": "No transaction found"}, 400)
        return JSONResponse(payment_payload(merchant_id, mtid, txn))

    @app.post("/sim/transactions/{mtid}/callback")
    async def send_callback(mtid: str, req: CallbackRequest) -> JSONResponse:
        txn = transactions.get(mtid)
        if txn is None:
            return JSONResponse({"error": "unknown transaction"}, 404)
        body, headers = signed_callback(payment_payload(merchant_id, mtid, txn), salt_key, salt_index)
        async with httpx.AsyncClient(timeout=10.0) as client:
            reply = await client.post(req.url, content=body, headers=headers)
        return JSONResponse({"status": reply.status_code, "body": reply.text})

    return app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reference_service.simulator", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--merchant-id", default=UAT_MERCHANT_ID)
    parser.add_argument("--salt-key", default=UAT_SALT_KEY)
    parser.add_argument("--salt-index", type=int, default=UAT_SALT_INDEX)
    args = parser.parse_args(argv)
    app = create_simulator(args.merchant_id, args.salt_key, args.salt_index)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
