"""Read back what the service left behind: receipt files on disk and each payment's state.

What is read is kept as it was found (a PDF's metadata and page text, a state document's fields);
deciding which payment a receipt belongs to, and whether its content is right, is the oracle's job.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

import httpx

from .target import Payment, Target

# Kinds of things that could not be read; checkers decide by kind, never by message text.
RECEIPTS_DIR = "receipts-dir"  # the directory as a whole: every receipt check is unknown
RECEIPT_VANISHED = "receipt-vanished"  # one file went away between listing and reading: only it is affected
STATE = "state"  # the state of payments could not be read


@dataclass
class Problem:
    """Something the observation could not read, by kind (``RECEIPTS_DIR``, ``RECEIPT_VANISHED``, ``STATE``)."""

    kind: str
    message: str
    file: str | None = None

    def __str__(self) -> str:
        return self.message


@dataclass
class ReceiptFile:
    name: str
    size: int
    readable: bool = False
    subject: str | None = None  # the PDF's metadata Subject (the reference service puts the transaction id there)
    title: str | None = None  # the PDF's metadata Title
    text: str = ""  # the first page's text, as extracted
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
    problems: list[Problem] = field(default_factory=list)  # what could not be read, by kind

    @property
    def errors(self) -> list[str]:
        """The problems as sentences (for reports)."""
        return [p.message for p in self.problems]

    def problems_of(self, kind: str) -> list[Problem]:
        return [p for p in self.problems if p.kind == kind]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_receipt(path: Path) -> ReceiptFile:
    """Open one file as a PDF and read its metadata and first page's text.

    Raises ``FileNotFoundError`` when the file is gone (it vanished after the directory was listed).
    """
    from pypdf import PdfReader

    receipt = ReceiptFile(name=path.name, size=path.stat().st_size)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise  # the caller reports a vanished file; any other OSError makes this one file unreadable
    except OSError as exc:
        receipt.error = f"cannot read: {exc.__class__.__name__}: {exc}"[:300]
        return receipt
    try:
        reader = PdfReader(io.BytesIO(data))
        meta = reader.metadata
        receipt.subject = (meta.subject if meta else None) or None
        receipt.title = (meta.title if meta else None) or None
        text = reader.pages[0].extract_text() if reader.pages else ""
    except Exception as exc:  # pypdf raises many kinds on damaged files; any of them means unreadable
        receipt.error = f"unreadable PDF: {exc.__class__.__name__}: {exc}"[:300]
        return receipt
    receipt.readable = True
    receipt.text = text or ""
    return receipt


def scan_receipts(directory: str | Path, *, passes: int = 3) -> tuple[list[ReceiptFile], list[Problem]]:
    """Every regular file in the receipts directory, PDFs or not (stray files are evidence too).

    A file that vanishes between listing and reading (a temporary file renamed into place, a receipt
    deleted) affects only itself: the directory is listed again after reading, up to ``passes``
    times, until a listing holds nothing unread, so a file that took its place is read too. Files
    gone from the last listing are reported one problem each. Raises ``OSError`` when the directory
    itself cannot be listed.
    """
    root = Path(directory)
    read: dict[str, ReceiptFile] = {}
    skipped: set[str] = set()  # not regular files, or vanished before they could be read
    listing = {p.name for p in root.iterdir()}
    for _ in range(passes):
        for name in sorted(listing - set(read) - skipped):
            path = root / name
            try:
                if path.is_file():
                    read[name] = read_receipt(path)
                else:
                    skipped.add(name)
            except FileNotFoundError:
                skipped.add(name)
        listing = {p.name for p in root.iterdir()}
        if not listing - set(read) - skipped:
            break
    receipts = [read[name] for name in sorted(read) if name in listing]
    gone = sorted((set(read) | {n for n in skipped if not (root / n).exists()}) - listing)
    problems = [Problem(RECEIPT_VANISHED, f"receipt {name} vanished while the directory was read", name)
                for name in gone]
    return receipts, problems


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
        obs.problems.append(Problem(RECEIPTS_DIR, "no receipts directory given: receipts on disk were not read"))
    else:
        try:
            obs.receipts, vanished = scan_receipts(target.receipts_dir)
            obs.problems += vanished
        except OSError as exc:
            obs.problems.append(Problem(RECEIPTS_DIR, f"cannot read receipts directory {target.receipts_dir}: {exc}"))
    try:
        if target.mongo_uri:
            obs.state, obs.state_source = read_state_mongo(target, payments), "mongodb"
        else:
            obs.state, obs.state_source = read_state_http(target, payments, client), "http"
    except Exception as exc:  # any failure to read state makes the state checks unknown, never a pass
        obs.problems.append(Problem(STATE, f"cannot read state: {exc.__class__.__name__}: {exc}"))
    return obs
