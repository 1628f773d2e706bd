"""The worker side of the swarm: a lane holds its share of each wave and releases it at the master's instant.

A lane is one process's part of the swarm (a Locust worker, the local process of a local run, a
thread in a test). Its handlers only queue shares and note release instants; the work happens in
``run``, called by whoever has a free hand (a Locust user, a test thread): open and warm one
connection per request with the wave's sender, say ready, wait (bounded) for the instant, release,
read, tag every event with this lane's clock, report the events to the master. Connections whose
exchange ended cleanly are kept and carry the lane's next waves: last-byte's HTTP/1.1 connections
(``senders.pooled``, one request each at a time) and single-packet's HTTP/2 connections
(``senders.pooled_h2``, the next wave's streams multiplexed on them). Only the connections missing
are opened and warmed, and every wave is still released at its instant in one loop.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections import deque
from typing import Any, Callable, Mapping

from ..history import Event, History
from ..senders import SENDERS, ArmedBurst, Sender
from ..senders.pooled import PooledLastByte
from ..senders.pooled_h2 import PooledSinglePacket
from harness.stats import ms
from .clocks import LaneClock
from .messages import DONE, GO, HELLO, PING, PONG, PREPARE, READY, Transport, event_to_wire, request_from_wire

log = logging.getLogger("race-harness.swarm")

Record = Callable[[Event, str], None]  # (an event, its request's stats name): e.g. Locust's request event


class Lane:
    """Shares waiting for a free hand, and the release instants the master names for them."""

    def __init__(self, transport: Transport, node: str, *, record: Record | None = None,
                 senders: Mapping[str, Sender] | None = None, clock: LaneClock | None = None) -> None:
        """``senders``: by sync name (default: the registered ones, last-byte and single-packet with
        pools of this lane's own, so that wave after wave goes out on connections the last wave left warm).
        ``clock``: this lane's wall clock (default: the system's, shifted by ``RACE_HARNESS_LANE_CLOCK_OFFSET_MS``
        when set); every wall time the lane reads or reports goes through it."""
        self.transport = transport
        self.clock = clock if clock is not None else LaneClock.from_env()
        self.node = node  # this process's id: the clock its events are timed on
        self.record = record
        self.pooled: list[PooledLastByte | PooledSinglePacket] = []
        if senders is None:
            self.pooled = [PooledLastByte(), PooledSinglePacket()]
            senders = {**SENDERS, **{s.sync: s for s in self.pooled}}
        self.senders = senders
        self._jobs: deque[dict[str, Any]] = deque()
        self._job_ready = threading.Condition()
        self._go: dict[str, tuple[threading.Event, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def attach(self) -> "Lane":
        """Listen for the master's messages on the transport."""
        self.transport.on(PREPARE, self.on_prepare)
        self.transport.on(GO, self.on_go)
        self.transport.on(PING, self.on_ping)
        return self

    def close(self) -> None:
        """Close the connections this lane keeps between waves."""
        for pooled in self.pooled:
            pooled.close()

    def hello(self, users: int = 1) -> None:
        """Tell the master this lane has ``users`` more hands to hold shares with."""
        self.transport.send(HELLO, {"users": users})

    # -- handlers: never block --
    def on_prepare(self, sender: str, data: dict[str, Any]) -> None:
        self._slot(data["wave"])
        with self._job_ready:
            self._jobs.append(data)
            self._job_ready.notify()

    def on_ping(self, sender: str, data: dict[str, Any]) -> None:
        """Answer at once with this lane's clock on receipt and on answering (the master estimates the offset)."""
        t1 = self.clock.now()
        self.transport.send(PONG, {"seq": data.get("seq"), "t0": data.get("t0"), "t1": t1, "t2": self.clock.now()})

    def on_go(self, sender: str, data: dict[str, Any]) -> None:
        flag, go = self._slot(data["wave"])
        go.update(data)
        flag.set()

    def _slot(self, wave: str) -> tuple[threading.Event, dict[str, Any]]:
        with self._lock:
            return self._go.setdefault(wave, (threading.Event(), {}))

    # -- the work --
    def next_job(self, timeout: float) -> dict[str, Any] | None:
        """The next share to hold, waiting at most ``timeout`` seconds; None if none came."""
        with self._job_ready:
            if not self._jobs:
                self._job_ready.wait(timeout)
            return self._jobs.popleft() if self._jobs else None

    def run(self, job: dict[str, Any]) -> None:
        """Hold, wait for the instant, release, read, record, report: one share of one wave."""
        wave, names = job["wave"], [r["name"] for r in job["requests"]]
        reply = {"run": job["run"], "wave": wave}
        armed: ArmedBurst | None = None
        try:
            requests = [request_from_wire(r) for r in job["requests"]]
            armed = self.senders[job.get("sync") or "last-byte"].open(
                requests, timeout=float(job["timeout"]), warmup_path=job.get("warmup_path") or None,
                verify_tls=job.get("verify_tls", True))
            self.transport.send(READY, {**reply, "ready": armed.ready, "errors": armed.errors[:5]})
            flag, go = self._slot(wave)
            if not flag.wait(float(job["go_timeout"])):
                log.error("wave %s: no release instant from the master within %.1f s; the share was not sent",
                          wave, float(job["go_timeout"]))
                self.transport.send(DONE, {**reply, "events": [], "aborted": len(names), "error": "no release instant"})
                return
            if go.get("abort"):
                self.transport.send(DONE, {**reply, "events": [], "aborted": len(names)})
                return
            # The instant and the origin come on this lane's clock (the master converted them with its
            # estimate of the offset); the senders wait on, and time with, the system's clock.
            at = go.get("release_at")
            received_before_ms = None if at is None else ms(float(at) - self.clock.now())
            result = armed.release(None if at is None else self.clock.to_system(float(at)),
                                   History(origin_wall=self.clock.to_system(float(job["origin_wall"]))))
        except Exception as exc:  # noqa: BLE001 - reported to the master, never lost silently
            log.error("wave %s: the share failed: %s\n%s", wave, exc, traceback.format_exc())
            self.transport.send(DONE, {**reply, "events": [], "aborted": len(names),
                                       "error": f"{type(exc).__name__}: {exc}"})
            return
        finally:
            if armed is not None:
                armed.close()
            with self._lock:
                self._go.pop(wave, None)
        events = result.events or []
        late_ms = ms(result.late)
        for event, name in zip(events, names):
            # "clock": whose perf_counter timed the event. Lanes' clocks are not one clock, so the
            # oracle compares times only between events of one clock (the node id names one process).
            event.meta.update({"worker": self.node, "clock": self.node, "wave": wave, "late_ms": late_ms})
            if self.record is not None:
                self.record(event, name)
        self.transport.send(DONE, {**reply, "events": [event_to_wire(e) for e in events], "late_ms": late_ms,
                                   # how long before the instant (on this lane's clock) the release began waiting:
                                   # negative when the instant had already passed (a late GO, or a clock ahead)
                                   "lead_left_ms": received_before_ms,
                                   "release_spread_ms": ms(result.release_spread),
                                   "arrival_spread_ms": ms(result.arrival_spread)})
