"""A hostile service cannot hang, flood or fool the harness (issue 25), judged through the CLI as a user runs it.

``tests/strangers/hostile_service.py`` makes exactly one receipt per paid payment — it is correct — and is
hostile in everything else: long hex answers, huge and endless answers, secrets echoed back, file names
that drive a terminal, a page a backtracking pattern would never finish. Each run must end within its
bound, keep its report small, leak nothing, paint nothing, and stay honest: never VALID where it was not.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _strangers import STRANGERS

from harness.local.service import free_port

pytestmark = pytest.mark.slow

SECRET, PASSWORD = "hx-webhook-secret-5d1e", "hx-password-9c2f"


def run(tmp_path: Path, mode: str, *extra: str, profile_text: str | None = None,
        **variables: str) -> tuple[subprocess.CompletedProcess, float]:
    profile = tmp_path / "hostile.toml"
    text = profile_text or (STRANGERS / "hostile_service.toml").read_text()
    profile.write_text(text.replace("[service]\n", f"[service]\ncwd = {str(STRANGERS)!r}\n", 1))
    env = {**os.environ, "HX_PYTHON": sys.executable, "HX_PORT": str(free_port()),
           "HX_RECEIPTS_DIR": str(tmp_path / "receipts"), "HX_MODE": mode, "HX_SECRET": SECRET,
           "HX_PASSWORD": PASSWORD, **variables}
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "harness", "run", "--profile", str(profile), "--payments", "2",
                             "--duplicates", "3", "--report-dir", str(tmp_path / "report"), *extra],
                            env=env, capture_output=True, text=True, timeout=280)
    return result, time.monotonic() - started


def written(tmp_path: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in (tmp_path / "report").glob("hostile*"))


def test_long_hex_answers_are_redacted_without_slowing_the_run(tmp_path):
    result, seconds = run(tmp_path, "hex", "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    assert seconds < 60


def test_a_huge_answer_is_kept_bounded_and_the_report_stays_small(tmp_path):
    result, seconds = run(tmp_path, "huge", "--quiet", HX_SIZE_MB="40")
    assert result.returncode in (0, 3), result.stdout + result.stderr  # its outcome may be unreadable: never a lie
    assert (tmp_path / "report" / "hostile.json").stat().st_size < 5_000_000
    assert seconds < 120


def test_an_endless_answer_is_cut_at_the_deadline_and_the_run_ends(tmp_path):
    result, seconds = run(tmp_path, "endless", "--quiet", "--timeout", "5")
    assert result.returncode != 0, result.stdout  # answers that never end are not a clean run
    assert seconds < 120
    assert (tmp_path / "report" / "hostile.json").stat().st_size < 5_000_000


def test_secrets_a_service_echoes_never_reach_any_file_the_run_writes(tmp_path):
    result, _ = run(tmp_path, "echo-secrets", "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    everything = written(tmp_path) + result.stdout + result.stderr
    assert SECRET not in everything and PASSWORD not in everything


def test_file_names_that_drive_a_terminal_are_printed_escaped(tmp_path):
    result, _ = run(tmp_path, "escape-name")
    assert "\x1b" not in result.stdout + result.stderr and "\x07" not in result.stdout + result.stderr
    assert "\x1b" not in (tmp_path / "report" / "hostile.md").read_text()


def test_a_backtracking_key_pattern_over_a_hostile_page_cannot_hang_the_run(tmp_path):
    text = (STRANGERS / "hostile_service.toml").read_text().replace(
        'glob = "receipt-*.pdf"\n', 'glob = "receipt-*.pdf"\nkey = { from = "text", pattern = '
                                    '"(?:a+)+Z|Receipt for (HX[0-9A-F]+)" }\n')
    result, seconds = run(tmp_path, "long-text", "--quiet", profile_text=text)
    assert result.returncode == 0, result.stdout + result.stderr
    assert seconds < 90


def test_a_chunked_call_to_the_sink_is_recorded_with_its_body(tmp_path):
    text = (STRANGERS / "hostile_service.toml").read_text() + (
        '\n[[effects]]\nkind = "notice"\nsource = "sink"\nchannel = "http"\npath = "/notices"\n'
        'key = { from = "body", field = "transaction" }\n')
    result, _ = run(tmp_path, "chunked-sink", "--quiet", profile_text=text)
    assert result.returncode == 0, result.stdout + result.stderr
