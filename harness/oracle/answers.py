"""The checks over the answers: at most one request per payment says it generated the side effect, and no
request met a server error or a transport error.
"""

from __future__ import annotations

from harness.oracle.evidence import GENERATED_TWICE, SERVER_ERROR, SERVER_ERROR_KIND, TRANSPORT_ERROR, Evidence
from harness.oracle.result import CheckResult, Violation


def one_generation(ev: Evidence) -> CheckResult:
    """At most one request per payment reports that it generated the receipt.

    Files alone can hide duplicates: generations that write one file name overwrite each other.
    The answers cannot: every ``generated`` beyond the first is a side effect that happened again.
    """
    name, description = "one-generation", "at most one request per payment answered that it generated the receipt"
    if not ev.observation.answers_described:
        return CheckResult(name, description, None, made=False,
                           details={"reason": "the profile says nothing about answers ([answers]): judged from "
                                              "side effects and state alone"})
    if not any(e.outcome is not None for e in ev.history):
        answered = [e for e in ev.history if e.status is not None]
        reason = (f"none of the {len(answered)} answers names an outcome in the words [answers] gives"
                  if answered else f"no request got an answer to read an outcome from ({len(ev.history)} sent, "
                                   f"{sum(1 for e in ev.history if e.error)} transport errors)")
        return CheckResult(name, description, None, details={"reason": reason})
    violations, unread = [], []
    for planned in ev.payments:
        events = ev.events_of(planned.payment)
        generated = [e.index for e in events if e.outcome == "generated"]
        if len(generated) > 1:
            violations.append(Violation(name, f"{len(generated)} requests answered that they generated the receipt",
                                        planned.payment.id, events=generated, kind=GENERATED_TWICE))
        # An answer kept only in part (over the harness's bound) has no outcome: it may have said "generated".
        # Where it could make a second generation, this payment cannot be called clean.
        elif len(generated) + sum(1 for e in events if e.outcome is None and e.body_truncated) > 1:
            unread.append(planned.payment.id)
    if unread and not violations:
        return CheckResult(name, description, None, details={
            "reason": f"{len(unread)} payment(s) had answers kept only in part (over the harness's answer bound), "
                      f"whose outcome cannot be read: one of them may have generated again",
            "unread_answers": unread})
    return CheckResult(name, description, not violations, violations)


def no_errors(ev: Evidence) -> CheckResult:
    """No 5xx answers and no transport errors (refused, reset, timed out) in the history; after a kill, the
    requests it cut are counted apart."""
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
    if ev.faulted and (window := ev.history.whole_again()) is not None:
        # Requests the nemesis cut (in flight at the kill, the pause or the cut, or sent before the service
        # was whole again) failed because of the fault the run did on purpose — a transport error, or a 5xx
        # from a service whose database was out of reach: counted apart, as injected 5xx are. A 5xx to a
        # request sent after the fault ended is still a finding.
        cut = [e for e in transport + server if e.t_release is None or e.t_release <= window]
        details["cut_by_fault"] = len(cut)
        transport = [e for e in transport if e not in cut]
        server = [e for e in server if e not in cut]
    violations = [Violation(name, e.error or f"HTTP {e.status}: {str(e.body)[:200]}", e.payment, events=[e.index],
                            kind=TRANSPORT_ERROR if e.error else SERVER_ERROR_KIND)
                  for e in sorted(server + transport, key=lambda e: e.index)]
    if transport:
        details["undelivered_requests"] = sum(1 for e in transport if e.delivered is False)
    return CheckResult(name, description, not violations, violations, details)
