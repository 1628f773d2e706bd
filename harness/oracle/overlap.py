"""Was the race exercised? Duplicates must reach the service while the generation they race is running.

A run whose duplicates arrived one after another proves nothing about a check-then-act bug, so the
checker here says *unknown* (never a pass) when it cannot show that they overlapped.
"""

from __future__ import annotations

from collections import Counter
from statistics import median
from typing import Any

from harness.history import Event
from harness.oracle.evidence import Evidence, unjudged_details
from harness.oracle.result import CheckResult
from harness.stats import percentile


# A run is a race only when it was tight: in CATCH_PROBABILITY of its duplicate groups the first two deliveries
# reached the service (its own X-Arrival-Ns stamps) within this many ms of each other. A handler's whole
# duration (Server-Timing) is not its check-then-act window: a duplicate 22 ms late still arrives inside a
# 250 ms handler, and would never hit a 10 ms window. Judged over the run (the 95th percentile of the gaps,
# the run's own stated strength), not per payment: one payment stamped late by a busy machine is not a skew.
# 30 ms: on this two-core machine under a loaded test suite a correct swarm's duplicates were seen up to ~17 ms
# apart (CI); a skewed lane's run is also caught by the clock-lag rule below, whatever its gaps.
RACE_GAP_MS = 30.0
CATCH_PROBABILITY = 0.95  # the run's strength is the narrowest window caught with this probability
# Lanes on several clocks (swarm workers): how far apart the lanes' lags may be (how much later the service saw
# a lane's duplicates than the others', beyond what their release times say, median over the run's payments). More is a clock
# the master did not correct for (a skewed worker releases "together" on its own clock, apart on the
# service's); the median keeps one payment stamped late by a busy service from reading as a skew.
# 10 ms: two lanes on one loaded CI machine, both clocks measured within ±0.2 ms, were seen 5.6 ms apart over
# 4 payments; an uncorrected 20 ms skew shows as ~20 ms.
CLOCK_DISAGREEMENT_MS = 10.0
NOT_TIGHT = "not a tight race"  # how the reason begins when the run's strength is over RACE_GAP_MS


