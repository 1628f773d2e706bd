"""Reading a report's history and payment rows: each event's outcome and clocks, each payment's standing."""

from __future__ import annotations

from typing import Any

from harness.history import server_duration
from harness.report.format import OUTCOMES
from harness.verdict.result import RunReport

def is_judged(row: dict[str, Any]) -> bool:
    """Whether the oracle judged this payment: some delivery provably reached the service.

    Reports written before payments could go unjudged have no "judged" key: they judged all.
    """
    return row.get("judged", True) is not False


def payment_ok(row: dict[str, Any]) -> bool:
    """A paid payment has exactly one receipt; an unpaid control has none."""
    return row.get("receipts") == (1 if row.get("expected") == "paid" else 0)


UNEXPECTED, UNJUDGED, AS_EXPECTED = 0, 1, 2


def payment_standing(row: dict[str, Any]) -> int:
    """Unexpected receipt count, unjudged (nothing to hold against the service), or as expected."""
    if not is_judged(row):
        return UNJUDGED
    return AS_EXPECTED if payment_ok(row) else UNEXPECTED


def ordered_payments(report: RunReport) -> list[dict[str, Any]]:
    """Payments with unexpected receipt counts first, then unjudged ones, otherwise in run order."""
    return sorted(report.payments, key=payment_standing)


def events_of(report: RunReport) -> list[dict[str, Any]]:
    """The history's events as dicts (an empty list when there is no history)."""
    events = (report.history or {}).get("events") or []
    return [e for e in events if isinstance(e, dict)]


def outcome_of(event: dict[str, Any]) -> str:
    """The event's category for colouring: the outcome the target's description read from the answer.

    The body is never looked into here: which field names the outcome is the target's business
    (the profile's ``[answers]``), already applied when the history was judged.
    """
    status = event.get("status")
    if event.get("error") or status is None:
        return "error"
    outcome = event.get("outcome")
    if outcome in OUTCOMES:
        return str(outcome)
    return "error" if isinstance(status, int) and status >= 500 else "other"


def arrival_of(event: dict[str, Any], origin_wall: Any) -> float | None:
    """The service's arrival stamp on the history clock (seconds), mapped by wall time, or None."""
    arrival = event.get("server_arrival")
    if not isinstance(arrival, (int, float)) or not isinstance(origin_wall, (int, float)) or not origin_wall:
        return None
    return arrival - origin_wall


def server_duration_of(event: dict[str, Any]) -> float | None:
    """The service's own processing time for this request (Server-Timing), in seconds, or None."""
    return server_duration(event.get("meta") or {})


def latency_ms(event: dict[str, Any]) -> float | None:
    """t_response - t_release in ms, or None when either is missing."""
    release, response = event.get("t_release"), event.get("t_response")
    if not isinstance(release, (int, float)) or not isinstance(response, (int, float)):
        return None
    return (response - release) * 1000


