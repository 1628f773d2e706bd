"""A small PhonePe simulator: the PG v1 status API, the PG v2 order status API (with its O-Bearer
token endpoint) and a callback signer, for running outside tests.

    python -m reference_service.simulator --port 8100
    curl -X PUT localhost:8100/sim/transactions/MT123 -d '{"amount": 1000, "state": "COMPLETED"}'
    curl -X POST localhost:8100/sim/transactions/MT123/callback -d '{"url": "http://127.0.0.1:8000/api/public/service-charges/phonepe/callback"}'

PG v2 (a merchantOrderId is the same key as a v1 merchantTransactionId):

    curl -X POST localhost:8100/v1/oauth/token -d client_id=RHV2CLIENT -d client_version=1 \
         -d client_secret=rh-v2-client-secret -d grant_type=client_credentials
    curl localhost:8100/checkout/v2/order/MT123/status -H 'Authorization: O-Bearer <access_token>'

How often a service asked (v1 and v2 status calls that passed authentication, counted per merchant
transaction / order id, known or not): ``GET /sim/transactions/MT123`` -> ``{"merchantTransactionId",
"amount", "state", "transactionId", "queries"}`` (404 for an id never PUT, with the count so far).
A PUT does not reset the count.
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import Literal
from urllib.parse import parse_qs

import httpx
import uvicorn
from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from .config import UAT_MERCHANT_ID, UAT_SALT_INDEX, UAT_SALT_KEY
from .phonepe import checksum

DEFAULT_CLIENT_ID = "RHV2CLIENT"
DEFAULT_CLIENT_SECRET = "rh-v2-client-secret"
DEFAULT_CLIENT_VERSION = "1"
TOKEN_SECONDS = 3600

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


def order_status_payload(merchant_order_id: str, txn: Transaction) -> dict:
    """PhonePe PG v2's order status answer for one order (one payment attempt)."""
    attempt_id = txn.transactionId or "T"
    detail = {"paymentMode": "UPI_QR", "transactionId": "OM" + attempt_id[1:], "timestamp": int(time.time() * 1000),
              "amount": txn.amount, "state": txn.state}
    if txn.state == "FAILED":
        detail.update({"errorCode": "TXN_FAILED", "detailedErrorCode": "ZM"})
    return {"orderId": "OMO" + attempt_id[1:], "state": txn.state, "amount": txn.amount,
            "expireAt": int((time.time() + 1200) * 1000), "metaInfo": {"udf1": merchant_order_id},
            "paymentDetails": [detail]}


def create_simulator(merchant_id: str = UAT_MERCHANT_ID, salt_key: str = UAT_SALT_KEY,
                     salt_index: int = UAT_SALT_INDEX, client_id: str = DEFAULT_CLIENT_ID,
                     client_secret: str = DEFAULT_CLIENT_SECRET,
                     client_version: str = DEFAULT_CLIENT_VERSION) -> FastAPI:
    app = FastAPI(title="PhonePe simulator")
    transactions: dict[str, Transaction] = {}
    queries: Counter[str] = Counter()  # status calls per merchant transaction / order id, v1 and v2
    tokens: dict[str, float] = {}  # access token -> expiry (unix s)
    lock = threading.Lock()
    app.state.transactions = transactions
    app.state.queries = queries

    def asked(mtid: str) -> None:
        with lock:
            queries[mtid] += 1

    @app.get("/sim/transactions/{mtid}")
    async def get_transaction(mtid: str) -> JSONResponse:
        txn = transactions.get(mtid)
        if txn is None:
            return JSONResponse({"error": "unknown transaction", "merchantTransactionId": mtid,
                                 "queries": queries[mtid]}, 404)
        return JSONResponse({"merchantTransactionId": mtid, "amount": txn.amount, "state": txn.state,
                             "transactionId": txn.transactionId, "queries": queries[mtid]})

    @app.post("/v1/oauth/token")
    async def oauth_token(request: Request) -> JSONResponse:
        form = {k: v[-1] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"code": "BAD_REQUEST", "message": "grant_type must be client_credentials"}, 400)
        if (form.get("client_id") != client_id or form.get("client_version") != client_version
                or not secrets.compare_digest(form.get("client_secret", "").encode(), client_secret.encode())):
            return JSONResponse({"code": "AUTHORIZATION_FAILED", "message": "Invalid client credentials"}, 401)
        token = secrets.token_urlsafe(32)
        expires_at = int(time.time()) + TOKEN_SECONDS
        with lock:
            tokens[token] = expires_at
        return JSONResponse({"access_token": token, "encrypted_access_token": token, "expires_in": None,
                             "issued_at": int(time.time()), "expires_at": expires_at, "session_expires_at": expires_at,
                             "token_type": "O-Bearer"})

    @app.get("/checkout/v2/order/{merchant_order_id}/status")
    async def order_status(merchant_order_id: str, authorization: str | None = Header(default=None)) -> JSONResponse:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme != "O-Bearer" or tokens.get(token, 0) < time.time():
            return JSONResponse({"code": "AUTHORIZATION_FAILED", "message": "Invalid or expired O-Bearer token"}, 401)
        asked(merchant_order_id)
        txn = transactions.get(merchant_order_id)
        if txn is None:
            return JSONResponse({"success": False, "code": "ORDER_NOT_FOUND",
                                 "message": f"No order found for merchantOrderId {merchant_order_id}"}, 404)
        return JSONResponse(order_status_payload(merchant_order_id, txn))

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
        asked(mtid)
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
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID, help="PG v2 OAuth client_id")
    parser.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET, help="PG v2 OAuth client_secret")
    parser.add_argument("--client-version", default=DEFAULT_CLIENT_VERSION, help="PG v2 OAuth client_version")
    args = parser.parse_args(argv)
    app = create_simulator(args.merchant_id, args.salt_key, args.salt_index, args.client_id, args.client_secret,
                           args.client_version)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
