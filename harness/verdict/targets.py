"""Documented targets: the seed's figures, checked against what a run measured.

A target is met, missed, or not measured (e.g. the memory of a remote service); only a missed
target fails a run. Users pass their own file in the same format as ``default_targets.json``.

Targets belong to the service: ``--targets`` names them for one run, a profile's ``[targets]`` for
every run of its service, and the seed's figures are the reference service's own. A profile that
names none is held to the exactly-once invariants alone, its timings shown as measured
(``SHOWN``), never as pass or fail: a correct service that renders a receipt in a browser for a
second is not a failure of anyone's documented figure.
"""

from __future__ import annotations

import json
import operator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict

from harness.verdict.result import MET, MISSED, NOT_MEASURED, SHOWN, TargetResult
from harness.errors import TargetsError
from harness.profile.schema import TargetEntry

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
    judged: bool = True  # False: shown as measured beside its figure, never met or missed

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
        if not self.judged:
            result.status = SHOWN
            return result
        ok = all(_BOUNDS[op][1](result.measured, bound) for op, bound in self.bounds)
        result.status = MET if ok else MISSED
        return result


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


@dataclass(frozen=True)
class _File:
    __pydantic_config__ = ConfigDict(extra="forbid")
    version: Literal[1]
    targets: list[TargetEntry]  # one entry's format, shared with a profile's [[targets.target]]
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
    return [_target(e) for e in parsed.targets]


def _target(entry: Any) -> MetricTarget:
    return MetricTarget(entry.name, entry.metric,
                        tuple((op, getattr(entry, op)) for op in _BOUNDS if getattr(entry, op) is not None),
                        entry.unit, entry.description, entry.judged)


def load_targets(path: str | Path | None = None) -> list[MetricTarget]:
    """The targets in ``path`` (a file, or a built-in name: ``seed``, ``exactly-once``); default the seed's."""
    source = BUILT_IN.get(str(path), Path(path)) if path else DEFAULT_TARGETS
    try:
        return parse_targets(json.loads(source.read_text()), f"targets file {source}")
    except (OSError, json.JSONDecodeError) as exc:
        raise TargetsError(f"cannot read targets file {source}: {exc}") from None


# What a profile that names no targets is held to: one of each side effect per paid payment (judged), and
# the seed's other figures shown beside what was measured.
PROFILE_DEFAULT = "exactly-once, with the seed's other figures shown (the profile names no [targets])"


def profile_default_targets() -> list[MetricTarget]:
    """Exactly one side effect of each kind per paid payment, judged; every other seed figure shown, not judged."""
    judged = [MetricTarget("effects-per-payment", "receipts_per_payment_max", (("eq", 1.0),), "side effects",
                           "Side effects of each kind: at most 1 per paid payment"),
              MetricTarget("missing-effects", "missing_receipts", (("eq", 0.0),), "payments",
                           "Side effects of each kind: at least 1 per paid payment")]
    names = {"receipt-files-per-payment", "missing-receipts"}
    shown = [MetricTarget(t.name, t.metric, t.bounds, t.unit, t.description + " (the seed's figure, not this "
                          "service's: shown, not judged)", judged=False) for t in load_targets("seed")
             if t.name not in names]
    return judged + shown


def targets_for(given: str | Path | None, profile: Any = None) -> tuple[list[MetricTarget], str]:
    """(the targets a run is judged by, where they came from): ``--targets``, else the profile's ``[targets]``,
    else for a profile file the exactly-once default with timings shown, else (the reference service) the seed's.

    ``profile``: a ``harness.profile.Profile`` (its ``spec.targets`` and ``origin``), or None."""
    if given:
        return load_targets(given), str(given)
    section = getattr(getattr(profile, "spec", None), "targets", None)
    origin = getattr(profile, "origin", None) or {}
    if section is not None:
        targets: list[MetricTarget] = []
        where = []
        if section.file:
            path = section.file
            if section.file not in BUILT_IN and origin.get("path") and not Path(section.file).is_absolute():
                path = str(Path(origin["path"]).parent / section.file)  # relative to the profile file
            targets += load_targets(path)
            where.append(str(path))
        targets += [_target(entry) for entry in section.target]
        if section.target:
            where.append(f"{len(section.target)} in [targets]")
        return targets, "the profile's [targets]: " + ", ".join(where)
    if origin.get("from") == "profile file":
        return profile_default_targets(), PROFILE_DEFAULT
    return load_targets(None), "seed"


def targets_as_data(targets: list[MetricTarget]) -> list[dict[str, Any]]:
    """The targets as a targets file's entries (a report keeps the ones it was judged by, for ``verify``)."""
    return [{"name": t.name, "metric": t.metric, **{op: value for op, value in t.bounds}, "unit": t.unit,
             "description": t.description, **({} if t.judged else {"judged": False})} for t in targets]


def evaluate(targets: list[MetricTarget], metrics: dict[str, Any]) -> list[TargetResult]:
    return [t.evaluate(metrics) for t in targets]
