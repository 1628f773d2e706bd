"""Templates in a profile: ``${ENV}`` values from the environment, ``{placeholder}`` values per event.

``${NAME}`` is resolved once, when the profile is loaded; ``{name}`` is filled in for each payment
and event. A string that is exactly one placeholder keeps the value's type, so a JSON body can
carry a number (``amount = "{amount}"``).

A string that is exactly one typed placeholder, ``{name:type}``, gives a value of that type
(``{amount_rupees:number}`` is 4527.2, ``{now:date}`` a date); inside a longer string a typed
placeholder is the text of that value. ``TYPES`` lists the types and ``TAKES`` which placeholder
takes which; a type a placeholder cannot take is refused when the profile is loaded. Rendered for
JSON (``render``) a date is its ISO-8601 text and an ObjectId its hex; rendered for a MongoDB insert
(``render(..., bson=True)``) they stay a ``datetime`` and a ``bson.ObjectId``, as does a
``{ "$oid" = "<24 hex digits>" }`` table there.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from harness.errors import TemplateError

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# {name}, {state.<word>}, and either with a type: {name:type}
_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*(?:\.[A-Za-z0-9_]+)?)(?::([A-Za-z0-9_]+))?\}")
PLACEHOLDERS = ("transaction", "id", "amount", "amount_rupees", "state", "now", "now_ms", "now_s", "event_id",
                "random")
TYPES = ("int", "number", "string", "iso", "date", "unix", "unix_ms", "objectid")
# The types each placeholder takes ({state.<word>} as state); "string" is the text it gives inside a longer string.
TAKES: dict[str, tuple[str, ...]] = {
    "transaction": ("string",), "id": ("string", "objectid"), "amount": ("int", "number", "string"),
    "amount_rupees": ("number", "string"), "state": ("string",),
    "now": ("iso", "date", "unix", "unix_ms", "string"), "now_ms": ("int", "number", "string"),
    "now_s": ("int", "number", "string"), "event_id": ("string",), "random": ("string",)}
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_HEX24 = re.compile(r"[0-9a-fA-F]{24}")


def iso_time(ms: int) -> str:
    """``{now}``: unix milliseconds as ISO-8601 UTC text, the way JavaScript writes it (``2024-05-01T10:20:30.123Z``)."""
    return (_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def expand_env(value: Any, variables: Mapping[str, str], where: str = "") -> Any:
    """``value`` with every ``${NAME}`` / ``${NAME:-default}`` in its strings replaced, recursively."""
    if isinstance(value, str):
        def one(match: re.Match) -> str:
            name, default = match.group(1), match.group(2)
            if name in variables:
                return variables[name]
            if default is not None:
                return default
            raise TemplateError(f"{where or 'value'}: environment variable {name} is not set")

        return _ENV.sub(one, value)
    if isinstance(value, dict):
        return {k: expand_env(v, variables, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, variables, f"{where}.{i}") for i, v in enumerate(value)]
    return value


def placeholders_in(value: Any) -> set[str]:
    """Every ``{name}`` a template uses (a typed ``{name:type}`` as its name)."""
    if isinstance(value, str):
        return {m.group(1) for m in _PLACEHOLDER.finditer(value)}
    if isinstance(value, dict):
        return set().union(*(placeholders_in(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(placeholders_in(v) for v in value)) if value else set()
    return set()


def check_placeholders(value: Any) -> None:
    """Refuse a placeholder the harness does not know (a typo would otherwise be sent as is), and a type
    a placeholder cannot take (``{transaction:number}``), naming where in the template it is."""
    unknown = sorted(n for n in placeholders_in(value) - set(PLACEHOLDERS) if not n.startswith("state."))
    if unknown:
        raise TemplateError(f"unknown placeholder {{{unknown[0]}}} (known: {', '.join(PLACEHOLDERS)})")
    _check_types(value, "")


def _check_types(value: Any, where: str) -> None:
    at = f" at {where}" if where else ""
    if isinstance(value, str):
        for match in _PLACEHOLDER.finditer(value):
            name, kind = match.groups()
            if kind is None:
                continue
            if kind not in TYPES:
                raise TemplateError(f"{match.group(0)}{at}: unknown type {kind!r} (types: {', '.join(TYPES)})")
            takes = TAKES["state" if name.startswith("state.") else name]
            if kind not in takes:
                raise TemplateError(f"{match.group(0)}{at}: {{{name}}} cannot be {_a(kind)} (it can be: "
                                    f"{', '.join(takes)})")
    elif isinstance(value, dict):
        if set(value) == {"$oid"}:
            oid = value["$oid"]
            if not (isinstance(oid, str) and _HEX24.fullmatch(oid)):
                raise TemplateError(f"{{ \"$oid\" = {oid!r} }}{at}: a fixed ObjectId is 24 hex digits, written "
                                    f"out or from ${{NAME}} (no placeholder)")
        for k, v in value.items():
            _check_types(k, where)
            _check_types(v, f"{where}.{k}" if where else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_types(v, f"{where}.{i}" if where else str(i))


def _a(kind: str) -> str:
    return {"int": "an int", "iso": "an iso time", "unix": "unix seconds", "unix_ms": "unix milliseconds",
            "objectid": "an ObjectId"}.get(kind, f"a {kind}")


def render(value: Any, values: Mapping[str, Any], *, bson: bool = False) -> Any:
    """``value`` with its placeholders filled in from ``values``, recursively.

    For JSON (the default) a typed date is its ISO text and an ObjectId its hex; ``bson``: they stay a
    ``datetime`` and a ``bson.ObjectId`` (a MongoDB insert), and ``{"$oid": hex}`` becomes an ObjectId.
    """
    if isinstance(value, str):
        whole = _PLACEHOLDER.fullmatch(value)
        if whole and whole.group(1) in values:
            name, kind = whole.groups()
            return values[name] if kind is None else _typed(name, kind, values[name], bson)

        def one(match: re.Match) -> str:
            name, kind = match.groups()
            if name not in values:
                return match.group(0)
            return str(values[name]) if kind is None else _text(_typed(name, kind, values[name], True))

        return _PLACEHOLDER.sub(one, value)
    if isinstance(value, dict):
        if bson and set(value) == {"$oid"}:
            return _objectid("$oid", value["$oid"], True)
        return {_key(k, values): render(v, values, bson=bson) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, values, bson=bson) for v in value]
    return value


def _key(key: Any, values: Mapping[str, Any]) -> Any:
    """A table's key, filled in: a typed one as text (a key is a string in JSON and in MongoDB)."""
    whole = _PLACEHOLDER.fullmatch(key) if isinstance(key, str) else None
    return _text(render(key, values)) if whole and whole.group(2) else render(key, values)


