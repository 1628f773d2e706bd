"""The HTML report's three charts, drawn with matplotlib: receipts per payment, latency, per-payment timeline.

Every mark a reader (or a test) may look for carries an id (matplotlib's gid), named
``<chart>-<mark>-<category>-<n>``, e.g. ``receipts-bar-unjudged-2`` or ``timeline-client-generated-7``;
a side effect's mark is ``timeline-effect-<kind>-<n>``, its kind made id-safe (``receipt e-mail`` ->
``receipt_e_mail``).
"""

from __future__ import annotations

import math
from typing import Any

from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from harness.report.events import events_of, is_judged, latency_ms, outcome_of
from harness.report.format import OUTCOME_COLORS, OUTCOMES, clip, format_number
from harness.verdict.result import RunReport
from harness.stats import percentile
from harness.report.svg import draw
from harness.report.chart_parts import WIDTH, empty, legend
from harness.report.timeline import TIMELINE_PAYMENTS, timeline_caption, timeline_chart, timeline_payments

__all__ = ["TIMELINE_PAYMENTS", "bar_count", "effect_kinds", "latency_chart", "receipt_kind", "receipts_caption",
           "receipts_chart", "timeline_caption", "timeline_chart", "timeline_payments"]

# ---------------------------------------------------------------------------------------------
# Chart 1: receipts per payment

RECEIPT_COLORS = {"one": "#43a047", "many": "#d32f2f", "none": "#ff9800", "control": "#bdbdbd",
                  "control_receipt": "#8e24aa", "unjudged": "#546e7a"}
RECEIPT_LABELS = {"one": "exactly one", "many": "duplicates (>1)", "none": "missing (0, paid)",
                  "control": "unpaid control", "control_receipt": "receipt for unpaid",
                  "unjudged": "unjudged (no delivery reached it)"}
_LABELLED_BARS = 40  # more bars than this get numbers, not payment ids, under them


def _per_kind(row: dict[str, Any]) -> dict[str, int]:
    """A payment's side effects counted per kind (one kind, "receipt", for services that write only files)."""
    effects = row.get("effects")
    return {k: int(v or 0) for k, v in effects.items()} if effects else {"receipt": int(row.get("receipts") or 0)}


def bar_count(row: dict[str, Any]) -> int:
    """The bar's height: the most side effects of any one kind (exactly-once holds per kind)."""
    return max(_per_kind(row).values(), default=0)


def receipt_kind(row: dict[str, Any]) -> str:
    """Which category (and colour) a payment's bar gets: duplicates or a missing effect of any kind."""
    counts = list(_per_kind(row).values()) or [0]
    if not is_judged(row):
        return "unjudged"
    if row.get("expected") != "paid":
        return "control_receipt" if any(counts) else "control"
    return "many" if max(counts) > 1 else ("none" if min(counts) == 0 else "one")


def effect_kinds(report: RunReport) -> list[str]:
    """Every kind of side effect the report's payments count (``["receipt"]`` for files alone)."""
    return sorted({k for row in report.payments for k in _per_kind(row)})


def receipts_caption(report: RunReport) -> str:
    """What the bars count: receipt files, or for several kinds of side effect the most of any one kind."""
    kinds = effect_kinds(report)
    if len(kinds) > 1:
        text = (f"Side effects per payment, by kind ({', '.join(kinds)}): a bar is the most of any one kind, and "
                "each kind should come exactly once for a paid payment (its tooltip counts each); unpaid controls "
                "none")
    else:
        what = "Receipt files" if kinds in ([], ["receipt"]) else f"Side effects ({kinds[0]})"
        text = f"{what} per payment. A paid payment should have exactly one; unpaid controls none"
    return text + "; an unjudged payment (no delivery reached the service) is a pale column."


def receipts_chart(report: RunReport) -> str:
    """Bars of side effects per payment (the most of one kind), a dashed line at 1, duplicates and missing ones highlighted."""
    return draw("receipts", "side effects per payment", (WIDTH, 3.6), lambda fig: _draw_receipts(fig, report))


