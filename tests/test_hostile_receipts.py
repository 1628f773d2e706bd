"""Hostile receipts directories (issue 25, items 3 and 4): every read is bounded, nothing odd vanishes.

A file over the size limit is not read, a Flate bomb stops at the inflation limit, and an entry
that is not a regular file (a FIFO, a dangling symlink, a symlink loop, a directory) is never opened
and is reported, in ``audit`` and in a run's ``scan_receipts``, so neither is VALID with one.
"""

from __future__ import annotations

import os
import time
import zlib
from pathlib import Path

import pypdf
import pytest

from harness.audit import audit_directory
from harness.history import Event, History
from harness.observe import files
from harness.observe.files import read_receipt, scan_receipts
from harness.observe.observation import Observation
from harness.oracle import UNREADABLE, Evidence, PlannedPayment, receipt_files
from harness.profile.payments import Payment
from reference_service.receipts import render_receipt

ODD_KINDS = ("fifo", "dangling symlink", "symlink loop", "directory")


def _receipt(directory: Path, mtid: str, stamp: int = 1) -> Path:
    path = directory / f"receipt-{mtid}-{stamp}.pdf"
    path.write_bytes(render_receipt({"merchantTransactionId": mtid, "amount": 49_900, "_id": f"c-{mtid}"}))
    return path


def _odd(directory: Path, kind: str, name: str = "receipt-x.pdf") -> Path:
    path = directory / name
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dangling symlink":
        path.symlink_to(directory / "nowhere.pdf")
    elif kind == "symlink loop":
        path.symlink_to(path.name)
    else:
        path.mkdir()
    return path


