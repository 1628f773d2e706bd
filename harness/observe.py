"""Read back what the service left behind: receipt files on disk and each payment's state."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

import httpx

from .target import Payment, Target

_TRANSACTION = re.compile(r"Merchant transaction:\s*([A-Za-z0-9_-]+)")
_AMOUNT = re.compile(r"\((\d+) paise\)")


@dataclass
class ReceiptFile:
    name: str
    size: int
    readable: bool = False
    subject: str | None = None  # the PDF's metadata Subject: the payment's merchantTransactionId
    text_transaction: str | None = None  # the transaction id printed on the page
    amount: int | None = None  # the amount printed on the page, in paise
    error: str | None = None

    @property
    def is_final(self) -> bool:
        """A finished receipt's name: a temporary or partial file is a file conflict."""
        return self.name.endswith(".pdf") and not self.name.startswith(".")


@dataclass
class Observation:
    receipts: list[ReceiptFile] = field(default_factory=list)
    receipts_dir: str | None = None
    state: dict[str, dict | None] = field(default_factory=dict)  # payment id -> normalised state
    state_source: str = "none"  # "http", "mongodb" or "none"
    errors: list[str] = field(default_factory=list)  # what could not be read (makes checkers unknown)

    def receipts_by_transaction(self) -> dict[str, list[ReceiptFile]]:
        grouped: dict[str, list[ReceiptFile]] = {}
        for receipt in self.receipts:
            if receipt.subject:
                grouped.setdefault(receipt.subject, []).append(receipt)
        return grouped

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_receipt(path: Path) -> ReceiptFile:
    """Open one file as a PDF and read its metadata and first page's text."""
    from pypdf import PdfReader

    receipt = ReceiptFile(name=path.name, size=path.stat().st_size)
    try:
        reader = PdfReader(path)
        meta = reader.metadata
        receipt.subject = (meta.subject if meta else None) or None
        text = reader.pages[0].extract_text() if reader.pages else ""
    except Exception as exc:  # pypdf raises many kinds on damaged files; any of them means unreadable
        receipt.error = f"unreadable PDF: {exc.__class__.__name__}: {exc}"[:300]
        return receipt
    receipt.readable = True
    if match := _TRANSACTION.search(text):
        receipt.text_transaction = match.group(1)
    if match := _AMOUNT.search(text):
        receipt.amount = int(match.group(1))
    return receipt


def scan_receipts(directory: str | Path) -> list[ReceiptFile]:
    """Every regular file in the receipts directory, PDFs or not (stray files are evidence too)."""
    root = Path(directory)
    return [read_receipt(p) for p in sorted(root.iterdir()) if p.is_file()]


def normalise_state(doc: dict | None) -> dict | None:
    if doc is None:
        return None
    return {
        "paymentStatus": doc.get("paymentStatus"),
        "receiptGenerated": bool(doc.get("receiptGenerated")),
        "receiptPath": doc.get("receiptPath"),
    }


def read_state_http(target: Target, payments: Iterable[Payment], client: httpx.Client) -> dict[str, dict | None]:
    """Each payment's state through the service's own state endpoint."""
    state: dict[str, dict | None] = {}
    for payment in payments:
        response = client.get(target.url(target.state_path, payment))
        if response.status_code == 404:
            state[payment.id] = None
            continue
        response.raise_for_status()
        state[payment.id] = normalise_state(response.json())
    return state


def read_state_mongo(target: Target, payments: Iterable[Payment], *, timeout_ms: int = 5000) -> dict[str, dict | None]:
    """Each payment's state straight from the database, not through the service."""
    import pymongo

    payments = list(payments)
    client: pymongo.MongoClient = pymongo.MongoClient(target.mongo_uri, serverSelectionTimeoutMS=timeout_ms)
    try:
        collection = client[target.mongo_database][target.mongo_collection]
        ids = [p.id for p in payments]
        docs = {str(d["_id"]): d for d in collection.find({"_id": {"$in": ids}})}
        return {p.id: normalise_state(docs.get(p.id)) for p in payments}
    finally:
        client.close()


def observe(target: Target, payments: list[Payment], client: httpx.Client) -> Observation:
    """Receipts from ``target.receipts_dir`` and state from MongoDB (if given) or the service."""
    obs = Observation(receipts_dir=target.receipts_dir)
    if target.receipts_dir is None:
        obs.errors.append("no receipts directory given: receipts on disk were not read")
    else:
        try:
            obs.receipts = scan_receipts(target.receipts_dir)
        except OSError as exc:
            obs.errors.append(f"cannot read receipts directory {target.receipts_dir}: {exc}")
    try:
        if target.mongo_uri:
            obs.state, obs.state_source = read_state_mongo(target, payments), "mongodb"
        else:
            obs.state, obs.state_source = read_state_http(target, payments, client), "http"
    except Exception as exc:  # any failure to read state makes the state checks unknown, never a pass
        obs.errors.append(f"cannot read state: {exc.__class__.__name__}: {exc}")
    return obs
