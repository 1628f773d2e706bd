#!/usr/bin/env python
"""Sustained rate: the race-harness swarm against plain Locust, on one minimal Node endpoint, in one run.

    python benchmarks/rate.py [--seconds 20] [--plain-users 20] [--payments 8000] [--duplicates 5]
                              [--wave-size 50] [--inflight 4] [--swarm-users 4] [--release-lead-ms 10]
                              [--default-payments 2000]

One Node ``http`` server (a child process on 127.0.0.1, a free port) answers every request at once:
``GET`` anything 200, ``POST /hook`` 200 with ``X-Arrival-Ns`` (its own epoch-ns clock when the
request's last body byte was read). Against it, one after the other:

1. **Node alone**: a raw Node client over keep-alive sockets for a few seconds, once with 64
   connections and one request each in flight (as Locust's users and the swarm's lanes send), once
   with 16 connections pipelining 8 each (the server's ceiling), so the table shows the server is
   not what limits either Locust run (it must answer > 10 000 requests/s).
2. **plain Locust**: ``FastHttpUser`` POSTing a callback-sized JSON body to ``/hook``, no waits,
   one process, ``--plain-users`` users, ``--seconds`` long.
3. **the race-harness swarm**: ``scenarios/webhook_storm.py`` under Locust, one process, judging
   the endpoint through a profile the benchmark writes: payments from a JSON-lines file (no create
   endpoint), the callback ``POST /hook`` signed ``none``, no ``[state]``, one ``files`` effect
   source in an empty directory (the verdict says the receipts are missing: the verdict is not what
   this measures). The swarm's real sending path runs: the master's coordinator cuts waves, the
   lane holds each wave's requests on warm keep-alive connections (``harness.senders.pooled``),
   releases them at the master's instant, reports its events. Then once more with the scenario's
   default waves (10 payments, 2 in flight, its default lead: 10 ms in one process) on
   ``--default-payments``, for comparison.
4. **the swarm over HTTP/2** (``--h2``, on by default): the same swarm with ``--sync single-packet``
   against a second Node server, its ``http2`` module in cleartext (h2c, prior knowledge), after a
   raw Node HTTP/2 client has shown that server's own rate. Each wave's streams are multiplexed on
   the lane's kept HTTP/2 connections (``harness.senders.pooled_h2``), its final frames in one write.
   Plain Locust has no HTTP/2, so this row's ratio is against plain Locust over HTTP/1.1: what QA
   would otherwise run.

Rates are Locust's own ``Requests/s`` of each run (requests / (last request - test start)), so the
two are the same meter; the swarm's burst-phase rate (requests / first release..last response, from
its report's history) is printed beside it. Synchronisation is read from the swarm's report: per
wave, the release spread (first..last final byte sent, the lane's clock) and the server-seen spread
(first..last ``X-Arrival-Ns``), and per payment the server-seen spread of its duplicates; median and
p95 of each. The load average (1 min) is printed before and after: the figures are only as quiet as
the machine.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "webhook_storm.py"
TARGET_RATIO = 0.5  # the swarm at >= 50 % of plain Locust's requests/s
SERVER_FLOOR = 10_000  # requests/s Node alone must answer for the comparison to mean anything
SERVER_LIFE = 900  # seconds: the Node server exits on its own after this, whatever happens here

# Answers at once; stamps a POST when its last body byte has been read (epoch ns on a monotonic clock).
# argv: life in seconds, then "h1" (Node's http module) or "h2c": its http2 module in cleartext with prior
# knowledge, and HTTP/1.1 on the same port (a connection whose first bytes are not the HTTP/2 preface goes to
# the http module), as the reference service on hypercorn does: the harness's own client speaks HTTP/1.1.
NODE_SERVER = r"""
const h2 = process.argv[2] === 'h2c';
const base = BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6)) - process.hrtime.bigint();
const ok = Buffer.from('{"ok":true}');
const handler = (req, res) => {
  if (req.method !== 'POST') {
    res.writeHead(200, {'Content-Type': 'application/json', 'Content-Length': ok.length});
    res.end(ok);
    return;
  }
  req.on('data', () => {});
  req.on('end', () => {
    const at = (base + process.hrtime.bigint()).toString();
    res.writeHead(200, {'Content-Type': 'application/json', 'Content-Length': ok.length, 'X-Arrival-Ns': at});
    res.end(ok);
  });
};
const h1 = require('http').createServer(handler);
h1.keepAliveTimeout = 10000;
h1.headersTimeout = 15000;
let server = h1;
if (h2) {
  // http2 reads a socket's native handle, which would lose the bytes read to sniff the preface: an HTTP/2
  // connection is handed over as a JS stream that replays them (http2 accepts any Duplex).
  const { Duplex } = require('stream');
  const h2s = require('http2').createServer(handler);
  const replay = (socket, first) => {
    const d = new Duplex({
      read() { socket.resume(); },
      write(chunk, encoding, done) { socket.write(chunk, encoding, done); },
      final(done) { socket.end(); done(); },
      destroy(err, done) { socket.destroy(); done(err); },
    });
    d.push(first);
    socket.on('data', (chunk) => { if (!d.push(chunk)) socket.pause(); });
    socket.on('end', () => d.push(null));
    socket.on('close', () => d.destroy());
    socket.on('error', (err) => d.destroy(err));
    return d;
  };
  server = require('net').createServer((socket) => {
    socket.setNoDelay(true);
    socket.once('data', (chunk) => {
      if (chunk.toString('latin1', 0, 3) === 'PRI') {
        h2s.emit('connection', replay(socket, chunk));
      } else {
        socket.pause();
        socket.unshift(chunk);
        h1.emit('connection', socket);
        socket.resume();
      }
    });
  });
}
server.listen(0, '127.0.0.1', () => { console.log(server.address().port); });
setTimeout(() => process.exit(0), Number(process.argv[1]) * 1000).unref();
"""

# A raw keep-alive client that costs the server's core as little as it can: `conns` connections, each
# with `depth` pipelined POSTs always outstanding, for `seconds`; counts the answers (status lines).
NODE_CLIENT = r"""
const net = require('net');
const [port, seconds, conns, depth] = process.argv.slice(1, 5).map(Number);
const body = process.argv[5];
const one = Buffer.from('POST /hook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n' +
  'Content-Length: ' + Buffer.byteLength(body) + '\r\n\r\n' + body);
