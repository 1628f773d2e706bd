"""The one burst sender: fire prepared HTTP requests so that they reach the server together.

``fire`` uses last-byte synchronisation by default:

1. open one TCP (or TLS) connection per request, with ``TCP_NODELAY``, and warm it with one cheap
   request (``GET /healthz`` by default) read back in full, so that connect, handshake and slow
   start are all over before the burst;
2. send every request but its final byte;
3. release all final bytes back to back from one thread (``t_release`` is read right after each
   ``send``);
4. read every response (one ``selectors`` loop, ``h11`` for framing) within the overall timeout.

A server cannot act on a request before its final byte arrives, so the requests become complete
on the server within the time one Python loop takes to send N single bytes (see
``benchmarks/burst_spread.py`` for the figures on this machine). ``sync="naive"`` fires the same
requests with ``httpx.AsyncClient`` and ``asyncio.gather`` over warm connections, for comparison.

``fire`` is synchronous and needs no event loop (plain threads, Locust/gevent). Every failure of
a single request (refused, reset, timeout, bad response) is recorded in its ``Event.error`` with a
phase prefix (``connect:``, ``warm-up:``, ``send:``, ``release:``, ``read:``, ``timeout:``); only
misuse (an unknown ``sync``, a URL that is not absolute http/https) raises.
"""

from __future__ import annotations

import asyncio
import json
import selectors
import socket
import ssl
import struct
import sys
import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence
from urllib.parse import urlsplit

import h11

from .history import Event, History
from .stats import ms as _ms
from .stats import percentile

SYNC_MODES = ("last-byte", "naive")
ARRIVAL_HEADER = "x-arrival-ns"  # the server's own arrival time, epoch nanoseconds
_MAX_CONNECT_THREADS = 64  # connect + TLS + warm-up run in parallel, bounded
_READ_CHUNK = 65536
_FLUSH_POLL = 0.0002  # seconds between checks that every prefix has left the send queue
_SIOCOUTQNSD = 0x894B  # Linux: bytes in the send queue not yet sent
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


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
    """What one ``fire`` produced.

    ``history`` holds one Event per request in input order (after any events it already had);
    ``events`` is this burst's events alone (``None`` means: all of ``history``).
    ``release_started`` is when the release loop began, on the history's clock (last-byte only).
    """

    history: History
    sync: str
    release_spread: float | None  # seconds, first..last final byte sent
    arrival_spread: float | None  # seconds, first..last X-Arrival-Ns, over the events that had one
    events: list[Event] | None = None
    release_started: float | None = None

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


