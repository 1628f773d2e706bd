"""A mitmproxy addon (loaded by ``mitmdump -s``): record every request and answer it here, never forwarding it.

Runs in mitmproxy's own environment, so it imports nothing from race-harness (mitmproxy itself only
inside the hooks: the HTTP channel imports ``BodyReceived`` from here, so both channels keep a body
alike). It appends one JSON line per request to ``sink_records`` and answers with
``sink_status``/``sink_body`` after ``sink_latency_ms``. Any connection mitmproxy would open to a real
server is refused in ``server_connect`` and counted in the records as a ``blocked`` line: nothing
leaves the machine.

A request body is streamed through ``BodyReceived``, never held whole: its first ``sink_max_body``
bytes kept, every byte counted and hashed. mitmproxy streams a body only towards a server, so a
request is pointed at a "hole" this addon listens on (loopback): the hole is sent no byte of the
body and answers only once the request is recorded, and the client still gets the sink's answer. A
body with no byte for ``sink_read_timeout`` seconds, or whose client hangs up before its end, is
recorded at once with ``partial``; a stalled HTTP/1 connection is then closed unanswered (HTTP/2 and
3: only that stream is failed, by mitmproxy, with a 502).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mitmproxy import http

READ_TIMEOUT = 5.0  # seconds without a byte of a body before the call is recorded as partial
MAX_BODY = 32 * 1024 * 1024  # bytes of a body a record keeps (the rest is counted and hashed)
CLOSED = "the client closed the connection"
_FLOW_HEADER = "x-race-harness-sink-flow"  # tells the hole which flow a connection streams
_ANSWER_HOLE = b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"


class BodyReceived:
    """A request body as it arrives: its first ``max_body`` bytes kept, every byte counted and hashed."""

    def __init__(self, max_body: int, expected: int | None) -> None:
        self.max_body = max_body
        self.expected = expected  # the announced Content-Length; None: chunked (or HTTP/2 without one)
        self.kept = bytearray()
        self.size = 0
        self._sha256 = hashlib.sha256()
        self.last_byte = time.monotonic()

    def feed(self, data: bytes) -> None:
        """Count and hash ``data``, keeping what still fits under ``max_body``."""
        if not data:
            return
        self.size += len(data)
        self._sha256.update(data)
        room = self.max_body - len(self.kept)
        if room > 0:
            self.kept += data[:room]
        self.last_byte = time.monotonic()

    def _so_far(self) -> str:
        if self.expected is None:
            return f"{self.size} bytes, before its last chunk"
        return f"{self.size} of {self.expected} bytes"

    def ended_early(self, why: str) -> str:
        """The ``partial`` of a body whose connection ended (``why``) before the body did."""
        return f"the body ended after {self._so_far()} ({why})"

    def stalled(self, seconds: float) -> str:
        """The ``partial`` of a body that sent no byte for ``seconds``."""
        return f"no byte for {seconds:g} s after {self._so_far()}"

    def fields(self, partial: str | None = None) -> dict[str, Any]:
        """The body's part of a record: ``body``, ``body_b64``, ``body_size``, ``truncated``, ``body_sha256``, ``partial``."""
        kept = bytes(self.kept)
        out: dict[str, Any] = {"body": kept.decode("utf-8", "replace")}  # what readers have always read
        try:
            kept.decode("utf-8")
        except UnicodeDecodeError:  # "replace" lost bytes: keep them exactly (a PDF in a multipart upload)
            out["body_b64"] = base64.b64encode(kept).decode("ascii")
        out["body_size"] = self.size
        if self.size > len(kept):
            out["truncated"] = True
            out["body_sha256"] = self._sha256.hexdigest()  # of every byte received, not only those kept
        if partial is not None:
            out["partial"] = partial
        return out


def announced_length(headers: Any) -> int | None:
    """The Content-Length a request announces (None: chunked, absent or unreadable)."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return None
    try:
        length = int(headers.get("content-length", ""))
    except ValueError:
        return None
    return length if length >= 0 else None


class _Call:
    """One proxied request: its record so far, its body, and whether (and how) the hole may answer."""

    def __init__(self, record: dict[str, Any], body: BodyReceived) -> None:
        self.record, self.body = record, body
        self.streamed = False  # mitmproxy streamed the body (through the hole), so the hole answers
        self.recorded = False
        self.answer = False
        self.release = asyncio.Event()  # the hole may answer (``answer``) or hang up
        self.watch: asyncio.Task | None = None

    def stream(self, data: bytes) -> list[bytes]:
        """mitmproxy's ``request.stream``: keep the chunk here and send the hole none of it."""
        self.streamed = True
        self.body.feed(data)
        return []


