"""Cashfree webhooks: ``x-webhook-signature`` is base64 HMAC-SHA256 of timestamp + raw body."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from .base import digest, require_secret, unix_now


@dataclass(frozen=True)
class Cashfree:
    """Cashfree PG webhooks, signed with the merchant's client secret."""

    secret: str = field(repr=False)
    name: ClassVar[str] = "cashfree"
    # The timestamp is signed, so a redelivery sent later carries a new timestamp and signature.
    binds_time: ClassVar[bool] = True

    def __post_init__(self) -> None:
        require_secret(self.name, "secret", self.secret)

    def sign(self, body: bytes, *, now: float | None = None, event_id: str | None = None) -> dict[str, str]:
        """``x-webhook-timestamp`` (unix milliseconds, as Cashfree sends) and ``x-webhook-signature``."""
        timestamp = str(int(unix_now(now) * 1000))
        signature = digest(self.secret.encode("utf-8"), timestamp.encode("ascii") + body, encoding="base64")
        return {"x-webhook-timestamp": timestamp, "x-webhook-signature": signature}