def fire(
    requests: Sequence[PreparedRequest],
    *,
    sync: str = "last-byte",
    timeout: float = 30.0,
    warmup_path: str | None = "/healthz",
    verify_tls: bool = True,
    history: History | None = None,
    clock_origin: float | None = None,
    settle: float = 0.0,
) -> BurstResult:
    """Send ``requests`` as one burst and return one timed Event per request, in input order.

    ``timeout`` bounds the whole burst: resolve, connect, TLS, warm-up, send and read. Requests may
    go to different hosts; each gets its own connection to its own origin. ``warmup_path`` is the
    path of the ``GET`` each connection sends first (its response is read and dropped); ``None``
    skips warming. ``settle`` is an extra pause (seconds) between sending the prefixes and releasing
    the final bytes, for servers that should have read the prefixes first.

    Clock: event times are ``time.perf_counter()`` seconds minus the clock origin. The origin is
    ``clock_origin`` (a ``perf_counter`` value) when given; else, when ``history`` already has an
    ``origin_wall``, the perf time matching it (so several bursts share one clock, to within the
    wall clock's drift); else the moment ``fire`` started. ``history.origin_wall`` is set to the
    epoch time of the origin when it is unset. Events are appended to ``history`` when given, with
    ``index`` = position in the history; ``connection`` numbers the burst's connections from 0
    (``None`` when none could be opened); ``history.sync`` is set while the history is empty.

    In naive mode ``t_release`` is the moment the request was handed to httpx (it is not when its
    last byte left), and ``connection`` numbers the pool connections in the order they answered.
    Naive mode runs its own ``asyncio.run`` (on a helper thread if a loop is already running); it
    is a yardstick, not meant for gevent-patched processes.
    """
    if sync not in SYNC_MODES:
        raise ValueError(f"sync must be one of {SYNC_MODES}, not {sync!r}")
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    started = time.perf_counter()
    deadline = started + timeout
    targets = [_split_url(r.url) for r in requests]  # raises ValueError on misuse, before any I/O
    history, origin = _clock(history, clock_origin, started, sync)

    if sync == "naive":
        outcomes = _fire_naive(requests, targets, deadline, warmup_path, verify_tls)
        release_started = None
    else:
        outcomes, release_started = _fire_last_byte(requests, targets, deadline, warmup_path, verify_tls, settle)

    offset = len(history.events)
    events = [_to_event(offset + i, r, o, origin) for i, (r, o) in enumerate(zip(requests, outcomes))]
    history.extend(events)
    return BurstResult(
        history=history,
        sync=sync,
        release_spread=history.release_spread(events),
        arrival_spread=history.arrival_spread(events),
        events=events,
        release_started=None if release_started is None else release_started - origin,
    )


# -- plain data shared by both modes ----------------------------------------------------------


@dataclass(frozen=True)
class _Origin:
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
class _Outcome:
    """What happened to one request, in perf_counter seconds (turned into an Event at the end)."""

    connection: int | None = None
    t_release: float | None = None
    t_response: float | None = None
    status: int | None = None
    content_type: str = ""
    arrival_ns: str | None = None
    body: bytes = b""
    error: str | None = None
    cold: bool = False  # the warm-up connection was not kept: this request paid for a fresh connect


