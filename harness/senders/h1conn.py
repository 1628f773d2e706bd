"""HTTP/1.1 connections for a burst: connect (TCP_NODELAY, TLS), warm up, and parse what comes back.

Every request gets a connection of its own. ``open_all`` resolves each origin once and then
connects and warms every connection in parallel on a bounded thread pool, all within the burst's
deadline; a connection that fails carries its error (``connect:``, ``warm-up:``, ``timeout:``) in
its Outcome and is closed. ``h11`` frames both directions. A body is read through ``AnswerBody``
(kept up to the burst's ``body_limit``, counted, hashed, cut past ``ANSWER_READ_CAP``), the warm-up's too.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures import wait as wait_futures

import h11

from ..tls import Trust, client_context
from .base import (ANSWER_BODY_LIMIT, ARRIVAL_HEADER, SERVER_TIMING_HEADER, AnswerBody, Origin, Outcome,
                   PreparedRequest, plain, remaining)

_MAX_CONNECT_THREADS = 64  # connect + TLS + warm-up run in parallel, bounded
READ_CHUNK = 65536
_ARRIVAL = ARRIVAL_HEADER.encode()  # h11 gives header names lower-cased, as bytes
_SERVER_TIMING = SERVER_TIMING_HEADER.encode()


class Conn:
    """One connection carrying one burst request, and the response coming back on it."""

    def __init__(self, position: int, origin: Origin, target: str, request: PreparedRequest,
                 http: h11.Connection | None = None, body_limit: int = ANSWER_BODY_LIMIT) -> None:
        """``http``: the h11 state of a kept connection this one continues (default: a new connection's);
        ``body_limit``: bytes of the answer's body kept (the rest is counted and hashed)."""
        self.origin = origin
        self.target = target
        self.request = request
        self.position = position
        self.out = Outcome()
        self.http = http if http is not None else h11.Connection(h11.CLIENT)
        self.sock: socket.socket | None = None
        self.final: bytes = b""  # the withheld last byte
        self.body_limit = body_limit
        self.answer = AnswerBody(body_limit)
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
        self.out.server_timing = []
        self.answer = AnswerBody(self.body_limit)

    def keep_partial(self) -> None:
        """Put what was read of an answer that did not end (cut, failed) into the outcome."""
        self.answer.settle(self.out)

    def feed(self, data: bytes) -> bool:
        """Hand received bytes (``b""`` = the peer closed) to h11; True once a whole response is in.

        ``AnswerTooLarge`` once the body went past ``ANSWER_READ_CAP`` bytes."""
        self.http.receive_data(data)
        while True:
            event = self.http.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return False
            if isinstance(event, h11.Response):
                self._take_head(event)
            elif isinstance(event, h11.Data):
                self.answer.add(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self.answer.settle(self.out)
                return True
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("the server closed the connection before responding")
            # InformationalResponse (100 Continue ...) carries nothing we keep.

    def _take_head(self, response: h11.Response) -> None:
        self.out.status = response.status_code
        for name, value in response.headers:
            if name == b"content-type":
                self.out.content_type = value.decode("latin-1")
            elif name == _ARRIVAL:
                self.out.arrival_ns = value.decode("latin-1")
            elif name == _SERVER_TIMING:
                self.out.server_timing.append(value.decode("latin-1"))  # parsed later, with the event


def open_all(conns: list[Conn], deadline: float, warmup_path: str | None, verify_tls: Trust) -> None:
    """Resolve each origin once, then connect and warm every connection in parallel, all bounded."""
    if not conns:
        return
    ssl_context = _ssl_context(verify_tls) if any(c.origin.tls for c in conns) else None
    pool = ThreadPoolExecutor(max_workers=min(len(conns), _MAX_CONNECT_THREADS), thread_name_prefix="burst-open")
    try:
        # Resolutions are queued first, so no worker waits on one that has not started.
        resolved = {o: pool.submit(resolve_address, o) for o in dict.fromkeys(c.origin for c in conns)}
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
    return None if exc is None else describe_error(exc)


def _ssl_context(verify: Trust) -> ssl.SSLContext:
    """The client context of an HTTP/1.1 connection: ``verify`` is a ``harness.tls.Trust`` (bool or CA file)."""
    return client_context(verify, ["http/1.1"])


def resolve_address(origin: Origin) -> list[tuple]:
    try:
        return socket.getaddrinfo(origin.host, origin.port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise PhaseError("connect", exc) from exc


class PhaseError(Exception):
    """An error tagged with the burst phase it happened in."""

    def __init__(self, phase: str, cause: BaseException) -> None:
        super().__init__(f"{phase}: {plain(cause)}")
        self.phase = phase


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, PhaseError):
        return str(exc)
    if isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError since 3.10
        return f"timeout: connecting or warming up: {plain(exc)}"
    return f"connect: {plain(exc)}"


def _open_one(
    conn: Conn, resolved: Future, deadline: float, warmup_path: str | None, ssl_context: ssl.SSLContext | None
) -> None:
    """Connect, and warm with one GET whose response is read in full; runs on a worker thread."""
    try:
        addresses = resolved.result(timeout=remaining(deadline))
    except FutureTimeout as exc:  # a distinct class before Python 3.11
        raise TimeoutError("resolving the host did not finish within the timeout") from exc
    conn.adopt(connect_socket(conn.origin, addresses, deadline, ssl_context))
    if warmup_path is None:
        return
    try:
        _send_warmup(conn, warmup_path, deadline)
    except (TimeoutError, PhaseError):
        raise
    except (OSError, h11.ProtocolError) as exc:
        raise PhaseError("warm-up", exc) from exc
    if conn.http.our_state is h11.DONE and conn.http.their_state is h11.DONE:
        conn.http.start_next_cycle()
    else:
        # The server will not keep this connection; the request gets a fresh, cold one.
        conn.reconnect_cold(connect_socket(conn.origin, addresses, deadline, ssl_context))
        conn.out.cold = True
    conn.start_response()


def connect_socket(
    origin: Origin, addresses: list[tuple], deadline: float, ssl_context: ssl.SSLContext | None
) -> socket.socket:
    """A connected, NODELAY (and TLS-wrapped) socket to the first address that accepts."""
    last_error: BaseException = ConnectionError("no address")
    for family, kind, proto, _, sockaddr in addresses:
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(remaining(deadline))
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
    raise PhaseError("connect", last_error)


def _send_warmup(conn: Conn, path: str, deadline: float) -> None:
    request = h11.Request(
        method="GET", target=path, headers=[("Host", conn.origin.host_header), ("Connection", "keep-alive")]
    )
    sock = conn.sock
    assert sock is not None
    sock.settimeout(remaining(deadline))
    sock.sendall(conn.http.send(request) + conn.http.send(h11.EndOfMessage()))
    while True:
        sock.settimeout(remaining(deadline))
        if conn.feed(sock.recv(READ_CHUNK)):
            return


