"""The HTML report's three charts as inline SVG: receipts per payment, latency, per-payment timeline."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from .report_events import arrival_of, events_of, is_judged, latency_ms, ordered_payments, outcome_of, server_duration_of
from .report_format import OUTCOME_COLORS, OUTCOMES, clip, esc, format_number
from .result import RunReport
from .stats import percentile
from .svg import Frame, axes, empty_message, legend, nice_step, nice_top, svg_element, svg_text, ticks

TIMELINE_PAYMENTS = 25

# ---------------------------------------------------------------------------------------------
# Chart 1: receipts per payment

_RECEIPT_COLORS = {"one": "#43a047", "many": "#d32f2f", "none": "#ff9800", "control": "#bdbdbd",
                   "control_receipt": "#8e24aa", "unjudged": "#546e7a"}


def _receipt_kind(row: dict[str, Any]) -> str:
    """Which colour a payment's bar gets."""
    count = row.get("receipts") or 0
    if not is_judged(row):
        return "unjudged"
    if row.get("expected") != "paid":
        return "control_receipt" if count else "control"
    return "many" if count > 1 else ("one" if count == 1 else "none")


def receipts_chart(report: RunReport) -> str:
    """Bars of receipt files per payment, a dashed line at 1, duplicates and missing ones highlighted."""
    rows = report.payments
    counts = [int(r.get("receipts") or 0) for r in rows]
    frame = Frame(960, 330, 56, 20, 44, 78, 0, max(len(rows), 1), 0, max(2, max(counts, default=0)))
    step = max(1, int(nice_step(frame.y1, 5)))
    yticks = [(v, str(v)) for v in range(0, int(frame.y1) + 1, step)]
    every = max(1, math.ceil(len(rows) / 40))
    parts = axes(frame, [], yticks, f"payment ({len(rows)})", "receipt files")
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
                     f'fill="{_RECEIPT_COLORS[kind]}"{pale}><title>{esc(tip)}</title></rect>')
        if i % every == 0:
            cx = frame.x(i + 0.5)
            label = esc(clip(str(row.get("payment", i)), 14)) if len(rows) <= 40 else str(i + 1)
            parts.append(f'<text x="{cx:.1f}" y="{base + 12:.1f}" text-anchor="end" fill="#333" font-size="10" '
                         f'transform="rotate(-40 {cx:.1f} {base + 12:.1f})">{label}</text>')
    if not rows:
        parts.append(empty_message(frame, "no payments in this report"))
    y1 = frame.y(1)
    parts.append(f'<line class="expected" x1="{frame.left:.1f}" y1="{y1:.1f}" x2="{frame.left + frame.plot_w:.1f}" '
                 f'y2="{y1:.1f}" stroke="#000" stroke-width="1.5" stroke-dasharray="6 4"/>')
    parts += legend([("box", _RECEIPT_COLORS["one"], "exactly one"),
                      ("box", _RECEIPT_COLORS["many"], "duplicates (>1)"),
                      ("box", _RECEIPT_COLORS["none"], "missing (0, paid)"),
                      ("box", _RECEIPT_COLORS["control"], "unpaid control"),
                      ("box", _RECEIPT_COLORS["control_receipt"], "receipt for unpaid"),
                      *([("box", _RECEIPT_COLORS["unjudged"], "unjudged (no delivery reached it)")]
                        if any(not is_judged(r) for r in rows) else []),
                      ("dash", "#000", "expected = 1")], frame.left, 18, frame.plot_w)
    return svg_element(frame.width, frame.height, "receipt files per payment", parts)


# ---------------------------------------------------------------------------------------------
# Chart 2: latency histogram


