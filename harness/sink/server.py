"""The sink itself: an HTTP endpoint, an SMTP server and a forward proxy on loopback, recording to one file.

``serve(settings, records)`` runs until told to stop; ``python -m harness.sink.server`` is what a
run starts in a process of its own (it prints one JSON line when every channel listens, or one
error line and exits 4), and ``race-harness sink`` is the same for long-lived use.

The HTTP and proxy channels keep a body alike (``BodyReceived``): ``body`` (the text), ``body_b64``
(the exact bytes, when they are not UTF-8), ``body_size`` (bytes received), and past ``max_body``
``truncated`` with the ``body_sha256`` of all of it. A body that sends no byte for ``read_timeout``
seconds, or whose client hangs up before its end, is recorded at once with ``partial`` (why, in one
line) and what arrived; its connection is closed without an answer (a caller that stalls or hung
up reads none, and an answer would read as a call that went through).
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import struct
import sys
import threading
import time
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

from harness.errors import SinkError
# the addon's module imports mitmproxy only inside its hooks: its body bookkeeping is shared, so the
# proxy channel (in mitmproxy's own venv) and this one write the same record fields
from .mitm_addon import CLOSED, MAX_BODY, READ_TIMEOUT, BodyReceived, announced_length
from .records import RecordWriter

EXIT_USAGE = 4
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


@dataclass
class SinkSettings:
    """Which channels listen where (None: not started; 0: a free port) and how every call is answered."""

    http: int | None = None
    smtp: int | None = None
    proxy: int | None = None
    status: int = 200
    body: str = '{"ok": true}'
    content_type: str = "application/json"
    latency_ms: float = 0.0
    ca_dir: str | None = None
    mitmdump: str | None = None
    # A downstream outage (the nemesis's downstream@first:K): the first ``fail_first`` HTTP calls fail —
    # answered with the status in ``fail_as`` ("503"), reset ("reset") or left unanswered ("timeout", for
    # ``fail_hold_s``) — and are recorded with ``"failed"``: an attempt, not a side effect. Then it recovers.
    fail_first: int = 0
    fail_as: str = "503"
    fail_hold_s: float = 10.0
    # What a stalled or hostile caller cannot make the sink do: wait for a body forever, or hold it whole.
    read_timeout: float = READ_TIMEOUT  # seconds without a byte of a body before the call is recorded as partial
    max_body: int = MAX_BODY  # bytes of a body a record keeps (the rest is read, counted and hashed)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _check_port(channel: str, port: int) -> int:
    """The port to listen on (a free one for 0); SinkError naming the channel when it is taken."""
    if port == 0:
        return _free_port()
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind: a closed run's TIME_WAIT is no user
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            raise SinkError(f"cannot listen for {channel} on 127.0.0.1:{port}: {exc.strerror or exc}") from None
    return port


_READ = 65536  # bytes asked of the socket at a time: a body is streamed, never read whole
_LINE = 4096  # longest chunk-size or trailer line of a chunked body


class _Server(ThreadingHTTPServer):
    # A burst's simultaneous calls queue here: with socketserver's 5, 15 of them waited >= 1 s (a SYN retry).
    request_queue_size = 128
    daemon_threads = True


class HTTPChannel:
    def __init__(self, port: int, record: Callable[[dict[str, Any]], Any], settings: SinkSettings) -> None:
        answer = settings
        calls = {"n": 0}
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                arrived = time.time()
                body, partial = self._read_body()
                call = {"t": arrived, "channel": "http", "method": self.command,
                        "host": self.headers.get("Host", ""), "path": self.path, "headers": dict(self.headers.items()),
                        **body.fields(partial)}
                if partial is not None:
                    # Recorded now, not at the sink's stop, and not counted among the calls a downstream outage
                    # fails: the call never arrived whole. Closed unanswered: a caller that stalled or hung up
                    # reads no answer, and one would read as a call that went through.
                    record(call)
                    self.close_connection = True
                    return
                call["status"] = answer.status
                with lock:
                    number = calls["n"]
                    calls["n"] += 1
                failing = number < answer.fail_first
                if failing:
                    record({**call, "failed": answer.fail_as})
                    self._fail()
                    return
                record(call)
                if answer.latency_ms:
                    time.sleep(answer.latency_ms / 1000)
                payload = answer.body.encode()
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            def _read_body(self) -> tuple[BodyReceived, str | None]:
                """The request's body (Content-Length or chunked), and why it is partial (None: it is whole)."""
                chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
                expected = announced_length({k.lower(): v for k, v in self.headers.items()})
                body = BodyReceived(answer.max_body, None if chunked else expected or 0)
                if not chunked and expected is None and self.headers.get("Content-Length") is not None:
                    return body, f"an unreadable Content-Length {self.headers['Content-Length']!r}"
                if not chunked and not expected:
                    return body, None
                previous = self.connection.gettimeout()
                # A deadline per read: read_timeout s without a byte is a stall, however long the body.
                self.connection.settimeout(answer.read_timeout)
                try:
                    return body, (self._read_chunked(body) if chunked else self._read_exactly(body, expected or 0))
                except TimeoutError:
                    return body, body.stalled(answer.read_timeout)
                except OSError as exc:  # a reset: the client is gone as surely as after a close
                    return body, body.ended_early(f"the connection failed: {exc.strerror or exc}")
                finally:
                    try:
                        self.connection.settimeout(previous)
                    except OSError:
                        pass

            def _read_exactly(self, body: BodyReceived, length: int) -> str | None:
                """Stream ``length`` bytes into ``body``; why it ended early (None: it did not)."""
                while length:
                    data = self.rfile.read1(min(length, _READ))
                    if not data:
                        return body.ended_early(CLOSED)
                    body.feed(data)
                    length -= len(data)
                return None

            def _read_chunked(self, body: BodyReceived) -> str | None:
                """Stream a chunked body into ``body`` (its trailers skipped); why it ended early (None: it did not)."""
                while True:
                    line = self.rfile.readline(_LINE)
                    if not line.endswith(b"\n"):
                        return (f"a chunk-size line longer than {_LINE} bytes after {body.size} bytes of the body"
                                if len(line) >= _LINE else body.ended_early(CLOSED))
                    try:
                        size = int(line.split(b";", 1)[0].strip(), 16)
                    except ValueError:
                        size = -1
                    if size < 0:
                        return f"a malformed chunk-size line {line[:40]!r} after {body.size} bytes of the body"
                    if size == 0:
                        break
                    if (ended := self._read_exactly(body, size)) is not None:
                        return ended
                    if self.rfile.readline(_LINE).strip():
                        return f"a chunk longer than its size line said, after {body.size} bytes of the body"
                for _ in range(100):  # trailers, to the blank line; a client gone now has sent the whole body
                    line = self.rfile.readline(_LINE)
                    if not line.strip():
                        break
                return None

            def _fail(self) -> None:
                """The downstream is out: a 5xx, a reset, or no answer until the caller gives up."""
                if answer.fail_as == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    return
                if answer.fail_as == "timeout":
                    time.sleep(answer.fail_hold_s)
                    self.close_connection = True
                    return
                payload = b'{"error": "downstream unavailable"}'
                self.send_response(int(answer.fail_as))
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        for method in METHODS:
            setattr(Handler, f"do_{method}", Handler._any)
        try:
            self.server = _Server(("127.0.0.1", port), Handler)
        except OSError as exc:
            raise SinkError(f"cannot listen for http on 127.0.0.1:{port}: {exc.strerror or exc}") from None
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="race-harness-sink-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(10)