def _deflated_zeros(inflated: int, chunk: int = 1 << 20) -> bytes:
    """A zlib stream of ``inflated`` zero bytes, built in a second: after a full flush the compressor starts
    afresh, so every further chunk of zeros compresses to the same bytes, which are repeated."""
    compressor, zeros = zlib.compressobj(9, zlib.DEFLATED, -15), bytes(chunk)
    first = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    again = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    assert again == compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    adler = 1
    for _ in range(inflated // chunk):
        adler = zlib.adler32(zeros, adler)
    return b"\x78\xda" + first + again * (inflated // chunk - 1) + compressor.flush() + adler.to_bytes(4, "big")


def test_the_bomb_is_a_real_zlib_stream_of_zeros():  # the helper the bomb test relies on, checked small
    assert zlib.decompress(_deflated_zeros(8 << 20)) == bytes(8 << 20)


def _flate_bomb(path: Path, inflated: int = 1 << 30) -> None:
    """A one-page PDF of about 1 MB whose content stream inflates to ``inflated`` zero bytes."""
    stream = _deflated_zeros(inflated)
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
               b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream" % (len(stream), stream),
               b"<< /Subject (MTBOMB) /Title (Receipt) >>"]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 5 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    path.write_bytes(bytes(out))


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bomb") / "receipt-MTBOMB-1.pdf"
    _flate_bomb(path)
    return path


def test_a_sparse_file_over_the_size_limit_is_too_large_and_never_read(tmp_path, monkeypatch):
    limit = 4096
    with open(tmp_path / "receipt-big-1.pdf", "wb") as f:
        f.truncate(limit + 1)
    monkeypatch.setattr(files, "MAX_RECEIPT_BYTES", limit, raising=False)  # the documented limit, made small

    def never(*args, **kwargs):
        raise AssertionError("a file over the limit was read")

    monkeypatch.setattr(Path, "read_bytes", never)
    monkeypatch.setattr(pypdf, "PdfReader", never)
    monkeypatch.setattr(files, "read_simple_pdf", never)
    receipts, _ = scan_receipts(tmp_path, workers=1)
    assert [(r.name, r.readable, r.error) for r in receipts] == [
        ("receipt-big-1.pdf", False, f"too large to read ({limit + 1} bytes > {limit})")]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("text", [True, False], ids=["with text (a run)", "metadata only (an audit)"])
def test_a_flate_bomb_is_unreadable_with_a_clear_error_in_bounded_time(bomb, text):
    started = time.monotonic()
    receipt = read_receipt(bomb, text=text)
    elapsed = time.monotonic() - started
    assert not receipt.readable
    assert "inflates past" in (receipt.error or "") and "Flate bomb" in receipt.error, receipt.error
    assert elapsed < 20, f"{elapsed:.1f} s"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", ODD_KINDS)
def test_an_odd_entry_named_like_a_receipt_is_an_unreadable_one_in_a_runs_scan(tmp_path, kind):
    _receipt(tmp_path, "MT1")
    _odd(tmp_path, kind, "receipt-MT1-2.pdf")
    receipts, problems = scan_receipts(tmp_path)
    odd = {r.name: r for r in receipts if not r.readable}
    assert list(odd) == ["receipt-MT1-2.pdf"] and not problems
    assert odd["receipt-MT1-2.pdf"].odd and "odd entry" in odd["receipt-MT1-2.pdf"].error
    # The run judges what it scanned: never VALID with it.
    answer = Event(0, "p1", "callback", t_release=0.0, t_response=0.1, status=200,
                   body={"receipt": "generated"}, outcome="generated")
    evidence = Evidence([PlannedPayment(Payment("p1", "MT1", 49_900), True)], History(events=[answer]),
                        Observation(receipts=receipts, receipts_dir=str(tmp_path)))
    result = receipt_files(evidence)
    assert result.valid is False
    assert [(v.kind, v.files) for v in result.violations] == [(UNREADABLE, ["receipt-MT1-2.pdf"])]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", ODD_KINDS)
def test_an_odd_entry_is_counted_apart_and_fails_the_audit(tmp_path, kind):
    _receipt(tmp_path, "MT1")
    _odd(tmp_path, kind)
    report = audit_directory(tmp_path, workers=1)
    assert report["exit_code"] == 1 and report["summary"].startswith("INVALID")
    assert report["counts"]["odd_entries"] == 1 and report["counts"]["files"] == 2
    [entry] = report["odd_entries"]
    assert entry["file"] == "receipt-x.pdf" and entry["what"].startswith(
        {"fifo": "a FIFO", "dangling symlink": "a dangling symlink", "symlink loop": "a symlink loop",
         "directory": "a directory"}[kind])


@pytest.mark.timeout(60)
def test_the_reading_pool_reports_odd_entries_and_applies_the_size_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "POOL_MIN_FILES", 2)
    monkeypatch.setattr(files, "POOL_CHUNK", 2)
    _receipt(tmp_path, "MT1")
    for kind in ODD_KINDS:
        _odd(tmp_path, kind, f"receipt-{kind.replace(' ', '_')}.pdf")
    with open(tmp_path / "receipt-big-1.pdf", "wb") as f:
        f.truncate(1 << 30)  # sparse: nothing on disk, a gigabyte to whoever reads it
    started = time.monotonic()
    report = audit_directory(tmp_path, workers=2, max_bytes=1 << 20)
    assert time.monotonic() - started < 20
    assert report["counts"]["odd_entries"] == len(ODD_KINDS) and report["counts"]["receipts"] == 1
    assert report["unreadable"] == [{"file": "receipt-big-1.pdf",
                                     "error": f"too large to read ({1 << 30} bytes > {1 << 20})"}]
    assert report["exit_code"] == 1


def test_a_plain_subdirectory_of_the_receipts_directory_is_passed_over_not_a_finding(tmp_path):
    from harness.observe.files import scan_receipts

    (tmp_path / "lost+found").mkdir()
    (tmp_path / "archive").mkdir()
    receipts, problems = scan_receipts(tmp_path)
    assert receipts == [] and problems == []


@pytest.mark.timeout(30)
def test_a_long_run_of_joined_parts_is_searched_for_transaction_ids_without_blowing_up():
    # A sink call's body may be a base64url blob; every pair of cuts in one run was cubic (40 KB took 2.4 s).
    from harness.observe.content import transactions_named

    text = "a-" * 200_000 + "receipt-MT1-1700000000 MT10"
    assert transactions_named(text, {"MT1", "MT10", "a-a"}) == {"MT1", "MT10", "a-a"}
