"""The HTML report's charts show what the target said and which clock each mark is on."""

from __future__ import annotations

import html
import re
from collections import Counter

from harness.report import OUTCOME_COLORS, render_html
from harness.result import RunReport

from _reports import make_report, svgs


def _timeline(report: RunReport) -> str:
    return svgs(render_html(report))[2]


def _without_receipt_field(report: RunReport) -> RunReport:
    """Bodies that name no 'receipt' (another service's wording); the events keep their outcomes."""
    for event in report.history["events"]:
        event["body"] = {"ok": True, "result": "see outcome"}
    return report


def _fills(chart: str, css: str) -> Counter:
    return Counter(re.findall(rf'<rect class="{css}"[^>]*fill="(#\w+)"', chart))


def test_timeline_colours_each_request_by_its_event_outcome_not_the_body() -> None:
    report = _without_receipt_field(make_report("stranger", [1, 1, 1, 1]))  # 4 generated, 16 skipped, 5 not paid
    fills = _fills(_timeline(report), "tl-bar")
    assert fills == Counter({OUTCOME_COLORS["generated"]: 4, OUTCOME_COLORS["already_generated"]: 16,
                             OUTCOME_COLORS["not_paid"]: 5})


def test_latency_histogram_stacks_by_event_outcome_and_its_legend_names_each() -> None:
    report = _without_receipt_field(make_report("stranger", [1, 1]))
    chart = svgs(render_html(report))[1]
    counts = Counter()
    for outcome, n in re.findall(r'<rect class="hist" data-outcome="(\w+)"[^>]*><title>[^:]*: (\d+) ', chart):
        counts[outcome] += int(n)
    assert counts == Counter({"generated": 2, "already_generated": 8, "not_paid": 5})
    assert all(f">{name}</text>" in chart for name in counts) and ">other</text>" not in chart


def test_event_outcome_wins_over_a_body_field_that_says_otherwise() -> None:
    report = make_report("disagree", [1], unpaid=0, duplicates=2)
    for event in report.history["events"]:
        event["body"], event["outcome"] = {"receipt": "generated"}, "failed"
    assert _fills(_timeline(report), "tl-bar") == Counter({OUTCOME_COLORS["failed"]: 2})


def test_timeline_marks_each_service_arrival_stamp_and_says_which_clock() -> None:
    report = make_report("stamped", [2, 1], unpaid=0, duplicates=3)
    chart, page = _timeline(report), render_html(report)
    assert chart.count('class="tl-arrival"') == 6
    assert "arrival stamp (service clock)" in chart and "harness clock" in chart
    assert "service's clock mapped to the harness clock by wall time" in html.unescape(page)


def test_timeline_draws_no_arrival_marks_when_the_target_reports_none() -> None:
    report = make_report("unstamped", [2, 1], unpaid=0, duplicates=3)
    for event in report.history["events"]:
        event["server_arrival"] = None
    chart, page = _timeline(report), render_html(report)
    assert 'class="tl-arrival"' not in chart and "arrival stamp" not in chart
    assert "reports no arrival stamps" in page


def test_timeline_caption_no_longer_claims_send_times_are_arrivals() -> None:
    assert "arrived before the winner finished" not in render_html(make_report("caption", [3]))


def _x(element: str, attribute: str) -> float:
    return float(re.search(rf'{attribute}="([-\d.]+)"', element).group(1))


def test_service_bar_spans_arrival_to_server_timing_and_winner_line_ends_it() -> None:
    report = make_report("timed", [1], unpaid=0, duplicates=3)
    assert 'class="tl-service"' not in _timeline(report)  # no Server-Timing, no service bar
    events = report.history["events"]
    for n, event in enumerate(events):
        event["meta"]["server_timing"] = {"app": 50.0 + 10.0 * n}  # ms, as the Server-Timing header says
    chart = _timeline(report)
    bars = re.findall(r'<rect class="tl-service"[^>]*>', chart)
    assert len(bars) == 3 and "Server-Timing" in chart
    winner = _x(re.search(r'<line class="tl-winner"[^>]*>', chart).group(0), "x1")
    generated = next(b for b in bars if 'data-outcome="generated"' in b)
    assert abs(_x(generated, "x") + _x(generated, "width") - winner) < 0.2
