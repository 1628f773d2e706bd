"""PhonePe's callback format and X-VERIFY checksum, written independently of any service.

The reference service verifies callbacks with code of its own: two implementations of the
published scheme check each other, and the harness can judge a service it did not write.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

CODES = {"COMPLETED": "PAYMENT_SUCCESS", "FAILED": "PAYMENT_ERROR", "PENDING": "PAYMENT_PENDING"}


def x_verify(message: str, salt_key: str, salt_index: int) -> str:
    digest = hashlib.sha256(message.encode("utf-8") + salt_key.encode("utf-8")).hexdigest()
    return f"{digest}###{salt_index}"


def callback_payload(merchant_id: str, merchant_transaction_id: str, amount: int, state: str = "COMPLETED",
                     transaction_id: str | None = None) -> dict[str, Any]:
    """A PG v1 server-to-server callback payload (before base64)."""
    return {
        "success": state == "COMPLETED",
        "code": CODES[state],
        "message": f"Your payment is {state.lower()}",
        "data": {
            "merchantId": merchant_id,
            "merchantTransactionId": merchant_transaction_id,
            "transactionId": transaction_id or f"T{merchant_transaction_id[-20:]}",
            "amount": amount,
            "state": state,
            "responseCode": "SUCCESS" if state == "COMPLETED" else state,
            "paymentInstrument": {"type": "UPI", "utr": "000000000000"},
        },
    }


def signed_callback(payload: dict[str, Any], salt_key: str, salt_index: int) -> tuple[bytes, dict[str, str]]:
    """(body, headers) of a signed callback: ``{"response": base64(JSON)}`` and X-VERIFY over it."""
    response = base64.b64encode(json.dumps(payload, separators=(",", ":")).encode("utf-8")).decode("ascii")
    body = json.dumps({"response": response}).encode("utf-8")
    return body, {"Content-Type": "application/json", "X-VERIFY": x_verify(response, salt_key, salt_index)}


def status_headers(path: str, merchant_id: str, salt_key: str, salt_index: int) -> dict[str, str]:
    """Headers of a PG v1 status API call, signed over its path."""
    return {"X-VERIFY": x_verify(path, salt_key, salt_index), "X-MERCHANT-ID": merchant_id}
