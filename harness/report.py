"""Views of a run report: the JSON, a Markdown pull-request comment and one self-contained HTML page.

The JSON (``RunReport.dumps``) is the source; Markdown and HTML are rendered from the same
``RunReport`` with the same tables. The HTML page has no external assets and needs no JavaScript:
its charts are inline SVG drawn by the small ``_``-prefixed functions below. Every string taken
from a report is escaped, because response bodies come from the service under test.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from .redact import redact
from .result import MET, MISSED, NOT_MEASURED, CheckResult, RunReport, TargetResult
from .stats import percentile

DASH = "—"
MD_PAYMENT_ROWS = 30
HTML_PAYMENT_ROWS = 200
TIMELINE_PAYMENTS = 25
EXAMPLE_VIOLATIONS = 3
HTML_VIOLATIONS = 50
CELL_CHARS = 400

OUTCOMES = ("generated", "already_generated", "failed", "not_paid", "error", "other")
OUTCOME_COLORS = {
    "generated": "#2e7d32",
    "already_generated": "#1e88e5",
    "failed": "#ef6c00",
    "not_paid": "#9e9e9e",
    "error": "#c62828",
    "other": "#8e24aa",
}

# Known metrics, in the order the tables show them; unknown keys follow, sorted.
METRIC_LABELS: dict[str, str] = {
    "payments": "Payments",
    "payments_paid": "Paid payments",
    "payments_unpaid": "Unpaid controls",
    "payments_judged": "Judged payments",
    "payments_unjudged": "Unjudged payments (no delivery reached the service)",
    "requests": "Requests",
    "receipt_files": "Receipt files",
    "receipts_per_payment_min": "Receipts per payment (min)",
    "receipts_per_payment_max": "Receipts per payment (max)",
    "receipts_per_payment_mean": "Receipts per payment (mean)",
    "payments_with_duplicates": "Payments with duplicate receipts",
    "missing_receipts": "Paid payments without a receipt",
    "file_conflicts": "File conflicts",
    "errors": "Errors",
    "status_5xx": "5xx responses",
    "transport_errors": "Transport errors",
    "success_rate_pct": "Success rate",
    "duplicate_attempts": "Duplicate attempts",
    "processing_ms_p50": "Processing time p50",
    "processing_ms_p95": "Processing time p95",
    "processing_ms_max": "Processing time max",
    "latency_ms_p50": "Request latency p50",
    "latency_ms_p95": "Request latency p95",
    "latency_ms_max": "Request latency max",
    "receipt_generation_ms_mean": "Receipt generation time (mean)",
    "release_spread_ms": "Release spread",
    "arrival_spread_ms": "Server arrival spread",
    "payment_arrival_spread_ms_max": "Server arrival spread within a payment (max)",
    "service_rss_baseline_mb": "Service RSS baseline",
    "service_peak_rss_mb": "Service peak RSS",
    "service_rss_growth_mb": "Service RSS growth",
    "generations_started": "Receipt generations started",
    "generations_succeeded": "Receipt generations succeeded",
    "generations_failed": "Receipt generations failed",
    "rollbacks": "Rollbacks",
    "claims_won": "Claims won",
    "claims_skipped": "Claims skipped",
}


# ---------------------------------------------------------------------------------------------
# Writing files


def write_report(report: RunReport, directory: Path, stem: str | None = None) -> dict[str, Path]:
    """Write ``<stem>.json``, ``<stem>.md`` and ``<stem>.html`` into directory; return them by format.

    Secrets are masked here, once, on the JSON form every view is rendered from (``redact``).
    """
    report = redacted(report)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    stem = stem or _safe_stem(report.label)
    paths = {"json": directory / f"{stem}.json", "md": directory / f"{stem}.md", "html": directory / f"{stem}.html"}
    paths["json"].write_text(report.dumps() + "\n", encoding="utf-8")
    paths["md"].write_text(render_markdown(report), encoding="utf-8")
    paths["html"].write_text(render_html(report), encoding="utf-8")
    return paths


def redacted(report: RunReport) -> RunReport:
    """The report as its JSON says it, with every secret masked (the one rule in ``harness.redact``)."""
    # Through JSON first, so values that only become text when dumped are searched too.
    return RunReport.from_dict(redact(json.loads(report.dumps())))


def _safe_stem(label: str) -> str:
    """A file-name-safe form of a report label."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip(".-") or "report"


# ---------------------------------------------------------------------------------------------
# Formatting shared by both views (and by compare)


def format_number(value: Any) -> str:
    """A number as people read it: integers whole, floats with a few significant digits."""
    if value is None:
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        size = abs(value)
        text = f"{value:.0f}" if size >= 100 else f"{value:.1f}" if size >= 10 else (
            f"{value:.2f}" if size >= 1 else f"{value:.2g}")
        return text.rstrip("0").rstrip(".") if "." in text and "e" not in text else text
    return str(value)


def metric_label(key: str) -> str:
    """The human name of a metrics key."""
    return METRIC_LABELS.get(key, key.replace("_", " "))


def metric_unit(key: str) -> str:
    """The unit a metrics key carries in its suffix (ms, MB, %), or ''."""
    for suffix, unit in (("_ms", "ms"), ("_mb", "MB"), ("_pct", "%")):
        if key.endswith(suffix) or f"{suffix}_" in key:
            return unit
    return ""


def format_metric(key: str, value: Any, missing: str = "not measured") -> str:
    """A metric's value with its unit; ``missing`` when it was not measured."""
    if value is None:
        return missing
    if not isinstance(value, (int, float)):
        return _clip(str(value))
    unit = metric_unit(key)
    text = format_number(value)
    return f"{text}%" if unit == "%" else f"{text} {unit}".strip()


def metric_keys(*metrics: dict[str, Any]) -> list[str]:
    """Every key of the given metrics dicts: known ones in table order, then the rest sorted."""
    present = {k for m in metrics for k in m}
    return [k for k in METRIC_LABELS if k in present] + sorted(present - set(METRIC_LABELS))


