"""Faults the service can be told to suffer: the one place where injected failures are decided.

The receipt steps call these hooks at fixed points; nothing else in the service knows about faults.
Each can be set by flag at start-up and changed at runtime (``PUT /_admin/faults``).
"""

from __future__ import annotations

import asyncio
import errno
import random
import time
from dataclasses import dataclass, field, fields


class GenerationFailed(Exception):
    """Receipt generation failed (injected, or a real error while rendering or writing)."""


class SimulatedCrash(Exception):
    """The process 'died' after winning the claim: the step stops dead, no rollback, no cleanup."""


@dataclass
class Faults:
    failure_rate: float = 0.0  # probability that a receipt generation fails (the step rolls back)
    crash_after_claim_rate: float = 0.0  # probability that the claim's winner dies before generating
    store_delay_ms: float = 0.0  # latency between reading the store and acting on it: widens race windows
    write_error_rate: float = 0.0  # probability that writing the receipt file fails with EIO
    # vulnerable mode: the check-then-act window, exactly: the flag is read, this long passes, then it is set
    race_window_ms: float = 0.0
    seed: int | None = None
    _rng: random.Random = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.validate()
        self._rng = random.Random(self.seed)

    def validate(self) -> None:
        for name in ("failure_rate", "crash_after_claim_rate", "write_error_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name.replace('_', '-')} must be between 0 and 1")
        if self.store_delay_ms < 0:
            raise ValueError("store-delay-ms must be >= 0")
        if not 0 <= self.race_window_ms <= 60_000:
            raise ValueError("race-window-ms must be between 0 and 60000")

    def _roll(self, rate: float) -> bool:
        return rate > 0 and self._rng.random() < rate

    # -- hooks, in the order a receipt step meets them ------------------------------------------
    async def after_store_read(self) -> None:
        """Between a read (or claim) and what the step does with it."""
        if self.store_delay_ms > 0:
            await asyncio.sleep(self.store_delay_ms / 1000.0)

    def hold_race_window(self) -> None:
        """Between a check that passed and the flag being set (vulnerable mode, on a store thread).

        A thread's ``time.sleep`` rather than the event loop's timer: the loop's timers are good to a
        millisecond, a sleeping thread to tens of microseconds, and the loop stays free meanwhile."""
        if self.race_window_ms > 0:
            time.sleep(self.race_window_ms / 1000.0)

    def after_claim(self) -> None:
        if self._roll(self.crash_after_claim_rate):
            raise SimulatedCrash("simulated crash after the claim")

    def generation(self) -> None:
        """Once per generation, after its latency: raises when this one is to fail."""
        if self._roll(self.failure_rate):
            raise GenerationFailed("injected receipt generation failure")

    def before_write(self) -> None:
        if self._roll(self.write_error_rate):
            raise OSError(errno.EIO, "injected write error on the receipts directory")

    # -- runtime control ----------------------------------------------------------------------
    def update(self, **changes: float) -> None:
        names = {f.name for f in fields(self) if not f.name.startswith("_")} - {"seed"}
        unknown = set(changes) - names
        if unknown:
            raise ValueError(f"unknown fault(s): {', '.join(sorted(unknown))}")
        previous = {k: getattr(self, k) for k in changes}
        for name, value in changes.items():
            setattr(self, name, value)
        try:
            self.validate()
        except ValueError:
            for name, value in previous.items():
                setattr(self, name, value)
            raise

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}
