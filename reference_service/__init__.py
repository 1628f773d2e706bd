"""A reference PhonePe receipt service with the seed's vulnerable and atomic receipt paths."""

from .app import create_app
from .config import ServiceConfig
from .store import ChargeStore, open_store

__all__ = ["ChargeStore", "ServiceConfig", "create_app", "open_store"]
