"""The master side of the swarm: waves of deliveries across lanes, released at one instant, into one History.

One wave (``wave_size`` deliveries of payments):

1. duplicate ``j`` of the wave's ``i``-th payment goes to lane ``(i + j) % lanes``, so duplicates of
   one payment come from different lanes; each lane gets its share (``PREPARE``);
2. the lanes open and warm one connection per request and answer ``READY``;
3. once every share is ready (bounded), the master names an absolute release instant a little
   in the future (``release_lead``) in ``GO``;
4. at that instant every lane releases; each reports its events (``DONE``), which join the run's
   one History.

Up to ``inflight`` waves are under way at once. With ``redelivery_rounds`` K, a paid payment whose
duplicates were answered but produced no receipt is delivered again in a later wave, up to K more
times. Every wait is bounded: a lane that does not answer in time is named in ``lapses`` and gets
no more shares; when no lane is left, ``SwarmTimeout`` says which lanes went silent and where.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from ..history import Event, History
from harness.prepare.deliveries import redelivery
from harness.prepare.plan import Plan
from ..senders import PreparedRequest
from ..senders.auto import AUTO, resolve_sync
from ..profile import Payment, Profile
from .messages import DONE, GO, HELLO, PREPARE, READY, Transport, event_from_wire, request_to_wire
from harness.errors import SwarmTimeout

log = logging.getLogger("race-harness.swarm")


@dataclass(frozen=True)
class WaveConfig:
    """How the master drives waves; every wait below is bounded by these."""

    wave_size: int = 10  # payments released at one instant
    inflight: int = 2  # waves under way at once
    release_lead: float = 0.1  # seconds between naming the release instant and the instant
    burst_timeout: float = 30.0  # seconds one share may take to connect, send and read
    slack: float = 15.0  # seconds beyond the burst timeout a wave step may take before a lane is given up
    lane_wait: float = 60.0  # seconds to wait for the first lanes to say hello
    redelivery_rounds: int = 0
    heal_after: int = 0  # call ``heal`` before the first delivery of a round after this one (0: never)
    sync: str = "last-byte"  # the lanes' sender; "auto" is resolved once by the master, before the first wave


@dataclass(frozen=True)
class Work:
    """What the master delivers: the service's profile, its plan, the payments made for it, the plan's requests."""

    profile: Profile  # the service's contract the requests were built from (the report records it)
    plan: Plan
    payments: list[Payment]
    requests: list[PreparedRequest]


@dataclass
class Delivery:
    slot: int  # which payment of the plan
    round: int  # 1 for the first delivery, 2 for the first redelivery...


@dataclass
class Wave:
    id: str
    deliveries: list[Delivery]
    nodes: set[str]
    ready: dict[str, dict] = field(default_factory=dict)
    done: dict[str, dict] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    all_ready: threading.Event = field(default_factory=threading.Event)
    all_done: threading.Event = field(default_factory=threading.Event)
    release_at: float | None = None

    def _check(self) -> None:
        if self.nodes <= set(self.ready):
            self.all_ready.set()
        if self.nodes <= set(self.done):
            self.all_done.set()


def stats_name(target: Profile, request: PreparedRequest) -> str:
    """How a lane reports a request: one line per endpoint in Locust's statistics."""
    return f"{request.method} {target.channel_path(request.channel)} [burst]"


