#!/usr/bin/env python
"""How close together do N "simultaneous" requests reach a server? Last-byte vs naive, on loopback.

    python benchmarks/burst_spread.py [--n 10 50 200] [--repeats 5] [--recorder process|thread]
                                      [--compare-with OLD_BURST_PY]

For each N, each repeat fires N POSTs with ``sync="last-byte"`` and then with ``sync="naive"`` at a
loopback recorder (``harness/local/recorder.py``) and takes, per burst:

* kernel-seen spread: first..last kernel receive timestamp (SO_TIMESTAMPING) of the segment that
  completed each request - what the sender controls, and what the target is about;
* handler-seen spread: first..last time the recorder had parsed each request - what an
  application on the other side experienced (it includes the recorder's own per-request cost);
* release spread: first..last final byte as the sender saw it (``BurstResult.release_spread``).

The table shows medians over the repeats, and naive/last-byte ratios measured in the same run.

Where the recorder runs matters. By default it runs in a child process, like a real server. With
``--recorder thread`` it runs on a background thread of this process; it then competes with the
sender for the GIL (each ``send`` releases the GIL, the recorder takes it to parse a request), and
the last-byte spreads measure that contention as much as the sender.

``--compare-with PATH`` also fires every burst with another version's sender, alternating with
this one inside each repeat, and adds a this/other ratio table: e.g. before and after a change,

    git show REV:harness/burst.py > /tmp/burst_old.py   # a revision from before harness/senders/
    python benchmarks/burst_spread.py --n 10 50 --compare-with /tmp/burst_old.py

PATH is a single-module sender (a ``burst.py`` that defines ``fire``); it is loaded as a module of
this ``harness`` package, so its relative imports (``.history``, ``.stats``) resolve to this tree.
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere, without installing

from harness.local.recorder import Recorder  # noqa: E402
from harness.senders.burst import PreparedRequest, fire  # noqa: E402

TARGET_N = 50
TARGET_MS = 2.0  # last-byte kernel-seen spread at N = TARGET_N
BURST_HEADER = "X-Burst-Id"
MODES = ("last-byte", "naive")
THIS = "this"  # the version label of this tree's sender


# -- the recorder, here or in a child process -------------------------------------------------


def _spreads(recorder: Recorder, n: int, burst_id: str) -> dict[str, float | None]:
    """Kernel- and handler-seen spreads (ms) of one burst's POSTs, then forget them."""
    end = time.monotonic() + 5.0
    while True:
        posts = [r for r in recorder.snapshot("POST") if r.headers.get(BURST_HEADER.lower()) == burst_id]
        if len(posts) >= n or time.monotonic() >= end:
            break
        time.sleep(0.005)
    recorder.clear()
    kernel = [r.kernel_final_ns for r in posts if r.kernel_final_ns is not None]
    handler = [r.handler_ns for r in posts]
    return {
        "received": len(posts),
        "kernel_ms": (max(kernel) - min(kernel)) / 1e6 if len(kernel) == len(posts) and len(kernel) > 1 else None,
        "handler_ms": (max(handler) - min(handler)) / 1e6 if len(handler) > 1 else None,
    }


def _serve_in_child(conn: Any) -> None:
    """Child process: run a recorder and answer spread queries until told to stop."""
    with Recorder() as recorder:
        conn.send(recorder.url)
        while True:
            message = conn.recv()
            if message is None:
                return
            conn.send(_spreads(recorder, *message))


class _RecorderHandle:
    """The recorder, either on a thread of this process or in a child process."""

    def __init__(self, where: str) -> None:
        self._recorder: Recorder | None = None
        self._process = None
        if where == "thread":
            self._recorder = Recorder().start()
            self.url = self._recorder.url
            return
        context = multiprocessing.get_context("spawn")
        self._conn, child_conn = context.Pipe()
        self._process = context.Process(target=_serve_in_child, args=(child_conn,), daemon=True)
        self._process.start()
        if not self._conn.poll(20):
            raise RuntimeError("the recorder process did not start")
        self.url = self._conn.recv()

    def spreads(self, n: int, burst_id: str) -> dict[str, float | None]:
        if self._recorder is not None:
            return _spreads(self._recorder, n, burst_id)
        self._conn.send((n, burst_id))
        return self._conn.recv()

    def close(self) -> None:
        if self._recorder is not None:
            self._recorder.stop()
        if self._process is not None:
            self._conn.send(None)
            self._process.join(timeout=10)
            if self._process.is_alive():
                self._process.terminate()


# -- measuring --------------------------------------------------------------------------------


def load_fire(path: str) -> Callable[..., Any]:
    """``fire`` of another version's single-module sender, loaded inside this harness package."""
    spec = importlib.util.spec_from_file_location("harness._compared_burst", Path(path).resolve())
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module.fire


