"""The HTML report's charts, drawn with matplotlib and inlined as SVG: receipts per payment, latency, and a
per-payment timeline of requests, the service's work and the side effects.

Every mark a reader (or a test) may look for carries an id (matplotlib's gid), named
``<chart>-<mark>-<category>-<n>``, e.g. ``receipts-bar-unjudged-2`` or ``timeline-client-generated-7``;
a side effect's mark is ``timeline-effect-<kind>-<n>``, its kind made id-safe (``receipt e-mail`` ->
``receipt_e_mail``).

Charts are built on a bare ``matplotlib.figure.Figure`` (no pyplot, no GUI backend). Matplotlib
reads its style from the process-wide ``rcParams`` both while artists are created and while the
SVG is written, so one chart at a time holds a lock with its settings applied; the settings go
back when it is done and other users of matplotlib in the process never see them.
"""

from __future__ import annotations

import io
import math
import re
import threading
from collections.abc import Callable
from html import escape
from typing import Any

import matplotlib
from matplotlib.axes import Axes
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator

from harness.report.events import (
    arrival_of, events_of, is_judged, latency_ms, ordered_payments, outcome_of, server_duration_of,
)
from harness.report.format import OUTCOME_COLORS, OUTCOMES, clip, format_number
from harness.stats import percentile
from harness.verdict.result import RunReport

__all__ = ["TIMELINE_PAYMENTS", "bar_count", "draw", "effect_kinds", "latency_chart", "receipt_kind",
           "receipts_caption", "receipts_chart", "timeline_caption", "timeline_chart", "timeline_payments"]

# ---------------------------------------------------------------------------------------------
# Drawing: a figure to an inline <svg>, the shared width, legend and empty plot

# Text stays <text> (small, selectable, nothing embedded); "$" in a payment id is not TeX.
_STYLE = {"svg.fonttype": "none", "text.parse_math": False, "text.usetex": False,
          "font.family": "sans-serif", "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica"], "font.size": 9,
          "axes.spines.top": False, "axes.spines.right": False, "axes.titlesize": 9, "axes.titlelocation": "left",
          "legend.fontsize": 8.5, "legend.frameon": False, "legend.handlelength": 2.6, "axes.axisbelow": True}
_LOCK = threading.Lock()
# Ids matplotlib numbers per figure ("axes_1", "text_3"): nothing refers to them, and with several
# charts in one page they would repeat, which HTML forbids. Hashed ids (clip paths, markers) stay.
_AUTO_IDS = re.compile(r' id="(?:figure|axes|patch|line2d|text|legend|matplotlib\.axis|xtick|ytick|PolyCollection|'
                       r'LineCollection|PathCollection)_\d+"')

Build = Callable[[Figure], dict[str, str]]


