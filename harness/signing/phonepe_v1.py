"""PhonePe PG v1: callback format and X-VERIFY checksum, written independently of any service.

The reference service verifies callbacks with code of its own: two implementations of the
published scheme check each other, and the harness can judge a service it did not write.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .base import require_secret

CODES = {"COMPLETED": "PAYMENT_SUCCESS", "FAILED": "PAYMENT_ERROR", "PENDING": "PAYMENT_PENDING"}


def x_verify(message: str, salt_key: str, salt_index: int) -> str:
    """``sha256_hex(message + saltKey) + "###" + saltIndex``."""
    digest = hashlib.sha256(message.encode("utf-8") + salt_key.encode("utf-8")).hexdigest()
    return f"{digest}###{salt_index}"


@dataclass(frozen=True)
class PhonePeV1:
    """PhonePe PG v1 callbacks: ``X-VERIFY`` over the body's base64 ``response`` field."""

    salt_key: str = field(repr=False)
    salt_index: int = 1
    name: ClassVar[str] = "phonepe-v1"
    # The checksum covers no time: a gateway's duplicate is the same bytes and headers.
    binds_time: ClassVar[bool] = False

    def __post_init__(self) -> None:
        require_secret(self.name, "salt_key", self.salt_key)
        if not isinstance(self.salt_index, int) or isinstance(self.salt_index, bool) or self.salt_index < 0:
            raise ValueError(f"signing scheme {self.name!r}: salt_index must be a non-negative integer")

    def sign(self, body: bytes, *, now: float | None = None, event_id: str | None = None) -> dict[str, str]:
        """``X-VERIFY`` of a ``{"response": base64(JSON)}`` body."""
        # The checksum is over the base64 string inside the body, not the body's bytes.
        try:
            response = json.loads(body)["response"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError("phonepe-v1 signs a body of the form {\"response\": base64(JSON)}") from exc
        return {"X-VERIFY": x_verify(response, self.salt_key, self.salt_index)}


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


def callback_body(payload: dict[str, Any]) -> bytes:
    """The body of a PG v1 callback: ``{"response": base64(compact JSON)}``."""
    response = base64.b64encode(json.dumps(payload, separators=(",", ":")).encode("utf-8")).decode("ascii")
    return json.dumps({"response": response}).encode("utf-8")


def signed_callback(payload: dict[str, Any], salt_key: str, salt_index: int) -> tuple[bytes, dict[str, str]]:
    """(body, headers) of a signed callback: ``{"response": base64(JSON)}`` and X-VERIFY over it."""
    body = callback_body(payload)
    return body, {"Content-Type": "application/json", **PhonePeV1(salt_key, salt_index).sign(body)}


def status_headers(path: str, merchant_id: str, salt_key: str, salt_index: int) -> dict[str, str]:
    """Headers of a PG v1 status API call, signed over its path."""
    return {"X-VERIFY": x_verify(path, salt_key, salt_index), "X-MERCHANT-ID": merchant_id}