def _text(value: Any) -> str:
    """A typed value as text: a date as ISO-8601 UTC, an ObjectId as its hex."""
    if isinstance(value, datetime):
        return iso_time((value - _EPOCH) // timedelta(milliseconds=1))
    return str(value)


def _time(name: str, value: Any) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise TemplateError(f"{{{name}}}: {value!r} is not an ISO-8601 time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _objectid(name: str, value: Any, bson: bool) -> Any:
    from bson import ObjectId

    if isinstance(value, ObjectId):
        return value if bson else str(value)
    if not (isinstance(value, str) and _HEX24.fullmatch(value)):
        raise TemplateError(f"{{{name}:objectid}}: {value!r} is not an ObjectId (24 hex digits)" if name != "$oid"
                            else f"{{ \"$oid\" = {value!r} }}: not an ObjectId (24 hex digits)")
    return ObjectId(value) if bson else value.lower()


_CONVERT: dict[str, Callable[[str, Any], Any]] = {
    "string": lambda name, v: _text(v),
    "int": lambda name, v: int(v),
    "number": lambda name, v: v if isinstance(v, (int, float)) and not isinstance(v, bool) else float(v),
    "iso": lambda name, v: _text(_time(name, v)),
    "date": _time,
    "unix": lambda name, v: (_time(name, v) - _EPOCH) // timedelta(seconds=1),
    "unix_ms": lambda name, v: (_time(name, v) - _EPOCH) // timedelta(milliseconds=1),
}


def _typed(name: str, kind: str, value: Any, bson: bool) -> Any:
    """``value`` (``{name}``'s) as ``kind``: a native value for MongoDB (``bson``), JSON-ready otherwise."""
    if kind == "objectid":
        return _objectid(name, value, bson)
    if kind not in _CONVERT:  # check_placeholders refuses it when the profile is loaded
        raise TemplateError(f"{{{name}:{kind}}}: unknown type {kind!r} (types: {', '.join(TYPES)})")
    try:
        converted = _CONVERT[kind](name, value)
    except (TypeError, ValueError):
        raise TemplateError(f"{{{name}:{kind}}}: {value!r} is not {_a(kind)}") from None
    return converted if bson or not isinstance(converted, datetime) else _text(converted)


_MISSING = object()


def dig(data: Any, path: str, default: Any = None) -> Any:
    """The value at a dotted path (``data.items.0.id``) of parsed JSON; ``default`` when absent."""
    if not path:
        return data
    current = data
    for part in path.split("."):
        if isinstance(current, dict):
            current = current.get(part, _MISSING)
        elif isinstance(current, list) and part.lstrip("-").isdigit() and -len(current) <= int(part) < len(current):
            current = current[int(part)]
        else:
            return default
        if current is _MISSING:
            return default
    return current
