"""What happened: one timed event per request sent in a burst."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Iterable, Iterator

HISTORY_VERSION = 1

# The nemesis's steps (History.faults) that do harm, and those after which the service is whole again.
HARMS = frozenset({"kill", "pause", "cut", "downstream-fail"})
RECOVERIES = frozenset({"ready", "resume", "heal", "recover"})

# The phases a sender names in ``Event.error`` ("connect: ...", see harness.senders.burst); those before the
# request was complete prove it never reached the service.
_PHASES = frozenset({"connect", "warm-up", "send", "release", "read", "timeout"})
_BEFORE_COMPLETE = frozenset({"connect", "warm-up", "send", "release"})


def server_duration(meta: dict[str, Any]) -> float | None:
    """Seconds from an event's ``meta``: its ``server_timing`` (name -> ms, the ``Server-Timing`` header's
    durations; with several metrics the longest, as a total contains its parts)."""
    timing = meta.get("server_timing")
    durations = [v for v in timing.values() if isinstance(v, (int, float)) and v >= 0] if isinstance(timing, dict) else []
    return max(durations) / 1000 if durations else None


@dataclass
class Event:
    """One request and what came back.

    Times are seconds on the history's clock (``time.perf_counter`` offset so that the
    history's ``origin`` is 0); ``server_arrival`` is the target's own report of when the
    request reached it (epoch seconds), when the target reports one.
    """

    index: int
    payment: str | None = None
    channel: str | None = None  # "callback", "verify", or a free label for generic bursts
    connection: int | None = None
    t_release: float | None = None  # the request's final byte left
    t_response: float | None = None  # the whole response was read
    status: int | None = None
    body: Any = None  # parsed JSON where possible, else text
    error: str | None = None
    server_arrival: float | None = None
    # What the service said happened to the side effect (``generated``, ``already_generated``,
    # ``failed``, ``not_paid``), read from the body by the profile's description of its answers (``[answers]``).
    outcome: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    # The answer's body as it was read, whole (set whenever ``status`` is): bytes read in all, the SHA-256
    # (hex) of all of them, and whether ``body`` holds only their first bytes (the sender's ``body_limit``,
    # ``harness.senders.base.ANSWER_BODY_LIMIT``, 64 KiB), kept as text and never parsed.
    # None/False in histories written before they were recorded.
    body_size: int | None = None
    body_sha256: str | None = None
    body_truncated: bool = False

    @property
    def latency(self) -> float | None:
        if self.t_release is None or self.t_response is None:
            return None
        return self.t_response - self.t_release

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and self.status < 500

    @property
    def error_phase(self) -> str | None:
        """Where a transport error happened: the sender prefixes every error with its phase."""
        if self.error is None:
            return None
        phase = self.error.split(":", 1)[0].strip()
        return phase if phase in _PHASES else None

    @property
    def delivered(self) -> bool | None:
        """Did the request provably reach the service?

        True: an answer came back, or the request was complete (its final byte left) before an error.
        False: the error happened before the final byte left (refused, reset, timed out while
        connecting, warming up or sending), so the service never had the whole request.
        None: an error whose phase the sender did not name.
        """
        if self.status is not None:
            return True
        phase = self.error_phase
        if phase in _BEFORE_COMPLETE:
            return False
        if phase == "timeout":
            return self.t_release is not None
        if phase == "read":
            return True
        return None

    @property
    def server_duration(self) -> float | None:
        """Seconds the service says it worked on the request (``Server-Timing`` durations), if it says.

        With several metrics the longest is taken: a total contains its parts.
        """
        return server_duration(self.meta)

    @property
    def clock(self) -> str | None:
        """Which process's clock measured ``t_release``/``t_response`` (None: the harness's own).

        Times on different clocks (e.g. distributed Locust workers) are never compared.
        """
        clock = self.meta.get("clock")
        return None if clock is None else str(clock)


@dataclass
class History:
    """All events of one run, in the order the requests were planned."""

    events: list[Event] = field(default_factory=list)
    origin_wall: float = 0.0  # epoch seconds at history time 0
    sync: str = "last-byte"
    version: int = HISTORY_VERSION
    # What the nemesis did, in order: {"kind": kill | restart | ready | never-ready | pause | resume | error,
    # "wall": epoch seconds, "detail": ..., "schedule": ...}; and the schedule it was given (None: no nemesis).
    faults: list[dict[str, Any]] = field(default_factory=list)
    nemesis: dict[str, Any] | None = None

    def fault_time(self, fault: dict[str, Any]) -> float:
        """A fault's time on this history's clock (seconds since its origin)."""
        return float(fault["wall"]) - self.origin_wall

    def first_harm(self) -> dict[str, Any] | None:
        """The first step of the nemesis that did harm (a kill, a pause, a cut, a failed downstream call)."""
        return next((f for f in self.faults if f.get("kind") in HARMS), None)

    def whole_again(self) -> float | None:
        """When (this history's clock) the service was whole again after the first harm: infinity if it never
        was, None if nothing harmed it."""
        harm = next((i for i, f in enumerate(self.faults) if f.get("kind") in HARMS), None)
        if harm is None:
            return None
        back = next((f for f in self.faults[harm:] if f.get("kind") in RECOVERIES), None)
        return self.fault_time(back) if back is not None else float("inf")

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.events)

    def extend(self, events: Iterable[Event]) -> None:
        self.events.extend(events)

    def by_payment(self) -> dict[str, list[Event]]:
        grouped: dict[str, list[Event]] = {}
        for event in self.events:
            if event.payment is not None:
                grouped.setdefault(event.payment, []).append(event)
        return grouped

    def release_spread(self, events: Iterable[Event] | None = None) -> float | None:
        """Seconds from the first to the last final byte sent."""
        times = [e.t_release for e in (self.events if events is None else events) if e.t_release is not None]
        return max(times) - min(times) if len(times) > 1 else (0.0 if times else None)

    def arrival_spread(self, events: Iterable[Event] | None = None) -> float | None:
        """Seconds between the first and last arrival the server reported, if it reports them."""
        times = [e.server_arrival for e in (self.events if events is None else events) if e.server_arrival is not None]
        return max(times) - min(times) if len(times) > 1 else (0.0 if times else None)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "version": self.version,
            "sync": self.sync,
            "origin_wall": self.origin_wall,
            "events": [asdict(e) for e in self.events],
        }
        if self.nemesis is not None:  # a run without a nemesis reads as it always did
            data["nemesis"] = self.nemesis
            data["faults"] = [{**f, "t": round(self.fault_time(f), 6)} for f in self.faults]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "History":
        if data.get("version") != HISTORY_VERSION:
            raise ValueError(f"unsupported history version {data.get('version')!r}")
        known = {f.name for f in fields(Event)}  # a field a later version adds is dropped, not fatal
        return cls(
            events=[Event(**{k: v for k, v in e.items() if k in known}) for e in data["events"]],
            origin_wall=data.get("origin_wall", 0.0),
            sync=data.get("sync", "last-byte"),
            faults=[{k: v for k, v in f.items() if k != "t"} for f in data.get("faults", [])],
            nemesis=data.get("nemesis"),
        )

    def dumps(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)