def race_exercised(ev: Evidence) -> CheckResult:
    """Duplicates overlapped: in every delivery round in which a paid payment's receipt was generated (or
    failed to be), its duplicates all reached the service before that generation finished. A payment
    whose duplicates did not (or cannot be shown to) overlap proves nothing, so the run is
    inconclusive, never a pass. See ``overlap``.
    """
    name = "race-exercised"
    description = "duplicates of each paid payment overlapped its receipt generation"
    judged, not_overlapped, unjudgeable, cut = 0, [], [], []
    for planned in ev.payments:
        if not planned.expected_paid or not ev.judged(planned):
            continue
        events = [e for e in ev.delivered_events_of(planned.payment) if e.t_release is not None
                  and "redelivery" not in e.meta and "manual_verify" not in e.meta]
        if ev.faulted and _touched_by_the_fault(ev, events):
            cut.append(planned.payment.id)  # the fault struck while its burst was under way: its answers show the fault
            continue
        if max(Counter(e.meta.get("round", 0) for e in events).values(), default=0) < 2:
            unjudgeable.append((planned.payment.id, "fewer than two requests reached the service: nothing raced"))
            continue
        overlapped, why = overlap(events)
        if overlapped is None:
            unjudgeable.append((planned.payment.id, why))
            continue
        judged += 1
        if not overlapped:
            not_overlapped.append(planned.payment.id)
    skipped = sum(1 for e in ev.history if e.outcome == "already_generated")
    raced = [e for planned in ev.payments if planned.expected_paid and ev.judged(planned)
             for e in ev.delivered_events_of(planned.payment) if "redelivery" not in e.meta]
    loose = not_tight(raced)
    lags = clock_lags(raced)
    disagreeing = lags if lags and max(lags.values()) - min(lags.values()) > CLOCK_DISAGREEMENT_MS else {}
    details = {"payments_judged": judged, "not_overlapped": not_overlapped,
               "unjudgeable": [f"{p}: {why}" for p, why in unjudgeable], "duplicates_skipped": skipped,
               "race_gap_ms": RACE_GAP_MS, **({"not_tight": loose} if loose else {}),
               **({"clock_lag_ms": lags} if lags else {}),
               **unjudged_details(ev), **({"cut_by_fault": cut} if cut else {})}
    if cut and not judged and not not_overlapped and not unjudgeable:
        details["reason"] = (f"the fault cut the burst of every paid payment it could judge ({len(cut)}) before "
                             "its answers came: overlap cannot be shown, and the run is judged for eventual "
                             "exactly-once")
        return CheckResult(name, description, None, details=details, made=False)
    if not_overlapped or unjudgeable or judged == 0 or disagreeing or loose:
        reasons = []
        if disagreeing:
            reasons.append("the lanes' clocks disagree: beyond their release times, the service saw each lane's "
                           "duplicates " + ", ".join(f"{clock} {lag:+.1f} ms" for clock, lag in sorted(disagreeing.items()))
                           + f" off the middle (median over the payments; more than {CLOCK_DISAGREEMENT_MS:g} ms "
                             "apart), so the release instants did not hold at the service")
        if not_overlapped:
            reasons.append(f"{len(not_overlapped)} paid payment(s) whose duplicates arrived after the receipt was done")
        if loose:
            reasons.append(loose["reason"])
        if unjudgeable:
            reasons.append(f"{len(unjudgeable)} paid payment(s) could not be judged ({unjudgeable[0][1]})")
        if judged == 0 and not reasons:
            reasons.append("no paid payment to race")
        details["reason"] = "; ".join(reasons)
        return CheckResult(name, description, None, details=details)
    return CheckResult(name, description, True, details=details)


def _touched_by_the_fault(ev: Evidence, events: list[Event]) -> bool:
    """Whether the nemesis struck while these requests were under way: one failed, or was answered after the harm."""
    harm = ev.history.first_harm()
    if harm is None:
        return any(e.status is None or e.status >= 500 for e in events)
    struck = ev.history.fault_time(harm)
    return any(e.status is None or e.status >= 500 or e.t_response is None or e.t_response >= struck for e in events)


def overlap(events: list[Event]) -> tuple[bool | None, str]:
    """Did every request of a payment reach the service before the generation it raced finished?

    Every delivery round in which a request generated (or failed to generate) the receipt is judged;
    a round in which nothing was generated (the receipt was already there) raced nothing. The
    payment overlapped when every such round did; one round shown not to overlap is False; one that
    cannot be judged makes the payment unknown. See ``round_overlap`` for the evidence.
    """
    verdicts = []
    for round_ in sorted({e.meta.get("round", 0) for e in events}):
        batch = [e for e in events if e.meta.get("round", 0) == round_]
        if len(batch) > 1 and any(_finished(e) for e in batch):
            verdicts.append(round_overlap(batch))
        elif len(batch) > 1 and all(e.outcome is None for e in batch):
            verdicts.append(in_flight_together(batch))
    if not verdicts:
        return None, "no request reported generating (or failing to generate) a receipt"
    for wanted in (False, None):
        for verdict in verdicts:
            if verdict[0] is wanted:
                return verdict
    return True, "; ".join(dict.fromkeys(why for _, why in verdicts))


def _finished(event: Event) -> bool:
    return event.outcome in ("generated", "failed") and event.t_response is not None


