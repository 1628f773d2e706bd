"""Configuration files checked against the harness's own data classes, with errors that name the field.

pydantic validates the plain dataclasses (``Target``, ``Signing``, a targets file's entries) as they
are, so each file format is defined once, by the class that uses it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError

from harness.redact import is_secret_key
from harness.errors import ConfigError

T = TypeVar("T")


@lru_cache(maxsize=None)
def _adapter(kind: type) -> TypeAdapter:
    return TypeAdapter(kind)


def validated(kind: type[T], data: Any, source: str) -> T:
    """``data`` as a ``kind``; ConfigError naming every wrong field (``signing.salt_index: ...``) otherwise."""
    try:
        return _adapter(kind).validate_python(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: " + "; ".join(describe_error(e) for e in exc.errors()[:5])) from None


def describe_error(error: dict[str, Any]) -> str:
    field = ".".join(str(part) for part in error["loc"]) or "(the whole file)"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
        message = "unknown field"
    elif "input" in error and not any(is_secret_key(part) for part in error["loc"]):
        shown = repr(error["input"])
        message += f" (got {shown[:60]}{'…' if len(shown) > 60 else ''})" if error["type"] != "missing" else ""
    return f"{field}: {message}"
