"""Every signing scheme by the name a profile uses for it."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from .base import Scheme
from .cashfree import Cashfree
from .hmac_generic import GenericHmac
from .none import NoSigning
from .phonepe_v1 import PhonePeV1
from .phonepe_v2 import PhonePeV2
from .razorpay import Razorpay
from .standard_webhooks import StandardWebhooks
from .stripe import Stripe

SCHEMES: dict[str, type] = {cls.name: cls for cls in (
    PhonePeV1, PhonePeV2, Razorpay, Stripe, Cashfree, StandardWebhooks, GenericHmac, NoSigning)}


def scheme(name: str, **settings: Any) -> Scheme:
    """The scheme called ``name`` with its settings validated; ValueError names what is wrong."""
    try:
        cls = SCHEMES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown signing scheme {name!r}; known: {', '.join(SCHEMES)}") from None
    try:
        return cls(**settings)
    except TypeError as exc:
        # A missing or unknown setting: name the fields, never their values.
        known = ", ".join(settings_of(cls)) or "none"
        raise ValueError(f"signing scheme {name!r}: {exc}; its settings: {known}") from None


def settings_of(cls: type) -> list[str]:
    """The setting names a scheme class takes."""
    return [f.name for f in fields(cls)]