def round_overlap(batch: list[Event]) -> tuple[bool | None, str]:
    """Did every request of one round reach the service before the round's first generation finished?

    The evidence, strongest first:

    - the service's own clock: its arrival stamp (``X-Arrival-Ns``) of every request, and the time it
      says it worked on the generating request (``Server-Timing``): the first generation was done at
      arrival + duration, with no network time in it, so a request arriving after that did not overlap.
      One arriving before it overlapped the handler, which is not its check-then-act window: whether the
      run's duplicates were close enough to hit a narrow window is judged over the run (``not_tight``);
    - arrival stamps without durations: a request that arrived no later than the first finisher
      arrived was in time; one that arrived after a finisher's arrival plus its whole round trip
      (an upper bound of its work) was not; anything between cannot be told from stamps;
    - what the answers prove: two requests that both generated raced; a loser answered before the
      winner, on the same clock, must have arrived before the winner finished. Release times prove
      nothing (a last-byte burst releases everything before reading anything), and times measured
      on different clocks (distributed workers) are never compared.
    """
    finishers = [e for e in batch if _finished(e)]
    if all(e.server_arrival is not None for e in batch):
        arrivals = [e.server_arrival for e in batch]
        timed = [e.server_arrival + e.server_duration for e in finishers if e.server_duration is not None]
        if timed:
            return max(arrivals) < min(timed), "arrivals and processing time reported by the service"
        bounds = [e.server_arrival + e.latency for e in finishers if e.latency is not None]
        if bounds and max(arrivals) > min(bounds):
            return False, "a request arrived after the first generation's whole round trip"
        if max(arrivals) <= min(e.server_arrival for e in finishers):
            return True, "every request arrived before the first generating request did"
    if sum(1 for e in batch if e.outcome == "generated") >= 2:
        return True, "two requests both generated"
    first = min(finishers, key=lambda e: e.t_response)
    others = [e for e in batch if e is not first]
    if all(e.clock == first.clock and e.t_response is not None and e.t_response < first.t_response for e in others):
        return True, "every other request was answered before the first generation finished"
    return None, ("the service reports no processing time (Server-Timing) or arrival times (X-Arrival-Ns), and some "
                  "duplicates were answered after the first generation or on another clock: their overlap cannot "
                  "be shown")


def arrival_gaps(events: list[Event]) -> dict[tuple[Any, Any], float]:
    """Per duplicate group (one payment's deliveries in one delivery round), seconds between its first two
    server arrivals; groups with fewer than two arrival stamps give nothing."""
    groups: dict[tuple[Any, Any], list[float]] = {}
    for event in events:
        if event.delivered and event.server_arrival is not None and event.payment is not None:
            groups.setdefault((event.payment, event.meta.get("round", 0)), []).append(event.server_arrival)
    gaps = {}
    for key, arrivals in groups.items():
        if len(arrivals) > 1:
            first, second = sorted(arrivals)[:2]
            gaps[key] = second - first
    return gaps


def first_arrival_gaps(events: list[Event]) -> list[float]:
    """The first-two-arrival gap of every duplicate group (``arrival_gaps``), in seconds."""
    return list(arrival_gaps(events).values())


def catchable_window(gaps: list[float], probability: float = CATCH_PROBABILITY) -> float | None:
    """The narrowest check-then-act window this run would have caught with ``probability``, in seconds.

    The model: a handler that checks a flag when a request arrives and sets it ``W`` later lets a
    duplicate through when a second delivery of the same payment arrives before the first one's
    claim, i.e. within ``W`` of the first arrival. So one duplicate group (a payment's deliveries in
    one round) catches a window ``W`` exactly when its first two server arrivals are less than ``W``
    apart, whatever happens to the others. The run's own groups are the sample: the fraction of them
    whose first gap is below ``W`` is the probability that a payment of this run catches ``W``, and
    the narrowest ``W`` reaching ``probability`` is that quantile of the gaps (nearest rank: with
    fewer than 20 groups at 95 %, the widest gap). Arrival is the service's own stamp
    (``X-Arrival-Ns``: the request was complete), so whatever the network and the server's accept
    queue did to the burst is in it; work the handler does before its check is not (it shifts every
    duplicate alike unless the handler serialises them). None when no group had two stamps.
    """
    if not gaps:
        return None
    return percentile(gaps, probability * 100)


