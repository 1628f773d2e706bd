"""The swarm's protocol without Locust: a master and its lanes talking through an in-process transport.

The transport carries each message as plain data (a JSON round trip, as Locust's msgpack would) to a
delivery thread per node, so handlers run on another thread than the sender, as across processes.
Lanes are real ``harness.swarm.Lane`` objects whose hands are threads; bursts go to a real
reference service on loopback.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from dataclasses import dataclass, field, replace
from enum import Enum
from http import HTTPStatus
from pathlib import Path
from typing import Any, Iterator

import pytest

from harness.prepare.plan import Plan
from harness.reference import FaultFlags, profile_of
from harness.verdict.result import RunReport
from harness.swarm import GO, HELLO, PING, PONG, Coordinator, Handler, Lane, WaveConfig, Work, judge, prepare
from harness.errors import SwarmTimeout
from harness.swarm.clocks import LaneClock

# Real processes, nested pytest or Locust runs: `pytest -m 'not slow'` leaves these out.
pytestmark = pytest.mark.slow

MASTER = "master"
LOOP_LIMIT = 120.0  # seconds: no delivery thread or hand outlives a test by more than this
# A hang bound, not a speed bound: every wait of the configs below (a few seconds each), many times over.
HANG = 60.0


class Hub:
    """In-process messages between named nodes, one delivery thread per node (like a network)."""

    def __init__(self) -> None:
        self.handlers: dict[str, dict[str, Handler]] = {}
        self.inboxes: dict[str, queue.Queue] = {}
        self.delays: dict[str, float] = {}  # message kind -> seconds its delivery takes (a slow network)
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []

    def transport(self, node: str) -> "HubTransport":
        self.handlers[node], self.inboxes[node] = {}, queue.Queue()
        thread = threading.Thread(target=self._deliver, args=(node,), daemon=True)
        thread.start()
        self.threads.append(thread)
        return HubTransport(self, node)

    def _deliver(self, node: str) -> None:
        deadline = time.monotonic() + LOOP_LIMIT
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                sender, kind, data = self.inboxes[node].get(timeout=0.05)
            except queue.Empty:
                continue
            handler = self.handlers[node].get(kind)
            if handler is not None:  # a node without a handler drops the message, as Locust does
                handler(sender, data)

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(5)


@dataclass
class HubTransport:
    hub: Hub
    node: str

    def send(self, kind: str, data: dict[str, Any], to: str | None = None) -> None:
        message = (self.node, kind, json.loads(json.dumps(data)))
        inbox = self.hub.inboxes[to or MASTER]
        if kind in self.hub.delays:
            timer = threading.Timer(self.hub.delays[kind], inbox.put, args=(message,))
            timer.daemon = True
            timer.start()
        else:
            inbox.put(message)

    def on(self, kind: str, handler: Handler) -> None:
        self.hub.handlers[self.node][kind] = handler


@dataclass
class Swarm:
    """A master and its lanes; ``run`` drives a plan against a target and judges it."""

    hub: Hub
    coordinator: Coordinator
    stop: threading.Event = field(default_factory=threading.Event)
    hands: list[threading.Thread] = field(default_factory=list)
    lanes: list[Lane] = field(default_factory=list)

    def lane(self, node: str, hands: int = 2, clock: LaneClock | None = None) -> Lane:
        lane = Lane(self.hub.transport(node), node, clock=clock).attach()
        self.lanes.append(lane)
        lane.hello(users=hands)
        for _ in range(hands):
            thread = threading.Thread(target=self._hand, args=(lane,), daemon=True)
            thread.start()
            self.hands.append(thread)
        return lane

    def silent_lane(self, node: str, *, clock: bool = True) -> None:
        """A lane that says hello and then never answers its work (a hung worker); with ``clock`` False it does
        not answer the master's clock PINGs either (a partitioned one)."""
        transport = self.hub.transport(node)
        if clock:
            transport.on(PING, lambda sender, data: transport.send(
                PONG, {"seq": data["seq"], "t0": data["t0"], "t1": time.time(), "t2": time.time()}))
        transport.send(HELLO, {"users": 1})

    def _hand(self, lane: Lane) -> None:
        deadline = time.monotonic() + LOOP_LIMIT
        while not self.stop.is_set() and time.monotonic() < deadline:
            job = lane.next_job(timeout=0.05)
            if job is not None:
                lane.run(job)

    def drive(self, work: Work, config: WaveConfig) -> BaseException | None:
        """Run the master on its own thread; fail (not hang) if it is still waiting after ``HANG``."""
        raised: list[BaseException] = []

        def master() -> None:
            try:
                self.coordinator.run(work, config)
            except BaseException as exc:  # noqa: BLE001 - handed to the test thread
                raised.append(exc)

        thread = threading.Thread(target=master, daemon=True)
        thread.start()
        thread.join(HANG)
        assert not thread.is_alive(), f"the master is still waiting after {HANG:.0f} s"
        return raised[0] if raised else None

    def run(self, target, plan: Plan, config: WaveConfig) -> RunReport:
        work = prepare(target, plan)
        error = self.drive(work, config)
        assert error is None, error
        judged = judge(work, self.coordinator.history, label="swarm", targets_file="exactly-once", config={},
                       counters={}, memory={}, started=time.time())
        assert isinstance(judged, RunReport), judged
        return judged


