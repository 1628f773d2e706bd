"""The Locust adapter: a locustfile is ``install(Scenario(...))`` and a ``SwarmUser`` subclass (see ``scenarios/``).

The protocol (waves of each payment's duplicates split across lanes and released at one instant,
redelivery rounds, one History, the oracle at the end) is ``harness.swarm``, with its messages
carried by a ``Transport``. Here is only what Locust adds: the options on Locust's parser (read
into ``SwarmSettings`` at test_start), the transport over Locust's custom messages
(``runner.send_message`` / ``register_message``; a LocalRunner delivers them to itself), the event
hooks that start the run on the master (or the only process of a local run) and judge it on the
first ``test_stop``, the user class whose users are a worker's hands for holding shares, Locust
``request`` events for every released request (so Locust's statistics and failure counts are real,
grouped by endpoint), and the embedded reference service.

Why one release loop per worker rather than one Locust user per duplicate waiting on a gevent
rendezvous: measured with ``benchmarks/rendezvous_overlap.py``, the last-byte loop lands N=50 requests
within ~0.1 ms at the kernel (~4 ms by the service's X-Arrival-Ns); 50 gevent users released by
one Event, ~1.6 ms (~7 ms).

Importing this module imports Locust (and gevent's monkey-patching with it): only locustfiles do.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import tempfile
import threading
import traceback
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, Callable

import gevent
from locust import User, constant, events, task
from locust.runners import STATE_MISSING, LocalRunner, MasterRunner, WorkerRunner

from harness.errors import HarnessError, PlanError, ProfileError, ServiceStartError
from harness.history import Event
from harness.prepare.plan import parse_channel_mix
from harness.profile import Profile, Target, load_profile
from harness.reference import MODES, SERVICE, start_service, start_simulator
from harness.run.options import FAULTS, OUTPUT, PLAN, SENDING, TARGET, TLS, by_name
from harness.swarm import DONE, HELLO, PONG, READY, VERDICT_PREFIX, Coordinator, Handler, Lane, SwarmRun, SwarmSettings
from harness.swarm.clocks import DEFAULT_MAX_UNCERTAINTY_MS
from harness.tls import trust_of
from harness.verdict.result import EXIT_INCONCLUSIVE, EXIT_USAGE
from harness.verdict.targets import load_targets

log = logging.getLogger("race-harness.scenarios")

__all__ = ["Scenario", "SwarmUser", "install"]


# -- the options ---------------------------------------------------------------------------------

# The options the CLI and the pytest fixtures also take: one definition each (harness.run.options,
# harness.reference), so a flag means the same and defaults the same everywhere.
SHARED = by_name(PLAN + SENDING + OUTPUT + SERVICE + TARGET + TLS + FAULTS)
# What a lane can send with: the burst senders made for a gevent-patched worker, or "auto" (single-packet
# when the target speaks HTTP/2, else last-byte; the master asks once). The naive sender runs asyncio,
# which does not mix with gevent; "sequential" is the CLI's one-by-one run, not a swarm's.
SWARM_SYNCS = ("last-byte", "single-packet", "auto")
DEFAULT = {name: option.default for name, option in SHARED.items()}
# The release lead must outlast a GO message's trip to the farthest lane. In one process (Locust's local
# runner) the trip is a function call, and every millisecond of lead is a millisecond each wave waits.
LOCAL_LEAD_MS = 10.0
WORKERS_LEAD_MS = 100.0


@dataclass(frozen=True)
class Scenario:
    """What differs between the locustfiles: a name, and the defaults of a few options."""

    name: str
    channel_mix: str = "callback:1"
    redelivery_rounds: int = 0
    failure_rate: float = 0.0  # the embedded service's injected generation failures, unless --failure-rate says
    heal_after: int = 0
    targets: str | None = None  # default targets file or built-in name (None: the seed's)


def add_options(parser: Any, scenario: Scenario) -> None:
    """The scenario's options, on Locust's own parser (command line, locust.conf, web UI).

    Help texts spell their defaults out: the web UI shows them as written, without argparse's expansion.
    """
    add = parser.add_argument  # Locust's own: a plain argparse group knows no include_in_web_ui / is_secret
    for name in ("payments", "duplicates", "unpaid", "seed", "label", "store", "workers", "generation_delay_ms",
                 "insecure", "ca_file", "http2", "tls", "nemesis", "restart_after", "pause_for", "redeliver"):
        SHARED[name].add_to(parser)
    replace(SHARED["sync"], choices=SWARM_SYNCS).add_to(parser)
    # Locust has a --profile of its own (a name grouping test runs): the harness's is --target-profile here.
    replace(SHARED["profile"], cli="--target-profile").add_to(parser)
    replace(SHARED["channel_mix"], default=scenario.channel_mix).add_to(parser)
    replace(SHARED["targets_file"], type=str, default=scenario.targets).add_to(parser)
    add("--receipts-dir", default=None,
        help="where the service under test writes its receipt PDFs, readable from the master")
    add("--mongo-uri", default=None, is_secret=True,
        help="read payment state straight from MongoDB (default: the service's API at -H)")
    add("--gateway-url", default=None,
        help="the PhonePe status API (simulator) the service's verify path asks; needed for verify calls on -H")
    add("--report-dir", default="reports/locust", help="where the JSON/Markdown/HTML report goes (default reports/locust)")
    add("--embedded", default="", choices=("",) + MODES,
        help="start the reference service in this mode instead of testing -H (one machine only)")
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
    add("--release-lead-ms", type=float, default=None,
        help=f"how far ahead the master names the release instant, in ms (default {LOCAL_LEAD_MS:g} in one process, "
             f"{WORKERS_LEAD_MS:g} with workers; more for workers far away)")
    add("--burst-timeout", type=float, default=30.0,
        help="seconds one share may take to connect, send and read (default 30)")
    add("--max-clock-uncertainty-ms", type=float, default=DEFAULT_MAX_UNCERTAINTY_MS,
        help="a worker whose clock offset the master cannot measure within ± this (half its best PING round trip) "
             f"gets no shares and is named in the report (default {DEFAULT_MAX_UNCERTAINTY_MS:g})")
    add("--no-clock-correction", action="store_true", default=False,
        help="measure and report the workers' clock offsets, but release on each worker's own clock "
             "(diagnosis: how a skewed swarm ran before offsets were corrected)")


def _opt(options: Any, name: str, kind: type, default: Any = None) -> Any:
    value = getattr(options, name, default)
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return default
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise HarnessError(f"--{name.replace('_', '-')} must be a {kind.__name__}, not {value!r}") from None


def read_settings(environment: Any, scenario: Scenario) -> SwarmSettings:
    """Options as the coordinator sees them at test_start, checked; HarnessError on bad usage."""
    o = environment.parsed_options
    host = (environment.host or _opt(o, "host", str) or "").strip() or None
    embedded = _opt(o, "embedded", str) or None
    if embedded is not None and embedded not in MODES:
        raise HarnessError(f"--embedded must be one of {', '.join(MODES)}")
    if embedded and host:
        raise HarnessError("give either -H/--host (the service under test) or --embedded, not both")
    profile = _opt(o, "profile", str)
    if not embedded and not host and not profile:
        raise HarnessError("no service to test: give -H/--host URL (and --receipts-dir), --profile FILE, or "
                           "--embedded atomic|vulnerable")
    if host and not host.startswith(("http://", "https://")):
        raise HarnessError(f"-H/--host must be an http:// or https:// URL, not {host!r}")
    try:
        mix = parse_channel_mix(_opt(o, "channel_mix", str, scenario.channel_mix))
    except PlanError as exc:
        raise HarnessError(str(exc)) from None
    sync = _opt(o, "sync", str, DEFAULT["sync"])
    if sync not in SWARM_SYNCS:
        raise HarnessError(f"--sync must be one of {', '.join(SWARM_SYNCS)} in a swarm, not {sync!r}")
    try:
        verify_tls = trust_of(bool(getattr(o, "insecure", False)), _opt(o, "ca_file", str))
    except ValueError as exc:
        raise HarnessError(str(exc)) from None
    failure_rate = _opt(o, "failure_rate", float, scenario.failure_rate if embedded else None)
    if failure_rate is not None and not 0.0 <= failure_rate <= 1.0:
        raise HarnessError("--failure-rate must be between 0 and 1")
    settings = SwarmSettings(
        scenario=scenario.name, host=host,
        payments=_opt(o, "payments", int, DEFAULT["payments"]),
        duplicates=_opt(o, "duplicates", int, DEFAULT["duplicates"]),
        unpaid=_opt(o, "unpaid", int, DEFAULT["unpaid"]), channel_mix=mix, seed=_opt(o, "seed", int, DEFAULT["seed"]),
        receipts_dir=_opt(o, "receipts_dir", str), mongo_uri=_opt(o, "mongo_uri", str),
        gateway_url=_opt(o, "gateway_url", str), targets=_opt(o, "targets_file", str, scenario.targets),
        report_dir=Path(_opt(o, "report_dir", str, "reports/locust")),
        label=_opt(o, "label", str) or (f"{scenario.name}-{embedded}" if embedded else scenario.name),
        embedded=embedded, store=_opt(o, "store", str), workers=_opt(o, "workers", int, 1),
        generation_delay_ms=_opt(o, "generation_delay_ms", float, DEFAULT["generation_delay_ms"]),
        failure_rate=failure_rate, redelivery_rounds=_redelivery_rounds(o, scenario),
        heal_after=_opt(o, "heal_after", int, scenario.heal_after), wave_size=_opt(o, "wave_size", int, 10),
        inflight=_opt(o, "inflight", int, 2),
        release_lead=_opt(o, "release_lead_ms", float, _default_lead_ms(environment)) / 1000.0,
        burst_timeout=_opt(o, "burst_timeout", float, 30.0), headless=bool(getattr(o, "headless", False)),
        profile=profile, sync=sync, verify_tls=verify_tls, http2=bool(getattr(o, "http2", False)),
        tls=bool(getattr(o, "tls", False)), nemesis=_opt(o, "nemesis", str),
        restart_after=_opt(o, "restart_after", float, DEFAULT["restart_after"]),
        pause_for=_opt(o, "pause_for", float, DEFAULT["pause_for"]), redeliver=_opt(o, "redeliver", str),
        max_clock_uncertainty_ms=_opt(o, "max_clock_uncertainty_ms", float, DEFAULT_MAX_UNCERTAINTY_MS),
        clock_correction=not bool(getattr(o, "no_clock_correction", False)),
    )
    try:
        settings.plan.validate()
        load_targets(settings.targets)
    except (PlanError, ValueError) as exc:
        raise HarnessError(str(exc)) from None
    for name in ("wave_size", "inflight"):
        if getattr(settings, name) < 1:
            raise HarnessError(f"--{name.replace('_', '-')} must be at least 1")
    if not settings.max_clock_uncertainty_ms > 0:
        raise HarnessError("--max-clock-uncertainty-ms must be above 0")
    if settings.redelivery_rounds < 0:
        raise HarnessError("--redelivery-rounds must be at least 0")
    if not embedded and (settings.store or settings.workers != 1 or settings.http2 or settings.tls):
        raise HarnessError("--store, --workers, --http2 and --tls describe the embedded service: give them with "
                           "--embedded")
    if embedded and settings.tls and settings.verify_tls is None:
        settings.verify_tls = False  # the embedded service's certificate is the throw-away one it made
    if settings.burst_timeout <= 0 or settings.release_lead < 0:
        raise HarnessError("--burst-timeout must be positive and --release-lead-ms not negative")
    if settings.nemesis:
        from harness.nemesis import parse_fault

        parse_fault(settings.nemesis, restart_after=settings.restart_after, pause_for=settings.pause_for)
        if not profile:
            raise HarnessError("--nemesis acts on a service whose profile says how it runs ([service]): give "
                               "--target-profile FILE")
    if settings.plan.uses_verify() and not embedded and not settings.gateway_url and not profile:
        raise HarnessError("verify calls need --gateway-url: the PhonePe status API (simulator) the service asks")
    return settings


def _default_lead_ms(environment: Any) -> float:
    """The release lead when none is given: short in one process, longer when lanes are other processes."""
    from locust.runners import LocalRunner

    return LOCAL_LEAD_MS if isinstance(getattr(environment, "runner", None), LocalRunner) else WORKERS_LEAD_MS


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


logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per payment created or read back is noise here

REPORT_WAIT_MAX = 60.0  # seconds test_stop waits for waves still under way


# -- the embedded reference service ------------------------------------------------------------

def start_embedded(s: SwarmSettings) -> tuple[Target, dict[str, Any], int, list[Callable[[], None]]]:
    """Start the reference service (and the PhonePe simulator for verify calls) for ``--embedded``.

    Returns its legacy Target (where it is: its URL, receipts, store and simulator), how it was started
    (for the report), its pid and how to stop what started.
    """
    s.report_dir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f"{s.label}-", dir=s.report_dir))
    receipts = Path(s.receipts_dir) if s.receipts_dir else workdir / "receipts"
    simulator = None
    try:
        if s.plan.uses_verify():
            simulator = start_simulator(log_path=workdir / "simulator.log")
        service = start_service(receipts, mode=s.embedded or "atomic", generation_delay_ms=s.generation_delay_ms,
                                failure_rate=s.failure_rate or 0.0,
                                phonepe_base_url=simulator.url if simulator else None,
                                log_path=workdir / "service.log", store=s.store, workers=s.workers,
                                http2=s.http2 or s.tls, tls=s.tls,
                                **({"mongo_uri": s.mongo_uri} if s.mongo_uri else {}))
    except (ServiceStartError, ValueError) as exc:
        if simulator is not None:
            simulator.stop()
        raise HarnessError(f"could not start the reference service: {exc}") from None
    log.info("race-harness: embedded %s service on %s, receipts in %s", s.embedded, service.url, receipts)
    described = {"embedded": True, "mode": s.embedded, "generation_delay_ms": s.generation_delay_ms,
                 "failure_rate": s.failure_rate or 0.0, "store": service.store, "workers": s.workers,
                 **({"http2": True, "tls": s.tls} if s.http2 or s.tls else {})}
    # With a MongoDB store (wire or external) the oracle reads state straight from the database.
    target = Target(base_url=service.url, receipts_dir=str(receipts), mongo_uri=service.mongo_uri,
                    mongo_database=service.database, gateway_url=simulator.url if simulator else None)
    return target, described, service.pid, [p.stop for p in (simulator, service) if p is not None]


def profile_target(s: SwarmSettings, embedded: Target | None) -> Profile:
    """The run's one description of the service, made here once: ``--target-profile`` (the embedded service's URL,
    receipts and simulator filled in, or -H as its base URL), else the reference contract at the embedded
    service or at -H."""
    if not s.profile:
        if embedded is not None:
            return embedded.to_profile({"from": "reference service", "base_url": embedded.base_url})
        target = Target(base_url=str(s.host), receipts_dir=s.receipts_dir, mongo_uri=s.mongo_uri,
                        gateway_url=s.gateway_url)
        return target.to_profile({"from": "-H", "base_url": target.base_url})
    try:
        if embedded is not None:
            variables = {**os.environ, "BASE_URL": embedded.base_url, "RECEIPTS_DIR": embedded.receipts_dir or "",
                         "GATEWAY_URL": embedded.gateway_url or ""}
            return load_profile(s.profile, variables)
        return load_profile(s.profile, base_url=s.host)
    except ProfileError as exc:
        raise HarnessError(str(exc)) from None


# -- Locust's runner messages as the swarm's transport -----------------------------------------

class LocustTransport:
    """``harness.swarm.Transport`` over Locust's custom messages (msgpack between processes)."""

    def __init__(self, runner: Any) -> None:
        self.runner = runner

    def send(self, kind: str, data: dict[str, Any], to: str | None = None) -> None:
        # to=None from a master would go to every worker; the coordinator always names the lane.
        self.runner.send_message(kind, data, client_id=to)

    def on(self, kind: str, handler: Handler) -> None:
        self.runner.register_message(kind, lambda environment, msg, **_: handler(msg.node_id, msg.data))


