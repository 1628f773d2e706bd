"""Standard Webhooks / Svix: ``webhook-id``, ``webhook-timestamp``, ``webhook-signature: v1,<base64>``."""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import ClassVar

from .base import SharedSecret, digest, require_choice, unix_now

SECRET_PREFIX = "whsec_"


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret: its base64 part, decoded."""
    encoded = secret[len(SECRET_PREFIX):] if secret.startswith(SECRET_PREFIX) else secret
    # Padding is added because some issuers print the base64 unpadded.
    return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)


@dataclass(frozen=True)
class StandardWebhooks(SharedSecret):
    """Standard Webhooks signing; ``header_prefix="svix"`` gives Svix's ``svix-…`` header names."""

    header_prefix: str = "webhook"
    name: ClassVar[str] = "standard-webhooks"
    # The timestamp is signed and verifiers allow ±5 min, so a duplicate is re-signed; its
    # webhook-id stays the same because the id is the receiver's idempotency key.
    binds_time: ClassVar[bool] = True

    def __post_init__(self) -> None:
        super().__post_init__()
        require_choice(self.name, "header_prefix", self.header_prefix, ("webhook", "svix"))
        try:
            key = secret_key(self.secret)
        except (binascii.Error, ValueError):
            key = b""
        if not key:
            raise ValueError(f"signing scheme {self.name!r}: secret must be 'whsec_' followed by base64")

    def sign(self, body: bytes, *, now: float | None = None, event_id: str | None = None) -> dict[str, str]:
        """The three headers; ``event_id`` defaults to one derived from the body, so duplicates share it."""
        msg_id = event_id or "msg_" + hashlib.sha256(body).hexdigest()[:27]
        timestamp = str(int(unix_now(now)))
        signed = f"{msg_id}.{timestamp}.".encode("utf-8") + body
        p = self.header_prefix
        return {f"{p}-id": msg_id, f"{p}-timestamp": timestamp,
                f"{p}-signature": "v1," + digest(secret_key(self.secret), signed, encoding="base64")}
