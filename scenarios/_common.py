"""What the three locustfiles share: options, the payment plan, the cross-worker rendezvous, the verdict.

Roles. The *coordinator* (the master, or the only process of a local run) owns the plan: it starts
the embedded reference service when asked, creates the payments through the service's API, and
drives *waves*. The *senders* (the workers, or that same local process) hold connections and
release requests. A local run is a coordinator and a sender in one process; Locust's custom
messages carry both conversations (a LocalRunner delivers them to itself).

One wave (``--wave-size`` payments, or deliveries of payments):

1. the coordinator splits every payment's duplicates across the senders that have users
   (duplicate ``j`` of the wave's ``i``-th payment goes to sender ``(i + j) % senders``), so
   duplicates of one payment come from different workers, and sends each sender its share
   (``rh:prepare``);
2. a free Locust user on each sender opens and warms one connection per request
   (``HeldBurst``) and answers ``rh:ready``;
3. once every share is ready (bounded), the coordinator names an absolute release instant a
   little in the future (``--release-lead-ms``) in ``rh:go``;
4. at that instant every sender sends its prefixes and releases its final bytes back to back,
   reads the answers, fires Locust ``request`` events (so Locust's statistics and failure counts
   are real, grouped by endpoint) and reports its events to the coordinator (``rh:done``).

Up to ``--inflight`` waves are under way at once; with ``--redelivery-rounds K``, a paid payment whose
duplicates produced no receipt (every generation failed and was rolled back) is delivered again
in a later wave, up to K more times. (Not the CLI's ``--rounds``, the plan's delivery rounds, in
which every request is sent again: a Locust run's plan has one.)

Why one release loop per worker rather than one Locust user per duplicate waiting on a gevent
rendezvous: measured with ``benchmarks/rendezvous_overlap.py``, the last-byte loop lands N=50 requests
within ~0.1 ms at the kernel (~4 ms by the service's X-Arrival-Ns); 50 gevent users released by
one Event, ~1.6 ms (~7 ms).

When the test stops (the coordinator only), the oracle judges the merged history with
``harness.runner.verify_history``, the JSON/Markdown/HTML report is written to ``--report-dir``,
the verdict is printed and becomes the process's exit code.
"""

from __future__ import annotations

import atexit
import base64
import json
import logging
import math
import tempfile
import time
import traceback
import uuid
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import gevent
import httpx
from gevent.event import AsyncResult
from gevent.event import Event as Flag
from gevent.lock import BoundedSemaphore
from gevent.queue import Empty, Queue
from locust import User, constant, events, task
from locust.runners import STATE_MISSING, LocalRunner, MasterRunner, WorkerRunner

from harness.burst import HeldBurst, PreparedRequest
from harness.embedded import ServiceProcess, ServiceStartError
from harness.reference import start_service, start_simulator
from harness.history import Event, History
from harness.plan import Plan, PlanError, parse_channel_mix
from harness.report import write_report
from harness.result import EXIT_INCONCLUSIVE, EXIT_USAGE, RunReport
from harness.runner import HarnessError, build_requests, prepare_payments, verify_history
from harness.target import Payment, Target
from harness.targets import BUILT_IN, load_targets
from harness.telemetry import MemorySampler, counter_deltas, scrape

log = logging.getLogger("race-harness.scenarios")
logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per payment created or read back is noise here

VERDICT_PREFIX = "race-harness verdict"
EMBEDDED_MODES = ("atomic", "vulnerable", "lease", "locked")
MSG_HELLO, MSG_PREPARE, MSG_READY, MSG_GO, MSG_DONE = "rh:hello", "rh:prepare", "rh:ready", "rh:go", "rh:done"
LANE_WAIT = 60.0  # seconds the coordinator waits for the first users to say hello
WAVE_SLACK = 15.0  # seconds beyond the burst timeout a wave may take before it is given up
REPORT_WAIT_MAX = 60.0  # seconds test_stop waits for waves still under way


# -- scenarios and their options ---------------------------------------------------------------

@dataclass(frozen=True)
class Scenario:
    """What differs between the locustfiles: a name, and the defaults of a few options."""

    name: str
    channel_mix: str = "callback:1"
    redelivery_rounds: int = 0
    failure_rate: float = 0.0  # the embedded service's injected generation failures, unless --failure-rate says
    heal_after: int = 0
    targets: str | None = None  # default targets file or built-in name (None: the seed's)


@dataclass
class Settings:
    """The options of one run, read at test_start (the web UI hands them over as strings)."""

    scenario: Scenario
    host: str | None
    payments: int
    duplicates: int
    unpaid: int
    channel_mix: dict[str, int]
    seed: int
    receipts_dir: str | None
    mongo_uri: str | None
    gateway_url: str | None
    targets: str | None
    report_dir: Path
    label: str
    embedded: str | None
    store: str | None  # the embedded service's store: memory, wire, or None (--mongo-uri / MONGODB_URI / memory)
    workers: int  # the embedded service's worker processes
    generation_delay_ms: float
    failure_rate: float | None
    redelivery_rounds: int  # deliver a payment again while it has no receipt, up to this many more times
    heal_after: int
    wave_size: int
    inflight: int
    release_lead: float  # seconds
    burst_timeout: float
    headless: bool

    @property
    def plan(self) -> Plan:
        return Plan(payments=self.payments, duplicates=self.duplicates, unpaid=self.unpaid,
                    channel_mix=self.channel_mix, seed=self.seed)

    def describe(self) -> dict[str, Any]:
        """The options as the report shows them. Secrets (a ``--mongo-uri`` with credentials) are
        not masked here: the report reaches disk only through ``harness.report.write_report``,
        which redacts every secret-bearing field of every report by one rule."""
        data = {k: v for k, v in asdict(self).items() if k not in ("scenario", "plan")}
        data["report_dir"] = str(self.report_dir)
        data["scenario"] = self.scenario.name
        return data


