"""Read back what the service left behind: receipt files on disk and each payment's state.

What is read is kept as it was found (a PDF's metadata and page text, a state document's fields);
deciding which payment a receipt belongs to, and whether its content is right, is the oracle's job.
"""

from __future__ import annotations

import io
import logging
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import httpx

from .pdf_fast import read_simple_pdf
from .target import Payment, Target

# Kinds of things that could not be read; checkers decide by kind, never by message text.
RECEIPTS_DIR = "receipts-dir"  # the directory as a whole: every receipt check is unknown
RECEIPT_VANISHED = "receipt-vanished"  # one file went away between listing and reading: only it is affected
STATE = "state"  # the state of payments could not be read


REFERENCE_STATE_FIELDS = {"paid": "paymentStatus", "claim": "receiptGenerated", "effect": "receiptPath",
                          "effect_is": "name"}


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
    # What a profile's source and rules said of it (the reference service's receipts need none).
    kind: str = "receipt"  # the effect's name in reports
    source: str = "files"  # files, mongo or http
    keyed: bool = False  # a key rule was applied: ``key`` (even None) is what it extracted
    key: str | None = None
    joins: str = "transaction"  # what the key is: the transaction id, the payment id, or state.<field>
    amount: int | None = None  # paise, when an amount rule extracted one
    data: dict | None = None  # a row's fields, or a JSON file's (JSON-safe)
    # When it left, as wall-clock seconds on this machine, where that is known without extra work:
    # a sink record's own receipt time, a file's modification time; None for rows.
    at: float | None = None

    @property
    def is_final(self) -> bool:
        """A finished side effect: a temporary or partial file is a file conflict (rows are always final)."""
        if self.source != "files":
            return True
        if self.name.startswith(".") or self.name.endswith((".tmp", ".part", ".partial")):
            return False
        # A profile's rule chose these files by its glob: whatever their format, they are finished.
        return self.name.endswith(".pdf") or self.data is not None or self.keyed


@dataclass
class Observation:
    receipts: list[ReceiptFile] = field(default_factory=list)
    receipts_dir: str | None = None
    state: dict[str, dict | None] = field(default_factory=dict)  # payment id -> normalised state
    state_source: str = "none"  # "http", "mongodb" or "none"
    problems: list[Problem] = field(default_factory=list)  # what could not be read, by kind
    # What a profile described: where side effects were read, whether answers say what happened,
    # which state fields mean paid / claimed / the effect, and whether the wait for settling ended.
    effect_sources: list[str] = field(default_factory=list)
    effect_kinds: list[str] = field(default_factory=list)  # one of each per paid payment
    answers_described: bool = True
    state_fields: dict[str, str | None] = field(default_factory=lambda: dict(REFERENCE_STATE_FIELDS))
    settled: bool | None = None  # None: the profile does not ask to wait
    rule_misses: list[str] = field(default_factory=list)  # a profile's key rule that matched no effect read
    baseline: set[str] | None = None  # effect ids present before the run (a profile with assigned keys)

    @property
    def errors(self) -> list[str]:
        """The problems as sentences (for reports)."""
        return [p.message for p in self.problems]

    def problems_of(self, kind: str) -> list[Problem]:
        return [p for p in self.problems if p.kind == kind]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_receipt(path: Path, *, text: bool = True, fast: bool = True) -> ReceiptFile:
    """Open one file as a PDF and read its metadata and first page's text.

    With ``text=False`` the page is found and its content stream decoded (a damaged page still makes
    the file unreadable) but its text is not extracted: that is most of the cost of reading a
    receipt, and an audit keyed by metadata only needs it for a few files. Raises
    ``FileNotFoundError`` when the file is gone (it vanished after the directory was listed).

    With ``text=False`` and ``fast`` a simple, well-formed PDF (the kind one program writes) is read
    by ``pdf_fast.read_simple_pdf`` without pypdf, several times faster; anything unusual about the
    file, a damaged one included, is read by pypdf as before (``fast=False``: always pypdf).
    """
    from pypdf import PdfReader

    stat = path.stat()
    receipt = ReceiptFile(name=path.name, size=stat.st_size, at=stat.st_mtime)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise  # the caller reports a vanished file; any other OSError makes this one file unreadable
    except OSError as exc:
        receipt.error = f"cannot read: {exc.__class__.__name__}: {exc}"[:300]
        return receipt
    if fast and not text and (simple := read_simple_pdf(data)) is not None:
        receipt.subject, receipt.title = simple
        receipt.readable = True
        return receipt
    try:
        reader = PdfReader(io.BytesIO(data))
        meta = reader.metadata
        receipt.subject = (meta.subject if meta else None) or None
        receipt.title = (meta.title if meta else None) or None
        if text:
            page_text = reader.pages[0].extract_text() if reader.pages else ""
        else:
            page_text = ""
            if reader.pages and (contents := reader.pages[0].get_contents()) is not None:
                contents.get_data()
    except Exception as exc:  # pypdf raises many kinds on damaged files; any of them means unreadable
        receipt.error = f"unreadable PDF: {exc.__class__.__name__}: {exc}"[:300]
        return receipt
    receipt.readable = True
    receipt.text = page_text or ""
    return receipt