class RecordAndAnswer:
    """The addon: every request recorded (its body bounded, its read under a deadline) and answered here."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, _Call] = {}  # by flow id, from requestheaders until response or error
        self._hole: asyncio.AbstractServer | None = None
        self._hole_port = 0
        self._hole_lock: asyncio.Lock | None = None

    def load(self, loader) -> None:
        loader.add_option("sink_records", str, "", "JSON-lines file the sink reads")
        loader.add_option("sink_status", int, 200, "status of every answer")
        loader.add_option("sink_body", str, "", "body of every answer")
        loader.add_option("sink_content_type", str, "application/json", "content type of every answer")
        loader.add_option("sink_latency_ms", int, 0, "milliseconds before answering")
        # text, as mitmproxy's options have no float type
        loader.add_option("sink_read_timeout", str, str(READ_TIMEOUT),
                          "seconds without a byte of a request body before it is recorded as partial")
        loader.add_option("sink_max_body", int, MAX_BODY, "bytes of a request body kept (the rest counted and hashed)")

    def _append(self, record: dict) -> None:
        from mitmproxy import ctx

        with self._lock, open(ctx.options.sink_records, "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")

    def server_connect(self, data) -> None:
        if self._hole is not None and tuple(data.server.address or ())[:2] == ("127.0.0.1", self._hole_port):
            return  # the hole: this addon's own listener, which never forwards either
        # The sink never forwards: a connection to the real host is refused before it is opened.
        self._append({"t": time.time(), "channel": "proxy", "blocked": f"{data.server.address}"})
        data.server.error = "race-harness sink: never forwarded"

    async def requestheaders(self, flow: http.HTTPFlow) -> None:
        """Note the request's head as the client sent it, and stream its body through ``BodyReceived``."""
        from mitmproxy import ctx

        request = flow.request
        call = _Call(_head(request), BodyReceived(ctx.options.sink_max_body, announced_length(request.headers)))
        self._calls[flow.id] = call
        # mitmproxy streams a body only to a server: the hole, told which flow this is, sent no byte of it.
        # A request without a body is not streamed (mitmproxy ignores ``stream``), and then nothing connects.
        port = await self._ensure_hole()
        request.stream = call.stream
        request.headers[_FLOW_HEADER] = flow.id
        request.headers["content-length"] = "0"
        request.headers.pop("transfer-encoding", None)
        request.scheme, request.host, request.port = "http", "127.0.0.1", port
        call.watch = asyncio.get_running_loop().create_task(self._watch(flow, call))

    async def request(self, flow: http.HTTPFlow) -> None:
        """The whole request arrived: record it, and answer after ``sink_latency_ms``."""
        from mitmproxy import ctx

        call = self._calls.get(flow.id)
        if call is None:  # a flow that never had its headers hook (none should): recorded as before
            call = _Call(_head(flow.request), BodyReceived(ctx.options.sink_max_body, None))
            self._calls[flow.id] = call
        if not call.streamed:
            call.body.feed(flow.request.raw_content or b"")
        self._finish(call)
        if ctx.options.sink_latency_ms:
            await asyncio.sleep(ctx.options.sink_latency_ms / 1000)
        if call.streamed:
            call.answer = True  # the hole answers; ``response`` puts the sink's answer in its place
            call.release.set()
        else:
            flow.response = self._answer()

    def response(self, flow: http.HTTPFlow) -> None:
        """The hole's answer to a streamed request gives way to the sink's."""
        call = self._calls.pop(flow.id, None)
        if call is None:
            return
        if call.streamed:
            flow.response = self._answer()
        if call.watch is not None:
            call.watch.cancel()

    def error(self, flow: http.HTTPFlow) -> None:
        """The flow failed before it was answered: a body cut short is recorded now, with what arrived."""
        call = self._calls.pop(flow.id, None)
        if call is None:
            return
        if not call.recorded:
            why = CLOSED if not flow.client_conn.connected else (flow.error.msg if flow.error else "the flow failed")
            self._finish(call, call.body.ended_early(why))
        call.release.set()
        if call.watch is not None:
            call.watch.cancel()

    def done(self) -> None:
        if self._hole is not None:
            self._hole.close()

    def _answer(self) -> http.Response:
        from mitmproxy import ctx, http

        return http.Response.make(ctx.options.sink_status, ctx.options.sink_body.encode(),
                                  {"content-type": ctx.options.sink_content_type})

    def _finish(self, call: _Call, partial: str | None = None) -> None:
        """Record the call once: whole (answered with ``sink_status``) or ``partial`` (unanswered)."""
        from mitmproxy import ctx

        if call.recorded:
            return
        call.recorded = True
        fields = call.body.fields(partial)
        if partial is None and (decoded := _decoded(call)):
            fields.pop("body_b64", None)  # the encoded bytes: kept as body_encoded_b64, the content is decoded
            fields.update(decoded)
        if partial is None:
            fields["status"] = ctx.options.sink_status
        self._append({**call.record, **fields})

    async def _watch(self, flow: http.HTTPFlow, call: _Call) -> None:
        """The read deadline: a body with no byte for ``sink_read_timeout`` s is recorded as partial and hung up on."""
        from mitmproxy import ctx

        timeout = float(ctx.options.sink_read_timeout)
        while not call.recorded:
            idle = time.monotonic() - call.body.last_byte
            if idle >= timeout:
                self._finish(call, call.body.stalled(timeout))
                await self._hang_up(flow, call)
                return
            await asyncio.sleep(timeout - idle)

    async def _hang_up(self, flow: http.HTTPFlow, call: _Call) -> None:
        """Close a stalled HTTP/1 client's connection unanswered; on HTTP/2 and 3 fail that stream alone."""
        from mitmproxy import ctx

        if flow.request.http_version.startswith("HTTP/1"):
            # mitmproxy's own idle timeout (10 min) does this through the connection's handler: the same, sooner.
            server = ctx.master.addons.get("proxyserver")
            handler = getattr(server, "connections", {}).get(flow.client_conn.id)
            if handler is not None:
                await handler.on_timeout()
                return
        call.release.set()  # the hole hangs up unanswered: mitmproxy fails the stream

    async def _ensure_hole(self) -> int:
        if self._hole_lock is None:
            self._hole_lock = asyncio.Lock()
        async with self._hole_lock:
            if self._hole is None:
                self._hole = await asyncio.start_server(self._hole_connection, "127.0.0.1", 0, limit=1 << 20)
                self._hole_port = self._hole.sockets[0].getsockname()[1]
        return self._hole_port

    async def _hole_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One streamed request's server end: read its head, wait until it is recorded, answer (or not), close."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            call = self._calls.get(_flow_id(head))
            if call is not None:
                released = asyncio.ensure_future(call.release.wait())
                hung_up = asyncio.ensure_future(reader.read())  # mitmproxy closed: nothing left to answer
                done, pending = await asyncio.wait({released, hung_up}, return_when=asyncio.FIRST_COMPLETED)
                for task in pending:
                    task.cancel()
                if released in done and call.answer:
                    writer.write(_ANSWER_HOLE)
                    await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass
        finally:
            writer.close()


