"""The harness's own reads of a service are bounded: an endless or huge answer, a FIFO swapped in for a file.

Real sockets: a tiny threaded HTTP server here answers ``/endless...`` with a chunked stream that never
ends (slowly, so a harness that reads it for ever does not eat the machine) and ``/large...`` with
50 MB. httpx's own timeout bounds only the gap between two reads, so neither trips it: only
``harness.tls.bounded_request``'s size and time bounds stop them.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

import harness.tls
from harness.errors import TargetError
from harness.observe import effects
from harness.observe.effects import read_effects
from harness.observe.observation import ReceiptFile
from harness.observe.state import read_state
from harness.profile import Profile, parse_profile
from harness.profile.payments import Payment
from harness.profile.schema import EffectSection, StateSection
from harness.tls import http_client

LARGE = 50 * 2**20
_SERVE_FOR = 60.0  # no endless answer outlives this, whatever the client does


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        try:
            if self.path.startswith("/endless"):
                self._endless()
            elif self.path.startswith("/large"):
                self._large(chunked=self.path.endswith("chunked"))
            else:
                self._send(200, b'{"ok": true}')
        except OSError:  # the client hung up: what a bounded reader does
            pass

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _endless(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        piece = b" " * 1024  # JSON whitespace, for ever: 200 KB/s, well inside any gap timeout
        until = time.monotonic() + _SERVE_FOR
        while time.monotonic() < until and not self.server.stopping.is_set():  # type: ignore[attr-defined]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.flush()
            time.sleep(0.005)

    def _large(self, chunked: bool) -> None:
        tail = b'{"items": [], "status": "PAID"}'
        block = b" " * 2**20
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(LARGE + len(tail)))
        self.end_headers()
        for part in [block] * (LARGE // len(block)) + [tail]:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part) if chunked else part)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.stopping = threading.Event()  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.stopping.set()  # type: ignore[attr-defined]
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def one_second(monkeypatch: pytest.MonkeyPatch) -> float:
    """Every bounded read gives up after 1 s (the default is 30)."""
    monkeypatch.setattr(harness.tls, "ANSWER_DEADLINE", 1.0, raising=False)
    return 1.0


def _profile(base_url: str, health_path: str) -> Profile:
    return Profile(parse_profile({"version": 1, "base_url": base_url, "health_path": health_path,
                                  "payments": {"source": "http", "path": "/p", "id": "id"},
                                  "deliveries": {"callback": {"path": "/cb", "body": {"a": "{transaction}"}}}}, "p"))


@pytest.mark.timeout(30)
def test_an_endless_health_answer_fails_the_reachability_check_within_the_deadline(server, one_second):
    started = time.monotonic()
    with http_client() as client, pytest.raises(TargetError, match="still streaming after 1 s"):
        _profile(server, "/endless-health").check_reachable(client)
    assert time.monotonic() - started < 10


@pytest.mark.timeout(30)
def test_an_endless_state_answer_fails_the_state_read_saying_so(server, one_second):
    section = StateSection(source="http", path="/endless/{id}", paid={"field": "status", "values": ["PAID"]})
    payments = [Payment(id=f"p{i}", merchant_transaction_id=f"t{i}", amount=100) for i in range(3)]
    started = time.monotonic()
    with http_client() as client, pytest.raises(httpx.HTTPError) as raised:
        read_state(section, payments, base_url=server, client=client, join_fields=set())
    assert time.monotonic() - started < 10
    assert str(raised.value) == f"the answer from {server}/endless/p0 was still streaming after 1 s"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_too_large_listing_of_side_effects_is_refused(server, framing):
    section = EffectSection(source="http", path=f"/large-{framing}", items="items", key={"field": "id"})
    with http_client() as client:
        records, problems = read_effects(section, server, client)
    assert records == []
    assert len(problems) == 1
    assert f"the answer from {server}/large-{framing} was larger than {harness.tls.ANSWER_MAX_BYTES} bytes" \
           in problems[0].message


@pytest.mark.timeout(30)
def test_a_json_effect_swapped_for_a_fifo_after_it_was_looked_at_is_not_read(tmp_path, monkeypatch):
    os.mkfifo(tmp_path / "receipt-1.json")  # nobody ever writes to it: a blocking open would wait for ever
    monkeypatch.setattr(effects, "odd_entry", lambda path: None)  # it was a regular file when odd_entry looked
    (record,), _ = effects._json_files(tmp_path, "*.json")
    assert not record.readable
    assert "not a regular file (not read)" in str(record.error)


@pytest.mark.timeout(30)
def test_a_text_effect_swapped_for_a_fifo_after_it_was_listed_is_not_read(tmp_path):
    os.mkfifo(tmp_path / "receipt-1.html")
    record = ReceiptFile(name="receipt-1.html", size=10)  # what the listing saw: a regular file
    effects._read_as_text(Path(tmp_path / "receipt-1.html"), record)
    assert not record.readable
    assert record.odd == "a FIFO (named pipe)"
    assert "not a regular file (not read)" in str(record.error)