const marker = 'HTTP/1.1 200';
let done = 0, errors = 0, open = conns;
const until = Date.now() + seconds * 1000;
function report() { console.log(JSON.stringify({done, errors, seconds})); process.exit(0); }
for (let c = 0; c < conns; c++) {
  const sock = net.connect(port, '127.0.0.1');
  sock.setNoDelay(true);
  let carry = '';
  sock.on('connect', () => sock.write(Buffer.concat(Array(depth).fill(one))));
  sock.on('data', (chunk) => {
    const text = carry + chunk.toString('latin1');
    let n = 0, at = text.indexOf(marker);
    while (at !== -1) { n++; at = text.indexOf(marker, at + marker.length); }
    carry = text.slice(-(marker.length - 1));
    done += n;
    if (Date.now() < until) { if (n) sock.write(Buffer.concat(Array(n).fill(one))); }
    else sock.end();
  });
  sock.on('error', () => { errors++; });
  sock.on('close', () => { if (--open === 0) report(); });
}
setTimeout(report, (seconds + 10) * 1000).unref();
"""

# The same for HTTP/2: `conns` sessions, each keeping `depth` POST streams always open, for `seconds`.
NODE_H2_CLIENT = r"""
const http2 = require('http2');
const [port, seconds, conns, depth] = process.argv.slice(1, 5).map(Number);
const body = Buffer.from(process.argv[5]);
let done = 0, errors = 0, open = conns;
const until = Date.now() + seconds * 1000;
function report() { console.log(JSON.stringify({done, errors, seconds})); process.exit(0); }
for (let c = 0; c < conns; c++) {
  const session = http2.connect('http://127.0.0.1:' + port);
  session.on('error', () => { errors++; });
  let inflight = 0;
  const one = () => {
    if (Date.now() >= until) { if (inflight === 0) { session.close(); if (--open === 0) report(); } return; }
    inflight++;
    const req = session.request({':method': 'POST', ':path': '/hook', 'content-type': 'application/json',
                                 'content-length': body.length});
    req.on('response', () => {});
    req.on('data', () => {});
    req.on('end', () => { done++; inflight--; one(); });
    req.on('error', () => { errors++; inflight--; one(); });
    req.end(body);
  };
  for (let d = 0; d < depth; d++) one();
}
setTimeout(report, (seconds + 10) * 1000).unref();
"""

PLAIN_LOCUSTFILE = '''
from locust import FastHttpUser, constant, task

BODY = {body!r}


class PlainHook(FastHttpUser):
    wait_time = constant(0)

    @task
    def hook(self):
        self.client.post("/hook", data=BODY, headers={{"Content-Type": "application/json"}})
'''

PROFILE = '''
version = 1
name = "rate-benchmark"
base_url = "{base_url}"
health_path = "/healthz"

[payments]
source = "file"
file = "{payments}"
id = "id"
transaction = "transaction"
amount = "amount"

[deliveries.callback]
method = "POST"
path = "/hook"
body = {{ merchantTransactionId = "{{transaction}}", amount = "{{amount}}", state = "{{state}}", event = "{{event_id}}" }}
signing = {{ scheme = "none" }}

[[effects]]
kind = "receipt"
source = "files"
dir = "{effects}"
glob = "*.pdf"
'''

# A callback-sized body for plain Locust: what one rendered delivery of the profile above looks like.
PLAIN_BODY = json.dumps({"merchantTransactionId": "RH0123456789abcdef", "amount": 123456, "state": "COMPLETED",
                         "event": "0123456789abcdef0123456789abcdef"}, separators=(",", ":"))


def load() -> float:
    return os.getloadavg()[0]


def start_node(seconds: int, protocol: str = "h1") -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(["node", "-e", NODE_SERVER, str(seconds), protocol], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.isdigit():
        proc.kill()
        raise SystemExit(f"the Node server did not start (said {line!r})")
    return proc, int(line)


def node_alone(port: int, seconds: float, conns: int, depth: int, client: str = NODE_CLIENT) -> dict[str, Any]:
    out = subprocess.run(["node", "-e", client, str(port), str(seconds), str(conns), str(depth), PLAIN_BODY],
                         capture_output=True, text=True, timeout=seconds + 20)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    data["rps"] = data["done"] / seconds
    return data


def locust_stats(prefix: Path) -> dict[str, dict[str, str]]:
    """Locust's --csv statistics, by name (the ``Aggregated`` row is the total)."""
    with open(f"{prefix}_stats.csv", newline="") as handle:
        return {row["Name"]: row for row in csv.DictReader(handle)}


