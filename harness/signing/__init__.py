"""Webhook signing schemes, each a small plug-in; PhonePe PG v1 helpers are kept at this level.

``scheme("razorpay", secret=...)`` builds one; ``SCHEMES`` lists them by name.
"""

from __future__ import annotations

from .base import Scheme, redeliver
from .phonepe_v1 import CODES, callback_body, callback_payload, signed_callback, status_headers, x_verify
from .phonepe_v2 import v2_webhook_body, v2_webhook_payload
from .registry import SCHEMES, scheme

__all__ = ["CODES", "SCHEMES", "Scheme", "callback_body", "callback_payload", "redeliver", "scheme",
           "signed_callback", "status_headers", "v2_webhook_body", "v2_webhook_payload", "x_verify"]
