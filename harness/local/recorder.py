"""A loopback HTTP/1.1 recorder: when did each request reach this host, as the kernel and a handler saw it.

Used by ``benchmarks/burst_spread.py`` and ``tests/test_burst.py`` (not by the harness at run time).
One background thread serves every connection with a ``selectors`` loop. For each request it keeps:

* ``kernel_final_ns`` - the kernel's software receive timestamp (epoch ns) of the segment that
  completed the request, via ``SO_TIMESTAMPING`` (Linux; ``None`` elsewhere). When one ``recvmsg``
  returns several segments the kernel reports the latest one, which is the completing one;
* ``kernel_first_ns`` - the same for the first segment of the request (the prefix, in a last-byte burst);
* ``handler_ns`` - ``time.time_ns()`` when the request had been parsed, what an application sees.

It answers ``GET /healthz`` and any ``POST`` with a small JSON 200 carrying ``X-Arrival-Ns``
(= ``handler_ns``), other requests with a JSON 404, or nothing at all when ``answer=False``; with
``keep_alive=False`` every response says ``Connection: close`` and the connection is closed.
Replies are sent after each batch of readable sockets, so that answering one request does not
delay reading the next.
"""

from __future__ import annotations

import json
import selectors
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass, field

import h11

from harness.local.poll import poll

SO_TIMESTAMPING = 37  # Linux values; the socket module does not export them
SCM_TIMESTAMPING = 37
SOF_TIMESTAMPING_RX_SOFTWARE = 1 << 3
SOF_TIMESTAMPING_SOFTWARE = 1 << 4
ANCILLARY = socket.CMSG_SPACE(48) if hasattr(socket, "CMSG_SPACE") else 0  # struct scm_timestamping
_POLL = 0.05  # how often the loop looks at the stop flag


@dataclass
class Record:
    """One request the recorder received."""

    conn: int
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    handler_ns: int
    kernel_first_ns: int | None = None
    kernel_final_ns: int | None = None


@dataclass
class _Client:
    conn_id: int
    sock: socket.socket
    http: h11.Connection = field(default_factory=lambda: h11.Connection(h11.SERVER))
    kernel_first_ns: int | None = None
    method: str = ""
    target: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes] = field(default_factory=list)


