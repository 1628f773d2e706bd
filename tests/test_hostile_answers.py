"""Answers a service controls the size and length of (issue 25, item 2): every sender streams an answer's
body, keeps its first 64 KiB (``body_limit``), counts and hashes the rest, and cuts an answer that never ends
at the burst's deadline or past ``ANSWER_READ_CAP`` bytes. Real sockets on 127.0.0.1: an HTTP/1.1 server (a
thread per connection) for the last-byte and naive senders, an h2c one for the single-packet sender; the
path says how each answers. Every test is bounded in time, and the servers stop sending after a bounded
number of bytes, so that a sender that never stops reading fails rather than hangs or eats the machine."""

from __future__ import annotations

import hashlib
import json
import re
import select
import socket
import threading
import time
from urllib.parse import parse_qs, urlsplit

import h2.config
import h2.connection
import h2.events
import pytest
from _loopback import LoopbackServer

from harness.history import History
from harness.senders import fire
from harness.senders.base import PreparedRequest

pytestmark = pytest.mark.timeout(90)

KIB, MIB = 1024, 1024 * 1024
KEPT = 64 * KIB  # the documented default: harness.senders.base.ANSWER_BODY_LIMIT
BIG = (b"0123456789abcdef" * (2_000_000 // 16 + 1))[:2_000_000]  # ASCII: its text is its bytes
PAD = "x" * 200_000
TRUNCATED_JSON = json.dumps({"receipt": "generated", "pad": PAD}).encode()  # JSON only whole; 200 KB
SMALL = json.dumps({"receipt": "generated", "n": 1}).encode()
CHUNK = b"0123456789abcdef" * 4096  # 64 KiB of ASCII, what an endless answer repeats
_SERVE_FOR = 60.0  # no server thread outlives this
H1_SYNCS = ["last-byte", "naive"]
SYNCS = [*H1_SYNCS, "single-packet"]
# An endless answer stops sending (without ever ending) after this many bytes: enough that a sender reading
# it to the end would take several deadlines' worth, bounded so that one that keeps it all cannot take GBs.
ENDLESS_BYTES = 128 * MIB


def answer_of(path: str) -> tuple[str, bytes | None, int]:
    """(content type, whole body or None for an endless one, bytes an endless one sends before it stalls)."""
    parts = urlsplit(path)
    if parts.path == "/big":
        return "application/octet-stream", BIG, 0
    if parts.path == "/truncated-json":
        return "application/json", TRUNCATED_JSON, 0
    if parts.path == "/text":
        return "text/plain", b"a plain answer", 0
    if parts.path == "/endless":
        return "application/json", None, int(parse_qs(parts.query).get("stall_after", [ENDLESS_BYTES])[0])
    return "application/json", SMALL, 0  # /small, /healthz and anything else


class H1Answers(LoopbackServer):
    """HTTP/1.1 keep-alive, a thread per connection; ``/endless`` is chunked and unthrottled until it stalls."""

    def __init__(self) -> None:
        self.listen(self._serve).settimeout(0.05)

    def _serve(self) -> None:
        end = time.monotonic() + _SERVE_FOR
        while not self._stop.is_set() and time.monotonic() < end:
            try:
                sock, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._connection, args=(sock,), daemon=True).start()

    def _connection(self, sock: socket.socket) -> None:
        with sock:
            sock.settimeout(_SERVE_FOR)
            pending = b""
            try:
                while not self._stop.is_set():
                    while b"\r\n\r\n" not in pending:
                        data = sock.recv(65536)
                        if not data:
                            return
                        pending += data
                    head, pending = pending.split(b"\r\n\r\n", 1)
                    lines = head.decode("latin-1").split("\r\n")
                    path = lines[0].split(" ")[1]
                    length = next((int(v) for k, _, v in (line.partition(":") for line in lines[1:])
                                   if k.strip().lower() == "content-length"), 0)
                    while len(pending) < length:
                        pending += sock.recv(65536)
                    pending = pending[length:]
                    self._answer(sock, path)
            except OSError:
                return  # the client went away

    def _answer(self, sock: socket.socket, path: str) -> None:
        kind, body, stall_after = answer_of(path)
        if body is not None:
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n" % (kind.encode(), len(body))
                         + body)
            return
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\n\r\n" % kind.encode())
        frame, sent = b"%x\r\n" % len(CHUNK) + CHUNK + b"\r\n", 0
        while sent < stall_after and not self._stop.is_set():
            sock.sendall(frame)
            sent += len(CHUNK)
        sock.recv(1)  # stalled, never ended: wait for the client to go