def verdict_icon(report: RunReport) -> str:
    """✅ valid with every target met, ❌ an invariant violated, ⚠️ anything else."""
    if report.verdict.valid is False:
        return "❌"
    return "✅" if report.verdict.valid and report.verdict.exit_code == 0 else "⚠️"


def _check_icon(check: CheckResult) -> str:
    """Status of one checker as an icon plus its word."""
    return {True: "✅ pass", False: "❌ FAIL", None: "⚠️ unknown"}[check.valid]


def _target_icon(target: TargetResult) -> str:
    """Status of one target as an icon plus its word."""
    return {MET: "✅ met", MISSED: "❌ missed", NOT_MEASURED: "➖ not measured"}.get(target.status, target.status)


def _clip(text: str, limit: int = CELL_CHARS) -> str:
    """Shorten text for a table cell."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _ms(seconds: float | None) -> str:
    """Seconds as a millisecond figure, or —."""
    return DASH if seconds is None else f"{format_number(seconds * 1000)} ms"


# ---------------------------------------------------------------------------------------------
# Tables: built once as plain strings, rendered as Markdown or HTML


@dataclass
class _Table:
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)  # one CSS class per row (HTML only)
    note: str = ""

    def add(self, cells: Sequence[Any], css: str = "") -> None:
        """Append a row."""
        self.rows.append([_clip(str(c)) for c in cells])
        self.classes.append(css)


def _checks_table(report: RunReport) -> _Table:
    """Status, violation count and the first violations of each checker."""
    table = _Table(["Status", "Check", "What it checks", "Violations", "First violations"])
    for check in report.checks:
        table.add([_check_icon(check), check.name, check.description, len(check.violations),
                   _violation_examples(check)], {True: "ok", False: "bad", None: "warn"}[check.valid])
    if not report.checks:
        table.note = "No checkers ran."
    return table


def _violation_examples(check: CheckResult, limit: int = EXAMPLE_VIOLATIONS) -> str:
    """The first few violations as concrete text, or why the checker could not tell."""
    if check.valid is None and not check.violations:
        return str(check.details.get("reason") or "could not tell")
    parts = [str(v) for v in check.violations[:limit]]
    if len(check.violations) > limit:
        parts.append(f"… {len(check.violations) - limit} more")
    return "; ".join(parts) or DASH


def _targets_table(report: RunReport) -> _Table:
    """Each documented target: expected, measured with unit, status."""
    table = _Table(["Target", "Expected", "Measured", "Status", "Note"])
    for t in report.targets:
        measured = "not measured" if t.measured is None else f"{format_number(t.measured)} {t.unit}".strip()
        css = {MET: "ok", MISSED: "bad"}.get(t.status, "warn")
        table.add([f"{t.name} — {t.description}" if t.description else t.name, t.expected, measured,
                   _target_icon(t), t.note or ""], css)
    if not report.targets:
        table.note = "No targets were evaluated."
    return table


def _metrics_table(report: RunReport) -> _Table:
    """Every metric with its unit; missing ones read 'not measured'."""
    table = _Table(["Metric", "Value"])
    for key in metric_keys(report.metrics):
        value = report.metrics.get(key)
        table.add([metric_label(key), format_metric(key, value)], "muted" if value is None else "")
    return table


def _history_table(report: RunReport) -> _Table:
    """What the burst did: requests, statuses, outcomes, release and server arrival spreads."""
    events = _events(report)
    statuses = Counter("error" if e.get("status") is None else str(e.get("status")) for e in events)
    outcomes = Counter(_outcome(e) for e in events)
    releases = [e["t_release"] for e in events if isinstance(e.get("t_release"), (int, float))]
    arrivals = [e["server_arrival"] for e in events if isinstance(e.get("server_arrival"), (int, float))]
    rows: dict[str, str] = {
        "requests": str(len(events)),
        "statuses": _counts(statuses),
        "outcomes": _counts(outcomes, OUTCOMES),
        "transport errors": str(sum(1 for e in events if e.get("error"))),
        "release spread (client, last byte)": _ms(max(releases) - min(releases) if releases else None),
        "server arrival spread": _ms(max(arrivals) - min(arrivals) if arrivals else None)
        + ("" if arrivals else " (the target does not report arrivals)"),
        "sync": str(report.history.get("sync", DASH)),
    }
    for key, value in (report.history_summary or {}).items():
        if key not in rows and key.replace("_", " ") not in rows:
            rows[key.replace("_", " ")] = _plain(value, key)
    table = _Table(["History", "Value"])
    for key, value in rows.items():
        table.add([key, value])
    return table


def _plain(value: Any, key: str = "") -> str:
    """Any summary value as short text (dicts as 'k v, k v')."""
    if isinstance(value, dict):
        return ", ".join(f"{k} {_plain(v)}" for k, v in value.items()) or DASH
    if isinstance(value, (list, tuple)):
        return ", ".join(_plain(v) for v in value) or DASH
    return format_metric(key, value, DASH) if key else format_number(value)


def _counts(counter: Counter, order: Iterable[str] = ()) -> str:
    """'200×48, 500×2' — a counter as text, in the given order first."""
    keys = [k for k in order if counter.get(k)] + sorted(k for k in counter if k not in set(order))
    return ", ".join(f"{k}×{counter[k]}" for k in keys) or DASH


def _judged(row: dict[str, Any]) -> bool:
    """Whether the oracle judged this payment: some delivery provably reached the service.

    Reports written before payments could go unjudged have no "judged" key: they judged all.
    """
    return row.get("judged", True) is not False


def _payment_ok(row: dict[str, Any]) -> bool:
    """A paid payment has exactly one receipt; an unpaid control has none."""
    return row.get("receipts") == (1 if row.get("expected") == "paid" else 0)


_UNEXPECTED, _UNJUDGED, _AS_EXPECTED = 0, 1, 2


def _payment_standing(row: dict[str, Any]) -> int:
    """Unexpected receipt count, unjudged (nothing to hold against the service), or as expected."""
    if not _judged(row):
        return _UNJUDGED
    return _AS_EXPECTED if _payment_ok(row) else _UNEXPECTED


def _ordered_payments(report: RunReport) -> list[dict[str, Any]]:
    """Payments with unexpected receipt counts first, then unjudged ones, otherwise in run order."""
    return sorted(report.payments, key=_payment_standing)


def judged_line(report: RunReport) -> str:
    """'3 of 5 payments judged (2 unjudged: no delivery reached the service)'."""
    metrics = report.metrics or {}
    judged, unjudged = metrics.get("payments_judged"), metrics.get("payments_unjudged")
    if not (isinstance(judged, int) and isinstance(unjudged, int)):
        unjudged = sum(1 for row in report.payments if not _judged(row))
        judged = len(report.payments) - unjudged
    text = f"{judged} of {judged + unjudged} payments judged"
    return text + (f" ({unjudged} unjudged: no delivery reached the service)" if unjudged else "")


def _payments_table(report: RunReport, limit: int) -> _Table:
    """One compact row per payment, problems first, capped at limit."""
    table = _Table(["", "Payment", "Judged", "Expected", "Requests", "Outcomes", "Receipts", "Files", "Final state",
                    "Spread ms (release / arrival)", "Processing ms", "Overlap"])
    rows = _ordered_payments(report)
    icons = {_UNEXPECTED: "❌", _UNJUDGED: "➖", _AS_EXPECTED: "✅"}
    css = {_UNEXPECTED: "bad", _UNJUDGED: "unjudged", _AS_EXPECTED: ""}
    for row in rows[:limit]:
        standing = _payment_standing(row)
        table.add([icons[standing], row.get("payment", DASH),
                   "yes" if _judged(row) else "no: unjudged, no delivery reached the service",
                   row.get("expected", DASH), _requests_cell(row),
                   _counts(Counter({k: v for k, v in (row.get("outcomes") or {}).items() if v}), OUTCOMES),
                   format_number(row.get("receipts")), _files_cell(row.get("receipt_files") or []),
                   _state_cell(row.get("state")),
                   f"{format_number(row.get('release_spread_ms'))} / {format_number(row.get('arrival_spread_ms'))}",
                   format_number(row.get("processing_ms")), format_number(row.get("overlapped"))],
                  css[standing])
    if len(rows) > limit:
        table.note = f"… {len(rows) - limit} more payment(s) not shown (see the JSON)."
    return table


def _requests_cell(row: dict[str, Any]) -> str:
    """'5: callback 4, verify 1'."""
    channels = ", ".join(f"{k} {v}" for k, v in (row.get("channels") or {}).items() if v)
    count = format_number(row.get("requests"))
    return f"{count}: {channels}" if channels else count


def _files_cell(files: list[str], limit: int = 3) -> str:
    """The first few receipt file names."""
    shown = ", ".join(str(f) for f in files[:limit])
    return shown + (f" +{len(files) - limit} more" if len(files) > limit else "") if files else DASH


def _state_cell(state: dict[str, Any] | None) -> str:
    """The payment's state read back from the service."""
    if not state:
        return DASH
    flag = state.get("receiptGenerated")
    return f"{state.get('paymentStatus', DASH)}, receiptGenerated={format_number(flag) if flag is not None else DASH}"


