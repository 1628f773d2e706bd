#!/usr/bin/env python
"""Kernel-seen spread of naive, last-byte and single-packet bursts, on loopback and across a jittery link.

    python benchmarks/network_spread.py [--n 10 20 50 100] [--repeats 5] [--delay-ms 20] [--jitter-ms 3]

One run, every cell side by side: for each N and each repeat, a naive (httpx + gather, HTTP/1.1),
a last-byte (HTTP/1.1) and a single-packet (HTTP/2, h2c) burst of N POSTs, each straight to a
loopback stamping server and through a relay (``harness.local.relay``) that holds every chunk it
forwards for ``--delay-ms`` plus a per-chunk jitter (|N(0, jitter)|, drawn independently per
connection, order kept within a connection) - the "20 ms +- 3 ms" link. The figure per burst is
the kernel-seen spread: first..last kernel receive timestamp (``SO_TIMESTAMPING``) of the segment
that completed each request at the stamping server; the table shows the median over the repeats.

Processes: the stamping servers (HTTP/1.1: ``harness.local.recorder.Recorder``; HTTP/2: a small h2c
server below) run in one child process, the relays in another, the senders in this one: none
competes with another for a GIL.

Why single-packet should win across the link: the relay, like a real path, delays each chunk it
reads. Last-byte sends N final bytes on N connections: N chunks, N independent jitters. Single-
packet sends every final frame in one write on one connection: one chunk, one delay, shared.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import selectors
import socket
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere, without installing

import h2.config  # noqa: E402
import h2.connection  # noqa: E402
import h2.events  # noqa: E402
import h2.settings  # noqa: E402

from harness.local.recorder import ANCILLARY, Recorder, await_stamping, enable_timestamping, kernel_time_ns  # noqa: E402
from harness.senders import PreparedRequest, fire  # noqa: E402

MODES = ("naive", "last-byte", "single-packet")
PATHS = ("loopback", "relay")
BURST_HEADER = "x-burst-id"
H2_MAX_STREAMS = 100  # hypercorn's default: N = 100 still fits one connection
SERVE_FOR = 1800.0  # no server thread outlives this
TARGET_N, TARGET_RATIO = 20, 3.0  # across the relay, last-byte / single-packet at N = 20


# -- stamping servers (child process) ------------------------------------------------------------


class H2Stamper:
    """An h2c (prior knowledge) server: answers every request 200 and keeps, per request stream, the
    kernel receive time of the segment that carried its END_STREAM."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        enable_timestamping(self._listener)
        self._listener.setblocking(False)
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conns: dict[socket.socket, tuple[h2.connection.H2Connection, dict[int, str]]] = {}
        end = time.monotonic() + SERVE_FOR
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            while time.monotonic() < end:
                for key, _ in selector.select(0.05):
                    if key.fileobj is self._listener:
                        sock, _ = self._listener.accept()
                        enable_timestamping(sock)
                        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False,
                                                                                   header_encoding="utf-8"))
                        conn.local_settings = h2.settings.Settings(client=False, initial_values={
                            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: H2_MAX_STREAMS})
                        conn.initiate_connection()
                        sock.sendall(conn.data_to_send())
                        conns[sock] = (conn, {})
                        selector.register(sock, selectors.EVENT_READ)
                    elif not self._receive(key.fileobj, *conns[key.fileobj]):
                        selector.unregister(key.fileobj)
                        conns.pop(key.fileobj)
                        key.fileobj.close()

    def _receive(self, sock: socket.socket, conn: h2.connection.H2Connection, bursts: dict[int, str]) -> bool:
        try:
            data, ancillary, _, _ = sock.recvmsg(65536, ANCILLARY)
        except OSError:
            return False
        if not data:
            return False
        kernel_ns = kernel_time_ns(ancillary)
        try:
            events = conn.receive_data(data)
        except Exception:  # noqa: BLE001 - a protocol error ends this connection only
            return False
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                bursts[event.stream_id] = dict(event.headers).get(BURST_HEADER, "")
            elif isinstance(event, h2.events.DataReceived):
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                burst = bursts.pop(event.stream_id, "")
                if burst:
                    with self.lock:
                        self.records.append({"burst": burst, "kernel_ns": kernel_ns})
                body = b'{"ok": true}'
                conn.send_headers(event.stream_id, [(":status", "200"), ("content-type", "application/json"),
                                                    ("content-length", str(len(body)))])
                conn.send_data(event.stream_id, body, end_stream=True)
        try:
            sock.sendall(conn.data_to_send())
        except OSError:
            return False
        return True

    def take(self, burst: str) -> list[int | None]:
        with self.lock:
            mine = [r["kernel_ns"] for r in self.records if r["burst"] == burst]
            self.records = [r for r in self.records if r["burst"] != burst]
        return mine


