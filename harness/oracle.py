"""Was it right? Small checkers over the history, the receipts on disk and the state read back.

Each checker is a function of the Evidence returning a CheckResult whose ``valid`` is True, False,
or None (unknown). A checker that raises is unknown, never a pass; missing evidence is unknown.
The checkers know the service only through the Target's data and what it left behind.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import PurePath
from typing import Callable

from .history import Event, History
from .observe import Observation, ReceiptFile
from .result import CheckResult, Violation
from .target import Payment

SERVER_ERROR = 500


@dataclass(frozen=True)
class PlannedPayment:
    payment: Payment
    expected_paid: bool  # True: received COMPLETED; False: an unpaid control (only FAILED/PENDING)


@dataclass
class Evidence:
    """Everything the checkers judge: what was planned, what happened, what was left behind."""

    payments: list[PlannedPayment]
    history: History
    observation: Observation
    # The run injected a fault that answers 5xx: such answers, marked by the service as injected
    # (Event.meta["injected_fault"]), are reported apart rather than as violations.
    server_errors_injected: bool = False

    def by_transaction(self) -> dict[str, PlannedPayment]:
        return {p.payment.merchant_transaction_id: p for p in self.payments}

    def events_of(self, payment: Payment) -> list[Event]:
        return [e for e in self.history if e.payment == payment.id]

    def receipts_of(self, payment: Payment) -> list[ReceiptFile]:
        return self.observation.receipts_by_transaction().get(payment.merchant_transaction_id, [])


Checker = Callable[[Evidence], CheckResult]


def receipts_unreadable(ev: Evidence) -> str | None:
    if ev.observation.receipts_dir is None:
        return "no receipts directory to read"
    bad = [e for e in ev.observation.errors if "receipts" in e]
    return bad[0] if bad else None


def exactly_one_receipt(ev: Evidence) -> CheckResult:
    """Exactly one receipt file per paid payment and none per unpaid one, grouped by the PDF's own metadata."""
    name, description = "exactly-one-receipt", "exactly one receipt file per paid payment, none for unpaid ones"
    if reason := receipts_unreadable(ev):
        return CheckResult(name, description, None, details={"reason": reason})
    violations, counts = [], {}
    for planned in ev.payments:
        files = ev.receipts_of(planned.payment)
        counts[planned.payment.id] = len(files)
        names = [f.name for f in files]
        if planned.expected_paid and len(files) == 0:
            violations.append(Violation(name, "missing receipt: paid payment has no receipt file", planned.payment.id))
        elif planned.expected_paid and len(files) > 1:
            violations.append(Violation(name, f"duplicate receipts: {len(files)} files for one payment",
                                        planned.payment.id, names))
        elif not planned.expected_paid and files:
            violations.append(Violation(name, f"receipt for an unpaid payment ({len(files)} file(s))",
                                        planned.payment.id, names))
    return CheckResult(name, description, not violations, violations, {"receipts_per_payment": counts})


def one_generation(ev: Evidence) -> CheckResult:
    """At most one request per payment reports that it generated the receipt.

    Files alone can hide duplicates: generations that write one file name overwrite each other.
    The answers cannot: every ``generated`` beyond the first is a side effect that happened again.
    """
    name, description = "one-generation", "at most one request per payment answered that it generated the receipt"
    if not any(e.outcome is not None for e in ev.history):
        return CheckResult(name, description, None,
                           details={"reason": "the service's answers name no outcome (Target.outcome_field)"})
    violations = []
    for planned in ev.payments:
        generated = [e.index for e in ev.events_of(planned.payment) if e.outcome == "generated"]
        if len(generated) > 1:
            violations.append(Violation(name, f"{len(generated)} requests answered that they generated the receipt",
                                        planned.payment.id, events=generated))
    return CheckResult(name, description, not violations, violations)


def receipt_files(ev: Evidence) -> CheckResult:
    """Every file is a finished, readable PDF whose transaction and amount match its payment; no overwrites."""
    name = "receipt-files"
    description = "every receipt is a readable PDF matching its payment; no partial files or overwritten generations"
    if reason := receipts_unreadable(ev):
        return CheckResult(name, description, None, details={"reason": reason})
    known = ev.by_transaction()
    violations, foreign = [], []
    for receipt in ev.observation.receipts:
        if not receipt.is_final:
            violations.append(Violation(name, "file conflict: temporary or partial file left in the receipts directory",
                                        files=[receipt.name]))
            continue
        if not receipt.readable:
            violations.append(Violation(name, f"unreadable receipt ({receipt.error})", files=[receipt.name]))
            continue
        planned = known.get(receipt.subject or "")
        if planned is None:
            foreign.append(receipt.name)  # another run's file; not ours to judge
            continue
        payment = planned.payment
        if receipt.text_transaction != payment.merchant_transaction_id:
            violations.append(Violation(name, f"printed transaction {receipt.text_transaction!r} differs from the "
                                              f"metadata's {payment.merchant_transaction_id!r}", payment.id, [receipt.name]))
        if receipt.amount != payment.amount:
            violations.append(Violation(name, f"printed amount {receipt.amount} differs from the payment's "
                                              f"{payment.amount}", payment.id, [receipt.name]))
    violations += _overwritten_generations(ev)
    return CheckResult(name, description, not violations, violations, {"foreign_files": foreign})