class _Stream:
    def __init__(self, body: bytes | None, stall_after: int) -> None:
        self.body, self.left = body, len(body) if body is not None else stall_after
        self.offset = 0

    def chunk(self, size: int) -> bytes:
        if self.body is not None:
            data = self.body[self.offset:self.offset + size]
        else:
            data = (CHUNK * (size // len(CHUNK) + 1))[:size]
        self.offset += len(data)
        self.left -= len(data)
        return data


class H2Answers(LoopbackServer):
    """h2c with prior knowledge, a thread per connection, the same answers; flow control respected."""

    def __init__(self) -> None:
        self.listen(self._serve).settimeout(0.05)

    def _serve(self) -> None:
        end = time.monotonic() + _SERVE_FOR
        while not self._stop.is_set() and time.monotonic() < end:
            try:
                sock, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._connection, args=(sock,), daemon=True).start()

    def _connection(self, sock: socket.socket) -> None:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        conn.initiate_connection()
        paths: dict[int, str] = {}
        streams: dict[int, _Stream] = {}
        end = time.monotonic() + _SERVE_FOR
        with sock:
            try:
                sock.sendall(conn.data_to_send())
                while not self._stop.is_set() and time.monotonic() < end:
                    sending = any(s.left > 0 and conn.local_flow_control_window(i) > 0 for i, s in streams.items())
                    if select.select([sock], [], [], 0 if sending else 0.05)[0]:
                        data = sock.recv(65536)
                        if not data:
                            return
                        for event in conn.receive_data(data):
                            if isinstance(event, h2.events.RequestReceived):
                                paths[event.stream_id] = dict(event.headers)[":path"]
                            elif isinstance(event, h2.events.StreamEnded):
                                kind, body, stall_after = answer_of(paths[event.stream_id])
                                conn.send_headers(event.stream_id, [(":status", "200"), ("content-type", kind)])
                                streams[event.stream_id] = _Stream(body, stall_after)
                            elif isinstance(event, h2.events.StreamReset):
                                streams.pop(event.stream_id, None)
                    for stream_id, stream in list(streams.items()):
                        budget = MIB  # per turn, so that the client's WINDOW_UPDATEs are read in between
                        while stream.left > 0 and budget > 0:
                            size = min(conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size,
                                       stream.left)
                            if size <= 0:
                                break
                            conn.send_data(stream_id, stream.chunk(size))
                            budget -= size
                        if stream.left == 0 and stream.body is not None:
                            conn.end_stream(stream_id)
                            del streams[stream_id]
                    sock.sendall(conn.data_to_send())
            except OSError:
                return  # the client went away


@pytest.fixture(scope="module")
def h1_server():
    with H1Answers() as server:
        yield server


@pytest.fixture(scope="module")
def h2_server():
    with H2Answers() as server:
        yield server


@pytest.fixture
def url(request, sync: str) -> str:
    return request.getfixturevalue("h2_server" if sync == "single-packet" else "h1_server").url


def get(url: str, *paths: str) -> list[PreparedRequest]:
    return [PreparedRequest("GET", f"{url}{path}", payment=f"p{i}") for i, path in enumerate(paths)]


@pytest.mark.parametrize("sync", SYNCS)
def test_a_2_mb_answer_is_kept_as_its_first_64_kib_with_its_whole_size_and_hash(url: str, sync: str) -> None:
    result = fire(get(url, "/big"), sync=sync, timeout=20)

    event = result.events[0]
    assert event.error is None and event.status == 200
    assert event.body == BIG[:KEPT].decode()
    assert (event.body_truncated, event.body_size, event.body_sha256) == (True, len(BIG), hashlib.sha256(BIG).hexdigest())
    assert len(result.history.dumps()) < 4 * KEPT  # the report holds the kept part, not 2 MB


@pytest.mark.parametrize("sync", SYNCS)
def test_the_bytes_kept_are_a_parameter_of_the_sender(url: str, sync: str) -> None:
    event = fire(get(url, "/big"), sync=sync, timeout=20, body_limit=1000).events[0]

    assert event.error is None and event.body == BIG[:1000].decode()
    assert event.body_truncated and event.body_size == len(BIG)


@pytest.mark.parametrize("sync", SYNCS)
def test_an_endless_answer_is_cut_at_the_deadline_with_the_bytes_kept_bounded(url: str, sync: str) -> None:
    timeout = 1.5
    started = time.monotonic()
    result = fire(get(url, "/endless", "/small"), sync=sync, timeout=timeout)
    took = time.monotonic() - started

    endless, small = result.events
    assert took < timeout + 3.0, f"the burst took {took:.1f} s with a {timeout} s timeout"
    assert re.fullmatch(r"read: answer still streaming after \d+\.\d s: cut", endless.error or ""), endless.error
    assert endless.status == 200 and endless.delivered
    assert isinstance(endless.body, str) and 0 < len(endless.body) <= KEPT  # ASCII: a character a byte
    assert endless.body_truncated and KEPT < endless.body_size <= ENDLESS_BYTES
    assert small.error is None and small.body == json.loads(SMALL)  # the other answer of the burst is read whole


@pytest.mark.parametrize("sync", SYNCS)
def test_an_answer_past_the_read_cap_is_cut_long_before_the_deadline(url: str, sync: str, monkeypatch) -> None:
    monkeypatch.setattr("harness.senders.base.ANSWER_READ_CAP", 4 * MIB, raising=False)
    timeout = 15.0
    started = time.monotonic()
    event = fire(get(url, f"/endless?stall_after={32 * MIB}"), sync=sync, timeout=timeout).events[0]
    took = time.monotonic() - started

    assert event.error == f"read: answer larger than {4 * MIB} bytes (4 MiB): cut", event.error
    assert took < timeout / 2, f"cut after {took:.1f} s, not at the cap"
    assert event.body_truncated and 4 * MIB < event.body_size <= 4 * MIB + 2 * 65536


@pytest.mark.parametrize("sync", ["last-byte", "single-packet"])
def test_a_json_answer_kept_in_part_has_no_outcome_and_is_not_parsed(url: str, sync: str, tmp_path) -> None:
    from harness.profile import load_profile
    from harness.run.judge import read_answers

    result = fire(get(url, "/truncated-json", "/small"), sync=sync, timeout=20)
    read_answers(load_profile("reference", {"RECEIPTS_DIR": str(tmp_path)}), result.history)

    cut, whole = result.events
    assert cut.error is None and cut.status == 200 and cut.body_truncated
    assert cut.body == TRUNCATED_JSON[:KEPT].decode() and cut.outcome is None  # '"receipt": "generated"' is in it
    assert whole.outcome == "generated"  # the profile reads the same field from a whole answer


@pytest.mark.parametrize("sync", SYNCS)
def test_ordinary_answers_are_kept_whole_and_parsed_as_before(url: str, sync: str) -> None:
    result = fire(get(url, "/small", "/text"), sync=sync, timeout=20)

    small, text = result.events
    assert small.error is None and small.body == json.loads(SMALL) and text.body == "a plain answer"
    assert [(e.body_truncated, e.body_size, e.body_sha256) for e in result.events] == [
        (False, len(SMALL), hashlib.sha256(SMALL).hexdigest()),
        (False, len(b"a plain answer"), hashlib.sha256(b"a plain answer").hexdigest())]


def test_the_body_fields_go_into_the_report_and_a_history_without_them_still_loads() -> None:
    data = {"version": 1, "sync": "last-byte", "origin_wall": 1.0, "events": [
        {"index": 0, "payment": "p1", "status": 200, "body": "abc", "body_size": 70_000, "body_sha256": "ab" * 32,
         "body_truncated": True},
        {"index": 1, "payment": "p1", "status": 200, "body": {"receipt": "generated"}},  # written before them
    ]}
    history = History.from_dict(data)

    kept, old = history.events
    assert (kept.body_size, kept.body_sha256, kept.body_truncated) == (70_000, "ab" * 32, True)
    assert (old.body_size, old.body_sha256, old.body_truncated) == (None, None, False)
    again = History.from_dict(json.loads(history.dumps())).events[0]
    assert (again.body_size, again.body_sha256, again.body_truncated) == (70_000, "ab" * 32, True)