class RunningSink:
    """Every channel the settings ask for, listening and recording into ``records``."""

    def __init__(self, settings: SinkSettings, records: Path) -> None:
        self.settings, self.records = settings, Path(records)
        self.writer = RecordWriter(self.records)
        self.ports: dict[str, int] = {}
        self.ca_cert: str | None = None
        self._channels: list[Any] = []

    def start(self) -> "RunningSink":
        s = self.settings
        try:
            if s.http is not None:
                http = HTTPChannel(s.http, self.writer.write, s)
                self._channels.append(http)
                self.ports["http"] = http.port
            if s.smtp is not None:
                from .smtp import start_smtp

                port = _check_port("smtp", s.smtp)
                try:
                    self._channels.append(start_smtp(port, self.writer.write, s.latency_ms, s.max_body))
                except Exception as exc:  # aiosmtpd raises what the loop raised (OSError, a timeout)
                    raise SinkError(f"cannot listen for smtp on 127.0.0.1:{port}: {exc}") from None
                self.ports["smtp"] = port
            if s.proxy is not None:
                from .proxy import ProxyChannel

                port = _check_port("proxy", s.proxy)
                proxy = ProxyChannel(port, self.writer.write, status=s.status, body=s.body,
                                     content_type=s.content_type, latency_ms=s.latency_ms, ca_dir=s.ca_dir,
                                     mitmdump=s.mitmdump, read_timeout=s.read_timeout,
                                     max_body=s.max_body).start()
                self._channels.append(proxy)
                self.ports["proxy"] = port
                self.ca_cert = str(proxy.ca_cert)
        except BaseException:
            self.stop()
            raise
        return self

    def ready(self) -> dict[str, Any]:
        """What a service is told, as one JSON-able dict (the ports, the CA, the records file, the variables)."""
        return {"ready": True, "ports": self.ports, "ca_cert": self.ca_cert, "records": str(self.records),
                "env": service_env(self.ports, self.ca_cert)}

    def stop(self) -> None:
        while self._channels:
            channel = self._channels.pop()
            try:
                channel.stop()
            except Exception:  # stopping one channel never keeps the others running
                pass
        self.writer.close()