# Below this many files a directory is read in this process: starting a pool of processes costs more
# than it saves (measured by benchmarks/audit_scale.py --crossover).
POOL_MIN_FILES = 400
# Files per task sent to a worker: large enough that pickling and scheduling are a small share of
# the work, small enough that the workers finish together and progress moves.
POOL_CHUNK = 256


def _read_or_skip(path: Path, text: bool, fast: bool = True) -> ReceiptFile | None:
    """One file read, or None for a file that is not a regular file or vanished before it was read."""
    try:
        if not path.is_file():
            return None
        # Called by its module name so a test that replaces ``read_receipt`` replaces it here too.
        if text:
            return read_receipt(path)
        return read_receipt(path, text=False) if fast else read_receipt(path, text=False, fast=False)
    except FileNotFoundError:
        return None


def _read_chunk(paths: list[str], text: bool, fast: bool = True) -> list[ReceiptFile | None]:
    return [_read_or_skip(Path(p), text, fast) for p in paths]


def _pool_context() -> multiprocessing.context.BaseContext:
    """fork when this process runs one thread (cheapest: workers start with pypdf loaded); otherwise a
    fresh interpreter, because a forked child inherits locks other threads may be holding."""
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def _quiet_like_parent(pypdf_level: int) -> None:
    logging.getLogger("pypdf").setLevel(pypdf_level)  # a started worker does not inherit the parent's


def pool_size() -> int:
    """Worker processes for reading receipts: one per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def read_receipts(paths: Sequence[Path], *, text: bool = True, workers: int | None = None,
                  progress: Callable[[int, int], None] | None = None, fast: bool = True) -> list[ReceiptFile | None]:
    """Each path read as ``read_receipt`` reads it (None: not a regular file, or vanished), in order.

    ``workers=None`` reads a large list in a process pool sized to the machine (small lists stay in
    this process); ``workers=1`` always reads here. ``progress(done, total)`` is called as chunks finish.
    ``fast=False`` reads every file with pypdf (see ``read_receipt``).
    """
    paths = list(paths)
    workers = pool_size() if workers is None else workers
    if workers <= 1 or len(paths) < POOL_MIN_FILES:
        out = []
        for i, path in enumerate(paths):
            out.append(_read_or_skip(path, text, fast))
            if progress and (i + 1) % POOL_CHUNK == 0:
                progress(i + 1, len(paths))
    else:
        import pypdf  # noqa: F401  loaded once here, so forked workers start with it

        chunks = [[str(p) for p in paths[i:i + POOL_CHUNK]] for i in range(0, len(paths), POOL_CHUNK)]
        out = []
        with ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context(), initializer=_quiet_like_parent,
                                 initargs=(logging.getLogger("pypdf").level,)) as pool:
            for chunk in pool.map(_read_chunk, chunks, [text] * len(chunks), [fast] * len(chunks)):
                out += chunk
                if progress:
                    progress(len(out), len(paths))
    if progress:
        progress(len(paths), len(paths))
    return out


def scan_receipts(directory: str | Path, *, passes: int = 3, text: bool = True, workers: int | None = None,
                  progress: Callable[[int, int], None] | None = None,
                  match: Callable[[str], bool] | None = None,
                  fast: bool = True) -> tuple[list[ReceiptFile], list[Problem]]:
    """Every regular file in the receipts directory, PDFs or not (stray files are evidence too).

    A file that vanishes between listing and reading (a temporary file renamed into place, a receipt
    deleted) affects only itself: the directory is listed again after reading, up to ``passes``
    times, until a listing holds nothing unread, so a file that took its place is read too. Files
    gone from the last listing are reported one problem each. Raises ``OSError`` when the directory
    itself cannot be listed. ``text``, ``workers``, ``progress`` and ``fast`` are as for ``read_receipts``;
    ``match`` keeps only the names it accepts (a profile's glob).
    """
    root = Path(directory)
    read: dict[str, ReceiptFile] = {}
    skipped: set[str] = set()  # not regular files, or vanished before they could be read

    def list_names() -> set[str]:
        return {p.name for p in root.iterdir() if match is None or match(p.name)}

    listing = list_names()
    for _ in range(passes):
        names = sorted(listing - set(read) - skipped)
        for name, receipt in zip(names, read_receipts([root / n for n in names], text=text, workers=workers,
                                                      progress=progress, fast=fast)):
            if receipt is None:
                skipped.add(name)
            else:
                read[name] = receipt
        listing = list_names()
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
        "paid": doc.get("paymentStatus") == "paid",
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
