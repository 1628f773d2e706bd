"""``race-harness audit``: an existing receipts directory judged per payment key, with no run behind it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import harness.observe.files as observe_module
from harness.cli.common import Parser
from harness.audit import audit_directory, parse_rule
from harness.cli.audit import register as add_audit_parser
from harness.observe.files import scan_receipts
from reference_service.receipts import render_receipt

# Real processes, nested pytest or Locust runs: `pytest -m 'not slow'` leaves these out.
pytestmark = pytest.mark.slow


def _receipt(directory: Path, mtid: str, amount: int = 49_900, stamp: int = 1_700_000_000_000,
             name: str | None = None) -> Path:
    path = directory / (name or f"receipt-{mtid}-{stamp}.pdf")
    path.write_bytes(render_receipt({"merchantTransactionId": mtid, "amount": amount, "_id": f"c-{mtid}"}))
    return path


def _audit_cli(*argv: str) -> int:
    parser = Parser(prog="race-harness")
    add_audit_parser(parser.add_subparsers(dest="command", required=True, parser_class=Parser))
    args = parser.parse_args(["audit", *argv])
    return args.func(args)


def _group(report: dict, key: str) -> dict:
    return next(g for g in report["keys"] if g["key"] == key)


def test_duplicate_receipts_are_found_and_named_under_their_payment_key(tmp_path):
    first, second = _receipt(tmp_path, "MT1", stamp=1), _receipt(tmp_path, "MT1", stamp=2)
    _receipt(tmp_path, "MT2")
    report = audit_directory(tmp_path)
    assert report["kind"] == "race-harness-audit" and report["exit_code"] == 1
    assert _group(report, "MT1")["receipts"] == [first.name, second.name]
    assert [g["key"] for g in report["keys"]] == ["MT1"]  # a key with one receipt is only counted
    assert report["counts"]["keys"] == 2 and report["counts"]["duplicate_keys"] == 1


def test_duplicates_printing_different_amounts_are_flagged_and_same_amounts_are_not(tmp_path):
    _receipt(tmp_path, "MT1", 49_900, stamp=1), _receipt(tmp_path, "MT1", 59_900, stamp=2)
    _receipt(tmp_path, "MT2", 49_900, stamp=1), _receipt(tmp_path, "MT2", 49_900, stamp=2)
    report = audit_directory(tmp_path)
    assert _group(report, "MT1")["amounts_disagree"] is True
    assert _group(report, "MT2")["amounts_disagree"] is False


def test_unreadable_and_temporary_files_are_reported_by_name_and_under_their_key(tmp_path):
    _receipt(tmp_path, "MT1")
    whole = _receipt(tmp_path, "MT2").read_bytes()
    (tmp_path / "receipt-MT2-1700000000000.pdf").write_bytes(whole[: len(whole) // 3])  # cut short
    (tmp_path / ".receipt-MT3-1700000000000.pdf.tmp").write_bytes(whole)
    report = audit_directory(tmp_path)
    assert [u["file"] for u in report["unreadable"]] == ["receipt-MT2-1700000000000.pdf"]
    assert report["temporary"] == [".receipt-MT3-1700000000000.pdf.tmp"]
    assert _group(report, "MT2")["unreadable"] == ["receipt-MT2-1700000000000.pdf"]  # keyed by its name
    assert report["exit_code"] == 1


def test_a_directory_with_one_readable_receipt_per_payment_exits_0(tmp_path, capsys):
    for mtid in ("MT1", "MT2", "MT3"):
        _receipt(tmp_path, mtid)
    assert _audit_cli(str(tmp_path), "--report-dir", str(tmp_path / "reports"), "--quiet") == 0
    assert capsys.readouterr().out.startswith("VALID: 3 receipt(s) for 3 key(s)")


@pytest.mark.parametrize("argv, named", [(["--key", "text:(unclosed"], "text:(unclosed"),
                                         (["--key", "colour:x"], "colour:x")])
def test_a_key_rule_that_does_not_parse_exits_4_with_one_line_naming_it(tmp_path, capsys, argv, named):
    _receipt(tmp_path, "MT1")
    assert _audit_cli(str(tmp_path), *argv, "--report-dir", str(tmp_path / "r")) == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and named in err[0]


def test_a_missing_directory_exits_4_with_one_line_naming_it(tmp_path, capsys):
    missing = tmp_path / "no-such-receipts"
    assert _audit_cli(str(missing), "--report-dir", str(tmp_path / "r")) == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(missing) in err[0]


def test_a_key_rule_that_finds_no_key_in_any_receipt_exits_4(tmp_path, capsys):
    _receipt(tmp_path, "MT1")
    assert _audit_cli(str(tmp_path), "--key", r"name:^invoice-(\d+)", "--report-dir", str(tmp_path / "r")) == 4
    assert "invoice" in capsys.readouterr().err


def test_the_parallel_reader_reads_exactly_what_the_serial_reader_reads(tmp_path, monkeypatch):
    for i in range(12):
        _receipt(tmp_path, f"MT{i % 9}", 49_900 + i, stamp=i)
    (tmp_path / "receipt-MT0-99.pdf").write_bytes(b"%PDF-1.3 not really")
    (tmp_path / ".receipt-MT1-5.pdf.tmp").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("stray")
    (tmp_path / "subdir").mkdir()
    monkeypatch.setattr(observe_module, "POOL_MIN_FILES", 1)  # a pool even for this small directory
    monkeypatch.setattr(observe_module, "POOL_CHUNK", 4)  # several chunks, reassembled in order
    for text in (True, False):
        assert scan_receipts(tmp_path, workers=2, text=text) == scan_receipts(tmp_path, workers=1, text=text)


def test_receipts_are_grouped_by_a_name_rule(tmp_path):
    # Subjects differ, so only the rule on the name can group them.
    _receipt(tmp_path, "A1", name="order-77-a.pdf"), _receipt(tmp_path, "A2", name="order-77-b.pdf")
    _receipt(tmp_path, "A3", name="order-78-a.pdf")
    report = audit_directory(tmp_path, [parse_rule(r"name:^order-(?P<key>\d+)-")])
    assert _group(report, "77")["receipts"] == ["order-77-a.pdf", "order-77-b.pdf"]
    assert report["counts"]["keys"] == 2


def test_receipts_are_grouped_by_a_text_rule(tmp_path):
    # Names and subjects say nothing in common; the page text names the charge both receipts are for.
    _receipt(tmp_path, "MT9", name="a.pdf"), _receipt(tmp_path, "MT9", name="b.pdf"), _receipt(tmp_path, "MT8")
    report = audit_directory(tmp_path, [parse_rule(r"text:Charge id: (\S+)")])
    assert _group(report, "c-MT9")["receipts"] == ["a.pdf", "b.pdf"]


def test_receipts_no_rule_keys_are_listed_as_keyless(tmp_path):
    _receipt(tmp_path, "MT1"), _receipt(tmp_path, "MT2", name="scan.pdf")
    report = audit_directory(tmp_path, [parse_rule(r"name:^receipt-(\w+)-")])
    assert report["keyless"] == ["scan.pdf"]


def test_the_report_files_are_written_with_a_planted_secret_masked(tmp_path):
    receipts = tmp_path / "password=hunter2" / "receipts"  # a path that carries a credential
    receipts.mkdir(parents=True)
    _receipt(receipts, "MT1", stamp=1), _receipt(receipts, "MT1", stamp=2)
    assert _audit_cli(str(receipts), "--report-dir", str(tmp_path / "out"), "--label", "prod", "--quiet") == 1
    paths = {ext: tmp_path / "out" / f"prod.{ext}" for ext in ("json", "md", "html")}
    assert json.loads(paths["json"].read_text())["kind"] == "race-harness-audit"
    for path in paths.values():
        text = path.read_text()
        assert "MT1" in text and "hunter2" not in text