def service_env(ports: dict[str, int], ca_cert: str | None) -> dict[str, str]:
    """The variables that point a service at the sink (its own settings may have other names)."""
    env: dict[str, str] = {}
    if "http" in ports:
        env["SINK_URL"] = f"http://127.0.0.1:{ports['http']}"
    if "smtp" in ports:
        env.update(SMTP_HOST="127.0.0.1", SMTP_PORT=str(ports["smtp"]))
    if "proxy" in ports:
        proxy = f"http://127.0.0.1:{ports['proxy']}"
        # NO_PROXY keeps loopback direct: a client that reads the environment (httpx, requests, axios) would
        # otherwise send its plain call to the sink's own http channel (SINK_URL) through the proxy, where it is
        # recorded as a proxy call to 127.0.0.1 and a correct service is judged to have missed its effect.
        env.update(HTTPS_PROXY=proxy, https_proxy=proxy, HTTP_PROXY=proxy, http_proxy=proxy,
                   NO_PROXY="127.0.0.1,localhost,::1", no_proxy="127.0.0.1,localhost,::1")
        if ca_cert:
            env.update(SSL_CERT_FILE=ca_cert, REQUESTS_CA_BUNDLE=ca_cert, NODE_EXTRA_CA_CERTS=ca_cert,
                       CURL_CA_BUNDLE=ca_cert)
    return env


def serve(settings: SinkSettings, records: Path, announce: Callable[[dict[str, Any]], None],
          stop: threading.Event) -> None:
    """Listen and record until ``stop`` is set (SinkError when a channel cannot start)."""
    sink = RunningSink(settings, records).start()
    try:
        announce(sink.ready())
        while not stop.wait(0.5):
            pass
    finally:
        sink.stop()


def stop_on_signals(stop: threading.Event) -> None:
    """SIGTERM and SIGINT end the sink cleanly (main thread only)."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())


def main(argv: list[str] | None = None) -> int:
    """``python -m harness.sink.server --settings JSON --records FILE``: one JSON line when ready."""
    parser = argparse.ArgumentParser(prog="harness.sink.server")
    parser.add_argument("--settings", required=True, help="SinkSettings as JSON")
    parser.add_argument("--records", required=True, type=Path)
    args = parser.parse_args(argv)
    settings = SinkSettings(**json.loads(args.settings))
    stop = threading.Event()
    stop_on_signals(stop)

    def announce(ready: dict[str, Any]) -> None:
        print(json.dumps(ready), flush=True)

    try:
        serve(settings, args.records, announce, stop)
    except SinkError as exc:
        print(f"sink: {exc}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
