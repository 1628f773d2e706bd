"""What a hostile service sends cannot slow the harness's redaction, leak the secrets it was given, or drive the
terminal (issue 25, items 1, 6, 7 and 8).

A small in-process service plays the hostile part: it echoes the webhook's signing secret and password in
every answer, and names its receipt files with terminal escape sequences (set the window title, clear the
screen). Each test fails on the code before the fix: redaction was quadratic (10 KB of ``ab12`` took 8 s),
echoed secrets reached run.json, the unreachable-target message printed the base_url's password, and file
names reached the terminal raw.
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import pytest
from fastapi import FastAPI, Request

from harness.cli.main import main
from harness.local.service import free_port
from harness.profile import load_profile
from harness.redact import MASK, redact_text

SECRET = "hostile-signing-secret-4f2a"
PASSWORD = "hostile-webhook-pw-77c1"
MONGO_PASSWORD = "hostile-mongo-pw-19d3"
ENV_TOKEN = "hostile-env-token-5e5e"
ESCAPES = "\x1b]0;pwned\x07\x1b[2J"  # OSC "set the window title", BEL, then "clear the screen"


# -- the hostile service -------------------------------------------------------------------------

def _hostile_app(receipts: Path) -> FastAPI:
    app = FastAPI()
    counter = itertools.count(1)

    @app.get("/healthz")
    def healthz() -> dict:
        return {"ok": True}

    @app.post("/pay", status_code=201)
    def pay() -> dict:
        n = next(counter)
        return {"id": f"p{n}", "tx": f"T{n}"}

    @app.post("/hook")
    async def hook(request: Request) -> dict:
        tx = (await request.json())["tx"]
        # check-then-act with no check at all: every delivery makes a receipt, named to attack a terminal
        (receipts / f"receipt-{tx}-{next(counter)}{ESCAPES}.txt").write_text(tx)
        return {"receipt": "generated", "debug": f"signed with {SECRET}; webhook password {PASSWORD}"}

    return app


def _profile(tmp_path: Path, base_url: str, receipts: Path) -> Path:
    path = tmp_path / "hostile.toml"
    path.write_text(f"""
version = 1
name = "hostile"
base_url = "{base_url}"
health_path = "/healthz"

[payments]
source = "http"
path = "/pay"
id = "id"
transaction = "tx"

[deliveries.callback]
path = "/hook"
body = {{ tx = "{{transaction}}" }}
headers = {{ X-Webhook-Password = "{PASSWORD}" }}
signing = {{ scheme = "hmac", secret = "{SECRET}" }}

[answers]
field = "receipt"
generated = ["generated"]