def _split_url(url: str) -> tuple[_Origin, str]:
    """(origin, request target) of an absolute http(s) URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an absolute http(s) URL: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return _Origin(parts.scheme, parts.hostname, port), target


def _clock(history: History | None, clock_origin: float | None, started: float, sync: str) -> tuple[History, float]:
    """The history to append to and the perf_counter value that is its time 0."""
    wall_now, perf_now = time.time(), time.perf_counter()
    if clock_origin is not None:
        origin = clock_origin
    elif history is not None and history.origin_wall:
        origin = perf_now - (wall_now - history.origin_wall)
    else:
        origin = started
    if history is None:
        history = History(sync=sync)
    elif not history.events:
        history.sync = sync
    if not history.origin_wall:
        history.origin_wall = wall_now - (perf_now - origin)
    return history, origin


def _to_event(index: int, request: PreparedRequest, outcome: _Outcome, origin: float) -> Event:
    meta = dict(request.meta)
    if outcome.cold:
        meta.setdefault("warm", False)
    return Event(
        index=index,
        payment=request.payment,
        channel=request.channel,
        connection=outcome.connection,
        t_release=None if outcome.t_release is None else outcome.t_release - origin,
        t_response=None if outcome.t_response is None else outcome.t_response - origin,
        status=outcome.status,
        body=_parse_body(outcome.content_type, outcome.body) if outcome.status is not None else None,
        error=outcome.error,
        server_arrival=_parse_arrival(outcome.arrival_ns),
        meta=meta,
    )


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




def _remaining(deadline: float) -> float:
    remaining = deadline - time.perf_counter()
    if remaining <= 0:
        raise TimeoutError("the burst's overall timeout ran out")
    return remaining


# -- last-byte mode ---------------------------------------------------------------------------


class _Conn:
    """One connection carrying one burst request, and the response coming back on it."""

    def __init__(self, position: int, origin: _Origin, target: str, request: PreparedRequest) -> None:
        self.origin = origin
        self.target = target
        self.request = request
        self.position = position
        self.out = _Outcome()
        self.http = h11.Connection(h11.CLIENT)
        self.sock: socket.socket | None = None
        self.final: bytes = b""  # the withheld last byte
        self._chunks: list[bytes] = []
        self._lock = threading.Lock()  # adopt() runs on a worker thread, close() on the caller's
        self._closed = False

    def adopt(self, sock: socket.socket) -> None:
        """Take ownership of a new socket, unless the burst has already given up on this one."""
        with self._lock:
            if self._closed:
                sock.close()
                raise ConnectionAbortedError("the burst gave up on this connection")
            self.sock = sock
            self.out.connection = self.position  # numbered only once a connection exists

    def reconnect_cold(self, sock: socket.socket) -> None:
        """Replace a connection the server closed after the warm-up."""
        with self._lock:
            old, self.sock = self.sock, None
        if old is not None:
            old.close()
        self.http = h11.Connection(h11.CLIENT)
        self.adopt(sock)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()

    def start_response(self) -> None:
        self.out.status, self.out.content_type, self.out.arrival_ns, self.out.body = None, "", None, b""
        self._chunks = []

    def feed(self, data: bytes) -> bool:
        """Hand received bytes (``b""`` = the peer closed) to h11; True once a whole response is in."""
        self.http.receive_data(data)
        while True:
            event = self.http.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return False
            if isinstance(event, h11.Response):
                self._take_head(event)
            elif isinstance(event, h11.Data):
                self._chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                self.out.body = b"".join(self._chunks)
                return True
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("the server closed the connection before responding")
            # InformationalResponse (100 Continue ...) carries nothing we keep.

    def _take_head(self, response: h11.Response) -> None:
        self.out.status = response.status_code
        for name, value in response.headers:
            if name == b"content-type":
                self.out.content_type = value.decode("latin-1")
            elif name == ARRIVAL_HEADER.encode():
                self.out.arrival_ns = value.decode("latin-1")


def _fire_last_byte(
    requests: Sequence[PreparedRequest],
    targets: list[tuple[_Origin, str]],
    deadline: float,
    warmup_path: str | None,
    verify_tls: bool,
    settle: float,
) -> tuple[list[_Outcome], float | None]:
    conns = [_Conn(i, origin, target, r) for i, (r, (origin, target)) in enumerate(zip(requests, targets))]
    release_started = None
    try:
        _open_all(conns, deadline, warmup_path, verify_tls)
        ready = _send_prefixes([c for c in conns if c.out.error is None], deadline)
        _wait_prefixes_sent(ready, deadline)
        if settle > 0:
            time.sleep(max(0.0, min(settle, deadline - time.perf_counter())))
        release_started = time.perf_counter()
        released = _release(ready)
        _read_responses(released, deadline)
    finally:
        for conn in conns:
            conn.close()
    return [c.out for c in conns], release_started


def _open_all(conns: list[_Conn], deadline: float, warmup_path: str | None, verify_tls: bool) -> None:
    """Resolve each origin once, then connect and warm every connection in parallel, all bounded."""
    if not conns:
        return
    ssl_context = _ssl_context(verify_tls) if any(c.origin.tls for c in conns) else None
    pool = ThreadPoolExecutor(max_workers=min(len(conns), _MAX_CONNECT_THREADS), thread_name_prefix="burst-open")
    try:
        # Resolutions are queued first, so no worker waits on one that has not started.
        resolved = {o: pool.submit(_resolve, o) for o in dict.fromkeys(c.origin for c in conns)}
        opening = {
            pool.submit(_open_one, c, resolved[c.origin], deadline, warmup_path, ssl_context): c for c in conns
        }
        _, not_done = wait_futures(opening, timeout=max(0.0, deadline - time.perf_counter()))
        for future, conn in opening.items():
            conn.out.error = conn.out.error or _open_error(future, not_done)
            if conn.out.error is not None:
                conn.close()
    finally:
        # Workers still running end by themselves at the deadline; close() above makes them drop
        # any socket they open late.
        pool.shutdown(wait=False, cancel_futures=True)


def _open_error(future: Future, not_done: set) -> str | None:
    if future in not_done:
        return "timeout: connecting and warming did not finish within the timeout"
    exc = future.exception()
    return None if exc is None else _describe(exc)


def _ssl_context(verify: bool) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["http/1.1"])
    return context


def _resolve(origin: _Origin) -> list[tuple]:
    try:
        return socket.getaddrinfo(origin.host, origin.port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise _PhaseError("connect", exc) from exc


class _PhaseError(Exception):
    """An error tagged with the burst phase it happened in."""

    def __init__(self, phase: str, cause: BaseException) -> None:
        super().__init__(f"{phase}: {_plain(cause)}")
        self.phase = phase


def _plain(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _describe(exc: BaseException) -> str:
    if isinstance(exc, _PhaseError):
        return str(exc)
    if isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError since 3.10
        return f"timeout: connecting or warming up: {_plain(exc)}"
    return f"connect: {_plain(exc)}"


def _open_one(
    conn: _Conn, resolved: Future, deadline: float, warmup_path: str | None, ssl_context: ssl.SSLContext | None
) -> None:
    """Connect, and warm with one GET whose response is read in full; runs on a worker thread."""
    try:
        addresses = resolved.result(timeout=_remaining(deadline))
    except FutureTimeout as exc:  # a distinct class before Python 3.11
        raise TimeoutError("resolving the host did not finish within the timeout") from exc
    conn.adopt(_connect(conn.origin, addresses, deadline, ssl_context))
    if warmup_path is None:
        return
    try:
        _send_warmup(conn, warmup_path, deadline)
    except (TimeoutError, _PhaseError):
        raise
    except (OSError, h11.ProtocolError) as exc:
        raise _PhaseError("warm-up", exc) from exc
    if conn.http.our_state is h11.DONE and conn.http.their_state is h11.DONE:
        conn.http.start_next_cycle()
    else:
        # The server will not keep this connection; the request gets a fresh, cold one.
        conn.reconnect_cold(_connect(conn.origin, addresses, deadline, ssl_context))
        conn.out.cold = True
    conn.start_response()


def _connect(
    origin: _Origin, addresses: list[tuple], deadline: float, ssl_context: ssl.SSLContext | None
) -> socket.socket:
    """A connected, NODELAY (and TLS-wrapped) socket to the first address that accepts."""
    last_error: BaseException = ConnectionError("no address")
    for family, kind, proto, _, sockaddr in addresses:
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(_remaining(deadline))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.connect(sockaddr)
            if ssl_context is not None:
                sock = ssl_context.wrap_socket(sock, server_hostname=origin.host)
            return sock
        except TimeoutError:
            sock.close()
            raise
        except (OSError, ssl.SSLError) as exc:
            sock.close()
            last_error = exc
    raise _PhaseError("connect", last_error)


def _send_warmup(conn: _Conn, path: str, deadline: float) -> None:
    request = h11.Request(
        method="GET", target=path, headers=[("Host", conn.origin.host_header), ("Connection", "keep-alive")]
    )
    sock = conn.sock
    assert sock is not None
    sock.settimeout(_remaining(deadline))
    sock.sendall(conn.http.send(request) + conn.http.send(h11.EndOfMessage()))
    while True:
        sock.settimeout(_remaining(deadline))
        if conn.feed(sock.recv(_READ_CHUNK)):
            return


def _serialise(conn: _Conn) -> bytes:
    """The request's bytes on the wire, as h11 frames them (and as this connection's h11 expects)."""
    request = conn.request
    headers = list(request.headers)
    names = {name.lower() for name, _ in headers}
    if "host" not in names:
        headers.insert(0, ("Host", conn.origin.host_header))
    if "content-length" not in names and "transfer-encoding" not in names:
        if request.body or request.method.upper() in _BODY_METHODS:
            headers.append(("Content-Length", str(len(request.body))))
    if "connection" not in names:
        headers.append(("Connection", "keep-alive"))
    wire = conn.http.send(h11.Request(method=request.method, target=conn.target, headers=headers))
    if request.body:
        wire += conn.http.send(h11.Data(data=request.body))
    return wire + conn.http.send(h11.EndOfMessage())


def _send_prefixes(conns: list[_Conn], deadline: float) -> list[_Conn]:
    """Send all but the final byte of each request; return the connections ready for release."""
    ready = []
    for conn in conns:
        try:
            wire = _serialise(conn)
        except h11.LocalProtocolError as exc:
            conn.out.error = f"send: invalid request: {exc}"
            continue
        try:
            assert conn.sock is not None
            conn.sock.settimeout(_remaining(deadline))
            conn.sock.sendall(wire[:-1])
        except TimeoutError as exc:
            conn.out.error = f"timeout: sending the request: {_plain(exc)}"
            continue
        except OSError as exc:
            conn.out.error = f"send: {_plain(exc)}"
            continue
        conn.final = wire[-1:]
        ready.append(conn)
    return ready


def _wait_prefixes_sent(conns: list[_Conn], deadline: float) -> None:
    """Wait (bounded) until no prefix is still queued unsent in the kernel.

    A final byte queued behind an unsent prefix (large body, small window) would leave when the
    prefix does, not at release; on Linux SIOCOUTQNSD tells. Elsewhere this is a no-op.
    """
    if not sys.platform.startswith("linux") or not conns:
        return
    import fcntl  # Linux only, hence imported here

    pending = [c for c in conns if c.sock is not None]
    now = time.perf_counter()
    limit = now + (deadline - now) / 2  # leave the other half of the time for the responses
    while pending and time.perf_counter() < limit:
        still = []
        for conn in pending:
            try:
                unsent = struct.unpack("i", fcntl.ioctl(conn.sock.fileno(), _SIOCOUTQNSD, b"\0\0\0\0"))[0]
            except (OSError, ValueError):
                unsent = 0  # cannot tell: do not wait on it
            if unsent:
                still.append(conn)
        pending = still
        if pending:
            time.sleep(_FLUSH_POLL)


def _release(conns: list[_Conn]) -> list[_Conn]:
    """Send every final byte back to back; the loop does nothing else, so it stays tight."""
    perf = time.perf_counter
    sends = []
    for conn in conns:
        if conn.sock is not None:
            # Non-blocking: a send on a socket with a timeout polls first (a second syscall per
            # byte), and a full send buffer must fail at once rather than stall the release.
            conn.sock.setblocking(False)
            sends.append((conn, conn.sock.send, conn.final))
    released = []
    for conn, send, final in sends:
        try:
            send(final)
        except OSError as exc:
            conn.out.error = f"release: {_plain(exc)}"
            continue
        conn.out.t_release = perf()
        released.append(conn)
    return released


def _read_responses(conns: list[_Conn], deadline: float) -> None:
    """Read every response in one selector loop; whatever is unfinished at the deadline times out."""
    pending: set[_Conn] = set()
    with selectors.DefaultSelector() as selector:
        for conn in conns:
            assert conn.sock is not None
            conn.sock.setblocking(False)
            selector.register(conn.sock, selectors.EVENT_READ, conn)
            pending.add(conn)
        while pending:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            for key, _ in selector.select(remaining):
                conn = key.data
                if _drain(conn):
                    selector.unregister(key.fileobj)
                    pending.discard(conn)
    for conn in pending:
        conn.out.error = "timeout: no complete response within the timeout"


def _drain(conn: _Conn) -> bool:
    """Read what is there without blocking; True once this connection is finished (or failed)."""
    assert conn.sock is not None
    # Loop until the socket would block: TLS can hold decrypted bytes that select() cannot see.
    while True:
        try:
            data = conn.sock.recv(_READ_CHUNK)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return False
        except OSError as exc:
            conn.out.error = f"read: {_plain(exc)}"
            return True
        try:
            if conn.feed(data):
                conn.out.t_response = time.perf_counter()
                return True
        except (h11.ProtocolError, ConnectionError) as exc:
            conn.out.error = f"read: {_plain(exc)}"
            return True
        if not data:
            conn.out.error = "read: the server closed the connection before the response was complete"
            return True


# -- naive mode -------------------------------------------------------------------------------


def _fire_naive(
    requests: Sequence[PreparedRequest],
    targets: list[tuple[_Origin, str]],
    deadline: float,
    warmup_path: str | None,
    verify_tls: bool,
) -> list[_Outcome]:
    outcomes = [_Outcome() for _ in requests]
    if requests:
        _run_sync(lambda: _naive_burst(requests, targets, outcomes, deadline, warmup_path, verify_tls))
    return outcomes


def _run_sync(make_coroutine: Callable[[], Any]) -> None:
    """asyncio.run, also when called from inside a running loop (then on a thread of its own)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(make_coroutine())
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="burst-naive") as pool:
        pool.submit(lambda: asyncio.run(make_coroutine())).result()


