"""Faults the service can be told to suffer: the one place where injected failures are decided."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field


class GenerationFailed(Exception):
    """Receipt generation failed (injected, or a real error while rendering or writing)."""


@dataclass
class Faults:
    failure_rate: float = 0.0  # probability that a receipt generation fails
    seed: int | None = None
    _rng: random.Random = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def _roll(self, rate: float) -> bool:
        return rate > 0 and self._rng.random() < rate

    def generation(self) -> None:
        """Called once per receipt generation, after its latency: raises when this one is to fail."""
        if self._roll(self.failure_rate):
            raise GenerationFailed("injected receipt generation failure")

    def update(self, **changes: float) -> None:
        for name, value in changes.items():
            if name.startswith("_") or not hasattr(self, name):
                raise AttributeError(f"unknown fault {name!r}")
            setattr(self, name, value)

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}
