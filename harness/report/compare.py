"""Compare two run reports: the design doc's before/after table, every metric's change, both verdicts."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.report.format import (
    DASH, format_metric, format_number, md_code, md_escape, metric_keys, metric_label, metric_unit,
)
from harness.verdict.result import MET, MISSED, RunReport
from harness.oracle.result import CheckResult

COMPARISON_VERSION = 1
SECTIONS = {
    "headline": "Before / after",
    "metrics": "Every metric with its change",
    "checks": "Verdicts and checks",
    "targets": "Targets",
}


@dataclass
class ComparisonRow:
    """One line of a comparison: a name, both sides as text, the change, and the numbers behind them."""

    section: str  # headline | metrics | checks | targets
    name: str
    before: str
    after: str
    change: str = ""
    key: str | None = None
    before_value: float | None = None
    after_value: float | None = None


@dataclass
class Comparison:
    """Two runs side by side; ``rows`` hold every section in order."""

    before_label: str
    after_label: str
    rows: list[ComparisonRow] = field(default_factory=list)
    before_verdict: str = ""
    after_verdict: str = ""

    def section(self, name: str) -> list[ComparisonRow]:
        """The rows of one section."""
        return [r for r in self.rows if r.section == name]

    def row(self, name: str, section: str | None = None) -> ComparisonRow:
        """The first row whose name or metrics key is name (KeyError if none)."""
        for r in self.rows:
            if (r.name == name or r.key == name) and section in (None, r.section):
                return r
        raise KeyError(name)

    def headers(self) -> list[str]:
        """Column titles naming both runs."""
        return ["", f"Before ({self.before_label})", f"After ({self.after_label})", "Change"]

    @staticmethod
    def _first_header(section: str) -> str:
        """The title of a section's name column."""
        return {"headline": "Metric", "metrics": "Metric", "checks": "Check", "targets": "Target"}[section]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {"version": COMPARISON_VERSION, "kind": "race-harness-comparison",
                "before": {"label": self.before_label, "verdict": self.before_verdict},
                "after": {"label": self.after_label, "verdict": self.after_verdict},
                "rows": [asdict(r) for r in self.rows]}

    def to_markdown(self) -> str:
        """Markdown tables, one per section, then both verdicts in full."""
        lines = [f"## Before / after: `{md_code(self.before_label)}` → `{md_code(self.after_label)}`", ""]
        for section, title in SECTIONS.items():
            rows = self.section(section)
            if not rows:
                continue
            headers = [self._first_header(section), *self.headers()[1:]]
            if section == "headline":
                headers = headers[:3]
            lines += [f"### {title}", "", "| " + " | ".join(md_escape(h) for h in headers) + " |",
                      "|" + "|".join("---" for _ in headers) + "|"]
            for r in rows:
                cells = [r.name, r.before, r.after, r.change][: len(headers)]
                lines.append("| " + " | ".join(md_escape(c) for c in cells) + " |")
            lines.append("")
        lines += [f"- **Before:** {md_escape(self.before_verdict)}", f"- **After:** {md_escape(self.after_verdict)}"]
        return "\n".join(lines) + "\n"

    def to_text(self) -> str:
        """Plain fixed-width tables for a terminal."""
        out = [f"Before / after: {self.before_label} -> {self.after_label}"]
        for section, title in SECTIONS.items():
            rows = self.section(section)
            if rows:
                headers = [self._first_header(section), *self.headers()[1:]]
                out += ["", title, *_text_table(headers, [[r.name, r.before, r.after, r.change] for r in rows])]
        out += ["", f"Before: {self.before_verdict}", f"After:  {self.after_verdict}"]
        return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# Building a comparison


def compare(before: RunReport, after: RunReport) -> Comparison:
    """Compare two reports: the seed's table, every numeric metric with its change, verdicts and checks."""
    rows = _headline(before.metrics, after.metrics) + _metric_rows(before.metrics, after.metrics)
    rows += _check_rows(before, after) + _target_rows(before, after)
    return Comparison(before.label, after.label, rows, before.verdict.summary, after.verdict.summary)


