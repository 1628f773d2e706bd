"""The HTML report's charts show what the target said and which clock each mark is on."""

from __future__ import annotations

import html
import re
import threading
from collections import Counter

import matplotlib
import pytest
from _reports import fill, make_report, marks, svgs, tip, xs

from harness.report.write import OUTCOME_COLORS, TIMELINE_PAYMENTS, render_html
from harness.verdict.result import RunReport


def _timeline(report: RunReport) -> str:
    return svgs(render_html(report))[2]


def _without_receipt_field(report: RunReport) -> RunReport:
    """Bodies that name no 'receipt' (another service's wording); the events keep their outcomes."""
    for event in report.history["events"]:
        event["body"] = {"ok": True, "result": "see outcome"}
    return report


def _client_fills(chart: str) -> Counter:
    return Counter(fill(bar) for bar in marks(chart, "timeline-client-").values())


def test_timeline_colours_each_request_by_its_event_outcome_not_the_body() -> None:
    report = _without_receipt_field(make_report("stranger", [1, 1, 1, 1]))  # 4 generated, 16 skipped, 5 not paid
    assert _client_fills(_timeline(report)) == Counter({OUTCOME_COLORS["generated"]: 4,
                                                        OUTCOME_COLORS["already_generated"]: 16,
                                                        OUTCOME_COLORS["not_paid"]: 5})


def test_latency_histogram_stacks_by_event_outcome_and_its_legend_names_each() -> None:
    report = _without_receipt_field(make_report("stranger", [1, 1]))
    chart = svgs(render_html(report))[1]
    counts = Counter()
    for bar in marks(chart, "latency-bar-").values():
        count, outcome = re.search(r": (\d+) (\w+)$", tip(bar)).groups()
        assert fill(bar) == OUTCOME_COLORS[outcome]
        counts[outcome] += int(count)
    assert counts == Counter({"generated": 2, "already_generated": 8, "not_paid": 5})
    legend = marks(chart, "latency-legend-")
    assert {k.removeprefix("latency-legend-") for k in legend} == {*counts, "p50", "p95"}
    assert all(fill(legend[f"latency-legend-{o}"]) == OUTCOME_COLORS[o] for o in counts)
    assert all(f">{name}</text>" in chart for name in counts) and ">other</text>" not in chart


def test_event_outcome_wins_over_a_body_field_that_says_otherwise() -> None:
    report = make_report("disagree", [1], unpaid=0, duplicates=2)
    for event in report.history["events"]:
        event["body"], event["outcome"] = {"receipt": "generated"}, "failed"
    assert _client_fills(_timeline(report)) == Counter({OUTCOME_COLORS["failed"]: 2})


def test_timeline_marks_each_service_arrival_stamp_and_says_which_clock() -> None:
    report = make_report("stamped", [2, 1], unpaid=0, duplicates=3)
    chart, page = _timeline(report), render_html(report)
    assert len(marks(chart, "timeline-arrival-")) == 6 and "timeline-legend-arrival" in chart
    assert "arrival stamp (service clock)" in chart and "client: sent → read (harness clock)" in chart
    assert "service's clock mapped to the harness clock by wall time" in html.unescape(page)


def test_timeline_draws_no_arrival_marks_when_the_target_reports_none() -> None:
    report = make_report("unstamped", [2, 1], unpaid=0, duplicates=3)
    for event in report.history["events"]:
        event["server_arrival"] = None
    chart, page = _timeline(report), render_html(report)
    assert not marks(chart, "timeline-arrival") and "arrival stamp" not in chart
    assert len(marks(chart, "timeline-client-")) == 6 and "reports no arrival stamps" in page


def test_timeline_caption_no_longer_claims_send_times_are_arrivals() -> None:
    assert "arrived before the winner finished" not in render_html(make_report("caption", [3]))


def test_service_bar_spans_arrival_to_server_timing_and_winner_line_ends_it() -> None:
    report = make_report("timed", [1], unpaid=0, duplicates=3)
    assert not marks(_timeline(report), "timeline-service")  # no Server-Timing, no service bar
    for n, event in enumerate(report.history["events"]):
        event["meta"]["server_timing"] = {"app": 50.0 + 10.0 * n}  # ms, as the Server-Timing header says
    chart = _timeline(report)
    bars = marks(chart, "timeline-service-")
    assert len(bars) == 3 and "timeline-legend-service" in chart and "Server-Timing" in chart
    (winner,) = marks(chart, "timeline-winner-").values()
    (generated,) = [bar for gid, bar in bars.items() if gid.startswith("timeline-service-generated-")]
    assert fill(generated) == OUTCOME_COLORS["generated"]
    assert abs(max(xs(generated)) - xs(winner)[0]) < 0.01


def test_winner_line_falls_back_to_the_response_read_without_server_timing() -> None:
    chart = _timeline(make_report("untimed", [1], unpaid=0, duplicates=3))
    (winner,) = marks(chart, "timeline-winner-").values()
    (client,) = [bar for gid, bar in marks(chart, "timeline-client-").items() if "-generated-" in gid]
    assert abs(max(xs(client)) - xs(winner)[0]) < 0.01


def test_timeline_shows_the_first_payments_and_says_how_many_it_left_out() -> None:
    report = make_report("big", [1] * 30, unpaid=0, duplicates=3)
    page = render_html(report)
    chart = svgs(page)[2]
    assert len(marks(chart, "timeline-client-")) == TIMELINE_PAYMENTS * 3
    assert f"first {TIMELINE_PAYMENTS} of 30 payments shown" in chart
    assert f"Showing {TIMELINE_PAYMENTS} of 30 payments" in page
    assert "payments shown" not in _timeline(make_report("small", [1] * 3, unpaid=0))


