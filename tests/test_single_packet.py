"""The single-packet sender: every final frame of a burst leaves in one write, split only as the server's SETTINGS demand.

Real sockets and processes: a small h2c server on loopback (``h2`` on the server side) that
records, for every request, the kernel's receive timestamp of the segment that ended its stream
and how many data segments its connection had received; and the reference service on hypercorn.
"""

from __future__ import annotations

import json
import selectors
import socket
import struct
import threading
import time

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest

from harness import Plan, RunConfig, run_race
from harness._recorder import (
    _ANCILLARY,
    _await_stamping,
    _enable_timestamping,
    _kernel_ns,
    refused_address,
)
from harness.reference import target_of
from harness.reference.processes import start_service
from harness.result import EXIT_INVALID, EXIT_OK
from harness.senders import PreparedRequest, fire

# Real service processes: `pytest -m 'not slow'` leaves these out.
pytestmark = pytest.mark.slow

_DATA_SEGS_IN = 152  # offset of tcpi_data_segs_in in Linux's struct tcp_info (segments that carried data)
_SERVE_FOR = 30.0  # no test server thread outlives this


def _data_segments_in(sock: socket.socket) -> int:
    return struct.unpack_from("I", sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256), _DATA_SEGS_IN)[0]


class H2Server:
    """An h2c server (prior knowledge) that answers every request 200 and records how its streams ended.

    ``ended``: one dict per request stream (conn, stream, path, kernel_ns of the segment with its
    END_STREAM, data segments received on that connection by then); ``ping_segments``: per
    connection, the data segments received when its last PING arrived (before the ACK left).
    """

    def __init__(self, max_streams: int = 100) -> None:
        self.max_streams = max_streams
        self.ended: list[dict] = []
        self.ping_segments: dict[int, int] = {}
        self.connections = 0
        self.stamping = _await_stamping()
        self._listener = socket.create_server(("127.0.0.1", 0))
        _enable_timestamping(self._listener)
        self._listener.setblocking(False)
        self.url = "http://127.0.0.1:%d" % self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> "H2Server":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()

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
            for sock in conns:
                sock.close()

    def _h2(self) -> h2.connection.H2Connection:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        conn.local_settings = h2.settings.Settings(client=False, initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self.max_streams})
        conn.initiate_connection()
        return conn

    def _receive(self, sock: socket.socket, number: int, conn: h2.connection.H2Connection) -> bool:
        data, ancillary, _, _ = sock.recvmsg(65536, _ANCILLARY)
        if not data:
            return False
        kernel_ns, paths = _kernel_ns(ancillary), {}
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.PingReceived):
                self.ping_segments[number] = _data_segments_in(sock)  # the ACK has not left yet
            elif isinstance(event, h2.events.RequestReceived):
                paths[event.stream_id] = dict(event.headers)[":path"]
                conn.__dict__.setdefault("paths", {}).update(paths)
            elif isinstance(event, h2.events.DataReceived):
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                path = conn.__dict__["paths"][event.stream_id]
                if path != "/healthz":
                    self.ended.append({"conn": number, "stream": event.stream_id, "path": path,
                                       "kernel_ns": kernel_ns, "segments": _data_segments_in(sock)})
                body = json.dumps({"stream": event.stream_id}).encode()
                conn.send_headers(event.stream_id, [(":status", "200"), ("content-type", "application/json"),
                                                    ("x-arrival-ns", str(time.time_ns()))])
                conn.send_data(event.stream_id, body, end_stream=True)
        sock.sendall(conn.data_to_send())
        return True


def _burst(url: str, n: int, *, with_body: int = 0) -> list[PreparedRequest]:
    """``n`` requests: the first ``with_body`` POSTs carrying a JSON body, the rest bodyless GETs."""
    return [PreparedRequest("POST", f"{url}/burst/{i}", headers=(("content-type", "application/json"),),
                            body=json.dumps({"i": i}).encode()) if i < with_body
            else PreparedRequest("GET", f"{url}/burst/{i}") for i in range(n)]


def test_every_final_frame_arrives_in_the_one_segment_sent_after_the_ping():
    with H2Server() as server:
        result = fire(_burst(server.url, 20, with_body=8), sync="single-packet", timeout=10)
        deadline = time.monotonic() + 5
        while len(server.ended) < 20 and time.monotonic() < deadline:
            time.sleep(0.01)

    assert result.all_responded(), result.summary()
    assert len(server.ended) == 20
    assert {e.meta["h2"]["connections"] for e in result.events} == {1}
    assert {e.meta["h2"]["final_write_bytes"] for e in result.events} == {20 * 9 + 8 * 1}  # 20 frame heads, 8 bytes
    # After the PING, the connection received exactly one more data segment, and it ended all 20 streams.
    assert {r["segments"] for r in server.ended} == {server.ping_segments[0] + 1}
    if server.stamping:
        assert len({r["kernel_ns"] for r in server.ended}) == 1


