"""Was it right? Small checkers over the history, the receipts on disk and the state read back.

Each checker is a function of the Evidence returning a CheckResult whose ``valid`` is True, False,
or None (unknown). A checker that raises is unknown, never a pass; missing evidence is unknown.
The checkers know the service only through the Target's data and what it left behind.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import PurePath
from typing import Callable

from .content import amount_named, transactions_named
from .history import Event, History
from .observe import RECEIPT_VANISHED, RECEIPTS_DIR, Observation, ReceiptFile
from .result import CheckResult, Violation
from .target import Payment

SERVER_ERROR = 500

# Violation kinds: reports and metrics count by kind, never by message text.
MISSING, DUPLICATE, UNPAID_RECEIPT = "missing-receipt", "duplicate-receipts", "unpaid-receipt"
GENERATED_TWICE, FILE_CONFLICT, UNREADABLE = "generated-twice", "file-conflict", "unreadable-receipt"
WRONG_PAYMENT, WRONG_AMOUNT, STATE_MISMATCH = "wrong-payment", "wrong-amount", "state-mismatch"
SERVER_ERROR_KIND, TRANSPORT_ERROR = "server-error", "transport-error"
SHARED_KEY, ORPHAN = "shared-key", "orphan-effect"


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
    _events: dict[str, list[Event]] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self._events = self.history.by_payment()

    def by_transaction(self) -> dict[str, PlannedPayment]:
        return {p.payment.merchant_transaction_id: p for p in self.payments}

    def events_of(self, payment: Payment) -> list[Event]:
        return self._events.get(payment.id, [])

    def delivered_events_of(self, payment: Payment) -> list[Event]:
        """The payment's requests that provably reached the service."""
        return [e for e in self.events_of(payment) if e.delivered]

    def judged(self, planned: PlannedPayment) -> bool:
        """A paid payment none of whose requests reached the service cannot be judged: the service was
        never told it was paid. Unpaid controls are always judged (they must end with no receipt)."""
        return not planned.expected_paid or bool(self.delivered_events_of(planned.payment))

    @property
    def unjudged(self) -> list[PlannedPayment]:
        return [p for p in self.payments if not self.judged(p)]

    @cached_property
    def state_holders(self) -> dict[tuple[str, str], list[str]]:
        """(state field, value) -> the transactions whose state holds it (a key the service assigned)."""
        holders: dict[tuple[str, str], list[str]] = {}
        for planned in self.payments:
            state = self.observation.state.get(planned.payment.id) or {}
            for field_name, value in (state.get("join") or {}).items():
                if not _unset(value):
                    holders.setdefault((field_name, str(value)), []).append(planned.payment.merchant_transaction_id)
        return holders

    @cached_property
    def receipt_owners(self) -> dict[str, str]:
        """Side effect name -> the transaction id of the payment it belongs to.

        A side effect keyed by a profile's rule belongs to the payment its key names: a transaction
        id, a payment id, or a value the payment's state holds (a receipt number the service
        assigned). Without a rule (the reference service's receipts): by the PDF's Subject when it
        names one of the run's payments, else by the one transaction id of the run its page text
        prints, else by the one its file name carries. An effect naming none (or several) of the
        run's payments is not ours to judge (another run's, or ambiguous).
        """
        known = set(self.by_transaction())
        by_id = {p.payment.id: p.payment.merchant_transaction_id for p in self.payments}
        by_state: dict[tuple[str, str], str | None] = {}
        for (field_name, value), holders in self.state_holders.items():
            by_state[(field_name, value)] = holders[0] if len(holders) == 1 else None  # shared: told by content
        owners = {}
        for receipt in self.observation.receipts:
            if receipt.keyed:
                owner = None
                if receipt.key is None:
                    continue
                if receipt.joins == "transaction":
                    owner = receipt.key if receipt.key in known else None
                elif receipt.joins == "id":
                    owner = by_id.get(receipt.key)
                else:
                    owner = by_state.get((receipt.joins.removeprefix("state."), receipt.key))
                if owner is not None:
                    owners[_effect_id(receipt)] = owner
                    continue
                # A key the run cannot join (a receipt number no payment's state holds any more: the
                # state kept another duplicate's) still belongs to the payment its content names.
                if receipt.source != "files":
                    named = {str(v) for v in (receipt.data or {}).values() if isinstance(v, (str, int))} & known
                    if len(named) == 1:
                        owners[_effect_id(receipt)] = named.pop()
                    continue
            if receipt.subject in known:
                owners[_effect_id(receipt)] = receipt.subject
                continue
            for source in (receipt.text, receipt.name):
                named = transactions_named(source, known)
                if len(named) == 1:
                    owners[_effect_id(receipt)] = named.pop()
                    break
        return owners

    @cached_property
    def _receipts_by_transaction(self) -> dict[str, list[ReceiptFile]]:
        grouped: dict[str, list[ReceiptFile]] = {}
        for receipt in self.observation.receipts:
            if owner := self.receipt_owners.get(_effect_id(receipt)):
                grouped.setdefault(owner, []).append(receipt)
        return grouped

    def receipts_of(self, payment: Payment) -> list[ReceiptFile]:
        return self._receipts_by_transaction.get(payment.merchant_transaction_id, [])