def _overwritten_generations(ev: Evidence) -> list[Violation]:
    """Two generations that reported the same file: one overwrote the other (a file conflict)."""
    out = []
    for planned in ev.payments:
        generated = [e for e in ev.events_of(planned.payment) if e.outcome == "generated"]
        paths = Counter(_basename(e.body.get("receiptPath")) for e in generated
                        if isinstance(e.body, dict) and e.body.get("receiptPath"))
        for path, count in paths.items():
            if count > 1:
                out.append(Violation("receipt-files", f"file conflict: {count} generations wrote the same file",
                                     planned.payment.id, [path],
                                     [e.index for e in generated if _basename(e.body.get("receiptPath")) == path]))
    return out


def _basename(path: object) -> str:
    return PurePath(str(path)).name if path else ""


def state_agrees_with_disk(ev: Evidence) -> CheckResult:
    """paid <-> receiptGenerated <-> receiptPath names the one existing file; unpaid stays unpaid."""
    name = "state-agrees-with-disk"
    description = "paid, receiptGenerated and receiptPath agree with the one file on disk; unpaid charges stay unpaid"
    if not ev.observation.state and ev.observation.errors:
        return CheckResult(name, description, None, details={"reason": "; ".join(ev.observation.errors)})
    if reason := receipts_unreadable(ev):
        return CheckResult(name, description, None, details={"reason": reason})
    violations = []
    existing = {r.name for r in ev.observation.receipts}
    for planned in ev.payments:
        pid = planned.payment.id
        state = ev.observation.state.get(pid)
        if state is None:
            violations.append(Violation(name, "the service has no record of this payment", pid))
            continue
        files = [f.name for f in ev.receipts_of(planned.payment)]
        paid = state["paymentStatus"] == "paid"
        recorded = _basename(state.get("receiptPath"))
        if planned.expected_paid:
            if not paid:
                violations.append(Violation(name, f"paymentStatus is {state['paymentStatus']!r} after a COMPLETED callback", pid))
            if not state["receiptGenerated"]:
                violations.append(Violation(name, "receiptGenerated is false for a paid payment", pid, files))
            if not recorded:
                violations.append(Violation(name, "receiptPath is empty for a paid payment", pid, files))
            elif recorded not in existing:
                violations.append(Violation(name, "receiptPath names a file that does not exist", pid, [recorded]))
            elif len(files) == 1 and recorded != files[0]:
                violations.append(Violation(name, "receiptPath names another file than the receipt on disk", pid,
                                            [recorded, files[0]]))
        else:
            if paid:
                violations.append(Violation(name, "an unpaid control payment is marked paid", pid))
            if state["receiptGenerated"] or recorded:
                violations.append(Violation(name, "an unpaid charge has receiptGenerated or a receiptPath", pid,
                                            [recorded] if recorded else []))
    return CheckResult(name, description, not violations, violations, {"state_source": ev.observation.state_source})


def no_errors(ev: Evidence) -> CheckResult:
    """No 5xx answers and no transport errors (refused, reset, timed out) in the history."""
    name, description = "no-errors", "no 5xx responses or transport errors"
    if not len(ev.history):
        return CheckResult(name, description, None, details={"reason": "no requests were sent"})
    server = [e for e in ev.history if e.error is None and e.status is not None and e.status >= SERVER_ERROR]
    transport = [e for e in ev.history if e.error is not None]
    details: dict = {}
    if ev.server_errors_injected:
        # The run told the service to fail this way: answers the service marks as that injected
        # fault are the fault, not a finding. Any other 5xx still is.
        injected = [e for e in server if e.meta.get("injected_fault")]
        details["injected_server_errors"] = len(injected)
        server = [e for e in server if not e.meta.get("injected_fault")]
    violations = [Violation(name, e.error or f"HTTP {e.status}: {str(e.body)[:200]}", e.payment, events=[e.index])
                  for e in sorted(server + transport, key=lambda e: e.index)]
    return CheckResult(name, description, not violations, violations, details)


