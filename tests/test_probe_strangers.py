"""The probes against services the harness did not write, each judged only through its profile.

- a PhonePe v2 checkout (tests/strangers/v2_checkout.py): ``any-auth`` accepts any Authorization, as real
  backends did before their fix; ``checks-auth`` checks it but trusts the body, which the header does not
  cover; ``asks-gateway`` asks the gateway (the PhonePe simulator) what was paid;
- a Stripe order backend (tests/strangers/stripe_orders.py): ``ignores-timestamp`` checks the HMAC but not
  its age, ``unpays`` lets FAILED after COMPLETED un-pay, ``fixed`` does neither.

Each hole is found on the variant that has it, and on its fixed twin the same probe finds none.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import pytest
from _strangers import CHECKOUT_PROFILE, ORDERS_PROFILE, STRANGERS, checkout_with_profile, orders_with_profile

from harness.probe import HOLE, ProbeOptions, run_probes
from harness.profile import load_profile

pytestmark = pytest.mark.slow  # real service processes

TRIALS = 10  # the any-Authorization hole must be found in every one
FORGED = ["unsigned", "wrong-signature", "other-secret"]


def outcomes(report: dict) -> dict[str, str]:
    return {p["name"]: p["outcome"] for p in report["probes"]}


def holes(report: dict) -> list[str]:
    return sorted(n for n, o in outcomes(report).items() if o == HOLE)


@contextlib.contextmanager
def checkout(workdir: Path, variant: str, gateway: str, *more: str) -> Iterator[object]:
    with checkout_with_profile(variant, workdir, gateway, *more) as variables:
        yield load_profile(CHECKOUT_PROFILE, variables)


@contextlib.contextmanager
def orders(workdir: Path, variant: str) -> Iterator[object]:
    with orders_with_profile(variant, workdir) as variables:
        yield load_profile(ORDERS_PROFILE, variables)


def probe(profile, tmp_path: Path, *names: str) -> dict:
    return run_probes(profile, ProbeOptions(report_dir=tmp_path, only=list(names) or None))


# -- PhonePe v2: Authorization --------------------------------------------------------------------

def test_a_v2_service_accepting_any_authorization_is_found_in_every_trial(tmp_path, gateway):
    with checkout(tmp_path, "any-auth", gateway) as profile:
        found = [holes(probe(profile, tmp_path / f"t{i}", *FORGED)) for i in range(TRIALS)]
    assert found == [["other-secret", "wrong-signature"]] * TRIALS  # a header is required, any value passes


def test_its_twin_that_checks_authorization_refuses_every_forged_delivery(tmp_path, gateway):
    with checkout(tmp_path, "checks-auth", gateway) as profile:
        report = probe(profile, tmp_path, *FORGED)
    assert outcomes(report) == {name: "rejected" for name in FORGED}
    assert all(s["status"] == 401 for p in report["probes"] for s in p["sent"])


# -- PhonePe v2: a body the signature does not cover ----------------------------------------------

def test_a_v2_service_trusting_the_body_is_paid_by_a_validly_authorised_lie(tmp_path, gateway):
    with checkout(tmp_path, "checks-auth", gateway) as profile:
        report = probe(profile, tmp_path, "unprotected-body", "unprotected-amount")
    assert holes(report) == ["unprotected-amount", "unprotected-body"]
    amount = next(p for p in report["probes"] if p["name"] == "unprotected-amount")
    assert "never asked the gateway" in amount["note"] and "'CREATED' -> 'PAID'" in " ".join(amount["evidence"])


def test_its_twin_that_asks_the_gateway_passes_every_probe(tmp_path, gateway):
    with checkout(tmp_path, "asks-gateway", gateway) as profile:
        report = probe(profile, tmp_path)
    assert report["exit_code"] == 0, report["summary"]
    assert {"unprotected-body", "unprotected-amount", "wrong-signature"} <= set(outcomes(report))
    body = next(p for p in report["probes"] if p["name"] == "unprotected-body")
    assert "asked the gateway 1 time(s)" in body["note"]


# -- Stripe: the timestamp ------------------------------------------------------------------------

def test_a_stripe_service_ignoring_the_timestamp_takes_a_replay_after_the_window(tmp_path):
    with orders(tmp_path, "ignores-timestamp") as profile:
        report = probe(profile, tmp_path, "stale-timestamp", "other-secret", "tampered-body")
    assert holes(report) == ["stale-timestamp"]
    stale = next(p for p in report["probes"] if p["name"] == "stale-timestamp")
    assert stale["sent"][0]["status"] == 200 and any(h["forged"] for h in stale["sent"][0]["headers"]) is False


def test_its_fixed_twin_passes_every_probe(tmp_path):
    with orders(tmp_path, "fixed") as profile:
        report = probe(profile, tmp_path)
    assert report["exit_code"] == 0, report["summary"]
    assert outcomes(report)["stale-timestamp"] == "rejected"
    assert outcomes(report)["failed-after-completed"] != HOLE


# -- state regression -----------------------------------------------------------------------------

def test_a_service_that_lets_failed_after_completed_un_pay_is_a_regression_hole(tmp_path):
    with orders(tmp_path, "unpays") as profile:
        report = probe(profile, tmp_path, "failed-after-completed", "pending-after-completed")
    assert holes(report) == ["failed-after-completed", "pending-after-completed"]
    failed = next(p for p in report["probes"] if p["name"] == "failed-after-completed")
    assert any(line.startswith("un-paid: status 'paid' -> 'failed'") for line in failed["evidence"])


# -- a service the probe run starts ([service]) ---------------------------------------------------

def test_a_probe_run_starts_the_profiles_service_and_leaves_no_process_behind(tmp_path):
    import os
    import subprocess
    import sys

    import psutil
    from _strangers import claim_then_generate_variables

    variables = claim_then_generate_variables("lease", tmp_path)
    done = subprocess.run([sys.executable, "-m", "harness", "probe", "--profile", str(STRANGERS / "claim_then_generate.toml"),
                           "--report-dir", str(tmp_path / "r"), "--quiet", "--json"], env={**os.environ, **variables},
                          capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL)
    report = __import__("json").loads(done.stdout)
    # Written for races, this stranger never compares the amount paid with the order's: a hole the probe finds.
    assert done.returncode == 1 and holes(report) == ["wrong-amount"]
    marker = f"--port {variables['CTG_PORT']}"
    left = [p for p in psutil.process_iter(["cmdline"]) if marker in " ".join(p.info["cmdline"] or [])]
    assert left == []


def test_the_race_probe_fixture_probes_a_profile_as_the_cli_does(tmp_path, race_probe):
    with orders_with_profile("ignores-timestamp", tmp_path) as variables:
        report = race_probe(ORDERS_PROFILE, variables, only=["stale-timestamp", "unsigned"])
    assert report["exit_code"] == 1 and holes(report) == ["stale-timestamp"]
    assert outcomes(report)["unsigned"] == "rejected"


# -- what the probes must not be fooled by -----------------------------------------------------------

def test_a_profile_whose_secret_is_not_the_services_makes_every_probe_unknown_not_a_pass(tmp_path):
    # Every delivery is refused, the forged ones and the stale one alike: only the control shows why.
    with orders_with_profile("ignores-timestamp", tmp_path) as variables:
        report = probe(load_profile(ORDERS_PROFILE, {**variables, "STRIPE_ORDERS_SECRET": "whsec_not_the_services"}),
                       tmp_path, "stale-timestamp", "unsigned", "other-secret")
    assert report["exit_code"] == 3 and set(outcomes(report).values()) == {"unknown"}
    assert report["control"]["ok"] is False and "did not pay the control payment" in report["summary"]


def test_a_service_slower_than_the_probe_timeout_is_never_judged_as_passing(tmp_path, gateway):
    # The checkout waits 1.5 s before it handles a webhook (any Authorization passes); the probe gives up after 0.5 s.
    with checkout(tmp_path, "any-auth", gateway, "--webhook-delay-ms", "1500") as profile:
        patient = run_probes(profile, ProbeOptions(report_dir=tmp_path, only=["other-secret"], timeout=5.0))
        hasty = run_probes(profile, ProbeOptions(report_dir=tmp_path / "hasty", only=["other-secret"], timeout=0.5))
    assert outcomes(patient) == {"other-secret": HOLE}
    assert hasty["exit_code"] != 0 and outcomes(hasty)["other-secret"] in ("unknown", HOLE)
    assert "no answer" in hasty["control"]["reason"]
