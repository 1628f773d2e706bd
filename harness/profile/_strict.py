"""What every section model of the profile schema shares: strictness, and the checks of a pattern and a path."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

from .template import check_placeholders


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _regex(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        compiled = re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a regular expression: {exc}") from None
    if compiled.groups > 1:
        raise ValueError("a key pattern has at most one group (the part that is the key)")
    return value


def _path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError("a path starts with /")
    check_placeholders(value)
    return value
