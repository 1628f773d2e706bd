"""Documented targets: the seed's figures, checked against what a run measured.

A target is met, missed, or not measured (e.g. the memory of a remote service); only a missed
target fails a run. Users pass their own file in the same format as ``default_targets.json``.
"""

from __future__ import annotations

import json
import operator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict

from harness.verdict.result import MET, MISSED, NOT_MEASURED, TargetResult
from harness.errors import TargetsError

TARGETS_VERSION = 1
DEFAULT_TARGETS = Path(__file__).with_name("default_targets.json")
BUILT_IN = {"seed": DEFAULT_TARGETS, "exactly-once": Path(__file__).with_name("exactly_once_targets.json")}

_BOUNDS = {"eq": ("==", operator.eq), "gt": (">", operator.gt), "ge": (">=", operator.ge),
           "lt": ("<", operator.lt), "le": ("<=", operator.le)}


@dataclass(frozen=True)
class MetricTarget:
    name: str
    metric: str
    bounds: tuple[tuple[str, float], ...]  # (("ge", 200), ("le", 500))
    unit: str = ""
    description: str = ""

    @property
    def expected(self) -> str:
        return " and ".join(f"{_BOUNDS[op][0]} {_fmt(value)}" for op, value in self.bounds) + (
            f" {self.unit}" if self.unit else "")

    def evaluate(self, metrics: dict[str, Any]) -> TargetResult:
        value = metrics.get(self.metric)
        result = TargetResult(self.name, self.description, self.expected, NOT_MEASURED, None, self.unit)
        if value is None:
            result.note = f"{self.metric} was not measured"
            return result
        result.measured = float(value)
        ok = all(_BOUNDS[op][1](result.measured, bound) for op, bound in self.bounds)
        result.status = MET if ok else MISSED
        return result


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


@dataclass(frozen=True)
class _Entry:
    """One target as a targets file writes it."""

    __pydantic_config__ = ConfigDict(extra="forbid")
    name: str
    metric: str
    eq: float | None = None
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    unit: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        if not any(getattr(self, op) is not None for op in _BOUNDS):
            raise ValueError(f"target {self.name!r} has no bound (one of {', '.join(_BOUNDS)})")


@dataclass(frozen=True)
class _File:
    __pydantic_config__ = ConfigDict(extra="forbid")
    version: Literal[1]
    targets: list[_Entry]
    source: str = ""  # where the figures come from (free text)
    description: str = ""


def parse_targets(data: dict[str, Any], source: str = "targets file") -> list[MetricTarget]:
    """The targets of a parsed targets file; TargetsError names the field that is wrong."""
    from harness.errors import ConfigError
    from harness.profile.validate import validated

    try:
        parsed = validated(_File, data, source)
    except ConfigError as exc:
        raise TargetsError(str(exc)) from None
    return [MetricTarget(e.name, e.metric, tuple((op, getattr(e, op)) for op in _BOUNDS if getattr(e, op) is not None),
                         e.unit, e.description) for e in parsed.targets]


def load_targets(path: str | Path | None = None) -> list[MetricTarget]:
    """The targets in ``path`` (a file, or a built-in name: ``seed``, ``exactly-once``); default the seed's."""
    source = BUILT_IN.get(str(path), Path(path)) if path else DEFAULT_TARGETS
    try:
        return parse_targets(json.loads(source.read_text()), f"targets file {source}")
    except (OSError, json.JSONDecodeError) as exc:
        raise TargetsError(f"cannot read targets file {source}: {exc}") from None


def evaluate(targets: list[MetricTarget], metrics: dict[str, Any]) -> list[TargetResult]:
    return [t.evaluate(metrics) for t in targets]
