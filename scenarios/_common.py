"""What the three locustfiles share: the Locust glue around the harness's swarm (``harness.swarm``).

The protocol (waves of each payment's duplicates split across lanes and released at one instant,
redelivery rounds, one History, the oracle at the end) is ``harness.swarm``, with its messages
carried by a ``Transport``. Here is only what Locust adds: the options on Locust's parser, the
transport over Locust's custom messages (``runner.send_message`` / ``register_message``; a
LocalRunner delivers them to itself), the event hooks that start the run on the master (or the only
process of a local run) and judge it on the first ``test_stop``, the user class whose users are a
worker's hands for holding shares, Locust ``request`` events for every released request (so Locust's
statistics and failure counts are real, grouped by endpoint), and the embedded reference service.

Why one release loop per worker rather than one Locust user per duplicate waiting on a gevent
rendezvous: measured with ``benchmarks/rendezvous_overlap.py``, the last-byte loop lands N=50 requests
within ~0.1 ms at the kernel (~4 ms by the service's X-Arrival-Ns); 50 gevent users released by
one Event, ~1.6 ms (~7 ms).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import tempfile
import threading
import traceback
from functools import partial
from pathlib import Path
from typing import Any, Callable

import gevent
from locust import User, constant, events, task
from locust.runners import STATE_MISSING, LocalRunner, MasterRunner, WorkerRunner

from harness.embedded import ServiceStartError
from harness.reference import start_service, start_simulator
from harness.history import Event
from harness.result import EXIT_INCONCLUSIVE, EXIT_USAGE
from harness.runner import HarnessError
from harness.profile import Profile, ProfileError, load_profile
from harness.swarm import DONE, HELLO, READY, VERDICT_PREFIX, Coordinator, Handler, Lane, SwarmRun, SwarmSettings
from harness.target import Target

from _options import Scenario, add_options, read_settings  # beside this file: Locust puts scenarios/ on sys.path

log = logging.getLogger("race-harness.scenarios")
logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per payment created or read back is noise here

REPORT_WAIT_MAX = 60.0  # seconds test_stop waits for waves still under way


# -- the embedded reference service ------------------------------------------------------------

def start_embedded(s: SwarmSettings) -> tuple[Target, dict[str, Any], int, list[Callable[[], None]]]:
    """Start the reference service (and the PhonePe simulator for verify calls) for ``--embedded``.

    Returns its Target, how it was started (for the report), its pid and how to stop what started.
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
    """The run's profile: the embedded service's URL, receipts and simulator filled in, or -H as its base URL."""
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
            target, service, pid, stops = start_embedded(s) if s.embedded else (Target(
                base_url=s.host, receipts_dir=s.receipts_dir, mongo_uri=s.mongo_uri, gateway_url=s.gateway_url),
                None, None, []) if not s.profile else (None, None, None, [])
            if s.profile:
                target = profile_target(s, target)
            self.run = SwarmRun(s, target, self.coordinator, service_pid=pid, service=service, cleanups=stops,
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
            for kind, name in ((HELLO, "on_hello"), (READY, "on_ready"), (DONE, "on_done")):
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