def test_a_burst_larger_than_max_concurrent_streams_is_split_into_as_few_connections_and_all_answered():
    with H2Server(max_streams=4) as server:
        result = fire(_burst(server.url, 10, with_body=3), sync="single-packet", timeout=10)

    assert result.all_responded(), result.summary()
    how = [e.meta["h2"] for e in result.events]
    assert {h["connections"] for h in how} == {3} and server.connections == 3
    assert sorted(h["streams"] for h in how) == [2] * 2 + [4] * 8
    assert {h["connection"] for h in how} == {e.connection for e in result.events} == {0, 1, 2}
    assert sorted(e.body["stream"] for e in result.events) == sorted(h["stream"] for h in how)
    # Each connection's final frames still arrived together.
    for conn in range(3):
        segments = {r["segments"] for r in server.ended if r["conn"] == conn}
        assert segments == {server.ping_segments[conn] + 1}


def test_a_refused_origin_fails_its_own_requests_at_connect_and_no_others():
    blocker, refused_url = refused_address()
    with blocker, H2Server() as server:
        requests = _burst(server.url, 3) + _burst(refused_url, 2) + _burst(server.url, 1)
        result = fire(requests, sync="single-packet", timeout=10)

    errors = [e.error for e in result.events]
    assert [e is None for e in errors] == [True, True, True, False, False, True]
    assert all(err.startswith("connect:") for err in errors[3:5]), errors
    assert [e.status for e in result.events] == [200, 200, 200, None, None, 200]
    assert [e.delivered for e in result.events[3:5]] == [False, False]  # the oracle: never reached the service


@pytest.fixture
def h2_service(tmp_path):
    started = []

    def start(mode: str, *, tls: bool = False, generation_delay_ms: float = 150.0):
        service = start_service(tmp_path / f"receipts-{len(started)}", mode=mode, http2=True, tls=tls,
                                generation_delay_ms=generation_delay_ms, log_path=tmp_path / f"service-{len(started)}.log")
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


def test_the_http2_reference_service_stamps_arrival_when_the_final_frame_came_not_the_headers(h2_service):
    service = h2_service("atomic")
    body = json.dumps({"response": "x"}).encode()
    settle = 0.3  # the final frames are held back this long after the headers and body prefixes
    request = PreparedRequest("POST", service.url + "/api/public/service-charges/phonepe/callback", body=body,
                              headers=(("content-type", "application/json"),))
    result = fire([request] * 3, sync="single-packet", settle=settle, timeout=10)

    released_wall = [result.history.origin_wall + e.t_release for e in result.events]
    for event, released in zip(result.events, released_wall):
        assert event.status is not None and event.server_arrival is not None, event
        # Stamped on receipt of the final frame: after the release, not ~settle before it.
        assert event.server_arrival >= released - settle / 10, (event.server_arrival - released)


def test_tls_with_alpn_h2_carries_a_burst_when_verification_is_off_and_refuses_it_when_on(h2_service):
    service = h2_service("atomic", tls=True)
    assert service.url.startswith("https://")
    requests = [PreparedRequest("GET", service.url + "/healthz")] * 4

    insecure = fire(requests, sync="single-packet", verify_tls=False, timeout=10)
    verified = fire(requests, sync="single-packet", verify_tls=True, timeout=10)

    assert insecure.all_responded() and {e.meta["h2"]["connections"] for e in insecure.events} == {1}
    assert all(e.error.startswith("connect:") and "CERTIFICATE_VERIFY_FAILED" in e.error for e in verified.events)


@pytest.mark.parametrize("mode, exit_code", [("vulnerable", EXIT_INVALID), ("atomic", EXIT_OK)])
def test_single_packet_race_against_the_http2_reference_service_judges_its_mode(h2_service, mode, exit_code):
    service = h2_service(mode)
    report = run_race(RunConfig(plan=Plan(payments=3, duplicates=5), target=target_of(service),
                                service_pid=service.pid, sync="single-packet", targets_file="exactly-once",
                                label=mode))

    assert report.verdict.exit_code == exit_code, report.explain()
    callbacks = [e for e in report.history["events"] if e["meta"].get("h2")]
    assert len(callbacks) >= 3 * 5 and all(e["status"] is not None for e in callbacks)


def test_auto_sync_picks_single_packet_for_an_http2_target_and_last_byte_for_an_http1_one(h2_service,
                                                                                          reference_service):
    from harness.senders.auto import resolve_sync, speaks_h2

    h2 = h2_service("atomic")
    h1 = reference_service("atomic", generation_delay_ms=0)
    assert speaks_h2(h2.url) and not speaks_h2(h1.url)
    assert resolve_sync("auto", h2.url) == "single-packet" and resolve_sync("auto", h1.url) == "last-byte"
    assert resolve_sync("naive", h2.url) == "naive"  # a named sender is never second-guessed


def test_a_run_with_auto_sync_reports_the_sender_that_ran(h2_service):
    service = h2_service("atomic")
    report = run_race(RunConfig(plan=Plan(payments=2, duplicates=3), target=target_of(service), sync="auto",
                                targets_file="exactly-once"))
    assert report.config["sync"] == "auto" and report.history_summary["sync"] == "single-packet"
    assert report.verdict.exit_code == EXIT_OK, report.explain()
