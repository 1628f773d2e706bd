"""A small h2c server for the single-packet sender's tests: real sockets, ``h2`` on the server side.

It records, for every request stream, the kernel's receive timestamp of the segment that ended it
and how many data segments its connection had received by then, so a test can see which frames
shared one segment. Options make it end connections the way real servers do (GOAWAY after some
answers, or a silent close) and leave some paths unanswered.
"""

from __future__ import annotations

import json
import selectors
import socket
import struct
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings

from _loopback import LoopbackServer

from harness.local.recorder import ANCILLARY, await_stamping, enable_timestamping, kernel_time_ns

_DATA_SEGS_IN = 152  # offset of tcpi_data_segs_in in Linux's struct tcp_info (segments that carried data)
_SERVE_FOR = 30.0  # no test server thread outlives this


def _data_segments_in(sock: socket.socket) -> int:
    return struct.unpack_from("I", sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256), _DATA_SEGS_IN)[0]


class H2Server(LoopbackServer):
    """An h2c server (prior knowledge) that answers every request 200 and records how its streams ended.

    ``ended``: one dict per request stream (conn, stream, path, kernel_ns of the segment with its
    END_STREAM, data segments received on that connection by then); ``ping_segments``: per
    connection, the data segments received when its last PING arrived (before the ACK left).
    """

    def __init__(self, max_streams: int = 100, *, end_after: int | None = None, end_with: str = "goaway",
                 silent_paths: tuple[str, ...] = (), max_requests: int | None = None) -> None:
        """``end_after``: after answering that many request streams on a connection, end it: ``end_with``
        "goaway" (GOAWAY, then close) or "close" (close without a word). ``silent_paths``: never answered.
        ``max_requests``: as hypercorn's keep_alive_max_requests, a request past that many on a connection
        (the warm-up included) gets a GOAWAY naming the last one it will answer, and no answer."""
        self.max_streams, self.max_requests = max_streams, max_requests
        self.refused = 0  # requests past max_requests
        self.end_after, self.end_with, self.silent_paths = end_after, end_with, silent_paths
        self.answered: dict[int, int] = {}  # connection number -> request streams answered on it
        self.ended: list[dict] = []
        self.ping_segments: dict[int, int] = {}
        self.connections = 0
        self.closed = 0  # connections this server ended
        self.stamping = await_stamping()
        enable_timestamping(self.listen(self._serve))
        self._listener.setblocking(False)

    def _serve(self) -> None:
        conns: dict[socket.socket, tuple[int, h2.connection.H2Connection]] = {}
        end = time.monotonic() + _SERVE_FOR
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            while not self._stop.is_set() and time.monotonic() < end:
                for key, _ in selector.select(0.05):
                    if key.fileobj is self._listener:
                        sock, _ = self._listener.accept()
                        conns[sock] = (self.connections, self._h2())
                        self.connections += 1
                        sock.sendall(conns[sock][1].data_to_send())
                        selector.register(sock, selectors.EVENT_READ)
                    elif not self._receive(key.fileobj, *conns[key.fileobj]):
                        selector.unregister(key.fileobj)
                        key.fileobj.close()
                        self.closed += 1
            for sock in conns:
                sock.close()

    def _h2(self) -> h2.connection.H2Connection:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        conn.local_settings = h2.settings.Settings(client=False, initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self.max_streams})
        conn.initiate_connection()
        return conn

    def _receive(self, sock: socket.socket, number: int, conn: h2.connection.H2Connection) -> bool:
        data, ancillary, _, _ = sock.recvmsg(65536, ANCILLARY)
        if not data:
            return False
        kernel_ns, paths = kernel_time_ns(ancillary), {}
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.PingReceived):
                self.ping_segments[number] = _data_segments_in(sock)  # the ACK has not left yet
            elif isinstance(event, h2.events.RequestReceived):
                seen = conn.__dict__.setdefault("requests", [])
                if self.max_requests is not None and len(seen) >= self.max_requests:
                    self.refused += 1
                    conn.close_connection(h2.errors.ErrorCodes.NO_ERROR, last_stream_id=seen[-1])
                    sock.sendall(conn.data_to_send())
                    return False  # the caller closes the socket: this burst's streams go unanswered
                seen.append(event.stream_id)
                paths[event.stream_id] = dict(event.headers)[":path"]
                conn.__dict__.setdefault("paths", {}).update(paths)
            elif isinstance(event, h2.events.DataReceived):
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                path = conn.__dict__["paths"][event.stream_id]
                if path != "/healthz":
                    self.ended.append({"conn": number, "stream": event.stream_id, "path": path,
                                       "kernel_ns": kernel_ns, "segments": _data_segments_in(sock)})
                if path in self.silent_paths:
                    continue
                body = json.dumps({"stream": event.stream_id, "conn": number}).encode()
                conn.send_headers(event.stream_id, [(":status", "200"), ("content-type", "application/json"),
                                                    ("x-arrival-ns", str(time.time_ns()))])
                conn.send_data(event.stream_id, body, end_stream=True)
                if path != "/healthz":
                    self.answered[number] = self.answered.get(number, 0) + 1
        if self.end_after is not None and self.answered.get(number, 0) >= self.end_after:
            if self.end_with == "goaway":
                conn.close_connection(h2.errors.ErrorCodes.NO_ERROR)
                sock.sendall(conn.data_to_send())
            else:
                sock.sendall(conn.data_to_send())
            return False  # the caller closes the socket
        sock.sendall(conn.data_to_send())
        return True
