"""The verdict and the run's record: checker results and targets composed into one exit code, and the report's data."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.oracle.result import CheckResult, Violation

REPORT_VERSION = 1

EXIT_OK, EXIT_INVALID, EXIT_TARGET_MISSED, EXIT_INCONCLUSIVE, EXIT_USAGE = 0, 1, 2, 3, 4

MET, MISSED, NOT_MEASURED = "met", "missed", "not measured"
SHOWN = "shown"  # measured and shown beside its documented figure, never judged (a target the service did not set)


@dataclass
class TargetResult:
    name: str
    description: str
    expected: str  # human form, e.g. "<= 300 ms"
    status: str  # met | missed | not measured | shown
    measured: float | None = None
    unit: str = ""
    note: str = ""


@dataclass
class Verdict:
    valid: bool | None  # invariants: True hold, False violated, None inconclusive
    exit_code: int
    summary: str


@dataclass(frozen=True)
class Coverage:
    """How many paid payments could be judged: the others received no request that reached the service."""

    judged: int
    paid: int

    @property
    def mostly_unjudged(self) -> bool:
        return self.paid > 0 and self.judged * 2 < self.paid


# Checks about the service's side effects; "no-errors" is about the run (transport errors included).
_RUN_CHECKS = frozenset({"no-errors"})


def decide(checks: list[CheckResult], targets: list[TargetResult], coverage: Coverage | None = None) -> Verdict:
    """Compose checker results and targets into one verdict and exit code.

    A violated invariant beats everything; a missed target beats inconclusive (something was
    measured and found wanting); an unknown checker makes the run inconclusive, never a pass.
    A run in which most paid payments never received a delivery is inconclusive unless an
    invariant was violated on the payments that did: its transport errors alone say the network
    (or a crash) failed, not the service.
    """
    failed = [c for c in checks if c.valid is False]
    unknown = [c for c in checks if c.valid is None and c.made]
    missed = [t for t in targets if t.status == MISSED]
    if coverage is not None and coverage.mostly_unjudged and all(c.name in _RUN_CHECKS for c in failed):
        also = f"; {', '.join(c.name for c in failed)} failed" if failed else ""
        return Verdict(None, EXIT_INCONCLUSIVE,
                       f"INCONCLUSIVE: only {coverage.judged} of {coverage.paid} paid payment(s) received a request "
                       f"that reached the service{also}")
    if failed:
        count = sum(len(c.violations) for c in failed)
        return Verdict(False, EXIT_INVALID, f"INVALID: {count} violation(s) in {', '.join(c.name for c in failed)}")
    if missed:
        return Verdict(None if unknown else True, EXIT_TARGET_MISSED,
                       f"TARGET MISSED: {', '.join(t.name for t in missed)}")
    if unknown:
        return Verdict(None, EXIT_INCONCLUSIVE, f"INCONCLUSIVE: {', '.join(c.name for c in unknown)} could not tell")
    return Verdict(True, EXIT_OK, "VALID: every invariant holds and every measured target is met")


@dataclass
class RunReport:
    """Everything about one run; the JSON form is the source of every other view."""

    label: str
    config: dict[str, Any]
    environment: dict[str, Any]
    history: dict[str, Any]  # History.to_dict()
    history_summary: dict[str, Any]
    payments: list[dict[str, Any]]  # one row per payment: ids, expected state, receipts, outcomes, timings
    checks: list[CheckResult]
    metrics: dict[str, Any]
    targets: list[TargetResult]
    verdict: Verdict
    started_at: float = 0.0
    finished_at: float = 0.0
    kind: str = "race-harness-run"
    version: int = REPORT_VERSION

    @property
    def valid(self) -> bool:
        """Every invariant holds and the race was exercised (targets are separate: ``targets_met``)."""
        return self.verdict.valid is True

    @property
    def targets_met(self) -> bool:
        return all(t.status != MISSED for t in self.targets)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunReport":
        if data.get("kind") != "race-harness-run":
            raise ValueError("not a race-harness run report")
        if data.get("version") != REPORT_VERSION:
            raise ValueError(f"unsupported report version {data.get('version')!r} (this harness reads {REPORT_VERSION})")
        data = dict(data)
        data["checks"] = [CheckResult(**{**c, "violations": [Violation(**v) for v in c["violations"]]})
                          for c in data["checks"]]
        data["targets"] = [TargetResult(**t) for t in data["targets"]]
        data["verdict"] = Verdict(**data["verdict"])
        return cls(**data)

    @classmethod
    def load(cls, path: str | Path) -> "RunReport":
        return cls.from_dict(json.loads(Path(path).read_text()))

    def dumps(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)

    def explain(self, limit: int = 20) -> str:
        """A few lines a failing assertion can show: verdict, then each violation (``limit`` per check)."""
        lines = [self.verdict.summary]
        for check in self.checks:
            if check.valid is not True:
                lines.append(f"- {check.name}: {check.status}")
                lines += [f"    {v}" for v in check.violations[:limit]]
                if len(check.violations) > limit:
                    lines.append(f"    ... and {len(check.violations) - limit} more")
                if check.valid is None and check.details.get("reason"):
                    lines.append(f"    {check.details['reason']}")
        for target in self.targets:
            if target.status == MISSED:
                lines.append(f"- target {target.name}: measured {target.measured} {target.unit}, expected {target.expected}")
        return "\n".join(lines)