def add_options(parser: Any, scenario: Scenario) -> None:
    """The scenario's options, on Locust's own parser (command line, locust.conf, web UI).

    Help texts spell their defaults out: the web UI shows them as written, without argparse's expansion.
    """
    add = parser.add_argument  # Locust's own: a plain argparse group knows no include_in_web_ui / is_secret
    add("--payments", type=int, default=20, help="paid payments to create and race (default 20)")
    add("--duplicates", type=int, default=5, help="simultaneous deliveries per payment (default 5)")
    add("--unpaid", type=int, default=0, help="control payments that only hear FAILED/PENDING callbacks (default 0)")
    add("--channel-mix", default=scenario.channel_mix,
        help=f"weights of callback and verify requests, e.g. callback:3,verify:1 (default {scenario.channel_mix})")
    add("--seed", type=int, default=0, help="the plan's seed: amounts, channel choice (default 0)")
    add("--receipts-dir", default=None,
        help="where the service under test writes its receipt PDFs, readable from the master")
    add("--mongo-uri", default=None, is_secret=True,
        help="read payment state straight from MongoDB (default: the service's API at -H)")
    add("--gateway-url", default=None,
        help="the PhonePe status API (simulator) the service's verify path asks; needed for verify calls on -H")
    add("--targets", default=scenario.targets,
        help="targets file, or a built-in name: seed, exactly-once (default "
             f"{scenario.targets or 'seed'})")
    add("--report-dir", default="reports/locust", help="where the JSON/Markdown/HTML report goes (default reports/locust)")
    add("--label", default=None, help="name of the run and its report files (default: the scenario's name)")
    add("--embedded", default="", choices=("",) + EMBEDDED_MODES,
        help="start the reference service in this mode instead of testing -H (one machine only)")
    add("--store", default="", choices=("", "memory", "wire"),
        help="the embedded service's store: memory (default) or wire (a SecantusDB server started for the run); "
             "with --mongo-uri the embedded service uses that MongoDB")
    add("--workers", type=int, default=1,
        help="the embedded service's worker processes (default 1; more need --store wire or --mongo-uri)")
    add("--generation-delay-ms", type=float, default=200.0,
        help="the embedded service's receipt generation time in ms (default 200)")
    add("--failure-rate", type=float, default=None,
        help="injected receipt generation failures, 0..1: the embedded service's flag (default "
             f"{scenario.failure_rate:g}), or set on -H for the run through PUT /_admin/faults (default: leave it)")
    add("--redelivery-rounds", type=int, default=None,
        help="deliver a payment's duplicates again while it has no receipt, up to this many more times "
             f"(default {scenario.redelivery_rounds})")
    # The old name, --rounds N (N deliveries in all), read like the CLI's --rounds (every request sent again).
    add("--rounds", type=int, default=None, help="deprecated: --redelivery-rounds N-1", include_in_web_ui=False)
    add("--heal-after", type=int, default=scenario.heal_after,
        help="after this many delivery rounds set the service's failure rate to 0 through PUT /_admin/faults (0: never)")
    add("--wave-size", type=int, default=10, help="payments released at one instant (default 10)")
    add("--inflight", type=int, default=2, help="waves under way at once (default 2)")
    add("--release-lead-ms", type=float, default=100.0,
        help="how far ahead the master names the release instant, in ms (default 100; more for remote workers)")
    add("--burst-timeout", type=float, default=30.0,
        help="seconds one share may take to connect, send and read (default 30)")


def _opt(options: Any, name: str, kind: type, default: Any = None) -> Any:
    value = getattr(options, name, default)
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return default
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise HarnessError(f"--{name.replace('_', '-')} must be a {kind.__name__}, not {value!r}") from None


