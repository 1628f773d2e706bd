"""What a checker returns: valid (true, false, or unknown) and the concrete violations it found."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Violation:
    checker: str
    message: str
    payment: str | None = None
    files: list[str] = field(default_factory=list)
    events: list[int] = field(default_factory=list)
    kind: str = ""  # what went wrong, for counting (e.g. "duplicate-receipts", "file-conflict")
    # The payment's transaction (order) id: what a person searches the service's logs for; ``payment`` is the
    # service's own id for it, which may be an internal one (a MongoDB ObjectId).
    transaction: str | None = None

    def __str__(self) -> str:
        where = ""
        if self.payment:
            where = (f"payment {self.transaction} (id {self.payment}): " if self.transaction and
                     self.transaction != self.payment else f"payment {self.payment}: ")
        files = f" [{', '.join(self.files)}]" if self.files else ""
        return f"{where}{self.message}{files}"


@dataclass
class CheckResult:
    """One checker's answer: valid is True, False, or None (unknown: could not tell)."""

    name: str
    description: str
    valid: bool | None
    violations: list[Violation] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    # False: the profile gives this check no evidence to work with (e.g. it says nothing about
    # answers), so it was not made. Reported, but it cannot make a run inconclusive.
    made: bool = True

    @property
    def status(self) -> str:
        if not self.made:
            return "not made"
        return {True: "pass", False: "FAIL", None: "unknown"}[self.valid]