def _serve_stampers(conn: Any) -> None:
    """Child: an HTTP/1.1 recorder and an h2c stamper; answers (burst, n, protocol) with kernel stamps."""
    if not await_stamping():
        conn.send(None)
        return
    with Recorder() as h1:
        h2s = H2Stamper()
        conn.send({"h1": h1.port, "h2": h2s.port})
        while True:
            message = conn.recv()
            if message is None:
                return
            burst, n, protocol = message
            end = time.monotonic() + 10.0
            while True:
                if protocol == "h1":
                    stamps = [r.kernel_final_ns for r in h1.snapshot("POST") if r.headers.get(BURST_HEADER) == burst]
                else:
                    with h2s.lock:
                        stamps = [r["kernel_ns"] for r in h2s.records if r["burst"] == burst]
                if len(stamps) >= n or time.monotonic() >= end:
                    break
                time.sleep(0.005)
            if protocol == "h1":
                h1.clear()
            else:
                h2s.take(burst)
            conn.send(stamps)


def _serve_relays(conn: Any, ports: dict[str, int], delay: float, jitter: float) -> None:
    """Child: one relay in front of each stamping server, the same link for both."""
    from harness.local.relay import Relay

    relays = {name: Relay(port, up_delay=lambda _: delay, down_delay=lambda _: delay, jitter=jitter, seed=i)
              for i, (name, port) in enumerate(ports.items())}
    conn.send({name: relay.port for name, relay in relays.items()})
    conn.recv()  # told to stop (or the parent went away)
    for relay in relays.values():
        relay.close()


class _Child:
    def __init__(self, target: Any, *args: Any) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child_conn = context.Pipe()
        self.process = context.Process(target=target, args=(child_conn, *args), daemon=True)
        self.process.start()
        if not self.conn.poll(30):
            raise RuntimeError(f"{target.__name__} did not start")
        self.ready = self.conn.recv()

    def ask(self, message: Any) -> Any:
        self.conn.send(message)
        if not self.conn.poll(30):
            raise RuntimeError("no answer from the stamping server")
        return self.conn.recv()

    def close(self) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.process.join(10)
        if self.process.is_alive():
            self.process.terminate()


# -- measuring -------------------------------------------------------------------------------------


def _burst(stampers: _Child, port: int, mode: str, n: int, burst: str) -> dict[str, Any]:
    protocol = "h2" if mode == "single-packet" else "h1"
    headers = (("Content-Type", "application/json"), (BURST_HEADER, burst))
    requests = [PreparedRequest("POST", f"http://127.0.0.1:{port}/burst", headers, b'{"i": %d}' % i)
                for i in range(n)]
    result = fire(requests, sync=mode, timeout=60.0, warmup_path="/healthz" if protocol == "h1" else "/warm")
    stamps = stampers.ask((burst, n, protocol))
    kernel = [s for s in stamps if s is not None]
    ok = result.all_responded() and len(kernel) == n
    connections = len({e.connection for e in result.events or [] if e.connection is not None})
    return {"spread_ms": (max(kernel) - min(kernel)) / 1e6 if ok else None, "ok": ok, "connections": connections}


def measure(sizes: list[int], repeats: int, delay: float, jitter: float) -> tuple[dict, str]:
    stampers = _Child(_serve_stampers)
    if stampers.ready is None:
        stampers.close()
        raise SystemExit("no kernel receive timestamps on this system (SO_TIMESTAMPING): nothing to measure")
    relays = _Child(_serve_relays, stampers.ready, delay, jitter)
    ports = {"loopback": stampers.ready, "relay": relays.ready}
    runs: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    try:
        for n in sizes:
            for repeat in range(repeats):
                order = [(p, m) for p in PATHS for m in MODES]
                for path, mode in order if repeat % 2 == 0 else reversed(order):  # drift hits every cell alike
                    port = ports[path]["h2" if mode == "single-packet" else "h1"]
                    runs.setdefault((path, n, mode), []).append(
                        _burst(stampers, port, mode, n, f"{path}-{mode}-{n}-{repeat}"))
    finally:
        relays.close()
        stampers.close()
    results = {}
    for key, rs in runs.items():
        spreads = [r["spread_ms"] for r in rs if r["spread_ms"] is not None]
        results[key] = {"median_ms": statistics.median(spreads) if spreads else None, "bursts": len(spreads),
                        "failed": len(rs) - len(spreads), "connections": max(r["connections"] for r in rs)}
    return results, os.getloadavg()


