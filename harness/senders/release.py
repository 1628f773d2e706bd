"""Waiting for a release instant: punctual in a plain process, cooperative under gevent.

A sleep wakes late (a millisecond or more), so the last ``SPIN`` seconds before the instant are
spent checking the clock. In a plain process that check is a tight loop: nothing else needs this
thread. In a gevent-patched process (a Locust worker) a tight loop would hold the hub and starve
every other greenlet - heartbeats, other users' sockets - so there the loop yields to the hub on
every check (``time.sleep(0)`` is ``gevent.sleep(0)`` once ``time`` is patched).
"""

from __future__ import annotations

import sys
import time

SPIN = 0.002  # the last ~2 ms before the release instant are spent checking the clock, not sleeping


def gevent_patched() -> bool:
    """True when gevent has monkey-patched ``time`` in this process (as Locust does)."""
    monkey = sys.modules.get("gevent.monkey")  # never import gevent here: plain processes lack it
    if monkey is None:
        return False
    try:
        return bool(monkey.is_module_patched("time"))
    except Exception:  # noqa: BLE001 - an odd gevent: assume unpatched, the old behaviour
        return False


def wait_until(at: float, *, spin: bool | None = None) -> float:
    """Wait until wall-clock ``at`` (epoch seconds); return how late we are (seconds, >= 0).

    Never returns before ``at``. ``spin=True`` busy-waits the last ``SPIN`` seconds; ``spin=False``
    yields to other greenlets/threads on every check; ``None`` (default) spins unless gevent has
    patched this process.
    """
    if spin is None:
        spin = not gevent_patched()
    while True:
        left = at - time.time()
        if left <= SPIN:
            break
        time.sleep(left - SPIN)  # gevent's sleep under Locust: other greenlets run meanwhile
    if spin:
        while time.time() < at:
            pass
    else:
        while time.time() < at:
            time.sleep(0)
    return max(0.0, time.time() - at)
