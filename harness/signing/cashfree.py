"""Cashfree webhooks: ``x-webhook-signature`` is base64 HMAC-SHA256 of timestamp + raw body."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import SharedSecret, digest, unix_now


@dataclass(frozen=True)
class Cashfree(SharedSecret):
    """Cashfree PG webhooks, signed with the merchant's client secret."""

    name: ClassVar[str] = "cashfree"
    # The timestamp is signed, so a redelivery sent later carries a new timestamp and signature.
    binds_time: ClassVar[bool] = True

    def sign(self, body: bytes, *, now: float | None = None, event_id: str | None = None) -> dict[str, str]:
        """``x-webhook-timestamp`` (unix milliseconds, as Cashfree sends) and ``x-webhook-signature``."""
        timestamp = str(int(unix_now(now) * 1000))
        signature = digest(self.secret.encode("utf-8"), timestamp.encode("ascii") + body, encoding="base64")
        return {"x-webhook-timestamp": timestamp, "x-webhook-signature": signature}
