"""Profiles that fit real services: what writing profiles for two real backends showed (issue 22).

Each test is one rough edge a new user met: the check that never started the sink, timing targets
that belonged to the reference service, what a run may take, reports that spoke of files, and an
audit that needed a whole profile.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _strangers import CLAIM_THEN_GENERATE, STRANGERS, claim_then_generate_variables, claim_then_generate_with_crm

from harness.profile import load_profile
from harness.run import RunConfig, RunSession
from harness.verdict import SHOWN, EXIT_OK, EXIT_USAGE, evaluate, targets_for

MINIMAL = """
version = 1
name = "shop"
base_url = "http://127.0.0.1:9"
[payments]
source = "http"
path = "/pay"
id = "id"
[deliveries.callback]
path = "/hook"
body = {{ id = "{{id}}" }}
signing = {{ scheme = "none" }}
[[effects]]
source = "files"
dir = "{receipts}"
{extra}
"""


def _profile(tmp_path: Path, extra: str = "", name: str = "shop.toml") -> Path:
    path = tmp_path / name
    path.write_text(MINIMAL.format(receipts=tmp_path / "receipts", extra=extra))
    return path


def _cli(*args: str, env: dict[str, str] | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=timeout)


# -- 1. profile check starts what a run starts ---------------------------------------------------

@pytest.mark.slow
def test_profile_check_starts_the_profiles_sink_and_service_and_passes_a_service_that_calls_out(tmp_path):
    profile = claim_then_generate_with_crm(tmp_path)
    result = _cli("profile", "check", str(profile),
                  env=claim_then_generate_variables("lease", tmp_path))
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    assert "ok  sink: started (http on 127.0.0.1:" in result.stdout
    assert "ok  effects.1 (sink http (path /crm/receipts))" in result.stdout
    assert "ok  state.claim" in result.stdout


def test_profile_check_says_what_an_audit_only_profile_lacks(tmp_path):
    profile = tmp_path / "audit.toml"
    profile.write_text(f'version = 1\nname = "prod"\n[[effects]]\nsource = "files"\ndir = "{tmp_path}"\n')
    result = _cli("profile", "check", str(profile))
    assert result.returncode == EXIT_USAGE
    assert "audit-only: a run needs [payments]" in result.stdout


# -- 2. targets belong to the service -------------------------------------------------------------

def test_a_profile_file_without_targets_is_judged_by_exactly_once_and_shows_the_seeds_timings(tmp_path):
    targets, source = targets_for(None, load_profile(_profile(tmp_path)))
    judged = {t.name for t in targets if t.judged}
    assert judged == {"effects-per-payment", "missing-effects"}
    results = {r.name: r for r in evaluate(targets, {"processing_ms_p95": 1800.0, "receipts_per_payment_max": 1,
                                                     "missing_receipts": 0})}
    assert results["processing-time"].status == SHOWN  # measured and shown, never missed
    assert "names no [targets]" in source


def test_a_profiles_own_targets_judge_its_runs(tmp_path):
    extra = ('[targets]\nfile = "exactly-once"\n[[targets.target]]\nname = "render"\nmetric = "processing_ms_p95"\n'
             'le = 3000\nunit = "ms"\n')
    targets, source = targets_for(None, load_profile(_profile(tmp_path, extra)))
    assert [t.name for t in targets] == ["receipt-files-per-payment", "missing-receipts", "render"]
    assert evaluate(targets, {"processing_ms_p95": 3500.0})[2].status == "missed"
    assert source.startswith("the profile's [targets]")


def test_a_profiles_targets_file_is_found_beside_the_profile(tmp_path):
    (tmp_path / "mine.json").write_text(json.dumps({"version": 1, "targets": [
        {"name": "fast", "metric": "processing_ms_p95", "le": 900}]}))
    targets, _ = targets_for(None, load_profile(_profile(tmp_path, '[targets]\nfile = "mine.json"\n')))
    assert [t.name for t in targets] == ["fast"]


def test_the_seeds_figures_stay_available_by_name_and_judge_the_reference_service(tmp_path):
    seed, _ = targets_for("seed", load_profile(_profile(tmp_path)))
    assert any(t.name == "processing-time" and t.judged for t in seed)
    reference, source = targets_for(None, load_profile("reference", {"RECEIPTS_DIR": str(tmp_path)},
                                                       base_url="http://127.0.0.1:9"))
    assert source == "seed" and all(t.judged for t in reference)


@pytest.mark.slow
def test_a_browser_slow_correct_stranger_passes_a_profile_run_without_targets(tmp_path):
    # Its receipt takes 1 s to render (a headless browser would): the seed's 300 ms would fail it; no target
    # of its own says so, so its timings are shown, not judged.
    env = {**claim_then_generate_variables("claim", tmp_path)}
    profile = tmp_path / "ctg.toml"
    profile.write_text(CLAIM_THEN_GENERATE.read_text().replace("[service]\n", f"[service]\ncwd = {str(STRANGERS)!r}\n", 1))
    result = _cli("run", "--profile", str(profile), "--payments", "2", "--duplicates", "3", "--quiet",
                  "--report-dir", str(tmp_path / "report"), env=env)
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    report = json.loads((tmp_path / "report" / "claim-then-generate.json").read_text())
    shown = {t["name"]: t for t in report["targets"] if t["status"] == SHOWN}
    assert shown["receipt-generation-time"]["measured"] >= 1000  # measured: a receipt took at least a second


# -- 6. what a run may take is the profile's to say ------------------------------------------------

def test_a_profiles_run_timeout_is_the_bursts_unless_the_command_line_says_otherwise(tmp_path):
    profile = load_profile(_profile(tmp_path, "[run]\ntimeout = 240\n"))
    with RunSession(RunConfig(profile=profile)) as session:
        assert session.config.timeout == 240
    with RunSession(RunConfig(profile=profile, timeout=5)) as session:
        assert session.config.timeout == 5
    with RunSession(RunConfig(profile=load_profile(_profile(tmp_path, name="plain.toml")))) as session:
        assert session.config.timeout == 60


# -- 9. an audit needs only what it reads ------------------------------------------------------------

def _audit_only(tmp_path: Path, extra: str = "") -> Path:
    receipts = tmp_path / "receipts"
    receipts.mkdir(exist_ok=True)
    profile = tmp_path / "audit.toml"
    profile.write_text(f'version = 1\nname = "prod receipts"\n[[effects]]\nkind = "receipt"\nsource = "files"\n'
                       f'dir = "{receipts}"\nglob = "*.pdf"\nkey = {{ from = "name", pattern = "receipt-(.+)\\\\.pdf" }}\n'
                       + extra)
    return profile


def _pdf(path: Path, text: str) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.cell(0, 10, text)
    pdf.output(str(path))


def test_an_audit_only_profile_is_valid_for_audit(tmp_path):
    profile = _audit_only(tmp_path)
    _pdf(tmp_path / "receipts" / "receipt-T1.pdf", "Receipt T1: Rs. 499.00")
    _pdf(tmp_path / "receipts" / "receipt-T2.pdf", "Receipt T2: Rs. 100.00")
    result = _cli("audit", "--profile", str(profile), "--json", "--report-dir", str(tmp_path / "report"))
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    assert json.loads(result.stdout)["counts"]["keys"] == 2


def test_an_audit_only_profile_is_refused_for_run_with_a_line_saying_what_is_missing(tmp_path):
    result = _cli("run", "--profile", str(_audit_only(tmp_path)))
    assert result.returncode == EXIT_USAGE
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1 and "audit-only: a run needs [payments]" in lines[0]


CRM = '\n[[effects]]\nkind = "crm notice"\nsource = "sink"\nchannel = "http"\nkey = { from = "body", field = "orderId" }\n'


def _records(path: Path, orders: list[str]) -> Path:
    path.write_text("".join(json.dumps({"seq": i, "t": 1.0, "channel": "http", "method": "POST", "path": "/crm",
                                        "headers": {}, "body": json.dumps({"orderId": order})}) + "\n"
                            for i, order in enumerate(orders, 1)))
    return path


def test_an_audit_reads_a_profiles_sink_effects_from_kept_records(tmp_path):
    records = _records(tmp_path / "sink.jsonl", ["T1", "T1", "T2"])
    result = _cli("audit", "--profile", str(_audit_only(tmp_path, CRM)), "--sink-records", str(records), "--json",
                  "--report-dir", str(tmp_path / "report"))
    assert result.returncode == 1, result.stdout + result.stderr  # T1 was announced twice
    report = json.loads(result.stdout)
    assert [(k["key"], len(k["receipts"])) for k in report["keys"]] == [("T1 (crm notice)", 2)]


def test_an_audit_counts_each_kind_on_its_own(tmp_path):
    # One receipt file and one CRM notice for T1: one of each kind, not two of anything.
    profile = _audit_only(tmp_path, CRM)
    _pdf(tmp_path / "receipts" / "receipt-T1.pdf", "Receipt T1: Rs. 499.00")
    records = _records(tmp_path / "sink.jsonl", ["T1"])
    result = _cli("audit", "--profile", str(profile), "--sink-records", str(records), "--json",
                  "--report-dir", str(tmp_path / "report"))
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    assert json.loads(result.stdout)["counts"]["keys"] == 2


def test_an_audit_of_sink_effects_without_their_records_is_one_clear_line(tmp_path):
    result = _cli("audit", "--profile", str(_audit_only(tmp_path, CRM)))
    assert result.returncode == EXIT_USAGE
    assert "give --sink-records FILE" in result.stdout + result.stderr


# -- 7. reports speak of the service under test --------------------------------------------------------

def test_a_profile_run_is_named_by_the_profiles_name_without_a_label(tmp_path):
    with RunSession(RunConfig(profile=load_profile(_profile(tmp_path)))) as session:
        assert session.config.label == "shop"
    with RunSession(RunConfig(profile=load_profile(_profile(tmp_path)), label="before")) as session:
        assert session.config.label == "before"


def test_an_id_header_is_shown_in_reports_and_a_credential_header_masked(tmp_path):
    extra = ('[deliveries.callback.headers]\n"X-Razorpay-Event-Id" = "evt_{random}"\n"X-Client-Key" = "ck_live_1"\n'
             '"X-Session" = "s3cr3t"\n')
    path = tmp_path / "h.toml"
    path.write_text(MINIMAL.format(receipts=tmp_path, extra="").replace('signing = { scheme = "none" }\n',
                                                                        'signing = { scheme = "none" }\n' + extra))
    headers = load_profile(path).to_dict()["deliveries"]["callback"]["headers"]
    assert headers == {"X-Razorpay-Event-Id": "evt_{random}", "X-Client-Key": "***", "X-Session": "***"}


def test_a_violation_names_the_payments_transaction_beside_the_services_id():
    from harness.history import Event, History
    from harness.observe.observation import Observation, ReceiptFile
    from harness.oracle import Evidence, PlannedPayment, check
    from harness.profile import Payment

    payment = Payment("6b1309307e672a1b2c3d4e5f", "order_Nq3x", 49_900)
    copies = [ReceiptFile(f"r{i}.pdf", 10, readable=True, subject="order_Nq3x", text="order_Nq3x Rs. 499.00")
              for i in (1, 2)]
    evidence = Evidence([PlannedPayment(payment, True)],
                        History(events=[Event(index=0, payment=payment.id, channel="callback", t_release=0.0,
                                              t_response=0.01, status=200)]),
                        Observation(receipts=copies, receipts_dir="/r"))
    duplicate = next(v for r in check(evidence) for v in r.violations if v.kind == "duplicate-receipts")
    assert str(duplicate).startswith("payment order_Nq3x (id 6b1309307e672a1b2c3d4e5f): duplicate")


def test_the_payments_table_names_a_payment_by_its_transaction_first():
    from harness.report.tables import payment_name

    assert payment_name({"payment": "6b13093", "merchant_transaction_id": "order_Nq3x"}) == "order_Nq3x (id 6b13093)"
    assert payment_name({"payment": "MT1", "merchant_transaction_id": "MT1"}) == "MT1"


def test_a_hidden_stray_file_is_not_a_receipt_in_an_audit_of_several_kinds(tmp_path):
    profile = _audit_only(tmp_path, '\n[[effects]]\nkind = "receipt copy"\nsource = "files"\n'
                                    f'dir = "{tmp_path / "receipts"}"\nglob = "*"\n'
                                    'key = { from = "name", pattern = "receipt-(.+)\\\\.pdf" }\n')
    _pdf(tmp_path / "receipts" / "receipt-T1.pdf", "Receipt T1: Rs. 499.00")
    (tmp_path / "receipts" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    result = _cli("audit", "--profile", str(profile), "--json", "--report-dir", str(tmp_path / "report"))
    report = json.loads(result.stdout)
    assert result.returncode == EXIT_OK, result.stdout
    assert report["unreadable"] == []


def test_a_profile_can_keep_larger_answers_so_their_outcomes_stay_readable(tmp_path):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from harness.history import History
    from harness.run.session import send
    from harness.senders.base import PreparedRequest

    answer = json.dumps({"receipt": "generated", "pdf_b64": "A" * 100_000}).encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        request = PreparedRequest(method="POST", url=f"http://127.0.0.1:{server.server_address[1]}/hook",
                                  headers=(("Content-Type", "application/json"),), body=b"{}", payment="p1",
                                  channel="callback")
        kept, default = History(), History()
        send([request], sync="last-byte", timeout=10, history=kept, warmup_path=None, body_limit=256 * 1024)
        send([request], sync="last-byte", timeout=10, history=default, warmup_path=None)
        assert isinstance(kept.events[0].body, dict) and not kept.events[0].body_truncated
        assert default.events[0].body_truncated
    finally:
        server.shutdown()
    parsed = load_profile(_profile(tmp_path, "[run]\nanswer_bytes = 262144\n"))
    assert parsed.spec.run.answer_bytes == 262_144
