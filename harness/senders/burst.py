"""The burst sender's public names, kept here for the code that imports them from ``harness.senders.burst``.

The senders live in ``harness.senders`` (the interface in ``senders/base.py``, the HTTP/1.1
last-byte sender in ``senders/last_byte.py``, the naive httpx yardstick in ``senders/naive.py``);
``fire`` there opens an armed burst and releases it now. ``HeldBurst`` is the last-byte sender's
armed burst under its older name and call shape.
"""

from __future__ import annotations

from typing import Sequence

from harness.history import History
from harness.senders import SENDERS, fire
from harness.senders.base import ARRIVAL_HEADER, BurstResult, PreparedRequest

SYNC_MODES = tuple(SENDERS)

__all__ = ["ARRIVAL_HEADER", "BurstResult", "HeldBurst", "PreparedRequest", "SYNC_MODES", "fire"]


class HeldBurst:
    """Warm last-byte connections for ``requests``, waiting to be released at an absolute time.

    ``SENDERS["last-byte"].open(...)`` under the older name; ``release`` returns ``(result, late)``
    where the armed burst's own ``release`` returns the result (with ``result.late``).
    """

    def __init__(self, requests: Sequence[PreparedRequest], *, timeout: float = 30.0,
                 warmup_path: str | None = "/healthz", verify_tls: bool | str = True,
                 body_limit: int | None = None) -> None:
        """``body_limit``: bytes of each answer's body kept (None: the sender's ``ANSWER_BODY_LIMIT``)."""
        limit = {} if body_limit is None else {"body_limit": body_limit}
        self._armed = SENDERS["last-byte"].open(requests, timeout=timeout, warmup_path=warmup_path,
                                                verify_tls=verify_tls, **limit)

    @property
    def ready(self) -> int:
        """How many requests have a warm connection (the others already carry their error)."""
        return self._armed.ready

    @property
    def errors(self) -> list[str]:
        return self._armed.errors

    def close(self) -> None:
        self._armed.close()

    def release(self, at: float | None, history: History) -> tuple[BurstResult, float]:
        """Release at wall-clock ``at`` (now if None or past); return the result and how late (s) it went.

        The opening ``timeout`` bounds sending and reading from the release on. Events are appended
        to ``history`` on its clock (``history.origin_wall`` set by the caller puts several
        processes on one clock).
        """
        result = self._armed.release(at, history)
        return result, result.late
