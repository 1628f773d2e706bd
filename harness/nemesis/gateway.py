"""Redelivery like a payment gateway: a delivery not acknowledged with a 2xx is delivered again on a schedule.

A gateway stops retrying an event once the merchant answered 2xx; until then it retries on its own
schedule (PhonePe: a few retries within minutes; Razorpay and Stripe: exponential backoff for a day
or three), compressed here into seconds (``harness.profile.schema.REDELIVERY_SCHEDULES``). After a
fault this is what makes a correct service whole again — and what shows a service that
acknowledged a delivery it never completed: no redelivery comes for it, and its side effect stays
lost.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Callable

from harness.errors import HarnessError
from harness.history import History
from harness.prepare.deliveries import redelivery
from harness.profile import Payment, Profile
from harness.profile.schema import REDELIVERY_SCHEDULES
from harness.senders.base import PreparedRequest


def acknowledged(status: int | None) -> bool:
    """Whether an answer acknowledges a delivery, as a gateway reads it: any 2xx."""
    return status is not None and 200 <= status < 300


@dataclass(frozen=True)
class RedeliveryPlan:
    """When to deliver again (delays in seconds, one per retry), within how long in all, and whether to verify."""

    delays: tuple[float, ...]
    budget: float = 60.0
    verify: bool = False
    name: str = ""

    def describe(self) -> dict[str, Any]:
        return {"schedule": self.name or list(self.delays), "delays": list(self.delays), "budget": self.budget,
                "verify": self.verify}


def redelivery_plan(value: str | None, profile: Profile, *, faulted: bool) -> RedeliveryPlan | None:
    """How a run redelivers: ``value`` (a gateway's name, delays such as ``0.5,1,2``, or ``none``), else the
    profile's ``[redelivery]``, else PhonePe's schedule when a nemesis runs (a fault without redelivery
    would judge a correct service by deliveries the fault cut), else none."""
    section = profile.spec.redelivery
    if value is None:
        if section is not None:
            return RedeliveryPlan(section.delays, section.budget, section.verify,
                                  section.schedule if isinstance(section.schedule, str) else "")
        return RedeliveryPlan(REDELIVERY_SCHEDULES["phonepe"], name="phonepe") if faulted else None
    value = value.strip()
    if value in ("none", "off", "0"):
        return None
    budget = section.budget if section is not None else 60.0
    verify = section.verify if section is not None else False
    if value in REDELIVERY_SCHEDULES:
        return RedeliveryPlan(REDELIVERY_SCHEDULES[value], budget, verify, value)
    try:
        delays = tuple(float(part.strip().removesuffix("s")) for part in value.split(","))
    except ValueError:
        raise HarnessError(f"--redeliver {value!r}: a gateway ({', '.join(REDELIVERY_SCHEDULES)}), delays in "
                           "seconds (0.5,1,2), or none") from None
    if not delays or any(d < 0 for d in delays):
        raise HarnessError(f"--redeliver {value!r}: delays are seconds, not negative")
    return RedeliveryPlan(delays, budget, verify)


def unacknowledged(history: History, payment_ids: list[str]) -> list[str]:
    """The payments none of whose deliveries so far was answered with a 2xx (in plan order)."""
    acked = {e.payment for e in history if acknowledged(e.status) and e.error is None}
    return [p for p in payment_ids if p not in acked]


def redeliver(profile: Profile, payments: list[Payment], requests: list[PreparedRequest], history: History, plan:
              RedeliveryPlan, send: Callable[[list[PreparedRequest]], None], *, first_round: int = 1,
              progress: Callable[[str, int, int], None] | None = None) -> int:
    """Deliver each unacknowledged payment's messages again at each delay, until acknowledged or the budget ends.

    Each attempt is the payment's deliveries of the plan again — its duplicates too, released together:
    a gateway's retry races its own duplicate deliveries and a merchant's verify call as the first
    delivery did. Every message is signed afresh where the scheme binds time; its
    ``meta["redelivery"]`` is the attempt's number and its ``meta["round"]`` a delivery round of its
    own (``first_round`` for the first attempt). ``send`` fires a list of requests into ``history``.
    Returns how many requests were redelivered.
    """
    planned: dict[str, list[PreparedRequest]] = {}
    for request in requests:
        if request.payment is not None:
            planned.setdefault(request.payment, []).append(request)
    by_id = {p.id: p for p in payments}
    started, sent = time.monotonic(), 0
    for attempt, delay in enumerate(plan.delays, 1):
        waiting = unacknowledged(history, [p.id for p in payments if p.id in planned])
        if not waiting:
            break
        if time.monotonic() + delay - started > plan.budget:
            break
        time.sleep(delay)
        batch = [_marked(redelivery(profile, by_id[pid], request), attempt, first_round + attempt - 1)
                 for pid in waiting for request in planned[pid]]
        send(batch)
        sent += len(batch)
        if progress:
            progress("redelivering", attempt, len(plan.delays))
    if plan.verify and "verify" in profile.channels:
        # A merchant's own check after an outage: one verify call per paid payment (PhonePe's advice).
        paid = [pid for pid, sent_ in planned.items() if sent_[0].meta.get("state", "COMPLETED") == "COMPLETED"]
        batch = [_marked(profile.request("verify", by_id[pid], "COMPLETED"), 0, first_round + len(plan.delays),
                         verify=True) for pid in paid]
        if batch:
            send(batch)
            sent += len(batch)
    return sent


def _marked(request: PreparedRequest, attempt: int, round_: int, *, verify: bool = False) -> PreparedRequest:
    meta = {**request.meta, "round": round_}
    meta["manual_verify" if verify else "redelivery"] = True if verify else attempt
    return replace(request, meta=meta)
