"""What the checkers judge: the payments planned, the history of what was sent, and what was read back.

Plain data and the few questions every family of checks asks of it (which side effects belong to
which payment, which payments can be judged at all). A ``Checker`` is a function of the Evidence
returning a ``CheckResult``; the families are ``effects``, ``answers``, ``state`` and ``overlap``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import PurePath
from typing import Callable

from harness.history import Event, History
from harness.observe.content import transactions_named
from harness.observe.observation import RECEIPTS_DIR, Observation, ReceiptFile
from harness.oracle.result import CheckResult
from harness.profile import Payment

SERVER_ERROR = 500

# Violation kinds: reports and metrics count by kind, never by message text.
MISSING, DUPLICATE, UNPAID_RECEIPT = "missing-receipt", "duplicate-receipts", "unpaid-receipt"
GENERATED_TWICE, FILE_CONFLICT, UNREADABLE = "generated-twice", "file-conflict", "unreadable-receipt"
WRONG_PAYMENT, WRONG_AMOUNT, STATE_MISMATCH = "wrong-payment", "wrong-amount", "state-mismatch"
SERVER_ERROR_KIND, TRANSPORT_ERROR = "server-error", "transport-error"
SHARED_KEY, ORPHAN = "shared-key", "orphan-effect"
# After faults: an acknowledged payment whose state says its side effect was claimed or made, and none exists.
LOST = "lost-effect"


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

    @property
    def faulted(self) -> bool:
        """A nemesis did harm during the run: payments are judged by acknowledgement (eventual exactly-once)."""
        return self.history.nemesis is not None

    def acknowledged(self, payment: Payment) -> bool:
        """Whether any delivery for the payment was answered with a 2xx (a gateway stops retrying then)."""
        return any(e.error is None and e.status is not None and 200 <= e.status < 300 for e in self.events_of(payment))

    def judged(self, planned: PlannedPayment) -> bool:
        """A paid payment none of whose requests reached the service cannot be judged: the service was
        never told it was paid. After faults, a paid payment none of whose deliveries was acknowledged
        is *indeterminate* (Jepsen's ``:info``): a gateway would go on retrying it, so a missing side
        effect is no finding. Unpaid controls are always judged (they must end with no receipt)."""
        if not planned.expected_paid:
            return True
        if self.faulted:
            return self.acknowledged(planned.payment)
        return bool(self.delivered_events_of(planned.payment))

    def fault_before(self) -> str:
        """The first harm the nemesis did, in words with its time, for a violation that followed it."""
        harm = self.history.first_harm()
        if harm is None:
            return "no fault was recorded"
        return f"after the {harm['kind']} at {self.history.fault_time(harm):.3f} s: {harm.get('detail', '')}"

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
                if not unset(value):
                    holders.setdefault((field_name, str(value)), []).append(planned.payment.merchant_transaction_id)
        return holders

    @cached_property
    def receipt_owners(self) -> dict[tuple[str, str], str]:
        """(kind, side effect name) -> the transaction id of the payment it belongs to.

        Ownership is decided per kind: two kinds may read the same file (a PDF keyed by its name for one,
        by the number its text prints for another), and each joins by its own key.

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
                    owners[owner_key(receipt)] = owner
                    continue
                # A key the run cannot join (a receipt number no payment's state holds any more: the
                # state kept another duplicate's) still belongs to the payment its content names.
                if receipt.source != "files":
                    named = {str(v) for v in (receipt.data or {}).values() if isinstance(v, (str, int))} & known
                    if len(named) == 1:
                        owners[owner_key(receipt)] = named.pop()
                    continue
            if receipt.subject in known:
                owners[owner_key(receipt)] = receipt.subject
                continue
            for source in (receipt.text, receipt.name):
                named = transactions_named(source, known)
                if len(named) == 1:
                    owners[owner_key(receipt)] = named.pop()
                    break
        return owners

    @cached_property
    def _receipts_by_transaction(self) -> dict[str, list[ReceiptFile]]:
        grouped: dict[str, list[ReceiptFile]] = {}
        for receipt in self.observation.receipts:
            if owner := self.owner_of(receipt):
                grouped.setdefault(owner, []).append(receipt)
        return grouped

    def owner_of(self, receipt: ReceiptFile) -> str | None:
        """The transaction id of the payment this side effect (of its kind) belongs to (None: not one of ours)."""
        return self.receipt_owners.get(owner_key(receipt))

    def receipts_of(self, payment: Payment) -> list[ReceiptFile]:
        return self._receipts_by_transaction.get(payment.merchant_transaction_id, [])


def unset(value: object) -> bool:
    """A state value that names nothing: absent, empty, or a schema default such as 0 or false."""
    return value is None or value is False or value in ("", 0) or value == [] or value == {}


def effect_id(receipt: ReceiptFile) -> str:
    """A side effect's name, unique across sources (a file's name as it always was)."""
    return receipt.name if receipt.source == "files" else f"{receipt.source}:{receipt.kind}:{receipt.name}"


def owner_key(receipt: ReceiptFile) -> tuple[str, str]:
    """What ownership is decided for: a side effect as one kind reads it."""
    return receipt.kind, effect_id(receipt)


def receipts_unreadable(ev: Evidence) -> str | None:
    if ev.observation.receipts_dir is None and not ev.observation.effect_sources:
        return "no side-effect source to read (no receipts directory, no profile effects)"
    bad = ev.observation.problems_of(RECEIPTS_DIR)
    return bad[0].message if bad else None


def unjudged_details(ev: Evidence) -> dict:
    unjudged = ev.unjudged
    if not unjudged:
        return {}
    return {"indeterminate" if ev.faulted else "unjudged": [p.payment.id for p in unjudged]}


Checker = Callable[[Evidence], CheckResult]


def effect_kinds(ev: Evidence) -> list[str]:
    """The kinds of side effect the run expects one of per paid payment (a profile's effects)."""
    return ev.observation.effect_kinds or sorted({r.kind for r in ev.observation.receipts}) or ["receipt"]


def basename(path: object) -> str:
    return PurePath(str(path)).name if path else ""