def _unset(value: object) -> bool:
    """A state value that names nothing: absent, empty, or a schema default such as 0 or false."""
    return value is None or value is False or value in ("", 0) or value == [] or value == {}


def _effect_id(receipt: ReceiptFile) -> str:
    """A side effect's name, unique across sources (a file's name as it always was)."""
    return receipt.name if receipt.source == "files" else f"{receipt.source}:{receipt.kind}:{receipt.name}"


Checker = Callable[[Evidence], CheckResult]


def receipts_unreadable(ev: Evidence) -> str | None:
    if ev.observation.receipts_dir is None and not ev.observation.effect_sources:
        return "no side-effect source to read (no receipts directory, no profile effects)"
    bad = ev.observation.problems_of(RECEIPTS_DIR)
    return bad[0].message if bad else None


def _unjudged_details(ev: Evidence) -> dict:
    unjudged = ev.unjudged
    return {"unjudged": [p.payment.id for p in unjudged]} if unjudged else {}


def exactly_one_receipt(ev: Evidence) -> CheckResult:
    """Exactly one side effect of each kind per paid payment and none per unpaid one, grouped by its own content."""
    name, description = "exactly-one-receipt", "exactly one receipt (side effect of each kind) per paid payment, none for unpaid ones"
    if reason := receipts_unreadable(ev):
        return CheckResult(name, description, None, details={"reason": reason})
    kinds = _kinds(ev)
    violations, counts = [], {}
    for planned in ev.payments:
        effects = ev.receipts_of(planned.payment)
        counts[planned.payment.id] = len(effects)
        for kind in kinds:
            files = [f for f in effects if f.kind == kind]
            names = [_effect_id(f) for f in files]
            what = "receipt" if kind == "receipt" else f"{kind!r} side effect"
            noun = "files" if all(f.source == "files" for f in files) and kind == "receipt" else "records"
            if planned.expected_paid and len(files) == 0:
                if ev.judged(planned):  # a payment the service never heard of is not missing a receipt
                    violations.append(Violation(name, f"missing {what}: paid payment has no {what} "
                                                      f"{noun.removesuffix('s')}", planned.payment.id, kind=MISSING))
            elif planned.expected_paid and len(files) > 1:
                violations.append(Violation(name, f"duplicate {what}s: {len(files)} {noun} for one payment",
                                            planned.payment.id, names, kind=DUPLICATE))
            elif not planned.expected_paid and files:
                violations.append(Violation(name, f"{what} for an unpaid payment ({len(files)} {noun[:-1]}(s))",
                                            planned.payment.id, names, kind=UNPAID_RECEIPT))
    vanished = [p.file for p in ev.observation.problems_of(RECEIPT_VANISHED)]
    details = {"receipts_per_payment": counts, **_unjudged_details(ev), **({"vanished": vanished} if vanished else {})}
    if ev.observation.effect_sources:
        details["sources"] = ev.observation.effect_sources
    return CheckResult(name, description, not violations, violations, details)


