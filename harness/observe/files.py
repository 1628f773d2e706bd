"""Read side effects on disk: receipt files (PDFs: metadata and first page's text), in parallel for many.

What is read is kept as it was found; deciding which payment a receipt belongs to, and whether its
content is right, is the oracle's job.

Every read is bounded, because the directory is the service's (or production's) and may be hostile:

* a file larger than ``MAX_RECEIPT_BYTES`` (default 50 MiB; the ``max_bytes`` argument of
  ``read_receipt`` / ``read_receipts`` / ``scan_receipts`` overrides it) is not read at all: it is an
  unreadable receipt, "too large to read (N bytes > limit)";
* a compressed stream pypdf inflates (a page's content, an object stream) stops at
  ``MAX_INFLATED_BYTES`` (default 32 MiB; ``max_inflated``): a Flate bomb is an unreadable receipt
  that says so. This uses pypdf's own output limits (pypdf >= 6; older pypdf has none to set). The
  fast reader (``harness.observe.pdf``) stops at 8 MB on its own and hands anything larger to pypdf;
* an entry that is not a regular file, or a link to one (a FIFO, a device, a socket, a directory, a
  dangling symlink, a symlink loop), is never opened: it is reported as an odd entry
  (``ReceiptFile.odd`` says what it is), unreadable, never skipped.
"""

from __future__ import annotations

import errno
import functools
import io
import logging
import multiprocessing
import os
import stat as stat_
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from harness.observe.observation import RECEIPT_VANISHED, Problem, ReceiptFile
from harness.observe.pdf import read_simple_pdf

# A receipt is a few kilobytes; a file over this many bytes is not read (an unreadable receipt, "too large").
MAX_RECEIPT_BYTES = 50 * 2**20
# A compressed stream is inflated up to this many bytes (a receipt's page content is a few kilobytes).
# Kept above the fast reader's own 8 MB, so pypdf never refuses what the fast reader would accept.
MAX_INFLATED_BYTES = 32 * 2**20
# pypdf's output limits, set to MAX_INFLATED_BYTES while a receipt is read (the names pypdf >= 7 uses).
_PYPDF_OUTPUT_LIMITS = ("zlib_maximum_output_length", "lzw_maximum_output_length", "run_length_maximum_output_length",
                        "brotli_maximum_output_length", "array_based_stream_maximum_output_length")
_PYPDF_LEGACY_LIMITS = ("ZLIB_MAX_OUTPUT_LENGTH", "LZW_MAX_OUTPUT_LENGTH", "RUN_LENGTH_MAX_OUTPUT_LENGTH",
                        "MAX_ARRAY_BASED_STREAM_OUTPUT_LENGTH")  # pypdf 6: module constants of pypdf.filters


def _what(mode: int) -> str:
    """A file type that is not a regular file, in words."""
    if stat_.S_ISDIR(mode):
        return "a directory"
    if stat_.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat_.S_ISCHR(mode):
        return "a character device"
    if stat_.S_ISBLK(mode):
        return "a block device"
    if stat_.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def plain_directory(path: Path) -> bool:
    """A directory (or a link to one) whose name does not look like a file's: ``lost+found``, ``archive/``.

    Those were never receipts and are passed over, as they always were; a directory named like a file
    (``receipt-1.pdf/``) stands where a receipt should and is an odd entry."""
    try:
        return stat_.S_ISDIR(os.stat(path).st_mode) and "." not in path.name.lstrip(".")
    except OSError:  # dangling, looping or vanished: not a plain directory (odd_entry says what it is)
        return False


