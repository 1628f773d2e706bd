"""``race-harness verify`` of a run that judged side effects through the sink: read from the records it kept.

The run starts and stops its own sink, and keeps what reached it beside its report as
``<stem>.sink.jsonl``. Judging again later finds no sink running, so it reads that file (or the one
``--sink-records`` names); with no file to read, the sink's checks are unknown and say where they
looked, never a pass. Each stranger run here is made once per module, through the CLI as a user
makes it; every test copies what it changes.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
from _strangers import MAILER_PROFILE, MAILER_SECRET, mailer_with_profile

from harness.cli.main import main
from harness.verdict.result import EXIT_INCONCLUSIVE, EXIT_INVALID, EXIT_OK, EXIT_USAGE

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("mitmdump")]

DUPLICATES = 5


def run_cli(variables: dict[str, str], report_dir: Path, profile: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", "run", "--profile", str(profile), "--payments", "3",
                           "--duplicates", str(DUPLICATES), "--quiet", "--targets", "exactly-once", "--label", "mailer",
                           "--report-dir", str(report_dir)],
                          env={**os.environ, **variables}, capture_output=True, text=True, timeout=300)


def verify(capsys: pytest.CaptureFixture, *argv: str | Path) -> tuple[int, str]:
    """``race-harness verify ARGV`` in this process: (exit code, everything it printed)."""
    capsys.readouterr()
    code = main(["verify", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out + out.err


def kept_files(reports: Path) -> list[Path]:
    """Every copy of the run's records a default lookup could find: beside its report, and where the run wrote them."""
    during = json.loads((reports / "mailer.json").read_text())["config"]["sink"]["records"]
    return [reports / "mailer.sink.jsonl", Path(during)]


@contextlib.contextmanager
def set_aside(paths: list[Path], where: Path) -> Iterator[None]:
    """Move files away for the block (other tests share the run), and back afterwards."""
    where.mkdir()
    unique = list(dict.fromkeys(paths))  # the run may have written its records beside its report already
    moved = [(path, where / f"{i}.jsonl") for i, path in enumerate(unique) if path.is_file()]
    for path, aside in moved:
        shutil.move(path, aside)
    try:
        yield
    finally:
        for path, aside in moved:
            shutil.move(aside, path)


