"""What a receipt's text says, in whatever words its service chose.

A correct service may print "Merchant transaction: MT1 (49900 paise)", "Order ref MT1 — Total Rs. 499.00"
or "INR 4,99,000.00": the oracle looks for the payment's own transaction id and amount in the text,
never for one service's wording. Where a page names neither, the answer is "cannot tell" (None).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

# Ids are letters and digits, maybe joined by "_" or "-": "MT1" inside "MT10" or "XMT1" is not MT1,
# but it is inside "receipt-MT1-1700000000.pdf".
_RUN = re.compile(r"[A-Za-z0-9_-]+")
_JOINER = re.compile(r"[_-]")
# A number as people print money: 49900, 499.00, 4,99,000.00 (Indian grouping), 499,000.50.
_NUMBER = re.compile(r"(?<![A-Za-z0-9])(\d{1,3}(?:,\d{2,3})+|\d+)(?:\.(\d{1,2}))?(?![0-9])")
_CURRENCY_BEFORE = re.compile(r"(?:₹|\bRs\.?|\bINR|\bRupees?)\s*[:=]?\s*$", re.IGNORECASE)
_CURRENCY_AFTER = re.compile(r"^\s*(?:paise|paisa|INR|rupees?|/-)", re.IGNORECASE)


def transactions_named(text: str, known: set[str]) -> set[str]:
    """Which of the ``known`` transaction ids the text prints, each bounded by anything but a letter or digit.

    Linear in the text: an id of k joiner-separated parts can only be k consecutive parts of a run, so
    only spans as long as some known id are looked up (a run of 40 000 parts — a base64url blob in a
    sink call's body — costs 40 000 lookups per such length, not every pair of cuts)."""
    if not known:
        return set()
    lengths = {len(_JOINER.findall(k)) + 1 for k in known}  # how many parts each known id has
    found = set()
    for run in _RUN.findall(text):
        starts = [0] + [m.end() for m in _JOINER.finditer(run)]
        ends = [m.start() for m in _JOINER.finditer(run)] + [len(run)]
        for i, a in enumerate(starts):
            for parts in lengths:
                if i + parts - 1 < len(ends) and run[a:ends[i + parts - 1]] in known:
                    found.add(run[a:ends[i + parts - 1]])
    return found


@dataclass(frozen=True)
class PrintedAmount:
    text: str  # as printed, e.g. "4,99,000.00"
    paise: frozenset[int]  # what it can mean in paise: "499" is 499 paise or 499 rupees
    marked: bool  # a currency sign or word stands beside it: it is meant as money


def amounts_printed(text: str) -> list[PrintedAmount]:
    """Every number on the page with the paise values it could stand for."""
    out = []
    for match in _NUMBER.finditer(text):
        whole, decimals = match.group(1).replace(",", ""), match.group(2)
        if decimals is not None:
            meanings = {int(whole) * 100 + int(decimals.ljust(2, "0"))}  # rupees and paise
        else:
            meanings = {int(whole), int(whole) * 100}  # paise, or whole rupees
        marked = bool(_CURRENCY_BEFORE.search(text[max(0, match.start() - 12):match.start()])
                      or _CURRENCY_AFTER.match(text[match.end():match.end() + 8]))
        out.append(PrintedAmount(match.group(0), frozenset(meanings), marked))
    return out


def amount_named(text: str, paise: int) -> tuple[bool | None, list[str]]:
    """Does the page print this amount? True; False (it prints other money amounts, listed); None (no money on it)."""
    printed = amounts_printed(text)
    if any(paise in a.paise for a in printed):
        return True, []
    money = [a.text for a in printed if a.marked]
    return (False, money) if money else (None, [])


def to_paise(value: str | None, rule: Any) -> int | None:
    """An extracted amount as paise: ``rule.unit`` says whether the text is rupees (4,527.20) or paise."""
    if value is None:
        return None
    try:
        number = Decimal(value.replace(",", "").strip())
    except InvalidOperation:
        return None
    return int(number * 100) if rule.unit == "rupees" else int(number)
