"""What every sender shares: the request and result types, the armed-burst lifecycle, URL and clock.

A sender turns prepared requests into timed events in two steps, so that several processes can
agree on one instant: ``Sender.open`` connects and warms (an ``ArmedBurst``); ``ArmedBurst.release``
waits for the instant, sends, reads and returns a ``BurstResult``. ``ArmedBurst`` here holds that
lifecycle once (open, release once, wait, bound in time, close, turn outcomes into events); an
implementation only says how it connects (``_open``) and how its requests go out (``_send``).
Times inside a sender are ``time.perf_counter`` seconds; they become history times when the
events are built.

Answer bodies come from a service the harness does not trust, so they are read as a stream
(``AnswerBody``): the first ``body_limit`` bytes (``ANSWER_BODY_LIMIT``, 64 KiB, unless the sender
is opened with another ``body_limit``) are kept, every byte is counted and hashed, and the event
says so (``Event.body_size``, ``body_sha256``, ``body_truncated``). Reading one answer stops at the
burst's deadline (the answer is cut: ``read: answer still streaming after N s: cut``) or past
``ANSWER_READ_CAP`` bytes (256 MiB: ``read: answer larger than ... bytes: cut``), whichever comes
first; an answer kept in part is never parsed as JSON.
"""

from __future__ import annotations

import hashlib
import json
import selectors
import ssl
import time
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Protocol, Sequence
from urllib.parse import urlsplit

from ..history import Event, History
from harness.stats import ms as _ms
from harness.stats import percentile
from .release import wait_until
from .server_timing import parse_server_timing

ARRIVAL_HEADER = "x-arrival-ns"  # the server's own arrival time, epoch nanoseconds
SERVER_TIMING_HEADER = "server-timing"  # W3C Server-Timing; durations land in Event.meta["server_timing"]
# Bytes of an answer's body kept in its Event (and so in the history and run.json); the rest is read,
# counted and hashed, and the event is marked ``body_truncated``. A sender's ``open(body_limit=...)`` overrides it.
ANSWER_BODY_LIMIT = 64 * 1024
# Bytes read from one answer at most, kept or not: past them the answer is cut and its connection closed
# (an endless, unthrottled answer otherwise ties the read loop up until the deadline).
ANSWER_READ_CAP = 256 * 1024 * 1024
# Bytes one connection's read may take before the read loop turns to the other connections.
READ_TURN = 1024 * 1024


@dataclass(frozen=True)
class PreparedRequest:
    """One request of a burst, ready to send; ``payment``, ``channel`` and ``meta`` go to its Event."""

    method: str
    url: str  # absolute http:// or https:// URL
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    payment: str | None = None
    channel: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass
class BurstResult:
    """What one burst produced.

    ``history`` holds one Event per request in input order (after any events it already had);
    ``events`` is this burst's events alone (``None`` means: all of ``history``).
    ``release_started`` is when the release loop began, on the history's clock (last-byte only);
    ``late`` is how far past the requested release instant the release began (seconds, >= 0).
    """

    history: History
    sync: str
    release_spread: float | None  # seconds, first..last final byte sent
    arrival_spread: float | None  # seconds, first..last X-Arrival-Ns, over the events that had one
    events: list[Event] | None = None
    release_started: float | None = None
    late: float = 0.0

    def _burst_events(self) -> list[Event]:
        return self.history.events if self.events is None else self.events

    def all_responded(self) -> bool:
        """True when every request got a complete response and no error."""
        return all(e.error is None and e.status is not None for e in self._burst_events())

    def summary(self) -> dict[str, Any]:
        """Counts by status and error kind, latency p50/p95/max and spreads, in milliseconds."""
        events = self._burst_events()
        latencies = sorted(e.latency for e in events if e.latency is not None and e.error is None)
        answered = [e for e in events if e.error is None and e.status is not None]
        return {
            "sync": self.sync,
            "requests": len(events),
            "responded": len(answered),
            # string keys: the summary goes into JSON reports and should read back the same
            "statuses": {str(k): v for k, v in sorted(Counter(e.status for e in answered).items())},
            "errors": sum(1 for e in events if e.error is not None),
            "error_kinds": dict(Counter(e.error.split(":", 1)[0] for e in events if e.error is not None)),
            "latency_ms": {
                "p50": _ms(percentile(latencies, 50)),
                "p95": _ms(percentile(latencies, 95)),
                "max": _ms(latencies[-1] if latencies else None),
            },
            "release_spread_ms": _ms(self.release_spread),
            "arrival_spread_ms": _ms(self.arrival_spread),
        }


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str
    port: int

    @property
    def tls(self) -> bool:
        return self.scheme == "https"

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.tls else 80
        return host if self.port == default else f"{host}:{self.port}"