def race_exercised(ev: Evidence) -> CheckResult:
    """Duplicates overlapped: each paid payment's duplicates all reached the service before its first
    generation finished. A payment whose duplicates did not (or cannot be shown to) overlap proves
    nothing, so the run is inconclusive, never a pass. See ``overlap``.
    """
    name = "race-exercised"
    description = "duplicates of each paid payment overlapped its receipt generation"
    judged, not_overlapped, unjudgeable = 0, [], []
    for planned in ev.payments:
        if not planned.expected_paid:
            continue
        events = [e for e in ev.events_of(planned.payment) if e.t_release is not None]
        if max(Counter(e.meta.get("round", 0) for e in events).values(), default=0) < 2:
            unjudgeable.append((planned.payment.id, "fewer than two requests: nothing raced"))
            continue
        overlapped, why = overlap(events)
        if overlapped is None:
            unjudgeable.append((planned.payment.id, why))
            continue
        judged += 1
        if not overlapped:
            not_overlapped.append(planned.payment.id)
    skipped = sum(1 for e in ev.history if e.outcome == "already_generated")
    details = {"payments_judged": judged, "not_overlapped": not_overlapped,
               "unjudgeable": [f"{p}: {why}" for p, why in unjudgeable], "duplicates_skipped": skipped}
    if not_overlapped or unjudgeable or judged == 0:
        reasons = []
        if not_overlapped:
            reasons.append(f"{len(not_overlapped)} paid payment(s) whose duplicates arrived after the receipt was done")
        if unjudgeable:
            reasons.append(f"{len(unjudgeable)} paid payment(s) could not be judged ({unjudgeable[0][1]})")
        if judged == 0 and not reasons:
            reasons.append("no paid payment to race")
        details["reason"] = "; ".join(reasons)
        return CheckResult(name, description, None, details=details)
    return CheckResult(name, description, True, details=details)


def overlap(events: list[Event]) -> tuple[bool | None, str]:
    """Did every request of a payment reach the service before its first generation finished?

    Judged in the first delivery round in which a request generated (or failed to generate) the
    receipt; retries in later rounds are meant to come after it. Two kinds of evidence:

    - the service's own arrival stamps (``X-Arrival-Ns``): the winner finished by its arrival plus
      its round trip, both on the service's clock plus a duration, so clock skew between the
      harness and a remote service does not matter;
    - without stamps, only what the answers prove: two requests that both generated raced; a loser
      answered before the winner must have arrived before the winner finished. Release times prove
      nothing (a last-byte burst releases everything before reading anything), so a loser answered
      after the winner leaves the payment unjudgeable rather than passed.
    """
    for round_ in sorted({e.meta.get("round", 0) for e in events}):
        batch = [e for e in events if e.meta.get("round", 0) == round_]
        finishers = [e for e in batch if e.outcome in ("generated", "failed") and e.t_response is not None]
        if not finishers:
            continue
        first = min(finishers, key=lambda e: e.t_response)
        if all(e.server_arrival is not None for e in batch) and first.latency is not None:
            done = first.server_arrival + first.latency
            return max(e.server_arrival for e in batch) < done, "arrivals stamped by the service"
        if sum(1 for e in batch if e.outcome == "generated") >= 2:
            return True, "two requests both generated"
        others = [e for e in batch if e is not first]
        if all(e.t_response is not None and e.t_response < first.t_response for e in others):
            return True, "every other request was answered before the first generation finished"
        return None, ("the service reports no arrival times (X-Arrival-Ns) and some duplicates were answered "
                      "after the first generation: their overlap cannot be shown")
    return None, "no request reported generating (or failing to generate) a receipt"


def payment_overlapped(events: list[Event]) -> bool | None:
    return overlap(events)[0]


CHECKERS: tuple[Checker, ...] = (exactly_one_receipt, one_generation, receipt_files, state_agrees_with_disk,
                                 no_errors, race_exercised)


def check(evidence: Evidence, checkers: tuple[Checker, ...] = CHECKERS) -> list[CheckResult]:
    """Run every checker; one that raises becomes unknown with the error as its reason."""
    results = []
    for checker in checkers:
        try:
            results.append(checker(evidence))
        except Exception as exc:  # an exception in a checker is an unknown, never a pass
            name = checker.__name__.replace("_", "-")
            summary = ((checker.__doc__ or "").strip().splitlines() or [name])[0]
            results.append(CheckResult(name, summary, None,
                                       details={"reason": f"checker raised {exc.__class__.__name__}: {exc}"}))
    return results