def odd_entry(path: Path) -> str | None:
    """What a directory entry is when it is neither a regular file nor a symlink to one; None when it is one.

    Looks with lstat/stat only, never opens the entry (opening a FIFO blocks; opening a device may do
    anything). Raises ``FileNotFoundError`` when the entry itself is gone.
    """
    st = os.lstat(path)
    if stat_.S_ISREG(st.st_mode):
        return None
    if not stat_.S_ISLNK(st.st_mode):
        return _what(st.st_mode)
    try:
        target = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symlink loop"
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            if not os.path.lexists(path):
                raise FileNotFoundError(errno.ENOENT, "vanished", str(path)) from None
            return f"a dangling symlink (to {_link_text(path)})"
        return f"a symlink that cannot be followed ({exc.strerror or exc})"
    return None if stat_.S_ISREG(target.st_mode) else f"a symlink to {_what(target.st_mode)}"


def _link_text(path: Path) -> str:
    try:
        return repr(os.readlink(path))[:200]
    except OSError:
        return "?"


def _odd_receipt(path: Path, what: str, st: os.stat_result | None = None) -> ReceiptFile:
    if st is None:
        try:
            st = os.lstat(path)
        except OSError:
            st = None
    return ReceiptFile(name=path.name, size=st.st_size if st else 0, at=st.st_mtime if st else None, odd=what,
                       error=f"odd entry: {what}, not a regular file (not opened)"[:300])


def _read_bounded(path: Path, max_bytes: int) -> tuple[ReceiptFile, bytes | None]:
    """The file's bytes, read only when it is a regular file of at most ``max_bytes``; else why not.

    Opened without blocking and checked again once open (it may have been replaced by a FIFO or a
    device since it was looked at), so nothing here ever waits on a writer or reads without end.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise
    except OSError as exc:
        receipt = ReceiptFile(name=path.name, size=0)
        receipt.error = f"cannot read: {exc.__class__.__name__}: {exc}"[:300]
        return receipt, None
    try:
        st = os.fstat(fd)
        if not stat_.S_ISREG(st.st_mode):
            return _odd_receipt(path, _what(st.st_mode), st), None
        receipt = ReceiptFile(name=path.name, size=st.st_size, at=st.st_mtime)
        if st.st_size > max_bytes:
            receipt.error = f"too large to read ({st.st_size} bytes > {max_bytes})"
            return receipt, None
        parts, wanted = [], max_bytes + 1  # one byte more than the limit: it may have grown since fstat
        try:
            while wanted > 0 and (chunk := os.read(fd, min(wanted, 1 << 24))):
                parts.append(chunk)
                wanted -= len(chunk)
        except OSError as exc:
            receipt.error = f"cannot read: {exc.__class__.__name__}: {exc}"[:300]
            return receipt, None
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        if len(data) > max_bytes:
            receipt.error = f"too large to read (more than {max_bytes} bytes > {max_bytes}: it grew while read)"
            return receipt, None
        return receipt, data
    finally:
        os.close(fd)


@functools.lru_cache(maxsize=8)
def _pypdf_overwrites(limit: int) -> dict[str, int] | None:
    """pypdf's configuration fields to set (pypdf >= 7), or None when it has no configuration (older)."""
    import dataclasses

    import pypdf

    if getattr(pypdf, "apply_configuration", None) is None or not hasattr(pypdf, "Configuration"):
        return None
    known = {f.name for f in dataclasses.fields(pypdf.Configuration)}
    return {name: limit for name in _PYPDF_OUTPUT_LIMITS if name in known}


@contextmanager
def _inflation_bounded(limit: int) -> Iterator[None]:
    """pypdf's decompression output limits set to ``limit`` bytes while the block runs."""
    import pypdf

    if (overwrites := _pypdf_overwrites(limit)) is not None:  # pypdf >= 7: a context-local configuration
        with pypdf.apply_configuration(**overwrites):
            yield
        return
    from pypdf import filters  # pypdf 6: module constants, read at each call

    saved = {name: getattr(filters, name) for name in _PYPDF_LEGACY_LIMITS if hasattr(filters, name)}
    try:
        for name in saved:
            setattr(filters, name, limit)
        yield
    finally:
        for name, value in saved.items():
            setattr(filters, name, value)