@dataclass
class Outcome:
    """What happened to one request, in perf_counter seconds (turned into an Event at the end).

    Response headers are kept raw here and parsed when the event is built, so the read loop only
    copies bytes.
    """

    connection: int | None = None
    t_release: float | None = None
    t_response: float | None = None
    status: int | None = None
    content_type: str = ""
    arrival_ns: str | None = None
    server_timing: list[str] = field(default_factory=list)  # every Server-Timing header line, raw
    body: bytes = b""  # the answer's body, its first ``body_limit`` bytes when ``body_truncated``
    body_size: int | None = None  # bytes of body read in all (None: not counted, e.g. an outcome made up in a test)
    body_sha256: str | None = None  # of every byte of body read
    body_truncated: bool = False
    error: str | None = None
    cold: bool = False  # the warm-up connection was not kept: this request paid for a fresh connect
    reused: bool = False  # the connection came warm from an earlier burst (a kept-alive pool), not opened for this one
    meta: dict[str, Any] | None = None  # what the sender adds to the event's meta (e.g. how HTTP/2 carried it)


class AnswerTooLarge(ConnectionError):
    """An answer went past ``ANSWER_READ_CAP`` bytes: it is cut and its connection closed."""

    def __init__(self, cap: int) -> None:
        super().__init__(f"answer larger than {cap} bytes ({cap / 2**20:g} MiB): cut")


def still_streaming(since: float | None, now: float | None = None) -> str:
    """The error of an answer whose head came but whose body had not ended at the deadline."""
    now = time.perf_counter() if now is None else now
    return f"read: answer still streaming after {max(0.0, now - (since if since is not None else now)):.1f} s: cut"


class AnswerBody:
    """One answer's body as it streams in: its first ``limit`` bytes kept, every byte counted and hashed.

    ``add`` raises ``AnswerTooLarge`` once more than ``cap`` bytes came (default ``ANSWER_READ_CAP``);
    ``settle`` writes what was read into an Outcome.
    """

    __slots__ = ("_hash", "cap", "kept", "limit", "size")

    def __init__(self, limit: int = ANSWER_BODY_LIMIT, cap: int | None = None) -> None:
        self.limit = max(0, limit)
        self.cap = ANSWER_READ_CAP if cap is None else cap
        self.kept = bytearray()
        self.size = 0
        self._hash = hashlib.sha256()

    def add(self, data: bytes) -> None:
        self.size += len(data)
        self._hash.update(data)
        room = self.limit - len(self.kept)
        if room > 0:
            self.kept += data[:room]
        if self.size > self.cap:
            raise AnswerTooLarge(self.cap)

    @property
    def truncated(self) -> bool:
        return self.size > len(self.kept)

    def settle(self, outcome: Outcome) -> None:
        outcome.body = bytes(self.kept)
        outcome.body_size = self.size
        outcome.body_sha256 = self._hash.hexdigest()
        outcome.body_truncated = self.truncated


@lru_cache(maxsize=4096)  # a swarm's waves send to a handful of URLs, again and again
def split_url(url: str) -> tuple[Origin, str]:
    """(origin, request target) of an absolute http(s) URL; ValueError for anything else."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an absolute http(s) URL: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Origin(parts.scheme, parts.hostname, port), target


def plain(exc: BaseException) -> str:
    """An exception as ``Type: message`` for an Event's error."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def remaining(deadline: float) -> float:
    """Seconds left before ``deadline`` (perf_counter); TimeoutError when none are."""
    left = deadline - time.perf_counter()
    if left <= 0:
        raise TimeoutError("the burst's overall timeout ran out")
    return left


