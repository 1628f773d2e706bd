"""The report's tables, built once as plain strings: Markdown and HTML render the same ``Table``s."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from harness.report.events import (
    AS_EXPECTED, UNEXPECTED, UNJUDGED, events_of, is_judged, ordered_payments, outcome_of, payment_standing,
)
from harness.report.format import (
    DASH, OUTCOMES, clip, format_metric, format_number, metric_keys, metric_label, ms_text,
)
from harness.verdict.result import MET, MISSED, NOT_MEASURED, SHOWN, RunReport, TargetResult
from harness.oracle.result import CheckResult

EXAMPLE_VIOLATIONS = 3


def _check_icon(check: CheckResult) -> str:
    """Status of one checker as an icon plus its word."""
    if not check.made:
        return "➖ not made"
    return {True: "✅ pass", False: "❌ FAIL", None: "⚠️ unknown"}[check.valid]


def _target_icon(target: TargetResult) -> str:
    """Status of one target as an icon plus its word."""
    return {MET: "✅ met", MISSED: "❌ missed", NOT_MEASURED: "➖ not measured",
            SHOWN: "ℹ️ shown, not judged"}.get(target.status, target.status)


@dataclass
class Table:
    """Headers, rows of plain strings and a note: one model that Markdown and HTML both render."""

    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)  # one CSS class per row (HTML only)
    note: str = ""

    def add(self, cells: Sequence[Any], css: str = "") -> None:
        """Append a row."""
        self.rows.append([clip(str(c)) for c in cells])
        self.classes.append(css)

    def styled_rows(self) -> list[tuple[list[str], str]]:
        """Each row with its CSS class."""
        return list(zip(self.rows, self.classes))


def checks_table(report: RunReport) -> Table:
    """Status, violation count and the first violations of each checker."""
    table = Table(["Status", "Check", "What it checks", "Violations", "First violations"])
    for check in report.checks:
        table.add([_check_icon(check), check.name, check.description, len(check.violations),
                   _violation_examples(check)], {True: "ok", False: "bad", None: "warn"}[check.valid] if check.made else "")
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


def targets_table(report: RunReport) -> Table:
    """Each documented target: expected, measured with unit, status."""
    table = Table(["Target", "Expected", "Measured", "Status", "Note"])
    for t in report.targets:
        measured = "not measured" if t.measured is None else f"{format_number(t.measured)} {t.unit}".strip()
        css = {MET: "ok", MISSED: "bad", SHOWN: "muted"}.get(t.status, "warn")
        table.add([f"{t.name} — {t.description}" if t.description else t.name, t.expected, measured,
                   _target_icon(t), t.note or ""], css)
    if not report.targets:
        table.note = "No targets were evaluated."
    return table


def metrics_table(report: RunReport) -> Table:
    """Every metric with its unit; missing ones read 'not measured'."""
    table = Table(["Metric", "Value"])
    for key in metric_keys(report.metrics):
        value = report.metrics.get(key)
        table.add([metric_label(key), format_metric(key, value)], "muted" if value is None else "")
    return table


def history_table(report: RunReport) -> Table:
    """What the burst did: requests, statuses, outcomes, release and server arrival spreads."""
    events = events_of(report)
    statuses = Counter("error" if e.get("status") is None else str(e.get("status")) for e in events)
    outcomes = Counter(outcome_of(e) for e in events)
    releases = [e["t_release"] for e in events if isinstance(e.get("t_release"), (int, float))]
    arrivals = [e["server_arrival"] for e in events if isinstance(e.get("server_arrival"), (int, float))]
    rows: dict[str, str] = {
        "requests": str(len(events)),
        "statuses": counts_text(statuses),
        "outcomes": counts_text(outcomes, OUTCOMES),
        "transport errors": str(sum(1 for e in events if e.get("error"))),
        "release spread (client, last byte)": ms_text(max(releases) - min(releases) if releases else None),
        "server arrival spread": ms_text(max(arrivals) - min(arrivals) if arrivals else None)
        + ("" if arrivals else " (the target does not report arrivals)"),
        "sync": str(report.history.get("sync", DASH)),
    }
    for key, value in (report.history_summary or {}).items():
        if key not in rows and key.replace("_", " ") not in rows:
            rows[key.replace("_", " ")] = plain(value, key)
    table = Table(["History", "Value"])
    for key, value in rows.items():
        table.add([key, value])
    return table


def plain(value: Any, key: str = "") -> str:
    """Any summary value as short text (dicts as 'k v, k v')."""
    if isinstance(value, dict):
        return ", ".join(f"{k} {plain(v)}" for k, v in value.items()) or DASH
    if isinstance(value, (list, tuple)):
        return ", ".join(plain(v) for v in value) or DASH
    return format_metric(key, value, DASH) if key else format_number(value)


def counts_text(counter: Counter, order: Iterable[str] = ()) -> str:
    """'200×48, 500×2' — a counter as text, in the given order first."""
    keys = [k for k in order if counter.get(k)] + sorted(k for k in counter if k not in set(order))
    return ", ".join(f"{k}×{counter[k]}" for k in keys) or DASH


def payments_table(report: RunReport, limit: int) -> Table:
    """One compact row per payment, problems first, capped at limit."""
    table = Table(["", "Payment", "Judged", "Expected", "Requests", "Outcomes", "Receipts", "Files", "Final state",
                    "Spread ms (release / arrival)", "Processing ms", "Overlap"])
    rows = ordered_payments(report)
    icons = {UNEXPECTED: "❌", UNJUDGED: "➖", AS_EXPECTED: "✅"}
    css = {UNEXPECTED: "bad", UNJUDGED: "unjudged", AS_EXPECTED: ""}
    for row in rows[:limit]:
        standing = payment_standing(row)
        table.add([icons[standing], payment_name(row),
                   "yes" if is_judged(row) else "no: unjudged, no delivery reached the service",
                   row.get("expected", DASH), _requests_cell(row),
                   counts_text(Counter({k: v for k, v in (row.get("outcomes") or {}).items() if v}), OUTCOMES),
                   _receipts_cell(row), _files_cell(row.get("receipt_files") or []),
                   _state_cell(row.get("state")),
                   f"{format_number(row.get('release_spread_ms'))} / {format_number(row.get('arrival_spread_ms'))}",
                   format_number(row.get("processing_ms")), format_number(row.get("overlapped"))],
                  css[standing])
    if len(rows) > limit:
        table.note = f"… {len(rows) - limit} more payment(s) not shown (see the JSON)."
    return table


def payment_name(row: dict[str, Any]) -> str:
    """A payment as people search their logs for it: its transaction (order) id, then the service's own id."""
    pid, transaction = row.get("payment"), row.get("merchant_transaction_id")
    if transaction and pid and transaction != pid:
        return f"{transaction} (id {pid})"
    return str(transaction or pid or DASH)


