"""Metrics of a run, measured from the history, the files, and the service's own telemetry."""

from __future__ import annotations

from collections import Counter
from typing import Any

from harness.history import HARMS, Event
from harness.oracle import Evidence, payment_overlapped
from harness.oracle.evidence import FILE_CONFLICT, LOST, effect_kinds, receipts_unreadable
from harness.oracle.overlap import catchable_window, first_arrival_gaps
from harness.oracle.result import CheckResult
from harness.stats import ms as _ms
from harness.stats import percentile



def _rounds(events: list[Event]) -> dict[int, list[Event]]:
    rounds: dict[int, list[Event]] = {}
    for event in events:
        rounds.setdefault(event.meta.get("round", 0), []).append(event)
    return rounds


def processing_ms(events: list[Event]) -> float | None:
    """First request sent to last answer, within each delivery round (rounds are apart on purpose); the longest."""
    spans = []
    for batch in _rounds(events).values():
        releases = [e.t_release for e in batch if e.t_release is not None]
        responses = [e.t_response for e in batch if e.t_response is not None]
        if releases and responses:
            spans.append(max(responses) - min(releases))
    return _ms(max(spans)) if spans else None




def effect_times(files: list) -> list[dict[str, Any]]:
    """When each of a payment's side effects left, where that is known, earliest first: ``{kind, at}`` with
    ``at`` in wall-clock seconds on this machine (a sink record's receipt time, a file's modification time)."""
    timed = [{"kind": f.kind, "at": round(f.at, 6)} for f in files if isinstance(f.at, (int, float))]
    return sorted(timed, key=lambda e: e["at"])


def payment_rows(ev: Evidence) -> list[dict[str, Any]]:
    """One row per payment: what was sent, what came back, what is on disk and in the store."""
    rows = []
    for planned in ev.payments:
        p = planned.payment
        events = ev.events_of(p)
        delivered = ev.delivered_events_of(p)
        files = ev.receipts_of(p)
        rows.append({
            "payment": p.id,
            "merchant_transaction_id": p.merchant_transaction_id,
            "amount": p.amount,
            "expected": "paid" if planned.expected_paid else "unpaid",
            "judged": ev.judged(planned),
            "delivered": len(delivered),
            "requests": len(events),
            "channels": dict(Counter(e.channel for e in events)),
            "outcomes": dict(Counter(e.outcome or ("error" if e.error else f"http-{e.status}") for e in events)),
            "receipt_files": [f.name for f in files],
            "receipts": len(files),
            "effects": {kind: sum(1 for f in files if f.kind == kind) for kind in effect_kinds(ev)},  # per kind
            "effect_times": effect_times(files),
            "state": ev.observation.state.get(p.id),
            "release_spread_ms": _ms(ev.history.release_spread(events)),
            "arrival_spread_ms": _ms(ev.history.arrival_spread(events)),
            "processing_ms": processing_ms(events),
            "overlapped": payment_overlapped(delivered) if len(delivered) > 1 else None,
        })
    return rows


