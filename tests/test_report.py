"""Report views (JSON, Markdown, HTML with inline SVG) and the before/after comparison, on synthetic runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from rich.console import Console

from harness.compare import compare, compare_files, print_comparison, write_comparison
from harness.report import TIMELINE_PAYMENTS, render_html, render_markdown, write_report
from harness.result import CheckResult, RunReport, TargetResult, Verdict, Violation, decide

HOSTILE = "<script>alert(1)</script>"


def _events_for(payment: str, receipts: int, duplicates: int, start_index: int, slow: float,
                paid: bool = True) -> list[dict]:
    """Duplicate requests for one payment: the first `receipts` generate, the rest are skipped."""
    events = []
    for dup in range(duplicates):
        release = 0.100 + dup * 0.0002
        if not paid:
            outcome, took = "not_paid", 0.004
        elif dup < receipts:
            outcome, took = "generated", 0.2 + slow * dup / max(duplicates - 1, 1)
        else:
            outcome, took = "already_generated", 0.006 + dup * 0.001
        events.append({"index": start_index + dup, "payment": payment, "channel": "callback" if dup % 4 else "verify",
                       "connection": start_index + dup, "t_release": release, "t_response": release + took,
                       "status": 200, "body": {"receipt": outcome}, "error": None,
                       "server_arrival": 1_700_000_000.1 + dup * 0.0004, "meta": {}})
    return events


def _payment_row(payment: str, receipts: int, duplicates: int, paid: bool, processing: float) -> dict:
    generated = receipts if paid else 0
    return {"payment": payment, "merchant_transaction_id": f"MT-{payment}", "amount": 49_900,
            "expected": "paid" if paid else "unpaid", "requests": duplicates,
            "channels": {"callback": duplicates - 2, "verify": 2},
            "outcomes": {"generated": generated, "already_generated": duplicates - generated if paid else 0,
                         "failed": 0, "not_paid": 0 if paid else duplicates},
            "receipt_files": [f"receipt-{payment}-{i}.pdf" for i in range(receipts)], "receipts": receipts,
            "state": {"paymentStatus": "paid" if paid else "failed", "receiptGenerated": bool(receipts),
                      "receiptPath": f"receipts/receipt-{payment}-0.pdf" if receipts else None},
            "release_spread_ms": 0.8, "arrival_spread_ms": 1.6, "processing_ms": processing, "overlapped": True}


def make_report(label: str, receipts: list[int], *, unpaid: int = 1, duplicates: int = 5,
                slow: float = 0.8, metrics: dict | None = None, hostile: bool = False) -> RunReport:
    """A synthetic run: paid payments with the given receipt counts, plus unpaid controls."""
    rows, events = [], []
    for n, count in enumerate(receipts + [0] * unpaid):
        paid, payment = n < len(receipts), f"pay-{n + 1:03d}"
        events += _events_for(payment, count, duplicates, len(events), slow, paid)
        rows.append(_payment_row(payment, count, duplicates, paid, 200 + slow * 1000 * (count > 1) + n))
    if hostile:
        events[0]["body"] = {"receipt": "generated", "note": HOSTILE}
    dupes = [r for r in rows if r["receipts"] > 1]
    exactly_once = CheckResult(
        "receipt_exactly_once", "every paid payment has exactly one receipt file", not dupes,
        [Violation("receipt_exactly_once", f"{r['receipts']} receipt files" + (f" {HOSTILE}" if hostile else ""),
                   r["payment"], r["receipt_files"], [0, 1]) for r in dupes])
    checks = [exactly_once, CheckResult("unpaid_no_receipt", "unpaid controls never get a receipt", True)]
    processing_max = max(r["processing_ms"] for r in rows)
    targets = [TargetResult("processing_time", "per-payment processing", "<= 300 ms",
                            "met" if processing_max <= 300 else "missed", processing_max, "ms"),
               TargetResult("memory", "service peak RSS", "<= 60 MB", "not measured", None, "MB")]
    per_payment = [r["receipts"] for r in rows if r["expected"] == "paid"]
    default_metrics = {"payments": len(rows), "requests": len(events), "receipt_files": sum(per_payment),
                       "receipts_per_payment_min": min(per_payment), "receipts_per_payment_max": max(per_payment),
                       "receipts_per_payment_mean": sum(per_payment) / len(per_payment),
                       "file_conflicts": sum(c - 1 for c in per_payment if c > 1),
                       "processing_ms_p50": 212.0, "processing_ms_max": processing_max,
                       "service_peak_rss_mb": 250.0, "service_rss_growth_mb": 200.0,
                       "success_rate_pct": 100.0, "rollbacks": 0}
    return RunReport(label=label, config={"plan": {"payments": len(receipts), "duplicates": duplicates,
                                                   "unpaid": unpaid, "channel_mix": {"callback": 3, "verify": 1},
                                                   "seed": 7}, "sync": "last-byte", "mode": label,
                                          "target": {"base_url": "http://127.0.0.1:8000"}},
                     environment={"python": "3.12.1", "platform": "linux", "cpu_count": 2, "harness": "0.1.0"},
                     history={"version": 1, "sync": "last-byte", "origin_wall": 1_700_000_000.0, "events": events},
                     history_summary={"requests": len(events)}, payments=rows, checks=checks,
                     metrics=default_metrics if metrics is None else metrics, targets=targets,
                     verdict=decide(checks, targets), started_at=1_700_000_000.0, finished_at=1_700_000_002.0)


@pytest.fixture
def vulnerable() -> RunReport:
    return make_report("vulnerable", [5, 1, 3, 2])


@pytest.fixture
def atomic() -> RunReport:
    metrics = {"payments": 5, "requests": 25, "receipt_files": 4, "receipts_per_payment_min": 1,
               "receipts_per_payment_max": 1, "receipts_per_payment_mean": 1.0, "file_conflicts": 0,
               "processing_ms_p50": 212.0, "processing_ms_max": 290.0, "service_peak_rss_mb": None,
               "success_rate_pct": 100.0, "claims_won": 4, "claims_skipped": 16}
    return make_report("atomic", [1, 1, 1, 1], slow=0.0, metrics=metrics)


def _svgs(page: str) -> list[str]:
    return re.findall(r"<svg\b.*?</svg>", page, flags=re.S)


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
    assert md.count("| ✅ | pay-") == 30 and "… 10 more payment(s) not shown" in md


def test_markdown_payment_table_lists_problem_payments_first(vulnerable: RunReport) -> None:
    rows = [line for line in render_markdown(vulnerable).splitlines() if re.match(r"\| (✅|❌) \| pay-", line)]
    assert [r.split("|")[2].strip() for r in rows][:3] == ["pay-001", "pay-003", "pay-004"]


def test_markdown_backslash_escapes_hostile_text() -> None:
    md = render_markdown(make_report("hostile", [2], hostile=True))
    assert "\\<script>" in md and not re.search(r"(?<!\\)<script>", md)


# --- HTML ------------------------------------------------------------------------------------


def test_html_references_no_external_assets(vulnerable: RunReport) -> None:
    page = render_html(vulnerable)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page, flags=re.I)
    assert "<script" not in page.lower() and "<link" not in page.lower()


def test_html_contains_three_svg_charts(vulnerable: RunReport) -> None:
    assert len(_svgs(render_html(vulnerable))) == 3


def test_html_escapes_hostile_text_from_violations_and_bodies() -> None:
    page = render_html(make_report("hostile", [2], hostile=True))
    assert HOSTILE not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_html_banner_is_red_for_invalid_run(vulnerable: RunReport) -> None:
    assert '<div class="banner bad">' in render_html(vulnerable)


def test_receipts_chart_draws_a_bar_per_payment_and_highlights_duplicates() -> None:
    chart = _svgs(render_html(make_report("mix", [5, 1, 0, 2])))[0]
    kinds = re.findall(r'<rect class="bar (\w+)"', chart)
    assert kinds == ["many", "one", "none", "many", "control"]
    assert 'class="expected"' in chart and "expected = 1" in chart


def test_latency_histogram_counts_every_timed_request(vulnerable: RunReport) -> None:
    chart = _svgs(render_html(vulnerable))[1]
    counts = re.findall(r'<rect class="hist"[^>]*><title>[^:]*: (\d+) ', chart)
    assert sum(map(int, counts)) == len(vulnerable.history["events"])
    assert "latency" in chart and "p95" in chart


def test_timeline_draws_one_bar_per_event_for_the_shown_payments(vulnerable: RunReport) -> None:
    chart = _svgs(render_html(vulnerable))[2]
    assert chart.count('class="tl-bar"') == len(vulnerable.history["events"])
    assert chart.count('class="tl-winner"') == 4  # one per paid payment that generated


def test_timeline_caps_the_payments_it_shows() -> None:
    report = make_report("big", [1] * 30, unpaid=0, duplicates=3)
    chart = _svgs(render_html(report))[2]
    assert chart.count('class="tl-bar"') == TIMELINE_PAYMENTS * 3
    assert f"Showing {TIMELINE_PAYMENTS} of 30 payments" in render_html(report)


def test_timeline_colours_bars_by_outcome(atomic: RunReport) -> None:
    chart = _svgs(render_html(atomic))[2]
    fills = re.findall(r'<rect class="tl-bar"[^>]*fill="(#\w+)"', chart)
    assert fills.count("#2e7d32") == 4 and fills.count("#1e88e5") == 16 and fills.count("#9e9e9e") == 5


def test_report_without_history_or_metrics_still_renders(vulnerable: RunReport) -> None:
    vulnerable.history, vulnerable.metrics, vulnerable.payments = {"version": 1, "events": []}, {}, []
    page = render_html(vulnerable)
    assert len(_svgs(page)) == 3 and "no timed requests" in page and "no payments" in page
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