@pytest.fixture
def swarm() -> Iterator[Swarm]:
    hub = Hub()
    coordinator = Coordinator(hub.transport(MASTER), wanted_users=lambda: 4).attach()
    swarm = Swarm(hub, coordinator)
    yield swarm
    coordinator.stop()
    swarm.stop.set()
    for thread in swarm.hands:
        thread.join(5)
    for lane in swarm.lanes:
        lane.close()
    hub.close()


WAVES = WaveConfig(wave_size=2, inflight=2, release_lead=0.1, burst_timeout=10.0, slack=2.0, lane_wait=10.0)


def check(report: RunReport, name: str):
    return next(c for c in report.checks if c.name == name)


def rounds_by_payment(history) -> dict[str, dict[int, set]]:
    """payment -> round -> the outcomes its events were answered with (read by the oracle)."""
    out: dict[str, dict[int, set]] = {}
    for event in history.events:
        out.setdefault(event.payment, {}).setdefault(event.meta["round"], set()).add(event.outcome)
    return out


@pytest.mark.parametrize("mode, valid, exit_code", [("vulnerable", False, 1), ("atomic", True, 0)])
def test_each_payments_duplicates_leave_from_both_lanes_at_one_instant_and_the_oracle_judges_the_mode(
        swarm, reference_service, mode, valid, exit_code):
    service = reference_service(mode, generation_delay_ms=150)
    swarm.lane("lane-a")
    swarm.lane("lane-b")
    report = swarm.run(profile_of(service), Plan(payments=4, duplicates=4), WAVES)
    lanes_of: dict[str, set] = {}
    for event in swarm.coordinator.history.events:
        lanes_of.setdefault(event.payment, set()).add(event.meta["worker"])
    assert len(lanes_of) == 4 and all(lanes == {"lane-a", "lane-b"} for lanes in lanes_of.values())
    # Every duplicate reached the service before the payment's first generation finished.
    assert check(report, "race-exercised").valid is True
    assert report.verdict.valid is valid and report.verdict.exit_code == exit_code
    assert len(swarm.coordinator.waves) == 2 and not swarm.coordinator.lapses


def test_every_event_is_timed_on_the_clock_of_the_lane_that_sent_it(swarm, reference_service):
    service = reference_service("atomic", generation_delay_ms=150)
    swarm.lane("lane-a")
    swarm.lane("lane-b")
    swarm.run(profile_of(service), Plan(payments=3, duplicates=2), WAVES)
    assert len(swarm.coordinator.history.events) == 6
    assert {e.meta["clock"] for e in swarm.coordinator.history.events} == {"lane-a", "lane-b"}
    assert all(e.clock == e.meta["worker"] for e in swarm.coordinator.history.events)


