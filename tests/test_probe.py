"""race-harness probe against the reference service: what applies to PhonePe v1 changes nothing, what does not
apply is named with its reason, a v2 webhook that trusts its body is a hole, and bad input changes nothing.

The strangers' holes (a service accepting any Authorization, ignoring Stripe's timestamp, trusting v2's
amount, un-paying on FAILED) are in test_probe_strangers.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.probe import HOLE
from harness.probe.session import plan_probes
from harness.profile import load_profile
from harness.reference import ReferenceOptions, started
from harness.probe import ProbeOptions, run_probes

pytestmark = pytest.mark.slow  # real service processes

V1_APPLIES = {"unsigned", "wrong-signature", "other-secret", "tampered-body", "wrong-amount", "unknown-order",
              "failed-after-completed", "pending-after-completed", "completed-and-failed-together"}
V1_DOES_NOT = {"stale-timestamp", "unprotected-body", "unprotected-amount"}
FORGED = {"unsigned", "wrong-signature", "other-secret", "tampered-body"}


def probe_cli(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict | None, str]:
    done = subprocess.run([sys.executable, "-m", "harness", "probe", "--json", "--report-dir", str(tmp_path / "r"),
                           *args], capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL,
                          env={**os.environ, **(env or {})})
    try:
        report = json.loads(done.stdout)
    except ValueError:
        report = None
    return done.returncode, report, done.stderr


@pytest.fixture(scope="module")
def v1_report(tmp_path_factory) -> tuple[int, dict]:
    code, report, stderr = probe_cli(tmp_path_factory.mktemp("v1"), "--profile", "reference")
    assert report is not None, stderr
    return code, report


def outcomes(report: dict) -> dict[str, str]:
    return {p["name"]: p["outcome"] for p in report["probes"]}


def test_the_reference_service_passes_every_probe_that_applies_to_phonepe_v1(v1_report):
    code, report = v1_report
    assert code == 0 and report["exit_code"] == 0, report["summary"]
    assert set(outcomes(report)) == V1_APPLIES
    assert HOLE not in outcomes(report).values() and "unknown" not in outcomes(report).values()


def test_the_probes_that_do_not_apply_to_phonepe_v1_are_named_with_why(v1_report):
    _, report = v1_report
    reasons = {n["name"]: n["reason"] for n in report["not_applicable"]}
    assert set(reasons) == V1_DOES_NOT
    assert "signs no timestamp" in reasons["stale-timestamp"]
    assert "covers the body" in reasons["unprotected-body"]


def test_the_reference_service_refuses_every_forged_delivery_with_401(v1_report):
    _, report = v1_report
    for probe in report["probes"]:
        if probe["name"] in FORGED:
            assert [s["status"] for s in probe["sent"]] == [401], probe


def test_a_regression_probe_pays_the_order_first_and_then_sees_it_stay_paid(v1_report):
    _, report = v1_report
    probe = next(p for p in report["probes"] if p["name"] == "failed-after-completed")
    assert [s["phase"] for s in probe["sent"]] == ["setup", "attack"]
    assert probe["state_before"]["paid"] and probe["state_after"]["paid"]


def test_the_burst_of_completed_and_failed_says_what_the_service_ended_with(v1_report):
    _, report = v1_report
    probe = next(p for p in report["probes"] if p["name"] == "completed-and-failed-together")
    assert probe["outcome"] == "consistent" and probe["ended"] == "paymentStatus 'paid', 1 receipt"


@pytest.fixture(scope="module")
def v2_run(tmp_path_factory) -> tuple[int, dict, Path]:
    directory = tmp_path_factory.mktemp("v2")
    code, report, stderr = probe_cli(directory, "--profile", "reference-v2")
    assert report is not None, stderr
    return code, report, directory / "r"


def test_the_reference_v2_webhook_trusts_its_body_and_the_unprotected_body_probe_finds_it(v2_run):
    code, report, _ = v2_run
    assert code == 1 and outcomes(report)["unprotected-body"] == HOLE
    evidence = " ".join(next(p for p in report["probes"] if p["name"] == "unprotected-body")["evidence"])
    assert "'pending' -> 'paid'" in evidence and "a new receipt" in evidence
    assert [n for n, o in outcomes(report).items() if o == HOLE] == ["unprotected-body"]


def test_the_report_says_plainly_that_phonepe_v2_cannot_protect_the_body(v2_run):
    _, report, directory = v2_run
    assert report["scheme"]["covers_body"] is False
    assert "does NOT cover the body" in (directory / "reference-v2-probe.md").read_text()


def test_no_report_file_holds_the_webhook_credential_but_forged_values_are_shown(v2_run):
    _, report, directory = v2_run
    profile = load_profile("reference-v2", {"RECEIPTS_DIR": str(directory)})
    channel = profile.spec.deliveries["callback"].signing.settings
    token = hashlib.sha256(f"{channel['username']}:{channel['password']}".encode()).hexdigest()
    forged = next(h["value"] for p in report["probes"] if p["name"] == "other-secret" for s in p["sent"]
                  for h in s["headers"])
    for path in directory.iterdir():
        text = path.read_text()
        assert token not in text and channel["password"] not in text, path
        assert forged in text, path
    printed = json.dumps(report)  # what --json printed
    assert token not in printed and channel["password"] not in printed and forged in printed


def test_an_unknown_probe_name_is_a_usage_error_that_starts_nothing(tmp_path):
    code, _, stderr = probe_cli(tmp_path, "--profile", "reference", "--only", "unsigned,forged-everything")
    assert code == 4 and "unknown probe 'forged-everything'" in stderr
    assert len(stderr.strip().splitlines()) == 1


def test_an_unreachable_service_is_a_usage_error(tmp_path):
    from harness.local.service import free_port

    code, _, stderr = probe_cli(tmp_path, "--profile", str(Path(__file__).parent.parent / "harness/profiles/reference.toml"),
                                env={"BASE_URL": f"http://127.0.0.1:{free_port()}", "RECEIPTS_DIR": str(tmp_path)})
    assert code == 4 and "unreachable" in stderr and len(stderr.strip().splitlines()) == 1


def test_a_state_that_cannot_be_read_makes_every_probe_unknown_never_a_pass(tmp_path):
    text = (Path(__file__).parent.parent / "harness/profiles/reference.toml").read_text()
    # A GET on a POST-only path: 405 for every state read, so no change could ever be seen.
    text = text.replace('path = "/api/public/service-charges/{id}"\npaid',
                        'path = "/api/public/service-charges/phonepe/callback?charge={id}"\npaid')
    broken = tmp_path / "broken.toml"
    broken.write_text(text)
    with started(ReferenceOptions(), tmp_path) as provided:
        profile = load_profile(broken, {"BASE_URL": provided.profile.base_url,
                                        "RECEIPTS_DIR": str(provided.service.receipts_dir)})
        report = run_probes(profile, ProbeOptions(only=["unsigned", "wrong-amount"]))
    assert report["exit_code"] == 3
    assert set(outcomes(report).values()) == {"unknown"}
    assert "could not be read" in report["probes"][0]["evidence"][0]


def test_a_profile_whose_only_channel_is_verify_cannot_be_probed(tmp_path):
    text = (Path(__file__).parent.parent / "harness/profiles/reference.toml").read_text()
    head, _, rest = text.partition("[deliveries.callback]")
    verify_and_after = rest[rest.index("[deliveries.verify]"):]
    only_verify = tmp_path / "verify-only.toml"
    only_verify.write_text(head + verify_and_after)
    with pytest.raises(HarnessError, match="no such channel"):
        plan_probes(load_profile(only_verify, {"RECEIPTS_DIR": str(tmp_path)}))


def test_run_with_probe_races_then_probes_and_a_hole_fails_a_valid_race(tmp_path):
    done = subprocess.run([sys.executable, "-m", "harness", "run", "--profile", "reference-v2", "--payments", "3",
                           "--duplicates", "3", "--probe", "--json", "--quiet", "--report-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    result = json.loads(done.stdout)
    assert result["verdict"]["valid"] is True  # the race itself: one receipt per payment
    assert result["probe"]["exit_code"] == 1 and "unprotected-body" in result["probe"]["summary"]
    assert done.returncode == 1
    assert (tmp_path / "atomic-probe.html").exists() and (tmp_path / "atomic.html").exists()


@pytest.mark.parametrize(("run", "probe", "expected"), [(0, 0, 0), (0, 1, 1), (2, 1, 1), (2, 0, 2), (0, 3, 3),
                                                        (3, 0, 3), (1, 0, 1), (2, 3, 2)])
def test_run_with_probe_exits_with_the_worse_of_race_and_probe(run, probe, expected):
    from harness.cli.run import with_probe_exit

    assert with_probe_exit(run, probe) == expected


def test_asking_only_for_probes_that_do_not_apply_is_a_usage_error_not_a_vacuous_pass(tmp_path):
    code, _, stderr = probe_cli(tmp_path, "--profile", "reference-v2", "--only", "tampered-body")
    assert code == 4 and "none of the probes asked for applies" in stderr and "does not cover the body" in stderr
    assert not (tmp_path / "r").exists()  # nothing started, nothing written


def test_the_control_payment_is_paid_by_a_valid_delivery_before_any_probe_counts(v1_report):
    _, report = v1_report
    control = report["control"]
    assert control["ok"] is True and control["ended"] == "paymentStatus 'paid', 1 receipt"
    assert [s["status"] for s in control["sent"]] == [200]
