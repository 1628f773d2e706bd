"""The master side of the swarm: waves of deliveries across lanes, released at one instant, into one History.

One wave (``wave_size`` deliveries of payments):

1. duplicate ``j`` of the wave's ``i``-th payment goes to lane ``(i + j) % lanes``, so duplicates of
   one payment come from different lanes; each lane gets its share (``PREPARE``);
2. the lanes open and warm one connection per request and answer ``READY``;
3. once every share is ready (bounded), the master names an absolute release instant a little
   in the future (``release_lead``) in ``GO``, converted to each lane's clock with the offset it
   measured (``harness.swarm.clocks``: PING/PONG exchanges before the first wave and every
   ``clock_refresh`` seconds; a lane whose offset is not known within ``max_clock_uncertainty`` gets
   no shares, and is named);
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
from .clocks import DEFAULT_MAX_UNCERTAINTY_MS, ClockBook, ClockEstimate
from .messages import DONE, GO, HELLO, PING, PONG, PREPARE, READY, Transport, event_from_wire, request_to_wire
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
    clock_samples: int = 8  # PING/PONG exchanges per lane before the first wave (the best round trip is kept)
    clock_refresh: float = 10.0  # seconds between further measurements during a run (clocks drift)
    max_clock_uncertainty: float = DEFAULT_MAX_UNCERTAINTY_MS / 1000  # s: a lane less sure than this gets no shares
    clock_correction: bool = True  # convert release instants to each lane's clock (False: measure and report only)
    ping_timeout: float = 1.0  # seconds one round of PINGs waits for its PONGs


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
    release_at: float | None = None  # on the master's clock
    clocks: dict[str, ClockEstimate | None] = field(default_factory=dict)  # each lane's offset when it was launched

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
        self.clocks = ClockBook()
        self.clock_excluded: dict[str, str] = {}  # lane -> why its offset was not trusted
        self._clocks_measured = 0.0  # time.monotonic() of the last measurement
        self.stopping = threading.Event()
        self._lock = threading.Lock()

    def attach(self) -> "Coordinator":
        """Listen for the lanes' messages on the transport."""
        self.transport.on(HELLO, self.on_hello)
        self.transport.on(READY, self.on_ready)
        self.transport.on(DONE, self.on_done)
        self.transport.on(PONG, self.on_pong)
        return self

    # -- handlers: never block --
    def on_hello(self, node: str, data: dict[str, Any]) -> None:
        with self._lock:
            self.lanes[node] = self.lanes.get(node, 0) + int((data or {}).get("users", 1))

    def on_pong(self, node: str, data: dict[str, Any]) -> None:
        self.clocks.pong(node, data or {}, time.time())  # t3 first: every moment here widens the round trip

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
        clock = self._clock_meta(wave, node)
        for event in events:
            event.meta.update(clock)
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
        self.measure_clocks(self.senders(), config.clock_samples)
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

    # -- the clocks --
    def measure_clocks(self, nodes: list[str], samples: int) -> None:
        """``samples`` rounds of PING/PONG with every lane of ``nodes`` (each round bounded by ``ping_timeout``),
        then every lane's estimate is checked against the bound: a lane not known well enough gets no more shares."""
        c = self.config
        for _ in range(samples):
            if self.stopping.is_set() or not nodes:
                break
            for node in nodes:
                self.transport.send(PING, self.clocks.ping(node), to=node)
            deadline = time.monotonic() + c.ping_timeout
            while self.clocks.outstanding(nodes) and time.monotonic() < deadline and not self.stopping.is_set():
                self.stopping.wait(0.001)
            self.clocks.forget_pending()
        self._clocks_measured = time.monotonic()
        for node in nodes:
            self.clocks.note(node)
            why = self.clock_problem(node)
            if why is not None and node not in self.clock_excluded:
                self.clock_excluded[node] = why
                self._lapse([node], why)
            elif why is None and not c.clock_correction:
                estimate = self.clocks.estimate(node)
                if estimate is not None and abs(estimate.offset) > c.max_clock_uncertainty:
                    log.warning("race-harness swarm: lane %s: its clock is %+.1f ms off the master's and clock "
                                "correction is off: its duplicates reach the service that much apart from the others",
                                node, estimate.offset * 1000)

    def clock_problem(self, node: str) -> str | None:
        """Why the lane's offset cannot be trusted for a release instant, or None."""
        estimate, bound = self.clocks.estimate(node), self.config.max_clock_uncertainty
        if estimate is None:
            return f"no answer to its clock PINGs (within {self.config.ping_timeout:g} s each): its offset is unknown"
        if estimate.uncertainty > bound:
            return (f"clock offset {estimate.offset * 1000:+.1f} ms known only to ±{estimate.uncertainty * 1000:.1f} ms "
                    f"(best round trip {estimate.rtt * 1000:.1f} ms of {estimate.samples}), over the bound "
                    f"±{bound * 1000:g} ms (--max-clock-uncertainty-ms)")
        return None

    def _shift(self, wave: Wave, node: str) -> float:
        """Seconds to add to an instant on the master's clock to name it on the lane's."""
        estimate = wave.clocks.get(node)
        return estimate.offset if estimate is not None and self.config.clock_correction else 0.0

    def _clock_meta(self, wave: Wave, node: str) -> dict[str, Any]:
        """What every event of the lane's share says of its clock: the offset used and whether times were converted."""
        estimate = wave.clocks.get(node)
        if estimate is None:
            return {}
        return {"clock_offset_ms": round(estimate.offset * 1000, 3),
                "clock_uncertainty_ms": round(estimate.uncertainty * 1000, 3),
                "clock_corrected": self.config.clock_correction}

    def clock_report(self) -> dict[str, Any]:
        """Every lane's offset, round trip and uncertainty, each measurement (drift), and the lanes left out."""
        lanes: dict[str, Any] = {}
        for node in sorted(set(self.lanes) | set(self.clock_excluded)):
            estimate = self.clocks.estimate(node)
            lanes[node] = {**(estimate.to_dict() if estimate else {"offset_ms": None}),
                           "measurements": self.clocks.history.get(node, []),
                           **({"excluded": self.clock_excluded[node]} if node in self.clock_excluded else {})}
        return {"bound_ms": round(self.config.max_clock_uncertainty * 1000, 3),
                "correction": self.config.clock_correction, "lanes": lanes}

    def _launch(self, batch: list[Delivery], number: int) -> Wave | None:
        c, work = self.config, self.work
        assert work is not None
        if c.clock_refresh > 0 and time.monotonic() - self._clocks_measured >= c.clock_refresh:
            self.measure_clocks(self.senders(), max(2, c.clock_samples // 2))
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
        wave = Wave(f"{self.run_id}-{number}", batch, set(shares),
                    clocks={node: self.clocks.estimate(node) for node in shares})
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
                                          "origin_wall": self.history.origin_wall + self._shift(wave, node),
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
        for node in wave.nodes:  # the one instant, named on each lane's own clock
            self.transport.send(GO, {"run": self.run_id, "wave": wave.id,
                                     "release_at": wave.release_at + self._shift(wave, node)}, to=node)
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
        for node, done in sorted(wave.done.items()):
            self._warn_off_time(wave, node, done)
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

    def _warn_off_time(self, wave: Wave, node: str, done: dict[str, Any]) -> None:
        """Say whether a lane that missed its instant was late (the GO came too late: a longer lead helps) or
        early (its clock is ahead of what the master knows: a longer lead only widens the gap)."""
        late, left = float(done.get("late_ms") or 0.0), done.get("lead_left_ms")
        if late <= 5 or left is None:
            return
        estimate, lead_ms = wave.clocks.get(node), self.config.release_lead * 1000
        trip_ms = estimate.rtt * 1000 / 2 if estimate is not None else None
        if float(left) >= 0:  # the instant was still ahead when the lane began to wait: it woke late (a busy worker)
            log.warning("wave %s: lane %s released %.1f ms LATE: it began waiting %.1f ms before the instant and woke "
                        "after it (a busy worker process: fewer users per worker, or more workers)", wave.id, node,
                        late, float(left))
        elif trip_ms is not None and trip_ms < lead_ms / 2:
            # The GO should have reached the lane about lead - trip before the instant; it found the instant gone.
            ahead = lead_ms - trip_ms - float(left)
            log.warning("wave %s: lane %s released about %.0f ms EARLY, not late: its clock is about %.0f ms further "
                        "ahead than the master allowed for (%s); a longer release lead would only widen the gap: keep clock "
                        "correction on, and check the lane's clock (NTP) or whether it jumped", wave.id, node, ahead,
                        ahead, "correction off" if not self.config.clock_correction else
                        f"offset {estimate.offset * 1000:+.1f} ms" if estimate is not None else "no estimate")
        else:
            log.warning("wave %s: lane %s released %.1f ms LATE: the GO took longer than the %.0f ms release lead to "
                        "reach it%s: raise --release-lead-ms", wave.id, node, late, lead_ms,
                        f" (its round trip is {estimate.rtt * 1000:.1f} ms)" if estimate is not None else "")

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
