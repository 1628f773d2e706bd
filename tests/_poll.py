"""Waiting that holds on a busy machine: poll for the condition, never sleep for a guessed time.

``wait_until`` polls a condition until it holds or a generous bound passes, and then fails naming
what it waited for. ``clock_anchor`` reads the wall clock and ``perf_counter`` together, so that a
burst's times (``perf_counter`` based) can be set against a server's epoch stamps without the
error a stall between two clock reads would bring.
"""

from __future__ import annotations

import time
from typing import Callable, TypeVar

from harness.local.poll import poll

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout: float = 30.0, interval: float = 0.02,
               message: str = "the condition") -> T:
    """Poll ``condition`` until it returns something truthy (returned); AssertionError after ``timeout`` s."""
    value = poll(condition, timeout=timeout, interval=interval)
    if not value:
        raise AssertionError(f"waited {timeout:g} s for {message}, in vain")
    return value


def clock_anchor(tries: int = 200) -> tuple[float, float]:
    """``(epoch seconds, perf_counter seconds)`` of one instant, to within a few microseconds.

    A wall read bracketed by two ``perf_counter`` reads; of many tries the tightest bracket wins, so
    a thread switch or a preemption between the reads (common on a loaded machine) does not count.
    """
    best = (float("inf"), 0.0, 0.0)
    for _ in range(tries):
        before = time.perf_counter()
        wall = time.time()
        after = time.perf_counter()
        if after - before < best[0]:
            best = (after - before, wall, (before + after) / 2)
    return best[1], best[2]
