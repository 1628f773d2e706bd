"""The W3C ``Server-Timing`` response header, reduced to ``{metric name: duration in ms}``.

Grammar (https://www.w3.org/TR/server-timing/): ``metric *( OWS ";" OWS name OWS "=" OWS value )``,
metrics separated by commas, values a token or a quoted string. A quoted ``desc`` may itself hold
commas and semicolons, so the text is split only outside quotes. Per the spec the first ``dur`` of a
metric counts; here the first metric of a name counts too. Metrics without a usable ``dur`` are left
out. Malformed pieces are skipped, never raised: the header comes from the service under test.
"""

from __future__ import annotations

import math
from typing import Iterable


def parse_server_timing(lines: Iterable[str]) -> dict[str, float]:
    """Durations (ms) by metric name, from every ``Server-Timing`` header line of one response."""
    durations: dict[str, float] = {}
    for line in lines:
        for metric in _split_outside_quotes(line, ","):
            name, params = _metric(metric)
            if not name or name in durations:
                continue
            dur = _number(params.get("dur"))
            if dur is not None:
                durations[name] = dur
    return durations


def _metric(text: str) -> tuple[str, dict[str, str]]:
    parts = _split_outside_quotes(text, ";")
    name = parts[0].strip() if parts else ""
    params: dict[str, str] = {}
    for part in parts[1:]:
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        if key and key not in params:
            params[key] = _unquote(value.strip()) if sep else ""
    return name, params


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    pieces, current, quoted, escaped = [], [], False, False
    for char in text:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            pieces.append("".join(current))
            current = []
            continue
        current.append(char)
    pieces.append("".join(current))
    return [p for p in pieces if p.strip()]


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        inner = value[1:-1]
        out, escaped = [], False
        for char in inner:
            if char == "\\" and not escaped:
                escaped = True
                continue
            out.append(char)
            escaped = False
        return "".join(out)
    return value


def _number(value: str | None) -> float | None:
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None
