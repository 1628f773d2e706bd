"""The fast reader for simple PDFs (``harness/pdf_fast.py``) agrees with pypdf, or leaves the file to it."""

from __future__ import annotations

import io
import random
import re
import sys
import zlib
from pathlib import Path

import pytest
from fpdf import FPDF
from pypdf import PdfReader

from harness.audit import audit_directory
from harness.observe.files import read_receipt, read_receipts
from harness.observe.pdf import read_simple_pdf
from reference_service.receipts import render_receipt


def _pypdf(data: bytes) -> tuple[str | None, str | None]:
    """Subject and Title as ``read_receipt`` has always read them (raises on an unreadable file)."""
    reader = PdfReader(io.BytesIO(data))
    meta = reader.metadata
    if reader.pages and (contents := reader.pages[0].get_contents()) is not None:
        contents.get_data()
    return (meta.subject if meta else None) or None, (meta.title if meta else None) or None


def _fpdf(title: str, subject: str, *, compress: bool = True) -> bytes:
    pdf = FPDF()
    pdf.set_compression(compress)
    pdf.set_title(title)
    pdf.set_subject(subject)
    pdf.add_page()
    pdf.set_font("Helvetica", size=11)
    pdf.cell(0, 8, "Amount: INR 499.00 (49900 paise)")
    return bytes(pdf.output())


def _reference(mtid: str, amount: int = 49_900) -> bytes:
    return render_receipt({"merchantTransactionId": mtid, "amount": amount, "_id": f"c-{mtid}",
                           "vendorName": "Vendor", "exhibitionId": "EX1"})


def _with_info(data: bytes, entries: bytes) -> bytes:
    """The PDF with its Info dictionary's body replaced (the Info object is fpdf2's last: only
    startxref moves)."""
    num = int(re.search(rb"/Info (\d+) 0 R", data).group(1))
    head = re.search(rb"\n%d 0 obj\n<<\n" % num, data)
    end = data.index(b">>\nendobj", head.end())
    out = data[:head.end()] + entries + b"\n" + data[end:]
    delta = len(out) - len(data)
    tail = re.search(rb"startxref\n(\d+)\n%%EOF\n?$", out)
    return out[:tail.start(1)] + str(int(tail.group(1)) + delta).encode() + out[tail.end(1):]


SIMPLE = {
    "reference MT0000001": _reference("MT0000001"),
    "reference with dashes": _reference("MT-2024-07_x", 12_345),
    "non-ASCII title": _fpdf("Reçu №5 — ₹499", "MT5"),
    "CJK title": _fpdf("日本語 receipt", "MT6"),
    "parentheses and backslashes in the subject": _fpdf("Receipt", "MT(1)\\x a)b(c\\\\d"),
    "tab and latin-1 in the subject": _fpdf("café", "tab\there é"),
    "uncompressed content stream": _fpdf("Receipt MT7", "MT7", compress=False),
    "octal escapes and nested parentheses": _with_info(_reference("MT8"),
                                                       b"/Subject (M\\124\\0618 \\(x\\) (nested) )\n/Title (T\\ni)"),
    "hex strings without a byte order mark": _with_info(_reference("MT9"), b"/Subject <4D5439>\n/Title <4D54 39 3>"),
    "empty title": _with_info(_reference("MT10"), b"/Subject (MT10)\n/Title ()"),
    "no title": _with_info(_reference("MT11"), b"/Subject (MT11)"),
}


@pytest.mark.parametrize("data", SIMPLE.values(), ids=SIMPLE.keys())
def test_simple_pdfs_are_read_without_pypdf_and_give_what_pypdf_gives(data, tmp_path):
    fast = read_simple_pdf(data)
    assert fast is not None, "the fast reader should handle this file itself"
    assert fast == _pypdf(data)
    path = tmp_path / "receipt.pdf"
    path.write_bytes(data)
    assert read_receipt(path, text=False) == read_receipt(path, text=False, fast=False)
    assert read_receipt(path, text=False).readable


def _corrupt_stream(data: bytes) -> bytes:
    """The content stream's compressed bytes changed in the middle (same length)."""
    start = data.index(b"stream\n") + len(b"stream\n")
    middle = start + 40
    return data[:middle] + bytes(b ^ 0x5A for b in data[middle:middle + 12]) + data[middle + 12:]


def _stream_truncated_inside(data: bytes) -> bytes:
    """A complete-looking file whose Flate data stops early (Length still matches)."""
    start = data.index(b"stream\n") + len(b"stream\n")
    end = data.index(b"\nendstream", start)
    short = zlib.compress(zlib.decompress(data[start:end]))[:-20]
    padded = short + b" " * (end - start - len(short))
    return data[:start] + padded + data[end:]