def _draw_receipts(figure: Figure, report: RunReport) -> dict[str, str]:
    rows, tips = report.payments, {}
    ax = figure.add_subplot()
    ax.set_xlabel(f"payment ({len(rows)})")
    several = any(len(_per_kind(r)) > 1 for r in rows)
    ax.set_ylabel("side effects of one kind (most)" if several else "receipt files")
    counts = [bar_count(r) for r in rows]
    top = max(2, max(counts, default=0))
    kinds = [receipt_kind(r) for r in rows]
    # An unjudged payment gets a pale column up to the expected line: nothing is known, not "zero".
    # A zero count gets a stub so its colour (missing, control) still shows.
    heights = [max(c, 1) if k == "unjudged" else (c or top * 0.02) for c, k in zip(counts, kinds)]
    bars = ax.bar(range(len(rows)), heights, width=0.76, color=[RECEIPT_COLORS[k] for k in kinds])
    for i, (bar, row, count, kind) in enumerate(zip(bars, rows, counts, kinds)):
        bar.set_gid(f"receipts-bar-{kind}-{i}")
        if kind == "unjudged":
            bar.set(facecolor=to_rgba(RECEIPT_COLORS[kind], 0.45), edgecolor=RECEIPT_COLORS[kind], linestyle="--")
        what = (", ".join(f"{n} {k}" for k, n in sorted(_per_kind(row).items())) if several
                else f"{count} receipt file(s)")
        tips[bar.get_gid()] = f"{row.get('payment')}: {what}, expected {row.get('expected')}" + (
            "; unjudged: no delivery reached the service" if kind == "unjudged" else "")
    ax.axhline(1, color="#000", linewidth=1.2, linestyle=(0, (6, 4)), gid="receipts-expected")
    ax.set_ylim(0, top * 1.05)
    ax.set_xlim(-0.6, max(len(rows), 1) - 0.4)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if not rows:
        empty(ax, "no payments in this report")
    elif len(rows) <= _LABELLED_BARS:
        ax.set_xticks(range(len(rows)), [clip(str(r.get("payment", i)), 14) for i, r in enumerate(rows)],
                      rotation=35, ha="right", rotation_mode="anchor", fontsize=8)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=20, integer=True))
        ax.xaxis.set_major_formatter(lambda value, _: str(int(value) + 1))
    present = [k for k in RECEIPT_COLORS if k in kinds]
    legend(figure, "receipts", [(k, Patch(color=RECEIPT_COLORS[k], label=RECEIPT_LABELS[k])) for k in present]
            + [("expected", Line2D([], [], color="#000", linestyle=(0, (6, 4)), label="expected = 1"))])
    return tips


# ---------------------------------------------------------------------------------------------
# Chart 2: latency histogram


def latency_chart(report: RunReport) -> str:
    """A histogram of request latency in ms, stacked by outcome, with p50 and p95 marked."""
    return draw("latency", "request latency distribution", (WIDTH, 3.2), lambda fig: _draw_latency(fig, report))


def _draw_latency(figure: Figure, report: RunReport) -> dict[str, str]:
    samples = [(ms, outcome_of(e)) for e in events_of(report) if (ms := latency_ms(e)) is not None]
    ax, tips = figure.add_subplot(), {}
    ax.set_xlabel("latency: response read − final byte sent (ms)")
    ax.set_ylabel("requests")
    if not samples:
        empty(ax, "no timed requests")
        return tips
    values = [ms for ms, _ in samples]
    low, high = min(0.0, min(values)), max(values)
    ticks = MaxNLocator(nbins=24).tick_values(low, high)
    step = float(ticks[1] - ticks[0])  # a round bin width
    first = math.floor(low / step)
    bins = max(math.ceil(high / step) - first, 1)  # cover every sample, float noise at the top edge included
    edges = [(first + n) * step for n in range(bins + 1)]
    below, entries = [0] * bins, []
    for outcome in OUTCOMES:
        counts = [0] * bins
        for ms in [ms for ms, o in samples if o == outcome]:
            counts[min(max(math.floor(ms / step) - first, 0), bins - 1)] += 1
        if not any(counts):
            continue
        bars = ax.bar(edges[:-1], counts, width=step * 0.92, bottom=below, align="edge", color=OUTCOME_COLORS[outcome])
        for n, (bar, count) in enumerate(zip(bars, counts)):
            if count:
                bar.set_gid(f"latency-bar-{outcome}-{n}")
                tips[bar.get_gid()] = (f"{format_number(edges[n])}–{format_number(edges[n + 1])} ms: "
                                       f"{count} {outcome}")
        below = [b + c for b, c in zip(below, counts)]
        entries.append((outcome, Patch(color=OUTCOME_COLORS[outcome], label=outcome)))
    for q, dash in ((50, (0, (5, 3))), (95, (0, (1.5, 2.5)))):
        value = percentile(values, q)
        line = ax.axvline(value, color="#000", linestyle=dash, linewidth=1.2, gid=f"latency-p{q}",
                          label=f"p{q} {format_number(value)} ms")
        entries.append((f"p{q}", line))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(edges[0], edges[-1])
    legend(figure, "latency", entries)
    return tips


