"""The single-packet sender (HTTP/2): every request's final frame leaves in one write.

PortSwigger's method ("Smashing the state machine", 2023), with the ``h2`` library:

1. ``open``: per origin, one connection (h2c with prior knowledge for ``http://``, TLS with ALPN
   ``h2`` for ``https://``); the server's SETTINGS decide how many streams one connection may
   carry (MAX_CONCURRENT_STREAMS, and the 65 535-byte window the pre-sent bodies share), and so
   how many connections the burst needs: as few as fit. Each is warmed with one GET;
2. ``release``: every request's HEADERS and all of its body but the last byte go out (a request
   without a body holds back an empty END_STREAM DATA frame), then a PING whose ACK proves the
   server has received all of that; then, per connection, every held-back final frame in ONE
   write. A final DATA frame is 10 bytes, so on one connection ~140 of them fit one segment and
   share its fate on the network: they arrive together or not at all;
3. read every stream's response (one ``selectors`` loop) within the deadline: each body kept up to
   ``body_limit`` bytes, counted and hashed past it; a stream still streaming at the deadline, or past
   ``ANSWER_READ_CAP`` bytes, is reset and cut (``h2conn``).

How it was sent is in each event's ``meta["h2"]``: ``connection`` (its number), ``stream`` (its
id), ``streams`` (on that connection), ``final_write_bytes`` (that connection's final write) and
``connections`` (in the burst) and ``reused`` (the connection came warm from an earlier burst:
``senders.pooled_h2``). Error phases are the other senders': a request whose final frame
did not leave carries ``connect:``, ``warm-up:``, ``send:`` or ``release:``.
"""

from __future__ import annotations

import os
import ssl
import time
from concurrent.futures import ThreadPoolExecutor

import h2.exceptions

from .h1conn import READ_CHUNK, PhaseError, connect_socket, describe_error, resolve_address
from .h2conn import H2Conn, h2_context, request_headers
from .base import (READ_TURN, ArmedBurst, Origin, Outcome, plain, read_all, remaining, still_streaming,
                   tls_pending)

_MAX_ORIGIN_THREADS = 16  # origins are opened in parallel, each origin's connections one after another


