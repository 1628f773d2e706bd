"""One HTTP/2 client connection for a single-packet burst: connect, agree on HTTP/2, warm up, read.

``H2Conn`` wraps a socket and an ``h2`` client state machine. It opens cleartext h2c with prior
knowledge for ``http://`` and TLS with ALPN ``h2`` for ``https://``, waits for the server's
SETTINGS (which decide how a burst is split), warms the connection with one GET, and turns
response frames into each stream's ``Outcome``. Everything here is bounded by a deadline. A stream's
body is read through ``AnswerBody`` (kept up to ``body_limit`` bytes, counted and hashed); a stream
past ``ANSWER_READ_CAP`` bytes is reset (CANCEL) and cut.
"""

from __future__ import annotations

import select
import socket
import ssl
import time
from typing import Callable

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from ..tls import Trust, client_context
from .h1conn import READ_CHUNK
from .base import (ANSWER_BODY_LIMIT, ARRIVAL_HEADER, SERVER_TIMING_HEADER, AnswerBody, AnswerTooLarge, Origin,
                   Outcome, remaining)

# Big receive windows so that responses never wait for our WINDOW_UPDATEs (we send them anyway).
_RECEIVE_WINDOW = 1 << 24
_ARRIVAL = ARRIVAL_HEADER.encode()
_SERVER_TIMING = SERVER_TIMING_HEADER.encode()
# Hop-by-hop headers are forbidden in HTTP/2 (RFC 9113 8.2.2); Host becomes :authority.
_DROPPED = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host", "te"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# h2 checks and rewrites every header block it sends and receives, in Python, for every stream: most of a
# burst's CPU. ``request_headers`` already writes lower-case names, pseudo-headers first and no
# connection-specific fields, and only :status and three named fields are read back.
_CONFIG = h2.config.H2Configuration(client_side=True, header_encoding=None, validate_outbound_headers=False,
                                    normalize_outbound_headers=False, validate_inbound_headers=False)
# Servers end a connection after so many requests with a GOAWAY (hypercorn's keep_alive_max_requests and
# nginx's keepalive_requests: 1000 by default), which would land in the middle of a later burst. A connection
# carries at most this many streams in all, warm-up included; a burst places the rest on another.
REQUESTS_PER_CONNECTION = 500


def h2_context(verify: Trust) -> ssl.SSLContext:
    """A client TLS context that trusts as ``verify`` says (bool or CA file) and offers only ``h2`` by ALPN."""
    return client_context(verify, ["h2"])


def request_headers(method: str, origin: Origin, target: str, headers: tuple[tuple[str, str], ...],
                    body: bytes) -> list[tuple[str, str]]:
    """The HTTP/2 header list of a request: pseudo-headers first, hop-by-hop headers dropped."""
    authority = next((v for k, v in headers if k.lower() == "host"), origin.host_header)
    out = [(":method", method), (":scheme", origin.scheme), (":authority", authority), (":path", target)]
    out += [(k.lower(), v) for k, v in headers if k.lower() not in _DROPPED]
    if (body or method.upper() in _BODY_METHODS) and not any(k == "content-length" for k, _ in out):
        out.append(("content-length", str(len(body))))
    return out


