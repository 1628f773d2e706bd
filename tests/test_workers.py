"""The service as several worker processes sharing one port and one wire-protocol store.

10 payments × 20 last-byte-synchronised duplicates: the database claim (atomic) makes exactly one
receipt per payment at four workers; a process-local asyncio.Lock (locked) makes exactly one at
one worker and duplicates at four, which the oracle reports by payment and file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from _wire import fresh_database, target_of, wire_server  # noqa: F401 (fixtures)

from harness.cli.main import main
from harness.local.service import free_port
from harness.prepare.plan import Plan
from harness.reference import start_service
from harness.verdict.result import EXIT_INVALID, EXIT_USAGE
from harness.run.session import RunConfig, run_race

# Real processes, nested pytest or Locust runs: `pytest -m 'not slow'` leaves these out.
pytestmark = pytest.mark.slow

PAYMENTS, DUPLICATES, TRIALS = 10, 20, 3
GENERATION_MS = 150


@pytest.fixture(scope="module")
def service_on_wire(tmp_path_factory):
    """Services on the wire store by (mode, workers), started on first use and shared by this module's tests."""
    started = {}

    def get(mode: str, workers: int):
        if (mode, workers) not in started:
            tmp = tmp_path_factory.mktemp(f"{mode}-{workers}-workers")
            started[mode, workers] = start_service(tmp / "receipts", mode=mode, workers=workers, wire=wire_server(),
                                                   database=fresh_database(), generation_delay_ms=GENERATION_MS,
                                                   log_path=tmp / "service.log")
        return started[mode, workers]

    yield get
    for service in started.values():
        service.stop()


@pytest.fixture
def race(service_on_wire, exactly_once_targets):
    """Fire TRIALS races of PAYMENTS × DUPLICATES at a service on the wire store; their reports."""

    def run(mode: str, workers: int, trials: int = TRIALS) -> list:
        service = service_on_wire(mode, workers)
        config = RunConfig(plan=Plan(payments=PAYMENTS, duplicates=DUPLICATES), profile=target_of(service).to_profile(),
                           service_pid=service.pid, targets_file=exactly_once_targets, label=f"{mode}-{workers}")
        return [run_race(config) for _ in range(trials)]

    return run


def _receipts_per_payment(report) -> list[int]:
    return [len(row["receipt_files"]) for row in report.payments]


def _exactly_one(report):
    return next(c for c in report.checks if c.name == "exactly-one-receipt")


def test_atomic_claim_makes_exactly_one_receipt_per_payment_at_four_workers(race):
    for report in race("atomic", workers=4):
        assert _receipts_per_payment(report) == [1] * PAYMENTS
        assert report.verdict.exit_code == 0, report.explain()


def test_locked_mode_makes_duplicates_at_four_workers_and_the_oracle_names_them(race):
    reports = race("locked", workers=4)
    duplicated = [r for r in reports if max(_receipts_per_payment(r)) > 1]
    assert len(duplicated) > len(reports) // 2, [_receipts_per_payment(r) for r in reports]
    for report in duplicated:
        assert report.verdict.exit_code == EXIT_INVALID
        named = {v.payment: v.files for v in _exactly_one(report).violations}
        assert named == {row["payment"]: row["receipt_files"] for row in report.payments
                         if len(row["receipt_files"]) > 1}


def test_locked_mode_makes_exactly_one_receipt_per_payment_at_one_worker(race):
    (report,) = race("locked", workers=1, trials=1)
    assert _receipts_per_payment(report) == [1] * PAYMENTS
    assert report.verdict.exit_code == 0, report.explain()


def test_metrics_of_a_multi_worker_service_count_every_workers_work(race):
    (report,) = race("locked", workers=4, trials=1)
    generated = report.history_summary["outcomes"]["generated"]  # answers from all four workers
    assert generated > PAYMENTS
    assert report.metrics["generations_started"] == generated
    assert report.metrics["service_peak_rss_mb"] > 0  # the whole process tree: the supervisor and its workers


def test_run_starts_a_four_worker_locked_service_on_the_wire_store_and_exits_1_naming_duplicates(
        tmp_path, exactly_once_targets, capsys):
    code = main(["run", "--quiet", "--store", "wire", "--workers", "4", "--mode", "locked", "--payments", "5",
                 "--duplicates", "10",
                 "--generation-delay-ms", str(GENERATION_MS), "--targets", str(exactly_once_targets),
                 "--report-dir", str(tmp_path), "--json"])
    captured = capsys.readouterr()
    assert code == EXIT_INVALID
    assert "wire store: SecantusDB at mongodb://127.0.0.1:" in captured.err
    exactly_one = next(c for c in json.loads(captured.out)["checks"] if c["name"] == "exactly-one-receipt")
    assert exactly_one["violations"] and all(len(v["files"]) > 1 for v in exactly_one["violations"])


# -- bad input: a clear message and exit 4, quickly, never a hang or a traceback ---------------------------

@pytest.mark.parametrize("argv, message", [
    (["--workers", "0"], "--workers must be at least 1"),
    (["--workers", "2"], "each worker process would hold a database of its own"),
    (["--mongo-uri", "mongodb://::not-a-host"], "malformed MongoDB URI"),
    (["--mongo-uri", "http://127.0.0.1:27017"], "must start with mongodb://"),
    (["--mongo-uri", f"mongodb://127.0.0.1:{free_port()}/", "--workers", "2"], "cannot reach MongoDB"),
    (["--store", "wire", "--mongo-uri", "mongodb://127.0.0.1/"], "name two different stores"),
], ids=["workers 0", "memory with 2 workers", "malformed URI", "not a MongoDB URI", "unreachable MongoDB",
        "two stores"])
def test_serve_with_bad_store_or_workers_exits_4_without_hanging(tmp_path, argv, message):
    # Never a hang: the unreachable MongoDB is given up after the service's 5 s, well inside this
    # bound, while pymongo's own default (30 s) would not be. No tighter wall-clock bound: a loaded
    # machine can take seconds just to start Python.
    env = {k: v for k, v in os.environ.items() if k != "MONGODB_URI"}
    completed = subprocess.run([sys.executable, "-m", "harness.cli", "serve", "--port", str(free_port()),
                                "--receipts-dir", str(tmp_path / "receipts"), *argv],
                               capture_output=True, text=True, timeout=25, env=env)
    assert completed.returncode == EXIT_USAGE, completed.stderr
    assert message in completed.stderr
    assert "Traceback" not in completed.stderr + completed.stdout


@pytest.mark.parametrize("command", ["run", "demo"])
@pytest.mark.parametrize("argv, message", [
    (["--workers", "0"], "--workers must be at least 1"),
    (["--workers", "4"], "each worker process would hold a database of its own"),
], ids=["workers 0", "memory with 4 workers"])
def test_run_and_demo_with_bad_workers_exit_4_before_starting_anything(monkeypatch, capsys, tmp_path, command,
                                                                      argv, message):
    monkeypatch.delenv("MONGODB_URI", raising=False)
    assert main([command, "--quiet", *argv, "--report-dir", str(tmp_path)]) == EXIT_USAGE
    assert message in capsys.readouterr().err