class SinglePacketBurst(ArmedBurst):
    """Warm HTTP/2 connections, each with its share of the burst's streams, waiting for the release."""

    sync = "single-packet"

    _conns: list[H2Conn] = []  # close() before _open has run closes nothing

    def _open(self, warmup_path: str | None, verify_tls: bool | str) -> None:
        self._outcomes = [Outcome() for _ in self.requests]
        self._placed: dict[int, tuple[H2Conn, int]] = {}  # request index -> (connection, stream id)
        self._final_bytes: dict[int, int] = {}  # connection number -> bytes of its final write
        self._conns = []
        by_origin: dict[Origin, list[int]] = {}
        for i, (origin, _) in enumerate(self.targets):
            by_origin.setdefault(origin, []).append(i)
        context = h2_context(verify_tls) if any(o.tls for o in by_origin) else None
        deadline = self.opened_at + self.timeout
        groups = list(by_origin.items())
        if not groups:
            return
        with ThreadPoolExecutor(max_workers=min(len(groups), _MAX_ORIGIN_THREADS),
                                thread_name_prefix="burst-h2-open") as pool:
            # Each worker ends by the deadline: every socket operation has the remaining time as timeout.
            opened = list(pool.map(lambda g: self._open_origin(g[0], g[1], deadline, warmup_path, context), groups))
        for conns in opened:
            for conn in conns:
                conn.number = len(self._conns)
                self._conns.append(conn)
        for index, (conn, _) in self._placed.items():
            self._outcomes[index].connection = conn.number
            self._outcomes[index].reused = conn.reused

    def _open_origin(self, origin: Origin, indices: list[int], deadline: float, warmup_path: str | None,
                     context: ssl.SSLContext | None) -> list[H2Conn]:
        """Open as many connections to ``origin`` as its SETTINGS require for ``indices``."""
        conns: list[H2Conn] = []
        try:
            addresses: list[tuple] | None = None
            todo = list(indices)
            while todo:
                kept = self._kept(origin)
                if kept is not None:  # warm from an earlier burst: no connect, no warm-up
                    kept.body_limit = self.body_limit
                    conns.append(kept)
                else:
                    addresses = addresses if addresses is not None else resolve_address(origin)
                    conns.append(H2Conn(-1, origin))
                    conns[-1].body_limit = self.body_limit
                    self.connect_socket(conns[-1], addresses, deadline, warmup_path, context)
                conn = conns[-1]
                taken = _fits(conn, [self.requests[i].body for i in todo])
                for i in todo[:taken]:
                    self._placed[i] = (conn, 0)  # the stream id is given when the headers go out
                todo = todo[taken:]
        except Exception as exc:  # noqa: BLE001 - recorded per request, as every sender does
            error = describe_error(exc)
            for i in indices:
                if i not in self._placed:
                    self._outcomes[i].error = error
            if conns and conns[-1].sock is None:
                conns.pop()
        return conns

    def _kept(self, origin: Origin) -> H2Conn | None:
        """A warm connection an earlier burst left open (a pooled sender's); this one keeps none."""
        return None

    @staticmethod
    def connect_socket(conn: H2Conn, addresses: list[tuple], deadline: float, warmup_path: str | None,
                 context: ssl.SSLContext | None) -> None:
        sock = connect_socket(conn.origin, addresses, deadline, context)
        try:
            conn.adopt(sock)
            conn.handshake(deadline)
        except (OSError, h2.exceptions.ProtocolError) as exc:
            conn.close()
            if isinstance(exc, TimeoutError):
                raise
            raise PhaseError("connect", exc) from exc
        if warmup_path is not None:
            try:
                conn.warm(warmup_path, deadline)
            except TimeoutError:
                conn.close()
                raise
            except (OSError, h2.exceptions.ProtocolError) as exc:
                conn.close()
                raise PhaseError("warm-up", exc) from exc

    @property
    def ready(self) -> int:
        return sum(1 for i, o in enumerate(self._outcomes) if o.error is None and i in self._placed)

    @property
    def errors(self) -> list[str]:
        return [o.error for o in self._outcomes if o.error is not None]

    def close(self) -> None:
        for conn in self._conns:
            conn.close()

    # -- the release -------------------------------------------------------------------------

    def _send(self, deadline: float, settle: float) -> tuple[list[Outcome], float | None]:
        live = [c for c in self._conns if c.sock is not None]
        for conn in live:
            self._send_ahead(conn, deadline)
        live = [c for c in live if c.terminated is None]
        if settle > 0:
            time.sleep(max(0.0, min(settle, deadline - time.perf_counter())))
        wires = [(conn, *self._final_frames(conn)) for conn in live]
        release_started = time.perf_counter()
        for conn, wire, ends in wires:
            self._write_final(conn, wire, ends, deadline)
        _read_responses([c for c in live if c.sock is not None], deadline)
        self._record_how_sent()
        return self._outcomes, release_started

    def _mine(self, conn: H2Conn) -> list[int]:
        return [i for i, (c, _) in self._placed.items() if c is conn and self._outcomes[i].error is None]

    def _send_ahead(self, conn: H2Conn, deadline: float) -> None:
        """Headers and all but the last body byte of each stream, then a PING and its ACK."""
        mine = self._mine(conn)
        try:
            for i in mine:
                request = self.requests[i]
                stream = conn.h2.get_next_available_stream_id()
                self._placed[i] = (conn, stream)
                conn.outcomes[stream] = self._outcomes[i]
                headers = request_headers(request.method, conn.origin, self.targets[i][1], request.headers,
                                          request.body)
                conn.h2.send_headers(stream, headers, end_stream=False)
                _send_body(conn, stream, request.body[:-1], deadline)
            conn.flush(deadline)
            # The ACK comes after everything sent before the PING: the server holds every prefix.
            acked = conn.pings_acked
            conn.h2.ping(os.urandom(8))
            conn.flush(deadline)
            conn.receive_until(lambda: conn.pings_acked > acked, deadline)
            if conn.terminated is None:
                return
            detail = conn.terminated
        except (OSError, h2.exceptions.H2Error) as exc:
            detail = "no PING ACK within the timeout" if isinstance(exc, TimeoutError) else plain(exc)
        conn.close()
        conn.terminated = conn.terminated or detail
        for i in mine:  # no final frame left: not delivered, whatever the read side recorded
            self._outcomes[i].error = f"send: {detail}"
            conn.ended.add(self._placed[i][1])

    def _final_frames(self, conn: H2Conn) -> tuple[bytes, list[tuple[int, int]]]:
        """The connection's final write, and (request index, end offset of its frame) in it."""
        wire, ends = b"", []
        for i in self._mine(conn):
            stream = self._placed[i][1]
            try:
                conn.h2.send_data(stream, self.requests[i].body[-1:], end_stream=True)
            except h2.exceptions.H2Error as exc:  # e.g. no window left for the final byte
                self._outcomes[i].error = f"release: {plain(exc)}"
                continue
            wire += conn.h2.data_to_send()
            ends.append((i, len(wire)))
        self._final_bytes[conn.number] = len(wire)
        return wire, ends

    def _write_final(self, conn: H2Conn, wire: bytes, ends: list[tuple[int, int]], deadline: float) -> None:
        """One write; frames past a failure did not leave (``release:``), those before did."""
        assert conn.sock is not None
        sent, error = 0, None
        try:
            conn.sock.settimeout(remaining(deadline))
            view = memoryview(wire)
            while sent < len(wire):  # one send() in practice: the data is small and the buffer empty
                sent += conn.sock.send(view[sent:])
        except OSError as exc:
            error = plain(exc)
        t_release = time.perf_counter()
        for i, end in ends:
            if end <= sent:
                self._outcomes[i].t_release = t_release
            else:
                self._outcomes[i].error = f"release: {error}"
                conn.ended.add(self._placed[i][1])

    def _record_how_sent(self) -> None:
        counts: dict[int, int] = {}
        for conn, stream in self._placed.values():
            if stream:
                counts[conn.number] = counts.get(conn.number, 0) + 1
        for i, (conn, stream) in self._placed.items():
            if not stream:
                continue
            self._outcomes[i].meta = {"h2": {
                "connection": conn.number, "stream": stream, "streams": counts[conn.number],
                "final_write_bytes": self._final_bytes.get(conn.number, 0), "connections": len(self._conns),
                "reused": conn.reused}}


