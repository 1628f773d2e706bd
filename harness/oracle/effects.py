"""The checks over the side effects read back: exactly one of each kind per paid payment, each one right.

Side effects are judged by their own content (a PDF's text, a row's fields), joined to payments by
the Evidence; a page that prints neither the transaction nor any amount cannot be checked, which is
unknown, never a failure.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from harness.observe.content import amount_named, transactions_named
from harness.observe.observation import RECEIPT_VANISHED, ReceiptFile
from harness.oracle.evidence import (
    DUPLICATE, FILE_CONFLICT, LOST, MISSING, ORPHAN, SHARED_KEY, UNPAID_RECEIPT, UNREADABLE, WRONG_AMOUNT, WRONG_PAYMENT,
    Evidence, basename, effect_id, effect_kinds, receipts_unreadable, unjudged_details, unset,
)
from harness.oracle.result import CheckResult, Violation
from harness.profile import Payment


def exactly_one_receipt(ev: Evidence) -> CheckResult:
    """Exactly one side effect of each kind per paid payment and none per unpaid one, grouped by its own content."""
    name, description = "exactly-one-receipt", "exactly one receipt (side effect of each kind) per paid payment, none for unpaid ones"
    if reason := receipts_unreadable(ev):
        return CheckResult(name, description, None, details={"reason": reason})
    kinds = effect_kinds(ev)
    violations, counts = [], {}
    for planned in ev.payments:
        effects = ev.receipts_of(planned.payment)
        counts[planned.payment.id] = len(effects)
        for kind in kinds:
            files = [f for f in effects if f.kind == kind]
            names = [effect_id(f) for f in files]
            what = "receipt" if kind == "receipt" else f"{kind!r} side effect"
            noun = "files" if all(f.source == "files" for f in files) and kind == "receipt" else "records"
            if planned.expected_paid and len(files) == 0:
                if not ev.judged(planned):  # a payment the service never heard of (or never acknowledged) is not missing one
                    continue
                if claimed := _claimed(ev, planned):
                    violations.append(Violation(name, f"lost {what}: the service acknowledged the payment and its "
                                                      f"state says {claimed}, but no {what} exists "
                                                      f"({ev.fault_before()})", planned.payment.id, kind=LOST))
                else:
                    violations.append(Violation(name, f"missing {what}: paid payment has no {what} "
                                                      f"{noun.removesuffix('s')}", planned.payment.id, kind=MISSING))
            elif planned.expected_paid and len(files) > 1:
                violations.append(Violation(name, f"duplicate {what}s: {len(files)} {noun} for one payment",
                                            planned.payment.id, names, kind=DUPLICATE))
            elif not planned.expected_paid and files:
                violations.append(Violation(name, f"{what} for an unpaid payment ({len(files)} {noun[:-1]}(s))",
                                            planned.payment.id, names, kind=UNPAID_RECEIPT))
    vanished = [p.file for p in ev.observation.problems_of(RECEIPT_VANISHED)]
    details = {"receipts_per_payment": counts, **unjudged_details(ev), **({"vanished": vanished} if vanished else {})}
    if ev.observation.effect_sources:
        details["sources"] = ev.observation.effect_sources
    return CheckResult(name, description, not violations, violations, details)


def _claimed(ev: Evidence, planned: Any) -> str | None:
    """After faults: what in the payment's state says its side effect was claimed or made (None: nothing does)."""
    if not ev.faulted:
        return None
    state = ev.observation.state.get(planned.payment.id) or {}
    fields = ev.observation.state_fields
    if fields.get("claim") and state.get("receiptGenerated"):
        return f"{fields['claim']} = {state['receiptGenerated']!r}"
    if fields.get("effect") and not unset(state.get("receiptPath")):
        return f"{fields['effect']} = {state['receiptPath']!r}"
    return None


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
    damaged: set[str] = set()  # a file several kinds read is partial or unreadable once, not once per kind
    for receipt in ev.observation.receipts:
        effect = effect_id(receipt)
        if (not receipt.is_final or not receipt.readable) and effect in damaged:
            continue
        if not receipt.is_final or not receipt.readable:
            damaged.add(effect)
        if not receipt.is_final:
            violations.append(Violation(name, "file conflict: temporary or partial file left in the receipts directory",
                                        files=[effect], kind=FILE_CONFLICT))
            continue
        if not receipt.readable:
            violations.append(Violation(name, f"unreadable receipt ({receipt.error})", files=[effect],
                                        kind=UNREADABLE))
            continue
        owner = ev.owner_of(receipt)
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
            and effect_id(receipt) not in baseline)


def _shared_keys(ev: Evidence) -> list[Violation]:
    """One key the service assigned (a receipt number) held by the state of two different payments."""
    out = []
    for (field_name, value), holders in sorted(ev.state_holders.items()):
        if len(holders) > 1:
            files = sorted(effect_id(r) for r in ev.observation.receipts
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
                                                 f"{payment.amount} paise", payment.id, [effect_id(receipt)],
                                kind=WRONG_AMOUNT)]
    return True, []


def _overwritten_generations(ev: Evidence) -> list[Violation]:
    """Two generations that reported the same file: one overwrote the other (a file conflict)."""
    out = []
    for planned in ev.payments:
        generated = [e for e in ev.events_of(planned.payment) if e.outcome == "generated"]
        paths = Counter(basename(e.body.get("receiptPath")) for e in generated
                        if isinstance(e.body, dict) and e.body.get("receiptPath"))
        for path, count in paths.items():
            if count > 1:
                out.append(Violation("receipt-files", f"file conflict: {count} generations wrote the same file",
                                     planned.payment.id, [path],
                                     [e.index for e in generated if basename(e.body.get("receiptPath")) == path],
                                     kind=FILE_CONFLICT))
    return out