class Coordinator:
    """One run's waves, from the first lane's hello to the last wave's events."""

    def __init__(self, transport: Transport, *, wanted_users: Callable[[], int] = lambda: 1,
                 alive: Callable[[str], bool] = lambda node: True) -> None:
        """``wanted_users``: how many lane users to wait for before the first wave (bounded by
        ``lane_wait``); ``alive``: whether a lane's process is still there (Locust knows)."""
        self.transport, self.wanted_users, self.alive = transport, wanted_users, alive
        self.run_id = uuid.uuid4().hex[:8]
        self.config = WaveConfig()
        self.work: Work | None = None
        self.requests_by_slot: dict[int, list[PreparedRequest]] = {}
        self.history = History()
        self.heal: Callable[[], None] | None = None
        self.lanes: dict[str, int] = {}  # node id -> users that said hello (hellos come before the run)
        self.silent: set[str] = set()  # lanes that missed a bound: no more shares for them
        self.lapses: list[str] = []  # what each silent lane missed, in words
        self.waves: dict[str, Wave] = {}
        self.rounds_of: dict[int, int] = {}
        self.receipted: set[int] = set()
        self.healed = False
        self.stopping = threading.Event()
        self._lock = threading.Lock()

    def attach(self) -> "Coordinator":
        """Listen for the lanes' messages on the transport."""
        self.transport.on(HELLO, self.on_hello)
        self.transport.on(READY, self.on_ready)
        self.transport.on(DONE, self.on_done)
        return self

    # -- handlers: never block --
    def on_hello(self, node: str, data: dict[str, Any]) -> None:
        with self._lock:
            self.lanes[node] = self.lanes.get(node, 0) + int((data or {}).get("users", 1))

    def on_ready(self, node: str, data: dict[str, Any]) -> None:
        wave = self._wave_of(data)
        if wave is not None:
            with self._lock:
                wave.ready[node] = data
                wave._check()

    def on_done(self, node: str, data: dict[str, Any]) -> None:
        wave = self._wave_of(data)
        if wave is None:
            return
        events = [event_from_wire(e) for e in data.get("events") or []]
        with self._lock:
            if node in wave.done:
                return
            wave.done[node] = data
            for event in events:
                event.index = len(self.history.events)
                self.history.events.append(event)
            wave.events.extend(events)
            wave._check()
        if data.get("error"):
            log.error("wave %s on %s: %s", wave.id, node, data["error"])

    def _wave_of(self, data: dict[str, Any] | None) -> Wave | None:
        data = data or {}
        if data.get("run") != self.run_id:
            return None  # a message of an earlier run
        return self.waves.get(data.get("wave"))

    # -- the run --
    def senders(self) -> list[str]:
        """The lanes that take shares: said hello, still alive, never missed a bound."""
        with self._lock:
            return [n for n, users in sorted(self.lanes.items()) if users > 0 and n not in self.silent and self.alive(n)]

    def stop(self) -> None:
        """Launch no more waves (waves under way still report; ``await_waves`` waits for them)."""
        self.stopping.set()

    def run(self, work: Work, config: WaveConfig, heal: Callable[[], None] | None = None) -> None:
        """Drive every delivery of ``work`` through waves until done or stopped; events go to ``history``.

        ``heal`` is called once, before the first wave of a round after ``config.heal_after``.
        SwarmTimeout when no lane says hello, or none is left to send.
        """
        if config.sync == AUTO:  # once, here: every lane sends every wave the same way
            config = replace(config, sync=resolve_sync(AUTO, work.profile.url(work.profile.health_path),
                                                       verify_tls=work.profile.tls_trust))
            log.info("race-harness swarm: --sync auto: the lanes send with %s", config.sync)
        self.work, self.config, self.heal = work, config, heal
        slot_of = {p.id: i for i, p in enumerate(work.payments)}
        for request in work.requests:
            self.requests_by_slot.setdefault(slot_of[request.payment], []).append(request)
        self.history.sync, self.history.origin_wall = config.sync, time.time()  # the sender that ran
        self._wait_for_lanes()
        c, plan = config, work.plan
        queue = deque(Delivery(slot, 1) for slot in range(plan.slots))
        inflight: deque[Wave] = deque()
        deliveries = plan.slots * (c.redelivery_rounds + 1)
        max_waves = math.ceil(deliveries / c.wave_size) + deliveries  # a hard bound on the loop
        for number in range(max_waves + 1):
            if not (queue or inflight) or self.stopping.is_set():
                break
            while inflight and (len(inflight) >= c.inflight or not queue):
                self._complete(inflight.popleft(), queue)
                if self.stopping.is_set():
                    return
            if not queue:
                continue
            batch = [queue.popleft() for _ in range(min(c.wave_size, len(queue)))]
            if c.heal_after and not self.healed and any(d.round > c.heal_after for d in batch):
                self.healed = True
                if self.heal is not None:
                    self.heal()
            wave = self._launch(batch, number)
            if wave is not None:
                inflight.append(wave)
        for wave in inflight:
            self._complete(wave, deque())

    def _wait_for_lanes(self) -> None:
        deadline = time.monotonic() + self.config.lane_wait
        grace_until = None
        while time.monotonic() < deadline and not self.stopping.is_set():
            have = sum(self.lanes.values())
            if have >= max(1, self.wanted_users()):
                return
            if have and grace_until is None:
                grace_until = time.monotonic() + 2.0  # slow ramp-ups: start with the users there are
            if grace_until is not None and time.monotonic() >= grace_until:
                return
            self.stopping.wait(0.05)
        if not self.senders():
            raise SwarmTimeout(f"no lane said hello within {self.config.lane_wait:.0f} s "
                               "(Locust: workers connected? -u at least 1?)")

    def _launch(self, batch: list[Delivery], number: int) -> Wave | None:
        c, work = self.config, self.work
        assert work is not None
        senders = self.senders()
        if not senders:
            raise SwarmTimeout("no lane is left to send: " + ("; ".join(self.lapses) or "every lane has gone"))
        shares: dict[str, list[dict]] = {node: [] for node in senders}
        for i, delivery in enumerate(batch):
            self.rounds_of[delivery.slot] = delivery.round
            for j, request in enumerate(self.requests_by_slot[delivery.slot]):
                # A retry is signed afresh; so is every wave's request when the scheme signs a timestamp
                # (a long swarm's later waves would otherwise carry prepare-time signatures).
                if delivery.round > 1 or work.profile.binds_time(request.channel):
                    request = redelivery(work.profile, work.payments[delivery.slot], request)
                wire = request_to_wire(request, stats_name(work.profile, request))
                wire["meta"] = {**request.meta, "round": delivery.round}
                shares[senders[(i + j) % len(senders)]].append(wire)
        shares = {node: share for node, share in shares.items() if share}
        wave = Wave(f"{self.run_id}-{number}", batch, set(shares))
        with self._lock:
            self.waves[wave.id] = wave
        step = c.burst_timeout + c.slack
        # A lane waits for its release instant longer than the master waits for every READY: when another lane
        # is silent, the master names the instant only at the end of its wait, and a live lane whose own wait
        # ended at the same moment would drop a share the master is about to release.
        go_timeout = step + c.release_lead + c.slack
        for node, share in shares.items():
            self.transport.send(PREPARE, {"run": self.run_id, "wave": wave.id, "requests": share, "sync": c.sync,
                                          "timeout": c.burst_timeout, "go_timeout": go_timeout,
                                          "origin_wall": self.history.origin_wall,
                                          "warmup_path": work.profile.health_path,
                                          "verify_tls": work.profile.tls_trust}, to=node)
        if not self._wait(wave.all_ready, step):
            if self.stopping.is_set():  # the run is stopping: this wave is never released
                self._go(wave, shares, {"abort": True})
                with self._lock:
                    wave.nodes = set()  # nobody owes this wave a report
                return None
            with self._lock:
                missing = sorted(wave.nodes - set(wave.ready))
                wave.nodes -= set(missing)
            self._lapse(missing, f"no READY for wave {wave.id} within {step:.1f} s")
            self._go(wave, {node: shares[node] for node in missing}, {"abort": True})
            if not wave.nodes:
                raise SwarmTimeout("no lane is left to send: " + "; ".join(self.lapses))
        wave.release_at = time.time() + c.release_lead
        self._go(wave, {node: shares[node] for node in wave.nodes}, {"release_at": wave.release_at})
        return wave

    def _go(self, wave: Wave, shares: dict[str, Any], data: dict[str, Any]) -> None:
        for node in shares:
            self.transport.send(GO, {"run": self.run_id, "wave": wave.id, **data}, to=node)

    def _lapse(self, nodes: list[str], what: str) -> None:
        with self._lock:
            for node in nodes:
                self.silent.add(node)
                self.lapses.append(f"lane {node}: {what}")
        for node in nodes:
            log.warning("race-harness swarm: lane %s: %s; it gets no more shares", node, what)

    def _complete(self, wave: Wave, queue: deque) -> None:
        """Wait (bounded) for a wave's reports; queue another round for paid payments still without a receipt."""
        c, work = self.config, self.work
        assert work is not None
        bound = c.burst_timeout + c.release_lead + c.slack
        if not self._wait(wave.all_done, bound):
            if self.stopping.is_set():
                return
            with self._lock:
                missing = sorted(wave.nodes - set(wave.done))
            self._lapse(missing, f"no DONE for wave {wave.id} within {bound:.1f} s")
        late = [d.get("late_ms") or 0 for d in wave.done.values()]
        if late and max(late) > 5:
            log.warning("wave %s released up to %.1f ms late on a lane (raise the release lead?)", wave.id, max(late))
        with self._lock:
            events = list(wave.events)
        for delivery in wave.deliveries:
            payment = work.payments[delivery.slot].id
            outcomes = {work.profile.outcome_of(e.body, e.status) for e in events if e.payment == payment}
            if "generated" in outcomes:
                self.receipted.add(delivery.slot)
            elif (work.plan.is_paid(delivery.slot) and delivery.round <= c.redelivery_rounds and outcomes
                  and not self.stopping.is_set()):
                queue.append(Delivery(delivery.slot, delivery.round + 1))

    def await_waves(self, timeout: float) -> bool:
        """After ``stop``: wait at most ``timeout`` s for the released waves' reports; False if some never came."""
        deadline = time.monotonic() + timeout
        for wave in [w for w in list(self.waves.values()) if w.release_at is not None]:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not wave.all_done.wait(remaining):
                log.warning("wave %s: stopped before every lane reported; judging what came back", wave.id)
                return False
        return True

    def _wait(self, flag: threading.Event, timeout: float) -> bool:
        """Wait for ``flag`` at most ``timeout`` seconds; give up early (False) once the run is stopping."""
        deadline = time.monotonic() + timeout
        while not flag.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.stopping.is_set():
                return False
            flag.wait(min(0.1, remaining))
        return True
