"""No secret reaches a written report; redaction leaves everything else as it was."""

from __future__ import annotations

import json
from pathlib import Path

from _reports import make_report

from harness.redact import MASK, redact
from harness.report.write import write_report
from harness.verdict.result import RunReport
from harness.oracle.result import Violation

MONGO_PASSWORD = "Pl4nted-Mongo-Pw"
MONGO_URI = f"mongodb://harness:{MONGO_PASSWORD}@db.example:27017/race?authSource=admin"
SALT_KEY = "PLANTED-SALT-KEY-0a1b2c"
HMAC_SECRET = "PLANTED-HMAC-SECRET-9z8y"
PASSWORD = "PLANTED-PASSWORD-7x7x"
BEARER = "PLANTED-BEARER-TOKEN-5q5q"
HTTPS_PASSWORD = "PLANTED-HTTPS-PW-3w3w"
SECRETS = (MONGO_PASSWORD, SALT_KEY, HMAC_SECRET, PASSWORD, BEARER, HTTPS_PASSWORD)


def _report_with_planted_secrets() -> RunReport:
    """A run whose config, target, history meta, event bodies and headers, checks and environment carry secrets."""
    report = make_report("leaky", [2, 1])
    report.config["mongo_uri"] = MONGO_URI
    report.config["target"] = {"base_url": f"https://gateway:{HTTPS_PASSWORD}@127.0.0.1:8443/", "mongo_uri": MONGO_URI,
                               "signing": {"scheme": "hmac-sha256", "saltKey": SALT_KEY, "webhook_secret": HMAC_SECRET}}
    report.config["store"] = {"Password": PASSWORD}
    report.environment["MONGODB_URI"] = MONGO_URI
    report.history["meta"] = {"signing": {"hmac_secret": HMAC_SECRET}, "salt_key": SALT_KEY}
    first, second = report.history["events"][:2]
    first["body"] = {"receipt": "generated", "debug": f"connected to {MONGO_URI} with password={PASSWORD}"}
    first["meta"]["headers"] = [["Authorization", f"Bearer {BEARER}"], ["X-Webhook-Secret", HMAC_SECRET]]
    second["body"] = f"error: salt_key={SALT_KEY}; Authorization: Bearer {BEARER}"
    second["error"] = f"could not reach https://gateway:{HTTPS_PASSWORD}@127.0.0.1:8443/pg"
    report.checks[0].details = {"reason": f"state read from {MONGO_URI}"}
    report.checks[0].violations.append(Violation("exactly-one-receipt", f"seen via {MONGO_URI}"))
    return report


def test_no_planted_secret_appears_in_any_written_report(tmp_path: Path) -> None:
    paths = write_report(_report_with_planted_secrets(), tmp_path / "reports")
    written = sorted(p for p in (tmp_path / "reports").rglob("*") if p.is_file())
    assert written == sorted(paths.values()) and len(written) == 3
    leaks = {(p.name, s) for p in written for s in SECRETS if s in p.read_text(encoding="utf-8")}
    assert leaks == set()
    data = json.loads(paths["json"].read_text())
    assert data["config"]["mongo_uri"] == "mongodb://***@db.example:27017/race?authSource=admin"
    assert data["config"]["target"]["signing"] == {"scheme": "hmac-sha256", "saltKey": MASK, "webhook_secret": MASK}


def test_a_report_without_secrets_is_written_unchanged(tmp_path: Path) -> None:
    report = make_report("clean", [5, 1, 0, 2])
    paths = write_report(report, tmp_path)
    assert json.loads(paths["json"].read_text()) == json.loads(report.dumps())


def test_redaction_keeps_look_alike_fields_that_hold_no_secret() -> None:
    clean = {"receiptPath": "receipts/receipt-MT1.pdf", "merchantTransactionId": "MT1", "salt_index": 1,
             "base_url": "http://127.0.0.1:8000/api/public?email=a@b.example", "receipt_files": ["r@1.pdf"],
             "mongo_uri": "mongodb://127.0.0.1:27017/race", "description": "every paid payment has one receipt",
             "salt_key": None, "headers": [["Content-Type", "application/json"], ["X-VERIFY", "abc###1"]]}
    assert redact(clean) == clean


def test_redaction_masks_secret_keys_in_any_case_and_uri_credentials_in_any_string() -> None:
    assert redact({"SALT_KEY": "k", "Api-Key": "k", "db": {"passwd": "p"}, "x_auth_token": 5}) == {
        "SALT_KEY": MASK, "Api-Key": MASK, "db": {"passwd": MASK}, "x_auth_token": MASK}
    assert redact(["mongodb://u:p@h/db", ("https://u:p@h",)]) == ["mongodb://***@h/db", ("https://***@h",)]


def test_sink_records_kept_beside_a_report_have_their_credentials_masked_even_if_the_file_had_not(
        tmp_path: Path) -> None:
    handmade = tmp_path / "handmade.jsonl"  # e.g. given to `verify --sink-records`, never written by a sink
    handmade.write_text(json.dumps({"seq": 1, "channel": "http", "path": "/crm",
                                    "headers": {"Authorization": "Bearer s3cr3t-t0ken", "Content-Type": "x"}}) + "\n")
    report = make_report("kept", [1])
    report.config["sink"] = {"records": str(handmade)}

    paths = write_report(report, tmp_path / "out")

    kept = paths["sink"].read_text()
    assert "s3cr3t-t0ken" not in kept
    assert json.loads(kept)["headers"] == {"Authorization": MASK, "Content-Type": "x"}


def test_hand_made_sink_records_lose_list_form_credentials_and_url_passwords_when_kept(tmp_path: Path) -> None:
    handmade = tmp_path / "handmade.jsonl"
    handmade.write_text(json.dumps({"seq": 1, "channel": "proxy", "url": "https://crm:hunter2@crm.example.com/x",
                                    "headers": [["Authorization", "Basic aHVudGVyMg=="], ["Accept", "*/*"]]}) + "\n")
    report = make_report("kept", [1])
    report.config["sink"] = {"records": str(handmade)}

    kept = write_report(report, tmp_path / "out")["sink"].read_text()

    assert "hunter2" not in kept and "aHVudGVyMg==" not in kept
    assert json.loads(kept)["headers"][1] == ["Accept", "*/*"]
