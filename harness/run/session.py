"""The one harness API: plan a race, fire it, read back what happened, judge it, report it.

The CLI, the Locust scenarios and the pytest plugin all call ``run_race``.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from harness.errors import HarnessError, PlanError, ServiceStartError, SinkError
from harness.history import History
from harness.local.relay import Relay
from harness.nemesis import (
    DownstreamOutage, ManagedService, Nemesis, managed_service, parse_fault, redeliver, redelivery_plan,
)
from harness.observe.observer import mark_baseline
from harness.observe.sink import start_sink
from harness.prepare.deliveries import build_requests, prepare_payments, sent_payments
from harness.prepare.plan import Plan
from harness.profile import Payment, Profile
from harness.progress import Progress, no_progress
from harness.run.judge import verify_history
from harness.run.telemetry import MemorySampler, counter_deltas, scrape
from harness.senders import SENDERS
from harness.senders.auto import AUTO, resolve_sync
from harness.senders.base import PreparedRequest
from harness.senders.burst import fire
from harness.tls import http_client
from harness.verdict.result import RunReport
from harness.verdict.targets import targets_for

SYNC_CHOICES = (*SENDERS, "sequential", AUTO)  # every registered sender, one-by-one, or what the target speaks
MAX_WAVE = 256  # connections open at once; larger plans go in waves of whole payments
DEFAULT_TIMEOUT = 60.0  # seconds one burst may take when neither the run nor the profile ([run] timeout) says




@dataclass
class RunConfig:
    """Everything a run needs, about any service: the target, the plan, how to send, how to judge.

    A provider that starts a service (``harness.reference``) fills in ``profile``, ``service_pid``,
    ``faults`` and ``service``; against a service elsewhere only ``profile`` is needed.
    """

    plan: Plan = field(default_factory=Plan)
    profile: Profile | None = None  # the service under test, however the user named it (made at the edge)
    sync: str = "last-byte"
    timeout: float | None = None  # seconds one burst may take; None: the profile's [run] timeout, else 60
    targets_file: Path | str | None = None
    label: str | None = None
    report_dir: Path | None = None
    service_pid: int | None = None  # a local service's process, for memory
    # Faults the service was told to inject (by the names its faults endpoint takes); with
    # ``transient_faults`` they are cleared through the profile's ``faults_path`` before each retry round.
    faults: dict[str, float] = field(default_factory=dict)
    transient_faults: bool = False
    server_errors_injected: bool = False  # injected faults answer 5xx: those the service marks are counted apart
    service: dict[str, Any] | None = None  # how a provider started the service, for the report
    announce: Callable[[str], None] | None = None  # told what a provider started (e.g. a wire server's URI)
    # How the target's certificate is trusted (harness.tls.Trust: True, a CA file, False for --insecure);
    # None: as its profile says (the system's CAs unless the profile says otherwise).
    verify_tls: bool | str | None = None
    # A fault during the burst (harness.nemesis: crash@log:PATTERN, crash@after:S, pause@..., ...), and how
    # unacknowledged deliveries are redelivered afterwards (a gateway's schedule, or delays in seconds).
    nemesis: str | None = None
    restart_after: float = 1.0
    pause_for: float = 2.0
    redeliver: str | None = None

    def describe(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "plan": self.plan.to_dict(),
            "sync": self.sync,
            "timeout": self.timeout,
            "targets_file": str(self.targets_file) if self.targets_file else None,
        }
        if self.service is not None:
            data["service"] = self.service
            if "mode" in self.service:
                data["mode"] = self.service["mode"]
        data["transient_faults"] = self.transient_faults
        if self.verify_tls is not None:
            data["verify_tls"] = self.verify_tls
        if self.nemesis is not None:
            data["nemesis"] = {"schedule": self.nemesis, "restart_after": self.restart_after, "pause_for": self.pause_for}
        if self.redeliver is not None:
            data["redeliver"] = self.redeliver
        return data


def _waves(requests: list[PreparedRequest], limit: int = MAX_WAVE) -> list[list[PreparedRequest]]:
    """Split into waves of at most ``limit`` requests, never splitting one payment's duplicates."""
    by_payment: dict[str | None, list[PreparedRequest]] = {}
    for request in requests:
        by_payment.setdefault(request.payment, []).append(request)
    waves: list[list[PreparedRequest]] = [[]]
    for group in by_payment.values():
        if waves[-1] and len(waves[-1]) + len(group) > limit:
            waves.append([])
        waves[-1].extend(group)
    # keep the plan's interleaving inside each wave
    order = {id(r): i for i, r in enumerate(requests)}
    return [sorted(w, key=lambda r: order[id(r)]) for w in waves if w]


