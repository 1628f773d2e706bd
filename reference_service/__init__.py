"""A reference PhonePe receipt service with the seed's vulnerable and atomic receipt paths.

The names below are imported on first use, so that ``reference_service.config`` (its flags, stdlib
only) can be read where the service's own packages (the `reference` extra) are not installed.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ChargeStore", "ServiceConfig", "create_app", "open_store"]
_HOMES = {"create_app": ".app", "ServiceConfig": ".config", "ChargeStore": ".store", "open_store": ".store"}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'reference_service' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_HOMES[name], __name__), name)
