"""Stripe webhooks: ``Stripe-Signature: t=<unix>,v1=<hex HMAC_SHA256(secret, "t.body")>``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import SharedSecret, digest, unix_now


@dataclass(frozen=True)
class Stripe(SharedSecret):
    """Stripe webhooks, signed with the endpoint's ``whsec_…`` secret used as plain UTF-8 bytes."""

    name: ClassVar[str] = "stripe"
    # Verifiers reject a `t` older than 300 s, so Stripe signs every redelivery afresh.
    binds_time: ClassVar[bool] = True

    def sign(self, body: bytes, *, now: float | None = None, event_id: str | None = None) -> dict[str, str]:
        """``Stripe-Signature`` for ``body`` sent at ``now``."""
        t = int(unix_now(now))
        return {"Stripe-Signature": f"t={t},v1={digest(self.secret.encode('utf-8'), f'{t}.'.encode('ascii') + body)}"}