def _node_id(runner: Any) -> str:
    return "local" if isinstance(runner, LocalRunner) else str(getattr(runner, "client_id", "local"))


def _alive(runner: Any, node: str) -> bool:
    """Whether a worker is still connected (a local run's one lane always is)."""
    if not isinstance(runner, MasterRunner):
        return True
    client = runner.clients.get(node)
    return client is not None and client.state != STATE_MISSING


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


# -- one run on the master (or the only process of a local run) --------------------------------

class LocustRun:
    """From test_start to the verdict: settings, the embedded service, the swarm run, the exit code."""

    def __init__(self, environment: Any, scenario: Scenario) -> None:
        self.environment, self.scenario = environment, scenario
        runner = environment.runner
        # Created at test_start so that no user's hello is missed while the payments are made.
        self.coordinator = Coordinator(LocustTransport(runner), alive=partial(_alive, runner),
                                       wanted_users=lambda: getattr(runner, "target_user_count", 0) or 1)
        self.settings: SwarmSettings | None = None
        self.run: SwarmRun | None = None
        self.failure: tuple[int, str] | None = None  # (exit code, message) when the run could not be made
        self.finished = False
        self._finish_lock = threading.Lock()

    def start(self) -> None:
        gevent.spawn(self._main)

    def _main(self) -> None:
        try:
            s = self.settings = read_settings(self.environment, self.scenario)
            embedded, service, pid, stops = start_embedded(s) if s.embedded else (None, None, None, [])
            try:
                profile = profile_target(s, embedded)
            except BaseException:  # nothing started may outlive a profile that does not load
                for stop in reversed(stops):
                    stop()
                raise
            self.run = SwarmRun(s, profile, self.coordinator, service_pid=pid, service=service, cleanups=stops,
                                runner=type(self.environment.runner).__name__)
            self.run.prepare()
            self.run.drive()
        except HarnessError as exc:
            self.failure = (EXIT_USAGE, f"ERROR: {exc}")
        except Exception as exc:  # noqa: BLE001 - the run ends with a clear message and a non-zero code
            log.error("race-harness scenario failed:\n%s", traceback.format_exc())
            self.failure = (EXIT_INCONCLUSIVE, f"INCONCLUSIVE: the scenario failed: {type(exc).__name__}: {exc}")
        if self.coordinator.stopping.is_set():
            return  # someone else stops the test (--run-time, Ctrl+C, the web UI); test_stop verifies
        runner = self.environment.runner
        if getattr(self.environment.parsed_options, "headless", False):
            runner.quit()  # the test stops, test_stop verifies, the process exits with the verdict
        else:
            runner.stop()  # web UI: the verdict is printed, the UI stays for the next run

    def finish(self) -> None:
        """Verify once: on the first test_stop; later calls do nothing."""
        with self._finish_lock:
            if self.finished:
                return
            self.coordinator.stop()
            try:
                if self.run is not None and self.failure is None:
                    s = self.settings
                    assert s is not None
                    self.coordinator.await_waves(min(REPORT_WAIT_MAX, s.burst_timeout + s.release_lead + 5))
                    reason = self.run.verify()
                    if reason is not None:
                        self.failure = (EXIT_INCONCLUSIVE, f"INCONCLUSIVE: {reason}")
            except Exception as exc:  # noqa: BLE001
                log.error("race-harness verification failed:\n%s", traceback.format_exc())
                self.failure = self.failure or (EXIT_INCONCLUSIVE,
                                                f"INCONCLUSIVE: verification failed: {type(exc).__name__}: {exc}")
            finally:
                self.finished = True
                self._announce()
                self.cleanup()

    def _announce(self) -> None:
        """Print the verdict, write the report, set the exit code (exactly once per run)."""
        if self.failure is None and self.run is not None and self.run.report is not None:
            code, lines = self.run.verdict()
        else:
            code, message = self.failure or (EXIT_INCONCLUSIVE, "INCONCLUSIVE: the run ended before anything was judged")
            lines = [f"{VERDICT_PREFIX} [{self.settings.label if self.settings else self.scenario.name}]: {message}"]
        print("\n".join(lines), flush=True)
        self.environment.process_exit_code = code

    def cleanup(self) -> None:
        """Put the service back and stop whatever this run started (safe to call more than once)."""
        if self.run is not None:
            self.run.cleanup()