def run_locust(argv: list[str], cwd: Path, timeout: float) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "locust", *argv], cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)
    return proc, time.monotonic() - started


def plain_locust(port: int, work: Path, users: int, seconds: int) -> dict[str, Any]:
    locustfile = work / "plain_locust.py"
    locustfile.write_text(PLAIN_LOCUSTFILE.format(body=PLAIN_BODY))
    prefix = work / "plain"
    proc, wall = run_locust(["-f", str(locustfile), "--headless", "-u", str(users), "-r", str(users),
                             "-t", f"{seconds}s", "-H", f"http://127.0.0.1:{port}", "--csv", str(prefix),
                             "--only-summary", "--stop-timeout", "2"], work, seconds + 60)
    total = locust_stats(prefix)["Aggregated"]
    return {"requests": int(total["Request Count"]), "failures": int(total["Failure Count"]),
            "rps": float(total["Requests/s"]), "wall_s": wall, "exit": proc.returncode,
            "tail": proc.stdout[-1500:]}


def swarm(port: int, root: Path, a: argparse.Namespace) -> dict[str, Any]:
    """One swarm run: ``a`` holds its payments, duplicates, wave size, in flight, users, lead and time bound."""
    sync = getattr(a, "sync", "last-byte")
    work = root / f"swarm-{sync}-w{a.wave_size}-i{a.inflight}"
    work.mkdir()
    payments = work / "payments.jsonl"
    with payments.open("w") as handle:
        for i in range(a.payments):
            handle.write(json.dumps({"id": f"p{i}", "transaction": f"RHRATE{i:08d}", "amount": 10_000 + i}) + "\n")
    effects = work / "effects"
    effects.mkdir()
    profile = work / "rate.toml"
    profile.write_text(PROFILE.format(base_url=f"http://127.0.0.1:{port}", payments=payments, effects=effects))
    prefix, reports = work / "swarm", work / "reports"
    proc, wall = run_locust(["-f", str(SCENARIO), "--headless", "-u", str(a.swarm_users), "-r", "100",
                             "-t", f"{a.swarm_limit}s", "--csv", str(prefix), "--only-summary", "--stop-timeout", "5",
                             "--target-profile", str(profile), "--payments", str(a.payments),
                             "--duplicates", str(a.duplicates), "--wave-size", str(a.wave_size),
                             "--inflight", str(a.inflight), "--sync", sync,
                             *(["--release-lead-ms", str(a.release_lead_ms)] if a.release_lead_ms is not None else []),
                             "--report-dir", str(reports), "--label", "rate"], ROOT, a.swarm_limit + 300)
    stats = locust_stats(prefix)
    total = stats["Aggregated"]
    found = sorted(reports.glob("*.json"))
    if not found:
        raise SystemExit(f"the swarm wrote no report (exit {proc.returncode}):\n{proc.stdout[-3000:]}")
    report = json.loads(found[0].read_text())
    return {"requests": int(total["Request Count"]), "failures": int(total["Failure Count"]),
            "rps": float(total["Requests/s"]), "wall_s": wall, "exit": proc.returncode,
            "verdict": next((line for line in proc.stdout.splitlines() if "race-harness verdict" in line), ""),
            **spreads(report)}


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def spreads(report: dict[str, Any]) -> dict[str, Any]:
    """Per wave and per payment spreads (ms) and the burst-phase rate, from the report's history."""
    events = report["history"]["events"]
    by_wave: dict[str, list[dict]] = defaultdict(list)
    by_payment: dict[str, list[dict]] = defaultdict(list)
    for e in events:
        if e.get("t_release") is None:
            continue
        by_wave[(e.get("meta") or {}).get("wave")].append(e)
        by_payment[e.get("payment")].append(e)

    def spread(group: list[dict], key: str) -> float | None:
        values = [e[key] for e in group if e.get(key) is not None]
        return (max(values) - min(values)) * 1000 if len(values) > 1 else None

    release = [s for g in by_wave.values() if (s := spread(g, "t_release")) is not None]
    server = [s for g in by_wave.values() if (s := spread(g, "server_arrival")) is not None]
    payment = [s for g in by_payment.values() if (s := spread(g, "server_arrival")) is not None]
    payment_release = [s for g in by_payment.values() if (s := spread(g, "t_release")) is not None]
    released = [e["t_release"] for e in events if e.get("t_release") is not None]
    answered = [e["t_response"] for e in events if e.get("t_response") is not None]
    phase = (max(answered) - min(released)) if released and answered else None
    sent = len(released)
    return {"waves": len(by_wave), "sent": sent, "answered": len(answered),
            "errors": sum(1 for e in events if e.get("error")),
            "burst_phase_s": phase, "burst_rps": sent / phase if phase else None,
            "reused": sum(1 for e in events if (e.get("meta") or {}).get("reused")),
            # One lane here, so a wave's connection numbers are its connections (HTTP/1.1: one per request).
            "connections_per_wave": statistics.median(len({e.get("connection") for e in g}) for g in by_wave.values())
            if by_wave else None,
            "wave_requests": statistics.median(len(g) for g in by_wave.values()) if by_wave else None,
            "release_ms": (statistics.median(release) if release else None, _pct(release, 0.95), max(release, default=None)),
            "server_ms": (statistics.median(server) if server else None, _pct(server, 0.95), max(server, default=None)),
            "payment_release_ms": (statistics.median(payment_release) if payment_release else None,
                                   _pct(payment_release, 0.95), max(payment_release, default=None)),
            "payment_ms": (statistics.median(payment) if payment else None, _pct(payment, 0.95), max(payment, default=None))}