def _config_line(report: RunReport) -> str:
    """One line: payments × duplicates, unpaid, channel mix, sync, service mode, target."""
    config = report.config or {}
    plan = config.get("plan") if isinstance(config.get("plan"), dict) else config
    parts = []
    if "payments" in plan:
        parts.append(f"{plan['payments']} payment(s) × {plan.get('duplicates', '?')} duplicate(s)")
    if plan.get("unpaid"):
        parts.append(f"{plan['unpaid']} unpaid control(s)")
    mix = plan.get("channel_mix") or config.get("channel_mix")
    if isinstance(mix, dict):
        parts.append("channels " + ", ".join(f"{k}:{v}" for k, v in mix.items()))
    sync = config.get("sync") or plan.get("sync") or report.history.get("sync")
    if sync:
        parts.append(f"sync {sync}")
    mode = config.get("mode") or config.get("service_mode")
    if mode:
        parts.append(f"service mode {mode}")
    target = config.get("target")
    url = target.get("base_url") if isinstance(target, dict) else target
    if url:
        parts.append(f"target {url}")
    if "seed" in plan:
        parts.append(f"seed {plan['seed']}")
    return " · ".join(str(p) for p in parts) or "configuration not recorded"


def _environment_line(report: RunReport) -> str:
    """One line: python, platform, CPUs, host, harness version."""
    env = report.environment or {}
    names = (("python", "python {}"), ("platform", "{}"), ("cpu_count", "{} CPU(s)"), ("hostname", "host {}"),
             ("harness", "harness {}"), ("harness_version", "harness {}"), ("version", "harness {}"))
    return " · ".join(fmt.format(env[k]) for k, fmt in names if env.get(k) is not None) or "environment not recorded"


def _flat(data: Any, prefix: str = "") -> list[tuple[str, str]]:
    """A nested dict flattened to dotted keys and short text values."""
    if isinstance(data, dict) and data:
        return [pair for k, v in data.items() for pair in _flat(v, f"{prefix}.{k}" if prefix else str(k))]
    return [(prefix, _plain(data))]


# ---------------------------------------------------------------------------------------------
# Markdown


def render_markdown(report: RunReport) -> str:
    """The report as a pull-request comment (GitHub-flavoured Markdown, readable as plain text)."""
    lines = [f"## {verdict_icon(report)} race-harness run `{_md_code(report.label)}` — {_md(report.verdict.summary)}",
             "", f"**Run:** {_md(_config_line(report))}  ", f"**Environment:** {_md(_environment_line(report))}  ",
             f"**Judged:** {_md(judged_line(report))}  ", f"**Exit code:** {report.verdict.exit_code}", ""]
    sections = [("Checks", _checks_table(report)), ("Targets", _targets_table(report)),
                ("Metrics", _metrics_table(report)), ("History", _history_table(report)),
                (_payments_heading(report, MD_PAYMENT_ROWS), _payments_table(report, MD_PAYMENT_ROWS))]
    for title, table in sections:
        lines += [f"### {title}", "", *_md_table(table), ""]
    return "\n".join(lines).rstrip() + "\n"


