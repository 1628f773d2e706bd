#!/usr/bin/env python
"""Which rendezvous overlaps better inside Locust (gevent)? The figures behind the scenarios' design.

    python benchmarks/rendezvous_overlap.py [--n 10 50] [--repeats 7]

Runs gevent-monkey-patched, as a Locust process is, and fires N duplicates per burst by:

* ``fire``         - the harness's last-byte sender, all N from one user (one release loop);
* ``held``         - the last-byte sender's armed burst (``SENDERS["last-byte"].open``): the same,
                     opened first and released at an absolute instant (what each worker does in
                     the distributed scenarios);
* ``held x2 proc`` - two processes, N/2 each, released at the same absolute instant;
* ``gevent users`` - N greenlets ("users"), each with a warm geventhttpclient connection (Locust's
                     FastHttpUser client) and a pre-built request, waiting on one gevent Event;
* ``gevent users, last byte`` - N greenlets, each holding its own request's last byte, waking at
                     one absolute instant.

Two places to look, each the median over the repeats of first..last arrival of one burst:

* ``X-Arrival-Ns`` of the reference service (the app's own clock). It is stamped when a request's
  headers are complete, so the burst is a bodiless ``GET /healthz``: for a POST with a body the
  stamp is the prefix's arrival, not the request's;
* the kernel's receive timestamp of each request's completing segment (``harness.local.recorder``, in a
  child process), for a signed callback POST - what the sender controls.
"""

from __future__ import annotations

import sys

if "--recorder" not in sys.argv:  # the kernel recorder runs plain threads, like a real server
    from gevent import monkey

    monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
import gevent.event  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.history import History  # noqa: E402
from harness.senders import SENDERS, PreparedRequest, fire  # noqa: E402
from harness.profile.payments import Payment
from harness.profile.legacy import Target  # noqa: E402

LEAD = 0.25  # seconds between opening and the absolute release instant


def _spread_ms(values: list[float]) -> float | None:
    return (max(values) - min(values)) * 1000 if len(values) > 1 else None


def _arrivals(events) -> list[float]:
    return [e.server_arrival for e in events if e.server_arrival is not None]


# -- the approaches: each returns the X-Arrival-Ns values (epoch s) of one burst -----------------

def by_fire(requests: list[PreparedRequest]) -> list[float]:
    return _arrivals(fire(requests, timeout=30).events)


def by_held(requests: list[PreparedRequest]) -> list[float]:
    held = SENDERS["last-byte"].open(requests, timeout=30)
    return _arrivals(held.release(time.time() + LEAD, History()).events)