REF = _reference("MT0000042")
PROBLEMS = {
    "truncated to a third": REF[: len(REF) // 3],
    "truncated before %%EOF": REF[:-8],
    "corrupted content stream": _corrupt_stream(REF),
    "content stream cut short inside": _stream_truncated_inside(REF),
    "contents name a missing object": REF.replace(b"/Contents 4 0 R", b"/Contents 9 0 R"),
    "first page is not a page": REF.replace(b"/Type /Page\n", b"/Type /Pagx\n"),
    "shifted xref offsets": REF[:9] + b"%extra comment\n" + REF[9:],
    "incremental update": REF + b"1 0 obj\n<< /Type /Pages /Kids [3 0 R] /Count 1 >>\nendobj\nxref\n0 1\n"
                                b"0000000000 65535 f \ntrailer\n<< /Size 9 /Root 2 0 R /Info 8 0 R /Prev 1076 >>\n"
                                b"startxref\n1407\n%%EOF\n",
    "subject is a name": _with_info(REF, b"/Subject /MT1\n/Title (x)"),
    "subject is a reference": _with_info(REF, b"/Subject 4 0 R\n/Title (x)"),
    "subject not text in PDFDocEncoding": _with_info(REF, b"/Subject (\\237\\177)\n/Title (x)"),
    "a large array in the Info dictionary": _with_info(REF, b"/Subject (MT1)\n/Title (x)\n/Big [" + b"0 " * 20_000 + b"]"),
    "line continuation in a string": _with_info(REF, b"/Subject (MT\\\n1)\n/Title (x)"),
    "no Info dictionary": REF.replace(b"/Info 8 0 R\n", b""),
    "not a PDF": b"copied from production\n",
    "empty": b"",
    "a PDF header and nothing else": b"%PDF-1.3\n%%EOF\n",
}


@pytest.mark.parametrize("data", PROBLEMS.values(), ids=PROBLEMS.keys())
def test_anything_unusual_or_damaged_is_left_to_pypdf_and_read_as_pypdf_reads_it(data, tmp_path):
    fast = read_simple_pdf(data)
    try:
        expected: tuple | None = _pypdf(data)
    except Exception:  # pypdf calls it unreadable
        expected = None
    assert fast is None  # each of these is left to pypdf
    path = tmp_path / "receipt.pdf"
    path.write_bytes(data)
    with_fast, without = read_receipt(path, text=False), read_receipt(path, text=False, fast=False)
    assert with_fast == without
    assert with_fast.readable is (expected is not None)


def test_a_byte_changed_anywhere_never_makes_the_fast_reader_disagree_with_pypdf():
    # The fast reader never says "unreadable", and says "readable" only with pypdf's Subject and Title.
    rng = random.Random(7)
    answered = 0
    for position in sorted(rng.sample(range(len(REF)), 250)):
        for value in (rng.randrange(256), 0x20):
            data = REF[:position] + bytes([value]) + REF[position + 1:]
            fast = read_simple_pdf(data)
            if fast is None:
                continue
            answered += 1
            assert fast == _pypdf(data), (position, value)
    assert answered > 100  # most changes (in a font name, a date, the ID) leave a simple PDF simple


def test_damaged_files_are_unreadable_with_the_fast_reader(tmp_path):
    for name, data in (("cut.pdf", REF[: len(REF) // 3]), ("no-eof.pdf", REF[:-8]),
                       ("stray.pdf", b"copied from production\n"), ("empty.pdf", b"")):
        (tmp_path / name).write_bytes(data)
        assert read_simple_pdf(data) is None
    found = read_receipts(sorted(tmp_path.iterdir()), text=False, workers=1)
    assert [r.readable for r in found] == [False] * 4 and all(r.error for r in found)


def test_a_corrupted_content_stream_is_left_to_pypdf_which_decides(tmp_path):
    # pypdf recovers what it can of a damaged Flate stream (here: nothing) and calls the page readable;
    # the fast reader only accepts a stream that decompresses completely, so it answers nothing.
    data = _corrupt_stream(REF)
    assert read_simple_pdf(data) is None
    path = tmp_path / "corrupt.pdf"
    path.write_bytes(data)
    assert read_receipt(path, text=False) == read_receipt(path, text=False, fast=False)


def _corpus(directory: Path, n: int) -> None:
    """The benchmark's production-like corpus, plus a file of each kind that needs pypdf."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        from audit_scale import generate
    finally:
        sys.path.pop(0)
    generate(directory, n, seed=3)
    (directory / "receipt-MT9000001-1.pdf").write_bytes(_corrupt_stream(_reference("MT9000001")))
    (directory / "receipt-MT9000002-1.pdf").write_bytes(b"")
    (directory / "receipt-MT9000003-1.pdf").write_bytes(_reference("MT9000003")[:-8])
    (directory / "receipt-MT0000004-9.pdf").write_bytes(_reference("MT0000004", 59_900))  # a repriced duplicate
    (directory / ".receipt-MT0000005-9.pdf.tmp").write_bytes(_reference("MT0000005"))
    (directory / "odd.pdf").write_bytes(SIMPLE["octal escapes and nested parentheses"])
    (directory / "updated.pdf").write_bytes(PROBLEMS["incremental update"])


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_an_audit_reports_the_same_with_and_without_the_fast_reader(tmp_path, workers):
    _corpus(tmp_path, 420)  # above observe.POOL_MIN_FILES, so workers=2 reads in the pool
    fast = audit_directory(tmp_path, workers=workers)
    slow = audit_directory(tmp_path, workers=workers, fast=False)
    for report in (fast, slow):
        report.pop("created"), report.pop("elapsed_s")
    assert fast == slow
    counts = fast["counts"]
    assert counts["files"] == 428 and counts["unreadable"] >= 2 and counts["duplicate_keys"] >= 1
    assert {"receipt-MT9000002-1.pdf", "receipt-MT9000003-1.pdf"} <= {u["file"] for u in fast["unreadable"]}