async def _naive_burst(
    requests: Sequence[PreparedRequest],
    targets: list[tuple[_Origin, str]],
    outcomes: list[_Outcome],
    deadline: float,
    warmup_path: str | None,
    verify_tls: bool,
) -> None:
    import httpx  # only naive mode needs it

    size = len(requests)
    limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
    remaining = max(0.001, deadline - time.perf_counter())
    async with httpx.AsyncClient(limits=limits, verify=verify_tls, timeout=remaining) as client:
        if warmup_path is not None:
            await _naive_warm(client, targets, warmup_path, deadline)
        streams: dict[int, int] = {}
        burst = asyncio.gather(*(_naive_one(client, r, o, streams) for r, o in zip(requests, outcomes)))
        try:
            await asyncio.wait_for(burst, timeout=max(0.001, deadline - time.perf_counter()))
        except asyncio.TimeoutError:
            pass
    for outcome in outcomes:
        if outcome.t_response is None and outcome.error is None:
            outcome.error = "timeout: no complete response within the timeout"


async def _naive_warm(client: Any, targets: list[tuple[_Origin, str]], path: str, deadline: float) -> None:
    """One concurrent GET per request, so the pool holds as many warm connections per origin."""

    async def warm(origin: _Origin) -> None:
        try:
            await client.get(f"{origin.scheme}://{origin.host_header}{path}")
        except Exception:  # noqa: BLE001 - a failed warm-up shows again, and is recorded, in the burst
            pass

    try:
        await asyncio.wait_for(
            asyncio.gather(*(warm(origin) for origin, _ in targets)),
            timeout=max(0.001, deadline - time.perf_counter()),
        )
    except asyncio.TimeoutError:
        pass


