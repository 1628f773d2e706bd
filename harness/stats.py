"""The few statistics the harness reports, in one place."""

from __future__ import annotations

import math
from typing import Iterable


def percentile(values: Iterable[float], q: float) -> float | None:
    """Nearest-rank percentile, ``q`` in 0..100; None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))]


def ms(seconds: float | None) -> float | None:
    """Seconds as milliseconds, to the microsecond; None stays None."""
    return None if seconds is None else round(seconds * 1000, 3)
