"""The race-harness command: exit codes, reports written, clear messages for bad usage."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from helpers import create_payments, target_of

from harness.cli.main import main

# Real service processes: `pytest -m 'not slow'` leaves these out.
pytestmark = pytest.mark.slow


def _run(*argv: str) -> int:
    return main(["run", "--quiet", "--generation-delay-ms", "150", *argv])


def test_run_on_the_atomic_service_exits_0_and_writes_three_reports(tmp_path, exactly_once_targets, capsys):
    code = _run("--mode", "atomic", "--payments", "3", "--unpaid", "1", "--targets", exactly_once_targets,
                "--report-dir", str(tmp_path / "out"), "--label", "pr-123")
    assert code == 0, capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["pr-123.html", "pr-123.json", "pr-123.md"]


def test_run_on_the_vulnerable_service_exits_1_and_names_the_duplicates(tmp_path, capsys):
    code = _run("--mode", "vulnerable", "--payments", "3", "--report-dir", str(tmp_path), "--json")
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    exactly_one = next(c for c in out["checks"] if c["name"] == "exactly-one-receipt")
    assert exactly_one["valid"] is False and exactly_one["violations"][0]["files"]


def test_run_with_a_missed_target_exits_2(tmp_path, capsys):
    strict = tmp_path / "strict.json"
    strict.write_text(json.dumps({"version": 1, "targets": [
        {"name": "impossible-speed", "metric": "processing_ms_p95", "le": 1, "unit": "ms"}]}))
    code = _run("--mode", "atomic", "--payments", "2", "--targets", str(strict), "--report-dir", str(tmp_path))
    assert code == 2
    assert "impossible-speed" in capsys.readouterr().out


def test_run_whose_duplicates_never_overlap_exits_3(tmp_path, exactly_once_targets):
    code = _run("--mode", "vulnerable", "--payments", "2", "--duplicates", "2", "--sync", "sequential",
                "--targets", exactly_once_targets, "--report-dir", str(tmp_path))
    assert code == 3


@pytest.mark.parametrize("argv, message", [
    (["--duplicates", "0"], "--duplicates must be at least 1"),
    (["--channel-mix", "carrier-pigeon:1"], "unknown channel"),
    (["--target", "ftp://example"], "http:// or https://"),
    (["--target", "http://127.0.0.1:9"], "unreachable"),
    (["--targets", "/nonexistent/targets.json"], "cannot read targets file"),
])
def test_bad_configuration_exits_4_with_a_clear_message(argv, message, capsys, tmp_path):
    assert _run(*argv, "--report-dir", str(tmp_path)) == 4
    assert message in capsys.readouterr().err


def test_unknown_flag_is_a_usage_error_exit_4():
    completed = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--no-such-flag"],
                               capture_output=True, text=True, timeout=60)
    assert completed.returncode == 4
    assert "unrecognized arguments" in completed.stderr


def test_run_against_a_target_elsewhere_reads_its_receipts_and_state(start_reference, tmp_path, exactly_once_targets, capsys):
    service = start_reference("atomic", generation_delay_ms=150)
    code = _run("--target", service.url, "--receipts-dir", str(service.receipts_dir), "--payments", "2",
                "--service-pid", str(service.pid), "--targets", exactly_once_targets, "--report-dir", str(tmp_path),
                "--json")
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["metrics"]["receipt_files"] == 2 and out["metrics"]["service_peak_rss_mb"] > 0


def test_burst_fires_duplicates_and_exits_0_when_all_answer(start_reference, capsys):
    service = start_reference("atomic", generation_delay_ms=50)
    (payment,) = create_payments(target_of(service), 1)
    code = main(["burst", "--url", service.url, "--kind", "callback", "--transaction", payment.merchant_transaction_id,
                 "--amount", str(payment.amount), "--duplicates", "8", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    outcomes = sorted(e["body"]["receipt"] for e in out["history"]["events"])
    assert outcomes == ["already_generated"] * 7 + ["generated"]
    assert out["summary"]["release_spread_ms"] is not None


def test_raw_burst_at_a_dead_port_exits_1(capsys):
    code = main(["burst", "--url", "http://127.0.0.1:9/x", "--duplicates", "3", "--timeout", "5"])
    assert code == 1
    assert "error" in capsys.readouterr().out


def test_compare_prints_the_before_after_table(tmp_path, exactly_once_targets, capsys):
    for mode in ("vulnerable", "atomic"):
        _run("--mode", mode, "--payments", "2", "--label", mode, "--report-dir", str(tmp_path), "--targets",
             exactly_once_targets)
    capsys.readouterr()
    code = main(["compare", str(tmp_path / "vulnerable.json"), str(tmp_path / "atomic.json")])
    out = capsys.readouterr().out
    assert code == 0
    assert "Before / after" in out  # the terminal table (its cells wrap with the terminal's width)
    table = (tmp_path / "comparison.md").read_text()
    before, after = re.search(r"\| Receipt files per payment \| ([^|]+) \| ([^|]+) \|", table).groups()
    assert (before.strip() != "1", after.strip()) == (True, "1")
