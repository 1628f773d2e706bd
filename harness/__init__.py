"""race-harness: prove a webhook handler produces its side effect exactly once under concurrency."""

__version__ = "0.1.0"

from .burst import BurstResult, HeldBurst, PreparedRequest, fire  # noqa: E402
from .history import Event, History  # noqa: E402
from .oracle import CHECKERS, Evidence, PlannedPayment, check  # noqa: E402
from .plan import Plan, PlanError, parse_channel_mix  # noqa: E402
from .result import CheckResult, RunReport, TargetResult, Verdict, Violation, decide  # noqa: E402
from .runner import (  # noqa: E402
    HarnessError, RunConfig, build_requests, prepare_payments, reverify, run_race, send, verify_history,
)
from .target import Payment, Signing, Target, TargetError  # noqa: E402
from .targets import MetricTarget, evaluate, load_targets  # noqa: E402

__all__ = [
    "BurstResult", "CHECKERS", "HeldBurst", "CheckResult", "Event", "Evidence", "HarnessError", "History", "MetricTarget",
    "Payment", "Plan", "PlanError", "PlannedPayment", "PreparedRequest", "RunConfig", "RunReport", "Signing",
    "Target", "TargetError", "TargetResult", "Verdict", "Violation", "__version__", "build_requests", "check",
    "decide", "evaluate", "fire", "load_targets", "parse_channel_mix", "prepare_payments", "reverify", "run_race",
    "send", "verify_history",
]