def by_held_two_processes(requests: list[PreparedRequest]) -> list[float]:
    at = time.time() + 1.5  # time enough for two interpreters to start and warm up
    half = len(requests) // 2
    procs = [subprocess.Popen([sys.executable, __file__, "--child", str(at)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    shares = [requests[:half], requests[half:]]
    out = []
    for proc, share in zip(procs, shares):
        proc.stdin.write(json.dumps([_dump(r) for r in share]))
        proc.stdin.close()
    for proc in procs:
        out += json.loads(proc.stdout.read())
        proc.wait(30)
    return out


def by_gevent_users(requests: list[PreparedRequest]) -> list[float]:
    from geventhttpclient import HTTPClient
    from geventhttpclient.url import URL

    gate = gevent.event.Event()
    arrivals: list[float] = []

    def user(request: PreparedRequest) -> None:
        url = URL(request.url)
        client = HTTPClient(url.host, url.port, concurrency=1, connection_timeout=10, network_timeout=30)
        try:
            client.get("/healthz").read()  # warm, like a FastHttpUser's pooled connection
            gate.wait(30)
            response = client.request(request.method, url.request_uri, body=request.body,
                                      headers=dict(request.headers))
            response.read()
            stamp = response.get("x-arrival-ns")
            if stamp:
                arrivals.append(int(stamp) / 1e9)
        finally:
            client.close()

    users = [gevent.spawn(user, r) for r in requests]
    gevent.sleep(LEAD)  # every user is warm and waiting
    gate.set()
    gevent.joinall(users, timeout=30)
    return arrivals


def by_gevent_users_last_byte(requests: list[PreparedRequest]) -> list[float]:
    at = time.time() + LEAD
    history = History()
    held = [SENDERS["last-byte"].open([r], timeout=30) for r in requests]
    users = [gevent.spawn(h.release, at, history) for h in held]
    gevent.joinall(users, timeout=30)
    return _arrivals(history.events)


APPROACHES = {
    "fire (one user, last byte)": by_fire,
    "held, absolute instant (one process)": by_held,
    "held, absolute instant (2 processes, N/2 each)": by_held_two_processes,
    "gevent users + Event (FastHttpUser client)": by_gevent_users,
    "gevent users, own last byte, one instant": by_gevent_users_last_byte,
}


def _dump(r: PreparedRequest) -> dict:
    return {"method": r.method, "url": r.url, "headers": list(r.headers), "body": r.body.decode("latin-1")}


def _load(d: dict) -> PreparedRequest:
    return PreparedRequest(d["method"], d["url"], tuple(tuple(h) for h in d["headers"]), d["body"].encode("latin-1"))


def child(at: float) -> None:
    requests = [_load(d) for d in json.loads(sys.stdin.read())]
    held = SENDERS["last-byte"].open(requests, timeout=30)
    print(json.dumps(_arrivals(held.release(at, History()).events)))


# -- the kernel-seen figure, from the recorder in a child process ------------------------------

def recorder_child() -> None:
    """Serve a kernel-timestamping recorder; answer "<count> <burst>" lines with the burst's kernel times."""
    from harness.local.recorder import Recorder

    with Recorder() as recorder:
        print(recorder.url, flush=True)
        for line in sys.stdin:
            count, burst = line.split()
            records = [r for r in recorder.wait_for(int(count), method="POST", timeout=10)
                       if r.headers.get("x-burst-id") == burst]
            recorder.clear()
            print(json.dumps([r.kernel_final_ns / 1e9 for r in records if r.kernel_final_ns is not None]), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--child", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--recorder", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child)
        return 0
    if args.recorder:
        recorder_child()
        return 0

    from harness.reference import start_service

    tmp = Path(tempfile.mkdtemp(prefix="overlap-bench-"))
    service = start_service(tmp / "receipts", mode="atomic", generation_delay_ms=0, log_path=tmp / "service.log")
    recorder = subprocess.Popen([sys.executable, __file__, "--recorder"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
    recorder_url = recorder.stdout.readline().strip()
    rows = []
    try:
        for n in args.n:
            health = [PreparedRequest("GET", service.url + "/healthz")] * n
            for name, approach in APPROACHES.items():
                app, kernel = [], []
                for _ in range(args.repeats):
                    app.append(_spread_ms(approach(health)))
                    burst = uuid.uuid4().hex
                    target = Target(base_url=recorder_url)
                    callback = target.callback_request(Payment("p", "MT" + burst[:12], 49_900))
                    callback = PreparedRequest(callback.method, recorder_url + "/callback",
                                               callback.headers + (("X-Burst-Id", burst),), callback.body)
                    approach([callback] * n)
                    recorder.stdin.write(f"{n} {burst}\n")
                    recorder.stdin.flush()
                    kernel.append(_spread_ms(json.loads(recorder.stdout.readline())))
                    gevent.sleep(0.05)
                rows.append((n, name, _median(app), _median(kernel)))
                print(f"N={n:<3} {name:<50} X-Arrival-Ns spread {_fmt(rows[-1][2])} ms   "
                      f"kernel-seen spread {_fmt(rows[-1][3])} ms", flush=True)
    finally:
        recorder.stdin.close()
        recorder.wait(10)
        service.stop()
    return 0


def _median(values: list[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _fmt(value: float | None) -> str:
    return "   n/a" if value is None else f"{value:6.2f}"


if __name__ == "__main__":
    sys.exit(main())
