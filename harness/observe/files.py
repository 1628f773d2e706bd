"""Read side effects on disk: receipt files (PDFs: metadata and first page's text), in parallel for many.

What is read is kept as it was found; deciding which payment a receipt belongs to, and whether its
content is right, is the oracle's job.
"""

from __future__ import annotations

import io
import logging
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

from harness.observe.pdf import read_simple_pdf
from harness.observe.observation import RECEIPT_VANISHED, Problem, ReceiptFile

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
