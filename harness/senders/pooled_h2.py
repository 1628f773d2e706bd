"""Warm HTTP/2 connections kept across bursts: a single-packet sender whose next burst multiplexes on them.

A swarm lane sends wave after wave to one service. HTTP/2 carries many streams on one connection,
so a wave of 250 requests needs two or three connections (the server's MAX_CONCURRENT_STREAMS
decides), and the wave after it can carry its streams on the same connections: no connect, no TLS
handshake, no warm-up GET. ``PooledSinglePacket`` keeps a connection whose burst ended cleanly
(every stream answered in full, none left open, no GOAWAY) and hands it to the next burst, which
opens only the connections still missing. The burst is released exactly as ``SinglePacketBurst``
releases it: headers and all but the last byte ahead, a PING and its ACK, then each connection's
final frames in one write.

A kept connection is handed out only if it has been idle for less than ``max_idle`` seconds (servers
close idle HTTP/2 connections after a few seconds: hypercorn after 5) and, once what the server sent
meanwhile has been read (WINDOW_UPDATEs, PINGs), it is still open and has not said GOAWAY. A
connection is held by one burst at a time; waves under way together use different connections.
"""

from __future__ import annotations

from typing import Sequence

from ..tls import Trust
from .h2conn import H2Conn
from .base import Origin, PreparedRequest
from .pooled import MAX_IDLE, IdlePool, KeptSender
from .single_packet import SinglePacketBurst

MAX_KEPT_H2 = 256  # connections kept per pool at most: each carries up to the server's stream limit


class H2Pool(IdlePool[H2Conn]):
    """Idle, warm HTTP/2 connections by origin and TLS trust."""

    def __init__(self, max_idle: float = MAX_IDLE, max_kept: int = MAX_KEPT_H2) -> None:
        super().__init__(max_idle, max_kept)

    def _usable(self, kept: H2Conn, deadline: float) -> bool:
        return kept.catch_up(deadline)  # reads what came meanwhile: WINDOW_UPDATEs, PINGs, a GOAWAY, a close

    def _discard(self, kept: H2Conn) -> None:
        kept.close()

    def give(self, key: tuple[Origin, Trust], conn: H2Conn) -> None:
        """Keep ``conn`` for a later burst if its last burst ended cleanly; close it otherwise."""
        if not conn.reusable():
            conn.close()
            return
        conn.next_burst()
        self.keep(key, conn)


class PooledSinglePacketBurst(SinglePacketBurst):
    """``SinglePacketBurst`` whose connections come from, and go back to, an ``H2Pool``."""

    def __init__(self, pool: H2Pool, requests: Sequence[PreparedRequest], **kwargs: object) -> None:
        self._pool = pool
        self._trust: Trust = kwargs.get("verify_tls", True)  # type: ignore[assignment]
        super().__init__(requests, **kwargs)  # type: ignore[arg-type]

    def _kept(self, origin: Origin) -> H2Conn | None:
        return self._pool.take((origin, self._trust), self.opened_at + self.timeout)

    def close(self) -> None:
        conns, self._conns = self._conns, []
        for conn in conns:
            self._pool.give((conn.origin, self._trust), conn)


class PooledSinglePacket(KeptSender):
    """A single-packet sender with an HTTP/2 pool of its own."""

    sync = "single-packet"
    pool_type = H2Pool
    burst_type = PooledSinglePacketBurst
