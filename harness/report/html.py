"""The run report as one self-contained HTML page, from a Jinja2 template with autoescaping.

Every value from a report reaches the page through the template's autoescaping (response bodies
come from the service under test); only the charts are marked safe: matplotlib writes them and
escapes their text itself (``svg.draw``). The page loads nothing: no scripts, styles or fonts from elsewhere.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape

from harness.report.charts import latency_chart, receipts_caption, receipts_chart, timeline_caption, timeline_chart
from harness.report.format import clip, plain_icons, verdict_icon
from harness.report.tables import (
    clocks_table, faults_table,
    Table, checks_table, config_line, environment_line, flat, history_table, judged_line, metrics_table,
    payments_heading, payments_table, strength_line, targets_table,
)
from harness.verdict.result import RunReport

HTML_PAYMENT_ROWS = 200
HTML_VIOLATIONS = 50
LATENCY_CAPTION = "Request latency (response read minus final byte sent), stacked by the outcome the service reported."


@lru_cache(maxsize=1)
def _environment() -> Environment:
    """The template environment: HTML autoescaping on, templates shipped inside the package."""
    env = Environment(loader=PackageLoader("harness.report", "templates"), autoescape=select_autoescape(["html", "j2"]),
                      trim_blocks=True, lstrip_blocks=True)
    # Escape first, then swap colour emoji for symbols every text font has (no emoji font needed).
    env.filters["icons"] = lambda text: Markup(plain_icons(str(escape(text))))
    return env


def render_html(report: RunReport) -> str:
    """The report as one self-contained HTML page: verdict banner, three inline SVG charts and the tables."""
    banner = {False: "bad"}.get(report.verdict.valid, "ok" if report.verdict.exit_code == 0 else "warn")
    charts = [(Markup(receipts_chart(report)), receipts_caption(report)), (Markup(latency_chart(report)), LATENCY_CAPTION),
              (Markup(timeline_chart(report)), timeline_caption(report))]
    sections = [("Checks", checks_table(report)), ("Faults", faults_table(report)), ("Clocks", clocks_table(report)),
                ("Targets", targets_table(report)),
                ("Metrics", metrics_table(report)), ("History", history_table(report)),
                (payments_heading(report, HTML_PAYMENT_ROWS), payments_table(report, HTML_PAYMENT_ROWS))]
    sections = [(title, table) for title, table in sections if table is not None]
    return _environment().get_template("report.html.j2").render(
        report=report, banner=banner, icon=verdict_icon(report), config_line=config_line(report),
        environment_line=environment_line(report), judged_line=judged_line(report),
        strength_line=strength_line(report), charts=charts,
        sections=sections, failing=_failing_checks(report),
        settings=[("Configuration", _kv_table(report.config)), ("Environment", _kv_table(report.environment))])


def _failing_checks(report: RunReport) -> list[dict[str, Any]]:
    """Each checker that did not pass, with its first violations and its details flattened."""
    failing = []
    for check in report.checks:
        if check.valid is True or not (check.violations or check.details):
            continue
        failing.append({"check": check, "violations": check.violations[:HTML_VIOLATIONS],
                        "more": max(0, len(check.violations) - HTML_VIOLATIONS),
                        "details": [(k, clip(v)) for k, v in flat(check.details)]})
    return failing


def _kv_table(data: dict[str, Any]) -> Table:
    """A nested dict as a two-column table of dotted keys."""
    table = Table(["Key", "Value"])
    for key, value in flat(data or {}):
        table.add([key, value])
    return table
