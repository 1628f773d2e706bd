"""The sender interface: a registry of senders, one armed-burst path for fire and held bursts, the
release wait, and Server-Timing; real sockets on 127.0.0.1, every test bounded in time."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator, Sequence

import pytest

from harness.local.recorder import Recorder, refused_address
from harness.senders.burst import SYNC_MODES, HeldBurst
from harness.history import History
from harness.senders import SENDERS, fire
from harness.senders.release import gevent_patched, wait_until
from harness.senders.base import ArmedBurst, Outcome, PreparedRequest
from harness.senders.server_timing import parse_server_timing


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    with Recorder() as server:
        yield server


def posts(url: str, n: int, first: int = 0) -> list[PreparedRequest]:
    return [PreparedRequest("POST", f"{url}/r/{i}", (("Content-Type", "application/json"),),
                            json.dumps({"i": i}).encode(), payment=f"p{i}") for i in range(first, first + n)]


# -- the registry and the one path -------------------------------------------------------------


def test_the_registry_holds_the_last_byte_and_naive_senders_under_their_sync_names() -> None:
    assert {"last-byte", "naive"} <= set(SENDERS)
    assert set(SYNC_MODES) == set(SENDERS)
    assert all(callable(getattr(sender, "open", None)) for sender in SENDERS.values())


@pytest.mark.parametrize("sync", ["last-byte", "naive"])
def test_fire_with_each_sender_gives_one_event_per_request_in_input_order(recorder: Recorder, sync: str) -> None:
    result = fire(posts(recorder.url, 8), sync=sync, timeout=10)

    assert result.sync == sync and result.history.sync == sync
    assert [e.index for e in result.history] == list(range(8))
    assert [e.payment for e in result.history] == [f"p{i}" for i in range(8)]
    assert [e.body["target"] for e in result.history] == [f"/r/{i}" for i in range(8)]
    assert result.all_responded()


class _Answered(ArmedBurst):
    """An armed burst that sends nothing and answers 204 to every request, logging its lifecycle."""

    sync = "fake"

    def __init__(self, requests: Sequence[PreparedRequest], log: list, **options: Any) -> None:
        self.log = log
        super().__init__(requests, **options)

    def _open(self, warmup_path: str | None, verify_tls: bool) -> None:
        self.log.append(("_open", warmup_path, verify_tls))

    @property
    def ready(self) -> int:
        return len(self.requests)

    @property
    def errors(self) -> list[str]:
        return []

    def close(self) -> None:
        self.log.append(("close",))

    def _send(self, deadline: float, settle: float) -> tuple[list[Outcome], float | None]:
        self.log.append(("send", settle, deadline - self.opened_at))
        now = time.perf_counter()
        return [Outcome(connection=i, t_release=now, t_response=now, status=204) for i in range(len(self.requests))], now


class _RecordingSender:
    def __init__(self) -> None:
        self.log: list = []

    def open(self, requests: Sequence[PreparedRequest], *, timeout: float = 30.0,
             warmup_path: str | None = "/healthz", verify_tls: bool = True) -> _Answered:
        self.log.append(("open", len(requests), timeout, warmup_path, verify_tls))
        return _Answered(requests, self.log, timeout=timeout, warmup_path=warmup_path, verify_tls=verify_tls)


def test_fire_opens_the_chosen_sender_and_releases_its_armed_burst_at_once(monkeypatch) -> None:
    fake = _RecordingSender()
    monkeypatch.setitem(SENDERS, "fake", fake)

    result = fire(posts("http://127.0.0.1:9", 3), sync="fake", timeout=7, warmup_path=None, verify_tls=False,
                  settle=0.25)

    assert [entry[0] for entry in fake.log] == ["open", "_open", "send", "close"]
    assert fake.log[0] == ("open", 3, 7, None, False) and fake.log[1] == ("_open", None, False)
    _, settle, deadline_after_opening = fake.log[2]
    assert settle == 0.25 and 0 < deadline_after_opening <= 7  # fire's timeout bounds opening and sending together
    assert result.sync == "fake" and [e.status for e in result.history] == [204] * 3
    assert result.late == 0.0


def test_a_held_burst_is_the_last_byte_senders_armed_burst(monkeypatch) -> None:
    fake = _RecordingSender()
    monkeypatch.setitem(SENDERS, "last-byte", fake)

    held = HeldBurst(posts("http://127.0.0.1:9", 2), timeout=5, warmup_path="/warm")
    assert held.ready == 2 and held.errors == []
    result, late = held.release(None, History())

    assert [entry[0] for entry in fake.log] == ["open", "_open", "send", "close"]
    assert fake.log[0] == ("open", 2, 5, "/warm", True)
    assert late == result.late == 0.0 and [e.status for e in result.history] == [204, 204]


def test_an_armed_burst_is_released_once() -> None:
    armed = _RecordingSender().open(posts("http://127.0.0.1:9", 1), timeout=5)
    armed.release()
    with pytest.raises(RuntimeError):
        armed.release()


# -- real sockets -------------------------------------------------------------------------------


@pytest.mark.parametrize("sync", ["last-byte", "naive"])
def test_a_refused_connection_carries_a_connect_error_while_the_others_succeed(recorder: Recorder, sync: str) -> None:
    listener_less, refused_url = refused_address()
    try:
        result = fire(posts(recorder.url, 2) + posts(refused_url, 1, first=2) + posts(recorder.url, 2, first=3),
                      sync=sync, timeout=5)
    finally:
        listener_less.close()

    errors = [e.error for e in result.history]
    assert errors[2] is not None and errors[2].startswith("connect:"), errors
    assert errors[:2] + errors[3:] == [None] * 4
    assert [e.status for e in result.history] == [200, 200, None, 200, 200]


@pytest.mark.parametrize("sync", ["last-byte", "naive"])
def test_no_request_of_a_burst_released_at_an_instant_completes_on_the_server_before_it(
        recorder: Recorder, sync: str) -> None:
    assert recorder.kernel_timestamps, "no SO_TIMESTAMPING on this system: arrival times cannot be measured"
    armed = SENDERS[sync].open(posts(recorder.url, 10), timeout=10)
    at = time.time() + 0.3

    result = armed.release(at, History())

    assert result.all_responded() and result.late >= 0.0
    records = recorder.wait_for(10, method="POST")
    # The kernel's receive time of each request's final segment, on the same wall clock as ``at``.
    assert all(r.kernel_final_ns is not None and r.kernel_final_ns / 1e9 >= at for r in records)
    assert all(result.history.origin_wall + e.t_release >= at - 0.005 for e in result.history)  # clock mapping slack


# -- waiting for the instant ----------------------------------------------------------------------


@pytest.mark.parametrize("spin", [None, True, False])
def test_waiting_for_an_instant_never_returns_before_it(spin: bool | None) -> None:
    assert not gevent_patched(), "the test process must not be gevent-patched for this test to mean anything"
    for delay in (0.0005, 0.003, 0.02):  # inside the spin window, just past it, well past it
        at = time.time() + delay
        late = wait_until(at, spin=spin)
        assert time.time() >= at and late >= 0.0


_GEVENT_WAIT = r"""
from gevent import monkey
monkey.patch_all()
import json, time
import gevent
from harness.senders import release

