"""The sink's bounds on a call's body, on the HTTP channel and the proxy (mitmdump) alike.

A body cut short or stalled is recorded at once as ``partial`` with the bytes that arrived (never a
hang until the sink stops); a body past ``max_body`` is kept up to it, ``truncated``, with its size and
the sha256 of all of it; bytes that are not UTF-8 round-trip through ``body_b64``; a chunked body is
read. Every test talks to the sink over real sockets: a raw one to cut or stall a body, httpx otherwise.
"""

from __future__ import annotations

import base64
import hashlib
import json
import selectors
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from _poll import wait_until

from harness.sink import Sink, SinkSettings
from harness.sink.server import HTTPChannel

READ_TIMEOUT = 1.0
MAX_BODY = 64 * 1024
WITHIN = READ_TIMEOUT + 3.0  # a record due at once, or after read_timeout, appears within this (a busy CI machine)
HOST = "crm.example.com"  # where the proxy's calls are going (it never connects there)
ANNOUNCED = 284_811  # the cut-short upload the real backend saw


def pdf_upload(size: int = ANNOUNCED) -> bytes:
    """A PDF's bytes (not UTF-8: a binary comment, compressed streams), padded to ``size``."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.cell(0, 10, "Receipt for order_abc123, INR 499.00")
    data = bytes(pdf.output())
    return (data + bytes(range(256)) * (size // 256 + 1))[:size]


def received(record: dict[str, Any]) -> bytes:
    """The exact bytes a record kept: ``body_b64`` when present, else the text."""
    if "body_b64" in record:
        return base64.b64decode(record["body_b64"])
    return record["body"].encode("utf-8")


def answer_to(sock: socket.socket) -> bytes:
    """Everything the sink sends on ``sock`` until it closes it (a reset is a close too)."""
    sock.settimeout(WITHIN)
    got = b""
    try:
        while chunk := sock.recv(65536):
            got += chunk
    except (ConnectionResetError, ssl.SSLError):
        pass
    return got


class Channel:
    """One channel of a running sink: URLs and clients for ordinary calls, raw sockets for cut or stalled ones."""

    def __init__(self, name: str, sink: Sink) -> None:
        self.name, self.sink = name, sink
        self.port = sink.ports[name]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}" if self.name == "http" else f"https://{HOST}{path}"

    def client(self) -> httpx.Client:
        if self.name == "http":
            return httpx.Client(timeout=WITHIN)
        return httpx.Client(proxy=f"http://127.0.0.1:{self.port}", timeout=WITHIN,
                            verify=ssl.create_default_context(cafile=self.sink.ca_cert))

    def raw(self) -> socket.socket:
        """A socket on which a request's head and body can be written as they are (TLS through CONNECT: a proxy)."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=WITHIN)
        if self.name == "http":
            return sock
        sock.sendall(f"CONNECT {HOST}:443 HTTP/1.1\r\nHost: {HOST}:443\r\n\r\n".encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(4096)
            assert chunk, f"the proxy closed the CONNECT: {answer!r}"
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200"), answer
        return ssl.create_default_context(cafile=self.sink.ca_cert).wrap_socket(sock, server_hostname=HOST)

    def record(self, path: str, timeout: float = WITHIN) -> dict[str, Any]:
        """The record of the call to ``path``, waited for at most ``timeout`` s."""
        return wait_until(lambda: next((r for r in self.sink.records() if r.get("path") == path), None),
                          timeout=timeout, message=f"the record of {path} on the {self.name} channel")


def head(path: str, length: int) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/pdf\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


@pytest.fixture(params=["http", pytest.param("proxy", marks=pytest.mark.slow)])
def channel(request: pytest.FixtureRequest, tmp_path) -> Iterator[Channel]:
    if request.param == "proxy":
        request.getfixturevalue("mitmdump")
    settings = SinkSettings(**{request.param: 0}, read_timeout=READ_TIMEOUT, max_body=MAX_BODY,
                            ca_dir=str(tmp_path / "ca"))
    with Sink(settings, tmp_path / "sink.jsonl") as sink:
        yield Channel(request.param, sink)


def test_a_body_cut_short_by_a_closed_connection_is_recorded_at_once_as_partial(channel):
    upload = pdf_upload()
    with channel.raw() as sock:
        sock.sendall(head("/upload", len(upload)) + upload[:1000])
        time.sleep(0.2)  # the bytes reach the sink before the close does
    closed = time.monotonic()
    record = channel.record("/upload")
    assert time.monotonic() - closed < WITHIN
    assert record["partial"] == f"the body ended after 1000 of {ANNOUNCED} bytes (the client closed the connection)"
    assert received(record) == upload[:1000] and record["body_size"] == 1000
    assert "status" not in record  # it was never answered


def test_a_huge_content_length_is_streamed_never_allocated(channel):
    with channel.raw() as sock:
        sock.sendall(head("/huge", 100_000_000_000) + b"x" * 1000)
        time.sleep(0.2)
    record = channel.record("/huge")
    assert record["partial"] == "the body ended after 1000 of 100000000000 bytes (the client closed the connection)"
    assert record["body"] == "x" * 1000 and record["body_size"] == 1000


def test_a_stalled_body_is_recorded_as_partial_after_read_timeout_and_hung_up_on_unanswered(channel):
    upload = pdf_upload()
    with channel.raw() as sock:
        sock.sendall(head("/stalled", len(upload)) + upload[:1000])
        stalled = time.monotonic()
        record = channel.record("/stalled")
        waited = time.monotonic() - stalled
        assert answer_to(sock) == b""  # closed, no answer
    assert READ_TIMEOUT * 0.9 <= waited < WITHIN
    assert record["partial"] == f"no byte for {READ_TIMEOUT:g} s after 1000 of {ANNOUNCED} bytes"
    assert received(record) == upload[:1000] and record["body_size"] == 1000


def test_a_body_over_max_body_is_kept_up_to_it_with_its_size_and_the_sha256_of_all_of_it(channel):
    body = bytes(range(256)) * 800  # 204 800 bytes
    with channel.client() as client:
        answer = client.post(channel.url("/big"), content=body)
    assert answer.status_code == 200
    record = channel.record("/big")
    assert record["truncated"] is True and record["body_size"] == len(body)
    assert record["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert received(record) == body[:MAX_BODY] and "partial" not in record


def test_a_multipart_upload_with_a_pdf_round_trips_exactly_through_body_b64(channel):
    pdf = pdf_upload(20_000)
    with pytest.raises(UnicodeDecodeError):
        pdf.decode("utf-8")
    with channel.client() as client:
        request = client.build_request("POST", channel.url("/receipts"), data={"order": "order_abc123"},
                                       files={"file": ("Receipt.pdf", pdf, "application/pdf")})
        sent = request.read()
        answer = client.send(request)
    assert answer.status_code == 200
    record = channel.record("/receipts")
    assert received(record) == sent and record["body_size"] == len(sent) and "body_b64" in record
    assert record["body"] == sent.decode("utf-8", "replace")  # readers of the text read what they always did
    assert "truncated" not in record


def test_a_chunked_post_is_recorded_with_its_body(channel):
    parts = [b'{"orderRef": ', b'"don_7", ', b'"amount": 49900}']

    def chunks() -> Iterator[bytes]:
        yield from parts

    with channel.client() as client:
        answer = client.post(channel.url("/chunked"), content=chunks(), headers={"Content-Type": "application/json"})
    assert answer.status_code == 200
    record = channel.record("/chunked")
    assert record["headers"].get("Transfer-Encoding", record["headers"].get("transfer-encoding")) == "chunked"
    assert json.loads(record["body"]) == {"orderRef": "don_7", "amount": 49900}
    assert record["body_size"] == len(b"".join(parts)) and "partial" not in record


def test_the_sink_answers_ordinary_calls_after_a_partial_one(channel):
    with channel.raw() as sock:
        sock.sendall(head("/stalled", ANNOUNCED) + b"%PDF-1.4\n")
        assert "partial" in channel.record("/stalled")
    with channel.client() as client:
        answer = client.post(channel.url("/v1/donations"), json={"orderRef": "don_1"})
    assert (answer.status_code, answer.json()) == (200, {"ok": True})
    record = channel.record("/v1/donations")
    assert json.loads(record["body"]) == {"orderRef": "don_1"} and record["body_size"] == len(answer.request.content)
    assert "partial" not in record and record["status"] == 200


def test_the_sink_command_takes_read_timeout_and_max_body(tmp_path):
    records = tmp_path / "sink.jsonl"
    process = subprocess.Popen([sys.executable, "-m", "harness", "sink", "--http", "0", "--read-timeout", "1",
                                "--max-body", "16", "--json", "--records", str(records)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            assert selector.select(60), "the sink printed nothing within 60 s"
        line = process.stdout.readline()
        assert line.startswith("{"), line + process.stdout.read()
        port = json.loads(line)["ports"]["http"]
        httpx.post(f"http://127.0.0.1:{port}/big", content=b"a" * 40, timeout=WITHIN)
        with socket.create_connection(("127.0.0.1", port), timeout=WITHIN) as sock:
            sock.sendall(head("/stalled", 100) + b"b" * 10)
            assert answer_to(sock) == b""
        from harness.sink import read_records

        big, stalled = wait_until(lambda: len(read_records(records)) >= 2 and read_records(records), timeout=WITHIN)
    finally:
        process.terminate()
        process.wait(30)
    assert (big["body"], big["body_size"], big["truncated"]) == ("a" * 16, 40, True)
    assert stalled["partial"] == "no byte for 1 s after 10 of 100 bytes"


def test_the_http_channel_queues_at_least_128_waiting_connections(tmp_path):
    channel = HTTPChannel(0, lambda record: None, SinkSettings())
    channel.server.shutdown()  # nothing accepts now: every connection waits in the listen queue
    waiting: list[socket.socket] = []
    try:
        for _ in range(100):
            try:
                waiting.append(socket.create_connection(("127.0.0.1", channel.port), timeout=0.5))
            except OSError:  # the queue is full: the handshake's SYN is dropped
                break
        assert len(waiting) == 100
    finally:
        for sock in waiting:
            sock.close()
        channel.server.server_close()


@pytest.mark.slow
def test_a_gzip_encoded_call_through_the_proxy_is_read_by_its_fields(tmp_path, mitmdump):
    import gzip

    from harness.observe.sink import call_parts

    settings = SinkSettings(proxy=0, read_timeout=READ_TIMEOUT, max_body=MAX_BODY, ca_dir=str(tmp_path / "ca"))
    with Sink(settings, tmp_path / "sink.jsonl") as sink:
        channel = Channel("proxy", sink)
        body = gzip.compress(json.dumps({"orderRef": "don_9", "amount": 49900}).encode())
        with channel.client() as client:
            answer = client.post(channel.url("/gz"), content=body,
                                 headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
        assert answer.status_code == 200
        record = channel.record("/gz")
        assert call_parts(record)["fields"] == {"orderRef": "don_9", "amount": 49900}
        assert base64.b64decode(record["body_encoded_b64"]) == body  # the bytes as they travelled, kept apart
