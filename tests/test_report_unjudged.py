"""Payments no delivery reached are unjudged: their own category and colour in every report view."""

from __future__ import annotations

import re

from _reports import fill, make_report, marks, svgs, tip

from harness.report.write import render_html, render_markdown
from harness.verdict.result import RunReport

UNJUDGED_COLOR = "#546e7a"


def _service_died_midway() -> RunReport:
    """Paid payments 2 and 3 got only refused connections: no receipt, and nothing to hold against the service."""
    report = make_report("crashed", [1, 0, 0, 1])
    starved = {"pay-002", "pay-003"}
    for row in report.payments:
        row["judged"] = row["payment"] not in starved
    for event in report.history["events"]:
        if event["payment"] in starved:
            event.update(status=None, body=None, outcome=None, t_response=None, server_arrival=None,
                         error="ConnectError: [Errno 111] Connection refused")
    report.metrics.update(payments_judged=3, payments_unjudged=2)
    return report


def test_receipts_chart_gives_unjudged_payments_their_own_bar_colour_and_legend_entry() -> None:
    chart = svgs(render_html(_service_died_midway()))[0]
    bars = sorted((int(gid.rsplit("-", 1)[1]), gid.split("-")[2], bar)
                  for gid, bar in marks(chart, "receipts-bar-").items())
    assert [kind for _, kind, _ in bars] == ["one", "unjudged", "unjudged", "one", "control"]
    assert {fill(bar) for _, kind, bar in bars if kind == "unjudged"} == {UNJUDGED_COLOR}
    assert all("no delivery reached the service" in tip(bar) for _, kind, bar in bars if kind == "unjudged")
    assert fill(marks(chart, "receipts-legend-unjudged")["receipts-legend-unjudged"]) == UNJUDGED_COLOR
    assert "unjudged (no delivery reached it)" in chart


def test_markdown_says_how_many_payments_were_judged_and_marks_unjudged_rows() -> None:
    md = render_markdown(_service_died_midway())
    assert "**Judged:** 3 of 5 payments judged (2 unjudged: no delivery reached the service)" in md
    rows = {m[1]: m[0] for m in re.findall(r"^\| (\S+) \| MT-pay-\d+ \(id (pay-\d+)\) \|", md, flags=re.M)}
    assert rows == {"pay-001": "✅", "pay-002": "➖", "pay-003": "➖", "pay-004": "✅", "pay-005": "✅"}
    assert md.count("| no: unjudged, no delivery reached the service |") == 2
    assert "| Unjudged payments (no delivery reached the service) | 2 |" in md


def test_html_banner_counts_judged_payments_and_table_styles_unjudged_rows() -> None:
    page = render_html(_service_died_midway())
    assert '<span class="judged">3 of 5 payments judged (2 unjudged: no delivery reached the service)</span>' in page
    assert page.count('<tr class="unjudged">') == 2 and "tr.unjudged td{" in page


def test_a_report_from_before_judging_counts_every_payment_as_judged() -> None:
    report = make_report("old", [2, 1])
    assert all("judged" not in row for row in report.payments)
    page, md = render_html(report), render_markdown(report)
    assert "3 of 3 payments judged" in page and "**Judged:** 3 of 3 payments judged  " in md
    assert "receipts-bar-unjudged" not in page and "receipts-legend-unjudged" not in page
    assert "unjudged (no delivery" not in page
