"""Warm HTTP/1.1 connections kept across bursts: a last-byte sender with a keep-alive pool, for the swarm's lanes.

A lane sends wave after wave to the same service. Opening a fresh connection (connect, TLS, a
warm-up GET read back) per request per wave costs more than the request itself; a connection whose
last response was read in full, and which the server keeps open, is as warm as a warm-up could
make it. ``PooledLastByte`` hands such connections to the next burst and opens (and warms) only
the ones missing. The burst is released exactly as ``LastByteBurst`` releases it: every request
has a connection of its own, its prefix goes out at the instant, its final byte in the one loop,
so a wave stays synchronised.

A connection goes back to the pool only when its exchange ended cleanly (h11 says both sides are
DONE, so the server will read the next request on it) and no error touched it. A pooled connection
is handed out only if it has been idle for less than ``max_idle`` seconds (servers close idle
connections after a few seconds: uvicorn and hypercorn after 5) and nothing is waiting to be read
on it (a server that closed it, or sent anything unasked, makes it unusable): stale ones are closed.
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
import time
from typing import Any, Generic, Hashable, Sequence, TypeVar

import h11

from .h1conn import Conn, open_all
from .base import ANSWER_BODY_LIMIT, ArmedBurst, Origin, PreparedRequest
from .last_byte import LastByteBurst

MAX_IDLE = 2.0  # seconds a kept connection may wait for its next burst: under the usual 5 s keep-alive


def _kept_limit(ceiling: int = 4096) -> int:
    """How many idle connections a pool may keep: enough for several waves of hundreds of requests
    in flight (a lane holds one connection per request of every wave under way), and never more
    than half of this process's file descriptors."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return 512
    return ceiling if soft == resource.RLIM_INFINITY else max(64, min(ceiling, soft // 2))


MAX_KEPT = _kept_limit()  # connections kept per pool at most; more are closed
Kept = TypeVar("Kept")


class IdlePool(Generic[Kept]):
    """Idle connections by key, each with the time it went idle; safe to share between threads (or greenlets).

    A subclass says when a kept connection may be used again (``_usable``) and how one is closed
    (``_discard``); ``take`` and ``keep`` here hand them out and keep them, bounded by ``max_kept``.
    """

    def __init__(self, max_idle: float = MAX_IDLE, max_kept: int = MAX_KEPT) -> None:
        self.max_idle, self.max_kept = max_idle, max_kept
        self._idle: dict[Hashable, list[tuple[Kept, float]]] = {}
        self._lock = threading.Lock()
        self.taken = 0  # connections handed out again (for tests and reports)

    def __len__(self) -> int:
        with self._lock:
            return sum(len(kept) for kept in self._idle.values())

    def _usable(self, kept: Kept, deadline: float) -> bool:
        raise NotImplementedError

    def _discard(self, kept: Kept) -> None:
        raise NotImplementedError

    def take(self, key: Hashable, deadline: float = float("inf")) -> Kept | None:
        """A live idle connection for ``key``, or None; stale ones met on the way are closed."""
        now = time.monotonic()
        while True:
            with self._lock:
                kept = self._idle.get(key)
                if not kept:
                    return None
                item, since = kept.pop()
            if now - since < self.max_idle and self._usable(item, deadline):
                with self._lock:
                    self.taken += 1
                return item
            self._discard(item)

    def keep(self, key: Hashable, item: Kept) -> None:
        """Keep ``item`` for a later burst, or close it when the pool is full."""
        with self._lock:
            if sum(len(kept) for kept in self._idle.values()) < self.max_kept:
                self._idle.setdefault(key, []).append((item, time.monotonic()))
                return
        self._discard(item)

    def close(self) -> None:
        """Close every kept connection."""
        with self._lock:
            kept, self._idle = self._idle, {}
        for connections in kept.values():
            for item, _ in connections:
                self._discard(item)


class ConnectionPool(IdlePool[tuple[socket.socket, h11.Connection]]):
    """Idle, warm HTTP/1.1 connections (socket and h11 state) by origin and TLS trust."""

    def _usable(self, kept: tuple[socket.socket, h11.Connection], deadline: float) -> bool:
        return _quiet(kept[0])

    def _discard(self, kept: tuple[socket.socket, h11.Connection]) -> None:
        kept[0].close()

    def give(self, key: Hashable, sock: socket.socket, http: h11.Connection) -> None:
        """Keep a connection whose exchange ended cleanly (h11 IDLE on both sides) for a later burst."""
        self.keep(key, (sock, http))


def _quiet(sock: socket.socket) -> bool:
    """Nothing to read on an idle connection: the server has not closed it (nor sent anything unasked)."""
    if isinstance(sock, ssl.SSLSocket):  # TLS refuses recv flags; and may hold a close_notify unseen by a peek
        try:
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable
    try:
        # A peek on a non-blocking socket: one system call, where a select() under gevent costs a trip
        # through its hub, paid for every kept connection of every wave.
        sock.setblocking(False)
        sock.recv(1, socket.MSG_PEEK)
    except (BlockingIOError, InterruptedError):
        return True  # nothing to read: quiet
    except OSError:
        return False
    return False  # b"" (the server closed it) or bytes nobody asked for


class PooledLastByteBurst(LastByteBurst):
    """``LastByteBurst`` whose connections come from, and go back to, a ``ConnectionPool``."""

    def __init__(self, pool: ConnectionPool, requests: Sequence[PreparedRequest], **kwargs: object) -> None:
        self._pool = pool
        super().__init__(requests, **kwargs)  # type: ignore[arg-type]

    def _open(self, warmup_path: str | None, verify_tls: bool | str) -> None:
        self._trust = verify_tls
        self._conns, fresh = [], []
        for i, (request, (origin, target)) in enumerate(zip(self.requests, self.targets)):
            kept = self._pool.take(self._key(origin))
            if kept is None:
                conn = Conn(i, origin, target, request, body_limit=self.body_limit)
                fresh.append(conn)
            else:
                sock, http = kept
                conn = Conn(i, origin, target, request, http, self.body_limit)  # no new h11 state only to drop it
                conn.adopt(sock)
                conn.out.reused = True
            self._conns.append(conn)
        open_all(fresh, self.opened_at + self.timeout, warmup_path, verify_tls)

    def _key(self, origin: Origin) -> tuple:
        return origin, self._trust

    def close(self) -> None:
        for conn in self._conns:
            http = conn.http
            if http.our_state is h11.DONE and http.their_state is h11.DONE:
                http.start_next_cycle()  # the response was read in full: ready for the next request
            reusable = (conn.out.error is None and conn.sock is not None
                        and http.our_state is h11.IDLE and http.their_state is h11.IDLE)
            if reusable:
                sock, conn.sock = conn.sock, None
                assert sock is not None
                self._pool.give(self._key(conn.origin), sock, http)
            conn.close()


class KeptSender:
    """A sender that keeps a pool of warm connections across bursts: one per lane, kept for the lane's life.

    A subclass names its ``sync``, its pool's class (``pool_type``) and its burst class (``burst_type``,
    constructed as ``burst_type(pool, requests, **options)``).
    """

    sync = ""
    pool_type: type = type(None)
    burst_type: type = type(None)

    def __init__(self, pool: Any = None) -> None:
        self.pool = pool if pool is not None else self.pool_type()

    def open(self, requests: Sequence[PreparedRequest], *, timeout: float = 30.0,
             warmup_path: str | None = "/healthz", verify_tls: bool | str = True,
             body_limit: int = ANSWER_BODY_LIMIT) -> ArmedBurst:
        return self.burst_type(self.pool, requests, timeout=timeout, warmup_path=warmup_path, verify_tls=verify_tls,
                               body_limit=body_limit)

    def close(self) -> None:
        """Close every kept connection."""
        self.pool.close()


class PooledLastByte(KeptSender):
    """A last-byte sender with an HTTP/1.1 keep-alive pool of its own."""

    sync = "last-byte"
    pool_type = ConnectionPool
    burst_type = PooledLastByteBurst
