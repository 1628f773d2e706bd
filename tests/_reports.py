"""Synthetic run reports for the report tests: paid payments with chosen receipt counts, unpaid controls."""

from __future__ import annotations

import html
import re

import pytest

from harness.oracle.result import CheckResult, Violation
from harness.verdict.result import RunReport, TargetResult, decide

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
                       "status": 200, "body": {"receipt": outcome}, "error": None, "outcome": outcome,
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


def svgs(page: str) -> list[str]:
    """The inline SVG charts of an HTML page, in order."""
    return re.findall(r"<svg\b.*?</svg>", page, flags=re.S)


def marks(chart: str, prefix: str) -> dict[str, str]:
    """A chart's elements whose id (matplotlib's gid) starts with prefix: id -> the element's SVG group."""
    return dict(re.findall(rf'<g id="({re.escape(prefix)}[^"]*)">(.*?)</g>', chart, flags=re.S))


def fill(element: str) -> str:
    """The fill colour an element is drawn with."""
    return re.search(r"fill: (#[0-9a-f]{6})", element).group(1)


def xs(element: str) -> list[float]:
    """The x coordinates of an element's path, in the SVG's units."""
    return [float(x) for x in re.findall(r"[ML] ([-\d.]+) [-\d.]+", element)]


def tip(element: str) -> str:
    """An element's hover text (its SVG <title>), unescaped."""
    return html.unescape(re.search(r"<title>(.*?)</title>", element, flags=re.S).group(1))
