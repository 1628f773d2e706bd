"""PhonePe PG v2 webhooks: ``Authorization`` is sha256 of ``username:password``, and the event body."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .base import require_secret, unix_now

EVENTS = {"COMPLETED": "checkout.order.completed", "FAILED": "checkout.order.failed"}
# `type` is the deprecated twin of `event`; services written against the older docs still read it.
TYPES = {"COMPLETED": "CHECKOUT_ORDER_COMPLETED", "FAILED": "CHECKOUT_ORDER_FAILED"}
ORDER_LIFETIME_MS = 20 * 60 * 1000  # a checkout order's default expiry


@dataclass(frozen=True)
class PhonePeV2:
    """PhonePe PG v2 webhooks: ``Authorization: <lowercase hex sha256("username:password")>``."""

    username: str = field(repr=False)
    password: str = field(repr=False)
    name: ClassVar[str] = "phonepe-v2"
    # The header covers neither body nor time, so a duplicate is replayed as it was.
    binds_time: ClassVar[bool] = False

    def __post_init__(self) -> None:
        require_secret(self.name, "username", self.username)
        require_secret(self.name, "password", self.password)

    def sign(self, body: bytes, *, now: float | None = None, event_id: str | None = None) -> dict[str, str]:
        """The ``Authorization`` header (no ``Bearer``/``SHA256`` prefix), the same for every body."""
        token = hashlib.sha256(f"{self.username}:{self.password}".encode("utf-8")).hexdigest()
        return {"Authorization": token}


def v2_webhook_payload(merchant_id: str, merchant_order_id: str, order_id: str, amount: int,
                       state: str = "COMPLETED", *, transaction_id: str | None = None,
                       payment_mode: str = "UPI_QR", now: float | None = None) -> dict[str, Any]:
    """A ``checkout.order.completed`` / ``checkout.order.failed`` webhook body (amount in paise)."""
    if state not in EVENTS:
        raise ValueError(f"PhonePe v2 order webhooks carry state {' or '.join(EVENTS)}; got {state!r}")
    at_ms = int(unix_now(now) * 1000)
    return {
        "event": EVENTS[state],
        "type": TYPES[state],
        "payload": {
            "merchantId": merchant_id,
            "merchantOrderId": merchant_order_id,
            "orderId": order_id,
            "state": state,
            "amount": amount,
            "expireAt": at_ms + ORDER_LIFETIME_MS,
            "metaInfo": {},
            "paymentDetails": [{
                "transactionId": transaction_id or f"OM{merchant_order_id[-20:]}",
                "paymentMode": payment_mode,
                "timestamp": at_ms,
                "amount": amount,
                "state": state,
            }],
        },
    }


def v2_webhook_body(payload: dict[str, Any]) -> bytes:
    """The JSON bytes of a v2 webhook, compact as PhonePe sends them."""
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")
