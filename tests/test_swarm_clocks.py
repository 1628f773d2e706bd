"""Clock offsets across a swarm's hosts: measured over its own messages, corrected, and never a silent pass.

The unit cases check the arithmetic and the oracle's rules on hand-made events; the slow cases run real
Locust masters and workers: in two network namespaces joined by a veth pair (``_netns``: one worker's
clock shifted as a skewed host's would be), and across a jittery TCP relay on loopback.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

import pytest

import _netns
from _locust import SCENARIOS, report_of

from harness.errors import HarnessError
from harness.history import Event
from harness.local.relay import RelayProcess
from harness.local.service import free_port
from harness.oracle.overlap import NOT_TIGHT, clock_lags, not_tight, overlap
from harness.swarm.clocks import LANE_CLOCK_OFFSET_ENV, ClockBook, ClockSample, LaneClock


# -- the arithmetic ------------------------------------------------------------------------------

def test_an_exchange_gives_the_lanes_offset_and_the_round_trip_without_the_lanes_own_time():
    # The lane is 20 ms ahead; 1 ms each way; it held the PING 0.5 ms before answering.
    sample = ClockSample(t0=100.000, t1=100.021, t2=100.0215, t3=100.0025)
    assert sample.offset == pytest.approx(0.020) and sample.rtt == pytest.approx(0.002)


def test_the_estimate_is_the_exchange_with_the_smallest_round_trip():
    book = ClockBook()
    for delay_up, delay_down in ((0.030, 0.001), (0.001, 0.001), (0.001, 0.040)):
        ping = book.ping("lane")
        t0 = ping["t0"]
        assert book.pong("lane", {"seq": ping["seq"], "t1": t0 + delay_up + 0.5, "t2": t0 + delay_up + 0.5},
                         t0 + delay_up + delay_down)
    estimate = book.estimate("lane")
    assert estimate.offset == pytest.approx(0.5) and estimate.uncertainty == pytest.approx(0.001, abs=1e-6)
    assert estimate.samples == 3


def test_a_pong_nobody_asked_for_or_from_another_lane_is_not_a_sample():
    book = ClockBook()
    ping = book.ping("lane-a")
    assert not book.pong("lane-b", {"seq": ping["seq"], "t1": 1.0, "t2": 1.0}, 2.0)
    assert not book.pong("lane-a", {"seq": ping["seq"] + 1, "t1": 1.0, "t2": 1.0}, 2.0)
    assert book.estimate("lane-a") is None and book.estimate("lane-b") is None


def test_an_injected_lane_clock_reads_and_converts_wall_time_by_its_offset():
    clock = LaneClock.from_env({LANE_CLOCK_OFFSET_ENV: "-300"})
    assert clock.now() - time.time() == pytest.approx(-0.300, abs=0.005)
    assert clock.to_system(1000.0) == pytest.approx(1000.300)
    with pytest.raises(HarnessError, match=f"{LANE_CLOCK_OFFSET_ENV} must be a number"):
        LaneClock.from_env({LANE_CLOCK_OFFSET_ENV: "20ms"})


# -- the oracle's rules --------------------------------------------------------------------------

def _duplicate(index: int, outcome: str, *, arrival: float, released: float = 0.0, clock: str = "a",
               payment: str = "p1") -> Event:
    return Event(index, payment, "callback", t_release=released, t_response=released + 0.3, status=200,
                 body={"receipt": outcome}, outcome=outcome, server_arrival=arrival,
                 meta={"round": 1, "clock": clock, "server_timing": {"app": 250.0}})


def _run_of(gap_s: float, payments: int = 20, *, late: int = 0, clocks: tuple[str, str] = ("a", "b")) -> list[Event]:
    """``payments`` payments, each a generation from lane ``clocks[0]`` and a duplicate ``gap_s`` after it from lane
    ``clocks[1]`` (``late`` of them 40 ms after)."""
    events = []
    for n in range(payments):
        gap = 0.040 if n < late else gap_s
        events += [_duplicate(2 * n, "generated", arrival=1000.0 + n, payment=f"p{n}", clock=clocks[0]),
                   _duplicate(2 * n + 1, "already_generated", arrival=1000.0 + n + gap, payment=f"p{n}",
                              clock=clocks[1])]
    return events


def test_duplicates_inside_the_handlers_duration_but_35_ms_after_the_first_are_not_called_a_race():
    # Server-Timing covers the whole 250 ms handler, not its check-then-act window.
    events = _run_of(0.035)
    assert overlap(events[:2])[0] is True  # each payment did overlap the handler ...
    loose = not_tight(events)  # ... but the run could not have hit a window narrower than 35 ms
    assert loose is not None and loose["reason"].startswith(NOT_TIGHT) and "35.0 ms" in loose["reason"]


def test_duplicates_2_ms_apart_raced_tightly():
    assert not_tight(_run_of(0.002)) is None


def test_one_payment_stamped_late_by_a_busy_machine_does_not_make_the_run_loose():
    assert not_tight(_run_of(0.002, payments=40, late=1)) is None  # 1 of 40: beyond the 95th percentile


def test_a_loose_run_released_on_one_clock_is_left_to_the_strength_line():
    # One sender, one clock: 35 ms between duplicates is the machine's load, not a skew nobody saw.
    assert not_tight(_run_of(0.035, clocks=("a", "a"))) is None


def _payments(lag_b: float, noise: dict[int, float] | None = None) -> list[Event]:
    """Ten payments, one duplicate from lane a and one from lane b, both released at 0 on their clocks."""
    events = []
    for n in range(10):
        arrival = 1000.0 + n
        events.append(_duplicate(2 * n, "generated", arrival=arrival, clock="a", payment=f"p{n}"))
        events.append(_duplicate(2 * n + 1, "already_generated", clock="b", payment=f"p{n}",
                                 arrival=arrival + lag_b + (noise or {}).get(n, 0.0)))
    return events


def test_a_lane_whose_duplicates_reach_the_service_20_ms_later_than_released_is_a_clock_disagreement():
    lags = clock_lags(_payments(0.020))
    assert lags == {"a": pytest.approx(-10.0), "b": pytest.approx(10.0)}


def test_one_payment_stamped_late_by_a_busy_service_is_not_read_as_a_clock_disagreement():
    lags = clock_lags(_payments(0.0005, noise={3: 0.012}))
    assert max(lags.values()) - min(lags.values()) < 2.0


# -- real swarms across namespaces -----------------------------------------------------------------

needs_namespaces = pytest.mark.skipif(_netns.available() is not None, reason=str(_netns.available()))
TRIALS = 10  # skewed runs per offset: every one must be INVALID
BASELINE = 5  # unskewed runs interleaved with them (every other one)
PAYMENTS = 10
# A longer release lead than the default: a GO that reaches a loaded worker late makes it release late.
LEAD = ("--release-lead-ms", "300")
WINDOW_MS = 10.0  # the vulnerable service's check-then-act window in these runs


def _release_ms(result: _netns.SwarmResult) -> float | None:
    return (result.report or {}).get("metrics", {}).get("payment_release_spread_ms_p50")


def _released_apart(result: _netns.SwarmResult) -> bool:
    """A run whose workers released a payment's duplicates further apart (median, on the master's timeline) than the
    window: the machine's load, not a clock, kept the race from happening; its verdict says nothing of the clocks."""
    released = _release_ms(result)
    return result.returncode == 0 and released is not None and released > WINDOW_MS