async def _naive_one(client: Any, request: PreparedRequest, outcome: _Outcome, streams: dict[int, int]) -> None:
    import httpx

    outcome.t_release = time.perf_counter()  # handed to httpx; not when its last byte left
    try:
        response = await client.request(
            request.method, request.url, headers=list(request.headers), content=request.body
        )
    except httpx.TimeoutException as exc:
        outcome.error = f"timeout: {_plain(exc)}"
        return
    except httpx.ConnectError as exc:
        outcome.error = f"connect: {_plain(exc)}"
        return
    except (httpx.HTTPError, OSError) as exc:
        outcome.error = f"read: {_plain(exc)}"
        return
    except Exception as exc:  # noqa: BLE001 - e.g. httpx.InvalidURL: still this request's error only
        outcome.error = f"send: {_plain(exc)}"
        return
    outcome.t_response = time.perf_counter()
    outcome.status = response.status_code
    outcome.content_type = response.headers.get("content-type", "")
    outcome.arrival_ns = response.headers.get(ARRIVAL_HEADER)
    outcome.body = response.content
    stream = response.extensions.get("network_stream")
    if stream is not None:
        outcome.connection = streams.setdefault(id(stream), len(streams))


# -- a burst released at an absolute instant (several processes, one release) ------------------
#
# ``fire`` opens, warms, sends and reads in one call, so two processes calling it cannot agree on
# one instant. ``HeldBurst`` splits the last-byte path in two: the constructor connects and warms
# one connection per request; ``release(at=epoch_seconds, history=...)`` waits until ``at``, sends
# every prefix, releases the final bytes back to back and reads the answers. The prefixes go out at
# the release instant, not at opening, so a server never holds a half-received request for long.