def _kinds(ev: Evidence) -> list[str]:
    """The kinds of side effect the run expects one of per paid payment (a profile's effects)."""
    return ev.observation.effect_kinds or sorted({r.kind for r in ev.observation.receipts}) or ["receipt"]


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
        return CheckResult(name, description, None,
                           details={"reason": "the service's answers name no outcome (Target.outcome_field)"})
    violations = []
    for planned in ev.payments:
        generated = [e.index for e in ev.events_of(planned.payment) if e.outcome == "generated"]
        if len(generated) > 1:
            violations.append(Violation(name, f"{len(generated)} requests answered that they generated the receipt",
                                        planned.payment.id, events=generated, kind=GENERATED_TWICE))
    return CheckResult(name, description, not violations, violations)


def receipt_files(ev: Evidence) -> CheckResult:
    """Every file is a finished, readable PDF that prints its payment's transaction id and amount; no overwrites.

    The content is looked for in the page's text in whatever words the service chose; a page that
    prints neither the transaction nor any amount cannot be checked, which is unknown, never a failure.
    """
    name = "receipt-files"
    description = "every receipt is a readable PDF matching its payment; no partial files or overwritten generations"
    if reason := receipts_unreadable(ev):
        return CheckResult(name, description, None, details={"reason": reason})
    known = ev.by_transaction()
    violations, foreign, unchecked, unkeyed = [], [], [], []
    for receipt in ev.observation.receipts:
        effect = _effect_id(receipt)
        if not receipt.is_final:
            violations.append(Violation(name, "file conflict: temporary or partial file left in the receipts directory",
                                        files=[effect], kind=FILE_CONFLICT))
            continue
        if not receipt.readable:
            violations.append(Violation(name, f"unreadable receipt ({receipt.error})", files=[effect],
                                        kind=UNREADABLE))
            continue
        owner = ev.receipt_owners.get(effect)
        if owner is None:
            if _orphan(ev, receipt):
                violations.append(Violation(name, f"{receipt.kind} {receipt.key!r} appeared during the run but no "
                                                  f"payment's state names it (a duplicate whose claim was lost?)",
                                            files=[effect], kind=ORPHAN))
                continue
            # another run's effect, not ours to judge (or one the profile's key rule found nothing in)
            (unkeyed if receipt.keyed and receipt.key is None else foreign).append(effect)
            continue
        payment = known[owner].payment
        found, problems = _content_of(receipt, payment, set(known)) if receipt.text else (False, [])
        # A row (or a sink record) whose key rule named its payment was checked by that rule.
        found = found or (receipt.keyed and receipt.source != "files" and receipt.key is not None)
        if receipt.amount is not None:  # an amount a profile rule extracted outranks one found in the text
            problems = [v for v in problems if v.kind != WRONG_AMOUNT]
            checked, wrong_amount = _amount_of(receipt, payment)
            found, problems = found or checked, problems + wrong_amount
        violations += problems
        if not found:
            unchecked.append(effect)
    violations += _shared_keys(ev)
    violations += _overwritten_generations(ev)
    details: dict = {"foreign_files": foreign}
    if unkeyed:
        details["unkeyed"] = unkeyed
    if unchecked and not violations:
        details["unchecked"] = unchecked
        details["reason"] = (f"{len(unchecked)} receipt(s) print neither their transaction id nor a money amount "
                             f"that could be checked (e.g. {unchecked[0]})")
        return CheckResult(name, description, None, violations, details)
    return CheckResult(name, description, not violations, violations, details)


