"""The checks over each payment's state read back: does it agree with the side effects found, and did it settle?

They read the profile's state field map, where the other families read the side effects and the history.
"""

from __future__ import annotations

from harness.observe.observation import STATE
from harness.oracle.evidence import (
    STATE_MISMATCH, Evidence, basename, effect_id, receipts_unreadable, unjudged_details, unset,
)
from harness.oracle.result import CheckResult, Violation


def state_agrees_with_disk(ev: Evidence) -> CheckResult:
    """paid <-> claimed <-> the state names the one side effect that exists; unpaid stays unpaid."""
    name = "state-agrees-with-disk"
    fields = ev.observation.state_fields
    paid_f, claim_f, effect_f = fields.get("paid"), fields.get("claim"), fields.get("effect")
    description = (f"{paid_f}, {claim_f or '(no claim flag)'} and {effect_f or '(no effect field)'} agree with the one "
                   f"side effect found; unpaid payments stay unpaid")
    if ev.observation.state_source == "none" and not ev.observation.problems_of(STATE):
        return CheckResult(name, description, None, made=False,
                           details={"reason": "the profile reads no state ([state]): judged from side effects alone"})
    if not ev.observation.state and (problems := ev.observation.problems_of(STATE)):
        return CheckResult(name, description, None, details={"reason": "; ".join(p.message for p in problems)})
    if reason := receipts_unreadable(ev):
        return CheckResult(name, description, None, details={"reason": reason})
    by_key = fields.get("effect_is") == "key"
    violations = []
    existing = {(r.key if by_key else r.name) for r in ev.observation.receipts}

    def wrong(message: str, pid: str, files: list[str] | None = None) -> None:
        violations.append(Violation(name, message, pid, files or [], kind=STATE_MISMATCH))

    for planned in ev.payments:
        if not ev.judged(planned):
            continue
        pid = planned.payment.id
        state = ev.observation.state.get(pid)
        if state is None:
            wrong("the service has no record of this payment", pid)
            continue
        effects = ev.receipts_of(planned.payment)
        files = [effect_id(f) for f in effects]
        paid = state.get("paid", state["paymentStatus"] == "paid")
        claimed = state.get("receiptGenerated")
        raw = state.get("receiptPath")
        recorded = "" if unset(raw) else (str(raw) if by_key else basename(raw))
        if planned.expected_paid:
            if not paid:
                wrong(f"{paid_f} is {state['paymentStatus']!r} after a COMPLETED callback", pid)
            if claim_f and not claimed:
                wrong(f"{claim_f} is false for a paid payment", pid, files)
            if not effect_f:
                pass
            elif not recorded:
                wrong(f"{effect_f} is empty for a paid payment", pid, files)
            elif recorded not in existing:
                wrong(f"{effect_f} names a {'side effect' if by_key else 'file'} that does not exist", pid, [recorded])
            elif len(effects) == 1 and recorded != (effects[0].key if by_key else effects[0].name):
                wrong(f"{effect_f} names another {'side effect' if by_key else 'file'} than the receipt "
                      f"{'found' if by_key else 'on disk'}", pid,
                      [recorded, files[0]])
        else:
            if paid:
                wrong("an unpaid control payment is marked paid", pid)
            if (claim_f and claimed) or recorded:
                wrong(f"an unpaid charge has {claim_f or '(claim)'} or a {effect_f or '(effect)'}", pid,
                      [recorded] if recorded else [])
    details = {"state_source": ev.observation.state_source, **unjudged_details(ev)}
    return CheckResult(name, description, not violations, violations, details)


def settled(ev: Evidence) -> CheckResult:
    """The service's side effects and state stopped changing before they were judged (when the profile waits)."""
    name, description = "settled", "side effects and state stopped changing before they were judged"
    if ev.observation.settled is None:
        return CheckResult(name, description, None, made=False,
                           details={"reason": "the profile does not wait for settling ([settle])"})
    if not ev.observation.settled:
        reasons = [p.message for p in ev.observation.problems if p.kind == "unsettled"]
        return CheckResult(name, description, None, details={"reason": "; ".join(reasons) or "did not settle"})
    return CheckResult(name, description, True)
