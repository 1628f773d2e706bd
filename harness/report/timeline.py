"""The HTML report's third chart: a per-payment timeline of requests, the service's work and the side effects.

Marks carry ids as in ``harness.report.charts``: ``timeline-client-<outcome>-<n>``, ``timeline-effect-<kind>-<n>``, ...
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from matplotlib.axes import Axes
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from harness.report.chart_parts import WIDTH, empty, legend
from harness.report.events import arrival_of, events_of, latency_ms, ordered_payments, outcome_of, server_duration_of
from harness.report.format import OUTCOME_COLORS, OUTCOMES, clip, format_number
from harness.verdict.result import RunReport
from harness.report.svg import draw

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
    ax.set_ylim(y, 0)  # first payment on top
    ax.set_xlim(low - (high - low) * 0.01, high * 1.03)
    ax.set_yticks(centres, names, fontsize=8 if len(rows) < 15 else 7)
    ax.tick_params(axis="y", length=0)
    legend(figure, "timeline", _timeline_legend(timed, origin) + _effect_legend(styles))
    return tips


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
