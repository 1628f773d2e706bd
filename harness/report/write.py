"""Writing a run report: the JSON, a Markdown pull-request comment and one self-contained HTML page.

The JSON (``RunReport.dumps``) is the source; Markdown and HTML are rendered from the same
``RunReport`` with the same tables (``report_tables``). Secrets are masked once, in
``write_report``, before any view is rendered: by name (``harness.redact``) and, for the secrets the
caller knows (``Profile.secret_values()``), by value wherever a service echoed them. Markdown keeps
no control character raw (a file name from the service could carry terminal escapes). The HTML
page lives in ``report_html`` and its charts in ``charts``; their public names are re-exported here for callers of the old module.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from pathlib import Path

from harness.report.charts import TIMELINE_PAYMENTS
from harness.redact import MASK, MIN_SECRET_LENGTH, mask_values, printable, redact
from harness.report.format import (
    DASH, OUTCOME_COLORS, OUTCOMES, format_metric, format_number, md_code, md_escape, metric_keys, metric_label,
    metric_unit, verdict_icon,
)
from harness.report.html import render_html
from harness.report.tables import (
    clocks_table, faults_table,
    Table, checks_table, config_line, environment_line, history_table, judged_line, metrics_table, payments_heading,
    payments_table, strength_line, targets_table,
)
from harness.verdict.result import RunReport

__all__ = ["DASH", "OUTCOMES", "OUTCOME_COLORS", "TIMELINE_PAYMENTS", "format_metric", "format_number", "metric_keys",
           "metric_label", "metric_unit", "redacted", "render_html", "render_markdown", "verdict_icon", "write_report"]

MD_PAYMENT_ROWS = 30

# ---------------------------------------------------------------------------------------------
# Writing files


def write_report(report: RunReport, directory: Path, stem: str | None = None,
                 secrets: Iterable[str] = ()) -> dict[str, Path]:
    """Write ``<stem>.json``, ``<stem>.md`` and ``<stem>.html`` into directory; return them by format.

    Secrets are masked here, once, on the JSON form every view is rendered from (``redacted``), and in
    the sink records kept beside it; ``secrets``: the values the run was given (``Profile.secret_values()``),
    masked wherever they appear (a service that echoes its signing secret).
    """
    secrets = frozenset(secrets)
    report = redacted(report, secrets)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    stem = stem or safe_stem(report.label)
    paths = {"json": directory / f"{stem}.json", "md": directory / f"{stem}.md", "html": directory / f"{stem}.html"}
    paths["json"].write_text(report.dumps() + "\n", encoding="utf-8")
    paths["md"].write_text(render_markdown(report), encoding="utf-8")
    paths["html"].write_text(render_html(report), encoding="utf-8")
    if records := _sink_records_beside(report, directory, stem, secrets):
        paths["sink"] = records
    return paths


def _sink_records_beside(report: RunReport, directory: Path, stem: str, secrets: frozenset[str]) -> Path | None:
    """The run's sink records (JSON lines; secret headers and known secret values masked) as ``<stem>.sink.jsonl``."""
    return keep_sink_records((report.config.get("sink") or {}).get("records"), directory / f"{stem}.sink.jsonl",
                             secrets)


def keep_sink_records(source: str | Path | None, target: Path, secrets: Iterable[str] = ()) -> Path | None:
    """A sink's records kept as ``target`` (the same file is masked in place): secret headers masked, and every
    known secret value wherever the service sent it. None when there are no records to keep."""
    from harness.sink.records import copy_masked, read_records

    secrets = frozenset(secrets)
    if not source or not Path(source).is_file():
        return None
    if Path(source).resolve() != target.resolve():
        copy_masked(source, target)
    if secrets:  # the values themselves, wherever the service sent them (a body, a URL, an e-mail)
        records = read_records(target)
        if (masked := [_mask_record(r, secrets) for r in records]) != records:
            partial = target.with_name(target.name + ".masking")
            partial.write_text("".join(json.dumps(r, default=str) + "\n" for r in masked), encoding="utf-8")
            partial.replace(target)
    return target


def _mask_record(record: dict, secrets: frozenset[str]) -> dict:
    """A sink record with every known secret value masked, in its text and in the exact bytes it keeps (``*_b64``)."""
    masked = mask_values(record, secrets)
    for key, value in record.items():
        if key.endswith("_b64") and isinstance(value, str):
            try:
                raw = base64.b64decode(value, validate=True)
            except ValueError:
                continue
            for secret in sorted(secrets, key=len, reverse=True):
                if len(secret) >= MIN_SECRET_LENGTH:
                    raw = raw.replace(secret.encode(), MASK.encode())
            masked[key] = base64.b64encode(raw).decode("ascii")
    return masked


def redacted(report: RunReport, secrets: Iterable[str] = ()) -> RunReport:
    """The report as its JSON says it, with every secret masked (the one rule in ``harness.redact``) and
    every known secret value (``secrets``) masked wherever it appears."""
    # Through JSON first, so values that only become text when dumped are searched too. Values first:
    # masking by name could cut a secret in two and leave a piece no longer found by value.
    data = json.loads(report.dumps())
    masked = redact(mask_values(data, secrets))
    masked["kind"], masked["version"] = data["kind"], data["version"]  # what the report is, never a secret
    return RunReport.from_dict(masked)


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
    sections = [("Checks", checks_table(report)), ("Faults", faults_table(report)), ("Clocks", clocks_table(report)),
                ("Targets", targets_table(report)),
                ("Metrics", metrics_table(report)), ("History", history_table(report)),
                (payments_heading(report, MD_PAYMENT_ROWS), payments_table(report, MD_PAYMENT_ROWS))]
    for title, table in sections:
        if table is None:  # a section the run has nothing for (no nemesis: no Faults)
            continue
        lines += [f"### {title}", "", *md_table(table), ""]
    # md_escape keeps no line break inside a value; every other control character is escaped visibly.
    return printable("\n".join(lines).rstrip() + "\n", newlines=True)


def md_table(table: Table) -> list[str]:
    """A table as Markdown lines, with its note after it."""
    lines = ["| " + " | ".join(_md_cell(h) for h in table.headers) + " |",
             "|" + "|".join("---" for _ in table.headers) + "|"]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
    if not table.rows:
        lines = []
    if table.note:
        lines += ["", f"_{_md_cell(table.note)}_"]
    return lines


def _md_cell(text: object) -> str:
    """A value for Markdown: escaped for Markdown (``md_escape``), every control character visible (``\\x1b``)."""
    return printable(md_escape(text))
