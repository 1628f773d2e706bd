"""One redaction rule for everything the harness writes down: reports, Locust's reports, logs.

A value is secret when its key names a secret (``salt_key``, ``password``, ``webhook_secret``,
``Authorization``…, matched case-insensitively anywhere in the key), and any string may carry
credentials inline: ``scheme://user:password@host`` or ``password=…`` in a query or message.
Redaction errs towards masking: a report that hides a harmless value is a nuisance, one that
shows a password is a leak.

Masking by name misses a secret a service echoes back (``{"debug": "signed with <secret>"}``), so
whoever knows the secret values (a ``Profile``: ``secret_values()``) masks them by value too
(``mask_values``). Text that came from a service is printed through ``printable``: control
characters reach a terminal as visible escapes, never as commands.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus, unquote

MASK = "***"

# Fragments of key names that carry secrets. Matched after lower-casing and turning '-' into '_',
# so ``X-Webhook-Secret``, ``saltKey`` and ``MONGO_PASSWORD`` all match.
SECRET_KEY_PARTS = ("salt_key", "saltkey", "password", "passwd", "pwd", "secret", "hmac", "token", "api_key",
                    "apikey", "authorization", "private_key", "credential", "cookie")

# scheme://userinfo@ — either "user:password" whose password is not a port number (it may hold
# '@' or '/' unescaped: masked to the last '@' before whitespace), or anything inside the authority
# (before '/', '?', '#') up to its last '@'. "http://host:8000/p?mail=a@b" keeps its address.
# This is the rule as one regular expression; ``_mask_uri_credentials`` applies it in one pass over the
# text (the expression itself backtracks over long runs: a hostile answer must not make redaction quadratic).
_URI_CREDENTIALS = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)"
                              r"(?P<userinfo>[^\s/?#@:]*:(?!\d*(?:[/?#\s]|$))\S*|[^\s/?#]+)@")
# key=value / key: value inside free text (query strings, error messages, JSON kept as text); an
# Authorization-style value keeps its scheme word and loses the credential after it. As one expression
# (the rule ``_mask_key_values`` applies in one pass): a key is a whole run of key characters holding
# a secret word, followed by its separator and value.
_KEY_VALUE = re.compile(r"(?P<key>[A-Za-z0-9_.\-]*(?:" + "|".join(SECRET_KEY_PARTS) + r")[A-Za-z0-9_.\-]*)"
                        r"(?P<sep>[\"']?\s*[=:]\s*(?:(?:bearer|basic|digest|token)\s+)?)"
                        r"(?P<value>\"[^\"]*\"|'[^']*'|[^\s&;,\"']+)", re.IGNORECASE)

# The pieces of those two rules, each matched where the one pass says (none of them can restart at every position).
_SCHEME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+.-")
_SCHEME_START = re.compile(r"\b[A-Za-z]")
_USER_THEN_COLON = re.compile(r"[^\s/?#@:]*:")
_PORT_AFTER_COLON = re.compile(r"\d*(?:[/?#\s]|$)")
_WHITESPACE = re.compile(r"\s")
_AUTHORITY_END = re.compile(r"[\s/?#]")
_KEY_RUN = re.compile(r"[A-Za-z0-9_.\-]+", re.IGNORECASE)
_KEY_PART = re.compile("|".join(SECRET_KEY_PARTS), re.IGNORECASE)
_SEP_VALUE = re.compile(_KEY_VALUE.pattern[_KEY_VALUE.pattern.index("(?P<sep>"):], re.IGNORECASE)


def is_secret_key(key: Any) -> bool:
    """Whether a mapping key (or header name) names a secret."""
    if not isinstance(key, str):
        return False
    norm = key.lower().replace("-", "_")
    return any(part in norm for part in SECRET_KEY_PARTS)


# Words in a header's name that say it carries a credential: a key, a signature, a session, a password, a PIN.
CREDENTIAL_HEADER_PARTS = ("key", "auth", "sign", "session", "pass", "cookie", "secret", "token", "credential", "hmac",
                           "salt", "code", "pin", "verify", "otp")


def credential_header(name: str) -> bool:
    """Whether a header's name says it carries a credential (its value is masked wherever it is kept: a
    report's profile, the sink's records); an id (``X-Razorpay-Event-Id``) is not one."""
    lowered = name.lower()
    return is_secret_key(name) or any(part in lowered for part in CREDENTIAL_HEADER_PARTS)


def redact_text(text: str) -> str:
    """text with URI credentials and ``secret=value`` pairs masked."""
    return _mask_key_values(_mask_uri_credentials(text))


class _LastAt:
    """The last '@' before the end of the span (found by ``end``) a position lies in, found once per span.

    Positions are asked in increasing order, so a span's end and its last '@' serve every later
    position inside it: a text full of ``x://`` costs one pass, not one per candidate.
    """

    def __init__(self, text: str, end: re.Pattern[str]) -> None:
        self.text, self.end = text, end
        self.span_end, self.last_at = -1, -1

    def __call__(self, start: int) -> int:
        """The last '@' at or after ``start`` and before its span's end; -1: none."""
        if start >= self.span_end:
            found = self.end.search(self.text, start)
            self.span_end = found.start() if found else len(self.text)
            self.last_at = self.text.rfind("@", start, self.span_end)
        return self.last_at if self.last_at >= start else -1