def _pdf_error(exc: Exception, max_inflated: int) -> str:
    if exc.__class__.__name__ == "LimitReachedError" and "decompress" in str(exc).lower():
        return (f"unreadable PDF: a compressed stream inflates past {max_inflated} bytes (the limit; a Flate bomb?): "
                f"not read further")[:300]
    return f"unreadable PDF: {exc.__class__.__name__}: {exc}"[:300]


def read_receipt(path: Path, *, text: bool = True, fast: bool = True, max_bytes: int | None = None,
                 max_inflated: int | None = None) -> ReceiptFile:
    """Open one file as a PDF and read its metadata and first page's text.

    With ``text=False`` the page is found and its content stream decoded (a damaged page still makes
    the file unreadable) but its text is not extracted: that is most of the cost of reading a
    receipt, and an audit keyed by metadata only needs it for a few files. Raises
    ``FileNotFoundError`` when the file is gone (it vanished after the directory was listed).

    With ``text=False`` and ``fast`` a simple, well-formed PDF (the kind one program writes) is read
    by ``pdf_fast.read_simple_pdf`` without pypdf, several times faster; anything unusual about the
    file, a damaged one included, is read by pypdf as before (``fast=False``: always pypdf).

    Bounded (see the module's docstring): a file over ``max_bytes`` (default ``MAX_RECEIPT_BYTES``) is
    not read, a stream inflating past ``max_inflated`` (default ``MAX_INFLATED_BYTES``) stops there, and
    an entry that is not a regular file is never opened; each is an unreadable receipt saying why
    (an odd entry has ``odd`` set to what it is).
    """
    from pypdf import PdfReader

    max_bytes = MAX_RECEIPT_BYTES if max_bytes is None else max_bytes
    max_inflated = MAX_INFLATED_BYTES if max_inflated is None else max_inflated
    if (what := odd_entry(path)) is not None:  # FileNotFoundError: it vanished
        return _odd_receipt(path, what)
    receipt, data = _read_bounded(path, max_bytes)  # FileNotFoundError: it vanished
    if data is None:
        return receipt
    if fast and not text and (simple := read_simple_pdf(data)) is not None:
        receipt.subject, receipt.title = simple
        receipt.readable = True
        return receipt
    try:
        with _inflation_bounded(max_inflated):
            reader = PdfReader(io.BytesIO(data))
            meta = reader.metadata
            receipt.subject = (meta.subject if meta else None) or None
            receipt.title = (meta.title if meta else None) or None
            page_text = ""
            if reader.pages and (contents := reader.pages[0].get_contents()) is not None:
                contents.get_data()  # decoded here, strictly: text extraction would pass over a stream it cannot decode
                if text:
                    page_text = reader.pages[0].extract_text()
    except Exception as exc:  # pypdf raises many kinds on damaged files; any of them means unreadable
        receipt.error = _pdf_error(exc, max_inflated)
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


def _read_or_skip(path: Path, text: bool, fast: bool = True, max_bytes: int | None = None,
                  max_inflated: int | None = None) -> ReceiptFile | None:
    """One entry read (an odd entry, never opened, is an unreadable one), or None when it vanished before it was read."""
    limits = {k: v for k, v in (("max_bytes", max_bytes), ("max_inflated", max_inflated)) if v is not None}
    try:
        # Called by its module name so a test that replaces ``read_receipt`` replaces it here too.
        if text:
            return read_receipt(path, **limits)
        return read_receipt(path, text=False, **limits) if fast else read_receipt(path, text=False, fast=False,
                                                                                   **limits)
    except FileNotFoundError:
        return None