class Recorder:
    """Threaded loopback recorder; use as a context manager or call ``start``/``stop``."""

    def __init__(self, *, answer: bool = True, keep_alive: bool = True, host: str = "127.0.0.1") -> None:
        self.answer = answer
        self.keep_alive = keep_alive
        self.records: list[Record] = []
        self.kernel_timestamps = sys.platform.startswith("linux")
        self._lock = threading.Lock()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, 0))
        # Accepted sockets inherit the option, and the kernel keeps stamping while any socket
        # asks: so even the first segment of a new connection, read before accept(), is stamped.
        self.kernel_timestamps = self.kernel_timestamps and enable_timestamping(self._listener)
        self._listener.listen(1024)
        self._listener.setblocking(False)
        self.host, self.port = self._listener.getsockname()[:2]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="recorder", daemon=True)
        self._clients: dict[int, _Client] = {}
        self._next_conn = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "Recorder":
        if self.kernel_timestamps:
            self.kernel_timestamps = await_stamping()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._listener.close()

    def __enter__(self) -> "Recorder":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def clear(self) -> None:
        with self._lock:
            self.records.clear()

    def snapshot(self, method: str | None = None) -> list[Record]:
        """A copy of the records so far, optionally only those of one method."""
        with self._lock:
            return [r for r in self.records if method is None or r.method == method]

    def wait_for(self, count: int, *, method: str | None = None, timeout: float = 5.0) -> list[Record]:
        """The records once at least ``count`` (of ``method``) are in, or whatever is there at the timeout."""
        poll(lambda: len(self.snapshot(method)) >= count, timeout=timeout, interval=0.005)
        return self.snapshot(method)

    # -- the serving thread ---------------------------------------------------------------

    def _serve(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ, None)
            try:
                while not self._stop.is_set():
                    replies: list[tuple[_Client, bytes]] = []
                    for key, _ in selector.select(_POLL):
                        if key.data is None:
                            self._accept(selector)
                        else:
                            self._receive(selector, key.data, replies)
                    self._send_replies(selector, replies)
            finally:
                for client in list(self._clients.values()):
                    client.sock.close()
                self._clients.clear()

    def _accept(self, selector: selectors.BaseSelector) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            if self.kernel_timestamps:
                enable_timestamping(sock)
            sock.setblocking(False)
            client = _Client(self._next_conn, sock)
            self._next_conn += 1
            self._clients[client.conn_id] = client
            selector.register(sock, selectors.EVENT_READ, client)

    def _receive(self, selector: selectors.BaseSelector, client: _Client, replies: list) -> None:
        try:
            data, ancillary, _, _ = client.sock.recvmsg(65536, ANCILLARY)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data, ancillary = b"", []
        kernel_ns = kernel_time_ns(ancillary)
        if not data:
            self._drop(selector, client)
            return
        if client.kernel_first_ns is None:
            client.kernel_first_ns = kernel_ns
        client.http.receive_data(data)
        self._parse(selector, client, kernel_ns, replies)

    def _parse(self, selector: selectors.BaseSelector, client: _Client, kernel_ns: int | None, replies: list) -> None:
        while True:
            try:
                event = client.http.next_event()
            except h11.RemoteProtocolError:
                self._drop(selector, client)
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                client.method = event.method.decode()
                client.target = event.target.decode()
                client.headers = {k.decode(): v.decode("latin-1") for k, v in event.headers}
                client.chunks = []
            elif isinstance(event, h11.Data):
                client.chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                record = self._complete(client, kernel_ns)
                if self.answer:
                    replies.append((client, self._reply(client, record)))
            elif isinstance(event, h11.ConnectionClosed):
                self._drop(selector, client)
                return

    def _complete(self, client: _Client, kernel_ns: int | None) -> Record:
        record = Record(
            conn=client.conn_id, method=client.method, target=client.target, headers=client.headers,
            body=b"".join(client.chunks), handler_ns=time.time_ns(),
            kernel_first_ns=client.kernel_first_ns, kernel_final_ns=kernel_ns,
        )
        client.kernel_first_ns = None
        with self._lock:
            self.records.append(record)
        return record

    def _reply(self, client: _Client, record: Record) -> bytes:
        if record.method == "POST" or (record.method == "GET" and record.target == "/healthz"):
            status, payload = 200, {"ok": True, "conn": record.conn, "target": record.target}
        else:
            status, payload = 404, {"ok": False, "target": record.target}
        body = json.dumps(payload).encode()
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                   ("X-Arrival-Ns", str(record.handler_ns))]
        if not self.keep_alive:
            headers.append(("Connection", "close"))
        http = client.http
        return http.send(h11.Response(status_code=status, headers=headers)) + http.send(h11.Data(data=body)) + \
            http.send(h11.EndOfMessage())

    def _send_replies(self, selector: selectors.BaseSelector, replies: list[tuple[_Client, bytes]]) -> None:
        for client, wire in replies:
            try:
                client.sock.setblocking(True)  # replies are small; a brief block is fine here
                client.sock.settimeout(1.0)
                client.sock.sendall(wire)
                client.sock.setblocking(False)
            except OSError:
                self._drop(selector, client)
                continue
            if client.http.our_state is h11.DONE and client.http.their_state is h11.DONE:
                client.http.start_next_cycle()
                self._parse(selector, client, None, [])  # a pipelined request waits here; rare
            else:
                self._drop(selector, client)

    def _drop(self, selector: selectors.BaseSelector, client: _Client) -> None:
        if self._clients.pop(client.conn_id, None) is None:
            return
        try:
            selector.unregister(client.sock)
        except (KeyError, ValueError):
            pass
        client.sock.close()


def enable_timestamping(sock: socket.socket) -> bool:
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE)
    except OSError:
        return False
    return True


def await_stamping(timeout: float = 2.0) -> bool:
    """Wait until the kernel really stamps received segments; True once it does.

    Linux turns receive stamping on through deferred work when the first socket asks, so the
    first segments after that can go unstamped; a throw-away connection tells when it is live.
    """
    end = time.monotonic() + timeout
    with socket.create_server(("127.0.0.1", 0)) as listener:
        enable_timestamping(listener)
        with socket.create_connection(listener.getsockname(), timeout=timeout) as client:
            server, _ = listener.accept()
            with server:
                server.settimeout(timeout)
                while time.monotonic() < end:
                    client.sendall(b"x")
                    _, ancillary, _, _ = server.recvmsg(16, ANCILLARY)
                    if kernel_time_ns(ancillary) is not None:
                        return True
                    time.sleep(0.001)
    return False


def kernel_time_ns(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    """Epoch ns of the software receive timestamp in an SCM_TIMESTAMPING message, if there is one."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPING and len(data) >= 16:
            seconds, nanoseconds = struct.unpack("ll", data[:16])
            if seconds or nanoseconds:
                return seconds * 1_000_000_000 + nanoseconds
    return None


def refused_address() -> tuple[socket.socket, str]:
    """A bound but not listening socket (keep it open: the port stays ours) and its URL; connects are refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    host, port = sock.getsockname()[:2]
    return sock, f"http://{host}:{port}"
