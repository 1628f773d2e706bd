"""Side effects that leave the service, judged through the sink: the donation mailer stranger.

The mailer writes ``Receipt_<donor>.pdf`` (one name per payer), e-mails it over SMTP and posts the
donation to a hard-coded ``https://crm.example.com`` through HTTPS_PROXY. Its vulnerable variant
races: the disk shows one receipt per payment, because each duplicate overwrote the last, while
the donor got N e-mails and the CRM N posts. The harness knows it only through
``tests/strangers/donation_mailer.toml``; each run starts and stops the sink itself.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from _strangers import MAILER_PROFILE, MAILER_SECRET, mailer_with_profile

from harness.local.service import free_port
from harness.sink import read_records
from harness.verdict.result import EXIT_INCONCLUSIVE, EXIT_INVALID, EXIT_OK, EXIT_USAGE
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("mitmdump")]

DUPLICATES = 5


@pytest.fixture
def vulnerable(tmp_path):
    (tmp_path / "vulnerable").mkdir()
    with mailer_with_profile("vulnerable", tmp_path / "vulnerable") as variables:
        yield variables


@pytest.fixture
def fixed(tmp_path):
    (tmp_path / "fixed").mkdir()
    with mailer_with_profile("fixed", tmp_path / "fixed") as variables:
        yield variables


def run_cli(variables: dict[str, str], report_dir, *argv: str, profile=MAILER_PROFILE) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", "run", "--profile", str(profile), "--payments", "3",
                           "--duplicates", str(DUPLICATES), "--quiet", "--targets", "exactly-once", "--label", "mailer",
                           "--report-dir", str(report_dir), *argv],
                          env={**os.environ, **variables}, capture_output=True, text=True, timeout=300)


def test_the_disk_shows_one_receipt_while_the_sink_saw_every_duplicate_email_and_crm_post(race_profile, vulnerable):
    report = race_profile(MAILER_PROFILE, vulnerable, payments=3, duplicates=DUPLICATES)
    assert report.verdict.exit_code == EXIT_INVALID, report.explain()
    for row in report.payments:
        assert row["effects"]["receipt"] == 1, row  # the file view alone: one per payment (overwritten)
        assert row["effects"]["receipt e-mail"] > 1 and row["effects"]["crm post"] > 1, row
    duplicates = [v.message for c in report.checks if c.name == "exactly-one-receipt" for v in c.violations
                  if v.kind == "duplicate-receipts"]
    assert any("'receipt e-mail'" in m for m in duplicates) and any("'crm post'" in m for m in duplicates)
    assert not any("duplicate receipts" in m for m in duplicates)  # never the files


def test_the_fixed_mailer_sends_one_email_and_one_post_per_payment(race_profile, fixed, tmp_path):
    report = race_profile(MAILER_PROFILE, fixed, payments=3, duplicates=DUPLICATES)
    assert report.verdict.exit_code == EXIT_OK, report.explain()
    assert all(row["effects"] == {"crm post": 1, "receipt": 1, "receipt e-mail": 1} for row in report.payments)
    assert report.config["sink"]["recorded"] == 6 and report.config["sink"]["blocked_upstream"] == 0
    assert Path(report.config["sink"]["records"]).parent.parent == tmp_path  # the test's own, removed in time
    again = race_profile(MAILER_PROFILE, fixed, payments=1, duplicates=DUPLICATES)  # a second run, same test
    assert again.config["sink"]["records"] != report.config["sink"]["records"]  # each run's records its own
    assert len(read_records(report.config["sink"]["records"])) == 6


def test_the_cli_starts_and_stops_the_sink_and_keeps_its_records_beside_the_report(vulnerable, fixed, tmp_path):
    for variables, expected in ((vulnerable, EXIT_INVALID), (fixed, EXIT_OK)):
        reports = tmp_path / f"reports-{expected}"
        result = run_cli(variables, reports)
        assert result.returncode == expected, result.stdout + result.stderr
        records = [json.loads(line) for line in (reports / "mailer.sink.jsonl").read_text().splitlines()]
        assert {r["channel"] for r in records} == {"smtp", "proxy"}
        # written there from the start, not into a temporary directory left behind
        assert json.loads((reports / "mailer.json").read_text())["config"]["sink"]["records"] == str(
            reports / "mailer.sink.jsonl")
        assert all(r["host"] == "crm.example.com" for r in records if r["channel"] == "proxy")
        assert MAILER_SECRET not in (reports / "mailer.json").read_text()
        with socket.socket() as probe:  # the run stopped the sink: nothing listens on its ports any more
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", int(variables["MAILER_SMTP_PORT"])))
    assert "receipt e-mail" in run_cli(vulnerable, tmp_path / "again").stdout


def test_a_locust_swarm_judges_the_mailer_through_the_sink(vulnerable, fixed, tmp_path):
    from _locust import locust

    for variant, variables, expected in (("vulnerable", vulnerable, EXIT_INVALID), ("fixed", fixed, EXIT_OK)):
        (tmp_path / variant / "locust").mkdir(parents=True)
        run = locust("webhook_storm", tmp_path / variant / "locust", "--target-profile", str(MAILER_PROFILE),
                     "--payments", "3", "--duplicates", str(DUPLICATES), "--targets", "exactly-once", env=variables)
        assert run.returncode == expected, run.stdout[-3000:]


def test_a_sink_port_that_is_taken_is_one_line_and_exit_4(fixed, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", int(fixed["MAILER_SMTP_PORT"])))
        taken.listen()
        result = run_cli(fixed, tmp_path / "reports")
    assert result.returncode == EXIT_USAGE, result.stdout + result.stderr
    assert f"sink: cannot listen for smtp on 127.0.0.1:{fixed['MAILER_SMTP_PORT']}" in result.stdout + result.stderr


def test_a_key_rule_that_matches_nothing_is_exit_4_naming_the_rule(fixed, tmp_path):
    profile = tmp_path / "mailer.toml"
    profile.write_text(MAILER_PROFILE.read_text().replace('pattern = "receipt for (order_', 'pattern = "invoice for (order_'))
    result = run_cli(fixed, tmp_path / "reports", profile=profile)
    assert result.returncode == EXIT_USAGE, result.stdout + result.stderr
    assert "effects.1.key: pattern 'invoice for" in result.stdout + result.stderr


def test_a_service_that_never_calls_the_sink_is_inconclusive_never_a_pass(race_profile, fixed):
    # The sink listens on ports the service was never told about.
    elsewhere = {**fixed, "MAILER_SMTP_PORT": str(free_port()), "MAILER_PROXY_PORT": str(free_port())}
    report = race_profile(MAILER_PROFILE, elsewhere, payments=2, duplicates=2)
    assert report.verdict.exit_code == EXIT_INCONCLUSIVE, report.explain()
    assert "nothing reached the sink" in report.explain()