def _read_chunk(paths: list[str], text: bool, fast: bool = True, max_bytes: int | None = None,
                max_inflated: int | None = None) -> list[ReceiptFile | None]:
    return [_read_or_skip(Path(p), text, fast, max_bytes, max_inflated) for p in paths]


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
                  progress: Callable[[int, int], None] | None = None, fast: bool = True,
                  max_bytes: int | None = None, max_inflated: int | None = None) -> list[ReceiptFile | None]:
    """Each path read as ``read_receipt`` reads it (None: vanished), in order; an odd entry is an unreadable one.

    ``workers=None`` reads a large list in a process pool sized to the machine (small lists stay in
    this process); ``workers=1`` always reads here. ``progress(done, total)`` is called as chunks finish.
    ``fast=False`` reads every file with pypdf; ``max_bytes`` and ``max_inflated`` bound each read
    (see ``read_receipt``; None: ``MAX_RECEIPT_BYTES`` and ``MAX_INFLATED_BYTES``).
    """
    paths = list(paths)
    workers = pool_size() if workers is None else workers
    if workers <= 1 or len(paths) < POOL_MIN_FILES:
        out = []
        for i, path in enumerate(paths):
            out.append(_read_or_skip(path, text, fast, max_bytes, max_inflated))
            if progress and (i + 1) % POOL_CHUNK == 0:
                progress(i + 1, len(paths))
    else:
        import pypdf  # noqa: F401  loaded once here, so forked workers start with it

        chunks = [[str(p) for p in paths[i:i + POOL_CHUNK]] for i in range(0, len(paths), POOL_CHUNK)]
        out = []
        with ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context(), initializer=_quiet_like_parent,
                                 initargs=(logging.getLogger("pypdf").level,)) as pool:
            n = len(chunks)
            for chunk in pool.map(_read_chunk, chunks, [text] * n, [fast] * n, [max_bytes] * n, [max_inflated] * n):
                out += chunk
                if progress:
                    progress(len(out), len(paths))
    if progress:
        progress(len(paths), len(paths))
    return out


def scan_receipts(directory: str | Path, *, passes: int = 3, text: bool = True, workers: int | None = None,
                  progress: Callable[[int, int], None] | None = None,
                  match: Callable[[str], bool] | None = None,
                  fast: bool = True, max_bytes: int | None = None,
                  max_inflated: int | None = None) -> tuple[list[ReceiptFile], list[Problem]]:
    """Every entry in the receipts directory, PDFs or not (stray files are evidence too).

    An entry that is not a regular file or a link to one (a FIFO, a device, a directory, a dangling
    symlink, a symlink loop) is never opened: it is an unreadable receipt with ``odd`` saying what it
    is, never left out. A file over ``max_bytes`` is not read (an unreadable receipt, "too large").

    A file that vanishes between listing and reading (a temporary file renamed into place, a receipt
    deleted) affects only itself: the directory is listed again after reading, up to ``passes``
    times, until a listing holds nothing unread, so a file that took its place is read too. Files
    gone from the last listing are reported one problem each. Raises ``OSError`` when the directory
    itself cannot be listed. ``text``, ``workers``, ``progress``, ``fast``, ``max_bytes`` and
    ``max_inflated`` are as for ``read_receipts``;
    ``match`` keeps only the names it accepts (a profile's glob).
    """
    root = Path(directory)
    read: dict[str, ReceiptFile] = {}
    skipped: set[str] = set()  # vanished before they could be read

    def list_names() -> set[str]:
        return {p.name for p in root.iterdir() if (match is None or match(p.name)) and not plain_directory(p)}

    listing = list_names()
    for _ in range(passes):
        names = sorted(listing - set(read) - skipped)
        for name, receipt in zip(names, read_receipts([root / n for n in names], text=text, workers=workers,
                                                      progress=progress, fast=fast, max_bytes=max_bytes,
                                                      max_inflated=max_inflated)):
            if receipt is None:
                skipped.add(name)
            else:
                read[name] = receipt
        listing = list_names()
        if not listing - set(read) - skipped:
            break
    receipts = [read[name] for name in sorted(read) if name in listing]
    gone = sorted((set(read) | {n for n in skipped if not os.path.lexists(root / n)}) - listing)
    problems = [Problem(RECEIPT_VANISHED, f"receipt {name} vanished while the directory was read", name)
                for name in gone]
    return receipts, problems