def compute_metrics(ev: Evidence, rows: list[dict[str, Any]], checks: list[CheckResult],
                    counters: dict[str, float], memory: dict[str, Any]) -> dict[str, Any]:
    events = list(ev.history)
    paid_rows = [r for r in rows if r["expected"] == "paid"]
    # A paid payment the service never heard of has no receipt to count (issue: undelivered is not missing).
    # Counted per kind of side effect (a file, an e-mail, a CRM post): exactly one of each is right.
    per_kind = [list(r["effects"].values()) or [r["receipts"]] for r in paid_rows if r["judged"]]
    per_paid = [n for counts in per_kind for n in counts]
    outcomes = Counter(e.outcome for e in events)
    status_5xx = sum(1 for e in events if e.status is not None and e.status >= 500)
    transport = sum(1 for e in events if e.error is not None)
    latencies = [e.latency * 1000 for e in events if e.latency is not None]
    processing = [r["processing_ms"] for r in paid_rows if r["processing_ms"] is not None]
    attempts = outcomes["generated"] + outcomes["failed"]
    conflicts = sum(1 for c in checks for v in c.violations if v.kind == FILE_CONFLICT)
    receipts_seen = receipts_unreadable(ev) is None
    metrics: dict[str, Any] = {
        "payments": len(rows),
        "payments_paid": len(paid_rows),
        "payments_unpaid": len(rows) - len(paid_rows),
        "payments_judged": sum(1 for r in rows if r["judged"]),
        "payments_unjudged": sum(1 for r in rows if not r["judged"]),
        "requests": len(events),
        "receipt_files": sum(r["receipts"] for r in rows) if receipts_seen else None,
        "receipts_per_payment_min": min(per_paid) if per_paid and receipts_seen else None,
        "receipts_per_payment_max": max(per_paid) if per_paid and receipts_seen else None,
        "receipts_per_payment_mean": round(sum(per_paid) / len(per_paid), 3) if per_paid and receipts_seen else None,
        "payments_with_duplicates": sum(1 for c in per_kind if max(c) > 1) if receipts_seen else None,
        "missing_receipts": sum(1 for c in per_kind if min(c) == 0) if receipts_seen else None,
        "file_conflicts": conflicts if receipts_seen else None,
        "errors": status_5xx + transport,
        "status_5xx": status_5xx,
        "transport_errors": transport,
        "success_rate_pct": round(100.0 * outcomes["generated"] / attempts, 3) if attempts else None,
        # Not measured when the answers say nothing (a profile without [answers]): 0 would read as "none".
        "duplicate_attempts": outcomes["already_generated"] if ev.observation.answers_described else None,
        "processing_ms_p50": percentile(processing, 50),
        "processing_ms_p95": percentile(processing, 95),
        "processing_ms_max": max(processing) if processing else None,
        "latency_ms_p50": _round(percentile(latencies, 50)),
        "latency_ms_p95": _round(percentile(latencies, 95)),
        "latency_ms_max": _round(max(latencies)) if latencies else None,
        "release_spread_ms": _ms(_per_round(ev, ev.history.release_spread)),
        "arrival_spread_ms": _ms(_per_round(ev, ev.history.arrival_spread)),
        "payment_arrival_spread_ms_max": max((r["arrival_spread_ms"] for r in rows if r["arrival_spread_ms"] is not None),
                                             default=None),
        # Per payment, the service's view beside the senders': far apart means the release instants did not hold
        # at the service (a skewed worker's clock, a slow path), whatever the release times say.
        "payment_arrival_spread_ms_p50": percentile([r["arrival_spread_ms"] for r in paid_rows
                                                     if r["arrival_spread_ms"] is not None], 50),
        "payment_release_spread_ms_p50": percentile([r["release_spread_ms"] for r in paid_rows
                                                     if r["release_spread_ms"] is not None], 50),
        "receipt_generation_ms_mean": _generation_ms(counters, events),
    }
    if ev.faulted:  # eventual exactly-once: what the faults cost, counted apart
        metrics["payments_indeterminate"] = len(ev.unjudged)
        metrics["lost_effects"] = sum(1 for c in checks for v in c.violations if v.kind == LOST)
        metrics["faults"] = sum(1 for f in ev.history.faults if f.get("kind") in HARMS)
        metrics["redeliveries"] = sum(1 for e in events if "redelivery" in e.meta)
    gaps = first_arrival_gaps(events)
    metrics["catchable_window_ms"] = _ms(catchable_window(gaps))  # at CATCH_PROBABILITY
    metrics["catchable_window_groups"] = len(gaps)
    for key in ("generations_started", "generations_succeeded", "generations_failed", "claims_won",
                "claims_skipped", "rollbacks"):
        metrics[key] = counters.get(key)
    metrics.update({k: v for k, v in memory.items() if k.startswith("service_")})
    return metrics


def _per_round(ev: Evidence, spread) -> float | None:
    """The widest spread of any one delivery round (rounds are apart on purpose)."""
    values = [v for v in (spread(events) for events in _rounds(list(ev.history)).values()) if v is not None]
    return max(values) if values else None


def _generation_ms(counters: dict[str, float], events: list) -> float | None:
    """Mean generation time from the service's histogram; else the winners' latency as an upper bound."""
    count = counters.get("generation_seconds_count")
    if count:
        return round(1000 * counters["generation_seconds_sum"] / count, 3)
    winners = [e.latency * 1000 for e in events if e.outcome == "generated" and e.latency is not None]
    return _round(sum(winners) / len(winners)) if winners else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