@pytest.mark.parametrize("correction, valid, exit_code", [(True, False, 1), (False, None, 3)])
def test_a_lane_whose_clock_is_20_ms_ahead_is_measured_and_its_release_instant_converted(
        swarm, reference_service, correction, valid, exit_code):
    # A 10 ms check-then-act window: caught only when both duplicates reach the service within 10 ms.
    service = reference_service("vulnerable", generation_delay_ms=50, faults=FaultFlags(race_window_ms=10))
    swarm.lane("lane-a", hands=1)
    swarm.lane("lane-b", hands=1, clock=LaneClock(0.020))
    report = swarm.run(profile_of(service), Plan(payments=6, duplicates=2),
                       replace(WAVES, wave_size=6, inflight=1, clock_correction=correction))

    estimate = swarm.coordinator.clocks.estimate("lane-b")
    assert estimate is not None and abs(estimate.offset - 0.020) <= estimate.uncertainty + 0.001
    assert {e.meta["clock_offset_ms"] for e in swarm.coordinator.history.events if e.meta["worker"] == "lane-b"} \
        == {round(estimate.offset * 1000, 3)}
    # Corrected: the duplicates meet at the service and the window is hit. Not corrected: they arrive ~20 ms
    # apart, one receipt each, and the run says it could not show the race instead of passing.
    assert report.verdict.valid is valid and report.verdict.exit_code == exit_code, report.explain()
    if not correction:
        assert "clocks disagree" in check(report, "race-exercised").details["reason"]


def test_a_lane_that_never_answers_the_clock_pings_is_named_and_gets_no_shares(swarm, reference_service):
    service = reference_service("atomic", generation_delay_ms=0)
    swarm.lane("lane-a")
    swarm.silent_lane("lane-mute", clock=False)
    config = replace(WAVES, ping_timeout=0.2, clock_samples=3)
    swarm.run(profile_of(service), Plan(payments=2, duplicates=2), config)

    assert swarm.coordinator.clock_excluded.keys() == {"lane-mute"}
    assert "offset is unknown" in swarm.coordinator.clock_report()["lanes"]["lane-mute"]["excluded"]
    assert {e.meta["worker"] for e in swarm.coordinator.history.events} == {"lane-a"}


def test_a_lane_that_never_answers_is_named_and_gets_no_more_shares_while_the_others_go_on(swarm, reference_service):
    service = reference_service("atomic", generation_delay_ms=150)
    swarm.lane("lane-a")
    swarm.silent_lane("lane-silent")
    # Room for the live lane's share on a loaded machine: only the silent lane may miss its wait. One
    # wave under way at a time: the second is shared out only after the first has given the silent
    # lane up (with two under way, a loaded machine may share both out before it does).
    config = WaveConfig(wave_size=2, inflight=1, burst_timeout=10.0, slack=2.0, lane_wait=10.0)
    swarm.run(profile_of(service), Plan(payments=4, duplicates=2), config)
    assert len(swarm.coordinator.lapses) == 1, swarm.coordinator.lapses
    (lapse,) = swarm.coordinator.lapses
    assert "lane-silent" in lapse and "no READY" in lapse and "12.0 s" in lapse
    assert {e.meta["worker"] for e in swarm.coordinator.history.events} == {"lane-a"}
    # The first wave lost the silent lane's half; every later wave went whole to lane-a.
    assert len(swarm.coordinator.history.events) == 4 * 2 - 2


def test_a_live_lane_keeps_its_share_when_the_release_instant_comes_only_after_the_master_gave_up_a_silent_one(
        swarm, reference_service):
    service = reference_service("atomic", generation_delay_ms=0)
    swarm.hub.delays[GO] = 0.5  # the instant reaches the lanes half a second after the master names it
    swarm.lane("lane-a")
    swarm.silent_lane("lane-silent")
    # The master names the first wave's instant only when its wait for the silent lane's READY ends (5 s);
    # the live lane, READY long before, must still be waiting for it then, and a little longer.
    config = WaveConfig(wave_size=2, inflight=1, burst_timeout=4.0, slack=1.0, lane_wait=10.0)
    swarm.run(profile_of(service), Plan(payments=4, duplicates=2), config)

    assert [lapse.split(":")[0] for lapse in swarm.coordinator.lapses] == ["lane lane-silent"]
    assert len(swarm.coordinator.history.events) == 4 * 2 - 2  # only the silent lane's half of wave 1 lost


def test_a_master_whose_only_lane_never_answers_stops_with_an_error_naming_it_instead_of_hanging(
        swarm, reference_service):
    service = reference_service("atomic", generation_delay_ms=150)
    swarm.silent_lane("lane-silent")
    config = WaveConfig(wave_size=2, burst_timeout=1.0, slack=0.5, lane_wait=10.0)
    error = swarm.drive(prepare(profile_of(service), Plan(payments=2, duplicates=2)), config)
    assert isinstance(error, SwarmTimeout)
    assert "lane-silent" in str(error) and "no READY" in str(error)


