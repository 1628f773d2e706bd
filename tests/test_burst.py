"""The burst sender against real sockets on 127.0.0.1; every test is bounded in time."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path
from typing import Iterator

import h11
import pytest

from _poll import clock_anchor, wait_until
from harness.local.recorder import Recorder, refused_address
from harness.senders.burst import BurstResult, PreparedRequest, fire
from harness.history import History

BURST = 50


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    with Recorder() as server:
        yield server


def posts(url: str, n: int, **kwargs) -> list[PreparedRequest]:
    return [
        PreparedRequest("POST", f"{url}/r/{i}", (("Content-Type", "application/json"),), json.dumps({"i": i}).encode(),
                        **kwargs)
        for i in range(n)
    ]


def kernel_spread_s(records) -> float:
    stamps = [r.kernel_final_ns for r in records]
    assert None not in stamps, "the recorder had no kernel timestamp for some request"
    return (max(stamps) - min(stamps)) / 1e9


def require_kernel_timestamps(server: Recorder) -> None:
    # The suite runs on Linux, which has them; a machine without them must fail loudly, not skip.
    assert server.kernel_timestamps, "no SO_TIMESTAMPING on this system: kernel-seen spreads cannot be measured"


def staggered_send(url_port: int, n: int, gap: float) -> None:
    """Send n complete POSTs on n connections one after another, ``gap`` seconds apart."""
    request = b"POST /staggered HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
    socks = [socket.create_connection(("127.0.0.1", url_port), timeout=5) for _ in range(n)]
    try:
        for sock in socks:
            sock.sendall(request)
            time.sleep(gap)
        for sock in socks:
            sock.recv(4096)  # the reply: the recorder has the request
    finally:
        for sock in socks:
            sock.close()


# -- events ------------------------------------------------------------------------------------


def test_every_request_gets_one_event_in_input_order_with_status_and_parsed_body(recorder: Recorder) -> None:
    requests = [
        PreparedRequest("POST", f"{recorder.url}/r/{i}", (), b"{}", payment=f"p{i}", channel="callback", meta={"i": i})
        for i in range(10)
    ]
    result = fire(requests, timeout=10)

    assert [e.index for e in result.history] == list(range(10))
    assert [e.payment for e in result.history] == [f"p{i}" for i in range(10)]
    assert all(e.channel == "callback" for e in result.history)
    assert [e.meta for e in result.history] == [{"i": i} for i in range(10)]
    assert [e.status for e in result.history] == [200] * 10
    assert [e.body["target"] for e in result.history] == [f"/r/{i}" for i in range(10)]
    assert len({e.connection for e in result.history}) == 10
    assert all(e.error is None and e.latency is not None and e.latency >= 0 for e in result.history)
    assert result.all_responded() and result.sync == "last-byte" and result.history.sync == "last-byte"


def test_each_request_rides_the_warm_connection_its_warm_up_used(recorder: Recorder) -> None:
    fire(posts(recorder.url, 5), timeout=10)

    records = recorder.wait_for(10)
    warmups = {r.conn for r in records if r.method == "GET" and r.target == "/healthz"}
    bursts = {r.conn for r in records if r.method == "POST"}
    assert len(warmups) == 5 and bursts == warmups


def test_no_warm_up_is_sent_when_warmup_path_is_none(recorder: Recorder) -> None:
    result = fire(posts(recorder.url, 3), timeout=10, warmup_path=None)

    assert result.all_responded()
    assert [r.method for r in recorder.wait_for(3)] == ["POST"] * 3


def test_a_server_closing_after_the_warm_up_gets_a_fresh_connection_for_the_request() -> None:
    with Recorder(keep_alive=False) as server:
        result = fire(posts(server.url, 3), timeout=10)

    assert result.all_responded(), result.summary()
    assert all(e.meta.get("warm") is False for e in result.history)


def test_x_arrival_ns_is_parsed_into_server_arrival(recorder: Recorder) -> None:
    result = fire(posts(recorder.url, 5), timeout=10)

    handler_ns = {r.target: r.handler_ns for r in recorder.wait_for(5, method="POST")}
    for event in result.history:
        assert event.server_arrival == handler_ns[event.body["target"]] / 1e9
    # epoch seconds as floats keep about 0.2 us of resolution
    assert result.arrival_spread == pytest.approx((max(handler_ns.values()) - min(handler_ns.values())) / 1e9, abs=1e-6)


def test_naive_mode_produces_the_same_event_shape(recorder: Recorder) -> None:
    requests = posts(recorder.url, 5, payment="p", channel="verify")
    last_byte = fire(requests, timeout=10)
    naive = fire(requests, sync="naive", timeout=10)

    assert naive.sync == "naive" and naive.history.sync == "naive" and naive.all_responded()
    for lb, nv in zip(last_byte.history, naive.history):
        same = ("index", "payment", "channel", "status", "meta")
        assert [getattr(nv, f) for f in same] == [getattr(lb, f) for f in same]
        assert nv.body["target"] == lb.body["target"]
        assert nv.t_release is not None and nv.t_response is not None and nv.server_arrival is not None
        assert nv.connection is not None
    assert naive.release_spread is not None and naive.arrival_spread is not None


def test_requests_to_different_hosts_in_one_burst_reach_their_own_server() -> None:
    with Recorder() as first, Recorder() as second:
        requests = [r for pair in zip(posts(first.url, 4), posts(second.url, 4)) for r in pair]
        result = fire(requests, timeout=10)

        assert result.all_responded(), result.summary()
        assert len(first.wait_for(4, method="POST")) == 4 and len(second.wait_for(4, method="POST")) == 4


def test_a_shared_history_keeps_one_clock_and_numbers_on(recorder: Recorder) -> None:
    history = History()
    first = fire(posts(recorder.url, 3), timeout=10, history=history)
    origin_wall = history.origin_wall
    second = fire(posts(recorder.url, 2), timeout=10, history=history)

    assert second.history is history and history.origin_wall == origin_wall > 0
    assert [e.index for e in history] == [0, 1, 2, 3, 4]
    assert [e.index for e in second.events] == [3, 4]
    assert min(e.t_release for e in second.events) > max(e.t_response for e in first.events)
    assert second.summary()["requests"] == 2


# -- synchronisation ---------------------------------------------------------------------------


def test_a_last_byte_burst_of_50_arrives_far_tighter_than_a_staggered_send(recorder: Recorder) -> None:
    require_kernel_timestamps(recorder)
    result = fire(posts(recorder.url, BURST), timeout=15)
    assert result.all_responded(), result.summary()
    burst = kernel_spread_s(recorder.wait_for(BURST, method="POST"))
    recorder.clear()

    staggered_send(recorder.port, BURST, gap=0.01)  # at least 49 x 10 ms apart, however busy the machine
    staggered = kernel_spread_s(recorder.wait_for(BURST, method="POST"))

    # Compared with a send measured the same way in the same test, not with a wall-clock bound
    # (how fast the release loop runs is benchmarks/burst_spread.py's business).
    assert burst < staggered / 3


def test_no_request_completes_on_the_server_before_the_release(recorder: Recorder) -> None:
    require_kernel_timestamps(recorder)
    # settle: the prefixes reach the server 300 ms before the release, so a request completed by its
    # prefix would show up 300 ms early. (The recorder stamps a prefix when it reads it: the settle also
    # gives its thread, on a busy machine, the time to read every prefix before the final bytes come.)
    wall, perf = clock_anchor()  # the burst's clock origin, with its wall time read at the same instant
    result = fire(posts(recorder.url, 20), timeout=10, settle=0.3, clock_origin=perf)
    assert result.all_responded(), result.summary()
    release_ns = (wall + result.release_started) * 1e9  # no final byte was sent before this
    tolerance_ns = 1e6  # the anchor is good to microseconds, and sending comes strictly after release_started

    records = recorder.wait_for(20, method="POST")
    assert len(records) == 20
    assert all(r.kernel_first_ns < release_ns for r in records), "the prefixes should arrive before the release"
    assert all(r.kernel_final_ns >= release_ns - tolerance_ns for r in records)
    assert all(r.handler_ns >= release_ns - tolerance_ns for r in records)


# -- failures ----------------------------------------------------------------------------------


@pytest.mark.parametrize("sync", ["last-byte", "naive"])
def test_a_refused_connection_gives_an_error_event_not_an_exception(recorder: Recorder, sync: str) -> None:
    listener_less, refused_url = refused_address()
    try:
        result = fire(posts(refused_url, 1) + posts(recorder.url, 1), sync=sync, timeout=5)
    finally:
        listener_less.close()

    refused, answered = result.history.events
    assert refused.error is not None and refused.error.startswith("connect:") and refused.status is None
    assert answered.error is None and answered.status == 200
    assert not result.all_responded()
    assert result.summary()["error_kinds"] == {"connect": 1}


@pytest.mark.parametrize(("sync", "warmup_path"), [("last-byte", "/healthz"), ("last-byte", None), ("naive", None)])
def test_a_server_that_never_answers_gives_timeout_errors_within_the_timeout(sync: str, warmup_path: str | None) -> None:
    # One timeout bounds the whole burst: ten silent requests take about one timeout, not ten. The
    # bound is half of ten timeouts, so a busy machine has seconds of room and a per-request timeout fails.
    with Recorder(answer=False) as silent:
        started = time.perf_counter()
        result = fire(posts(silent.url, 10), sync=sync, timeout=1.0, warmup_path=warmup_path)
        elapsed = time.perf_counter() - started

    assert elapsed < 5 * 1.0
    assert all(e.error is not None and e.error.startswith("timeout:") for e in result.history)
    assert all(e.status is None for e in result.history)


def test_no_socket_is_left_open_after_answers_refusals_or_timeouts(recorder: Recorder) -> None:
    fd_dir = Path("/proc/self/fd")
    assert fd_dir.is_dir(), "this test counts open descriptors through /proc/self/fd (Linux)"
    listener_less, refused_url = refused_address()
    with Recorder(answer=False) as silent:
        fire(posts(recorder.url, 2), timeout=5)  # first use: imports and lazy set-up open what they keep
        before = len(list(fd_dir.iterdir()))
        for sync in ("last-byte", "naive"):
            fire(posts(recorder.url, 10) + posts(refused_url, 2), sync=sync, timeout=5)
            fire(posts(silent.url, 10), sync=sync, timeout=0.3)
        # the recorders close their ends when they see ours close: wait for that, bounded
        wait_until(lambda: len(list(fd_dir.iterdir())) <= before, timeout=30,
                   message=f"the open descriptors to fall back to {before}")
    listener_less.close()


def test_misuse_raises_value_error(recorder: Recorder) -> None:
    with pytest.raises(ValueError):
        fire(posts(recorder.url, 1), sync="together")
    with pytest.raises(ValueError):
        fire([PreparedRequest("GET", "ftp://127.0.0.1/x")])
    with pytest.raises(ValueError):
        fire([PreparedRequest("GET", "/relative")])


def test_an_empty_burst_is_an_empty_result() -> None:
    result = fire([])

    assert isinstance(result, BurstResult) and len(result.history) == 0 and result.all_responded()
    assert result.release_spread is None


# -- TLS -----------------------------------------------------------------------------------------


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[str]:
    """A tiny threaded HTTPS server with a self-signed certificate (needs the openssl command)."""
    openssl = shutil.which("openssl")
    assert openssl is not None, "the openssl command is needed to make the test certificate"
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=30)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve_one(raw: socket.socket) -> None:
        with raw:
            raw.settimeout(5)
            try:
                tls = context.wrap_socket(raw, server_side=True)
            except (OSError, ssl.SSLError):
                return  # a client that refused our certificate
            with tls:
                _answer_all(tls)

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=serve_one, args=(raw,), daemon=True).start()

    acceptor = threading.Thread(target=accept_loop, daemon=True)
    acceptor.start()
    yield f"https://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    acceptor.join(timeout=2)
    listener.close()


def _answer_all(sock: socket.socket) -> None:
    """Answer every request on a connection with a JSON 200 naming its target."""
    http = h11.Connection(h11.SERVER)
    target = b""
    while True:
        event = http.next_event()
        if event is h11.NEED_DATA:
            try:
                http.receive_data(sock.recv(65536))
            except OSError:
                return
            continue
        if isinstance(event, h11.Request):
            target = event.target
        elif isinstance(event, h11.EndOfMessage):
            body = json.dumps({"target": target.decode()}).encode()
            sock.sendall(http.send(h11.Response(status_code=200, headers=[("Content-Type", "application/json"),
                                                                         ("Content-Length", str(len(body)))]))
                         + http.send(h11.Data(data=body)) + http.send(h11.EndOfMessage()))
            http.start_next_cycle()
        elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            return


def test_https_bursts_work_without_verification_and_fail_per_event_with_it(tls_server: str) -> None:
    unverified = fire(posts(tls_server, 3), timeout=10, verify_tls=False)
    verified = fire(posts(tls_server, 2), timeout=10)

    assert unverified.all_responded(), unverified.summary()
    assert [e.body["target"] for e in unverified.history] == ["/r/0", "/r/1", "/r/2"]
    assert all(e.error is not None and e.error.startswith("connect:") for e in verified.history)
