"""Templates in a profile: ``${ENV}`` values from the environment, ``{placeholder}`` values per event.

``${NAME}`` is resolved once, when the profile is loaded; ``{name}`` is filled in for each payment
and event. A string that is exactly one placeholder keeps the value's type, so a JSON body can
carry a number (``amount = "{amount}"``).
"""

from __future__ import annotations

import re
from typing import Any, Mapping
from harness.errors import TemplateError

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*(?:\.[A-Za-z0-9_]+)?)\}")
PLACEHOLDERS = ("transaction", "id", "amount", "amount_rupees", "state", "now_ms", "now_s", "event_id", "random")


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
    """Every ``{name}`` a template uses."""
    if isinstance(value, str):
        return set(_PLACEHOLDER.findall(value))
    if isinstance(value, dict):
        return set().union(*(placeholders_in(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(placeholders_in(v) for v in value)) if value else set()
    return set()


def check_placeholders(value: Any) -> None:
    """Refuse a placeholder the harness does not know (a typo would otherwise be sent as is)."""
    unknown = sorted(n for n in placeholders_in(value) - set(PLACEHOLDERS) if not n.startswith("state."))
    if unknown:
        raise ValueError(f"unknown placeholder {{{unknown[0]}}} (known: {', '.join(PLACEHOLDERS)})")


def render(value: Any, values: Mapping[str, Any]) -> Any:
    """``value`` with its placeholders filled in from ``values``, recursively."""
    if isinstance(value, str):
        whole = _PLACEHOLDER.fullmatch(value)
        if whole and whole.group(1) in values:
            return values[whole.group(1)]
        return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0), value)
    if isinstance(value, dict):
        return {render(k, values): render(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, values) for v in value]
    return value


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