def test_only_payments_without_a_receipt_are_delivered_again(swarm, reference_service):
    service = reference_service("atomic", generation_delay_ms=50, faults=FaultFlags(failure_rate=0.6, seed=7))
    swarm.lane("lane-a")
    swarm.lane("lane-b")
    config = WaveConfig(wave_size=3, burst_timeout=10.0, slack=2.0, lane_wait=10.0, redelivery_rounds=4)
    report = swarm.run(profile_of(service), Plan(payments=6, duplicates=3), config)
    redelivered = 0
    for payment, rounds in rounds_by_payment(swarm.coordinator.history).items():
        assert sorted(rounds) == list(range(1, len(rounds) + 1)), payment  # rounds follow one another
        for number in sorted(rounds)[:-1]:
            assert "generated" not in rounds[number], f"{payment} had a receipt in round {number} yet went again"
            redelivered += 1
        last = rounds[max(rounds)]
        assert "generated" in last or max(rounds) == config.redelivery_rounds + 1, payment
    assert redelivered > 0  # the injected failures did make payments go again
    receipted = {p for p, rounds in rounds_by_payment(swarm.coordinator.history).items() if "generated" in rounds[max(rounds)]}
    assert all(row["receipts"] == 1 for row in report.payments if row["payment"] in receipted)


@pytest.mark.parametrize("sync", ["last-byte", "single-packet"])
def test_a_lanes_later_waves_go_out_on_the_connections_its_earlier_waves_left_warm(swarm, reference_service, sync):
    service = reference_service("atomic", generation_delay_ms=0, http2=sync == "single-packet")
    swarm.lane("lane-a", hands=1)
    report = swarm.run(profile_of(service), Plan(payments=6, duplicates=3), replace(WAVES, inflight=1, sync=sync))

    assert report.verdict.valid is True, report.explain()
    waves: dict[int, list[dict]] = {}
    for event in report.history["events"]:
        waves.setdefault(int(event["meta"]["wave"].rsplit("-", 1)[1]), []).append(event)
    first, *later = [waves[number] for number in sorted(waves)]
    assert len(later) == 2 and all(len(wave) == 6 for wave in waves.values())
    assert not any(e["meta"].get("reused") for e in first)  # the first wave opened and warmed its connections
    assert all(e["meta"].get("reused") for wave in later for e in wave)  # the next ones found them warm
    if sync == "single-packet":  # HTTP/2: every wave's 6 streams multiplexed on the one connection
        assert {e["meta"]["h2"]["connections"] for wave in waves.values() for e in wave} == {1}
    for wave in waves.values():  # each still released in one loop, at the instant the master named
        assert all(e["t_release"] is not None for e in wave) and len({e["meta"]["late_ms"] for e in wave}) == 1


def test_an_event_crosses_the_wire_as_plain_data_and_comes_back_equal():
    from dataclasses import asdict

    from harness.history import Event
    from harness.swarm.messages import event_from_wire, event_to_wire

    event = Event(index=3, payment="p1", channel="callback", connection=2, t_release=0.5, t_response=0.75, status=200,
                  body={"result": "generated", "items": [1, {"a": None}]}, server_arrival=1.7e9, outcome="generated",
                  meta={"round": 1, "wave": "w-0", "reused": True, "server_timing": {"app": 1.5}, "tags": ("a", "b")})
    wire = event_to_wire(event)

    assert json.loads(json.dumps(wire)) == wire  # plain data, as Locust's msgpack carries it
    assert wire == json.loads(json.dumps(asdict(event)))  # what the deep-copying asdict made, field for field
    back = event_from_wire(wire)
    assert back == replace(event, meta={**event.meta, "tags": ["a", "b"]})


class _Kind(str, Enum):
    A = "a"


@pytest.mark.parametrize("value", [
    {"n": float("inf"), 3: "int key", None: "null key", True: "bool key", 2.5: "float key"},
    {"nested": ({"t": (1, 2)}, [None, False])},
    {"enum": HTTPStatus.OK, "path": Path("/tmp/x"), "bytes": b"\x00", _Kind.A: "str-enum key", HTTPStatus.OK: 1},
    "text", 7, None,
], ids=["keys", "nested", "odd-types", "str", "int", "none"])
def test_an_events_values_cross_the_wire_exactly_as_a_json_round_trip_would_carry_them(value):
    from harness.swarm.messages import plain

    assert plain(value) == json.loads(json.dumps(value, default=str))