# -- wiring into Locust ------------------------------------------------------------------------

_installed: Scenario | None = None
_lane: Lane | None = None
_current: LocustRun | None = None


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
    def _add_options(parser: Any, **_: Any) -> None:
        add_options(parser, scenario)

    @events.init.add_listener
    def _init(environment: Any, runner: Any = None, **_: Any) -> None:
        global _lane
        runner = runner or environment.runner
        if runner is None:
            return
        transport = LocustTransport(runner)
        if isinstance(runner, (MasterRunner, LocalRunner)):
            for kind, name in ((HELLO, "on_hello"), (READY, "on_ready"), (DONE, "on_done"), (PONG, "on_pong")):
                transport.on(kind, partial(_to_coordinator, name))
        if isinstance(runner, (WorkerRunner, LocalRunner)):
            _lane = Lane(transport, _node_id(runner), record=partial(_record_in_locust, environment)).attach()

    @events.test_start.add_listener
    def _test_start(environment: Any, **_: Any) -> None:
        global _current
        if isinstance(environment.runner, WorkerRunner):
            return
        if _current is not None and not _current.finished:
            _current.finish()
        _current = LocustRun(environment, scenario)
        atexit.register(_current.cleanup)  # the last resort: never leave an embedded service behind
        _current.start()

    @events.test_stop.add_listener
    def _test_stop(environment: Any, **_: Any) -> None:
        if _current is not None and not isinstance(environment.runner, WorkerRunner):
            _current.finish()

    @events.quitting.add_listener
    def _quitting(environment: Any, **_: Any) -> None:
        if _lane is not None:
            _lane.close()  # the connections it kept warm between waves
        if _current is not None and not isinstance(environment.runner, WorkerRunner):
            if not _current.finished:
                _current.finish()
            _current.cleanup()


def _to_coordinator(handler: str, node: str, data: dict[str, Any]) -> None:
    """A lane's message, to the current run's coordinator (none before the first test_start)."""
    if _current is not None:
        getattr(_current.coordinator, handler)(node, data)


class SwarmUser(User):
    """One hand of a delivery lane: takes its worker's next share of a wave, holds it, releases it at the named instant.

    The users of a worker are how many shares it can hold at once; ``-u`` at least the number of
    workers (so that every worker takes part) and about ``--inflight`` per worker keeps waves on time.
    """

    abstract = True
    wait_time = constant(0)

    def on_start(self) -> None:
        if _lane is not None:
            _lane.hello()

    @task
    def deliver(self) -> None:
        if _lane is None:
            return
        job = _lane.next_job(timeout=1.0)
        if job is None:
            return
        # The share runs in its own greenlet: stopping users must not cut a burst in half.
        gevent.spawn(_lane.run, job).join()
