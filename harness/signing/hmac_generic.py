"""A generic HMAC scheme for gateways without a plug-in: header, hash, encoding and what is signed."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from .base import ENCODINGS, HASHES, Encoding, HashName, SharedSecret, digest, require_choice, unix_now

# Shorthands for the two common layouts; anything else is a template with these placeholders.
SIGNED_SHORTHANDS = {"body": "{body}", "timestamp.body": "{timestamp}.{body}"}
PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
UNITS = ("s", "ms")


@dataclass(frozen=True)
class GenericHmac(SharedSecret):
    """HMAC of ``signed`` (``body``, ``timestamp.body`` or a ``{timestamp}``/``{body}`` template)."""

    header: str = "X-Signature"
    hash: HashName = "sha256"
    encoding: Encoding = "hex"
    signed: str = "body"
    prefix: str = ""  # e.g. "sha256=" as GitHub writes it
    timestamp_header: str | None = None
    timestamp_unit: str = "s"
    name: ClassVar[str] = "hmac"

    def __post_init__(self) -> None:
        super().__post_init__()
        require_choice(self.name, "hash", self.hash, HASHES)
        require_choice(self.name, "encoding", self.encoding, ENCODINGS)
        require_choice(self.name, "timestamp_unit", self.timestamp_unit, UNITS)
        if not isinstance(self.header, str) or not self.header:
            raise ValueError(f"signing scheme {self.name!r}: header must name the signature header")
        names = PLACEHOLDER.findall(self.template)
        if names.count("body") != 1 or set(names) - {"body", "timestamp"}:
            raise ValueError(f"signing scheme {self.name!r}: signed must be body, timestamp.body, or a template "
                             f"with one {{body}} and optionally {{timestamp}}; got {self.signed!r}")
        if self.binds_time and not self.timestamp_header:
            # A receiver cannot check a signed timestamp it is never told.
            raise ValueError(f"signing scheme {self.name!r}: signing the timestamp needs timestamp_header")

    @property
    def template(self) -> str:
        """``signed`` with its shorthand expanded."""
        return SIGNED_SHORTHANDS.get(self.signed, self.signed)

    @property
    def binds_time(self) -> bool:
        """True when the signed message carries the send time, so a duplicate must be re-signed."""
        return "{timestamp}" in self.template

    def sign(self, body: bytes, *, now: float | None = None, event_id: str | None = None) -> dict[str, str]:
        """The signature header (and the timestamp header when the timestamp is signed)."""
        seconds = unix_now(now)
        timestamp = str(int(seconds * 1000) if self.timestamp_unit == "ms" else int(seconds))
        # The body goes in as bytes, never through str.format: a JSON body is full of braces.
        before, after = self.template.replace("{timestamp}", timestamp).split("{body}")
        message = before.encode("utf-8") + body + after.encode("utf-8")
        headers = {self.header: self.prefix + digest(self.secret.encode("utf-8"), message, self.hash, self.encoding)}
        if self.binds_time and self.timestamp_header:
            headers[self.timestamp_header] = timestamp
        return headers
