"""The Locust scenarios: headless swarms that end with the harness's verdict as their exit code.

Each test runs ``locust`` as a subprocess against a reference service on loopback (or the
embedded one), with a lenient targets file, so that only the exactly-once invariants, the
oracle's checks and the race having happened decide the exit code.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from _locust import locust, report_of

from harness import reverify
from harness.local.service import free_port
from harness.reference import start_simulator
from harness.verdict.result import RunReport

# Real processes, nested pytest or Locust runs: `pytest -m 'not slow'` leaves these out.
pytestmark = pytest.mark.slow

VERDICT = "race-harness verdict"

# Locust comes with the test extra; it is only ever run as a subprocess here, because importing it
# monkey-patches the importing process with gevent (and breaks xdist's workers).


@pytest.fixture
def simulator(tmp_path):
    process = start_simulator(log_path=tmp_path / "simulator.log")
    yield process
    process.stop()


def against(service) -> list[str]:
    return ["-H", service.url, "--receipts-dir", str(service.receipts_dir)]


def check(report: dict, name: str) -> dict:
    return next(c for c in report["checks"] if c["name"] == name)


def test_webhook_storm_on_the_atomic_service_exits_0_with_one_receipt_per_payment(start_reference, tmp_path,
                                                                                   exactly_once_targets):
    service = start_reference("atomic", generation_delay_ms=150)
    run = locust("webhook_storm", tmp_path, *against(service), "--payments", "4", "--duplicates", "5",
                 "--targets", exactly_once_targets)
    assert run.returncode == 0, run.stdout
    report = report_of(tmp_path)
    assert [p["receipts"] for p in report["payments"]] == [1, 1, 1, 1]
    assert report["metrics"]["requests"] == 20 and check(report, "race-exercised")["valid"] is True
    assert "POST /api/public/service-charges/phonepe/callback [burst]" in " ".join(run.stdout.split())
    # One process: a GO message's trip is a function call, so the instant is named only 10 ms ahead.
    assert report["config"]["options"]["release_lead"] == pytest.approx(0.010)


def test_webhook_storm_on_the_vulnerable_service_exits_1_and_names_the_duplicates(start_reference, tmp_path,
                                                                                   exactly_once_targets):
    service = start_reference("vulnerable", generation_delay_ms=150)
    run = locust("webhook_storm", tmp_path, *against(service), "--payments", "3", "--duplicates", "5",
                 "--targets", exactly_once_targets)
    assert run.returncode == 1, run.stdout
    assert "duplicate receipts" in run.stdout and "INVALID" in run.stdout
    violations = check(report_of(tmp_path), "exactly-one-receipt")["violations"]
    assert violations and all(len(v["files"]) > 1 for v in violations)


def test_distributed_run_verifies_once_on_the_master_with_duplicates_timed_on_both_workers_clocks(
        start_reference, tmp_path, exactly_once_targets):
    service = start_reference("atomic", generation_delay_ms=150)
    port = str(free_port())
    run = locust("webhook_storm", tmp_path, *against(service), "--processes", "2", "--master-bind-port", port,
                 "--master-port", port, "--payments", "4", "--duplicates", "4", "--targets", exactly_once_targets)
    assert run.returncode == 0, run.stdout
    assert run.stdout.count(VERDICT) == 1
    assert len(list((tmp_path / "report").glob("*.json"))) == 1
    report = report_of(tmp_path)
    assert report["config"]["locust"]["runner"] == "MasterRunner"
    assert report["config"]["options"]["release_lead"] == pytest.approx(0.100)  # lanes in other processes
    workers_of, clocks_of = {}, {}
    for event in report["history"]["events"]:
        workers_of.setdefault(event["payment"], set()).add(event["meta"]["worker"])
        clocks_of.setdefault(event["payment"], set()).add(event["meta"]["clock"])
    assert len(workers_of) == 4 and all(len(w) == 2 for w in workers_of.values())  # each payment from both
    assert clocks_of == workers_of  # each event names the worker process whose clock timed it
    assert [p["receipts"] for p in report["payments"]] == [1, 1, 1, 1]


def test_callback_vs_verify_on_the_atomic_service_exits_0_with_one_receipt_per_payment(start_reference, simulator,
                                                                                        tmp_path, exactly_once_targets):
    service = start_reference("atomic", generation_delay_ms=150, phonepe_base_url=simulator.url)
    run = locust("callback_vs_verify", tmp_path, *against(service), "--gateway-url", simulator.url,
                 "--payments", "3", "--duplicates", "4", "--targets", exactly_once_targets)
    assert run.returncode == 0, run.stdout
    report = report_of(tmp_path)
    assert all(p["receipts"] == 1 and set(p["channels"]) == {"callback", "verify"} for p in report["payments"])


def test_flaky_generation_rolls_back_and_redelivers_until_one_receipt_per_payment(start_reference, tmp_path,
                                                                                   exactly_once_targets):
    service = start_reference("atomic", generation_delay_ms=150, failure_rate=0.8)
    run = locust("flaky_generation", tmp_path, *against(service), "--payments", "6", "--duplicates", "3",
                 "--redelivery-rounds", "3", "--heal-after", "2", "--targets", exactly_once_targets)
    assert run.returncode == 0, run.stdout
    report = report_of(tmp_path)
    assert report["metrics"]["rollbacks"] > 0 and report["history_summary"]["outcomes"]["failed"] > 0
    assert all(p["receipts"] == 1 for p in report["payments"])
    assert max(report["config"]["locust"]["redeliveries"].values()) > 0  # retried deliveries did happen
    # Redeliveries of the payments still without a receipt, not the plan's rounds (every request sent again).
    assert report["config"]["options"]["redelivery_rounds"] == 3 and report["config"]["plan"]["rounds"] == 1


def test_reverify_of_a_locust_report_judges_with_the_runs_own_targets_file(start_reference, tmp_path):
    service = start_reference("atomic", generation_delay_ms=150)
    (tmp_path / "own-targets.json").write_text(json.dumps({"version": 1, "targets": [
        {"name": "own-missing-receipts", "metric": "missing_receipts", "eq": 0, "unit": "payments"}]}))
    run = locust("webhook_storm", tmp_path, *against(service), "--payments", "2", "--duplicates", "4",
                 "--targets", "own-targets.json",  # relative to the Locust run's directory, not the reverifier's
                 "--rounds", "2")  # the deprecated name of --redelivery-rounds 1
    assert run.returncode == 0, run.stdout
    assert "--rounds 2 is deprecated here: use --redelivery-rounds 1" in run.stdout
    report = RunReport.from_dict(report_of(tmp_path))
    assert report.config["options"]["redelivery_rounds"] == 1 and report.config["plan"]["rounds"] == 1
    again = reverify(report)
    assert [t.name for t in again.targets] == ["own-missing-receipts"] and again.verdict.valid is True


def test_the_embedded_service_needs_no_host_and_is_judged_like_any_other(tmp_path, exactly_once_targets):
    run = locust("webhook_storm", tmp_path, "--embedded", "vulnerable", "--generation-delay-ms", "150",
                 "--payments", "2", "--duplicates", "4", "--targets", exactly_once_targets)
    assert run.returncode == 1, run.stdout
    assert report_of(tmp_path)["config"]["service"] == {
        "embedded": True, "mode": "vulnerable", "generation_delay_ms": 150.0, "failure_rate": 0.0,
        "store": "memory", "workers": 1}


def test_embedded_locked_service_with_four_workers_on_the_wire_store_duplicates(tmp_path, exactly_once_targets):
    # Enough connections that the workers' accept loops share them (one worker can take a small burst whole).
    run = locust("webhook_storm", tmp_path, "--embedded", "locked", "--store", "wire", "--workers", "4",
                 "--generation-delay-ms", "150", "--payments", "4", "--duplicates", "20", "--targets", exactly_once_targets)
    assert run.returncode == 1, run.stdout
    report = report_of(tmp_path)
    assert report["history_summary"]["state_source"] == "mongodb"
    assert check(report, "exactly-one-receipt")["valid"] is False


def test_no_service_to_test_is_a_usage_error_exit_4(tmp_path):
    run = locust("webhook_storm", tmp_path, "--payments", "2", users=1)
    assert run.returncode == 4
    assert "no service to test" in run.stdout
    assert Counter(line.startswith(VERDICT) for line in run.stdout.splitlines())[True] == 1