def compare_files(before: str | Path, after: str | Path) -> Comparison:
    """Load two report JSONs and compare them; a bad or too-new report is a ValueError naming its file."""
    return compare(_load(before), _load(after))


def _load(path: str | Path) -> RunReport:
    """RunReport.load with the file's name in any error."""
    try:
        return RunReport.load(path)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"{path}: cannot compare this report: {exc}") from exc


def _number(value: Any) -> float | None:
    """value if it is a real number (not a bool), else None."""
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _span(low: Any, high: Any, unit: str = "") -> str:
    """'1–5', or '1' when both ends agree, or 'not measured'."""
    low, high = _number(low), _number(high)
    if low is None and high is None:
        return "not measured"
    if low is None or high is None or format_number(low) == format_number(high):
        text = format_number(high if low is None else low)
    else:
        text = f"{format_number(low)}–{format_number(high)}"
    return f"{text} {unit}".strip()


def _memory(metrics: dict[str, Any]) -> str:
    """Peak service RSS with its growth in parentheses."""
    peak, growth = _number(metrics.get("service_peak_rss_mb")), _number(metrics.get("service_rss_growth_mb"))
    if peak is None:
        return "not measured"
    if growth is None:
        return f"{format_number(peak)} MB"
    return f"{format_number(peak)} MB ({'+' if growth >= 0 else ''}{format_number(growth)} MB)"


def _headline(before: dict[str, Any], after: dict[str, Any]) -> list[ComparisonRow]:
    """The four rows of the design doc's performance table."""
    def row(name: str, render, key: str) -> ComparisonRow:
        return ComparisonRow("headline", name, render(before), render(after), key=key,
                             before_value=_number(before.get(key)), after_value=_number(after.get(key)))

    return [
        row("Receipt files per payment",
            lambda m: _span(m.get("receipts_per_payment_min"), m.get("receipts_per_payment_max")),
            "receipts_per_payment_max"),
        row("Memory usage", _memory, "service_peak_rss_mb"),
        row("File conflicts", lambda m: format_metric("file_conflicts", _number(m.get("file_conflicts"))),
            "file_conflicts"),
        row("Processing time", lambda m: _span(m.get("processing_ms_p50"), m.get("processing_ms_max"), "ms"),
            "processing_ms_max"),
    ]


def _metric_rows(before: dict[str, Any], after: dict[str, Any]) -> list[ComparisonRow]:
    """Every numeric metric in either report, with before, after and the change."""
    rows = []
    for key in metric_keys(before, after):
        values = (before.get(key), after.get(key))
        if any(v is not None and _number(v) is None for v in values):
            continue  # not a numeric metric
        b, a = _number(values[0]), _number(values[1])
        rows.append(ComparisonRow("metrics", metric_label(key), format_metric(key, b, DASH),
                                  format_metric(key, a, DASH), change(b, a, metric_unit(key)), key, b, a))
    return rows


def change(before: float | None, after: float | None, unit: str = "") -> str:
    """'+3 ms (+25%)', '-4 (-80%)', 'no change', or — when either side is missing."""
    if before is None or after is None:
        return DASH
    delta = after - before
    if delta == 0:
        return "no change"
    sign = "+" if delta > 0 else "-"
    if unit == "%":
        return f"{sign}{format_number(abs(delta))} pp"
    text = f"{sign}{format_number(abs(delta))} {unit}".strip()
    if before != 0:
        text += f" ({sign}{format_number(abs(delta) / abs(before) * 100)}%)"
    return text


def _check_text(check: CheckResult | None) -> str:
    """'FAIL (5 violations)', 'pass', 'unknown', or — when the run did not have this checker."""
    if check is None:
        return DASH
    return f"{check.status} ({len(check.violations)} violation(s))" if check.violations else check.status