def _mask_uri_credentials(text: str) -> str:
    """``_URI_CREDENTIALS.sub(scheme + MASK + "@")`` in one pass: each "://" is found once, its scheme read
    backwards from it, its userinfo's last '@' found once per span of text."""
    if "://" not in text:
        return text
    out: list[str] = []
    done = 0  # text[:done] is decided (copied or masked); a scheme starts at or after it
    look = 0  # where the next "://" is looked for
    before_space, before_authority_end = _LastAt(text, _WHITESPACE), _LastAt(text, _AUTHORITY_END)
    while (sep := text.find("://", look)) >= 0:
        look = sep + 3
        start = sep
        while start > done and text[start - 1] in _SCHEME_CHARS:
            start -= 1
        scheme = _SCHEME_START.search(text, start, sep)
        if scheme is None:
            continue
        at = -1
        user = _USER_THEN_COLON.match(text, look)
        if user is not None and _PORT_AFTER_COLON.match(text, user.end()) is None:
            at = before_space(user.end())  # user:password, masked to the last '@' before whitespace
        if at < 0:
            at = before_authority_end(look)  # the authority's last '@', after at least one character
            at = at if at > look else -1
        if at < 0:
            continue
        out += [text[done:look], MASK, "@"]
        done = look = at + 1
    out.append(text[done:])
    return "".join(out)


def _mask_key_values(text: str) -> str:
    """``_KEY_VALUE.sub(key + sep + MASK)`` in one pass: a key is a whole run of key characters (its
    separator cannot start inside one), so each run is looked at once and its separator and value
    read where it ends."""
    out: list[str] = []
    done = look = 0
    while (run := _KEY_RUN.search(text, look)) is not None:
        look = run.end()
        if _KEY_PART.search(text, run.start(), run.end()) is None:
            continue
        if (rest := _SEP_VALUE.match(text, run.end())) is None:
            continue
        out += [text[done:run.end()], rest["sep"], MASK]
        done = look = rest.end()
    out.append(text[done:])
    return "".join(out)


def redact_uris(text: str) -> str:
    """text with the credentials of every ``scheme://user:password@`` masked (and nothing else)."""
    return _mask_uri_credentials(text)


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


# -- secrets known by value -------------------------------------------------------------------

# A secret value shorter than this is not masked by value: masking "1" or "abc" everywhere would
# spoil a report and hide nothing (such a value is still masked where its key names a secret).
MIN_SECRET_LENGTH = 4


def uri_credentials(text: str) -> set[str]:
    """The secrets inside text's URIs: each ``user:password@``'s password (as written and decoded), or the
    whole userinfo of ``token@host``."""
    found = set()
    for match in _URI_CREDENTIALS.finditer(text):
        userinfo = match["userinfo"]
        secret = userinfo.split(":", 1)[1] if ":" in userinfo else userinfo
        found |= {secret, unquote(secret)}
    return {s for s in found if s}


def _variants(secret: str) -> set[str]:
    """The forms a secret travels in: as it is, inside JSON text, percent-encoded in a URL or a form."""
    return {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1], quote(secret, safe=""),
            quote_plus(secret)}


def mask_values(obj: Any, secrets: Iterable[str]) -> Any:
    """A copy of obj (dicts, lists, tuples, strings, scalars) with every occurrence of a secret value (in
    any of its forms: JSON-escaped, percent-encoded) in a string replaced by ``***``. Mapping keys are kept
    (they name fields); values shorter than ``MIN_SECRET_LENGTH`` are not searched for."""
    forms = sorted({v for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_LENGTH and s != MASK
                    for v in _variants(s) if len(v) >= MIN_SECRET_LENGTH}, key=len, reverse=True)
    if not forms:
        return obj

    def text(value: str) -> str:
        for form in forms:  # longest first: a secret holding a shorter one goes whole
            if form in value:
                value = value.replace(form, MASK)
        return value

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return text(value)
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(walk(v) for v in value)
        return value

    return walk(obj)


# -- printing what a service controls -----------------------------------------------------------

# C0 and C1 control characters, DEL, and the Unicode controls that reorder or break lines on a terminal
# (bidirectional overrides and isolates, the line and paragraph separators).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_CONTROL_BUT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: Any, *, newlines: bool = False) -> str:
    """text safe to print on a terminal: every control character (ESC, BEL, CR, C1, bidi overrides…) as a
    visible escape such as ``\\x1b``. ``newlines``: a block of lines the harness made keeps its line breaks
    (a name inside it is escaped on its own first, newline and all)."""
    return (_CONTROL_BUT_NEWLINE if newlines else _CONTROL).sub(_escape, str(text))


def printable_values(obj: Any) -> Any:
    """A copy of obj (dicts, lists, tuples, strings, scalars) with every string ``printable`` (newlines escaped
    too: a value is one name or message; the lines a printer makes of them are its own)."""
    if isinstance(obj, str):
        return printable(obj)
    if isinstance(obj, dict):
        return {printable(k) if isinstance(k, str) else k: printable_values(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(printable_values(v) for v in obj)
    return obj
