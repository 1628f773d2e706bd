"""Was it right? Small checkers over the history, the side effects and the state read back (Jepsen's model).

Each checker is a function of the ``Evidence`` returning a ``CheckResult`` whose ``valid`` is True,
False, or None (unknown). A checker that raises is unknown, never a pass; missing evidence is
unknown. The checkers know the service only through its profile's data and what it left behind.
One module per family: ``effects``, ``answers``, ``state``, ``overlap``; ``check`` runs them all.
"""

from harness.oracle.answers import no_errors, one_generation
from harness.oracle.effects import exactly_one_receipt, receipt_files
from harness.oracle.faults import fault_injected
from harness.oracle.evidence import (  # the violation kinds: reports and metrics count by kind, never by message
    DUPLICATE, FILE_CONFLICT, GENERATED_TWICE, MISSING, ORPHAN, SERVER_ERROR_KIND, SHARED_KEY, STATE_MISMATCH,
    TRANSPORT_ERROR, UNPAID_RECEIPT, UNREADABLE, WRONG_AMOUNT, WRONG_PAYMENT, LOST, Checker, Evidence, PlannedPayment,
)
from harness.oracle.overlap import overlap, payment_overlapped, race_exercised, round_overlap
from harness.oracle.result import CheckResult, Violation
from harness.oracle.state import settled, state_agrees_with_disk

__all__ = ["DUPLICATE", "FILE_CONFLICT", "LOST", "GENERATED_TWICE", "MISSING", "ORPHAN", "SERVER_ERROR_KIND", "SHARED_KEY", "STATE_MISMATCH", "TRANSPORT_ERROR", "UNPAID_RECEIPT", "UNREADABLE", "WRONG_AMOUNT", "WRONG_PAYMENT",
           "CHECKERS", "CheckResult", "Checker", "Evidence", "PlannedPayment", "Violation", "check",
           "exactly_one_receipt", "fault_injected", "no_errors", "one_generation", "overlap", "payment_overlapped", "race_exercised",
           "receipt_files", "round_overlap", "settled", "state_agrees_with_disk"]

CHECKERS: tuple[Checker, ...] = (exactly_one_receipt, one_generation, receipt_files, state_agrees_with_disk,
                                 no_errors, race_exercised)


def check(evidence: Evidence, checkers: tuple[Checker, ...] = CHECKERS) -> list[CheckResult]:
    """Run every checker; one that raises becomes unknown with the error as its reason.

    A profile that waits for settling adds the ``settled`` check; a run with a nemesis, ``fault-injected``.
    """
    if evidence.observation.settled is not None and settled not in checkers:
        checkers = (*checkers, settled)
    if evidence.history.nemesis is not None and fault_injected not in checkers:
        checkers = (*checkers, fault_injected)
    results = []
    for checker in checkers:
        try:
            results.append(checker(evidence))
        except Exception as exc:  # an exception in a checker is an unknown, never a pass
            name = checker.__name__.replace("_", "-")
            summary = ((checker.__doc__ or "").strip().splitlines() or [name])[0]
            results.append(CheckResult(name, summary, None,
                                       details={"reason": f"checker raised {exc.__class__.__name__}: {exc}"}))
    transactions = {p.payment.id: p.payment.merchant_transaction_id for p in evidence.payments}
    for result in results:  # every violation also names its payment the way people search for it
        for violation in result.violations:
            if violation.payment and violation.transaction is None:
                violation.transaction = transactions.get(violation.payment)
    return results
