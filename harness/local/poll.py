"""One bounded wait: ask until the answer is there or the time is up (never a sleep that hopes)."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def poll(check: Callable[[], T], *, timeout: float, interval: float = 0.05) -> T:
    """Call ``check`` until it returns a truthy value or ``timeout`` seconds have passed; return its last answer.

    ``check`` is always called at least once, and once more at the deadline, so a condition that
    came true while sleeping is seen. It may raise to stop waiting (a process that died, say).
    """
    deadline = time.monotonic() + timeout
    while True:
        answer = check()
        if answer or time.monotonic() >= deadline:
            return answer
        time.sleep(max(0.0, min(interval, deadline - time.monotonic())))