class H2Conn:
    """A client HTTP/2 connection carrying some of a burst's streams."""

    def __init__(self, number: int, origin: Origin) -> None:
        self.number = number  # the burst's connection number (Event.connection)
        self.origin = origin
        self.sock: socket.socket | None = None
        self.h2 = _ClientConnection(_CONFIG)
        self.outcomes: dict[int, Outcome] = {}  # stream id -> what came back on it
        self.ended: set[int] = set()  # streams that are finished (answered, reset or failed)
        self.settings_seen = False
        self.pings_acked = 0
        self.terminated: str | None = None  # why the server ended the connection (GOAWAY, close)
        self.reused = False  # kept open by a pool after an earlier burst, handed to this one
        self.body_limit = ANSWER_BODY_LIMIT  # bytes of each answer's body kept (the burst using it sets it)
        self._bodies: dict[int, AnswerBody] = {}  # stream id -> its answer's body as it streams in

    # -- opening ---------------------------------------------------------------------------

    def adopt(self, sock: socket.socket) -> None:
        """Take a connected socket; over TLS, check that the server agreed to HTTP/2."""
        self.sock = sock
        if isinstance(sock, ssl.SSLSocket) and sock.selected_alpn_protocol() != "h2":
            raise ConnectionError(f"the server did not agree to HTTP/2 by ALPN "
                                  f"(it chose {sock.selected_alpn_protocol()!r})")

    def handshake(self, deadline: float) -> None:
        """Send the preface and our SETTINGS; return once the server's SETTINGS are in."""
        self.h2.local_settings = h2.settings.Settings(client=True, initial_values={
            h2.settings.SettingCodes.ENABLE_PUSH: 0,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: _RECEIVE_WINDOW,
        })
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(_RECEIVE_WINDOW - 65535)
        self.flush(deadline)
        self.receive_until(lambda: self.settings_seen, deadline)

    @property
    def max_streams(self) -> int:
        return self.h2.remote_settings.max_concurrent_streams

    def warm(self, path: str, deadline: float) -> None:
        """One GET read back in full: handshake, slow start and the server's first stream are over."""
        stream = self.h2.get_next_available_stream_id()
        self.outcomes[stream] = Outcome()
        self.h2.send_headers(stream, request_headers("GET", self.origin, path, (), b""), end_stream=True)
        self.flush(deadline)
        self.receive_until(lambda: stream in self.ended, deadline)
        warm = self.outcomes.pop(stream)
        if warm.error is not None:
            raise ConnectionError(warm.error)

    # -- I/O -------------------------------------------------------------------------------

    def flush(self, deadline: float) -> None:
        """Send whatever the state machine has queued (blocking, bounded)."""
        data = self.h2.data_to_send()
        if data:
            assert self.sock is not None
            self.sock.settimeout(remaining(deadline))
            self.sock.sendall(data)

    def receive_until(self, done: Callable[[], bool], deadline: float) -> None:
        """Read and handle frames until ``done()``; TimeoutError at the deadline, ConnectionError on close."""
        assert self.sock is not None
        while not done():
            if self.terminated is not None:
                raise ConnectionError(self.terminated)
            self.sock.settimeout(remaining(deadline))
            self.feed(self.sock.recv(READ_CHUNK), deadline)

    def feed(self, data: bytes, deadline: float) -> None:
        """Hand received bytes (``b""`` = closed) to h2, handle its events, send what it answers."""
        if not data:
            self.fail_open_streams("the server closed the connection")
            return
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self.fail_open_streams(f"HTTP/2 protocol error: {exc}")
            return
        for event in events:
            self._handle(event)
        self.flush(deadline)  # SETTINGS and PING acknowledgements, WINDOW_UPDATEs

    def fail_open_streams(self, why: str) -> None:
        self.terminated = self.terminated or why
        for stream, outcome in self.outcomes.items():
            if stream not in self.ended:
                outcome.error = outcome.error or f"read: {why}"
                self.ended.add(stream)
                self._settle(stream, outcome)  # what came of its answer, if anything

    def reusable(self) -> bool:
        """Every stream of the last burst answered in full, none open, the server still there."""
        return (self.sock is not None and self.terminated is None and self.settings_seen
                and self.h2.counted_open_streams() == 0 and all(s in self.ended for s in self.outcomes)
                and not any(o.error for o in self.outcomes.values()) and self.streams_left > 0)

    @property
    def streams_left(self) -> int:
        """How many more streams this connection may carry (``REQUESTS_PER_CONNECTION`` in all)."""
        highest = self.h2.highest_outbound_stream_id or 0  # a client's streams are 1, 3, 5, ...
        return REQUESTS_PER_CONNECTION - (highest + 1) // 2

    def next_burst(self) -> None:
        """Forget the last burst's streams: this connection carries the next burst's."""
        self.outcomes.clear()
        self.ended.clear()
        self._bodies.clear()
        self.number = -1
        self.reused = True

    def catch_up(self, deadline: float) -> bool:
        """Handle what the server sent while the connection was idle (WINDOW_UPDATE, PING, GOAWAY, a close)
        without blocking; False when the connection is no longer usable."""
        if self.sock is None:
            return False
        try:
            while select.select([self.sock], [], [], 0)[0] or _tls_pending(self.sock):
                self.sock.setblocking(False)
                try:
                    data = self.sock.recv(READ_CHUNK)
                except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    break
                self.feed(data, deadline)  # b"" (closed) marks the connection terminated
                if self.terminated is not None:
                    return False
        except (OSError, ValueError):
            return False
        return self.terminated is None

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()

    # -- events ----------------------------------------------------------------------------

    def _handle(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RemoteSettingsChanged):
            self.settings_seen = True
        elif isinstance(event, h2.events.PingAckReceived):
            self.pings_acked += 1
        elif isinstance(event, h2.events.ResponseReceived):
            self._take_head(event.stream_id, event.headers)
        elif isinstance(event, h2.events.DataReceived):
            self._data(event)
        elif isinstance(event, h2.events.StreamEnded):
            self._end(event.stream_id)
        elif isinstance(event, h2.events.StreamReset):
            self._end(event.stream_id, f"read: the server reset the stream ({_code(event.error_code)})")
        elif isinstance(event, h2.events.ConnectionTerminated):
            # Streams above last_stream_id were never processed; the others may still be answered,
            # but not on a connection that is going away: treat every unfinished one alike.
            self.fail_open_streams(f"the server sent GOAWAY ({_code(event.error_code)})")

    def _take_head(self, stream: int, headers: list[tuple[bytes, bytes]]) -> None:
        outcome = self.outcomes.get(stream)
        if outcome is None:
            return
        for name, value in headers:
            if name == b":status":
                outcome.status = int(value)
            elif name == b"content-type":
                outcome.content_type = value.decode("latin-1")
            elif name == _ARRIVAL:
                outcome.arrival_ns = value.decode("latin-1")
            elif name == _SERVER_TIMING:
                outcome.server_timing.append(value.decode("latin-1"))

    def _data(self, event: h2.events.DataReceived) -> None:
        stream = event.stream_id
        self.h2.acknowledge_received_data(event.flow_controlled_length, stream)
        if stream in self.ended or stream not in self.outcomes:  # e.g. a stream already cut: dropped
            return
        body = self._bodies.get(stream)
        if body is None:
            body = self._bodies[stream] = AnswerBody(self.body_limit)
        try:
            body.add(event.data)
        except AnswerTooLarge as exc:
            self.cut(stream, f"read: {exc}")

    def cut(self, stream: int, error: str) -> None:
        """End a stream whose answer did not end (too large, still streaming at the deadline): reset it
        (CANCEL), keep what came of it, and mark it with ``error`` (its status stays: the head came)."""
        outcome = self.outcomes.get(stream)
        if outcome is None or stream in self.ended:
            return
        self.ended.add(stream)
        self._settle(stream, outcome)
        outcome.error = error
        try:
            self.h2.reset_stream(stream, h2.errors.ErrorCodes.CANCEL)
        except h2.exceptions.H2Error:
            pass  # already closed on the server's side
        # the RST_STREAM goes out with the next flush; the connection is not kept after a cut stream

    def _settle(self, stream: int, outcome: Outcome) -> None:
        body = self._bodies.pop(stream, None)
        (body if body is not None else AnswerBody(self.body_limit)).settle(outcome)

    def _end(self, stream: int, error: str | None = None) -> None:
        outcome = self.outcomes.get(stream)
        if outcome is None or stream in self.ended:
            return
        self.ended.add(stream)
        self._settle(stream, outcome)
        if error is not None:
            outcome.error, outcome.status = error, None
        else:
            outcome.t_response = time.perf_counter()


class _ClientConnection(h2.connection.H2Connection):
    """h2's client connection, without its count of open streams before every new stream.

    ``send_headers`` counts the open streams by walking every stream the connection has, so a burst of n
    streams on one connection costs O(n²) there (8 % of a swarm lane's time at 250 streams a wave). The
    sender never needs that check: ``_fits`` places at most the server's MAX_CONCURRENT_STREAMS on a
    connection, and a connection is used again only once none of its streams is open
    (``counted_open_streams``, which walks them once and forgets the closed ones).
    """

    @property
    def open_outbound_streams(self) -> int:
        return 0

    def counted_open_streams(self) -> int:
        """The open streams this client started, counted (h2's own count, which also drops closed streams)."""
        return h2.connection.H2Connection.open_outbound_streams.fget(self)  # type: ignore[attr-defined]


def _tls_pending(sock: socket.socket) -> bool:
    """Decrypted bytes a TLS socket holds that select() cannot see."""
    return isinstance(sock, ssl.SSLSocket) and sock.pending() > 0


def _code(code: object) -> str:
    return getattr(code, "name", str(code))
