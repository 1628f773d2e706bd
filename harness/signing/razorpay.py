"""Razorpay webhooks: ``X-Razorpay-Signature`` is the hex HMAC-SHA256 of the raw body."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import SharedSecret, digest


@dataclass(frozen=True)
class Razorpay(SharedSecret):
    """Razorpay webhooks, signed with the webhook secret set on the dashboard."""

    name: ClassVar[str] = "razorpay"
    # Only the body is signed: Razorpay's redelivery is the same bytes and the same signature.
    binds_time: ClassVar[bool] = False

    def sign(self, body: bytes, *, now: float | None = None, event_id: str | None = None) -> dict[str, str]:
        """``X-Razorpay-Signature: hex(HMAC_SHA256(secret, body))``."""
        return {"X-Razorpay-Signature": digest(self.secret.encode("utf-8"), body)}