def _content_of(receipt: ReceiptFile, payment: Payment, known: set[str]) -> tuple[bool, list[Violation]]:
    """(whether the page could be checked at all, the violations it shows) for one receipt of ``payment``."""
    violations = []
    printed = transactions_named(receipt.text, known)
    others = sorted(printed - {payment.merchant_transaction_id})
    if others and payment.merchant_transaction_id not in printed:
        violations.append(Violation("receipt-files", f"prints transaction {others[0]!r}, not its payment's "
                                                     f"{payment.merchant_transaction_id!r}",
                                    payment.id, [receipt.name], kind=WRONG_PAYMENT))
    amount_ok, amounts = amount_named(receipt.text, payment.amount)
    if amount_ok is False:
        violations.append(Violation("receipt-files", f"prints amount {', '.join(amounts)}, not its payment's "
                                                     f"{payment.amount} paise", payment.id, [receipt.name],
                                    kind=WRONG_AMOUNT))
    checked = bool(printed) and amount_ok is not None
    return checked or bool(violations), violations


def _orphan(ev: Evidence, receipt: ReceiptFile) -> bool:
    """A side effect keyed by a value the service assigned, new in this run, that no payment's state names."""
    baseline = ev.observation.baseline
    return (baseline is not None and receipt.keyed and receipt.key is not None and receipt.joins.startswith("state.")
            and _effect_id(receipt) not in baseline)


def _shared_keys(ev: Evidence) -> list[Violation]:
    """One key the service assigned (a receipt number) held by the state of two different payments."""
    out = []
    for (field_name, value), holders in sorted(ev.state_holders.items()):
        if len(holders) > 1:
            files = sorted(_effect_id(r) for r in ev.observation.receipts
                           if r.keyed and r.key == value and r.joins == f"state.{field_name}")
            out.append(Violation("receipt-files", f"{field_name} {value!r} was given to {len(holders)} payments",
                                 files=files, kind=SHARED_KEY))
    return out


def _amount_of(receipt: ReceiptFile, payment: Payment) -> tuple[bool, list[Violation]]:
    """A side effect whose amount a profile rule extracted (a row's field, a pattern in a file): does it match?"""
    if receipt.amount is None:
        return False, []
    if receipt.amount != payment.amount:
        return True, [Violation("receipt-files", f"records amount {receipt.amount} paise, not its payment's "
                                                 f"{payment.amount} paise", payment.id, [_effect_id(receipt)],
                                kind=WRONG_AMOUNT)]
    return True, []


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
                                     [e.index for e in generated if _basename(e.body.get("receiptPath")) == path],
                                     kind=FILE_CONFLICT))
    return out


def _basename(path: object) -> str:
    return PurePath(str(path)).name if path else ""


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
    violations = [Violation(name, e.error or f"HTTP {e.status}: {str(e.body)[:200]}", e.payment, events=[e.index],
                            kind=TRANSPORT_ERROR if e.error else SERVER_ERROR_KIND)
                  for e in sorted(server + transport, key=lambda e: e.index)]
    if transport:
        details["undelivered_requests"] = sum(1 for e in transport if e.delivered is False)
    return CheckResult(name, description, not violations, violations, details)


from .overlap import overlap, payment_overlapped, race_exercised, round_overlap  # noqa: E402,F401 (re-exported)
from .oracle_state import settled, state_agrees_with_disk  # noqa: E402 (the state checkers, re-exported)

CHECKERS: tuple[Checker, ...] = (exactly_one_receipt, one_generation, receipt_files, state_agrees_with_disk,
                                 no_errors, race_exercised)


def check(evidence: Evidence, checkers: tuple[Checker, ...] = CHECKERS) -> list[CheckResult]:
    """Run every checker; one that raises becomes unknown with the error as its reason.

    A profile that waits for settling adds the ``settled`` check.
    """
    if evidence.observation.settled is not None and settled not in checkers:
        checkers = (*checkers, settled)
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