_SPIN = 0.002  # the last ~2 ms before the release instant are spun, not slept (a sleep wakes late)


def _sleep_until(at: float) -> float:
    """Wait until wall-clock ``at`` (epoch seconds); return how late we are (seconds, >= 0)."""
    while True:
        remaining = at - time.time()
        if remaining <= _SPIN:
            break
        time.sleep(remaining - _SPIN)  # gevent's sleep under Locust: other greenlets run meanwhile
    while time.time() < at:
        pass
    return max(0.0, time.time() - at)


class HeldBurst:
    """Warm connections for ``requests``, waiting to be released at an absolute time."""

    def __init__(self, requests: Sequence[PreparedRequest], *, timeout: float = 30.0,
                 warmup_path: str | None = "/healthz", verify_tls: bool = True) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.requests = list(requests)
        self.timeout = timeout
        self._started = time.perf_counter()
        targets = [_split_url(r.url) for r in self.requests]  # ValueError on misuse, before any I/O
        self._conns = [_Conn(i, origin, target, request)
                       for i, (request, (origin, target)) in enumerate(zip(self.requests, targets))]
        self._released = False
        try:
            _open_all(self._conns, self._started + timeout, warmup_path, verify_tls)
        except BaseException:
            self.close()
            raise

    @property
    def ready(self) -> int:
        """How many requests have a warm connection (the others already carry their error)."""
        return sum(1 for c in self._conns if c.out.error is None and c.sock is not None)

    @property
    def errors(self) -> list[str]:
        return [c.out.error for c in self._conns if c.out.error is not None]

    def close(self) -> None:
        for conn in self._conns:
            conn.close()

    def release(self, at: float | None, history: History) -> tuple[BurstResult, float]:
        """Release at wall-clock ``at`` (now if None or past); return the result and how late (s) it went.

        ``timeout`` (the constructor's) bounds sending and reading from the release on. Events are
        appended to ``history`` on its clock (``history.origin_wall`` set by the caller puts several
        processes on one clock).
        """
        if self._released:
            raise RuntimeError("a held burst is released once")
        self._released = True
        late = _sleep_until(at) if at is not None else 0.0
        started = time.perf_counter()
        deadline = started + self.timeout
        release_started = None
        try:
            ready = _send_prefixes([c for c in self._conns if c.out.error is None], deadline)
            _wait_prefixes_sent(ready, deadline)
            release_started = time.perf_counter()
            released = _release(ready)
            _read_responses(released, deadline)
        finally:
            self.close()
        history, origin = _clock(history, None, self._started, "last-byte")
        offset = len(history.events)
        events = [_to_event(offset + i, c.request, c.out, origin) for i, c in enumerate(self._conns)]
        history.extend(events)
        result = BurstResult(history=history, sync="last-byte", release_spread=history.release_spread(events),
                             arrival_spread=history.arrival_spread(events), events=events,
                             release_started=None if release_started is None else release_started - origin)
        return result, late