def send(requests: list[PreparedRequest], *, sync: str, timeout: float, history: History,
         progress: Progress = no_progress, warmup_path: str | None = "/healthz",
         verify_tls: bool | str = True, body_limit: int | None = None) -> None:
    """Fire the requests into ``history``: simultaneous waves, or one after another for ``sequential``.
    ``body_limit``: bytes of each answer's body kept (None: the senders' default)."""
    limit = {} if body_limit is None else {"body_limit": body_limit}
    if sync == "sequential":
        # A deliberately non-overlapping run: each request waits for the previous answer.
        for i, request in enumerate(requests):
            fire([request], sync="last-byte", timeout=timeout, history=history, warmup_path=warmup_path,
                 verify_tls=verify_tls, **limit)
            progress("sending", i + 1, len(requests))
        history.sync = "sequential"
        return
    waves = _waves(requests)
    sent = 0
    for wave in waves:
        fire(wave, sync=sync, timeout=timeout, history=history, warmup_path=warmup_path, verify_tls=verify_tls, **limit)
        sent += len(wave)
        progress("sending", sent, len(requests))


def run_race(config: RunConfig, progress: Progress = no_progress) -> RunReport:
    """Run one race end to end against ``config.profile`` and return its report (the caller writes it:
    ``harness.report.write_report``). To start the reference service for it: ``harness.reference.race``."""
    if config.sync not in SYNC_CHOICES:
        raise HarnessError(f"sync must be one of {', '.join(SYNC_CHOICES)}")
    if config.profile is None:
        raise HarnessError("a run needs a target: a service's URL (--target), or a provider that starts one")
    if missing := config.profile.cannot_run():
        raise HarnessError(missing)
    try:
        config.plan.validate()
        targets_for(config.targets_file, config.profile)  # a bad targets file is a usage error before anything starts
    except (PlanError, ValueError) as exc:
        raise HarnessError(str(exc)) from None
    return RunSession(config, progress).run()