def lead(settings: argparse.Namespace) -> str:
    if settings.release_lead_ms is None:
        return "the scenario's own lead (10 ms in one process)"
    return f"{settings.release_lead_ms:g} ms lead"


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def triple(values: tuple) -> str:
    return " / ".join(fmt(v) for v in values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20, help="plain Locust's run time (default 20)")
    parser.add_argument("--plain-users", type=int, default=20, help="plain Locust's FastHttpUser users (default 20)")
    parser.add_argument("--node-seconds", type=float, default=5.0, help="Node alone: seconds of its own client")
    parser.add_argument("--payments", type=int, default=8000)
    parser.add_argument("--duplicates", type=int, default=5)
    parser.add_argument("--wave-size", type=int, default=50, help="payments per wave (default 50)")
    parser.add_argument("--inflight", type=int, default=4, help="waves under way at once (default 4)")
    parser.add_argument("--swarm-users", type=int, default=4, help="the swarm's Locust users: its hands (default 4)")
    parser.add_argument("--release-lead-ms", type=float, default=10.0,
                        help="how far ahead the master names each release instant (default 10: one process)")
    parser.add_argument("--default-payments", type=int, default=2000,
                        help="also run the swarm with the scenario's default waves (10, 2 in flight, its own lead) on "
                             "this many payments, for comparison (0: don't)")
    parser.add_argument("--swarm-limit", type=int, default=120, help="the swarm's Locust --run-time bound, s")
    parser.add_argument("--h2", action=argparse.BooleanOptionalAction, default=True,
                        help="also run the swarm with --sync single-packet against Node's http2 module (h2c), its "
                             "waves multiplexed on the lane's kept HTTP/2 connections (default: on)")
    a = parser.parse_args(argv)

    load_before = load()
    node, port = start_node(SERVER_LIFE)
    node2, port2 = start_node(SERVER_LIFE, "h2c") if a.h2 else (None, 0)
    h2_alone: dict[str, Any] | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="rh-rate-") as tmp:
            work = Path(tmp)
            alone = node_alone(port, a.node_seconds, conns=64, depth=1)
            ceiling = node_alone(port, a.node_seconds, conns=16, depth=8)
            print(f"Node alone ({a.node_seconds:g} s each): {alone['rps']:,.0f} requests/s with 64 connections x 1 in "
                  f"flight, {ceiling['rps']:,.0f} with 16 x 8 pipelined ({alone['errors'] + ceiling['errors']} errors)",
                  flush=True)
            plain = plain_locust(port, work, a.plain_users, a.seconds)
            print(f"plain Locust: {plain['requests']} requests, {plain['rps']:,.0f} requests/s", flush=True)
            sw = swarm(port, work, a)
            print(f"swarm: {sw['requests']} requests, {sw['rps']:,.0f} requests/s (Locust), "
                  f"{fmt(sw['burst_rps'], 0)} requests/s (burst phase)", flush=True)
            runs = [(a, sw)]
            if a.default_payments:
                # The scenario's own defaults (waves of 10, 2 in flight, its lead for one process), for comparison.
                d = argparse.Namespace(**{**vars(a), "payments": a.default_payments, "wave_size": 10, "inflight": 2,
                                          "release_lead_ms": None})
                runs.append((d, swarm(port, work, d)))
                print(f"swarm (scenario defaults): {runs[-1][1]['rps']:,.0f} requests/s (Locust)", flush=True)
            if node2 is not None:
                h2_alone = node_alone(port2, a.node_seconds, conns=4, depth=64, client=NODE_H2_CLIENT)
                print(f"Node http2 alone: {h2_alone['rps']:,.0f} requests/s with 4 sessions x 64 streams",
                      flush=True)
                h = argparse.Namespace(**{**vars(a), "sync": "single-packet"})
                runs.append((h, swarm(port2, work, h)))
                print(f"swarm (single-packet, HTTP/2): {runs[-1][1]['rps']:,.0f} requests/s (Locust)", flush=True)
    finally:
        for proc in (node, node2):
            if proc is not None:
                proc.kill()
                proc.wait(5)
    load_after = load()

    ratio = sw["rps"] / plain["rps"] if plain["rps"] else 0.0
    print()
    print(f"Load average (1 min): {load_before:.2f} before, {load_after:.2f} after (2 cores)")
    print()
    print("| run | requests | failures | requests/s | vs plain Locust | per-wave release spread ms "
          "| per-wave server-seen spread ms | per-payment release spread ms | per-payment server-seen spread ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row, conns, depth in ((alone, 64, 1), (ceiling, 16, 8)):
        print(f"| Node alone: a raw Node client, {conns} connections x {depth} in flight, {a.node_seconds:g} s | "
              f"{row['done']} | {row['errors']} | {row['rps']:,.0f} | - | - | - | - | - |")
    if h2_alone is not None:
        print(f"| Node `http2` alone (h2c): a raw Node client, 4 sessions x 64 streams in flight, "
              f"{a.node_seconds:g} s | {h2_alone['done']} | {h2_alone['errors']} | {h2_alone['rps']:,.0f} | "
              f"- | - | - | - | - |")
    print(f"| plain Locust `FastHttpUser`, {a.plain_users} users, {a.seconds} s | {plain['requests']} | "
          f"{plain['failures']} | {plain['rps']:,.0f} | 100 % | - | - | - | - |")
    for settings, run in runs:
        sync = getattr(settings, "sync", "last-byte")
        how = ("single-packet over HTTP/2 (Node `http2`)" if sync == "single-packet" else "last-byte over HTTP/1.1")
        print(f"| race-harness swarm, {how}: {settings.payments} payments x {settings.duplicates}, waves of "
              f"{settings.wave_size} ({fmt(run['wave_requests'], 0)} requests on "
              f"{fmt(run['connections_per_wave'], 0)} connections), {settings.inflight} in flight, "
              f"{lead(settings)}, {settings.swarm_users} users | {run['requests']} | "
              f"{run['failures']} | {run['rps']:,.0f} | {run['rps'] / plain['rps'] if plain['rps'] else 0:.0%} | "
              f"{triple(run['release_ms'])} | {triple(run['server_ms'])} | {triple(run['payment_release_ms'])} | "
              f"{triple(run['payment_ms'])} |")
    print()
    print("Spreads: median / p95 / max over the swarm's waves (or payments); release = first..last final byte "
          "sent (the lane's clock), server-seen = first..last X-Arrival-Ns (Node stamps each request as it reads "
          "its last byte: one thread, so a wave's server-seen spread is also Node's time to read the wave).")
    print()
    print(f"swarm burst phase: {sw['sent']} requests released in {sw['waves']} waves over "
          f"{fmt(sw['burst_phase_s'])} s = {fmt(sw['burst_rps'], 0)} requests/s; {sw['errors']} transport errors; "
          f"swarm run {sw['wall_s']:.1f} s wall in all (judging and report included), exit {sw['exit']}")
    print(f"swarm verdict (not what this measures): {sw['verdict'].strip()[:200]}")
    for settings, run in runs:
        print(f"  {getattr(settings, 'sync', 'last-byte')}, waves of {settings.wave_size}: {run['reused']} of "
              f"{run['sent']} requests on connections kept from an earlier wave, {run['errors']} transport errors")
    server_ok = alone["rps"] > SERVER_FLOOR
    print(f"Node alone > {SERVER_FLOOR:,} requests/s: {'yes' if server_ok else 'NO'}; "
          f"swarm >= {TARGET_RATIO:.0%} of plain Locust: {'yes' if ratio >= TARGET_RATIO else 'NO'} ({ratio:.0%})")
    for settings, run in runs[1:]:
        if getattr(settings, "sync", "") == "single-packet":
            h2_ratio = run["rps"] / plain["rps"] if plain["rps"] else 0.0
            print(f"swarm over HTTP/2 (single-packet) >= {TARGET_RATIO:.0%} of plain Locust over HTTP/1.1: "
                  f"{'yes' if h2_ratio >= TARGET_RATIO else 'NO'} ({h2_ratio:.0%})")
    return 0 if server_ok and ratio >= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