def read_settings(environment: Any, scenario: Scenario) -> Settings:
    """Options as the coordinator sees them at test_start, checked; HarnessError on bad usage."""
    o = environment.parsed_options
    host = (environment.host or _opt(o, "host", str) or "").strip() or None
    embedded = _opt(o, "embedded", str) or None
    if embedded is not None and embedded not in EMBEDDED_MODES:
        raise HarnessError(f"--embedded must be one of {', '.join(EMBEDDED_MODES)}")
    if embedded and host:
        raise HarnessError("give either -H/--host (the service under test) or --embedded, not both")
    if not embedded and not host:
        raise HarnessError("no service to test: give -H/--host URL (and --receipts-dir) or --embedded atomic|vulnerable")
    if host and not host.startswith(("http://", "https://")):
        raise HarnessError(f"-H/--host must be an http:// or https:// URL, not {host!r}")
    try:
        mix = parse_channel_mix(_opt(o, "channel_mix", str, scenario.channel_mix))
    except PlanError as exc:
        raise HarnessError(str(exc)) from None
    failure_rate = _opt(o, "failure_rate", float, scenario.failure_rate if embedded else None)
    if failure_rate is not None and not 0.0 <= failure_rate <= 1.0:
        raise HarnessError("--failure-rate must be between 0 and 1")
    settings = Settings(
        scenario=scenario, host=host,
        payments=_opt(o, "payments", int, 20), duplicates=_opt(o, "duplicates", int, 5),
        unpaid=_opt(o, "unpaid", int, 0), channel_mix=mix, seed=_opt(o, "seed", int, 0),
        receipts_dir=_opt(o, "receipts_dir", str), mongo_uri=_opt(o, "mongo_uri", str),
        gateway_url=_opt(o, "gateway_url", str), targets=_opt(o, "targets", str, scenario.targets),
        report_dir=Path(_opt(o, "report_dir", str, "reports/locust")),
        label=_opt(o, "label", str) or (f"{scenario.name}-{embedded}" if embedded else scenario.name),
        embedded=embedded, store=_opt(o, "store", str), workers=_opt(o, "workers", int, 1),
        generation_delay_ms=_opt(o, "generation_delay_ms", float, 200.0),
        failure_rate=failure_rate, redelivery_rounds=_redelivery_rounds(o, scenario),
        heal_after=_opt(o, "heal_after", int, scenario.heal_after), wave_size=_opt(o, "wave_size", int, 10),
        inflight=_opt(o, "inflight", int, 2), release_lead=_opt(o, "release_lead_ms", float, 100.0) / 1000.0,
        burst_timeout=_opt(o, "burst_timeout", float, 30.0), headless=bool(getattr(o, "headless", False)),
    )
    try:
        settings.plan.validate()
        load_targets(settings.targets)
    except (PlanError, ValueError) as exc:
        raise HarnessError(str(exc)) from None
    for name in ("wave_size", "inflight"):
        if getattr(settings, name) < 1:
            raise HarnessError(f"--{name.replace('_', '-')} must be at least 1")
    if settings.redelivery_rounds < 0:
        raise HarnessError("--redelivery-rounds must be at least 0")
    if not embedded and (settings.store or settings.workers != 1):
        raise HarnessError("--store and --workers describe the embedded service: give them with --embedded")
    if settings.burst_timeout <= 0 or settings.release_lead < 0:
        raise HarnessError("--burst-timeout must be positive and --release-lead-ms not negative")
    if settings.plan.uses_verify() and not embedded and not settings.gateway_url:
        raise HarnessError("verify calls need --gateway-url: the PhonePe status API (simulator) the service asks")
    return settings


def _redelivery_rounds(options: Any, scenario: Scenario) -> int:
    """--redelivery-rounds, or the deprecated --rounds N (N deliveries in all) as N - 1."""
    redeliveries, rounds = _opt(options, "redelivery_rounds", int), _opt(options, "rounds", int)
    if rounds is None:
        return scenario.redelivery_rounds if redeliveries is None else redeliveries
    if redeliveries is not None:
        raise HarnessError("give --redelivery-rounds only (--rounds is its deprecated old name)")
    if rounds < 1:
        raise HarnessError("--rounds must be at least 1")
    log.warning("race-harness: --rounds %d is deprecated here: use --redelivery-rounds %d", rounds, rounds - 1)
    return rounds - 1


# -- plain data over the wire (msgpack: dicts, lists, strings, numbers) ------------------------

def request_to_wire(request: PreparedRequest, stats_name: str) -> dict[str, Any]:
    return {"method": request.method, "url": request.url, "headers": [list(h) for h in request.headers],
            "body": base64.b64encode(request.body).decode("ascii"), "payment": request.payment,
            "channel": request.channel, "meta": request.meta, "name": stats_name}


def request_from_wire(data: dict[str, Any]) -> PreparedRequest:
    return PreparedRequest(data["method"], data["url"], tuple((str(k), str(v)) for k, v in data["headers"]),
                           base64.b64decode(data["body"]), payment=data["payment"], channel=data["channel"],
                           meta=dict(data["meta"] or {}))


def event_to_wire(event: Event) -> dict[str, Any]:
    return json.loads(json.dumps(asdict(event), default=str))  # the body is JSON or text already


def event_from_wire(data: dict[str, Any]) -> Event:
    return Event(**{k: v for k, v in data.items() if k in Event.__dataclass_fields__})


# -- the sender: workers (and a local run) -----------------------------------------------------

