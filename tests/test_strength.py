"""A run's strength: the narrowest check-then-act window it would have caught with 95 % probability,
from its own server arrival stamps; unknown (and said so) when it has none."""

from __future__ import annotations

import pytest
from _reports import make_report

from harness.history import Event
from harness.oracle.overlap import catchable_window, first_arrival_gaps
from harness.report.write import render_html, render_markdown
from harness.report.tables import strength_text


def _event(index: int, payment: str, arrival: float | None, round_: int = 0, status: int | None = 200,
           error: str | None = None) -> Event:
    return Event(index=index, payment=payment, channel="callback", connection=index, t_release=0.0,
                 t_response=0.1, status=status, body=None, error=error, server_arrival=arrival,
                 meta={"round": round_})


def test_a_duplicate_group_contributes_the_gap_between_its_first_two_arrivals_only():
    events = [_event(0, "p1", 10.000), _event(1, "p1", 10.003), _event(2, "p1", 10.001),  # first gap 1 ms
              _event(3, "p2", 20.000), _event(4, "p2", 20.010)]
    assert sorted(round(g, 6) for g in first_arrival_gaps(events)) == [0.001, 0.010]


def test_delivery_rounds_of_one_payment_are_separate_groups_and_lone_or_unstamped_arrivals_give_nothing():
    events = [_event(0, "p1", 10.0), _event(1, "p1", 10.002),           # round 0: 2 ms
              _event(2, "p1", 11.5, round_=1), _event(3, "p1", 11.5005, round_=1),  # round 1: 0.5 ms, not 1.5 s
              _event(4, "p2", 30.0), _event(5, "p2", None),             # one stamp: no gap
              _event(6, "p3", 40.0), _event(7, "p3", 40.0001, status=None, error="connect: refused")]
    assert sorted(round(g, 6) for g in first_arrival_gaps(events)) == [0.0005, 0.002]


def test_the_narrowest_window_caught_with_95_percent_probability_is_the_95th_percentile_of_the_gaps():
    gaps = [i / 1000 for i in range(1, 101)]  # 1..100 ms
    assert catchable_window(gaps) == pytest.approx(0.095)
    assert catchable_window(gaps, probability=0.5) == pytest.approx(0.050)


def test_with_fewer_than_twenty_groups_only_the_widest_gap_reaches_95_percent():
    assert catchable_window([0.0001, 0.0002, 0.004]) == pytest.approx(0.004)


def test_no_gaps_means_no_claimed_strength():
    assert catchable_window([]) is None


def test_the_statement_names_the_window_and_how_many_groups_it_rests_on():
    text = strength_text({"catchable_window_ms": 0.4, "catchable_window_groups": 10})
    assert "this run would catch a check-then-act window ≥ 0.4 ms" in text and "10 duplicate group" in text


def test_without_arrival_stamps_the_statement_says_the_strength_is_unknown_and_why():
    text = strength_text({"catchable_window_ms": None, "catchable_window_groups": 0})
    assert text.startswith("strength unknown") and "X-Arrival-Ns" in text


def test_markdown_and_html_reports_carry_the_runs_strength():
    vulnerable = make_report("vulnerable", [5, 5])
    vulnerable.metrics.update(catchable_window_ms=0.4, catchable_window_groups=5)
    assert "**Strength:** this run would catch a check-then-act window ≥ 0.4 ms" in render_markdown(vulnerable)
    assert "this run would catch a check-then-act window ≥ 0.4 ms" in render_html(vulnerable)


def test_a_report_written_before_strength_existed_reads_as_unknown():
    atomic = make_report("atomic", [1, 1])
    atomic.metrics.pop("catchable_window_ms", None)
    assert "strength unknown" in render_markdown(atomic)