SPREAD_MARGIN_MS = 5.0  # how far above the unskewed runs' the skewed runs' median spread may be (see the test)


def _spread(result: _netns.SwarmResult) -> float:
    return result.report["metrics"]["payment_arrival_spread_ms_p50"]


@pytest.fixture(scope="module")
def hosts():
    if _netns.available() is not None:
        pytest.skip(str(_netns.available()))
    with _netns.two_hosts() as made:
        yield made


@pytest.mark.slow
@needs_namespaces
@pytest.mark.parametrize("offset", [20.0, -300.0], ids=["20-ms-ahead", "300-ms-behind"])
def test_a_worker_on_a_skewed_host_still_catches_a_10_ms_window_every_time(hosts, tmp_path, offset):
    # TRIALS runs with the far worker's clock skewed, BASELINE runs unskewed interleaved with them, so that the
    # spreads compared were measured under the same load of the machine. 10 payments a run: a run is mostly
    # the swarm's start and end, and every payment's duplicates race.
    runs: dict[float, list[_netns.SwarmResult]] = {0.0: [], offset: []}
    stalled: list[str] = []
    with _netns.service(hosts, tmp_path, race_window_ms=10.0) as url:
        for n in range(TRIALS):
            for far in (0.0, offset) if n % (TRIALS // BASELINE) == 0 else (offset,):
                options = dict(far_offset_ms=far, payments=PAYMENTS, seed=1000 * n + int(far), extra=LEAD)
                result, stalls = _netns.swarm_to_verdict(hosts, url, tmp_path / f"{far:+g}-{n}", **options)
                if _released_apart(result):  # a worker too busy to release on time: no test of the clocks
                    stalled.append(f"released {_release_ms(result)} ms apart")
                    result, more = _netns.swarm_to_verdict(hosts, url, tmp_path / f"{far:+g}-{n}-again", **options)
                    stalls += more
                runs[far].append(result)
                stalled += stalls
    if stalled:  # said, never hidden: a run with no verdict, or released apart by load, was started once more
        print(f"{len(stalled)} run(s) started again: {stalled}")
    for far, results in runs.items():
        assert [r.returncode for r in results] == [1] * len(results), [r.output[-3000:] for r in results
                                                                       if r.returncode != 1][:1]
    assert len(runs[offset]) == TRIALS and len(runs[0.0]) == BASELINE
    lanes = [lane for lane in runs[offset][0].report["config"]["locust"]["clocks"]["lanes"].values()
             if abs(lane["offset_ms"]) > 1]
    assert len(lanes) == 1 and abs(lanes[0]["offset_ms"] - offset) <= lanes[0]["uncertainty_ms"] + 1.0
    base, skewed = (statistics.median(map(_spread, runs[far])) for far in (0.0, offset))
    # The skew must not widen what the service sees. Uncorrected, it would add the whole skew (20 or 300 ms) to
    # every payment's spread; corrected, the medians differ only by the machine's load: on a quiet machine by
    # under 1 ms (README's table: 0.5 and 0.7 against 0.6 ms), under the suite's load by up to 2.5 ms either way
    # (two CI runs: 3.8 against 1.4 ms at +20, 1.5 against 3.6 ms at -300). So the bound here is 5 ms above.
    assert skewed - base <= SPREAD_MARGIN_MS, (offset, base, skewed)


@pytest.mark.slow
@needs_namespaces
def test_a_skewed_worker_released_on_its_own_clock_makes_the_run_inconclusive_not_valid(hosts, tmp_path):
    # A correct (atomic) service: one receipt per payment whatever the swarm does, so only the judge of the race
    # decides; released on a clock 20 ms ahead, the duplicates never raced, and the run must not say VALID.
    with _netns.service(hosts, tmp_path, race_window_ms=10.0, mode="atomic") as url:
        result = _netns.swarm(hosts, url, tmp_path / "run", far_offset_ms=20.0, extra=("--no-clock-correction",))
    assert result.returncode == 3, result.output[-3000:]
    assert "clocks disagree" in result.output and "INCONCLUSIVE" in result.output
    assert result.report["metrics"]["payment_arrival_spread_ms_p50"] > 15  # the skew the service saw


# -- a worker whose offset cannot be known well enough ----------------------------------------------

@pytest.mark.slow
def test_a_worker_behind_a_jittery_link_is_named_and_gets_no_shares(start_reference, tmp_path):
    service = start_reference("vulnerable", generation_delay_ms=50)
    port = free_port()
    locust = [sys.executable, "-m", "locust", "-f", str(SCENARIOS / "webhook_storm.py")]
    # 25 ms each way plus |N(0, 20 ms)| per chunk: a round trip of about 50 ms ± 40 ms.
    with RelayProcess(port, delay=0.025, jitter=0.020, seed=3) as relay:
        relay_port = relay.url.rsplit(":", 1)[1]
        processes = [subprocess.Popen([*locust, "--worker", "--master-host", "127.0.0.1", "--master-port", master_port], cwd=tmp_path,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
                     for master_port in (str(port), relay_port)]
        try:
            run = subprocess.run([*locust, "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port), "--expect-workers", "2",
                                  "--headless", "-u", "2", "-r", "50", "-t", "45s", "-H", service.url,
                                  "--receipts-dir", str(service.receipts_dir), "--report-dir",
                                  str(tmp_path / "report"), "--payments", "6", "--duplicates", "2",
                                  "--targets", "exactly-once"], cwd=tmp_path, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, timeout=80)
        finally:
            for process in processes:
                _netns.end(process)
    report = report_of(tmp_path)
    lanes = report["config"]["locust"]["clocks"]["lanes"]
    (left_out,) = [node for node, lane in lanes.items() if "excluded" in lane]
    assert "over the bound ±5 ms (--max-clock-uncertainty-ms)" in lanes[left_out]["excluded"]
    assert f"clock of lane {left_out}" in run.stdout and "LEFT OUT" in run.stdout
    assert left_out not in {e["meta"]["worker"] for e in report["history"]["events"]}
    assert run.returncode == 1, run.stdout[-3000:]  # the other worker raced both duplicates: never VALID by it
