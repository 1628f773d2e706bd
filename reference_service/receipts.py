"""Real PDF receipts on disk, named and placed so no input can escape the receipts directory."""

from __future__ import annotations

import contextlib
import os
import re
import time
from pathlib import Path

from fpdf import FPDF

# PhonePe allows letters, digits, '_' and '-' in a merchantTransactionId (at most 35 of them);
# anything else never reaches a file name.
_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class UnsafeName(ValueError):
    """An id that cannot be used in a receipt's file name."""


def is_safe_id(value: str) -> bool:
    return bool(_SAFE_ID.match(value))


def receipt_path(receipts_dir: Path, merchant_transaction_id: str, unix_ms: int | None = None) -> Path:
    """``<dir>/receipt-<merchantTransactionId>-<unix ms>.pdf``, checked to stay inside ``dir``."""
    if not is_safe_id(merchant_transaction_id):
        raise UnsafeName(f"unsafe transaction id {merchant_transaction_id!r}")
    stamp = int(time.time() * 1000) if unix_ms is None else unix_ms
    root = receipts_dir.resolve()
    path = (root / f"receipt-{merchant_transaction_id}-{stamp}.pdf").resolve()
    if path.parent != root:
        raise UnsafeName(f"receipt path {path} escapes {root}")
    return path


def render_receipt(charge: dict) -> bytes:
    """One-page receipt; metadata Subject is the merchantTransactionId so files can be grouped by content."""
    mtid = charge["merchantTransactionId"]
    amount = int(charge["amount"])
    pdf = FPDF()
    pdf.set_title(f"Service charge receipt {mtid}")
    pdf.set_subject(mtid)
    pdf.set_keywords(f"amount={amount}")
    pdf.set_creator("race-harness reference_service")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 10, "Service Charge Receipt", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=11)
    lines = [
        f"Merchant transaction: {mtid}",
        f"PhonePe transaction: {charge.get('transactionId') or '-'}",
        f"Vendor: {_printable(charge.get('vendorName', ''))}",
        f"Exhibition: {_printable(charge.get('exhibitionId', ''))}",
        f"Amount: INR {amount // 100}.{amount % 100:02d} ({amount} paise)",
        f"Charge id: {charge['_id']}",
        f"Issued: {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC",
    ]
    for line in lines:
        pdf.cell(0, 8, line, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def _printable(value: str) -> str:
    # Core PDF fonts are latin-1 only; anything else is shown as '?' rather than failing the receipt.
    return str(value).encode("latin-1", "replace").decode("latin-1")[:120]


def write_receipt(receipts_dir: Path, charge: dict) -> Path:
    """Render and write a receipt the way the seed's backend does: a plain write, overwriting."""
    path = receipt_path(receipts_dir, charge["merchantTransactionId"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(render_receipt(charge))
    return path


def temp_path_for(final: Path) -> Path:
    """Where a receipt is written before it is renamed into place (hidden, same directory)."""
    return final.with_name(f".{final.name}.tmp")


def write_temp_receipt(receipts_dir: Path, charge: dict) -> Path:
    """Render a receipt to its temporary name and fsync it; returns the *final* path it is meant for."""
    final = receipt_path(receipts_dir, charge["merchantTransactionId"])
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_path_for(final)
    with open(temp, "wb") as fh:
        fh.write(render_receipt(charge))
        fh.flush()
        os.fsync(fh.fileno())
    return final


def publish_receipt(final: Path) -> None:
    """Rename the temporary file into place: atomic, so a reader sees no receipt or a whole one.

    Idempotent: the owner and a delivery repairing an interrupted completion may both try; whoever
    comes second finds the receipt already in place.
    """
    try:
        os.replace(temp_path_for(final), final)
    except FileNotFoundError:
        if not final.exists():
            raise


def stale_temp_receipts(receipts_dir: Path, older_than_s: float) -> list[Path]:
    """Temporary receipts nobody finished: left by an owner that died between writing and completing."""
    cutoff = time.time() - older_than_s
    return [p for p in receipts_dir.glob(".receipt-*.pdf.tmp") if p.stat().st_mtime < cutoff]


def discard_receipt(final: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        temp_path_for(final).unlink()
