"""What a run read back from the service, as plain data: side effects found, each payment's state,
and what could not be read (by kind; the checkers decide by kind, never by message text).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# Kinds of things that could not be read; checkers decide by kind, never by message text.
RECEIPTS_DIR = "receipts-dir"  # the directory as a whole: every receipt check is unknown
RECEIPT_VANISHED = "receipt-vanished"  # one file went away between listing and reading: only it is affected
STATE = "state"  # the state of payments could not be read


REFERENCE_STATE_FIELDS = {"paid": "paymentStatus", "claim": "receiptGenerated", "effect": "receiptPath",
                          "effect_is": "name"}


@dataclass
class Problem:
    """Something the observation could not read, by kind (``RECEIPTS_DIR``, ``RECEIPT_VANISHED``, ``STATE``)."""

    kind: str
    message: str
    file: str | None = None

    def __str__(self) -> str:
        return self.message


@dataclass
class ReceiptFile:
    name: str
    size: int
    readable: bool = False
    subject: str | None = None  # the PDF's metadata Subject (the reference service puts the transaction id there)
    title: str | None = None  # the PDF's metadata Title
    text: str = ""  # the first page's text, as extracted
    error: str | None = None
    # What a profile's source and rules said of it (the reference service's receipts need none).
    kind: str = "receipt"  # the effect's name in reports
    source: str = "files"  # files, mongo or http
    keyed: bool = False  # a key rule was applied: ``key`` (even None) is what it extracted
    key: str | None = None
    joins: str = "transaction"  # what the key is: the transaction id, the payment id, or state.<field>
    amount: int | None = None  # paise, when an amount rule extracted one
    data: dict | None = None  # a row's fields, or a JSON file's (JSON-safe)
    # When it left, as wall-clock seconds on this machine, where that is known without extra work:
    # a sink record's own receipt time, a file's modification time; None for rows.
    at: float | None = None
    # Not a regular file (nor a link to one), so never opened: what it is ("a FIFO (named pipe)",
    # "a directory", "a dangling symlink (to ...)", "a symlink loop", "a character device", ...).
    # Always unreadable; audits count these apart, as odd entries.
    odd: str | None = None

    @property
    def is_final(self) -> bool:
        """A finished side effect: a temporary or partial file is a file conflict (rows are always final)."""
        if self.source != "files":
            return True
        name = self.name.rsplit("/", 1)[-1]  # an audit of several kinds names a file "<kind>/<file>"
        if name.startswith(".") or name.endswith((".tmp", ".part", ".partial")):
            return False
        # A profile's rule chose these files by its glob: whatever their format, they are finished.
        return name.endswith(".pdf") or self.data is not None or self.keyed


@dataclass
class Observation:
    receipts: list[ReceiptFile] = field(default_factory=list)
    receipts_dir: str | None = None
    state: dict[str, dict | None] = field(default_factory=dict)  # payment id -> normalised state
    state_source: str = "none"  # "http", "mongodb" or "none"
    problems: list[Problem] = field(default_factory=list)  # what could not be read, by kind
    # What a profile described: where side effects were read, whether answers say what happened,
    # which state fields mean paid / claimed / the effect, and whether the wait for settling ended.
    effect_sources: list[str] = field(default_factory=list)
    effect_kinds: list[str] = field(default_factory=list)  # one of each per paid payment
    answers_described: bool = True
    state_fields: dict[str, str | None] = field(default_factory=lambda: dict(REFERENCE_STATE_FIELDS))
    settled: bool | None = None  # None: the profile does not ask to wait
    rule_misses: list[str] = field(default_factory=list)  # a profile's key rule that matched no effect read
    baseline: set[str] | None = None  # effect ids present before the run (a profile with assigned keys)

    @property
    def errors(self) -> list[str]:
        """The problems as sentences (for reports)."""
        return [p.message for p in self.problems]

    def problems_of(self, kind: str) -> list[Problem]:
        return [p for p in self.problems if p.kind == kind]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
