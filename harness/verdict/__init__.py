"""The verdict: checker results, the run's measures and its documented targets (met / missed / not measured)
composed into one exit code, and the run's record (``RunReport``) every report is rendered from."""

from harness.verdict.measure import compute_metrics, payment_rows
from harness.verdict.result import (
    EXIT_INCONCLUSIVE, EXIT_INVALID, EXIT_OK, EXIT_TARGET_MISSED, EXIT_USAGE, MET, MISSED, NOT_MEASURED, SHOWN, Coverage,
    RunReport, TargetResult, Verdict, decide,
)
from harness.verdict.targets import (
    MetricTarget, evaluate, load_targets, parse_targets, profile_default_targets, targets_for,
)

__all__ = ["Coverage", "EXIT_INCONCLUSIVE", "EXIT_INVALID", "EXIT_OK", "EXIT_TARGET_MISSED", "EXIT_USAGE", "MET",
           "MISSED", "MetricTarget", "NOT_MEASURED", "RunReport", "SHOWN", "TargetResult", "Verdict", "compute_metrics",
           "decide", "evaluate", "load_targets", "parse_targets", "payment_rows", "profile_default_targets", "targets_for"]
