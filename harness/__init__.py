"""race-harness: prove a webhook handler produces its side effect exactly once under concurrency."""

from .history import Event, History

__all__ = ["Event", "History"]