release.SPIN = 0.05  # the whole wait below falls in the final, clock-checking stretch


def ticks_during_wait(spin):
    ticks, stop = [], []

    def ticker():
        while not stop:
            ticks.append(time.time())
            gevent.sleep(0)

    greenlet = gevent.spawn(ticker)
    gevent.sleep(0)  # the ticker starts and hands back
    start = time.time()
    at = start + 0.04
    release.wait_until(at, spin=spin)
    end = time.time()
    stop.append(True)
    greenlet.join(1)
    return {"ticks": sum(1 for t in ticks if start <= t <= end), "early": end < at}


print(json.dumps({"patched": release.gevent_patched(), "auto": ticks_during_wait(None),
                  "spin": ticks_during_wait(True)}))
"""


def test_under_gevent_the_wait_for_the_instant_lets_other_greenlets_run() -> None:
    done = subprocess.run([sys.executable, "-c", _GEVENT_WAIT], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])

    assert seen["patched"] is True
    assert seen["auto"]["ticks"] > 0 and not seen["auto"]["early"]
    # the control: a forced busy-wait holds the hub, so nothing else ran (what the default avoids)
    assert seen["spin"]["ticks"] == 0 and not seen["spin"]["early"]


# -- Server-Timing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("lines", "expected"), [
    (["app;dur=12.345"], {"app": 12.345}),
    (["app;dur=12.345, db;dur=3"], {"app": 12.345, "db": 3.0}),
    (["  app ; dur = 12.5 ;desc=\"x\"  "], {"app": 12.5}),
    (['db;desc="a, b; c=1";dur=7'], {"db": 7.0}),
    (['db;desc="say \\"hi\\", then ;";dur=7, app;dur=1'], {"db": 7.0, "app": 1.0}),
    (['app;dur="12.5"'], {"app": 12.5}),
    (["app;DUR=4"], {"app": 4.0}),
    (["edge;dur=0"], {"edge": 0.0}),
    (['cache;desc="hit"', "miss"], {}),
    (["miss, app;dur=1"], {"app": 1.0}),
    (["app;dur=abc", "total;dur=inf", "gap;dur="], {}),
    (["app;dur=1;dur=2"], {"app": 1.0}),
    (["app;dur=1, app;dur=2"], {"app": 1.0}),
    (["app;dur=1", "db;dur=2.5"], {"app": 1.0, "db": 2.5}),
    (["", " , ;, "], {}),
])
def test_server_timing_headers_give_durations_in_ms_by_metric_name(lines: list[str], expected: dict) -> None:
    assert parse_server_timing(lines) == expected


class _TimedHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so the warm connection carries the request

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Server-Timing", 'app;dur=12.345, db;desc="query, primary";dur=3')
        self.send_header("Server-Timing", 'cache;desc="hit", total;dur=20.5')
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def timed_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TimedHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.parametrize("sync", ["last-byte", "naive"])
def test_a_server_timing_header_lands_in_each_events_meta(timed_server: str, sync: str) -> None:
    result = fire(posts(timed_server, 3), sync=sync, timeout=10)

    assert result.all_responded(), result.summary()
    assert [e.meta.get("server_timing") for e in result.history] == [{"app": 12.345, "db": 3.0, "total": 20.5}] * 3