class Sender:
    """Shares waiting for a free user, and the release instants the coordinator names."""

    def __init__(self) -> None:
        self.jobs: Queue = Queue()
        self._go: dict[str, AsyncResult] = {}

    def go_of(self, wave: str) -> AsyncResult:
        return self._go.setdefault(wave, AsyncResult())

    # message handlers: never block (a LocalRunner calls them in the sender's own greenlet)
    def on_prepare(self, environment: Any, msg: Any, **_: Any) -> None:
        self.go_of(msg.data["wave"])
        self.jobs.put(msg.data)

    def on_go(self, environment: Any, msg: Any, **_: Any) -> None:
        self.go_of(msg.data["wave"]).set(msg.data)

    def next_job(self, timeout: float) -> dict[str, Any] | None:
        try:
            return self.jobs.get(timeout=timeout)
        except Empty:
            return None

    def run(self, environment: Any, job: dict[str, Any]) -> None:
        """Hold, wait for the instant, release, read, record, report: one share of one wave."""
        runner = environment.runner
        wave, timeout = job["wave"], float(job["timeout"])
        node = _node_id(runner)
        names = [r["name"] for r in job["requests"]]
        count = len(names)
        held = None
        try:
            requests = [request_from_wire(r) for r in job["requests"]]
            held = HeldBurst(requests, timeout=timeout, warmup_path=job.get("warmup_path") or None)
            runner.send_message(MSG_READY, {"run": job["run"], "wave": wave, "ready": held.ready,
                                            "errors": held.errors[:5]})
            go = self.go_of(wave).get(timeout=timeout + WAVE_SLACK)
            if go.get("abort"):
                held.close()
                runner.send_message(MSG_DONE, {"run": job["run"], "wave": wave, "events": [],
                                               "aborted": count})
                return
            history = History(origin_wall=float(job["origin_wall"]))
            result, late = held.release(go.get("release_at"), history)
        except gevent.Timeout:
            if held is not None:
                held.close()
            log.error("wave %s: no release instant from the master in time; the share was not sent", wave)
            runner.send_message(MSG_DONE, {"run": job["run"], "wave": wave, "events": [], "aborted": count})
            return
        except Exception as exc:  # noqa: BLE001 - reported to the coordinator, never lost silently
            if held is not None:
                held.close()
            log.error("wave %s: the share failed: %s\n%s", wave, exc, traceback.format_exc())
            runner.send_message(MSG_DONE, {"run": job["run"], "wave": wave, "events": [], "aborted": count,
                                           "error": f"{type(exc).__name__}: {exc}"})
            return
        finally:
            self._go.pop(wave, None)
        for event, name in zip(result.events, names):
            # "clock": whose perf_counter timed the event. Workers' clocks are not one clock, so the
            # oracle compares times only between events of one clock (the node id names one process).
            event.meta.update({"worker": node, "clock": node, "wave": wave, "late_ms": round(late * 1000, 3)})
            _record_in_locust(environment, event, name)
        runner.send_message(MSG_DONE, {"run": job["run"], "wave": wave,
                                       "events": [event_to_wire(e) for e in result.events],
                                       "late_ms": round(late * 1000, 3),
                                       "release_spread_ms": _ms(result.release_spread),
                                       "arrival_spread_ms": _ms(result.arrival_spread)})


class BurstFailure(Exception):
    """A request of a burst that failed at the HTTP or transport level (what Locust counts as a failure)."""


def _record_in_locust(environment: Any, event: Event, name: str) -> None:
    method, _, path = name.partition(" ")
    exception = None
    if event.error is not None:
        exception = BurstFailure(event.error.split(" [", 1)[0])
    elif event.status is not None and event.status >= 400:
        exception = BurstFailure(f"HTTP {event.status}")
    body = event.body if isinstance(event.body, str) else json.dumps(event.body)
    environment.events.request.fire(
        request_type=method, name=path, response_time=(event.latency or 0.0) * 1000,
        response_length=len(body or ""), exception=exception, response=None,
        context={"payment": event.payment, "channel": event.channel},
    )


# -- the coordinator: the master (and a local run) ---------------------------------------------

@dataclass
class Delivery:
    slot: int
    round: int


@dataclass
class Wave:
    id: str
    deliveries: list[Delivery]
    nodes: set[str]
    ready: dict[str, dict] = field(default_factory=dict)
    done: dict[str, dict] = field(default_factory=dict)
    all_ready: Flag = field(default_factory=Flag)
    all_done: Flag = field(default_factory=Flag)
    release_at: float | None = None


