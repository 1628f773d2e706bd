"""The sink itself: an HTTP endpoint, an SMTP server and a forward proxy on loopback, recording to one file.

``serve(settings, records)`` runs until told to stop; ``python -m harness.sink.server`` is what a
run starts in a process of its own (it prints one JSON line when every channel listens, or one
error line and exits 4), and ``race-harness sink`` is the same for long-lived use.
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


class _HTTPChannel:
    def __init__(self, port: int, record: Callable[[dict[str, Any]], Any], settings: SinkSettings) -> None:
        answer = settings
        calls = {"n": 0}
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                arrived = time.time()
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with lock:
                    number = calls["n"]
                    calls["n"] += 1
                failing = number < answer.fail_first
                call = {"t": arrived, "channel": "http", "method": self.command,
                        "host": self.headers.get("Host", ""), "path": self.path, "headers": dict(self.headers.items()),
                        "body": body.decode("utf-8", "replace"), "status": answer.status}
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
            self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        except OSError as exc:
            raise SinkError(f"cannot listen for http on 127.0.0.1:{port}: {exc.strerror or exc}") from None
        self.server.daemon_threads = True
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
                http = _HTTPChannel(s.http, self.writer.write, s)
                self._channels.append(http)
                self.ports["http"] = http.port
            if s.smtp is not None:
                from .smtp import start_smtp

                port = _check_port("smtp", s.smtp)
                try:
                    self._channels.append(start_smtp(port, self.writer.write, s.latency_ms))
                except Exception as exc:  # aiosmtpd raises what the loop raised (OSError, a timeout)
                    raise SinkError(f"cannot listen for smtp on 127.0.0.1:{port}: {exc}") from None
                self.ports["smtp"] = port
            if s.proxy is not None:
                from .proxy import ProxyChannel

                port = _check_port("proxy", s.proxy)
                proxy = ProxyChannel(port, self.writer.write, status=s.status, body=s.body,
                                     content_type=s.content_type, latency_ms=s.latency_ms, ca_dir=s.ca_dir,
                                     mitmdump=s.mitmdump).start()
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
        env.update(HTTPS_PROXY=proxy, https_proxy=proxy, HTTP_PROXY=proxy, http_proxy=proxy)
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
