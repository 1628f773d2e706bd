"""No signing: for a service that authenticates its webhooks some other way, or not at all."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class NoSigning:
    """Adds no header; a duplicate is the same request again."""

    name: ClassVar[str] = "none"
    binds_time: ClassVar[bool] = False

    def sign(self, body: bytes, *, now: float | None = None, event_id: str | None = None) -> dict[str, str]:
        """No headers."""
        return {}