class Coordinator:
    """One run on the coordinator: from test_start to the verdict."""

    def __init__(self, environment: Any, scenario: Scenario) -> None:
        self.environment = environment
        self.scenario = scenario
        self.run_id = uuid.uuid4().hex[:8]
        self.settings: Settings | None = None
        self.target: Target | None = None
        self.plan: Plan | None = None
        self.payments: list[Payment] = []
        self.requests_by_slot: dict[int, list[PreparedRequest]] = {}
        self.history = History(sync="last-byte")
        self.waves: dict[str, Wave] = {}
        self.lanes: dict[str, int] = {}
        self.rounds_of: dict[int, int] = {}
        self.receipted: set[int] = set()
        self.service: ServiceProcess | None = None
        self.simulator: ServiceProcess | None = None
        self.sampler: MemorySampler | None = None
        self.counters_before: dict[str, float] | None = None
        self.faults_before: dict | None = None
        self.healed = False
        self.started = time.time()
        self.stopping = Flag()
        self.finished = False
        self.failure: tuple[int, str] | None = None  # (exit code, message) when the run could not be made
        self.report: RunReport | None = None
        self._finish_lock = BoundedSemaphore()
        self.greenlet: gevent.Greenlet | None = None

    # -- messages (never block) --
    def on_hello(self, msg: Any) -> None:
        self.lanes[msg.node_id] = self.lanes.get(msg.node_id, 0) + 1

    def on_ready(self, msg: Any) -> None:
        wave = self._wave_of(msg)
        if wave is not None:
            wave.ready[msg.node_id] = msg.data
            if wave.nodes <= set(wave.ready):
                wave.all_ready.set()

    def on_done(self, msg: Any) -> None:
        wave = self._wave_of(msg)
        if wave is None or msg.node_id in wave.done:
            return
        wave.done[msg.node_id] = msg.data
        for data in msg.data.get("events") or []:
            event = event_from_wire(data)
            event.index = len(self.history.events)
            self.history.events.append(event)
        if msg.data.get("error"):
            log.error("wave %s on %s: %s", wave.id, msg.node_id, msg.data["error"])
        if wave.nodes <= set(wave.done):
            wave.all_done.set()

    def _wave_of(self, msg: Any) -> Wave | None:
        data = msg.data or {}
        if data.get("run") != self.run_id:
            return None  # a message of an earlier run
        return self.waves.get(data.get("wave"))

    # -- the run --
    def start(self) -> None:
        self.greenlet = gevent.spawn(self._main)

    def _main(self) -> None:
        try:
            self.settings = read_settings(self.environment, self.scenario)
            self._prepare()
            self._drive()
        except HarnessError as exc:
            self.failure = (EXIT_USAGE, f"ERROR: {exc}")
        except Exception as exc:  # noqa: BLE001 - the run ends with a clear message and a non-zero code
            log.error("race-harness scenario failed:\n%s", traceback.format_exc())
            self.failure = (EXIT_INCONCLUSIVE, f"INCONCLUSIVE: the scenario failed: {type(exc).__name__}: {exc}")
        if self.stopping.is_set():
            return  # someone else stops the test (--run-time, Ctrl+C, the web UI); test_stop verifies
        runner = self.environment.runner
        if getattr(self.environment.parsed_options, "headless", False):
            runner.quit()  # the test stops, test_stop verifies, the process exits with the verdict
        else:
            runner.stop()  # web UI: the verdict is printed, the UI stays for the next run

    def _prepare(self) -> None:
        s = self.settings
        assert s is not None
        self.plan = s.plan
        target = self._start_embedded() if s.embedded else Target(
            base_url=s.host, receipts_dir=s.receipts_dir, mongo_uri=s.mongo_uri, gateway_url=s.gateway_url)
        if target.receipts_dir is None:
            log.warning("no --receipts-dir: receipt files cannot be read, so the verdict will be INCONCLUSIVE")
        self.target = target
        with httpx.Client(timeout=10.0) as client:
            self.payments = prepare_payments(target, self.plan, client)
            if s.failure_rate is not None and not s.embedded:
                self.faults_before = _set_failure_rate(client, target, s.failure_rate)
            self.counters_before = scrape(client, target.url(target.metrics_path) if target.metrics_path else None)
        slot_of = {p.id: i for i, p in enumerate(self.payments)}
        for request in build_requests(self.plan, self.payments, target):
            self.requests_by_slot.setdefault(slot_of[request.payment], []).append(request)
        if self.service is not None:
            self.sampler = MemorySampler(self.service.pid, interval=0.05).start()
        self.history.origin_wall = time.time()
        log.info("race-harness: %d payments (%d paid) x %d duplicates on %s", len(self.payments), self.plan.payments,
                 self.plan.duplicates, target.base_url)

    def _start_embedded(self) -> Target:
        s = self.settings
        assert s is not None
        s.report_dir.mkdir(parents=True, exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix=f"{s.label}-", dir=s.report_dir))
        receipts = Path(s.receipts_dir) if s.receipts_dir else workdir / "receipts"
        try:
            if s.plan.uses_verify():
                self.simulator = start_simulator(log_path=workdir / "simulator.log")
            self.service = start_service(receipts, mode=s.embedded, generation_delay_ms=s.generation_delay_ms,
                                         failure_rate=s.failure_rate or 0.0,
                                         phonepe_base_url=self.simulator.url if self.simulator else None,
                                         log_path=workdir / "service.log", store=s.store, workers=s.workers,
                                         **({"mongo_uri": s.mongo_uri} if s.mongo_uri else {}))
        except (ServiceStartError, ValueError) as exc:
            raise HarnessError(f"could not start the reference service: {exc}") from None
        log.info("race-harness: embedded %s service on %s, receipts in %s", s.embedded, self.service.url, receipts)
        # With a MongoDB store (wire or external) the oracle reads state straight from the database.
        return Target(base_url=self.service.url, receipts_dir=str(receipts), mongo_uri=self.service.mongo_uri,
                      mongo_database=self.service.database, gateway_url=self.simulator.url if self.simulator else None)

    def _senders(self) -> list[str]:
        runner = self.environment.runner
        alive = []
        for node, users in sorted(self.lanes.items()):
            if users <= 0:
                continue
            if isinstance(runner, MasterRunner):
                client = runner.clients.get(node)
                if client is None or client.state == STATE_MISSING:
                    continue
            alive.append(node)
        return alive

    def _wait_for_lanes(self) -> None:
        runner = self.environment.runner
        deadline = time.monotonic() + LANE_WAIT
        grace_until = None
        while time.monotonic() < deadline and not self.stopping.is_set():
            wanted = max(1, getattr(runner, "target_user_count", 0) or 1)
            have = sum(self.lanes.values())
            if have >= wanted:
                return
            if have and grace_until is None:
                grace_until = time.monotonic() + 2.0  # slow ramp-ups: start with the users there are
            if grace_until is not None and time.monotonic() >= grace_until:
                return
            gevent.sleep(0.05)
        if not self._senders():
            raise HarnessError("no Locust user started within %.0f s (workers connected? -u at least 1?)" % LANE_WAIT)

    def _drive(self) -> None:
        s, plan = self.settings, self.plan
        assert s is not None and plan is not None
        self._wait_for_lanes()
        queue = deque(Delivery(slot, 1) for slot in range(plan.slots))
        inflight: deque[Wave] = deque()
        count = 0
        deliveries = plan.slots * (s.redelivery_rounds + 1)
        max_waves = math.ceil(deliveries / s.wave_size) + deliveries  # a hard bound
        while (queue or inflight) and not self.stopping.is_set() and count <= max_waves:
            while inflight and (len(inflight) >= s.inflight or not queue):
                self._complete(inflight.popleft(), queue)
                if self.stopping.is_set():
                    return
            if not queue:
                continue
            batch = [queue.popleft() for _ in range(min(s.wave_size, len(queue)))]
            if s.heal_after and not self.healed and any(d.round > s.heal_after for d in batch):
                self._heal()
            wave = self._launch(batch, count)
            count += 1
            if wave is not None:
                inflight.append(wave)
        for wave in inflight:
            self._complete(wave, deque())

    def _launch(self, batch: list[Delivery], number: int) -> Wave | None:
        s = self.settings
        assert s is not None and self.target is not None
        senders = self._senders()
        if not senders:
            raise HarnessError("every worker with users has gone")
        wave_id = f"{self.run_id}-{number}"
        shares: dict[str, list[dict]] = {node: [] for node in senders}
        for i, delivery in enumerate(batch):
            self.rounds_of[delivery.slot] = delivery.round
            for j, request in enumerate(self.requests_by_slot[delivery.slot]):
                if delivery.round > 1:  # a redelivery: the same message, signed afresh
                    request = self._rebuild(request, delivery.slot)
                request = replace(request, meta={**request.meta, "round": delivery.round})
                shares[senders[(i + j) % len(senders)]].append(request_to_wire(request, self._stats_name(request)))
        shares = {node: share for node, share in shares.items() if share}
        wave = Wave(wave_id, batch, set(shares))
        self.waves[wave_id] = wave
        runner = self.environment.runner
        for node, share in shares.items():
            runner.send_message(MSG_PREPARE, {"run": self.run_id, "wave": wave_id, "requests": share,
                                              "timeout": s.burst_timeout, "origin_wall": self.history.origin_wall,
                                              "warmup_path": self.target.health_path},
                                client_id=None if node == "local" else node)
        if not _wait(wave.all_ready, s.burst_timeout + WAVE_SLACK, self.stopping):
            if self.stopping.is_set():  # the test is stopping: this wave is never released
                for node in shares:
                    runner.send_message(MSG_GO, {"run": self.run_id, "wave": wave_id, "abort": True},
                                        client_id=None if node == "local" else node)
                return None
            missing = sorted(wave.nodes - set(wave.ready))
            log.warning("wave %s: %s not ready in time; releasing the others", wave_id, ", ".join(missing))
        wave.release_at = time.time() + s.release_lead
        for node in shares:
            runner.send_message(MSG_GO, {"run": self.run_id, "wave": wave_id, "release_at": wave.release_at},
                                client_id=None if node == "local" else node)
        return wave

    def _rebuild(self, request: PreparedRequest, slot: int) -> PreparedRequest:
        assert self.target is not None
        payment = self.payments[slot]
        fresh = (self.target.verify_request(payment) if request.channel == "verify"
                 else self.target.callback_request(payment, request.meta.get("state", "COMPLETED")))
        return replace(fresh, meta={**fresh.meta, **request.meta})

    def _stats_name(self, request: PreparedRequest) -> str:
        assert self.target is not None
        path = self.target.verify_path if request.channel == "verify" else self.target.callback_path
        return f"{request.method} {path} [burst]"

    def _complete(self, wave: Wave, queue: deque) -> None:
        """Wait (bounded) for a wave's reports; queue another round for paid payments still without a receipt."""
        s = self.settings
        assert s is not None
        if not _wait(wave.all_done, s.burst_timeout + s.release_lead + WAVE_SLACK, self.stopping):
            if self.stopping.is_set():
                return
            log.warning("wave %s: no report from %s in time", wave.id, ", ".join(sorted(wave.nodes - set(wave.done))))
        late = [d.get("late_ms") or 0 for d in wave.done.values()]
        if late and max(late) > 5:
            log.warning("wave %s released up to %.1f ms late on a worker (raise --release-lead-ms?)", wave.id, max(late))
        events = [e for e in self.history.events if e.meta.get("wave") == wave.id]
        for delivery in wave.deliveries:
            outcomes = {self.target.outcome_of(e.body) for e in events if e.payment == self.payments[delivery.slot].id}
            if "generated" in outcomes:
                self.receipted.add(delivery.slot)
            elif (self.plan.is_paid(delivery.slot) and delivery.round <= s.redelivery_rounds and outcomes
                  and not self.stopping.is_set()):
                queue.append(Delivery(delivery.slot, delivery.round + 1))

    def _heal(self) -> None:
        assert self.target is not None
        self.healed = True
        try:
            with httpx.Client(timeout=10.0) as client:
                before = _set_failure_rate(client, self.target, 0.0)
        except HarnessError as exc:
            log.warning("race-harness: --heal-after: %s", exc)
            return
        if self.faults_before is None and self.service is None:
            self.faults_before = before
        log.info("race-harness: rounds after %d run with the service's failure rate at 0", self.settings.heal_after)

    # -- the end --
    def finish(self) -> None:
        """Verify once: on the first test_stop (the coordinator only); later calls do nothing."""
        with self._finish_lock:
            if self.finished:
                return
            self.stopping.set()
            try:
                self._await_waves()
                self._verify()
            except Exception as exc:  # noqa: BLE001
                log.error("race-harness verification failed:\n%s", traceback.format_exc())
                self.failure = self.failure or (EXIT_INCONCLUSIVE,
                                                f"INCONCLUSIVE: verification failed: {type(exc).__name__}: {exc}")
            finally:
                self.finished = True
                self._announce()
                self.cleanup()

    def _await_waves(self) -> None:
        if self.settings is None:
            return
        deadline = time.monotonic() + min(REPORT_WAIT_MAX, self.settings.burst_timeout + self.settings.release_lead + 5)
        for wave in [w for w in self.waves.values() if w.release_at is not None]:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not wave.all_done.wait(remaining):
                log.warning("wave %s: stopped before every worker reported; verifying what came back", wave.id)
                break

    def _verify(self) -> None:
        if self.failure is not None or self.target is None or self.plan is None:
            return
        s = self.settings
        assert s is not None
        sent = {e.payment for e in self.history.events if e.t_release is not None}
        slots = [i for i, p in enumerate(self.payments) if p.id in sent]
        if not slots:
            self.failure = (EXIT_INCONCLUSIVE, "INCONCLUSIVE: no payment was delivered before the test stopped")
            return
        paid = [i for i in slots if self.plan.is_paid(i)]
        unpaid = [i for i in slots if not self.plan.is_paid(i)]
        plan = replace(self.plan, payments=len(paid), unpaid=len(unpaid))
        payments = [self.payments[i] for i in paid + unpaid]
        memory = self.sampler.stop() if self.sampler else {}
        self.sampler = None
        with httpx.Client(timeout=10.0) as client:
            after = scrape(client, self.target.url(self.target.metrics_path) if self.target.metrics_path else None)
        runner = self.environment.runner
        config = {
            "scenario": s.scenario.name,
            "options": s.describe(),
            "locust": {"runner": type(runner).__name__, "senders": dict(self.lanes),
                       "waves": len(self.waves), "planned_payments": self.plan.slots,
                       "not_delivered": [p.id for i, p in enumerate(self.payments) if i not in slots],
                       "redeliveries": {self.payments[i].id: self.rounds_of.get(i, 1) - 1 for i in slots}},
            # What reverify reads: the run's targets, resolved so that they are found from another directory.
            "targets_file": _targets_source(s.targets),
        }
        if s.embedded:
            config["service"] = {"embedded": True, "mode": s.embedded, "generation_delay_ms": s.generation_delay_ms,
                                 "failure_rate": s.failure_rate or 0.0, "store": self.service.store if self.service
                                 else s.store, "workers": s.workers}
            config["mode"] = s.embedded
        self.report = verify_history(self.target, plan, payments, self.history, targets_file=s.targets,
                                     label=s.label, config=config, memory=memory, started=self.started,
                                     counters=counter_deltas(self.counters_before, after))

    def _announce(self) -> None:
        """Print the verdict, write the report, set the exit code (exactly once per run)."""
        env = self.environment
        paths: dict[str, Path] = {}
        if self.report is not None and self.settings is not None:
            try:
                paths = write_report(self.report, self.settings.report_dir)
            except OSError as exc:
                log.error("race-harness: cannot write the report to %s: %s", self.settings.report_dir, exc)
            m = self.report.metrics
            lines = [f"{VERDICT_PREFIX} [{self.report.label}]: {self.report.explain(limit=10)}",
                     f"  payments {m.get('payments_paid')} paid + {m.get('payments_unpaid')} unpaid, "
                     f"{m.get('requests')} requests from {len(self.lanes)} process(es) with {sum(self.lanes.values())} users; "
                     f"receipt files per paid payment "
                     f"{m.get('receipts_per_payment_min')}-{m.get('receipts_per_payment_max')}; "
                     f"rollbacks {_num(m.get('rollbacks'))}; server-seen arrival spread per payment "
                     f"<= {m.get('payment_arrival_spread_ms_max')} ms, whole waves {m.get('arrival_spread_ms')} ms",
                     *(f"  report ({kind}): {path}" for kind, path in paths.items())]
            code = self.report.verdict.exit_code
        else:
            code, message = self.failure or (EXIT_INCONCLUSIVE, "INCONCLUSIVE: the run ended before anything was judged")
            lines = [f"{VERDICT_PREFIX} [{self.settings.label if self.settings else self.scenario.name}]: {message}"]
        print("\n".join(lines), flush=True)
        env.process_exit_code = code

    def cleanup(self) -> None:
        """Put the service back and stop whatever this run started (safe to call more than once)."""
        if self.sampler is not None:
            self.sampler.stop()
            self.sampler = None
        if self.faults_before is not None and self.target is not None and self.service is None:
            try:
                with httpx.Client(timeout=5.0) as client:
                    client.put(self.target.url("/_admin/faults"), json={"failure_rate": self.faults_before.get("failure_rate", 0.0)})
            except httpx.HTTPError:
                pass
            self.faults_before = None
        for process in (self.service, self.simulator):
            if process is not None:
                try:
                    process.stop()
                except Exception:  # noqa: BLE001 - cleanup goes on for the others
                    log.warning("race-harness: could not stop %s", process.url)