def _requests_cell(row: dict[str, Any]) -> str:
    """'5: callback 4, verify 1'."""
    channels = ", ".join(f"{k} {v}" for k, v in (row.get("channels") or {}).items() if v)
    count = format_number(row.get("requests"))
    return f"{count}: {channels}" if channels else count


def _receipts_cell(row: dict[str, Any]) -> str:
    """'11: receipt 1, receipt e-mail 5, crm post 5' when a profile reads several kinds of side effect."""
    count, effects = format_number(row.get("receipts")), row.get("effects") or {}
    if len(effects) < 2:
        return count
    return f"{count}: " + ", ".join(f"{kind} {n}" for kind, n in effects.items())


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


def judged_line(report: RunReport) -> str:
    """'3 of 5 payments judged (2 unjudged: no delivery reached the service)'."""
    metrics = report.metrics or {}
    judged, unjudged = metrics.get("payments_judged"), metrics.get("payments_unjudged")
    if not (isinstance(judged, int) and isinstance(unjudged, int)):
        unjudged = sum(1 for row in report.payments if not is_judged(row))
        judged = len(report.payments) - unjudged
    text = f"{judged} of {judged + unjudged} payments judged"
    return text + (f" ({unjudged} unjudged: no delivery reached the service)" if unjudged else "")


def strength_line(report: RunReport) -> str:
    """What this run could have caught, from its own arrival spread (``measure.catchable_window``)."""
    return strength_text(report.metrics or {})


def strength_text(metrics: dict[str, Any]) -> str:
    """'this run would catch a check-then-act window >= 0.4 ms (95 % of its 10 duplicate groups ...)', or why unknown."""
    window, groups = metrics.get("catchable_window_ms"), metrics.get("catchable_window_groups")
    if window is None:
        return ("strength unknown: no payment had two deliveries with the service's arrival stamp (X-Arrival-Ns), "
                "so this run cannot say how narrow a check-then-act window it would have caught")
    return (f"this run would catch a check-then-act window ≥ {format_number(window)} ms with 95 % probability per "
            f"payment (in 95 % of its {groups} duplicate group(s) the first two deliveries reached the service "
            f"within {format_number(window)} ms of each other)")