def latency_chart(report: RunReport) -> str:
    """A histogram of request latency in ms, stacked by outcome, with p50 and p95 marked."""
    samples = [(ms, outcome_of(e)) for e in events_of(report) if (ms := latency_ms(e)) is not None]
    frame = Frame(960, 300, 56, 20, 44, 44)
    if not samples:
        parts = axes(frame, [], [], "latency (ms)", "requests") + [empty_message(frame, "no timed requests")]
        return svg_element(frame.width, frame.height, "request latency distribution", parts)
    low, high = min(0.0, min(s for s, _ in samples)), max(s for s, _ in samples)
    width = nice_step(high - low, 24)
    bins = max(1, math.ceil((high - low) / width + 1e-9))
    counts = [Counter() for _ in range(bins)]
    for ms, outcome in samples:
        counts[min(bins - 1, int((ms - low) // width))][outcome] += 1
    peak = max(sum(c.values()) for c in counts)
    frame.x0, frame.x1, frame.y0 = low, low + bins * width, 0
    frame.y1 = nice_top(peak, 5)
    yticks = [(v, format_number(v)) for v in ticks(0, frame.y1, 5) if float(v).is_integer()]
    xticks = [(v, format_number(v)) for v in ticks(frame.x0, frame.x1, 8)]
    parts = axes(frame, xticks, yticks, "latency: response read − final byte sent (ms)", "requests")
    for i, counter in enumerate(counts):
        parts += _stack(frame, low + i * width, low + (i + 1) * width, counter)
    values = [s for s, _ in samples]
    for q, dash in ((50, "5 3"), (95, "2 3")):
        value = percentile(values, q)
        x = frame.x(value)
        parts.append(f'<line x1="{x:.1f}" y1="{frame.top:.1f}" x2="{x:.1f}" y2="{frame.top + frame.plot_h:.1f}" '
                     f'stroke="#000" stroke-dasharray="{dash}"/>')
        near_right = x > frame.left + frame.plot_w - 100
        parts.append(svg_text(x - 4 if near_right else x + 4, frame.top + 12 + (q == 95) * 14,
                           f"p{q} {format_number(value)} ms", "end" if near_right else "start",
                           'stroke="#fff" stroke-width="3" paint-order="stroke"'))
    present = [o for o in OUTCOMES if any(c.get(o) for c in counts)]
    parts += legend([("box", OUTCOME_COLORS[o], o) for o in present], frame.left, 18, frame.plot_w)
    return svg_element(frame.width, frame.height, "request latency distribution", parts)


def _stack(frame: Frame, left: float, right: float, counter: Counter) -> list[str]:
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
                     f'fill="{OUTCOME_COLORS[outcome]}"><title>{esc(tip)}</title></rect>')
        below += n
    return parts


# ---------------------------------------------------------------------------------------------
# Chart 3: per-payment timeline


def _timeline_payments(report: RunReport) -> tuple[list[tuple[str, list[dict[str, Any]]]], int]:
    """The payments the timeline shows (problems first, capped) with their events, and how many exist."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for event in events_of(report):
        if event.get("payment") is not None:
            grouped.setdefault(str(event["payment"]), []).append(event)
    order = [str(r.get("payment")) for r in ordered_payments(report) if str(r.get("payment")) in grouped]
    order += [p for p in grouped if p not in set(order)]
    return [(p, grouped[p]) for p in order[:TIMELINE_PAYMENTS]], len(order)


def timeline_caption(report: RunReport) -> str:
    """What the timeline shows, on which clock each mark is, and what it leaves out."""
    shown, total = _timeline_payments(report)
    origin = (report.history or {}).get("origin_wall")
    events = [e for _, evs in shown for e in evs]
    stamped = any(arrival_of(e, origin) is not None for e in events)
    timed = any(arrival_of(e, origin) is not None and server_duration_of(e) is not None for e in events)
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


def timeline_chart(report: RunReport) -> str:
    """One row per payment; each request a client bar (send→read), its arrival tick and service bar."""
    rows, _ = _timeline_payments(report)
    origin = (report.history or {}).get("origin_wall")
    timed = [e for _, events in rows for e in events if isinstance(e.get("t_release"), (int, float))]
    lanes = sum(len(events) for _, events in rows)
    lane = max(2.0, min(9.0, 720 / max(lanes, 1)))
    height = 44 + 48 + sum(len(ev) * lane + 8 for _, ev in rows) if rows else 200
    frame = Frame(960, height, 170, 20, 44, 48)
    if not timed:
        parts = axes(frame, [], [], "ms since the first final byte", "") + [empty_message(frame, "no timed requests")]
        return svg_element(frame.width, frame.height, "per-payment request timeline", parts)
    t0 = min(e["t_release"] for e in timed)
    ends = [t for e in timed for t in (e.get("t_response"), _service_end(e, origin)) if isinstance(t, (int, float))]
    end = max(max(ends + [e["t_release"] for e in timed]) - t0, 1e-3) * 1000
    start = min([0.0] + [(a - t0) * 1000 for e in timed if (a := arrival_of(e, origin)) is not None])
    frame.x0, frame.x1 = (-nice_top(-start * 1.03, 8) if start < 0 else 0), nice_top(end * 1.03, 8)
    parts = axes(frame, [(v, format_number(v)) for v in ticks(frame.x0, frame.x1, 8)], [],
                  "ms since the first final byte (harness clock; service marks mapped by wall time)", "")
    y = frame.top
    for index, (payment, events) in enumerate(rows):
        parts += _timeline_row(frame, payment, events, t0, origin, y, lane, index)
        y += len(events) * lane + 8
    present = [o for o in OUTCOMES if any(outcome_of(e) == o for e in timed)]
    items = [("box", OUTCOME_COLORS[o], o) for o in present]
    items.append(("pale", "#777", "client: sent → read (harness clock)"))
    if any(arrival_of(e, origin) is not None for e in timed):
        items.append(("tick", "#000", "arrival stamp (service clock)"))
    if any(_service_end(e, origin) is not None for e in timed):
        items.append(("box", "#777", "service: arrival → + Server-Timing (service clock)"))
    items.append(("line", "#000", "first 'generated' request finished"))
    parts += legend(items, frame.left, 18, frame.plot_w)
    return svg_element(frame.width, frame.height, "per-payment request timeline", parts)


def _service_end(event: dict[str, Any], origin: Any) -> float | None:
    """When the service says it finished this request (history clock), or None."""
    arrival, duration = arrival_of(event, origin), server_duration_of(event)
    return None if arrival is None or duration is None else arrival + duration


def _timeline_row(frame: Frame, payment: str, events: list[dict[str, Any]], t0: float, origin: Any, y: float,
                  lane: float, index: int) -> list[str]:
    """One payment's band: background, label, per request its client bar, arrival tick and service bar,
    and the winner's finish line."""
    height = len(events) * lane + 8
    right = frame.left + frame.plot_w
    parts = [f'<rect class="tl-row" x="{frame.left:.1f}" y="{y:.1f}" width="{frame.plot_w:.1f}" height="{height:.1f}" '
             f'fill="{"#f5f5f5" if index % 2 else "#fff"}"/>',
             svg_text(frame.left - 8, y + height / 2 + 4, clip(payment, 22), "end")]
    ordered = sorted(events, key=lambda e: (e.get("t_release") is None, e.get("t_release") or 0, e.get("index") or 0))
    bar_h = max(lane - 1, 1.5)
    for lane_no, event in enumerate(ordered):
        if not isinstance(event.get("t_release"), (int, float)):
            continue
        x = frame.x((event["t_release"] - t0) * 1000)
        response = event.get("t_response")
        x2 = frame.x((response - t0) * 1000) if isinstance(response, (int, float)) else x + 3
        top = y + 4 + lane_no * lane
        outcome = outcome_of(event)
        color = OUTCOME_COLORS[outcome]
        parts.append(f'<rect class="tl-bar" data-outcome="{outcome}" x="{x:.1f}" y="{top:.1f}" '
                     f'width="{max(x2 - x, 1.5):.1f}" height="{bar_h:.1f}" fill="{color}" fill-opacity="0.35">'
                     f"<title>{esc(_event_tip(event, outcome))}</title></rect>")
        arrival, finish = arrival_of(event, origin), _service_end(event, origin)
        if finish is not None:
            xa, xf = frame.x((arrival - t0) * 1000), frame.x((finish - t0) * 1000)
            parts.append(f'<rect class="tl-service" data-outcome="{outcome}" x="{xa:.1f}" y="{top + bar_h * 0.2:.1f}" '
                         f'width="{max(xf - xa, 1.5):.1f}" height="{max(bar_h * 0.6, 1):.1f}" fill="{color}"/>')
        if arrival is not None:
            xa = frame.x((arrival - t0) * 1000)
            parts.append(f'<line class="tl-arrival" x1="{xa:.1f}" y1="{top:.1f}" x2="{xa:.1f}" y2="{top + bar_h:.1f}" '
                         f'stroke="#000" stroke-width="1.5"/>')
    finishes = [t for e in events if outcome_of(e) == "generated"
                for t in [_service_end(e, origin) if _service_end(e, origin) is not None else e.get("t_response")]
                if isinstance(t, (int, float))]
    if finishes:
        x = min(frame.x((min(finishes) - t0) * 1000), right)
        parts.append(f'<line class="tl-winner" x1="{x:.1f}" y1="{y + 1:.1f}" x2="{x:.1f}" y2="{y + height - 1:.1f}" '
                     f'stroke="#000" stroke-width="1.5"/>')
    return parts


def _event_tip(event: dict[str, Any], outcome: str) -> str:
    """Hover text for one request bar."""
    latency = latency_ms(event)
    status = event.get("status") if event.get("status") is not None else "no response"
    tip = (f"#{event.get('index')} {event.get('payment')} via {event.get('channel') or '?'} "
           f"(connection {event.get('connection')}): {status} {outcome}")
    tip += f", {format_number(latency)} ms" if latency is not None else ""
    return tip + (f", error: {clip(event['error'], 120)}" if event.get("error") else "")
