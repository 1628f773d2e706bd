"""Clock offsets between the master and its lanes, measured over the swarm's own messages.

Hosts under NTP still disagree by 1-20 ms, and a lane that releases at "its" instant on a clock 20 ms
ahead sends its duplicate 20 ms before the others: a 10 ms check-then-act window is then never hit,
and a vulnerable service passes. So the master measures each lane's offset the way NTP (Cristian's
algorithm) does, over the same transport the waves travel on:

- the master sends ``PING {seq, t0}`` (t0: its wall clock when sending);
- the lane answers ``PONG {seq, t0, t1, t2}`` (t1, t2: its own wall clock on receipt and on answering);
- the master notes t3 (its wall clock on receipt).

The round trip is ``(t3 - t0) - (t2 - t1)`` and the lane's offset (its clock minus the master's) is
``((t1 - t0) + (t2 - t3)) / 2``. Whatever the two one-way trips are, the true offset lies within half
the round trip of that estimate: that half is the estimate's uncertainty. Of several samples the one
with the smallest round trip is kept (it was delayed least by a busy loop or a queue), among the most
recent ones so that a drifting clock is followed.

``LaneClock`` is the lane's view of wall time. On a real host it is ``time.time()``; for tests and
diagnosis a fixed offset can be injected (``RACE_HARNESS_LANE_CLOCK_OFFSET_MS``) and the lane then
reads every wall time through it, exactly as a host whose clock is that far off would.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from harness.errors import HarnessError

LANE_CLOCK_OFFSET_ENV = "RACE_HARNESS_LANE_CLOCK_OFFSET_MS"  # a lane's injected clock offset, ms (tests, diagnosis)
# The widest uncertainty (half the best round trip) a lane's offset may have for it to take shares. Two lanes
# each off by up to this send a payment's duplicates up to twice this apart: 5 ms keeps a 10 ms window caught.
DEFAULT_MAX_UNCERTAINTY_MS = 5.0
SAMPLES_KEPT = 24  # per lane: the estimate is the best of the most recent samples (follows drift)


class LaneClock:
    """A lane's wall clock: ``time.time()`` plus a fixed injected offset (0 on a real host)."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset  # seconds this clock is ahead of the system's

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "LaneClock":
        """The clock ``RACE_HARNESS_LANE_CLOCK_OFFSET_MS`` asks for (unset: the system's own)."""
        raw = (os.environ if environ is None else environ).get(LANE_CLOCK_OFFSET_ENV, "").strip()
        if not raw:
            return cls()
        try:
            return cls(float(raw) / 1000)
        except ValueError:
            raise HarnessError(f"{LANE_CLOCK_OFFSET_ENV} must be a number of milliseconds, not {raw!r}") from None

    def now(self) -> float:
        return time.time() + self.offset

    def to_system(self, instant: float) -> float:
        """An instant on this clock as the system's ``time.time()`` reads it (what the senders wait on)."""
        return instant - self.offset


@dataclass(frozen=True)
class ClockSample:
    """One PING/PONG exchange: t0, t3 on the master's clock; t1, t2 on the lane's."""

    t0: float
    t1: float
    t2: float
    t3: float

    @property
    def rtt(self) -> float:
        return max(0.0, (self.t3 - self.t0) - (self.t2 - self.t1))

    @property
    def offset(self) -> float:
        return ((self.t1 - self.t0) + (self.t2 - self.t3)) / 2


@dataclass(frozen=True)
class ClockEstimate:
    """A lane's offset (its clock minus the master's, s) and how sure it is (half the best round trip)."""

    offset: float
    rtt: float
    samples: int  # exchanges answered, of which the best was kept
    at: float  # the master's wall clock when the best sample was taken

    @property
    def uncertainty(self) -> float:
        return self.rtt / 2

    def to_dict(self) -> dict[str, Any]:
        return {"offset_ms": round(self.offset * 1000, 3), "rtt_ms": round(self.rtt * 1000, 3),
                "uncertainty_ms": round(self.uncertainty * 1000, 3), "samples": self.samples}


def best(samples: list[ClockSample]) -> ClockSample | None:
    """The sample with the smallest round trip: least delayed by queues and busy loops, so the tightest bound."""
    return min(samples, key=lambda s: s.rtt, default=None)


class ClockBook:
    """The master's record of every lane's exchanges: pings out, pongs in, the estimate of each lane."""

    def __init__(self, keep: int = SAMPLES_KEPT) -> None:
        self.keep = keep
        self._samples: dict[str, deque[ClockSample]] = {}
        self._answered: dict[str, int] = {}
        self._pending: dict[int, tuple[str, float]] = {}  # seq -> (lane, t0)
        self._seq = 0
        self._lock = threading.Lock()
        self.history: dict[str, list[dict[str, Any]]] = {}  # lane -> each measurement's estimate (drift)

    def ping(self, node: str) -> dict[str, Any]:
        """The data of the next PING to ``node`` (its t0 taken now, as late as possible before sending)."""
        with self._lock:
            self._seq += 1
            seq = self._seq
            t0 = time.time()
            self._pending[seq] = (node, t0)
        return {"seq": seq, "t0": t0}

    def pong(self, node: str, data: dict[str, Any], t3: float) -> bool:
        """Record a PONG received at ``t3`` (the master's clock); False for one not asked for (or from another)."""
        try:
            seq, t1, t2 = int(data["seq"]), float(data["t1"]), float(data["t2"])
        except (KeyError, TypeError, ValueError):
            return False
        with self._lock:
            asked = self._pending.get(seq)
            if asked is None or asked[0] != node:
                return False
            del self._pending[seq]
            self._samples.setdefault(node, deque(maxlen=self.keep)).append(ClockSample(asked[1], t1, t2, t3))
            self._answered[node] = self._answered.get(node, 0) + 1
            return True

    def outstanding(self, nodes: list[str]) -> set[str]:
        """The lanes of ``nodes`` with a PING not answered yet."""
        with self._lock:
            return {node for node, _ in self._pending.values()} & set(nodes)

    def forget_pending(self) -> None:
        """Drop unanswered PINGs (a PONG arriving after its round's wait counts no more)."""
        with self._lock:
            self._pending.clear()

    def estimate(self, node: str) -> ClockEstimate | None:
        """The lane's offset from its best recent sample; None before any PONG came back."""
        with self._lock:
            samples = list(self._samples.get(node, ()))
            answered = self._answered.get(node, 0)
        sample = best(samples)
        if sample is None:
            return None
        return ClockEstimate(sample.offset, sample.rtt, answered, sample.t0)

    def note(self, node: str) -> None:
        """Keep the lane's current estimate in its history (one entry per measurement: drift shows)."""
        estimate = self.estimate(node)
        if estimate is not None:
            self.history.setdefault(node, []).append({"at": round(estimate.at, 3), **estimate.to_dict()})
