"""The single-packet sender: every final frame of a burst leaves in one write, split only as the server's SETTINGS demand.

Real sockets and processes: a small h2c server on loopback (``tests/_h2server.py``) that records,
for every request, the kernel's receive timestamp of the segment that ended its stream and how many
data segments its connection had received; and the reference service on hypercorn.
"""

from __future__ import annotations

import json
import time

import pytest
from _h2server import H2Server

from harness import Plan, RunConfig, run_race
from harness.local.recorder import refused_address
from harness.reference import profile_of
from harness.reference.processes import start_service
from harness.verdict.result import EXIT_INVALID, EXIT_OK
from harness.senders import PreparedRequest, fire

# Real service processes: `pytest -m 'not slow'` leaves these out.
pytestmark = pytest.mark.slow


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
    report = run_race(RunConfig(plan=Plan(payments=3, duplicates=5), profile=profile_of(service),
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
    report = run_race(RunConfig(plan=Plan(payments=2, duplicates=3), profile=profile_of(service), sync="auto",
                                targets_file="exactly-once"))
    assert report.config["sync"] == "auto" and report.history_summary["sync"] == "single-packet"
    assert report.verdict.exit_code == EXIT_OK, report.explain()