def test_chart_text_from_the_service_is_escaped_and_not_read_as_markup_or_math() -> None:
    report = make_report("hostile", [1], unpaid=0, duplicates=2)
    for row in report.payments:
        row["payment"] = "<b>$x^2$</b>"
    for event in report.history["events"]:
        event["payment"] = "<b>$x^2$</b>"
    charts = svgs(render_html(report))
    assert all("<b>" not in chart for chart in charts)
    label = re.compile(r"<text[^>]*>&lt;b&gt;\$x\^2\$&lt;/b&gt;</text>")  # the id as written, not TeX
    assert label.search(charts[0]) and label.search(charts[2])


def test_every_element_id_on_the_page_is_unique() -> None:
    ids = re.findall(r'\sid="([^"]+)"', render_html(make_report("ids", [2, 1, 0])))
    assert ids and [i for i, n in Counter(ids).items() if n > 1] == []


def test_charts_leave_matplotlib_settings_as_they_found_them() -> None:
    before = dict(matplotlib.rcParams)
    render_html(make_report("settings", [1]))
    assert dict(matplotlib.rcParams) == before


def test_reports_rendered_in_threads_match_the_same_reports_rendered_alone() -> None:
    reports = [make_report("one", [2, 1]), make_report("two", [1, 0, 3], duplicates=3)]
    alone = [render_html(r) for r in reports]
    together: dict[int, str] = {}
    threads = [threading.Thread(target=lambda n=n: together.__setitem__(n, render_html(reports[n])))
               for n in range(len(reports))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [together[n] for n in range(len(reports))] == alone


def _with_effects(report: RunReport, payment: str, effects: list[tuple[str, float]]) -> RunReport:
    """Side effects on one payment's row, at wall-clock seconds past the history's origin."""
    origin = report.history["origin_wall"]
    for row in report.payments:
        row["effect_times"] = ([{"kind": kind, "at": origin + after} for kind, after in effects]
                               if row["payment"] == payment else [])
    return report


def test_timeline_marks_each_side_effect_when_it_left_one_style_per_kind() -> None:
    report = _with_effects(make_report("effects", [2, 1], unpaid=0, duplicates=3), "pay-001",
                           [("receipt e-mail", 0.250), ("crm post", 0.310)])
    chart, page = _timeline(report), html.unescape(render_html(report))
    effects = marks(chart, "timeline-effect-")
    assert set(effects) == {"timeline-effect-receipt_e_mail-0", "timeline-effect-crm_post-1"}
    assert tip(effects["timeline-effect-receipt_e_mail-0"]).startswith("pay-001: receipt e-mail left at 150")
    assert "timeline-legend-effect-receipt_e_mail" in chart and "timeline-legend-effect-crm_post" in chart
    assert "receipt e-mail left (wall clock)" in chart and "crm post left (wall clock)" in chart
    # one marker per kind: the two marks are drawn with different markers
    shapes = {gid: re.search(r'xlink:href="#([^"]+)"', mark).group(1) for gid, mark in effects.items()}
    assert len(set(shapes.values())) == 2
    assert "wall clock of this machine (the sink's own receipt time" in page
    # on the chart's millisecond axis: the e-mail 250 ms after the origin is 150 ms after the first final byte
    # (released 100 ms after it), the post 60 ms later; the first client bar starts at 0 ms
    mail, post = (_marker_x(effects[f"timeline-effect-{k}"]) for k in ("receipt_e_mail-0", "crm_post-1"))
    start = min(min(xs(bar)) for bar in marks(chart, "timeline-client-").values())
    assert abs((mail - start) / (post - mail) - 150 / 60) < 0.01


def _marker_x(element: str) -> float:
    """Where a single-point marker is drawn, in the SVG's units."""
    return float(re.search(r'<use [^>]*\bx="([-\d.]+)"', element).group(1))


def test_timeline_draws_no_effect_marks_for_payments_without_effect_times() -> None:
    report = make_report("no-effects", [2, 1], unpaid=0, duplicates=3)
    chart, page = _timeline(report), html.unescape(render_html(report))
    assert not marks(chart, "timeline-effect-") and "timeline-legend-effect" not in chart
    assert "wall clock of this machine" not in page
    report.payments[1]["effect_times"] = []  # an empty list: still nothing drawn
    assert not marks(_timeline(report), "timeline-effect-")


@pytest.mark.parametrize("effects, height, category", [
    ({"receipt": 1, "receipt e-mail": 5}, 5, "many"),  # one file on disk hides five e-mails
    ({"receipt": 1, "receipt e-mail": 0}, 1, "none"),  # an e-mail that never left is missing
    ({"receipt": 1, "receipt e-mail": 1}, 1, "one"),
])
def test_a_payments_bar_is_judged_per_kind_of_side_effect(effects, height, category):
    from harness.report.charts import bar_count, receipt_kind

    row = {"payment": "p1", "expected": "paid", "judged": True, "receipts": sum(effects.values()), "effects": effects}
    assert (bar_count(row), receipt_kind(row)) == (height, category)


def test_the_receipts_caption_says_receipt_files_for_files_and_names_each_kind_for_several() -> None:
    from harness.report.charts import receipts_caption

    files = make_report("files", [1, 2], unpaid=0)
    assert receipts_caption(files).startswith("Receipt files per payment.")
    mailed = make_report("mailed", [1, 1], unpaid=0)
    for row in mailed.payments:
        row["effects"] = {"receipt": 1, "receipt e-mail": 5}
    caption = receipts_caption(mailed)
    assert "Receipt files" not in caption and "receipt, receipt e-mail" in caption
    assert "most of any one kind" in caption
    assert caption in html.unescape(render_html(mailed))