def _fits(conn: H2Conn, bodies: list[bytes]) -> int:
    """How many of ``bodies`` (at least one) this connection can carry at once.

    Bounded by the server's MAX_CONCURRENT_STREAMS, by the streams the connection may still carry in all
    (``REQUESTS_PER_CONNECTION``: servers end a connection after so many requests), and by the connection's
    send window, which every stream's pre-sent body and final byte share: a body past it would wait for a
    WINDOW_UPDATE.
    """
    limit = max(1, min(conn.max_streams, conn.streams_left))
    window = conn.h2.outbound_flow_control_window
    taken = used = 0
    for body in bodies[:limit]:
        if taken and used + len(body) > window:
            break
        taken, used = taken + 1, used + len(body)
    return taken


def _send_body(conn: H2Conn, stream: int, data: bytes, deadline: float) -> None:
    """Queue ``data`` on ``stream`` in frames the server accepts, waiting (bounded) for window when shut."""
    view = memoryview(data)
    while view:
        size = min(len(view), conn.h2.max_outbound_frame_size, conn.h2.local_flow_control_window(stream))
        if size <= 0:
            conn.flush(deadline)
            conn.receive_until(lambda: conn.h2.local_flow_control_window(stream) > 0, deadline)
            continue
        conn.h2.send_data(stream, view[:size].tobytes())
        view = view[size:]


def _read_responses(conns: list[H2Conn], deadline: float) -> None:
    """Read every stream's response in one selector loop; what is unfinished at the deadline times out, and a
    stream whose head came but whose body had not ended is cut (what came of it is kept)."""
    pending = read_all(conns, deadline, lambda conn: _drain(conn, deadline))
    for conn in pending:
        now = time.perf_counter()
        for stream, outcome in list(conn.outcomes.items()):
            if stream in conn.ended:
                continue
            if outcome.status is None:
                outcome.error = "timeout: no complete response within the timeout"
            else:
                conn.cut(stream, still_streaming(outcome.t_release, now))


def _drain(conn: H2Conn, deadline: float) -> bool:
    """Read what is there without blocking; True once every stream on ``conn`` is finished.

    Returns False (not finished) at the deadline, and after ``READ_TURN`` bytes so that one fast,
    long answer does not keep the other connections from being read."""
    assert conn.sock is not None
    perf, turn = time.perf_counter, 0
    while True:  # TLS can hold decrypted bytes that select() cannot see
        try:
            data = conn.sock.recv(READ_CHUNK)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return False
        except OSError as exc:
            conn.fail_open_streams(plain(exc))
            return True
        try:
            conn.feed(data, deadline)
        except TimeoutError:  # the deadline passed as a WINDOW_UPDATE or PING ACK went out: cut by the caller
            return False
        except OSError as exc:  # sending a WINDOW_UPDATE failed: the connection is gone
            conn.fail_open_streams(plain(exc))
        finally:
            conn.sock.setblocking(False)  # flush() set a timeout
        if all(s in conn.ended for s in conn.outcomes) or conn.terminated is not None:
            return True
        turn += len(data)
        if perf() >= deadline or (turn >= READ_TURN and not tls_pending(conn.sock)):
            return False  # the selector loop comes back to it (or cuts it at the deadline)
