"""How report values read: numbers, metric names and units, icons, and escaping for Markdown and HTML.

Shared by the report views and ``compare``; every string taken from a report passes through
``md_escape`` or ``esc`` before it reaches a page, because response bodies come from the service
under test.
"""

from __future__ import annotations

import html
import math
import re
from typing import Any

from harness.verdict.result import RunReport

DASH = "—"
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
    "payments_indeterminate": "Indeterminate payments (no delivery acknowledged after the fault)",
    "lost_effects": "Lost side effects (acknowledged, claimed, none made)",
    "faults": "Faults the nemesis did (kills, pauses, cuts, failed downstream calls)",
    "redeliveries": "Redelivered requests",
    "requests": "Requests",
    "receipt_files": "Side effects read back (receipt files, rows, calls, messages)",
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
    "catchable_window_ms": "Narrowest check-then-act window caught with 95% probability",
    "catchable_window_groups": "Duplicate groups with two arrival stamps",
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
        return clip(str(value))
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



def clip(text: str, limit: int = CELL_CHARS) -> str:
    """Shorten text for a table cell."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def ms_text(seconds: float | None) -> str:
    """Seconds as a millisecond figure, or —."""
    return DASH if seconds is None else f"{format_number(seconds * 1000)} ms"


def md_escape(text: Any) -> str:
    """Escape text for a Markdown table cell: no raw HTML, links, code spans or column breaks get through."""
    text = " ".join(str(text).split())
    for char in ("\\", "|", "`"):
        text = text.replace(char, "\\" + char)
    return re.sub(r"<(?=[A-Za-z/!?])", r"\\<", text).replace("](", "]\\(")


def md_code(text: Any) -> str:
    """Text safe inside a single-backtick code span."""
    return " ".join(str(text).replace("`", "'").split())


_HTML_ICONS = {"✅": "✔", "❌": "✘", "⚠️": "⚠", "➖": "–"}


def esc(text: Any) -> str:
    """HTML-escape any value (quotes too)."""
    return html.escape(str(text), quote=True)


def plain_icons(text: str) -> str:
    """Swap colour emoji for symbols every text font has (the page must not depend on an emoji font)."""
    for emoji, symbol in _HTML_ICONS.items():
        text = text.replace(emoji, symbol)
    return text