# -- reporting -------------------------------------------------------------------------------------


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def report(results: dict, sizes: list[int], repeats: int, delay_ms: float, jitter_ms: float,
           load_before: tuple, load_after: tuple) -> str:
    link = f"relay {delay_ms:g} ms ± {jitter_ms:g} ms"
    lines = [f"kernel-seen spread (ms), median of {repeats} bursts per cell; load average "
             f"{' '.join(f'{x:.2f}' for x in load_before)} before, {' '.join(f'{x:.2f}' for x in load_after)} after",
             "",
             "| N | " + " | ".join(f"{m}, {p if p == 'loopback' else link}" for p in PATHS for m in MODES) + " |",
             "|---|" + "---|" * (len(PATHS) * len(MODES))]
    for n in sizes:
        cells = []
        for path in PATHS:
            for mode in MODES:
                r = results[(path, n, mode)]
                cell = _fmt(r["median_ms"])
                if r["failed"]:
                    cell += f" ({r['failed']} failed)"
                cells.append(cell)
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    lines += ["", f"| N | last-byte / single-packet, loopback | last-byte / single-packet, {link} | "
                  "naive / last-byte, loopback | naive / last-byte, relay |", "|---|---|---|---|---|"]
    for n in sizes:
        def ratio(path: str, a: str, b: str) -> str:
            x, y = results[(path, n, a)]["median_ms"], results[(path, n, b)]["median_ms"]
            if x is None or y is None:
                return "n/a"
            return f"{x / y:.1f}x" if y > 0 else "inf (denominator 0.000 ms)"
        lines.append(f"| {n} | {ratio('loopback', 'last-byte', 'single-packet')} | "
                     f"{ratio('relay', 'last-byte', 'single-packet')} | {ratio('loopback', 'naive', 'last-byte')} | "
                     f"{ratio('relay', 'naive', 'last-byte')} |")
    lines += ["", _target_line(results)]
    return "\n".join(lines)


def _target_line(results: dict) -> str:
    goal = f"target: across the relay at N = {TARGET_N}, single-packet's spread >= {TARGET_RATIO:g}x tighter than last-byte's"
    sp = results.get(("relay", TARGET_N, "single-packet"), {}).get("median_ms")
    lb = results.get(("relay", TARGET_N, "last-byte"), {}).get("median_ms")
    if sp is None or lb is None:
        return f"{goal}: NOT MEASURED"
    met = lb >= TARGET_RATIO * sp
    return f"{goal}: {'MET' if met else 'MISSED'} (last-byte {lb:.3f} ms, single-packet {sp:.3f} ms)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[10, 20, 50, 100], help="burst sizes (<= 100)")
    parser.add_argument("--repeats", type=int, default=5, help="bursts per cell (median taken)")
    parser.add_argument("--delay-ms", type=float, default=20.0, help="the link's base delay, each direction")
    parser.add_argument("--jitter-ms", type=float, default=3.0, help="per-chunk jitter (std. dev. of |N(0, j)|)")
    parser.add_argument("--json", metavar="FILE", help="also write the medians as JSON")
    args = parser.parse_args(argv)
    if any(not 1 < n <= H2_MAX_STREAMS for n in args.n) or args.repeats < 1:
        parser.error(f"--n values must be 2..{H2_MAX_STREAMS} and --repeats at least 1")
    started, load_before = time.monotonic(), os.getloadavg()
    results, load_after = measure(args.n, args.repeats, args.delay_ms / 1000, args.jitter_ms / 1000)
    print(report(results, args.n, args.repeats, args.delay_ms, args.jitter_ms, load_before, load_after))
    print(f"\n({time.monotonic() - started:.1f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps({f"{p}|{n}|{m}": r for (p, n, m), r in results.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