class RunSession:
    """One run against ``config.profile``: prepare (payments and signed requests), send, read back and judge.

    The CLI and the pytest plugin call ``run()``; a Locust swarm calls ``prepare()``, sends the
    requests its own way between ``start_telemetry()`` and ``stop_telemetry()``, then ``judge()``.
    Telemetry (the service's counters, the memory of its process) belongs to the session.
    """

    def __init__(self, config: RunConfig, progress: Progress = no_progress) -> None:
        if config.profile is None:
            raise HarnessError("a run session needs a target")
        if missing := config.profile.cannot_run():
            raise HarnessError(missing)
        if config.timeout is None:  # what this service's runs may take is the profile's to say
            config = replace(config, timeout=config.profile.spec.run.timeout or DEFAULT_TIMEOUT)
        if config.label is None and config.profile.origin.get("from") == "profile file":
            config = replace(config, label=config.profile.name)  # its name is what reports show (docs/profiles.md)
        self.config, self.progress = config, progress
        self.profile = config.profile
        if config.verify_tls is not None:  # --insecure / --ca-file: the run's own say over the profile's
            self.profile = self.profile.with_tls_trust(config.verify_tls)
        # A fault for the service whose profile says how it runs ([service]), checked before anything opens.
        self.fault = parse_fault(config.nemesis, restart_after=config.restart_after,
                                 pause_for=config.pause_for) if config.nemesis else None
        self.redelivery = redelivery_plan(config.redeliver, self.profile, faulted=self.fault is not None)
        if self.fault is not None and self.fault.kind != "downstream" and self.profile.spec.service is None:
            raise HarnessError("--nemesis needs to know how the service runs: give the profile a [service] section "
                               "(a command the harness starts, or hooks that kill and start it)")
        self.payments: list[Payment] = []
        self.started = time.time()
        try:
            self._client = http_client(self.profile.tls_trust)
        except ValueError as exc:  # an unreadable CA file
            raise HarnessError(str(exc)) from None
        self._metrics_url = self.profile.url(self.profile.metrics_path) if self.profile.metrics_path else None
        self._before: dict[str, float] = {}
        self._sampler: MemorySampler | None = None
        self.sink: Any = None  # the recording sink the profile asks for (harness.sink), from prepare() to close()
        self.service: ManagedService | None = None
        self.nemesis: Nemesis | None = None
        self._scratch: Path | None = None
        self.links: dict[str, Relay] = {}  # the relays of the service's links ([service.links]), for the nemesis
        self.requests: list[PreparedRequest] = []

    def __enter__(self) -> "RunSession":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.nemesis is not None:  # a fault still under way (a restart pending) is called off first
            self.nemesis.cancel()
        if self.service is not None:  # whatever the session started ends with it, on every path
            self.service.stop()
            self.service = None
        for relay in self.links.values():
            relay.close()
        self.links.clear()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None
        if self.sink is not None:
            self.sink.stop()
        if self._sampler is not None:
            self._sampler.stop()
            self._sampler = None
        self._client.close()

    def start(self) -> None:
        """Start what the profile says the harness runs, once: its recording sink, then its service (told where
        the sink is). ``profile check`` starts them as a run does; ``close()`` ends them."""
        self._start_sink()
        self._start_service()

    def prepare(self) -> list[PreparedRequest]:
        """Create the plan's payments on the target; return every request of one delivery round."""
        self.start()
        mark_baseline(self.profile)
        self.payments = prepare_payments(self.profile, self.config.plan, self._client, self.progress)
        self.requests = build_requests(self.config.plan, self.payments, self.profile)
        return self.requests

    def _start_service(self) -> None:
        """Start the service the profile says the harness runs ([service].command) and wait until it is ready."""
        section = self.profile.spec.service
        if self.service is not None or section is None:
            return
        if self.sink is not None:  # the service's outbound calls go to the sink the session started
            self.profile = self.profile.with_service_env(self.sink.env())
        if self.config.report_dir:
            directory = Path(self.config.report_dir)
        else:  # no report to keep the service's output beside: a directory of the session's own, removed with it
            directory = self._scratch = Path(tempfile.mkdtemp(prefix="race-harness-service-"))
        self.service = managed_service(self.profile, directory / f"{self.config.label or 'run'}.service.log")
        try:
            for name, link in section.links.items():  # the relays the service's links go through, before it starts
                host, _, port = link.upstream.rpartition(":")
                try:
                    self.links[name] = Relay(int(port), upstream_host=host, listen_port=link.listen)
                except (OSError, RuntimeError) as exc:
                    raise ServiceStartError(f"service.links.{name}: cannot listen on 127.0.0.1:{link.listen}: "
                                            f"{exc}") from None
            self.service.start()
        except ServiceStartError as exc:
            self.close()
            raise HarnessError(f"could not start the service: {exc}") from None

    def _start_sink(self) -> None:
        """Start the profile's recording sink (once), before any payment exists; HarnessError when it cannot."""
        if self.sink is not None:
            return
        outage = {"fail_first": self.fault.count, "fail_as": self.fault.fail_as} if (
            self.fault is not None and self.fault.kind == "downstream") else None
        try:
            self.sink = self.profile.sink = start_sink(self.profile.spec, self.config.report_dir, self.config.label,
                                                       outage)
        except SinkError as exc:
            raise HarnessError(f"sink: {exc}") from None

    def start_telemetry(self, interval: float | None = None) -> None:
        """Counters now, and the memory of the service's process sampled (every ``interval`` s) until stopped."""
        self._before = scrape(self._client, self._metrics_url)
        sampler = MemorySampler(self.config.service_pid, interval=interval) if interval else MemorySampler(
            self.config.service_pid)
        self._sampler = sampler.start()

    def stop_telemetry(self) -> tuple[dict[str, float], dict[str, Any]]:
        """(the service's counter deltas, its memory) since ``start_telemetry``."""
        memory = self._sampler.stop() if self._sampler is not None else {}
        self._sampler = None
        return counter_deltas(self._before, scrape(self._client, self._metrics_url)), memory

    def send(self, requests: list[PreparedRequest]) -> History:
        """Every delivery round of the plan, in simultaneous waves (or one by one for ``sequential``)."""
        # --sync auto: single-packet when the target speaks HTTP/2; the history says which sender ran.
        trust = self.profile.tls_trust
        sync = resolve_sync(self.config.sync, self.profile.url(self.profile.health_path), verify_tls=trust)
        history = History(sync=sync)
        nemesis = self.arm_nemesis(history)
        for round_ in range(self.config.plan.rounds):
            if round_:
                self._before_retry()
                time.sleep(self.config.plan.round_interval)
                requests = [self._signed_now(r) for r in requests]
            send([replace(r, meta={**r.meta, "round": round_}) for r in requests], sync=sync,
                 timeout=self.config.timeout, history=history, progress=self.progress,
                 warmup_path=self.profile.health_path, verify_tls=trust,
                 body_limit=self.profile.spec.run.answer_bytes)
        self.after_faults(history, self.requests or requests)
        return history

    def after_faults(self, history: History, requests: list[PreparedRequest]) -> None:
        """After the burst: redeliver what was not acknowledged, like the gateway — on the gateway's own clock,
        while the fault may still be under way (a paused owner's lease runs out while the next delivery
        waits) — then wait until the nemesis is done and the service back (a swarm calls this too)."""
        if self.redelivery is not None:
            trust = self.profile.tls_trust
            redeliver(self.profile, self.payments, requests, history, self.redelivery,
                      lambda batch: send(batch, sync="last-byte", timeout=self.config.timeout, history=history,
                                         warmup_path=None, verify_tls=trust,
                                         body_limit=self.profile.spec.run.answer_bytes),
                      first_round=self.config.plan.rounds, progress=self.progress)
        if self.nemesis is not None:
            self.settle_nemesis(self.nemesis, history)

    def arm_nemesis(self, history: History) -> Nemesis | None:
        """The scheduled fault, watching for its trigger from now on (just before the burst is released)."""
        if self.fault is None:
            return None
        if self.fault.kind == "downstream":  # the sink was started failing: its records say what happened
            outage = DownstreamOutage(self.fault, self.sink)
            history.nemesis = outage.describe()
            self.nemesis = outage  # type: ignore[assignment]
            return outage  # type: ignore[return-value]
        assert self.service is not None, "prepare() starts the service a nemesis acts on"
        dirs = [Path(str(e.dir)) for e in self.profile.spec.effects if e.source == "files" and e.dir]
        nemesis = Nemesis(self.fault, self.service, effect_dirs=dirs, sink=self.sink, seed=self.config.plan.seed,
                          links=self.links)
        history.nemesis = nemesis.describe()
        self.nemesis = nemesis
        nemesis.arm()
        return nemesis

    def settle_nemesis(self, nemesis: Nemesis, history: History) -> None:
        """Wait (bounded) until the fault is done and the service is back; its steps go into the history."""
        section = self.profile.spec.service
        ready = section.ready_timeout if section is not None else 30.0
        nemesis.wait(self.config.timeout + self.fault.restart_after + self.fault.pause_for + ready + 5.0)
        history.faults = list(nemesis.faults)
        history.nemesis = nemesis.describe()

    def _signed_now(self, request: PreparedRequest) -> PreparedRequest:
        """A retry of a request whose scheme signs a timestamp, signed afresh (the same event, the same id)."""
        if not self.profile.binds_time(request.channel):
            return request
        payment = next(p for p in self.payments if p.id == request.payment)
        return replace(self.profile.request(str(request.channel), payment, request.meta.get("state", "COMPLETED")),
                       meta=request.meta)

    def _before_retry(self) -> None:
        """Transient faults end before the gateway retries (the crashed process has restarted)."""
        if not self.config.transient_faults or not self.config.faults:
            return
        if not self.profile.faults_path:
            raise HarnessError("transient faults need a target with a faults endpoint (faults_path)")
        response = self._client.put(self.profile.url(self.profile.faults_path),
                                    json={name: 0.0 for name in self.config.faults})
        if response.status_code != 200:
            raise HarnessError(f"could not clear faults: {response.status_code} {response.text[:200]}")

    def judge(self, history: History, *, counters: dict[str, float] | None = None,
              memory: dict[str, Any] | None = None, config: dict[str, Any] | None = None,
              sent_only: bool = False) -> RunReport:
        """Read back receipts and state as they are now and judge ``history`` against them.

        ``sent_only``: judge only the payments the history sent anything for (a swarm stopped by its
        time limit leaves the rest untouched; they were never part of the race). HarnessError when none.
        """
        plan, payments = self.config.plan, self.payments
        if sent_only:
            plan, payments = sent_payments(plan, payments, history)
        self.progress("verifying", 0, 1)
        report = verify_history(self.profile, plan, payments, history,
                                targets_file=self.config.targets_file, label=self.config.label or "run",
                                config={**self.config.describe(), **(config or {}), "plan": plan.to_dict()},
                                counters=counters, memory=memory, started=self.started,
                                server_errors_injected=self.config.server_errors_injected,
                                progress=self.progress)
        if self.sink is not None:  # what reached the sink, once it settled; its records go beside the report
            report.config["sink"] = self.sink.describe()
        self.progress("verifying", 1, 1)
        return report

    def run(self) -> RunReport:
        with self:
            requests = self.prepare()
            self.start_telemetry()
            try:
                history = self.send(requests)
            finally:
                counters, memory = self.stop_telemetry()
            return self.judge(history, counters=counters, memory=memory)
