"""What is sent: payments, duplicates per payment, the channel mix and unpaid controls.

Deterministic from its inputs (the seed), so a failing run can be replayed.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any
from harness.errors import PlanError

CHANNELS = ("callback", "verify")


def parse_channel_mix(text: str) -> dict[str, int]:
    """``"callback:3,verify:1"`` -> ``{"callback": 3, "verify": 1}`` (weights, not counts)."""
    mix: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, weight = part.partition(":")
        name = name.strip()
        if name not in CHANNELS:
            raise PlanError(f"unknown channel {name!r} in channel mix (choose from {', '.join(CHANNELS)})")
        try:
            mix[name] = int(weight) if weight else 1
        except ValueError:
            raise PlanError(f"channel weight must be a whole number, not {weight!r}") from None
        if mix[name] < 0:
            raise PlanError("channel weights must be >= 0")
    if not mix or sum(mix.values()) == 0:
        raise PlanError("the channel mix needs at least one channel with a positive weight")
    return mix


@dataclass(frozen=True)
class PlannedRequest:
    slot: int  # which payment of the plan
    channel: str  # "callback" or "verify"
    state: str  # what the gateway says: COMPLETED, FAILED, PENDING


@dataclass
class Plan:
    payments: int = 10
    duplicates: int = 5
    unpaid: int = 0
    channel_mix: dict[str, int] = field(default_factory=lambda: {"callback": 1})
    seed: int = 0
    rounds: int = 1  # delivery rounds: later rounds are the gateway's retries of every request
    round_interval: float = 0.0  # seconds between rounds (e.g. longer than a lease)
    min_amount: int = 10_000  # paise
    max_amount: int = 500_000

    def validate(self) -> None:
        if self.payments < 0 or self.unpaid < 0 or self.payments + self.unpaid < 1:
            raise PlanError("a plan needs at least one payment (--payments + --unpaid >= 1)")
        if self.duplicates < 1:
            raise PlanError("--duplicates must be at least 1")
        if self.rounds < 1 or self.round_interval < 0:
            raise PlanError("--rounds must be at least 1 and --round-interval >= 0")
        if not 0 < self.min_amount <= self.max_amount:
            raise PlanError("amounts must satisfy 0 < min <= max")
        parse_channel_mix(",".join(f"{k}:{v}" for k, v in self.channel_mix.items()))

    @property
    def slots(self) -> int:
        return self.payments + self.unpaid

    def is_paid(self, slot: int) -> bool:
        """Paid payments come first; the last ``unpaid`` slots are controls that must end with no receipt."""
        return slot < self.payments

    def amounts(self) -> list[int]:
        rng = random.Random(self.seed)
        return [rng.randint(self.min_amount, self.max_amount) for _ in range(self.slots)]

    def uses_verify(self) -> bool:
        return self.channel_mix.get("verify", 0) > 0

    def requests(self) -> list[PlannedRequest]:
        """Every request of the run, interleaved across payments so no payment is sent as a block."""
        rng = random.Random(self.seed + 1)
        channels = [c for c in CHANNELS if self.channel_mix.get(c, 0) > 0]
        weights = [self.channel_mix[c] for c in channels]
        out = []
        for dup in range(self.duplicates):
            for slot in range(self.slots):
                if self.is_paid(slot):
                    # With a mix, make sure both channels race when there are >= 2 duplicates.
                    if len(channels) > 1 and self.duplicates > 1 and dup < len(channels):
                        channel = channels[dup]
                    else:
                        channel = rng.choices(channels, weights)[0]
                    out.append(PlannedRequest(slot, channel, "COMPLETED"))
                else:
                    # Unpaid controls only ever hear FAILED or PENDING callbacks.
                    out.append(PlannedRequest(slot, "callback", "FAILED" if dup % 2 == 0 else "PENDING"))
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
