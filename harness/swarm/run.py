"""The master's run around the swarm: make the payments, drive the waves, judge the history, say the verdict.

Everything here is independent of Locust: ``scenarios/`` reads the options into ``SwarmSettings``,
starts an embedded service when asked, and hands this module a ``Transport``. The three calls
into the harness's run API (``prepare_payments``, ``build_requests``, ``verify_history``) are each
made in one place, ``prepare`` and ``judge``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import httpx

from harness.errors import HarnessError
from harness.history import History
from harness.prepare.deliveries import sent_payments
from harness.prepare.plan import Plan
from harness.profile import Profile
from harness.report.tables import strength_text
from harness.report.write import write_report
from harness.run.judge import verify_history
from harness.run.session import RunConfig, RunSession
from harness.swarm.clocks import DEFAULT_MAX_UNCERTAINTY_MS
from harness.swarm.coordinator import Coordinator, WaveConfig, Work
from harness.tls import http_client
from harness.verdict.result import EXIT_INCONCLUSIVE, RunReport
from harness.verdict.targets import BUILT_IN

log = logging.getLogger("race-harness.swarm")

VERDICT_PREFIX = "race-harness verdict"


@dataclass
class SwarmSettings:
    """The options of one swarm run (Locust reads them at test_start)."""

    scenario: str
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
    profile: str | None = None  # a profile file or built-in name: the service's contract
    sync: str = "last-byte"  # the lanes' sender, or "auto": single-packet when the target speaks HTTP/2
    verify_tls: bool | str | None = None  # --insecure (False) / --ca-file (a path); None: as the profile says
    http2: bool = False  # the embedded service over HTTP/2 (h2c)
    tls: bool = False  # the embedded service over https (ALPN h2) under a throw-away certificate
    nemesis: str | None = None  # a fault during the waves (harness.nemesis), for a profile with [service]
    restart_after: float = 1.0
    pause_for: float = 2.0
    redeliver: str | None = None  # the gateway's redeliveries after the waves (default: the profile's, or phonepe)
    max_clock_uncertainty_ms: float = DEFAULT_MAX_UNCERTAINTY_MS  # a lane whose offset is less sure gets no shares
    clock_correction: bool = True  # release instants converted to each lane's measured clock

    @property
    def plan(self) -> Plan:
        return Plan(payments=self.payments, duplicates=self.duplicates, unpaid=self.unpaid,
                    channel_mix=self.channel_mix, seed=self.seed)

    def waves(self) -> WaveConfig:
        return WaveConfig(wave_size=self.wave_size, inflight=self.inflight, release_lead=self.release_lead,
                          burst_timeout=self.burst_timeout, redelivery_rounds=self.redelivery_rounds,
                          heal_after=self.heal_after, sync=self.sync,
                          max_clock_uncertainty=self.max_clock_uncertainty_ms / 1000,
                          clock_correction=self.clock_correction)

    def describe(self) -> dict[str, Any]:
        """The options as the report shows them. Secrets (a ``--mongo-uri`` with credentials) are
        not masked here: the report reaches disk only through ``harness.report.write.write_report``,
        which redacts every secret-bearing field of every report by one rule."""
        data = {k: v for k, v in asdict(self).items() if k != "scenario"}
        data["report_dir"] = str(self.report_dir)
        data["scenario"] = self.scenario
        return data


def prepare(profile: Profile, plan: Plan) -> Work:
    """Create the plan's payments on the service and build its requests (a session of its own)."""
    with RunSession(RunConfig(plan=plan, profile=profile)) as session:
        requests = session.prepare()
        return Work(session.profile, plan, session.payments, requests)


def judge(work: Work, history: History, *, label: str, targets_file: str | None, config: dict[str, Any],
          counters: dict[str, float], memory: dict[str, Any], started: float) -> RunReport | str:
    """The oracle's report on the payments that were delivered, or why nothing could be judged."""
    try:
        plan, payments = sent_payments(work.plan, work.payments, history)
    except HarnessError as exc:
        return str(exc)
    return verify_history(work.profile, plan, payments, history, targets_file=targets_file, label=label,
                          config={**config, "plan": plan.to_dict()}, memory=memory, started=started,
                          counters=counters)