def sink_is_stopped(variables: dict[str, str]) -> bool:
    """Nothing listens on the sink's SMTP port any more (the run stopped its sink)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", int(variables["MAILER_SMTP_PORT"])))
        except OSError:
            return False
    return True


@pytest.fixture(scope="module")
def vulnerable_run(tmp_path_factory, mitmdump) -> Path:
    """The vulnerable mailer raced through a profile without [state] (so judging again needs no service);
    the service is stopped before the report is handed out. Returns the report directory."""
    work = tmp_path_factory.mktemp("vulnerable")
    profile = work / "mailer-no-state.toml"
    profile.write_text(re.sub(r"\n\[state\]\n.*?\n\n", "\n", MAILER_PROFILE.read_text(), flags=re.S))
    assert "[state]" not in profile.read_text() and "[sink]" in profile.read_text()
    with mailer_with_profile("vulnerable", work) as variables:
        result = run_cli(variables, work / "reports", profile)
    assert result.returncode == EXIT_INVALID, result.stdout + result.stderr
    assert sink_is_stopped(variables)
    return work / "reports"


@pytest.fixture(scope="module")
def fixed_run(tmp_path_factory, mitmdump):
    """The fixed mailer raced through its own profile; the service stays up (its state is read over HTTP),
    its sink is stopped. Yields the report directory."""
    work = tmp_path_factory.mktemp("fixed")
    with mailer_with_profile("fixed", work) as variables:
        result = run_cli(variables, work / "reports", MAILER_PROFILE)
        assert result.returncode == EXIT_OK, result.stdout + result.stderr
        assert sink_is_stopped(variables)
        yield work / "reports"


def test_a_vulnerable_run_is_still_invalid_from_its_kept_records_with_service_and_sink_gone(vulnerable_run, capsys,
                                                                                           tmp_path):
    code, said = verify(capsys, vulnerable_run / "mailer.json", "--report-dir", tmp_path)
    assert code == EXIT_INVALID, said
    assert "duplicate 'receipt e-mail' side effects" in said and "duplicate 'crm post' side effects" in said
    again = json.loads((tmp_path / "mailer-reverified.json").read_text())
    assert all(row["effects"]["receipt e-mail"] > 1 and row["effects"]["receipt"] == 1 for row in again["payments"])
    assert again["config"]["sink"]["records"] == str(vulnerable_run / "mailer.sink.jsonl")
    assert (tmp_path / "mailer-reverified.sink.jsonl").is_file()  # the records judged, kept beside the new report
    for written in (said, *(p.read_text() for p in tmp_path.iterdir())):
        assert MAILER_SECRET not in written


def test_the_fixed_run_is_valid_again_from_its_kept_records(fixed_run, capsys, tmp_path):
    code, said = verify(capsys, fixed_run / "mailer.json", "--report-dir", tmp_path)
    assert code == EXIT_OK, said
    again = json.loads((tmp_path / "mailer-reverified.json").read_text())
    assert all(row["effects"] == {"crm post": 1, "receipt": 1, "receipt e-mail": 1} for row in again["payments"])
    assert again["config"]["sink"]["recorded"] == 6


def test_without_the_records_the_sink_checks_are_unknown_naming_where_it_looked(fixed_run, capsys, tmp_path):
    moved = tmp_path / "elsewhere" / "run.json"  # the report alone, moved elsewhere
    moved.parent.mkdir()
    shutil.copyfile(fixed_run / "mailer.json", moved)
    looked = [moved.with_name("run.sink.jsonl"), kept_files(fixed_run)[1]]
    with set_aside(kept_files(fixed_run), tmp_path / "aside"):
        code, said = verify(capsys, moved)
        given_code, given_said = verify(capsys, moved, "--sink-records", tmp_path / "typo.jsonl")
    assert code == EXIT_INCONCLUSIVE, said
    assert "the run's sink records were not found" in said and all(str(p) in said for p in looked), said
    assert given_code == EXIT_INCONCLUSIVE and str(tmp_path / "typo.jsonl") in given_said, given_said


def test_records_beside_a_moved_report_are_found_by_its_stem(fixed_run, capsys, tmp_path):
    shutil.copyfile(fixed_run / "mailer.json", tmp_path / "archived.json")
    shutil.copyfile(fixed_run / "mailer.sink.jsonl", tmp_path / "archived.sink.jsonl")
    with set_aside(kept_files(fixed_run), tmp_path / "aside"):  # only the copy beside the moved report is left
        code, said = verify(capsys, tmp_path / "archived.json")
    assert code == EXIT_OK, said


def test_a_report_moved_alone_reads_the_records_where_the_run_wrote_them(fixed_run, capsys, tmp_path):
    shutil.copyfile(fixed_run / "mailer.json", tmp_path / "alone.json")  # no alone.sink.jsonl beside it
    code, said = verify(capsys, tmp_path / "alone.json", "--report-dir", tmp_path / "out")
    assert code == EXIT_OK, said
    again = json.loads((tmp_path / "out" / "mailer-reverified.json").read_text())
    assert again["config"]["sink"]["records"] == str(kept_files(fixed_run)[1])  # read where the run wrote them


@pytest.mark.parametrize("run, expected", [("vulnerable_run", EXIT_INVALID), ("fixed_run", EXIT_OK)])
def test_sink_records_given_on_the_command_line_are_read(run, expected, request, tmp_path):
    reports = request.getfixturevalue(run)
    shutil.copyfile(reports / "mailer.json", tmp_path / "report.json")
    copy = tmp_path / "kept" / "what-the-sink-saw.jsonl"
    copy.parent.mkdir()
    shutil.copyfile(reports / "mailer.sink.jsonl", copy)
    with set_aside(kept_files(reports), tmp_path / "aside"):  # found through --sink-records alone
        result = subprocess.run([sys.executable, "-m", "harness", "verify", str(tmp_path / "report.json"),
                                 "--sink-records", str(copy)], capture_output=True, text=True, timeout=120,
                                env={k: v for k, v in os.environ.items() if not k.startswith("MAILER_")})
    assert result.returncode == expected, result.stdout + result.stderr
    if expected == EXIT_INVALID:
        assert "duplicate 'receipt e-mail' side effects" in result.stdout


def test_sink_records_for_a_run_without_a_sink_are_one_line_and_exit_4(capsys, tmp_path):
    assert main(["run", "--mode", "atomic", "--payments", "2", "--duplicates", "2", "--quiet", "--targets",
                 "exactly-once", "--report-dir", str(tmp_path), "--label", "plain"]) == EXIT_OK
    code, said = verify(capsys, tmp_path / "plain.json", "--sink-records", tmp_path / "x.jsonl")
    assert code == EXIT_USAGE and "read no side effects from a sink" in said, said
