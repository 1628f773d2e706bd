"""Burst senders: fire prepared HTTP requests so that they reach the server together.

``SENDERS`` maps each sync mode to its sender; a new sender is a module beside these and one line
there. Every sender opens an ``ArmedBurst`` (connections open and warm) that is released once, at
an instant or now, and returns a ``BurstResult`` with one timed Event per request in input order.
``fire`` is the one-call form: open, then release now.

Every failure of a single request (refused, reset, timeout, bad response) is recorded in its
``Event.error`` with a phase prefix (``connect:``, ``warm-up:``, ``send:``, ``release:``,
``read:``, ``timeout:``); only misuse (an unknown ``sync``, a URL that is not absolute
http/https) raises. ``verify_tls`` is how an ``https://`` target's certificate is trusted
(``harness.tls``): True, the system's CAs; a path, the CAs in that PEM file; False, none checked.
A ``Server-Timing`` response header's durations land in
``Event.meta["server_timing"]`` (``{name: ms}``). Answer bodies are streamed and kept up to
``body_limit`` bytes (``base.ANSWER_BODY_LIMIT``, 64 KiB), the rest counted and hashed
(``Event.body_size``, ``body_sha256``, ``body_truncated``); an answer still streaming at the
deadline, or past ``base.ANSWER_READ_CAP`` bytes (256 MiB), is cut with a ``read:`` error.
"""

from __future__ import annotations

import time
from typing import Sequence

from ..history import History
from .base import ARRIVAL_HEADER, ArmedBurst, BurstResult, PreparedRequest, Sender, StatelessSender
from .last_byte import LastByteBurst
from .naive import NaiveBurst
from .single_packet import SinglePacketBurst

SENDERS: dict[str, Sender] = {
    "last-byte": StatelessSender(LastByteBurst),
    "naive": StatelessSender(NaiveBurst),
    "single-packet": StatelessSender(SinglePacketBurst),
}

__all__ = ["ARRIVAL_HEADER", "ArmedBurst", "BurstResult", "PreparedRequest", "SENDERS", "Sender", "fire", "sender"]


def sender(sync: str) -> Sender:
    """The registered sender for sync mode ``sync``; ValueError for an unknown one."""
    try:
        return SENDERS[sync]
    except KeyError:
        raise ValueError(f"sync must be one of {tuple(SENDERS)}, not {sync!r}") from None


def fire(
    requests: Sequence[PreparedRequest],
    *,
    sync: str = "last-byte",
    timeout: float = 30.0,
    warmup_path: str | None = "/healthz",
    verify_tls: bool | str = True,
    history: History | None = None,
    clock_origin: float | None = None,
    settle: float = 0.0,
    body_limit: int | None = None,
) -> BurstResult:
    """Send ``requests`` as one burst now and return one timed Event per request, in input order.

    ``timeout`` bounds the whole burst: resolve, connect, TLS, warm-up, send and read. Requests may
    go to different hosts. ``warmup_path`` is the path of the ``GET`` that warms each connection
    first (its response is read and dropped); ``None`` skips warming. ``settle`` is an extra pause
    (seconds) between sending what goes ahead (the last-byte prefixes) and the release, for servers
    that should have read the prefixes first. ``body_limit``: bytes of each answer's body kept in its
    event (None: the sender's default, ``base.ANSWER_BODY_LIMIT``).

    Clock: event times are ``time.perf_counter()`` seconds minus the clock origin: ``clock_origin``
    when given; else, when ``history`` already has an ``origin_wall``, the perf time matching it (so
    several bursts share one clock, to within the wall clock's drift); else the moment ``fire``
    started. ``history.origin_wall`` is set when unset. Events are appended to ``history`` when
    given, with ``index`` = position in the history; ``connection`` numbers the burst's
    connections from 0 (``None`` when none could be opened); ``history.sync`` is set while the
    history is empty.
    """
    chosen = sender(sync)
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    deadline = time.perf_counter() + timeout
    # Only when given: a sender written before bodies were bounded still opens without it.
    limit = {} if body_limit is None else {"body_limit": body_limit}
    armed = chosen.open(requests, timeout=timeout, warmup_path=warmup_path, verify_tls=verify_tls, **limit)
    return armed.release(None, history, clock_origin=clock_origin, deadline=deadline, settle=settle)