def draw(name: str, label: str, size: tuple[float, float], build: Build) -> str:
    """Build a figure of size inches with build(fig) and return it as an inline <svg> element.

    build returns hover texts by element id (matplotlib's gid); each becomes that element's <title>.
    name keeps this chart's hashed ids apart from the other charts' on the same page.
    """
    with _LOCK, matplotlib.rc_context({**_STYLE, "svg.hashsalt": name}):
        figure = Figure(figsize=size, layout="constrained")
        tips = build(figure)
        out = io.StringIO()
        figure.savefig(out, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    return inline(out.getvalue(), label, tips)


def inline(svg: str, label: str, tips: dict[str, str]) -> str:
    """A standalone SVG document as an element for an HTML page: no XML prolog, labelled, with hover titles."""
    svg = _AUTO_IDS.sub("", svg[svg.index("<svg"):])
    svg = svg.replace("<svg ", f'<svg class="chart" role="img" aria-label="{escape(label)}" ', 1)
    if tips:
        # Matplotlib has no per-artist tooltip; an SVG <title> first in the element's group is one.
        svg = re.sub(r'<g id="([^"]+)">', lambda m: m.group(0) + (
            f"<title>{escape(tips[m.group(1)])}</title>" if m.group(1) in tips else ""), svg)
    return svg


WIDTH = 10.0  # inches; the page scales the SVG to its column



def legend(figure: Figure, chart: str, entries: list[tuple[str, Any]]) -> Legend:
    """A legend above the plot from (key, handle) pairs; each drawn swatch gets the id <chart>-legend-<key>."""
    columns = _legend_columns([len(h.get_label()) for _, h in entries], figure.get_figwidth() - 0.4)
    legend = figure.legend(handles=[h for _, h in entries], loc="outside upper left", ncols=columns)
    for (key, _), drawn in zip(entries, legend.legend_handles):
        drawn.set_gid(f"{chart}-legend-{key}")
    return legend


def _legend_columns(label_chars: list[int], width: float) -> int:
    """The most columns (fewest rows) whose labels fit across width inches; matplotlib fills the legend
    column by column and does not wrap, so a row too long is cut off at the figure's edge."""
    for rows in range(1, len(label_chars) + 1):
        columns = [label_chars[i:i + rows] for i in range(0, len(label_chars), rows)]
        # about 0.07 in per character at the legend's size, plus swatch and spacing
        if sum(max(c) * 0.07 + 0.75 for c in columns) <= width:
            return len(columns)
    return 1


def empty(ax: Axes, message: str) -> None:
    """A centred 'no data' message in place of marks."""
    ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center", color="#888")
    ax.set_yticks([])


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


# ---------------------------------------------------------------------------------------------
# Chart 3: the per-payment timeline

TIMELINE_PAYMENTS = 25


def timeline_payments(report: RunReport) -> tuple[list[tuple[str, list[dict[str, Any]]]], int]:
    """The payments the timeline shows (problems first, capped) with their events, and how many exist."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for event in events_of(report):
        if event.get("payment") is not None:
            grouped.setdefault(str(event["payment"]), []).append(event)
    order = [str(r.get("payment")) for r in ordered_payments(report) if str(r.get("payment")) in grouped]
    order += [p for p in grouped if p not in set(order)]
    return [(p, grouped[p]) for p in order[:TIMELINE_PAYMENTS]], len(order)


def service_end(event: dict[str, Any], origin: Any) -> float | None:
    """When the service says it finished this request (history clock), or None."""
    arrival, duration = arrival_of(event, origin), server_duration_of(event)
    return None if arrival is None or duration is None else arrival + duration


def winner_finish(events: list[dict[str, Any]], origin: Any) -> float | None:
    """When the first 'generated' request finished: arrival + Server-Timing where the service gives both,
    else its response read on the harness clock; None when no request generated."""
    finishes = [t for e in events if outcome_of(e) == "generated"
                for t in [service_end(e, origin) if service_end(e, origin) is not None else e.get("t_response")]
                if isinstance(t, (int, float))]
    return min(finishes) if finishes else None


# One marker per kind of side effect, in the order the kinds are first met; colours stay off the outcomes'.
EFFECT_STYLES = [("D", "#1565c0"), ("v", "#6a1b9a"), ("s", "#00838f"), ("^", "#ad1457"), ("P", "#4e342e"),
                 ("X", "#283593"), ("*", "#558b2f"), ("o", "#37474f")]


def effect_gid_kind(kind: str) -> str:
    """A kind of side effect as it appears in an id: letters, digits and underscores only."""
    return re.sub(r"[^A-Za-z0-9]+", "_", kind).strip("_") or "effect"


def effect_times_of(report: RunReport, origin: Any) -> dict[str, list[tuple[str, float]]]:
    """Each payment's timed side effects as (kind, history-clock seconds): its wall time less the history's
    origin; none when the report has no wall origin to map them by."""
    if not isinstance(origin, (int, float)) or not origin:
        return {}
    return {str(row.get("payment")): [(str(e.get("kind") or "effect"), e["at"] - origin)
                                      for e in row.get("effect_times") or []
                                      if isinstance(e, dict) and isinstance(e.get("at"), (int, float))]
            for row in report.payments or []}


def timeline_caption(report: RunReport) -> str:
    """What the timeline shows, on which clock each mark is, and what it leaves out."""
    shown, total = timeline_payments(report)
    origin = (report.history or {}).get("origin_wall")
    events = [e for _, evs in shown for e in evs]
    stamped = any(arrival_of(e, origin) is not None for e in events)
    timed = any(service_end(e, origin) is not None for e in events)
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
    effects = effect_times_of(report, origin)
    if any(effects.get(p) for p, _ in shown):
        text += (" Side effects are marked, one marker per kind, when they left: on the wall clock of this machine "
                 "(the sink's own receipt time for a call or message, the modification time for a file), "
                 "mapped to the harness clock by wall time.")
    return text + (f" Showing {len(shown)} of {total} payments (unexpected receipt counts first)."
                   if total > len(shown) else "")


def timeline_chart(report: RunReport) -> str:
    """One band per payment; each request a client bar (send→read), its arrival tick and service bar."""
    rows, total = timeline_payments(report)
    lanes = sum(len(events) for _, events in rows)
    height = 1.6 + min(max(lanes * 0.11, 1.4), 9.0)  # inches: legend and axis, plus the bands
    return draw("timeline", "per-payment request timeline", (WIDTH, height),
                lambda fig: _draw_timeline(fig, report, rows, total))


def _draw_timeline(figure: Figure, report: RunReport, rows: list[tuple[str, list[dict[str, Any]]]],
                   total: int) -> dict[str, str]:
    origin = (report.history or {}).get("origin_wall")
    timed = [e for _, events in rows for e in events if isinstance(e.get("t_release"), (int, float))]
    ax, tips = figure.add_subplot(), {}
    ax.set_xlabel("ms since the first final byte (harness clock; service marks mapped by wall time)")
    if total > len(rows):
        ax.set_title(f"first {len(rows)} of {total} payments shown (unexpected receipt counts first)")
    if not timed:
        empty(ax, "no timed requests")
        return tips
    t0 = min(e["t_release"] for e in timed)

    def ms(t: float) -> float:  # history-clock seconds to chart milliseconds
        return (t - t0) * 1000

    ends = [ms(t) for e in timed for t in (e.get("t_response"), service_end(e, origin), e["t_release"])
            if isinstance(t, (int, float))]
    starts = [0.0] + [ms(a) for e in timed if (a := arrival_of(e, origin)) is not None]
    low, high = min(starts), max(max(ends), 1e-3)
    effects = {p: marks for p, marks in effect_times_of(report, origin).items() if p in {q for q, _ in rows}}
    styles = _effect_styles(effects)
    if effects:
        low = min([low] + [ms(t) for marks in effects.values() for _, t in marks])
        high = max([high] + [ms(t) for marks in effects.values() for _, t in marks])
    least = (high - low) * 0.002  # the narrowest bar still drawn, so a 0 ms request shows
    y, centres, names, request, effect = 0.0, [], [], 0, 0
    for number, (payment, events) in enumerate(rows):
        band = len(events) + 0.6
        if number % 2:
            ax.axhspan(y, y + band, color="#f3f3f3", linewidth=0, zorder=0)
        ordered = sorted(events, key=lambda e: (e.get("t_release") is None, e.get("t_release") or 0,
                                                e.get("index") or 0))
        for lane, event in enumerate(ordered):
            if isinstance(event.get("t_release"), (int, float)):
                tips.update(_request_marks(ax, event, origin, ms, y + 0.3 + lane, least, request))
                request += 1
        finish = winner_finish(events, origin)
        if finish is not None:
            ax.add_artist(Line2D([ms(finish)] * 2, [y + 0.05, y + band - 0.05], color="#000", linewidth=1.5,
                               gid=f"timeline-winner-{number}", zorder=4))
        for kind, at in effects.get(payment, []):
            marker, color = styles[kind]
            mark = Line2D([ms(at)], [y + band / 2], marker=marker, color=color, markersize=7, linestyle="none",
                          markeredgecolor="#fff", markeredgewidth=0.6,
                          gid=f"timeline-effect-{effect_gid_kind(kind)}-{effect}", zorder=5)
            ax.add_artist(mark)
            tips[mark.get_gid()] = f"{payment}: {kind} left at {format_number(ms(at))} ms (wall clock of this machine)"
            effect += 1
        centres.append(y + band / 2)
        names.append(clip(payment, 22))
        y += band
    faults = _fault_times(report, origin)
    if faults:
        low = min([low] + [ms(t) for _, t, _ in faults])
        high = max([high] + [ms(t) for _, t, _ in faults])
    for n, (kind, at, detail) in enumerate(faults):
        color = FAULT_COLORS.get(kind, "#555")
        line = Line2D([ms(at)] * 2, [0, y], color=color, linewidth=1.4, linestyle=(0, (4, 2)),
                      gid=f"timeline-fault-{kind}-{n}", zorder=6)
        ax.add_artist(line)
        ax.annotate(kind, (ms(at), 0), xytext=(2, 2), textcoords="offset points", fontsize=7.5, color=color,
                    annotation_clip=False)
        tips[line.get_gid()] = f"{kind} at {format_number(ms(at))} ms: {clip(detail, 160)}"
    ax.set_ylim(y, 0)  # first payment on top
    ax.set_xlim(low - (high - low) * 0.01, high * 1.03)
    ax.set_yticks(centres, names, fontsize=8 if len(rows) < 15 else 7)
    ax.tick_params(axis="y", length=0)
    legend(figure, "timeline", _timeline_legend(timed, origin) + _effect_legend(styles) + _fault_legend(faults))
    return tips


FAULT_COLORS = {"kill": "#b71c1c", "restart": "#1b5e20", "ready": "#2e7d32", "never-ready": "#000000",
                "pause": "#e65100", "resume": "#f9a825", "cut": "#6a1b9a", "heal": "#00838f",
                "downstream-fail": "#ad1457", "recover": "#00695c", "error": "#000000"}


def _fault_times(report: RunReport, origin: Any) -> list[tuple[str, float, str]]:
    """(kind, history-clock seconds, detail) of each step the nemesis took, from the history."""
    history = report.history or {}
    out = []
    for fault in history.get("faults") or []:
        at = fault.get("t")
        if at is None and isinstance(origin, (int, float)) and isinstance(fault.get("wall"), (int, float)):
            at = fault["wall"] - origin
        if isinstance(at, (int, float)):
            out.append((str(fault.get("kind", "fault")), float(at), str(fault.get("detail", ""))))
    return out


def _fault_legend(faults: list[tuple[str, float, str]]) -> list[tuple[str, Any]]:
    kinds = list(dict.fromkeys(kind for kind, _, _ in faults))
    return [(f"fault-{kind}", Line2D([], [], color=FAULT_COLORS.get(kind, "#555"), linestyle=(0, (4, 2)),
                                     label=f"nemesis: {kind}")) for kind in kinds]


def _effect_styles(effects: dict[str, list[tuple[str, float]]]) -> dict[str, tuple[str, str]]:
    """A (marker, colour) per kind of side effect drawn, in the order the kinds are first met."""
    kinds = list(dict.fromkeys(kind for marks in effects.values() for kind, _ in marks))
    return {kind: EFFECT_STYLES[n % len(EFFECT_STYLES)] for n, kind in enumerate(kinds)}


def _effect_legend(styles: dict[str, tuple[str, str]]) -> list[tuple[str, Any]]:
    """One legend entry per kind of side effect marked, keyed effect-<kind>."""
    return [(f"effect-{effect_gid_kind(kind)}",
             Line2D([], [], marker=marker, color=color, markersize=7, linestyle="none",
                    label=f"{clip(kind, 30)} left (wall clock)"))
            for kind, (marker, color) in styles.items()]


def _request_marks(ax: Axes, event: dict[str, Any], origin: Any, ms: Callable[[float], float], top: float,
                   least: float, index: int) -> dict[str, str]:
    """One request's lane: the client bar, its service bar (Server-Timing) and arrival tick; hover text by id.

    index numbers the requests drawn (the history's own index may be missing or repeat across reports)."""
    outcome = outcome_of(event)
    color, start = OUTCOME_COLORS[outcome], ms(event["t_release"])
    response = event.get("t_response")
    # No response read: a short stub at the send time, so the request (often an error) still shows.
    width = ms(response) - start if isinstance(response, (int, float)) else least * 3
    client = Rectangle((start, top), max(width, least), 0.8, facecolor=to_rgba(color, 0.35), linewidth=0,
                       gid=f"timeline-client-{outcome}-{index}", zorder=2)
    ax.add_artist(client)
    arrival, finish = arrival_of(event, origin), service_end(event, origin)
    if arrival is not None and finish is not None:
        ax.add_artist(Rectangle((ms(arrival), top + 0.2), max(ms(finish) - ms(arrival), least), 0.4,
                               facecolor=color, linewidth=0, gid=f"timeline-service-{outcome}-{index}", zorder=3))
    if arrival is not None:
        ax.add_artist(Line2D([ms(arrival)] * 2, [top, top + 0.8], color="#000", linewidth=1.2,
                           gid=f"timeline-arrival-{index}", zorder=4))
    return {client.get_gid(): _event_tip(event, outcome)}


def _timeline_legend(timed: list[dict[str, Any]], origin: Any) -> list[tuple[str, Any]]:
    """Outcome colours present, then one entry per kind of mark drawn, each naming its clock."""
    entries: list[tuple[str, Any]] = [(o, Patch(color=OUTCOME_COLORS[o], label=o))
                                      for o in OUTCOMES if any(outcome_of(e) == o for e in timed)]
    entries.append(("client", Patch(color=to_rgba("#777", 0.35), label="client: sent → read (harness clock)")))
    if any(arrival_of(e, origin) is not None for e in timed):
        entries.append(("arrival", Line2D([], [], color="#000", marker="|", markersize=9, linestyle="none",
                                          label="arrival stamp (service clock)")))
    if any(service_end(e, origin) is not None for e in timed):
        entries.append(("service", Patch(color="#777", label="service: arrival → + Server-Timing (service clock)")))
    entries.append(("winner", Line2D([], [], color="#000", linewidth=1.5, label="first 'generated' request finished")))
    return entries


def _event_tip(event: dict[str, Any], outcome: str) -> str:
    """Hover text for one request bar."""
    latency = latency_ms(event)
    status = event.get("status") if event.get("status") is not None else "no response"
    tip = (f"#{event.get('index')} {event.get('payment')} via {event.get('channel') or '?'} "
           f"(connection {event.get('connection')}): {status} {outcome}")
    tip += f", {format_number(latency)} ms" if latency is not None else ""
    return tip + (f", error: {clip(event['error'], 120)}" if event.get("error") else "")