def _burst(recorder: _RecorderHandle, fire_: Callable[..., Any], mode: str, n: int, burst_id: str) -> dict[str, Any]:
    headers = (("Content-Type", "application/json"), (BURST_HEADER, burst_id))
    requests = [PreparedRequest("POST", f"{recorder.url}/burst", headers, b'{"i": %d}' % i) for i in range(n)]
    result = fire_(requests, sync=mode, timeout=30.0)
    measured = recorder.spreads(n, burst_id)
    measured["release_ms"] = None if result.release_spread is None else result.release_spread * 1000
    measured["ok"] = result.all_responded() and measured["received"] == n
    return measured


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def measure(recorder: _RecorderHandle, sizes: list[int], repeats: int,
            versions: dict[str, Callable[..., Any]]) -> "Results":
    """Median spreads per (N, mode, version); modes and versions alternate inside each repeat so
    drift hits all alike."""
    runs: dict[tuple[int, str, str], list[dict[str, Any]]] = {}
    for n in sizes:
        for repeat in range(repeats):
            for mode in MODES:
                order = list(versions.items())
                for version, fire_ in order if repeat % 2 == 0 else reversed(order):  # neither always first
                    burst_id = f"{version}-{mode}-{n}-{repeat}"
                    runs.setdefault((n, mode, version), []).append(_burst(recorder, fire_, mode, n, burst_id))
    return {
        key: {
            "kernel_ms": _median([r["kernel_ms"] for r in rs]),
            "handler_ms": _median([r["handler_ms"] for r in rs]),
            "release_ms": _median([r["release_ms"] for r in rs]),
            "failed": sum(1 for r in rs if not r["ok"]),
        }
        for key, rs in runs.items()
    }


# -- reporting --------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _ratio(numerator: float | None, denominator: float | None, digits: int = 0) -> str:
    if numerator is None or not denominator:
        return "n/a"
    return f"{numerator / denominator:.{digits}f}x"


Results = dict[tuple[int, str, str], dict[str, Any]]


def report(results: Results, sizes: list[int], repeats: int, where: str, versions: list[str]) -> str:
    compared = len(versions) > 1
    lines = [
        f"burst spread on loopback, median of {repeats} bursts, recorder in a {where}",
        "",
        "| N | mode |" + (" sender |" if compared else "") +
        " kernel-seen spread (ms) | handler-seen spread (ms) | sender release spread (ms) | failed bursts |",
        "|---|---|" + ("---|" if compared else "") + "---|---|---|---|",
    ]
    for n in sizes:
        for mode in MODES:
            for version in versions:
                r = results[(n, mode, version)]
                lines.append(f"| {n} | {mode} |" + (f" {version} |" if compared else "") +
                             f" {_fmt(r['kernel_ms'])} | {_fmt(r['handler_ms'])} | "
                             f"{_fmt(r['release_ms'], 3)} | {r['failed']} |")
    lines += ["", "| N | naive / last-byte, kernel-seen | naive / last-byte, handler-seen |",
              "|---|---|---|"]
    for n in sizes:
        naive, last = results[(n, "naive", THIS)], results[(n, "last-byte", THIS)]
        lines.append(f"| {n} | {_ratio(naive['kernel_ms'], last['kernel_ms'])} | "
                     f"{_ratio(naive['handler_ms'], last['handler_ms'])} |")
    if compared:
        other = versions[1]
        lines += ["", f"| N | mode | {THIS} / {other}, kernel-seen | {THIS} / {other}, handler-seen |",
                  "|---|---|---|---|"]
        for n in sizes:
            for mode in MODES:
                new, old = results[(n, mode, THIS)], results[(n, mode, other)]
                lines.append(f"| {n} | {mode} | {_ratio(new['kernel_ms'], old['kernel_ms'], 2)} | "
                             f"{_ratio(new['handler_ms'], old['handler_ms'], 2)} |")
    lines += ["", _target_line(results)]
    return "\n".join(lines)


def _target_line(results: Results) -> str:
    goal = f"target: last-byte kernel-seen spread < {TARGET_MS:g} ms at N = {TARGET_N}"
    measured = results.get((TARGET_N, "last-byte", THIS), {}).get("kernel_ms")
    if measured is None:
        return f"{goal}: NOT MEASURED (N = {TARGET_N} not run, or no kernel timestamps on this system)"
    return f"{goal}: {'MET' if measured < TARGET_MS else 'MISSED'} ({measured:.2f} ms)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[10, 50, 200], help="burst sizes")
    parser.add_argument("--repeats", type=int, default=5, help="bursts per size and mode")
    parser.add_argument("--recorder", choices=("process", "thread"), default="process",
                        help="run the recorder in a child process (default) or on a thread of this one")
    parser.add_argument("--compare-with", metavar="BURST_PY",
                        help="another version's single-module sender to fire alternately with this one")
    args = parser.parse_args(argv)
    versions: dict[str, Callable[..., Any]] = {THIS: fire}
    if args.compare_with:
        versions[Path(args.compare_with).name] = load_fire(args.compare_with)
    started = time.monotonic()
    recorder = _RecorderHandle(args.recorder)
    try:
        results = measure(recorder, args.n, args.repeats, versions)
    finally:
        recorder.close()
    where = "child process" if args.recorder == "process" else "thread"
    print(report(results, args.n, args.repeats, where, list(versions)))
    print(f"\n({time.monotonic() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
