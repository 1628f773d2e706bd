"""race-harness: prove a webhook handler produces its side effect exactly once under concurrency.

The stages of a run, one package each: ``profile`` (the service's contract) → ``prepare`` (payments
and signed deliveries) → ``senders`` (the burst) → ``history`` → ``observe`` (side effects and state
read back) → ``oracle`` (checkers) → ``verdict`` → ``report``. ``run`` holds the session that drives
them; ``cli``, ``swarm`` (Locust) and ``pytest_plugin`` are the front ends. Beside the run: ``nemesis``
(faults), ``probe`` (forged, replayed and tampered deliveries must change nothing) and ``audit``.
"""

from harness.errors import (
    ConfigError, HarnessError, PlanError, ProfileError, RaceHarnessError, TargetError, TargetsError,
)
from harness.history import Event, History
from harness.oracle import CHECKERS, CheckResult, Evidence, PlannedPayment, Violation, check
from harness.prepare import Plan, build_requests, parse_channel_mix, prepare_payments
from harness.probe import ProbeOptions, run_probes, write_probe_report
from harness.profile import Payment, Profile, Signing, Target, load_profile
from harness.report import write_report
from harness.run import RunConfig, RunSession, reverify, run_race, send, verify_history
from harness.senders import BurstResult, PreparedRequest, fire
from harness.senders.burst import HeldBurst
from harness.verdict import MetricTarget, RunReport, TargetResult, Verdict, decide, evaluate, load_targets
from harness.version import __version__

__all__ = [
    "BurstResult", "CHECKERS", "CheckResult", "ConfigError", "Event", "Evidence", "HarnessError", "HeldBurst",
    "History", "MetricTarget", "Payment", "Plan", "PlanError", "PlannedPayment", "PreparedRequest", "ProbeOptions",
    "Profile",
    "ProfileError", "RaceHarnessError", "RunConfig", "RunReport", "RunSession", "Signing", "Target", "TargetError",
    "TargetResult", "TargetsError", "Verdict", "Violation", "__version__", "build_requests", "check", "decide",
    "evaluate", "fire", "load_profile", "load_targets", "parse_channel_mix", "prepare_payments", "reverify",
    "run_probes", "run_race", "send", "verify_history", "write_probe_report", "write_report",
]