def config_line(report: RunReport) -> str:
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
        parts.append(f"target {url}" + _origin_text(config.get("origin")))
    if "seed" in plan:
        parts.append(f"seed {plan['seed']}")
    targets = config.get("targets")
    if isinstance(targets, dict) and targets.get("source"):
        parts.append(f"targets: {targets['source']}")
    return " · ".join(str(p) for p in parts) or "configuration not recorded"


def _origin_text(origin: Any) -> str:
    """How the run was told about the service (a profile file, --target, the reference service), briefly."""
    if not isinstance(origin, dict) or not origin.get("from"):
        return ""
    named = origin.get("path") or origin.get("name")
    return f" ({origin['from']}{f' {named}' if named else ''})"


def environment_line(report: RunReport) -> str:
    """One line: python, platform, CPUs, host, harness version."""
    env = report.environment or {}
    names = (("python", "python {}"), ("platform", "{}"), ("cpu_count", "{} CPU(s)"), ("hostname", "host {}"),
             ("harness", "harness {}"), ("harness_version", "harness {}"), ("version", "harness {}"))
    return " · ".join(fmt.format(env[k]) for k, fmt in names if env.get(k) is not None) or "environment not recorded"


def flat(data: Any, prefix: str = "") -> list[tuple[str, str]]:
    """A nested dict flattened to dotted keys and short text values."""
    if isinstance(data, dict) and data:
        return [pair for k, v in data.items() for pair in flat(v, f"{prefix}.{k}" if prefix else str(k))]
    return [(prefix, plain(data))]


def payments_heading(report: RunReport, limit: int) -> str:
    """'Payments (unexpected receipt counts first; 30 of 120 shown)'."""
    total = len(report.payments)
    shown = f"{min(total, limit)} of {total} shown" if total > limit else f"{total}"
    return f"Payments ({shown}; unexpected receipt counts first, then unjudged)"


def faults_table(report: RunReport) -> Table | None:
    """What the nemesis did, in order, on the history's clock (None: the run had no nemesis)."""
    history = report.history or {}
    if history.get("nemesis") is None:
        return None
    nemesis = history["nemesis"]
    table = Table(["t (s)", "Step", "What"])
    for fault in history.get("faults") or []:
        at = fault.get("t")
        table.add([format_number(at) if isinstance(at, (int, float)) else DASH, fault.get("kind", ""),
                   fault.get("detail", "")])
    fired = "fired" if nemesis.get("fired") else "never fired"
    back = {True: "the service came back", False: "the service did NOT come back", None: ""}[nemesis.get("came_back")]
    table.note = f"schedule {nemesis.get('schedule')}: {fired}" + (f"; {back}" if back else "")
    return table


def clocks_table(report: RunReport) -> Table | None:
    """Each swarm lane's clock: its offset from the master's, how sure (half the best round trip), and whether it
    was left out; the note puts the per-payment spread the service saw beside the one the senders released
    (None: the run had one clock, not a swarm's)."""
    clocks = ((report.config or {}).get("locust") or {}).get("clocks")
    if not clocks or not clocks.get("lanes"):
        return None
    table = Table(["Lane", "Offset (ms)", "± (ms)", "Round trip (ms)", "Samples", "Measured", "Left out"])
    for node, lane in clocks["lanes"].items():
        known = lane.get("offset_ms") is not None
        table.add([node, format_number(lane["offset_ms"]) if known else "unknown",
                   format_number(lane.get("uncertainty_ms")) if known else DASH,
                   format_number(lane.get("rtt_ms")) if known else DASH, lane.get("samples", 0),
                   f"{len(lane.get('measurements') or [])} time(s)", lane.get("excluded") or "no"],
                  "bad" if lane.get("excluded") else "")
    m = report.metrics or {}
    correction = "release instants converted to each lane's clock" if clocks.get("correction", True) else \
        "clock correction OFF: each lane released on its own clock"
    table.note = (f"bound ± {format_number(clocks.get('bound_ms'))} ms; {correction}; per payment (median): "
                  f"server-seen spread {format_number(m.get('payment_arrival_spread_ms_p50'))} ms, release spread "
                  f"{format_number(m.get('payment_release_spread_ms_p50'))} ms")
    return table
