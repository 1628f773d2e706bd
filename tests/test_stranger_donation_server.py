"""The donation server stranger judged only through what a user writes: its profile and the CLI (issue 22).

``tests/strangers/donation_server.py`` is built like a real Razorpay donation backend: donations inserted
by an upstream flow, and a captured payment leaves the service three ways — a JSON POST to a donations
API, one PDF per donor on disk (a duplicate overwrites it), and a multipart upload of that PDF to a
hard-coded ``https://`` WhatsApp gateway through the sink's forward proxy. The run starts the sink and
the service ([service]); nothing here passes --targets or --timeout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _strangers import STRANGERS
from _wire import fresh_database, wire_server

from harness.local.service import free_port
from harness.verdict import EXIT_INVALID, EXIT_OK

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("mitmdump")]

PROFILE = STRANGERS / "donation_server.toml"
SECRET = "rzp-donation-server-secret-for-tests"


def variables(variant: str, workdir: Path, **extra: str) -> dict[str, str]:
    return {"DS_PYTHON": sys.executable, "DS_PORT": str(free_port()), "DS_RECEIPTS_DIR": str(workdir / "receipts"),
            "DS_MONGO_URI": wire_server().uri, "DS_DATABASE": fresh_database(), "DS_VARIANT": variant,
            "DS_SECRET": SECRET, **extra}


def harness(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=240)


def run(variant: str, workdir: Path, **extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    result = harness("run", "--profile", str(PROFILE), "--payments", "3", "--duplicates", "5", "--quiet",
                     "--report-dir", str(workdir / "report"), env=variables(variant, workdir, **extra))
    report = workdir / "report" / "donation-server.json"
    return result, json.loads(report.read_text()) if report.is_file() else {}


@pytest.mark.parametrize("variant", ["vulnerable", "fixed"])
def test_profile_check_passes_both_variants_with_the_sink_it_starts(tmp_path, variant):
    result = harness("profile", "check", str(PROFILE), env=variables(variant, tmp_path))
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    for rule in ("effects.0 (sink http", "effects.1 (sink proxy", "effects.1.amount", "effects.2 (files"):
        assert f"ok  {rule}" in result.stdout, result.stdout


def test_a_run_finds_the_vulnerable_servers_duplicate_records_and_uploads(tmp_path):
    result, report = run("vulnerable", tmp_path)
    assert result.returncode == EXIT_INVALID, result.stdout + result.stderr
    for row in report["payments"]:
        assert row["effects"]["receipt pdf"] == 1  # each duplicate overwrote the donor's one file
        assert row["effects"]["donation record"] > 1 and row["effects"]["whatsapp receipt"] > 1, row


def test_a_run_passes_the_fixed_server_held_to_no_timing_target(tmp_path):
    result, report = run("fixed", tmp_path)
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    assert {tuple(sorted(row["effects"].items())) for row in report["payments"]} == {
        (("donation record", 1), ("receipt pdf", 1), ("whatsapp receipt", 1))}


def test_an_attachment_rule_on_the_upload_catches_a_wrong_amount_in_the_pdf(tmp_path):
    # Only the PDF uploaded to WhatsApp is wrong: the file on disk, the API record and the caption are right.
    result, report = run("fixed", tmp_path, DS_WRONG_AMOUNT="1")
    assert result.returncode == EXIT_INVALID, result.stdout + result.stderr
    wrong = [v for c in report["checks"] for v in c["violations"] if v["kind"] == "wrong-amount"]
    assert len(wrong) == 3 and all(v["files"][0].startswith("sink:whatsapp receipt:proxy#") for v in wrong), wrong
