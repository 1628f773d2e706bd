"""What every signing scheme offers, and the small helpers their modules share."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass, field
from typing import ClassVar, Literal, Protocol, runtime_checkable

HashName = Literal["sha256", "sha1", "sha512"]
Encoding = Literal["hex", "base64"]
HASHES: tuple[str, ...] = ("sha256", "sha1", "sha512")
ENCODINGS: tuple[str, ...] = ("hex", "base64")


@runtime_checkable
class Scheme(Protocol):
    """A webhook signing scheme: its settings are fixed at construction, ``sign`` adds headers."""

    name: str
    # True when the signature covers a timestamp: a duplicate must then be signed again at its
    # own send time (verifiers reject stale ones), where other schemes replay it byte for byte.
    binds_time: bool

    def sign(self, body: bytes, *, now: float | None = None, event_id: str | None = None) -> dict[str, str]:
        """Headers that authenticate ``body`` (sent at ``now``, unix seconds; default: the clock)."""
        ...


@dataclass(frozen=True)
class SharedSecret:
    """Settings of a scheme keyed by one shared secret, which never shows in ``repr``."""

    secret: str = field(repr=False)
    name: ClassVar[str] = "shared-secret"

    def __post_init__(self) -> None:
        require_secret(self.name, "secret", self.secret)


def redeliver(scheme: Scheme, body: bytes, first: dict[str, str], *, now: float | None = None,
              event_id: str | None = None) -> dict[str, str]:
    """Headers of a duplicate delivery: the first ones again, or fresh ones if the scheme binds time."""
    if not scheme.binds_time:
        return dict(first)
    return scheme.sign(body, now=now, event_id=event_id)


def unix_now(now: float | None) -> float:
    """``now`` if given (tests pin it), else the wall clock."""
    return time.time() if now is None else now


def digest(secret: bytes, message: bytes, hash_name: str = "sha256", encoding: str = "hex") -> str:
    """HMAC of ``message`` under ``secret``, in hex or base64."""
    mac = hmac.new(secret, message, getattr(hashlib, hash_name)).digest()
    return mac.hex() if encoding == "hex" else base64.b64encode(mac).decode("ascii")


def require_secret(scheme: str, field_name: str, value: object) -> None:
    """Refuse an empty or non-string secret, naming the field but never echoing its value."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"signing scheme {scheme!r}: {field_name} must be a non-empty string")


def require_choice(scheme: str, field_name: str, value: object, choices: tuple[str, ...]) -> None:
    """Refuse a setting outside its allowed values, naming them."""
    if value not in choices:
        raise ValueError(f"signing scheme {scheme!r}: {field_name} must be one of {', '.join(choices)}; got {value!r}")