def _head(request: http.Request) -> dict[str, Any]:
    """What a record says of a request before its body: where it was going, as the client asked."""
    return {"t": time.time(), "channel": "proxy", "method": request.method, "scheme": request.scheme,
            "host": request.pretty_host, "port": request.port, "path": request.path,
            "headers": {k: v for k, v in request.headers.items(multi=False)}}


def _flow_id(head: bytes) -> str:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == _FLOW_HEADER.encode():
            return value.strip().decode("ascii", "replace")
    return ""


def _decoded(call: _Call) -> dict[str, Any]:
    """``body`` (and ``body_b64`` when it is not UTF-8) as the request's Content-Encoding decodes it, as this
    proxy has always recorded it, with the bytes received in ``body_encoded_b64``; nothing when the body is not
    encoded, was cut, or does not decode."""
    coding = next((v for k, v in call.record.get("headers", {}).items() if k.lower() == "content-encoding"), "")
    kept = bytes(call.body.kept)
    if not coding or not kept or call.body.size > len(kept):
        return {}
    from mitmproxy.net import encoding

    try:
        decoded = encoding.decode(kept, coding)
    except ValueError:
        return {}
    if not isinstance(decoded, bytes) or decoded == kept:
        return {}
    # body / body_b64 are the content as sent, decoded (what a reader parses: a JSON field, a multipart form);
    # the bytes as they travelled, still encoded, are kept apart.
    out = {"body": decoded.decode("utf-8", "replace"), "body_encoded_b64": base64.b64encode(kept).decode("ascii")}
    try:
        decoded.decode("utf-8")
    except UnicodeDecodeError:
        out["body_b64"] = base64.b64encode(decoded).decode("ascii")
    return out


addons = [RecordAndAnswer()]
