"""Services the harness has never seen, judged only through the profile files a user would write.

Two strangers, each with a vulnerable and a fixed variant and a contract unlike the reference
service's: a PhonePe v2 shop (orders inserted into MongoDB, receipt numbers it assigns, PDFs named
by number) and a donations backend (Standard Webhooks signing, 202 at once, receipts as MongoDB
rows). The harness knows them only through ``tests/strangers/*.toml``.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from _strangers import PROFILES, stranger_with_profile

from harness.profile import load_profile
from harness.verdict.result import EXIT_INVALID, EXIT_OK

pytestmark = pytest.mark.slow

STRANGERS = tuple(PROFILES)


@pytest.fixture(params=STRANGERS)
def name(request) -> str:
    return request.param


@pytest.fixture
def vulnerable(name, tmp_path):
    (tmp_path / "vulnerable").mkdir()
    with stranger_with_profile(name, "vulnerable", tmp_path / "vulnerable") as variables:
        yield variables


@pytest.fixture
def fixed(name, tmp_path):
    (tmp_path / "fixed").mkdir()
    with stranger_with_profile(name, "fixed", tmp_path / "fixed") as variables:
        yield variables


def _kinds(report, check: str) -> set[str]:
    return {v.kind for c in report.checks if c.name == check for v in c.violations}


def test_the_vulnerable_stranger_is_invalid_with_duplicate_side_effects_named(race_profile, name, vulnerable):
    report = race_profile(PROFILES[name], vulnerable, payments=4, duplicates=5)
    assert report.verdict.exit_code == EXIT_INVALID, report.explain()
    assert "duplicate-receipts" in _kinds(report, "exactly-one-receipt")


def test_the_fixed_stranger_is_valid(race_profile, name, fixed):
    report = race_profile(PROFILES[name], fixed, payments=4, duplicates=5)
    assert report.verdict.exit_code == EXIT_OK, report.explain()
    assert all(row["receipts"] == 1 for row in report.payments), report.payments


def test_a_check_the_profile_gives_no_evidence_for_is_not_made_and_says_why(race_profile, name, fixed):
    report = race_profile(PROFILES[name], fixed, payments=2, duplicates=2)
    generation = next(c for c in report.checks if c.name == "one-generation")
    assert not generation.made and "answers" in generation.details["reason"]
    assert report.verdict.exit_code == EXIT_OK


@pytest.fixture
def donations_fixed(tmp_path):
    with stranger_with_profile("donations", "fixed", tmp_path) as variables:
        yield variables


def test_the_202_stranger_is_judged_only_after_its_background_work_settled(race_profile, donations_fixed):
    report = race_profile(PROFILES["donations"], donations_fixed, payments=3, duplicates=3)
    assert next(c for c in report.checks if c.name == "settled").valid is True
    assert report.verdict.exit_code == EXIT_OK, report.explain()


def test_the_cli_runs_a_stranger_by_its_profile_file(name, vulnerable, tmp_path):
    result = subprocess.run([sys.executable, "-m", "harness", "run", "--profile", str(PROFILES[name]), "--payments",
                             "3", "--duplicates", "5", "--quiet", "--targets", "exactly-once",
                             "--report-dir", str(tmp_path / "reports")],
                            env={**os.environ, **vulnerable}, capture_output=True, text=True, timeout=300)
    assert result.returncode == EXIT_INVALID, result.stdout + result.stderr
    assert "duplicate" in result.stdout
    assert list((tmp_path / "reports").glob("*.html"))


def test_a_report_carries_the_profile_with_its_secrets_masked(race_profile, name, fixed):
    report = race_profile(PROFILES[name], fixed, payments=1, duplicates=2)
    signing = report.config["profile"]["deliveries"]["callback"]["signing"]
    secrets_ = {v for k, v in fixed.items() if "PASSWORD" in k or "SECRET" in k or "USERNAME" in k}
    assert set(signing.values()) - {signing["scheme"]} == {"***"}
    text = str(report.to_dict())
    assert not any(secret in text for secret in secrets_)


def test_reverify_judges_a_strangers_run_again_from_its_report(race_profile, name, fixed):
    from harness import reverify

    report = race_profile(PROFILES[name], fixed, payments=2, duplicates=3)
    again = reverify(report)
    assert again.verdict.exit_code == report.verdict.exit_code == EXIT_OK, again.explain()


def test_a_profile_built_in_a_test_needs_no_file(race_profile, name, fixed):
    profile = load_profile(PROFILES[name], fixed)
    assert race_profile(profile, payments=2, duplicates=2).valid


def test_a_locust_swarm_judges_a_stranger_by_its_profile(name, vulnerable, fixed, tmp_path):
    from _locust import locust, report_of

    for variant, variables, expected in (("vulnerable", vulnerable, EXIT_INVALID), ("fixed", fixed, EXIT_OK)):
        (tmp_path / variant / "locust").mkdir()
        run = locust("webhook_storm", tmp_path / variant / "locust", "--target-profile", str(PROFILES[name]), "--payments", "3",
                     "--duplicates", "5", "--targets", "exactly-once", env=variables)
        assert run.returncode == expected, run.stdout[-3000:]
        assert report_of(tmp_path / variant / "locust")["config"]["profile"]["name"] == load_profile(PROFILES[name], variables).name


def test_an_audit_by_profile_finds_the_vulnerable_strangers_past_duplicates(race_profile, name, vulnerable):
    from harness.audit import audit_profile

    race_profile(PROFILES[name], vulnerable, payments=3, duplicates=5)
    audit = audit_profile(load_profile(PROFILES[name], vulnerable))
    assert audit["exit_code"] == EXIT_INVALID, audit["summary"]
    assert audit["counts"]["duplicate_keys"] or audit["counts"].get("orphans"), audit["summary"]


def test_an_audit_by_profile_of_the_fixed_stranger_finds_one_side_effect_per_payment(race_profile, name, fixed):
    from harness.audit import audit_profile

    race_profile(PROFILES[name], fixed, payments=3, duplicates=5)
    audit = audit_profile(load_profile(PROFILES[name], fixed))
    assert audit["exit_code"] == EXIT_OK, audit["summary"]
    assert (audit["counts"]["keys"], audit["counts"]["receipts"]) == (3, 3), audit["summary"]


def _cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *argv], env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def shop_fixed(tmp_path):
    (tmp_path / "shop").mkdir()
    with stranger_with_profile("v2shop", "fixed", tmp_path / "shop") as variables:
        yield variables


def test_a_key_rule_that_matches_nothing_is_one_line_naming_it_and_exit_4(shop_fixed, tmp_path):
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(PROFILES["v2shop"].read_text().replace('pattern = "Receipt (R-\\\\d+)"',
                                                        'pattern = "Invoice (INV-\\\\d+)"'))
    result = _cli("run", "--profile", str(wrong), "--payments", "2", "--duplicates", "2", "--quiet",
                  "--report-dir", str(tmp_path / "r"), env=shop_fixed)
    assert result.returncode == 4, result.stdout + result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "effects.0.key" in line and "Invoice" in line and "Receipt R-" in line


def test_an_unreachable_service_is_one_line_and_exit_4(tmp_path):
    from harness.local.service import free_port

    result = _cli("run", "--profile", str(PROFILES["donations"]), "--quiet", "--report-dir", str(tmp_path),
                  env={"DONATIONS_BASE_URL": f"http://127.0.0.1:{free_port()}", "DONATIONS_MONGO_URI": "mongodb://x",
                       "DONATIONS_DATABASE": "d", "DONATIONS_WEBHOOK_SECRET": "whsec_" + "QUJD" * 8})
    assert result.returncode == 4
    (line,) = result.stderr.strip().splitlines()
    assert "unreachable" in line


def test_a_profile_with_a_mistake_is_one_line_naming_the_field_and_exit_4(tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text(PROFILES["donations"].read_text().replace('paid = { field = "status", values = ["succeeded"] }',
                                                                'paid = { fields = "status" }'))
    result = _cli("run", "--profile", str(broken), env={"DONATIONS_BASE_URL": "http://127.0.0.1:9",
                                                        "DONATIONS_MONGO_URI": "mongodb://x", "DONATIONS_DATABASE": "d",
                                                        "DONATIONS_WEBHOOK_SECRET": "whsec_" + "QUJD" * 8})
    assert result.returncode == 4
    (line,) = result.stderr.strip().splitlines()
    assert "state.paid" in line and "(line" in line