def _check_rows(before: RunReport, after: RunReport) -> list[ComparisonRow]:
    """The verdicts, then each checker's status in both runs."""
    def short(report: RunReport) -> str:
        return f"{report.verdict.summary.split(':', 1)[0]} (exit {report.verdict.exit_code})"

    verdict_change = "fixed" if before.verdict.valid is False and after.verdict.valid is True else (
        "regressed" if before.verdict.valid is True and after.verdict.valid is False else "")
    rows = [ComparisonRow("checks", "Verdict", short(before), short(after), verdict_change)]
    b_checks, a_checks = {c.name: c for c in before.checks}, {c.name: c for c in after.checks}
    for name in list(b_checks) + [n for n in a_checks if n not in b_checks]:
        b, a = b_checks.get(name), a_checks.get(name)
        moved = "fixed" if b and a and b.valid is False and a.valid is True else (
            "regressed" if b and a and b.valid is True and a.valid is False else "")
        rows.append(ComparisonRow("checks", name, _check_text(b), _check_text(a), moved))
    return rows


def _target_rows(before: RunReport, after: RunReport) -> list[ComparisonRow]:
    """Each target's status and measurement in both runs."""
    b_targets, a_targets = {t.name: t for t in before.targets}, {t.name: t for t in after.targets}
    rows = []
    for name in list(b_targets) + [n for n in a_targets if n not in b_targets]:
        b, a = b_targets.get(name), a_targets.get(name)
        moved = "now met" if b and a and b.status == MISSED and a.status == MET else (
            "now missed" if b and a and b.status == MET and a.status == MISSED else "")
        expected = (a or b).expected
        rows.append(ComparisonRow("targets", f"{name} ({expected})", _target_text(b), _target_text(a), moved,
                                  key=name, before_value=b.measured if b else None,
                                  after_value=a.measured if a else None))
    return rows


def _target_text(target) -> str:
    """'missed: 1030 ms' or 'not measured'."""
    if target is None:
        return DASH
    if target.measured is None:
        return target.status
    return f"{target.status}: {format_number(target.measured)} {target.unit}".strip()


# ---------------------------------------------------------------------------------------------
# Output


def write_comparison(comparison: Comparison, directory: Path, stem: str = "comparison") -> dict[str, Path]:
    """Write ``<stem>.md`` and ``<stem>.json`` into directory; return them by format."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"md": directory / f"{stem}.md", "json": directory / f"{stem}.json"}
    paths["md"].write_text(comparison.to_markdown(), encoding="utf-8")
    paths["json"].write_text(json.dumps(comparison.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return paths


def print_comparison(comparison: Comparison, console=None) -> None:
    """Print the comparison as rich tables (one per section)."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    styles = {"fixed": "green", "now met": "green", "regressed": "red", "now missed": "red"}
    console.print(f"[bold]Before / after:[/] {_rich(comparison.before_label)} → {_rich(comparison.after_label)}")
    for section, title in SECTIONS.items():
        rows = comparison.section(section)
        if not rows:
            continue
        table = Table(title=title, title_justify="left")
        for header in comparison.headers():
            table.add_column(header or comparison._first_header(section))
        for r in rows:
            style = styles.get(r.change, "")
            table.add_row(_rich(r.name), _rich(r.before), _rich(r.after),
                          f"[{style}]{_rich(r.change)}[/]" if style else _rich(r.change))
        console.print(table)
    console.print(f"Before: {_rich(comparison.before_verdict)}")
    console.print(f"After:  {_rich(comparison.after_verdict)}")


def _rich(text: str) -> str:
    """Escape rich markup in text from a report."""
    from rich.markup import escape

    return escape(str(text))


def _text_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    """Columns padded to their widest cell."""
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows)]

    def line(cells: list[str]) -> str:
        return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()

    return [line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)]