def _payments_heading(report: RunReport, limit: int) -> str:
    """'Payments (unexpected receipt counts first; 30 of 120 shown)'."""
    total = len(report.payments)
    shown = f"{min(total, limit)} of {total} shown" if total > limit else f"{total}"
    return f"Payments ({shown}; unexpected receipt counts first, then unjudged)"


def _md_table(table: _Table) -> list[str]:
    """A table as Markdown lines, with its note after it."""
    lines = ["| " + " | ".join(_md(h) for h in table.headers) + " |",
             "|" + "|".join("---" for _ in table.headers) + "|"]
    lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in table.rows]
    if not table.rows:
        lines = []
    if table.note:
        lines += ["", f"_{_md(table.note)}_"]
    return lines


def _md(text: Any) -> str:
    """Escape text for a Markdown table cell: no raw HTML, links, code spans or column breaks get through."""
    text = " ".join(str(text).split())
    for char in ("\\", "|", "`"):
        text = text.replace(char, "\\" + char)
    return re.sub(r"<(?=[A-Za-z/!?])", r"\\<", text).replace("](", "]\\(")


def _md_code(text: Any) -> str:
    """Text safe inside a single-backtick code span."""
    return " ".join(str(text).replace("`", "'").split())


# ---------------------------------------------------------------------------------------------
# HTML

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#222;margin:0;background:#fafafa}
main{max-width:1100px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.banner{padding:16px 20px;border-radius:8px;color:#fff;margin:16px 0}
.banner.ok{background:#2e7d32}.banner.bad{background:#c62828}.banner.warn{background:#ef8f00}
.banner p{margin:4px 0 0}.meta{color:#555;font-size:13px;margin:2px 0}
table{border-collapse:collapse;width:100%;background:#fff;font-size:13px;margin:4px 0}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f0f0f0}tr.bad td{background:#fdecea}tr.warn td{background:#fff6e0}tr.muted td{color:#888}
tr.unjudged td{background:#e8eef3;color:#455a64}
figure{margin:12px 0 20px;background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px}
figcaption{font-size:13px;color:#444;margin:4px 4px 0}svg{width:100%;height:auto;display:block}
.note{color:#666;font-style:italic}details{margin:6px 0}summary{cursor:pointer}
code{font-size:12px}.scroll{overflow-x:auto}
"""


def render_html(report: RunReport) -> str:
    """The report as one self-contained HTML page: verdict banner, the tables and three SVG charts."""
    e = _esc
    css = {False: "bad"}.get(report.verdict.valid, "ok" if report.verdict.exit_code == 0 else "warn")
    body = [
        f"<h1>race-harness run <code>{e(report.label)}</code></h1>",
        f'<p class="meta">{e(_config_line(report))}</p><p class="meta">{e(_environment_line(report))}</p>',
        f'<div class="banner {css}"><strong>{_icons(verdict_icon(report))} {e(report.verdict.summary)}</strong>'
        f'<p>exit code {report.verdict.exit_code} · <span class="judged">{e(judged_line(report))}</span></p></div>',
        "<h2>Charts</h2>",
        _figure(_receipts_chart(report), "Receipt files per payment. A paid payment should have exactly one; "
                "unpaid controls none; an unjudged payment (no delivery reached the service) is a pale column."),
        _figure(_latency_chart(report), "Request latency (response read minus final byte sent), stacked by the "
                "outcome the service reported."),
        _figure(_timeline_chart(report), _timeline_caption(report)),
        "<h2>Checks</h2>", _html_table(_checks_table(report)), _violation_details(report),
        "<h2>Targets</h2>", _html_table(_targets_table(report)),
        "<h2>Metrics</h2>", _html_table(_metrics_table(report)),
        "<h2>History</h2>", _html_table(_history_table(report)),
        f"<h2>{e(_payments_heading(report, HTML_PAYMENT_ROWS))}</h2>",
        _html_table(_payments_table(report, HTML_PAYMENT_ROWS)),
        "<h2>Configuration and environment</h2>", _kv_details("Configuration", report.config),
        _kv_details("Environment", report.environment),
    ]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_icons(verdict_icon(report))} race-harness {e(report.label)}</title>"
            f"<style>{_CSS}</style></head><body><main>\n" + "\n".join(body) + "\n</main></body></html>\n")


_HTML_ICONS = {"✅": "✔", "❌": "✘", "⚠️": "⚠", "➖": "–"}


def _esc(text: Any) -> str:
    """HTML-escape any value (quotes too)."""
    return html.escape(str(text), quote=True)


def _icons(text: str) -> str:
    """Swap colour emoji for symbols every text font has (the page must not depend on an emoji font)."""
    for emoji, symbol in _HTML_ICONS.items():
        text = text.replace(emoji, symbol)
    return text


def _html_table(table: _Table) -> str:
    """A table as HTML, each cell escaped, with its note after it."""
    head = "".join(f"<th>{_esc(h)}</th>" for h in table.headers)
    rows = "".join(f'<tr class="{_esc(css)}">' + "".join(f"<td>{_icons(_esc(c))}</td>" for c in row) + "</tr>"
                   for row, css in zip(table.rows, table.classes))
    out = (f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>'
           if table.rows else "")
    return out + (f'<p class="note">{_esc(table.note)}</p>' if table.note else "")


def _violation_details(report: RunReport) -> str:
    """A collapsible list of violations for each checker that did not pass."""
    parts = []
    for check in report.checks:
        if check.valid is True or not (check.violations or check.details):
            continue
        items = "".join(f"<li>{_esc(v)}" + (f" <span class=\"note\">events {_esc(v.events)}</span>" if v.events else "")
                        + "</li>" for v in check.violations[:HTML_VIOLATIONS])
        more = len(check.violations) - HTML_VIOLATIONS
        items += f"<li>… {more} more</li>" if more > 0 else ""
        details = "".join(f"<li><code>{_esc(k)}</code>: {_esc(_clip(v))}</li>" for k, v in _flat(check.details))
        parts.append(f"<details><summary>{_esc(check.name)}: {_esc(check.status)}, {len(check.violations)} "
                     f"violation(s)</summary><ul>{items}</ul>" + (f"<ul>{details}</ul>" if details else "")
                     + "</details>")
    return "".join(parts)


def _kv_details(title: str, data: dict[str, Any]) -> str:
    """A nested dict as a collapsible two-column table."""
    table = _Table(["Key", "Value"])
    for key, value in _flat(data or {}):
        table.add([key, value])
    return f"<details><summary>{_esc(title)}</summary>{_html_table(table)}</details>"


def _figure(svg: str, caption: str) -> str:
    """An SVG chart with its caption."""
    return f"<figure>{svg}<figcaption>{_esc(caption)}</figcaption></figure>"


# ---------------------------------------------------------------------------------------------
# History access


def _events(report: RunReport) -> list[dict[str, Any]]:
    """The history's events as dicts (an empty list when there is no history)."""
    events = (report.history or {}).get("events") or []
    return [e for e in events if isinstance(e, dict)]


def _outcome(event: dict[str, Any]) -> str:
    """The event's category for colouring: the outcome the target's description read from the answer.

    The body is never looked into here: which field names the outcome is the target's business
    (``Target.outcome_field``), already applied when the history was judged.
    """
    status = event.get("status")
    if event.get("error") or status is None:
        return "error"
    outcome = event.get("outcome")
    if outcome in OUTCOMES:
        return str(outcome)
    return "error" if isinstance(status, int) and status >= 500 else "other"


def _arrival(event: dict[str, Any], origin_wall: Any) -> float | None:
    """The service's arrival stamp on the history clock (seconds), mapped by wall time, or None."""
    arrival = event.get("server_arrival")
    if not isinstance(arrival, (int, float)) or not isinstance(origin_wall, (int, float)) or not origin_wall:
        return None
    return arrival - origin_wall


def _server_duration(event: dict[str, Any]) -> float | None:
    """The service's own processing time for this request (Server-Timing), in seconds, or None."""
    value = (event.get("meta") or {}).get("server_duration")
    return float(value) if isinstance(value, (int, float)) and value >= 0 else None


def _latency_ms(event: dict[str, Any]) -> float | None:
    """t_response - t_release in ms, or None when either is missing."""
    release, response = event.get("t_release"), event.get("t_response")
    if not isinstance(release, (int, float)) or not isinstance(response, (int, float)):
        return None
    return (response - release) * 1000


# ---------------------------------------------------------------------------------------------
# SVG primitives


@dataclass
class _Frame:
    """A plot area inside an SVG and the data ranges it maps."""

    width: float
    height: float
    left: float
    right: float
    top: float
    bottom: float
    x0: float = 0.0
    x1: float = 1.0
    y0: float = 0.0
    y1: float = 1.0

    @property
    def plot_w(self) -> float:
        return self.width - self.left - self.right

    @property
    def plot_h(self) -> float:
        return self.height - self.top - self.bottom

    def x(self, value: float) -> float:
        """Data x to pixels."""
        return self.left + (value - self.x0) / ((self.x1 - self.x0) or 1) * self.plot_w

    def y(self, value: float) -> float:
        """Data y to pixels (up is larger)."""
        return self.top + self.plot_h - (value - self.y0) / ((self.y1 - self.y0) or 1) * self.plot_h


def _nice_step(span: float, count: int) -> float:
    """A round step (1, 2, 2.5, 5 × 10^k) that cuts span into about count pieces."""
    raw = span / max(count, 1) if span > 0 else 1.0
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if raw <= m * magnitude * 1.0000001)


def _ticks(low: float, high: float, count: int = 6) -> list[float]:
    """Round tick values covering [low, high]."""
    step = _nice_step(high - low, count)
    start = math.floor(low / step + 1e-9) * step
    ticks, value = [], start
    while value <= high + step * 1e-6:
        if value >= low - step * 1e-6:
            ticks.append(round(value, 10))
        value += step
    return ticks


def _nice_top(high: float, count: int = 6) -> float:
    """The smallest round tick value at or above high."""
    step = _nice_step(high, count)
    return max(step, math.ceil(high / step - 1e-9) * step)


def _svg(width: float, height: float, label: str, parts: list[str]) -> str:
    """An inline SVG element (no xmlns needed inside HTML)."""
    return (f'<svg class="chart" viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" height="{height:.0f}" '
            f'role="img" aria-label="{_esc(label)}" font-family="system-ui,sans-serif" font-size="11">'
            + "".join(parts) + "</svg>")


def _text(x: float, y: float, text: Any, anchor: str = "middle", extra: str = "") -> str:
    """An escaped SVG text element."""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="#333" {extra}>{_esc(text)}</text>'


def _axes(frame: _Frame, xticks: list[tuple[float, str]], yticks: list[tuple[float, str]],
          xlabel: str, ylabel: str) -> list[str]:
    """Grid lines, tick labels, axis lines and axis titles."""
    f, parts = frame, []
    for value, label in yticks:
        y = f.y(value)
        parts.append(f'<line x1="{f.left:.1f}" y1="{y:.1f}" x2="{f.left + f.plot_w:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        parts.append(_text(f.left - 6, y + 4, label, "end"))
    base = f.top + f.plot_h
    for value, label in xticks:
        x = f.x(value)
        parts.append(f'<line x1="{x:.1f}" y1="{base:.1f}" x2="{x:.1f}" y2="{base + 4:.1f}" stroke="#666"/>')
        parts.append(_text(x, base + 16, label))
    parts.append(f'<line x1="{f.left:.1f}" y1="{base:.1f}" x2="{f.left + f.plot_w:.1f}" y2="{base:.1f}" '
                 'stroke="#666"/>')
    parts.append(f'<line x1="{f.left:.1f}" y1="{f.top:.1f}" x2="{f.left:.1f}" y2="{base:.1f}" stroke="#666"/>')
    parts.append(_text(f.left + f.plot_w / 2, f.height - 6, xlabel, extra='font-size="12"'))
    cy = f.top + f.plot_h / 2
    parts.append(_text(14, cy, ylabel, extra=f'font-size="12" transform="rotate(-90 14 {cy:.1f})"'))
    return parts


def _legend(items: list[tuple[str, str, str]], x: float, y: float, width: float) -> list[str]:
    """A one-or-more-line legend of (kind 'box'|'pale'|'tick'|'line'|'dash', colour, label) items."""
    parts, cx, cy = [], x, y
    for kind, color, label in items:
        span = 22 + 6.2 * len(label) + 16
        if cx + span > x + width and cx > x:
            cx, cy = x, cy + 16
        if kind in ("box", "pale"):
            pale = ' fill-opacity="0.35"' if kind == "pale" else ""
            parts.append(f'<rect class="legend-swatch" x="{cx:.1f}" y="{cy - 9:.1f}" width="12" height="10" '
                         f'fill="{color}"{pale}/>')
        elif kind == "tick":
            parts.append(f'<line x1="{cx + 6:.1f}" y1="{cy - 10:.1f}" x2="{cx + 6:.1f}" y2="{cy + 1:.1f}" '
                         f'stroke="{color}" stroke-width="1.5"/>')
        else:
            dash = ' stroke-dasharray="4 3"' if kind == "dash" else ""
            parts.append(f'<line x1="{cx:.1f}" y1="{cy - 4:.1f}" x2="{cx + 14:.1f}" y2="{cy - 4:.1f}" '
                         f'stroke="{color}" stroke-width="2"{dash}/>')
        parts.append(_text(cx + 18, cy, label, "start"))
        cx += span
    return parts


def _empty(frame: _Frame, message: str) -> str:
    """A centred 'no data' message inside a frame."""
    return _text(frame.left + frame.plot_w / 2, frame.top + frame.plot_h / 2, message, extra='fill="#888"')


# ---------------------------------------------------------------------------------------------
# Chart 1: receipts per payment

_RECEIPT_COLORS = {"one": "#43a047", "many": "#d32f2f", "none": "#ff9800", "control": "#bdbdbd",
                   "control_receipt": "#8e24aa", "unjudged": "#546e7a"}


def _receipt_kind(row: dict[str, Any]) -> str:
    """Which colour a payment's bar gets."""
    count = row.get("receipts") or 0
    if not _judged(row):
        return "unjudged"
    if row.get("expected") != "paid":
        return "control_receipt" if count else "control"
    return "many" if count > 1 else ("one" if count == 1 else "none")


def _receipts_chart(report: RunReport) -> str:
    """Bars of receipt files per payment, a dashed line at 1, duplicates and missing ones highlighted."""
    rows = report.payments
    counts = [int(r.get("receipts") or 0) for r in rows]
    frame = _Frame(960, 330, 56, 20, 44, 78, 0, max(len(rows), 1), 0, max(2, max(counts, default=0)))
    step = max(1, int(_nice_step(frame.y1, 5)))
    yticks = [(v, str(v)) for v in range(0, int(frame.y1) + 1, step)]
    every = max(1, math.ceil(len(rows) / 40))
    parts = _axes(frame, [], yticks, f"payment ({len(rows)})", "receipt files")
    base = frame.y(0)
    for i, (row, count) in enumerate(zip(rows, counts)):
        kind = _receipt_kind(row)
        x, w = frame.x(i + 0.12), max(frame.x(i + 0.88) - frame.x(i + 0.12), 0.8)
        top = frame.y(count) if count else base - 3
        pale = ""
        if kind == "unjudged":  # a pale column up to the expected line: nothing is known, not "zero"
            top, pale = frame.y(max(count, 1)), ' fill-opacity="0.45" stroke="#546e7a" stroke-dasharray="3 2"'
        tip = f"{row.get('payment')}: {count} receipt file(s), expected {row.get('expected')}" + (
            "; unjudged: no delivery reached the service" if kind == "unjudged" else "")
        parts.append(f'<rect class="bar {kind}" x="{x:.1f}" y="{top:.1f}" width="{w:.1f}" height="{base - top:.1f}" '
                     f'fill="{_RECEIPT_COLORS[kind]}"{pale}><title>{_esc(tip)}</title></rect>')
        if i % every == 0:
            cx = frame.x(i + 0.5)
            label = _esc(_clip(str(row.get("payment", i)), 14)) if len(rows) <= 40 else str(i + 1)
            parts.append(f'<text x="{cx:.1f}" y="{base + 12:.1f}" text-anchor="end" fill="#333" font-size="10" '
                         f'transform="rotate(-40 {cx:.1f} {base + 12:.1f})">{label}</text>')
    if not rows:
        parts.append(_empty(frame, "no payments in this report"))
    y1 = frame.y(1)
    parts.append(f'<line class="expected" x1="{frame.left:.1f}" y1="{y1:.1f}" x2="{frame.left + frame.plot_w:.1f}" '
                 f'y2="{y1:.1f}" stroke="#000" stroke-width="1.5" stroke-dasharray="6 4"/>')
    parts += _legend([("box", _RECEIPT_COLORS["one"], "exactly one"),
                      ("box", _RECEIPT_COLORS["many"], "duplicates (>1)"),
                      ("box", _RECEIPT_COLORS["none"], "missing (0, paid)"),
                      ("box", _RECEIPT_COLORS["control"], "unpaid control"),
                      ("box", _RECEIPT_COLORS["control_receipt"], "receipt for unpaid"),
                      *([("box", _RECEIPT_COLORS["unjudged"], "unjudged (no delivery reached it)")]
                        if any(not _judged(r) for r in rows) else []),
                      ("dash", "#000", "expected = 1")], frame.left, 18, frame.plot_w)
    return _svg(frame.width, frame.height, "receipt files per payment", parts)


# ---------------------------------------------------------------------------------------------
# Chart 2: latency histogram


def _latency_chart(report: RunReport) -> str:
    """A histogram of request latency in ms, stacked by outcome, with p50 and p95 marked."""
    samples = [(ms, _outcome(e)) for e in _events(report) if (ms := _latency_ms(e)) is not None]
    frame = _Frame(960, 300, 56, 20, 44, 44)
    if not samples:
        parts = _axes(frame, [], [], "latency (ms)", "requests") + [_empty(frame, "no timed requests")]
        return _svg(frame.width, frame.height, "request latency distribution", parts)
    low, high = min(0.0, min(s for s, _ in samples)), max(s for s, _ in samples)
    width = _nice_step(high - low, 24)
    bins = max(1, math.ceil((high - low) / width + 1e-9))
    counts = [Counter() for _ in range(bins)]
    for ms, outcome in samples:
        counts[min(bins - 1, int((ms - low) // width))][outcome] += 1
    peak = max(sum(c.values()) for c in counts)
    frame.x0, frame.x1, frame.y0 = low, low + bins * width, 0
    frame.y1 = _nice_top(peak, 5)
    yticks = [(v, format_number(v)) for v in _ticks(0, frame.y1, 5) if float(v).is_integer()]
    xticks = [(v, format_number(v)) for v in _ticks(frame.x0, frame.x1, 8)]
    parts = _axes(frame, xticks, yticks, "latency: response read − final byte sent (ms)", "requests")
    for i, counter in enumerate(counts):
        parts += _stack(frame, low + i * width, low + (i + 1) * width, counter)
    values = [s for s, _ in samples]
    for q, dash in ((50, "5 3"), (95, "2 3")):
        value = percentile(values, q)
        x = frame.x(value)
        parts.append(f'<line x1="{x:.1f}" y1="{frame.top:.1f}" x2="{x:.1f}" y2="{frame.top + frame.plot_h:.1f}" '
                     f'stroke="#000" stroke-dasharray="{dash}"/>')
        near_right = x > frame.left + frame.plot_w - 100
        parts.append(_text(x - 4 if near_right else x + 4, frame.top + 12 + (q == 95) * 14,
                           f"p{q} {format_number(value)} ms", "end" if near_right else "start",
                           'stroke="#fff" stroke-width="3" paint-order="stroke"'))
    present = [o for o in OUTCOMES if any(c.get(o) for c in counts)]
    parts += _legend([("box", OUTCOME_COLORS[o], o) for o in present], frame.left, 18, frame.plot_w)
    return _svg(frame.width, frame.height, "request latency distribution", parts)


def _stack(frame: _Frame, left: float, right: float, counter: Counter) -> list[str]:
    """One histogram bin as rectangles stacked by outcome."""
    parts, below = [], 0
    x, w = frame.x(left) + 0.5, max(frame.x(right) - frame.x(left) - 1, 0.8)
    for outcome in OUTCOMES:
        n = counter.get(outcome, 0)
        if not n:
            continue
        top, bottom = frame.y(below + n), frame.y(below)
        tip = f"{format_number(left)}–{format_number(right)} ms: {n} {outcome}"
        parts.append(f'<rect class="hist" data-outcome="{outcome}" x="{x:.1f}" y="{top:.1f}" width="{w:.1f}" height="{bottom - top:.1f}" '
                     f'fill="{OUTCOME_COLORS[outcome]}"><title>{_esc(tip)}</title></rect>')
        below += n
    return parts


# ---------------------------------------------------------------------------------------------
# Chart 3: per-payment timeline


def _timeline_payments(report: RunReport) -> tuple[list[tuple[str, list[dict[str, Any]]]], int]:
    """The payments the timeline shows (problems first, capped) with their events, and how many exist."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for event in _events(report):
        if event.get("payment") is not None:
            grouped.setdefault(str(event["payment"]), []).append(event)
    order = [str(r.get("payment")) for r in _ordered_payments(report) if str(r.get("payment")) in grouped]
    order += [p for p in grouped if p not in set(order)]
    return [(p, grouped[p]) for p in order[:TIMELINE_PAYMENTS]], len(order)


def _timeline_caption(report: RunReport) -> str:
    """What the timeline shows, on which clock each mark is, and what it leaves out."""
    shown, total = _timeline_payments(report)
    origin = (report.history or {}).get("origin_wall")
    events = [e for _, evs in shown for e in evs]
    stamped = any(_arrival(e, origin) is not None for e in events)
    timed = any(_arrival(e, origin) is not None and _server_duration(e) is not None for e in events)
    text = ("Per-payment timeline, coloured by the outcome the service reported. Pale bars are the client's view "
            "on the harness clock: final byte sent to response read; a request sent before the winner finished "
            "may still have reached the service after it.")
    if stamped:
        text += (" Black ticks are the service's own arrival stamps, on the service's clock mapped to the harness "
                 "clock by wall time (the two clocks may differ by their offset).")
    if timed:
        text += " Solid bars are the service's processing (arrival to arrival + Server-Timing duration)."
    text += (" The black line marks when the first 'generated' request finished: "
             + ("on the service's clock (arrival + duration) where the service reports both, else "
                if timed else "") + "its response read on the harness clock.")
    if not stamped:
        text += " The target reports no arrival stamps, so only the client's view is drawn."
    return text + (f" Showing {len(shown)} of {total} payments (unexpected receipt counts first)."
                   if total > len(shown) else "")


def _timeline_chart(report: RunReport) -> str:
    """One row per payment; each request a client bar (send→read), its arrival tick and service bar."""
    rows, _ = _timeline_payments(report)
    origin = (report.history or {}).get("origin_wall")
    timed = [e for _, events in rows for e in events if isinstance(e.get("t_release"), (int, float))]
    lanes = sum(len(events) for _, events in rows)
    lane = max(2.0, min(9.0, 720 / max(lanes, 1)))
    height = 44 + 48 + sum(len(ev) * lane + 8 for _, ev in rows) if rows else 200
    frame = _Frame(960, height, 170, 20, 44, 48)
    if not timed:
        parts = _axes(frame, [], [], "ms since the first final byte", "") + [_empty(frame, "no timed requests")]
        return _svg(frame.width, frame.height, "per-payment request timeline", parts)
    t0 = min(e["t_release"] for e in timed)
    ends = [t for e in timed for t in (e.get("t_response"), _service_end(e, origin)) if isinstance(t, (int, float))]
    end = max(max(ends + [e["t_release"] for e in timed]) - t0, 1e-3) * 1000
    start = min([0.0] + [(a - t0) * 1000 for e in timed if (a := _arrival(e, origin)) is not None])
    frame.x0, frame.x1 = (-_nice_top(-start * 1.03, 8) if start < 0 else 0), _nice_top(end * 1.03, 8)
    parts = _axes(frame, [(v, format_number(v)) for v in _ticks(frame.x0, frame.x1, 8)], [],
                  "ms since the first final byte (harness clock; service marks mapped by wall time)", "")
    y = frame.top
    for index, (payment, events) in enumerate(rows):
        parts += _timeline_row(frame, payment, events, t0, origin, y, lane, index)
        y += len(events) * lane + 8
    present = [o for o in OUTCOMES if any(_outcome(e) == o for e in timed)]
    items = [("box", OUTCOME_COLORS[o], o) for o in present]
    items.append(("pale", "#777", "client: sent → read (harness clock)"))
    if any(_arrival(e, origin) is not None for e in timed):
        items.append(("tick", "#000", "arrival stamp (service clock)"))
    if any(_service_end(e, origin) is not None for e in timed):
        items.append(("box", "#777", "service: arrival → + Server-Timing (service clock)"))
    items.append(("line", "#000", "first 'generated' request finished"))
    parts += _legend(items, frame.left, 18, frame.plot_w)
    return _svg(frame.width, frame.height, "per-payment request timeline", parts)


def _service_end(event: dict[str, Any], origin: Any) -> float | None:
    """When the service says it finished this request (history clock), or None."""
    arrival, duration = _arrival(event, origin), _server_duration(event)
    return None if arrival is None or duration is None else arrival + duration


def _timeline_row(frame: _Frame, payment: str, events: list[dict[str, Any]], t0: float, origin: Any, y: float,
                  lane: float, index: int) -> list[str]:
    """One payment's band: background, label, per request its client bar, arrival tick and service bar,
    and the winner's finish line."""
    height = len(events) * lane + 8
    right = frame.left + frame.plot_w
    parts = [f'<rect class="tl-row" x="{frame.left:.1f}" y="{y:.1f}" width="{frame.plot_w:.1f}" height="{height:.1f}" '
             f'fill="{"#f5f5f5" if index % 2 else "#fff"}"/>',
             _text(frame.left - 8, y + height / 2 + 4, _clip(payment, 22), "end")]
    ordered = sorted(events, key=lambda e: (e.get("t_release") is None, e.get("t_release") or 0, e.get("index") or 0))
    bar_h = max(lane - 1, 1.5)
    for lane_no, event in enumerate(ordered):
        if not isinstance(event.get("t_release"), (int, float)):
            continue
        x = frame.x((event["t_release"] - t0) * 1000)
        response = event.get("t_response")
        x2 = frame.x((response - t0) * 1000) if isinstance(response, (int, float)) else x + 3
        top = y + 4 + lane_no * lane
        outcome = _outcome(event)
        color = OUTCOME_COLORS[outcome]
        parts.append(f'<rect class="tl-bar" data-outcome="{outcome}" x="{x:.1f}" y="{top:.1f}" '
                     f'width="{max(x2 - x, 1.5):.1f}" height="{bar_h:.1f}" fill="{color}" fill-opacity="0.35">'
                     f"<title>{_esc(_event_tip(event, outcome))}</title></rect>")
        arrival, finish = _arrival(event, origin), _service_end(event, origin)
        if finish is not None:
            xa, xf = frame.x((arrival - t0) * 1000), frame.x((finish - t0) * 1000)
            parts.append(f'<rect class="tl-service" data-outcome="{outcome}" x="{xa:.1f}" y="{top + bar_h * 0.2:.1f}" '
                         f'width="{max(xf - xa, 1.5):.1f}" height="{max(bar_h * 0.6, 1):.1f}" fill="{color}"/>')
        if arrival is not None:
            xa = frame.x((arrival - t0) * 1000)
            parts.append(f'<line class="tl-arrival" x1="{xa:.1f}" y1="{top:.1f}" x2="{xa:.1f}" y2="{top + bar_h:.1f}" '
                         f'stroke="#000" stroke-width="1.5"/>')
    finishes = [t for e in events if _outcome(e) == "generated"
                for t in [_service_end(e, origin) if _service_end(e, origin) is not None else e.get("t_response")]
                if isinstance(t, (int, float))]
    if finishes:
        x = min(frame.x((min(finishes) - t0) * 1000), right)
        parts.append(f'<line class="tl-winner" x1="{x:.1f}" y1="{y + 1:.1f}" x2="{x:.1f}" y2="{y + height - 1:.1f}" '
                     f'stroke="#000" stroke-width="1.5"/>')
    return parts


def _event_tip(event: dict[str, Any], outcome: str) -> str:
    """Hover text for one request bar."""
    latency = _latency_ms(event)
    status = event.get("status") if event.get("status") is not None else "no response"
    tip = (f"#{event.get('index')} {event.get('payment')} via {event.get('channel') or '?'} "
           f"(connection {event.get('connection')}): {status} {outcome}")
    tip += f", {format_number(latency)} ms" if latency is not None else ""
    return tip + (f", error: {_clip(event['error'], 120)}" if event.get("error") else "")
