"""One redaction rule for everything the harness writes down: reports, Locust's reports, logs.

A value is secret when its key names a secret (``salt_key``, ``password``, ``webhook_secret``,
``Authorization``…, matched case-insensitively anywhere in the key), and any string may carry
credentials inline: ``scheme://user:password@host`` or ``password=…`` in a query or message.
Redaction errs towards masking: a report that hides a harmless value is a nuisance, one that
shows a password is a leak.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"

# Fragments of key names that carry secrets. Matched after lower-casing and turning '-' into '_',
# so ``X-Webhook-Secret``, ``saltKey`` and ``MONGO_PASSWORD`` all match.
SECRET_KEY_PARTS = ("salt_key", "saltkey", "password", "passwd", "pwd", "secret", "hmac", "token", "api_key",
                    "apikey", "authorization", "private_key", "credential", "cookie")

# scheme://userinfo@ — either "user:password" whose password is not a port number (it may hold
# '@' or '/' unescaped: masked to the last '@' before whitespace), or anything inside the authority
# (before '/', '?', '#') up to its last '@'. "http://host:8000/p?mail=a@b" keeps its address.
_URI_CREDENTIALS = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)"
                              r"(?P<userinfo>[^\s/?#@:]*:(?!\d*(?:[/?#\s]|$))\S*|[^\s/?#]+)@")
# key=value / key: value inside free text (query strings, error messages, JSON kept as text); an
# Authorization-style value keeps its scheme word and loses the credential after it.
_KEY_VALUE = re.compile(r"(?P<key>[A-Za-z0-9_.\-]*(?:" + "|".join(SECRET_KEY_PARTS) + r")[A-Za-z0-9_.\-]*)"
                        r"(?P<sep>[\"']?\s*[=:]\s*(?:(?:bearer|basic|digest|token)\s+)?)"
                        r"(?P<value>\"[^\"]*\"|'[^']*'|[^\s&;,\"']+)", re.IGNORECASE)


def is_secret_key(key: Any) -> bool:
    """Whether a mapping key (or header name) names a secret."""
    if not isinstance(key, str):
        return False
    norm = key.lower().replace("-", "_")
    return any(part in norm for part in SECRET_KEY_PARTS)


def redact_text(text: str) -> str:
    """text with URI credentials and ``secret=value`` pairs masked."""
    text = _URI_CREDENTIALS.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    return _KEY_VALUE.sub(lambda m: f"{m['key']}{m['sep']}{MASK}", text)


def redact(obj: Any) -> Any:
    """A copy of obj (dicts, lists, tuples, strings, scalars) with every secret masked.

    Values under secret keys become ``***`` (None and empty values stay, they hide nothing);
    ``[name, value]`` pairs, the way headers travel, count as a key and its value; every other
    string is searched for inline credentials.
    """
    if isinstance(obj, dict):
        return {k: _masked(v) if is_secret_key(k) else redact(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        if len(obj) == 2 and is_secret_key(obj[0]):
            return type(obj)([obj[0], _masked(obj[1])])
        return type(obj)(redact(v) for v in obj)
    if isinstance(obj, str):
        return redact_text(obj)
    return obj


def _masked(value: Any) -> Any:
    """MASK for any value that could hold a secret; None and empty values pass (nothing to hide)."""
    return value if value is None or value == "" else MASK


def without_userinfo(url: str) -> str:
    """A URL without credentials: no user:password@, no query string (it may carry an API key)."""
    return re.sub(r"//[^/@]*@", "//", url).split("?", 1)[0]