class Sender(Protocol):
    """Opens armed bursts; one implementation per sync mode, registered in ``harness.senders.SENDERS``."""

    def open(self, requests: Sequence[PreparedRequest], *, timeout: float = 30.0,
             warmup_path: str | None = "/healthz", verify_tls: bool | str = True,
             body_limit: int = ANSWER_BODY_LIMIT) -> "ArmedBurst":
        """Connect and warm for ``requests`` (bounded by ``timeout``); per-request failures are kept
        for the events, misuse (a URL that is not absolute http/https) raises ValueError.
        ``body_limit``: bytes of each answer's body kept in its event (``ANSWER_BODY_LIMIT``)."""
        ...


class ArmedBurst(ABC):
    """Requests whose connections are open and warm, waiting to be released once.

    Constructing one opens it; a sender's ``open`` returns one. Implementations provide ``_open``,
    ``_send``, ``close`` (which must work after an ``_open`` that failed part-way), ``ready`` and
    ``errors``; the lifecycle around them is here, once.
    """

    sync: str = ""

    def __init__(self, requests: Sequence[PreparedRequest], *, timeout: float = 30.0,
                 warmup_path: str | None = "/healthz", verify_tls: bool | str = True,
                 body_limit: int = ANSWER_BODY_LIMIT) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if body_limit < 0:
            raise ValueError("body_limit must not be negative")
        self.body_limit = body_limit  # bytes of each answer's body kept in its event
        self.opened_at = time.perf_counter()  # the history's default time 0
        self.requests = list(requests)
        self.timeout = timeout
        self.targets = [split_url(r.url) for r in self.requests]  # ValueError on misuse, before any I/O
        self._released = False
        try:
            self._open(warmup_path, verify_tls)
        except BaseException:
            self.close()
            raise

    @abstractmethod
    def _open(self, warmup_path: str | None, verify_tls: bool | str) -> None:
        """Connect and warm every request by ``opened_at + timeout``; per-request failures go into
        the outcomes, not out as exceptions."""

    @property
    @abstractmethod
    def ready(self) -> int:
        """How many requests are ready to go (the others already carry their error)."""

    @property
    @abstractmethod
    def errors(self) -> list[str]:
        """The errors of the requests that are not ready."""

    @abstractmethod
    def close(self) -> None:
        """Drop every connection; safe to call more than once."""

    @abstractmethod
    def _send(self, deadline: float, settle: float) -> tuple[list[Outcome], float | None]:
        """Send and read every request by ``deadline``; one Outcome per request in input order, and
        the perf_counter time the release loop began (None if the sender has no such loop)."""

    def release(self, at: float | None = None, history: History | None = None, *,
                clock_origin: float | None = None, deadline: float | None = None,
                settle: float = 0.0) -> BurstResult:
        """Release at wall-clock ``at`` (epoch seconds; now if None or past) and return the result.

        Sending and reading are bounded by ``deadline`` (a perf_counter value; default: the release
        instant plus the ``timeout`` given at opening). ``settle`` pauses between sending what a
        sender sends ahead (e.g. the prefixes) and the release itself. Events are appended to
        ``history`` (a new one if None) on its clock: time 0 is ``clock_origin`` (a perf_counter
        value) when given, else the history's ``origin_wall`` when set, else the opening instant.
        """
        if self._released:
            raise RuntimeError("an armed burst is released once")
        self._released = True
        try:
            late = wait_until(at) if at is not None else 0.0
            if deadline is None:
                deadline = time.perf_counter() + self.timeout
            outcomes, release_started = self._send(deadline, settle)
        finally:
            self.close()
        history, origin = map_clock(history, clock_origin, self.opened_at, self.sync)
        offset = len(history.events)
        events = [to_event(offset + i, r, o, origin) for i, (r, o) in enumerate(zip(self.requests, outcomes))]
        history.extend(events)
        return BurstResult(history=history, sync=self.sync, release_spread=history.release_spread(events),
                           arrival_spread=history.arrival_spread(events), events=events,
                           release_started=None if release_started is None else release_started - origin,
                           late=late)


