"""What an attacker can make of a scheme: deliveries a gateway would never send, for the webhook probes.

Everything here is worked out from the scheme itself, never from a table per gateway: which settings are
its credentials (the ones kept out of ``repr``), which headers carry the signature (those that change
when the credentials do), and whether the signature covers the body (whether it changes with the body).
A new scheme gets every probe that applies to it without a line here.
"""

from __future__ import annotations

import base64
import re
import secrets
import time
from dataclasses import fields, replace
from typing import Any

from .base import Scheme

# Signed long enough ago that every documented tolerance has passed (Stripe and Standard Webhooks: 300 s;
# Cashfree documents none). A delivery this old is what a replayer holds, or a gateway never sends.
STALE_AGE = 3600.0
_PINNED = 1_700_000_000.0  # one fixed instant for comparing two signatures of one message
_RUN = re.compile(r"[0-9A-Za-z+/_-]+")


def credentials(scheme: Scheme) -> list[str]:
    """The names of a scheme's credential settings: those it keeps out of ``repr`` (a secret, a salt key,
    a PhonePe v2 username and password). A scheme with none (``none``) cannot be forged against."""
    try:
        return [f.name for f in fields(scheme) if not f.repr]  # type: ignore[arg-type]
    except TypeError:  # not a dataclass: nothing known to replace
        return []


def with_other_credentials(scheme: Scheme) -> Scheme:
    """The same scheme with every credential replaced by a random one of the same form (``whsec_`` + base64
    stays that), as someone who does not hold the merchant's secret would sign."""
    changes: dict[str, Any] = {}
    for name in credentials(scheme):
        value = getattr(scheme, name)
        if isinstance(value, str) and value.startswith("whsec_"):
            changes[name] = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode("ascii")
        elif _base64(value):  # a secret given as bare base64 (a Standard Webhooks key without its prefix)
            changes[name] = base64.b64encode(secrets.token_bytes(24)).decode("ascii")
        else:
            changes[name] = f"forged-{secrets.token_hex(12)}"
    return replace(scheme, **changes)  # type: ignore[type-var]


def _base64(value: object) -> bool:
    """Whether a credential reads as base64 of at least 16 bytes (so its replacement must too)."""
    if not isinstance(value, str) or len(value) < 24:
        return False
    try:
        return len(base64.b64decode(value + "=" * (-len(value) % 4), validate=True)) >= 16
    except ValueError:
        return False


def signature_headers(scheme: Scheme, body: bytes, *, event_id: str | None = None) -> list[str]:
    """The headers that carry the signature itself: those whose value changes with the credentials
    (a timestamp or an event id does not). Empty for a scheme that signs nothing."""
    if not credentials(scheme):
        return []
    real = scheme.sign(body, now=_PINNED, event_id=event_id)
    other = with_other_credentials(scheme).sign(body, now=_PINNED, event_id=event_id)
    return [name for name, value in real.items() if other.get(name) != value]


def covers_body(scheme: Scheme, body: bytes, other_body: bytes, *, event_id: str | None = None) -> bool:
    """Whether the signature depends on the body: two bodies, one instant, one event id, different signatures.
    PhonePe v2's ``Authorization`` (a hash of ``username:password``) does not: anyone who has seen one
    delivery's header can put any body under it."""
    names = signature_headers(scheme, body, event_id=event_id)
    one = scheme.sign(body, now=_PINNED, event_id=event_id)
    two = scheme.sign(other_body, now=_PINNED, event_id=event_id)
    return any(one.get(n) != two.get(n) for n in names)


def altered(value: str) -> str:
    """A signature value with one character of its digest changed (the longest run of hex or base64
    characters, at its middle), keeping its form: ``t=…,v1=<hex>``, ``<hex>###1``, ``v1,<base64>``."""
    runs = list(_RUN.finditer(value))
    if not runs:
        return value + "0"
    run = max(runs, key=lambda m: m.end() - m.start())
    i = (run.start() + run.end()) // 2
    c = value[i]
    swapped = {"0": "1", "9": "8", "a": "b", "f": "e", "z": "y", "A": "B", "Z": "Y"}.get(c)
    if swapped is None:
        swapped = chr(ord(c) + 1) if c.isalnum() else "A"
    return value[:i] + swapped + value[i + 1:]


def stale_time(now: float | None = None) -> float:
    """The send time of a stale delivery: ``STALE_AGE`` seconds before now."""
    return (time.time() if now is None else now) - STALE_AGE