def _set_failure_rate(client: httpx.Client, target: Target, rate: float) -> dict:
    """Set the service's injected failure rate through PUT /_admin/faults; return the faults before."""
    try:
        before = client.get(target.url("/_admin/faults"))
        response = client.put(target.url("/_admin/faults"), json={"failure_rate": rate})
    except httpx.HTTPError as exc:
        raise HarnessError(f"cannot set the failure rate on {target.base_url}: {exc}") from None
    if response.status_code != 200:
        raise HarnessError(f"PUT /_admin/faults answered {response.status_code}: the service does not take "
                           "injected faults at runtime (leave --failure-rate unset and start it with its own flag)")
    return before.json() if before.status_code == 200 else {"failure_rate": 0.0}


def _wait(flag: Flag, timeout: float, stop: Flag) -> bool:
    """Wait for ``flag`` at most ``timeout`` seconds; give up early (False) once ``stop`` is set."""
    deadline = time.monotonic() + timeout
    while not flag.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0 or stop.is_set():
            return False
        flag.wait(min(0.1, remaining))
    return True


def _targets_source(targets: str | None) -> str | None:
    """A built-in targets name as it is; a file by its absolute path."""
    return targets if targets is None or targets in BUILT_IN else str(Path(targets).resolve())


def _num(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def _node_id(runner: Any) -> str:
    return "local" if isinstance(runner, LocalRunner) else str(getattr(runner, "client_id", "local"))


# -- wiring into Locust ------------------------------------------------------------------------

_installed: Scenario | None = None
_sender = Sender()
_coordinator: Coordinator | None = None


def install(scenario: Scenario) -> None:
    """Register the scenario's options and event handlers (once per process: one scenario per run)."""
    global _installed
    if _installed is not None:
        if _installed != scenario:
            raise RuntimeError(f"load one race-harness scenario per Locust run ({_installed.name} and {scenario.name} "
                               "were both given)")
        return
    _installed = scenario

    @events.init_command_line_parser.add_listener
    def _options(parser: Any, **_: Any) -> None:
        add_options(parser, scenario)

    @events.init.add_listener
    def _init(environment: Any, runner: Any = None, **_: Any) -> None:
        runner = runner or environment.runner
        if runner is None:
            return
        if isinstance(runner, (MasterRunner, LocalRunner)):
            runner.register_message(MSG_HELLO, lambda environment, msg, **kw: _coordinator and _coordinator.on_hello(msg))
            runner.register_message(MSG_READY, lambda environment, msg, **kw: _coordinator and _coordinator.on_ready(msg))
            runner.register_message(MSG_DONE, lambda environment, msg, **kw: _coordinator and _coordinator.on_done(msg))
        if isinstance(runner, (WorkerRunner, LocalRunner)):
            runner.register_message(MSG_PREPARE, _sender.on_prepare)
            runner.register_message(MSG_GO, _sender.on_go)

    @events.test_start.add_listener
    def _test_start(environment: Any, **_: Any) -> None:
        global _coordinator
        if isinstance(environment.runner, WorkerRunner):
            return
        if _coordinator is not None and not _coordinator.finished:
            _coordinator.finish()
        _coordinator = Coordinator(environment, scenario)
        atexit.register(_coordinator.cleanup)  # the last resort: never leave an embedded service behind
        _coordinator.start()

    @events.test_stop.add_listener
    def _test_stop(environment: Any, **_: Any) -> None:
        if _coordinator is not None and not isinstance(environment.runner, WorkerRunner):
            _coordinator.finish()

    @events.quitting.add_listener
    def _quitting(environment: Any, **_: Any) -> None:
        if _coordinator is not None and not isinstance(environment.runner, WorkerRunner):
            if not _coordinator.finished:
                _coordinator.finish()
            _coordinator.cleanup()


class SwarmUser(User):
    """One delivery lane: takes its worker's next share of a wave, holds it, releases it at the named instant.

    The users of a worker are how many shares it can hold at once; ``-u`` at least the number of
    workers (so that every worker takes part) and about ``--inflight`` per worker keeps waves on time.
    """

    abstract = True
    wait_time = constant(0)

    def on_start(self) -> None:
        self.environment.runner.send_message(MSG_HELLO, {"users": 1})

    @task
    def deliver(self) -> None:
        job = _sender.next_job(timeout=1.0)
        if job is None:
            return
        # The share runs in its own greenlet: stopping users must not cut a burst in half.
        gevent.spawn(_sender.run, self.environment, job).join()