def not_tight(events: list[Event]) -> dict[str, Any] | None:
    """Why a swarm's duplicates did not race tightly enough to call it a race, as details (None: they did).

    The run's strength — the narrowest check-then-act window it catches with ``CATCH_PROBABILITY`` — is the
    95th percentile of its first-two-arrival gaps (``catchable_window``); over ``RACE_GAP_MS`` the run cannot
    show the race, whatever the handler's duration says. Judged only when the duplicates were released on
    several clocks (swarm lanes): there, release instants that drifted apart look synchronised to every lane
    and only the service sees it. Released on one clock, a loose run is the machine's load, which the report's
    strength line states (a loaded CI machine's single-clock runs reach 27 ms at the 95th percentile)."""
    if len({e.clock for e in events if e.clock is not None}) < 2:
        return None  # one clock released every duplicate: looseness there is the machine's load (the strength line)
    gaps = first_arrival_gaps(events)
    window = catchable_window(gaps)
    if window is None or window * 1000 <= RACE_GAP_MS:
        return None
    wide = sorted({str(payment) for (payment, _), gap in arrival_gaps(events).items() if gap * 1000 > RACE_GAP_MS})
    return {"window_ms": round(window * 1000, 3), "payments": wide,
            "reason": (f"{NOT_TIGHT}: in {CATCH_PROBABILITY:.0%} of the {len(gaps)} duplicate group(s) the first two "
                       f"deliveries reached the service within {window * 1000:.1f} ms of each other, over "
                       f"{RACE_GAP_MS:g} ms; a check-then-act window narrower than that would not have been hit "
                       f"(a handler's duration is not its race window)")}


def clock_lags(events: list[Event]) -> dict[str, float]:
    """Per clock (lane), the median over rounds sent from several clocks of how much later the service saw that
    lane's duplicates than the round's others, beyond how much later the lane released them (ms). Near 0 for
    every lane when their clocks agree (or were corrected); a lane whose clock is ahead by ``d`` shows ``-d``."""
    rounds: dict[tuple, list[Event]] = {}
    for event in events:
        if event.server_arrival is not None and event.t_release is not None and event.clock is not None:
            rounds.setdefault((event.payment, event.meta.get("round", 0)), []).append(event)
    lags: dict[str, list[float]] = {}
    for batch in rounds.values():
        if len({e.clock for e in batch}) < 2:
            continue
        # arrival minus release: the same for every duplicate of a round, but for network and clock error
        seen = [(e.clock, (e.server_arrival - e.t_release) * 1000) for e in batch]
        middle = median(d for _, d in seen)
        for clock, d in seen:
            lags.setdefault(str(clock), []).append(d - middle)
    return {clock: round(median(values), 3) for clock, values in lags.items()}


def in_flight_together(batch: list[Event]) -> tuple[bool | None, str]:
    """For a service whose answers name no outcome: was every duplicate sent before the first answer came back?

    The weaker evidence a silent service leaves: on one clock, the last request was released
    before any request was answered, so none of them waited for another's answer. Without the
    service's own times nothing stronger can be shown; anything less is unknown.
    """
    answered = [e.t_response for e in batch if e.t_response is not None]
    released = [e.t_release for e in batch if e.t_release is not None]
    if len(answered) < len(batch) or len(released) < len(batch) or len({e.clock for e in batch}) > 1:
        return None, "some duplicates were not answered, or were answered on another clock"
    if max(released) < min(answered):
        return True, ("every duplicate was sent before the first answer came back (the service names no outcome, "
                      "arrival or processing time; for a service that answers before it works, this cannot show "
                      "that the work itself overlapped)")
    return False, "a duplicate was sent only after another had been answered"


def payment_overlapped(events: list[Event]) -> bool | None:
    return overlap(events)[0]