[[effects]]
source = "files"
dir = "{receipts}"
glob = "receipt-*"
key = {{ from = "name", pattern = "receipt-(T\\\\d+)-" }}
""")
    return path


@pytest.fixture
def hostile_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """A run of the hostile service: (exit code, stdout, stderr, every file written under the report dir)."""
    from _inprocess import serve_in_thread

    receipts = tmp_path / "receipts"
    receipts.mkdir()
    with serve_in_thread(_hostile_app(receipts)) as url:
        profile = _profile(tmp_path, url, receipts)
        code = main(["run", "--profile", str(profile), "--payments", "2", "--duplicates", "3", "--quiet",
                     "--report-dir", str(tmp_path / "reports")])
    out, err = capsys.readouterr()
    files = {p: p.read_text(encoding="utf-8", errors="replace") for p in (tmp_path / "reports").rglob("*")
             if p.is_file()}
    return code, out, err, files


# -- item 1: redaction is linear -----------------------------------------------------------------

def _seconds(text: str, budget: float = 0.05, tries: int = 20) -> float:
    """The least CPU time (this thread's: time the machine gave others is not counted) one redaction of text
    took, over a few tries."""
    best, spent = float("inf"), 0.0
    for _ in range(tries):
        started = time.thread_time()
        redact_text(text)
        took = time.thread_time() - started
        best, spent = min(best, took), spent + took
        if spent > budget:
            break
    return best


@pytest.mark.parametrize("unit", ["ab12", "0123456789abcdef", "a.", "x://u:"],
                         ids=["letters-digits", "hex", "dotted", "uri-like"])
def test_redaction_time_grows_linearly_with_a_hostile_answer(unit: str) -> None:
    # 4x the text: ~4x the time when linear, ~16x when quadratic (10 KB of "ab12" took 8 s). The least of
    # several tries, and a second round when the first ratio is high, keep a busy machine from failing it.
    small, large = unit * (2048 // len(unit)), unit * (8192 // len(unit))
    ratios = []
    for _ in range(3):
        ratios.append(_seconds(large) / _seconds(small))
        if ratios[-1] < 8:
            break
    assert min(ratios) < 8, f"redaction of 4x the text took {min(ratios):.1f}x the time (quadratic: ~16x)"


def test_linear_redaction_masks_what_it_always_masked() -> None:
    text = ("ab12" * 5000 + " password=hunter22 url=mongodb://u:pw@h/db a.a.a " + "f00d" * 5000
            + " Authorization: Bearer t0k3n x://u:p@h saltKey='k e y'")
    masked = redact_text(text)
    for secret in ("hunter22", "u:pw@", "t0k3n", "u:p@", "k e y"):
        assert secret not in masked
    assert masked.count(MASK) == 5 and masked.startswith("ab12" * 5000) and "Bearer ***" in masked


# -- item 6: secret values are masked wherever they appear -----------------------------------------

def test_a_profile_names_every_secret_value_it_holds(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(f"""
version = 1
name = "s"
base_url = "http://u:{PASSWORD}@127.0.0.1:9"
[payments]
source = "http"
path = "/pay"
id = "id"
[deliveries.callback]
path = "/hook"
body = {{ tx = "{{transaction}}", api_token = "${{HOSTILE_TOKEN}}" }}
headers = {{ X-Api-Key = "Bearer {ENV_TOKEN}x", X-Request-Id = "req-1234" }}
signing = {{ scheme = "phonepe-v2", username = "race-harness", password = "{SECRET}" }}
[[effects]]
source = "files"
dir = "{tmp_path}"
[state]
source = "mongo"
uri = "mongodb://app:{MONGO_PASSWORD}@db.example:27017/shop"
database = "shop"
collection = "orders"
paid = {{ field = "status", values = ["PAID"] }}
""")
    profile = load_profile(path, {"HOSTILE_TOKEN": ENV_TOKEN})

    secrets = profile.secret_values()

    assert {PASSWORD, SECRET, MONGO_PASSWORD, ENV_TOKEN, f"Bearer {ENV_TOKEN}x", f"{ENV_TOKEN}x"} <= secrets
    assert not secrets & {"race-harness", "req-1234", "u", "shop"}  # names and ids are not secrets


def test_secrets_a_service_echoes_are_masked_in_every_file_a_run_writes(hostile_run) -> None:
    code, out, err, files = hostile_run
    assert code == 1, err  # the hostile service makes three receipts per payment
    assert {p.suffix for p in files} >= {".json", ".md", ".html"}
    leaks = {(p.name, s) for p, text in files.items() for s in (SECRET, PASSWORD) if s in text}
    assert leaks == set()
    assert SECRET not in out + err and PASSWORD not in out + err
    report = json.loads(next(text for p, text in files.items() if p.suffix == ".json"))
    answers = [e["body"] for e in report["history"]["events"] if isinstance(e.get("body"), dict)]
    assert answers and all(a["debug"] == f"signed with {MASK}; webhook password {MASK}" for a in answers)


def test_secret_values_are_masked_in_the_sink_records_kept_beside_a_report(tmp_path: Path) -> None:
    from _reports import make_report

    from harness.report.write import write_report

    records = tmp_path / "sink.jsonl"
    records.write_text(json.dumps({"seq": 1, "channel": "http", "path": f"/crm?sig={SECRET}",
                                   "body": {"note": f"pw {PASSWORD}"}}) + "\n")
    report = make_report("kept", [1])
    report.config["sink"] = {"records": str(records)}
    report.history["events"][0]["body"] = {"debug": f"signed with {SECRET}"}

    paths = write_report(report, tmp_path / "out", secrets={SECRET, PASSWORD})

    for path in paths.values():
        text = path.read_text(encoding="utf-8")
        assert SECRET not in text and PASSWORD not in text, path.name
    assert json.loads(paths["sink"].read_text())["body"] == {"note": f"pw {MASK}"}


# -- item 7: no credentials on stderr ------------------------------------------------------------

def test_an_unreachable_target_is_named_without_its_password(tmp_path: Path, capsys) -> None:
    profile = _profile(tmp_path, f"http://u:{PASSWORD}@127.0.0.1:{free_port()}", tmp_path)

    code = main(["run", "--profile", str(profile), "--payments", "1", "--duplicates", "2", "--quiet",
                 "--report-dir", str(tmp_path / "reports")])

    err = capsys.readouterr().err
    assert code == 4 and "is unreachable" in err, err
    assert PASSWORD not in err


# -- item 8: nothing the service names reaches the terminal raw ---------------------------------------

def _raw_controls(text: str) -> set[str]:
    return {c for c in text if (ord(c) < 0x20 and c != "\n") or 0x7f <= ord(c) < 0xa0}


def test_receipt_names_with_terminal_escapes_are_printed_escaped_by_run(hostile_run) -> None:
    code, out, err, files = hostile_run
    assert code == 1, err
    assert "\\x1b]0;pwned\\x07\\x1b[2J" in out  # the names are shown, as visible escapes
    assert _raw_controls(out + err) == set()
    markdown = next(text for p, text in files.items() if p.suffix == ".md")
    assert _raw_controls(markdown) == set()


def test_receipt_names_with_terminal_escapes_are_printed_escaped_by_audit(tmp_path: Path, capsys) -> None:
    receipts = tmp_path / "receipts"
    receipts.mkdir()
    for n in (1, 2):
        (receipts / f"receipt-T1-{n}{ESCAPES}.pdf").write_bytes(b"not a pdf")

    main(["audit", str(receipts), "--workers", "1", "--quiet", "--report-dir", str(tmp_path / "reports")])

    out, err = capsys.readouterr()
    assert "\\x1b]0;pwned\\x07\\x1b[2J" in out
    assert _raw_controls(out + err) == set()
    markdown = next((tmp_path / "reports").glob("*.md")).read_text(encoding="utf-8")
    assert _raw_controls(markdown) == set()
