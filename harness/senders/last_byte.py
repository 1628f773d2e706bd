"""The last-byte sender (HTTP/1.1): every request but its final byte goes out first, then all final bytes.

1. ``open``: one TCP (or TLS) connection per request, with ``TCP_NODELAY``, warmed with one cheap
   request (``GET /healthz`` by default) read back in full, so that connect, handshake and slow
   start are over before the burst (see ``h1conn``);
2. ``release``: at the instant, send every request but its final byte, wait until the kernel has
   sent those prefixes, then release all final bytes back to back from one thread (``t_release``
   is read right after each ``send``);
3. read every response (one ``selectors`` loop, ``h11`` for framing) within the deadline: each
   body kept up to ``body_limit`` bytes and counted and hashed past it (``base.AnswerBody``); an
   answer still streaming at the deadline, or past ``ANSWER_READ_CAP`` bytes, is cut.

A server cannot act on a request before its final byte arrives, so the requests become complete
on the server within the time one Python loop takes to send N single bytes (see
``benchmarks/burst_spread.py``). The prefixes go out at the release instant, not at opening, so a
server never holds a half-received request for long. Plain threads and sockets: no event loop,
usable under gevent (Locust).
"""

from __future__ import annotations

import socket
import ssl
import struct
import sys
import time

import h11

from .h1conn import READ_CHUNK, Conn, open_all
from .base import (READ_TURN, AnswerTooLarge, ArmedBurst, Outcome, plain, read_all, remaining, still_streaming,
                   tls_pending)

_FLUSH_POLL = 0.0002  # seconds between checks that every prefix has left the send queue
_SIOCOUTQNSD = 0x894B  # Linux: bytes in the send queue not yet sent
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class LastByteBurst(ArmedBurst):
    """One warm connection per request, waiting for the release."""

    sync = "last-byte"

    _conns: list[Conn] = []  # close() before _open has run closes nothing

    def _open(self, warmup_path: str | None, verify_tls: bool | str) -> None:
        self._conns = [Conn(i, origin, target, request, body_limit=self.body_limit)
                       for i, (request, (origin, target)) in enumerate(zip(self.requests, self.targets))]
        open_all(self._conns, self.opened_at + self.timeout, warmup_path, verify_tls)

    @property
    def ready(self) -> int:
        return sum(1 for c in self._conns if c.out.error is None and c.sock is not None)

    @property
    def errors(self) -> list[str]:
        return [c.out.error for c in self._conns if c.out.error is not None]

    def close(self) -> None:
        for conn in self._conns:
            conn.close()

    def _send(self, deadline: float, settle: float) -> tuple[list[Outcome], float | None]:
        ready = _send_prefixes([c for c in self._conns if c.out.error is None], deadline)
        _wait_prefixes_sent(ready, deadline)
        if settle > 0:
            time.sleep(max(0.0, min(settle, deadline - time.perf_counter())))
        release_started = time.perf_counter()
        released = release(ready)
        _read_responses(released, deadline)
        return [c.out for c in self._conns], release_started


def _serialise(conn: Conn) -> bytes:
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


def _send_prefixes(conns: list[Conn], deadline: float) -> list[Conn]:
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
            conn.sock.settimeout(remaining(deadline))
            prefix = memoryview(wire)[:-1]
            sent = conn.sock.send(prefix)  # a prefix fits the send buffer: one call, without sendall's loop
            if sent < len(prefix):
                conn.sock.sendall(prefix[sent:])
        except TimeoutError as exc:
            conn.out.error = f"timeout: sending the request: {plain(exc)}"
            continue
        except OSError as exc:
            conn.out.error = f"send: {plain(exc)}"
            continue
        conn.final = wire[-1:]
        ready.append(conn)
    return ready


def _wait_prefixes_sent(conns: list[Conn], deadline: float) -> None:
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


def release(conns: list[Conn]) -> list[Conn]:
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
            conn.out.error = f"release: {plain(exc)}"
            continue
        conn.out.t_release = perf()
        released.append(conn)
    return released


def _read_responses(conns: list[Conn], deadline: float) -> None:
    """Read every response in one selector loop; whatever is unfinished at the deadline times out, and an
    answer whose head came but whose body had not ended is cut (what came of it is kept)."""
    for conn in read_all(conns, deadline, lambda conn: _drain(conn, deadline)):
        if conn.out.status is None:
            conn.out.error = "timeout: no complete response within the timeout"
        else:
            conn.out.error = still_streaming(conn.out.t_release)
            conn.keep_partial()
            _hang_up(conn)


def _drain(conn: Conn, deadline: float) -> bool:
    """Read what is there without blocking; True once this connection is finished (or failed).

    Returns False (not finished) at the deadline, and after ``READ_TURN`` bytes so that one
    fast, long answer does not keep the other connections from being read."""
    assert conn.sock is not None
    perf, turn = time.perf_counter, 0
    # Loop until the socket would block: TLS can hold decrypted bytes that select() cannot see.
    while True:
        try:
            data = conn.sock.recv(READ_CHUNK)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return False
        except OSError as exc:
            conn.out.error = f"read: {plain(exc)}"
            return True
        try:
            if conn.feed(data):
                conn.out.t_response = perf()
                return True
        except AnswerTooLarge as exc:
            conn.out.error = f"read: {exc}"
            conn.keep_partial()
            _hang_up(conn)
            return True
        except (h11.ProtocolError, ConnectionError) as exc:
            conn.out.error = f"read: {plain(exc)}"
            return True
        if not data:
            conn.out.error = "read: the server closed the connection before the response was complete"
            return True
        turn += len(data)
        if perf() >= deadline or (turn >= READ_TURN and not tls_pending(conn.sock)):
            return False  # the selector loop comes back to it (or cuts it at the deadline)


def _hang_up(conn: Conn) -> None:
    """End a connection whose answer was cut: the service stops sending (the socket is closed with the burst)."""
    try:
        if conn.sock is not None:
            conn.sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass

