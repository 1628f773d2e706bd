"""Writing a run report: the JSON, a Markdown pull-request comment and one self-contained HTML page.

The JSON (``RunReport.dumps``) is the source; Markdown and HTML are rendered from the same
``RunReport`` with the same tables (``report_tables``). Secrets are masked once, in
``write_report``, before any view is rendered. The HTML page lives in ``report_html`` and its
charts in ``charts``; their public names are re-exported here for callers of the old module.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from harness.report.charts import TIMELINE_PAYMENTS
from harness.redact import redact
from harness.report.format import (
    DASH, OUTCOME_COLORS, OUTCOMES, format_metric, format_number, md_code, md_escape, metric_keys, metric_label,
    metric_unit, verdict_icon,
)
from harness.report.html import render_html
from harness.report.tables import (
    faults_table,
    Table, checks_table, config_line, environment_line, history_table, judged_line, metrics_table, payments_heading,
    payments_table, strength_line, targets_table,
)
from harness.verdict.result import RunReport

__all__ = ["DASH", "OUTCOMES", "OUTCOME_COLORS", "TIMELINE_PAYMENTS", "format_metric", "format_number", "metric_keys",
           "metric_label", "metric_unit", "redacted", "render_html", "render_markdown", "verdict_icon", "write_report"]

MD_PAYMENT_ROWS = 30

# ---------------------------------------------------------------------------------------------
# Writing files


def write_report(report: RunReport, directory: Path, stem: str | None = None) -> dict[str, Path]:
    """Write ``<stem>.json``, ``<stem>.md`` and ``<stem>.html`` into directory; return them by format.

    Secrets are masked here, once, on the JSON form every view is rendered from (``redact``).
    """
    report = redacted(report)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    stem = stem or safe_stem(report.label)
    paths = {"json": directory / f"{stem}.json", "md": directory / f"{stem}.md", "html": directory / f"{stem}.html"}
    paths["json"].write_text(report.dumps() + "\n", encoding="utf-8")
    paths["md"].write_text(render_markdown(report), encoding="utf-8")
    paths["html"].write_text(render_html(report), encoding="utf-8")
    if records := _sink_records_beside(report, directory, stem):
        paths["sink"] = records
    return paths


def _sink_records_beside(report: RunReport, directory: Path, stem: str) -> Path | None:
    """The run's sink records (JSON lines, secret headers masked) kept as ``<stem>.sink.jsonl``."""
    from harness.sink.records import copy_masked

    source = (report.config.get("sink") or {}).get("records")
    if not source or not Path(source).is_file():
        return None
    target = directory / f"{stem}.sink.jsonl"
    if Path(source).resolve() != target.resolve():
        copy_masked(source, target)
    return target


def redacted(report: RunReport) -> RunReport:
    """The report as its JSON says it, with every secret masked (the one rule in ``harness.redact``)."""
    # Through JSON first, so values that only become text when dumped are searched too.
    return RunReport.from_dict(redact(json.loads(report.dumps())))


def safe_stem(label: str) -> str:
    """A file-name-safe form of a report label."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip(".-") or "report"


# ---------------------------------------------------------------------------------------------
# Markdown


def render_markdown(report: RunReport) -> str:
    """The report as a pull-request comment (GitHub-flavoured Markdown, readable as plain text)."""
    lines = [f"## {verdict_icon(report)} race-harness run `{md_code(report.label)}` — "
             f"{md_escape(report.verdict.summary)}", "", f"**Run:** {md_escape(config_line(report))}  ",
             f"**Environment:** {md_escape(environment_line(report))}  ",
             f"**Judged:** {md_escape(judged_line(report))}  ",
             f"**Strength:** {md_escape(strength_line(report))}  ", f"**Exit code:** {report.verdict.exit_code}", ""]
    sections = [("Checks", checks_table(report)), ("Faults", faults_table(report)), ("Targets", targets_table(report)),
                ("Metrics", metrics_table(report)), ("History", history_table(report)),
                (payments_heading(report, MD_PAYMENT_ROWS), payments_table(report, MD_PAYMENT_ROWS))]
    for title, table in sections:
        if table is None:  # a section the run has nothing for (no nemesis: no Faults)
            continue
        lines += [f"### {title}", "", *md_table(table), ""]
    return "\n".join(lines).rstrip() + "\n"


def md_table(table: Table) -> list[str]:
    """A table as Markdown lines, with its note after it."""
    lines = ["| " + " | ".join(md_escape(h) for h in table.headers) + " |",
             "|" + "|".join("---" for _ in table.headers) + "|"]
    lines += ["| " + " | ".join(md_escape(c) for c in row) + " |" for row in table.rows]
    if not table.rows:
        lines = []
    if table.note:
        lines += ["", f"_{md_escape(table.note)}_"]
    return lines