class StatelessSender:
    """A sender that keeps nothing between bursts: ``open`` constructs one ``armed`` burst class.

    A sender with state of its own (say, warm connections kept across waves) is a class of its own.
    """

    def __init__(self, armed: type[ArmedBurst]) -> None:
        self.armed = armed

    def open(self, requests: Sequence[PreparedRequest], *, timeout: float = 30.0,
             warmup_path: str | None = "/healthz", verify_tls: bool | str = True,
             body_limit: int = ANSWER_BODY_LIMIT) -> ArmedBurst:
        return self.armed(requests, timeout=timeout, warmup_path=warmup_path, verify_tls=verify_tls,
                          body_limit=body_limit)


def map_clock(history: History | None, clock_origin: float | None, opened: float, sync: str) -> tuple[History, float]:
    """The history to append to and the perf_counter value that is its time 0."""
    wall_now, perf_now = time.time(), time.perf_counter()
    if clock_origin is not None:
        origin = clock_origin
    elif history is not None and history.origin_wall:
        origin = perf_now - (wall_now - history.origin_wall)
    else:
        origin = opened
    if history is None:
        history = History(sync=sync)
    elif not history.events:
        history.sync = sync
    if not history.origin_wall:
        history.origin_wall = wall_now - (perf_now - origin)
    return history, origin


def to_event(index: int, request: PreparedRequest, outcome: Outcome, origin: float) -> Event:
    meta = dict(request.meta)
    if outcome.cold:
        meta.setdefault("warm", False)
    if outcome.reused:
        meta["reused"] = True
    if outcome.meta:
        meta.update(outcome.meta)
    if outcome.server_timing:
        durations = parse_server_timing(outcome.server_timing)
        if durations:
            meta["server_timing"] = durations
    return Event(
        index=index,
        payment=request.payment,
        channel=request.channel,
        connection=outcome.connection,
        t_release=None if outcome.t_release is None else outcome.t_release - origin,
        t_response=None if outcome.t_response is None else outcome.t_response - origin,
        status=outcome.status,
        body=_answer_body(outcome) if outcome.status is not None else None,
        body_size=outcome.body_size if outcome.status is not None else None,
        body_sha256=outcome.body_sha256 if outcome.status is not None else None,
        body_truncated=outcome.body_truncated,
        error=outcome.error,
        server_arrival=_parse_arrival(outcome.arrival_ns),
        meta=meta,
    )


def _answer_body(outcome: Outcome) -> Any:
    """An answer's body for its event: parsed when whole; text when kept in part or cut (never half-parsed JSON)."""
    if outcome.body_truncated or outcome.error is not None:
        return outcome.body.decode("utf-8", errors="replace")
    return _parse_body(outcome.content_type, outcome.body)


def _parse_body(content_type: str, raw: bytes) -> Any:
    """JSON when the server says JSON or the body is a JSON object/array; otherwise text."""
    text = raw.decode("utf-8", errors="replace")
    # A bare "1" or "true" sent as text/plain stays text; only structured bodies are sniffed.
    if "json" in content_type.lower() or text.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text


def _parse_arrival(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return int(value.strip()) / 1e9
    except ValueError:
        return None


def tls_pending(sock: Any) -> bool:
    """Decrypted bytes a TLS socket holds that select() cannot see."""
    return isinstance(sock, ssl.SSLSocket) and sock.pending() > 0


def read_all(conns: Sequence[Any], deadline: float, drain: Callable[[Any], bool]) -> set[Any]:
    """Read every connection in one selector loop until ``drain(conn)`` says it is finished, or the deadline.

    Each ``conn`` has a ``sock``; returns the connections still unfinished at the deadline.
    """
    pending: set[Any] = set()
    with selectors.DefaultSelector() as selector:
        for conn in conns:
            assert conn.sock is not None
            conn.sock.setblocking(False)
            selector.register(conn.sock, selectors.EVENT_READ, conn)
            pending.add(conn)
        while pending:
            left = deadline - time.perf_counter()
            if left <= 0:
                break
            for key, _ in selector.select(left):
                conn = key.data
                if drain(conn):
                    selector.unregister(key.fileobj)
                    pending.discard(conn)
    return pending

