"""Report views (JSON, Markdown, HTML with inline SVG) and the before/after comparison, on synthetic runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from _reports import HOSTILE, atomic, fill, make_report, marks, svgs, tip, vulnerable  # noqa: F401 (fixtures)
from rich.console import Console

from harness.report.compare import compare, compare_files, print_comparison, write_comparison
from harness.report.write import TIMELINE_PAYMENTS, render_html, render_markdown, write_report
from harness.verdict.result import RunReport, decide

# --- files and JSON --------------------------------------------------------------------------


def test_json_written_round_trips_through_load(vulnerable: RunReport, tmp_path: Path) -> None:
    paths = write_report(vulnerable, tmp_path / "out")
    assert RunReport.load(paths["json"]).to_dict() == vulnerable.to_dict()


def test_write_report_creates_directory_and_all_three_formats(vulnerable: RunReport, tmp_path: Path) -> None:
    paths = write_report(vulnerable, tmp_path / "a" / "b", stem="run1")
    assert {k: p.name for k, p in paths.items()} == {"json": "run1.json", "md": "run1.md", "html": "run1.html"}
    assert all(p.stat().st_size > 0 for p in paths.values())


def test_stem_defaults_to_the_label(atomic: RunReport, tmp_path: Path) -> None:
    assert write_report(atomic, tmp_path)["md"].name == "atomic.md"


# --- Markdown --------------------------------------------------------------------------------


def test_markdown_title_carries_label_and_failing_verdict(vulnerable: RunReport) -> None:
    first = render_markdown(vulnerable).splitlines()[0]
    assert "vulnerable" in first and "❌" in first and "INVALID" in first


def test_markdown_title_shows_pass_for_valid_run(atomic: RunReport) -> None:
    atomic.targets = [t for t in atomic.targets if t.status != "missed"]
    atomic.verdict = decide(atomic.checks, atomic.targets)
    assert "✅" in render_markdown(atomic).splitlines()[0]


def test_markdown_names_the_violating_payment_and_its_files(vulnerable: RunReport) -> None:
    checks_line = next(line for line in render_markdown(vulnerable).splitlines() if line.startswith("| ❌ FAIL"))
    assert "payment pay-001: 5 receipt files" in checks_line
    assert "receipt-pay-001-0.pdf" in checks_line and "receipt-pay-001-4.pdf" in checks_line


def test_markdown_shows_each_targets_status_and_measurement(vulnerable: RunReport) -> None:
    md = render_markdown(vulnerable)
    assert re.search(r"\| processing_time.*\| <= 300 ms \| 1003 ms \| ❌ missed \|", md)
    assert re.search(r"\| memory.*\| not measured \| ➖ not measured \|", md)


def test_markdown_metrics_render_missing_values_as_not_measured(atomic: RunReport) -> None:
    assert "| Service peak RSS | not measured |" in render_markdown(atomic)


def test_markdown_history_summary_counts_requests_and_spreads(vulnerable: RunReport) -> None:
    md = render_markdown(vulnerable)
    assert "| requests | 25 |" in md and "| statuses | 200×25 |" in md
    assert "| release spread (client, last byte) | 0.8 ms |" in md and "| server arrival spread | 1.6 ms |" in md


def test_markdown_payment_table_caps_rows_and_says_how_many_more() -> None:
    md = render_markdown(make_report("big", [1] * 40, unpaid=0, duplicates=2))
    assert md.count("| ✅ | MT-pay-") == 30 and "… 10 more payment(s) not shown" in md


def test_markdown_payment_table_lists_problem_payments_first(vulnerable: RunReport) -> None:
    rows = [line for line in render_markdown(vulnerable).splitlines() if re.match(r"\| (✅|❌) \| MT-pay-", line)]
    assert [r.split("|")[2].strip() for r in rows][:3] == ["MT-pay-001 (id pay-001)", "MT-pay-003 (id pay-003)",
                                                           "MT-pay-004 (id pay-004)"]


def test_markdown_backslash_escapes_hostile_text() -> None:
    md = render_markdown(make_report("hostile", [2], hostile=True))
    assert "\\<script>" in md and not re.search(r"(?<!\\)<script>", md)


# --- HTML ------------------------------------------------------------------------------------


def test_html_references_no_external_assets(vulnerable: RunReport) -> None:
    page = render_html(vulnerable)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page, flags=re.I)
    assert "<script" not in page.lower() and "<link" not in page.lower()


def test_html_contains_three_svg_charts(vulnerable: RunReport) -> None:
    assert len(svgs(render_html(vulnerable))) == 3


def test_html_escapes_hostile_text_from_violations_and_bodies() -> None:
    page = render_html(make_report("hostile", [2], hostile=True))
    assert HOSTILE not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_html_banner_is_red_for_invalid_run(vulnerable: RunReport) -> None:
    assert '<div class="banner bad">' in render_html(vulnerable)


def test_receipts_chart_draws_a_bar_per_payment_and_highlights_duplicates() -> None:
    chart = svgs(render_html(make_report("mix", [5, 1, 0, 2])))[0]
    bars = sorted((int(gid.rsplit("-", 1)[1]), gid.split("-")[2]) for gid in marks(chart, "receipts-bar-"))
    assert [kind for _, kind in bars] == ["many", "one", "none", "many", "control"]
    assert "receipts-expected" in chart and "expected = 1" in chart


def test_latency_histogram_counts_every_timed_request(vulnerable: RunReport) -> None:
    chart = svgs(render_html(vulnerable))[1]
    counts = [int(re.search(r": (\d+) ", tip(bar)).group(1)) for bar in marks(chart, "latency-bar-").values()]
    assert sum(counts) == len(vulnerable.history["events"])
    assert "latency" in chart and "p95" in chart


def test_timeline_draws_one_bar_per_event_for_the_shown_payments(vulnerable: RunReport) -> None:
    chart = svgs(render_html(vulnerable))[2]
    assert len(marks(chart, "timeline-client-")) == len(vulnerable.history["events"])
    assert len(marks(chart, "timeline-winner-")) == 4  # one per paid payment that generated


def test_timeline_caps_the_payments_it_shows() -> None:
    report = make_report("big", [1] * 30, unpaid=0, duplicates=3)
    chart = svgs(render_html(report))[2]
    assert len(marks(chart, "timeline-client-")) == TIMELINE_PAYMENTS * 3
    assert f"Showing {TIMELINE_PAYMENTS} of 30 payments" in render_html(report)


def test_timeline_colours_bars_by_outcome(atomic: RunReport) -> None:
    fills = [fill(bar) for bar in marks(svgs(render_html(atomic))[2], "timeline-client-").values()]
    assert fills.count("#2e7d32") == 4 and fills.count("#1e88e5") == 16 and fills.count("#9e9e9e") == 5


def test_report_without_history_or_metrics_still_renders(vulnerable: RunReport) -> None:
    vulnerable.history, vulnerable.metrics, vulnerable.payments = {"version": 1, "events": []}, {}, []
    page = render_html(vulnerable)
    assert len(svgs(page)) == 3 and "no timed requests" in page and "no payments" in page
    assert "### Checks" in render_markdown(vulnerable)


# --- compare ---------------------------------------------------------------------------------


def test_compare_shows_receipt_span_before_and_a_single_number_after(vulnerable, atomic) -> None:
    row = compare(vulnerable, atomic).row("Receipt files per payment")
    assert (row.before, row.after) == ("1–5", "1")


def test_compare_shows_processing_time_as_p50_to_max(vulnerable, atomic) -> None:
    row = compare(vulnerable, atomic).row("Processing time")
    assert (row.before, row.after) == ("212–1003 ms", "212–290 ms")


def test_compare_memory_shows_growth_or_not_measured(vulnerable, atomic) -> None:
    row = compare(vulnerable, atomic).row("Memory usage")
    assert (row.before, row.after) == ("250 MB (+200 MB)", "not measured")


def test_compare_gives_a_change_for_every_numeric_metric(vulnerable, atomic) -> None:
    comparison = compare(vulnerable, atomic)
    keys = {r.key for r in comparison.section("metrics")}
    assert keys == set(vulnerable.metrics) | set(atomic.metrics)
    assert comparison.row("file_conflicts", "metrics").change == "-7 (-100%)"
    assert comparison.row("requests", "metrics").change == "no change"
    assert comparison.row("success_rate_pct", "metrics").change == "no change"


def test_compare_shows_dash_for_metrics_missing_in_one_report(vulnerable, atomic) -> None:
    comparison = compare(vulnerable, atomic)
    rollbacks, claims = comparison.row("rollbacks", "metrics"), comparison.row("claims_won", "metrics")
    assert (rollbacks.before, rollbacks.after, rollbacks.change) == ("0", "—", "—")
    assert (claims.before, claims.after, claims.change) == ("—", "4", "—")
    assert comparison.row("service_peak_rss_mb", "metrics").change == "—"


def test_compare_puts_verdicts_and_check_statuses_side_by_side(vulnerable, atomic) -> None:
    comparison = compare(vulnerable, atomic)
    check = comparison.row("receipt_exactly_once", "checks")
    assert (check.before, check.after, check.change) == ("FAIL (3 violation(s))", "pass", "fixed")
    assert comparison.row("Verdict").before.startswith("INVALID")


def test_comparison_markdown_reproduces_the_seed_table(vulnerable, atomic) -> None:
    md = compare(vulnerable, atomic).to_markdown()
    assert "| Receipt files per payment | 1–5 | 1 |" in md
    assert "| Before (vulnerable) | After (atomic) | Change |" in md


def test_comparison_text_lists_every_section(vulnerable, atomic) -> None:
    text = compare(vulnerable, atomic).to_text()
    assert "Receipt files per payment" in text and "File conflicts" in text and "receipt_exactly_once" in text


def test_print_comparison_renders_rich_tables(vulnerable, atomic) -> None:
    console = Console(record=True, width=160)
    print_comparison(compare(vulnerable, atomic), console)
    text = console.export_text()
    assert "1–5" in text and "fixed" in text


def test_write_comparison_writes_versioned_json_and_markdown(vulnerable, atomic, tmp_path: Path) -> None:
    paths = write_comparison(compare(vulnerable, atomic), tmp_path / "cmp")
    data = json.loads(paths["json"].read_text())
    assert (data["version"], data["kind"]) == (1, "race-harness-comparison")
    assert paths["md"].read_text().startswith("## Before / after")


def test_compare_files_refuses_a_newer_report_version(vulnerable, atomic, tmp_path: Path) -> None:
    newer = vulnerable.to_dict() | {"version": 2}
    (tmp_path / "newer.json").write_text(json.dumps(newer))
    after = write_report(atomic, tmp_path)["json"]
    with pytest.raises(ValueError, match=r"newer\.json.*unsupported report version 2"):
        compare_files(tmp_path / "newer.json", after)


def test_the_report_says_where_the_description_of_the_service_came_from(vulnerable: RunReport) -> None:
    vulnerable.config["target"] = {"base_url": "http://127.0.0.1:9", "profile": "shop"}
    vulnerable.config["origin"] = {"from": "profile file", "path": "profiles/shop.toml"}
    assert "target http://127.0.0.1:9 (profile file profiles/shop.toml)" in render_markdown(vulnerable)
    assert "target http://127.0.0.1:9 (profile file profiles/shop.toml)" in render_html(vulnerable)