@dataclass
class SwarmRun:
    """One run on the master, from the payments to the verdict, around a Coordinator."""

    settings: SwarmSettings
    profile: Profile  # the service, however the user named it (made once, at the Locust edge)
    coordinator: Coordinator
    service_pid: int | None = None  # a service this run started: its memory is sampled
    service: dict[str, Any] | None = None  # how that service was started, for the report
    runner: str = ""  # the name of what carried the messages (Locust's runner class)
    work: Work | None = None
    report: RunReport | None = None
    session: RunSession | None = None  # prepares, measures the service's telemetry, judges
    faults_before: dict | None = None
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    def _trust(self) -> bool | str:
        """How the target's certificate is trusted (its profile's say, or --insecure / --ca-file)."""
        return self.work.profile.tls_trust if self.work is not None else (
            True if self.settings.verify_tls is None else self.settings.verify_tls)

    def prepare(self) -> None:
        s, target = self.settings, self.profile
        if target.receipts_dir is None:
            log.warning("no --receipts-dir: receipt files cannot be read, so the verdict will be INCONCLUSIVE")
        self.session = RunSession(RunConfig(plan=s.plan, profile=target, targets_file=s.targets, label=s.label,
                                            service_pid=self.service_pid, sync=s.sync, verify_tls=s.verify_tls,
                                            report_dir=s.report_dir, nemesis=s.nemesis,
                                            restart_after=s.restart_after, pause_for=s.pause_for,
                                            redeliver=s.redeliver))
        requests = self.session.prepare()
        self.work = Work(self.session.profile, s.plan, self.session.payments, requests)

        if s.failure_rate is not None and not s.embedded:
            with http_client(self.work.profile.tls_trust) as client:
                self.faults_before = set_failure_rate(client, target, s.failure_rate)
        self.session.start_telemetry(interval=0.05)
        log.info("race-harness: %d payments (%d paid) x %d duplicates on %s", len(self.work.payments),
                 s.plan.payments, s.plan.duplicates, target.base_url)

    def drive(self) -> None:
        """The waves (blocking until every delivery is done, or the run stops); with a nemesis, its fault during
        them, and the gateway's redeliveries of what was not acknowledged after it (sent from the master)."""
        assert self.work is not None and self.session is not None
        history = self.coordinator.history
        self.session.arm_nemesis(history)
        self.coordinator.run(self.work, self.settings.waves(), heal=self.heal)
        self.session.after_faults(history, self.work.requests)

    def heal(self) -> None:
        """Set the service's failure rate to 0 for the rounds after ``--heal-after``."""
        try:
            with http_client(self._trust()) as client:
                before = set_failure_rate(client, self.profile, 0.0)
        except HarnessError as exc:
            log.warning("race-harness: --heal-after: %s", exc)
            return
        if self.faults_before is None and not self.settings.embedded:
            self.faults_before = before
        log.info("race-harness: rounds after %d run with the service's failure rate at 0", self.settings.heal_after)

    def verify(self) -> str | None:
        """Judge what came back into ``report``; the reason when nothing could be judged."""
        s, work, c = self.settings, self.work, self.coordinator
        if work is None:
            return "the run ended before anything was judged"
        assert self.session is not None
        counters, memory = self.session.stop_telemetry()
        delivered = {e.payment for e in c.history.events if e.t_release is not None}
        config: dict[str, Any] = {
            "scenario": s.scenario,
            "options": s.describe(),
            "locust": {"runner": self.runner, "senders": dict(c.lanes), "waves": len(c.waves),
                       "planned_payments": work.plan.slots,
                       "not_delivered": [p.id for p in work.payments if p.id not in delivered],
                       "redeliveries": {p.id: c.rounds_of.get(i, 1) - 1 for i, p in enumerate(work.payments)
                                        if p.id in delivered},
                       **({"lapses": list(c.lapses)} if c.lapses else {}),
                       "clocks": c.clock_report()},
            # What reverify reads: the run's targets, resolved so that they are found from another directory.
            "targets_file": targets_source(s.targets),
        }
        if self.service is not None:
            config["service"] = self.service
            config["mode"] = s.embedded
        try:
            self.report = self.session.judge(c.history, counters=counters, memory=memory, config=config,
                                             sent_only=True)
        except HarnessError as exc:
            return str(exc)
        return None

    def verdict(self) -> tuple[int, list[str]]:
        """The exit code and the lines that say the verdict; writes the report files."""
        report, s = self.report, self.settings
        if report is None:
            return EXIT_INCONCLUSIVE, [f"{VERDICT_PREFIX} [{s.label}]: INCONCLUSIVE: the run ended before anything was judged"]
        paths: dict[str, Path] = {}
        try:
            paths = write_report(report, s.report_dir, secrets=self.session.profile.secret_values())
        except OSError as exc:
            log.error("race-harness: cannot write the report to %s: %s", s.report_dir, exc)
        m, lanes = report.metrics, self.coordinator.lanes
        return report.verdict.exit_code, [
            f"{VERDICT_PREFIX} [{report.label}]: {report.explain(limit=10)}",
            f"  payments {m.get('payments_paid')} paid + {m.get('payments_unpaid')} unpaid, "
            f"{m.get('requests')} requests from {len(lanes)} process(es) with {sum(lanes.values())} users; "
            f"receipt files per paid payment {m.get('receipts_per_payment_min')}-{m.get('receipts_per_payment_max')}; "
            f"rollbacks {_num(m.get('rollbacks'))}; server-seen arrival spread per payment "
            f"<= {m.get('payment_arrival_spread_ms_max')} ms, whole waves {m.get('arrival_spread_ms')} ms",
            f"  per payment (median): server-seen arrival spread {m.get('payment_arrival_spread_ms_p50')} ms, "
            f"release spread {m.get('payment_release_spread_ms_p50')} ms",
            *clock_lines(self.coordinator.clock_report()),
            f"  strength: {strength_text(m)}",
            *(f"  report ({kind}): {path}" for kind, path in paths.items())]

    def cleanup(self) -> None:
        """Put the service back and stop whatever this run started (safe to call more than once)."""
        if self.session is not None:
            self.session.close()
        if self.faults_before is not None:
            try:
                with http_client(self._trust(), timeout=5.0) as client:
                    client.put(self.profile.url("/_admin/faults"),
                               json={"failure_rate": self.faults_before.get("failure_rate", 0.0)})
            except httpx.HTTPError:
                pass
            self.faults_before = None
        while self.cleanups:
            step = self.cleanups.pop()
            try:
                step()
            except Exception:  # noqa: BLE001 - cleanup goes on for the others
                log.warning("race-harness: a cleanup step failed", exc_info=True)


def clock_lines(clocks: dict[str, Any]) -> list[str]:
    """One line per lane: its clock's offset from the master's, how sure, and whether it was left out."""
    lines = []
    for node, lane in clocks.get("lanes", {}).items():
        if lane.get("offset_ms") is None:
            said = "offset unknown"
        else:
            said = (f"offset {lane['offset_ms']:+.3f} ms ± {lane['uncertainty_ms']:.3f} ms (round trip "
                    f"{lane['rtt_ms']:.3f} ms, best of {lane['samples']})")
        lines.append(f"  clock of lane {node}: {said}" + (f"; LEFT OUT: {lane['excluded']}" if "excluded" in lane else ""))
    if lines and not clocks.get("correction", True):
        lines.append("  clock correction off (--no-clock-correction): each lane released on its own clock")
    return lines


def set_failure_rate(client: httpx.Client, target: Profile, rate: float) -> dict:
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


def targets_source(targets: str | None) -> str | None:
    """A built-in targets name as it is; a file by its absolute path."""
    return targets if targets is None or targets in BUILT_IN else str(Path(targets).resolve())


def _num(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value
