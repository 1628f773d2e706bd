"""Side effects read back by a profile's sources: files, MongoDB rows, or records behind an HTTP endpoint.

Every effect becomes a ``ReceiptFile`` record (the oracle's one shape for a side effect) with the
key and amount the profile's rules extracted; which payment it belongs to is the oracle's job.
"""

from __future__ import annotations

import fnmatch
import json
import os
import stat as stat_
from pathlib import Path
from typing import Any

import httpx

from harness.observe.content import to_paise
from harness.observe.files import MAX_RECEIPT_BYTES, odd_entry, scan_receipts
from harness.observe.observation import RECEIPTS_DIR, Problem, ReceiptFile
from harness.observe.sink import describe_sink, read_sink_effects
from harness.profile.patterns import first_group
from harness.profile.schema import EffectSection, FileRule, RuleSection
from harness.profile.template import dig
from harness.redact import redact_text, without_userinfo
from harness.tls import bounded_request


def describe(section: EffectSection) -> str:
    """Where a source reads, for reports (never a URI's credentials: only host-free names)."""
    if section.source == "files":
        return f"files {section.dir}/{section.glob}"
    if section.source == "mongo":
        return f"mongo {section.database}.{section.collection}"
    if section.source == "sink":
        return describe_sink(section)
    return f"http {without_userinfo(section.path or str(section.url))}"


def existing_ids(section: EffectSection) -> set[str] | None:
    """The ids (as the oracle names them) of the effects a source holds now, without reading them (None: cannot list)."""
    try:
        if section.source == "files":
            root = Path(str(section.dir))
            return {p.name for p in root.iterdir() if fnmatch.fnmatch(p.name, section.glob)} if root.is_dir() else set()
        if section.source == "mongo":
            import pymongo

            client: pymongo.MongoClient = pymongo.MongoClient(section.uri, serverSelectionTimeoutMS=5000)
            try:
                found = client[str(section.database)][str(section.collection)].find(section.filter, {"_id": 1})
                return {f"mongo:{section.kind}:{d['_id']}" for d in found}
            finally:
                client.close()
    except Exception:  # no baseline for a source that cannot be listed: its orphans are not judged
        return None
    return None  # an HTTP listing (or the sink) is not listed before the run


def read_effects(section: EffectSection, base_url: str, client: httpx.Client,
                 sink: Any = None) -> tuple[list[ReceiptFile], list[Problem]]:
    """Every effect the source holds now, keyed by its rules; a source that cannot be read is a problem.

    ``sink``: the running sink a ``source = "sink"`` effect reads (harness.sink.Sink)."""
    try:
        if section.source == "sink":
            return read_sink_effects(section, sink)
        if section.source == "files":
            return _files(section)
        if section.source == "mongo":
            return _rows(section, _mongo_documents(section)), []
        return _rows(section, _http_items(section, base_url, client)), []
    except Exception as exc:  # any failure to read a source makes its checks unknown, never a pass
        detail = without_userinfo(redact_text(str(exc)))[:200]
        return [], [Problem(RECEIPTS_DIR, f"cannot read side effects ({describe(section)}): "
                                          f"{exc.__class__.__name__}: {detail}")]


def _files(section: EffectSection) -> tuple[list[ReceiptFile], list[Problem]]:
    key, amount = section.rule("key"), section.rule("amount")
    # Only JSON side effects are parsed as JSON; everything else is read as a PDF (a stray file is evidence).
    as_json = isinstance(key, FileRule) and key.from_ == "json"
    if as_json:
        records, problems = _json_files(Path(str(section.dir)), section.glob)
    else:
        glob = section.glob
        records, problems = scan_receipts(str(section.dir), match=lambda name: fnmatch.fnmatch(name, glob)
                                          or _temporary_copy(name, glob))
    for record in records:
        record.kind, record.source = section.kind, "files"
        if (not record.readable and record.odd is None and record.size <= MAX_RECEIPT_BYTES
                and not record.name.lower().endswith(".pdf") and not record.name.startswith(".")):
            _read_as_text(Path(str(section.dir)) / record.name, record)  # an HTML or text receipt (never a FIFO)
        if key is not None:
            record.keyed, record.joins = True, key.joins
            record.key = extract(key, record)
        if amount is not None:
            record.amount = to_paise(extract(amount, record), amount)
    return records, problems


def _temporary_copy(name: str, glob: str) -> bool:
    """A hidden temporary copy of a file the glob matches (``.receipt-1.pdf.tmp``), not any dotfile (.DS_Store)."""
    if not name.startswith("."):
        return False
    stem = name[1:]
    for suffix in (".tmp", ".part", ".partial"):
        stem = stem.removesuffix(suffix)
    return stem != name[1:] and fnmatch.fnmatch(stem, glob)


TEXT_RECEIPT_CHARS = 1_000_000  # bytes of an HTML or text receipt read (what a pattern could search anyway)


def _read_regular(path: Path, limit: int, *, whole: bool = False) -> tuple[os.stat_result, bytes | None]:
    """The file's status and at most ``limit`` bytes of it (``whole``: refused, None, when it is larger than that).

    Opened without blocking and looked at once open (``os.fstat``): an entry swapped for a FIFO or a
    device since ``odd_entry`` looked at it is never read (None), so nothing here waits on a writer.
    ``whole`` reads one byte more than ``limit``, to tell a file that grew while read.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    try:
        st = os.fstat(fd)
        if not stat_.S_ISREG(st.st_mode) or (whole and st.st_size > limit):
            return st, None
        parts, wanted = [], limit + 1 if whole else limit
        while wanted > 0 and (chunk := os.read(fd, min(wanted, 1 << 20))):
            parts.append(chunk)
            wanted -= len(chunk)
        return st, b"".join(parts)
    finally:
        os.close(fd)


def _swapped(path: Path) -> str:
    """What an entry that is no longer a regular file is now (it was one when it was listed)."""
    try:
        return odd_entry(path) or "not a regular file"
    except OSError:
        return "gone"


def _read_as_text(path: Path, record: ReceiptFile) -> None:
    try:  # read up to the bound, never the whole file, and never a FIFO swapped in since the listing
        st, data = _read_regular(path, TEXT_RECEIPT_CHARS)
    except OSError as exc:
        record.error = f"cannot read: {exc.strerror or exc}"
        return
    if data is None:
        record.odd = _swapped(path) if not stat_.S_ISREG(st.st_mode) else None
        record.error = f"odd entry: {record.odd}, not a regular file (not read)"[:300]
        return
    record.text = data.decode("utf-8", errors="replace")
    record.readable, record.error = True, None


def _json_files(root: Path, glob: str) -> tuple[list[ReceiptFile], list[Problem]]:
    out = []
    for path in sorted(root.iterdir()):
        if not fnmatch.fnmatch(path.name, glob):
            continue
        try:
            odd = odd_entry(path)
        except FileNotFoundError:  # vanished after the listing
            continue
        if odd is not None:  # a FIFO, a link loop, a directory named like a record: a finding, never opened
            out.append(ReceiptFile(name=path.name, size=0, odd=odd,
                                   error=f"odd entry: {odd}, not a regular file (not opened)"))
            continue
        try:  # opened without blocking, checked once open, read up to the bound: never a FIFO swapped in since
            st, data = _read_regular(path, MAX_RECEIPT_BYTES, whole=True)
        except FileNotFoundError:  # vanished after it was looked at
            continue
        except OSError as exc:
            out.append(ReceiptFile(name=path.name, size=0, error=f"unreadable JSON: cannot read: {exc}"[:300]))
            continue
        if not stat_.S_ISREG(st.st_mode):
            odd = _swapped(path)
            out.append(ReceiptFile(name=path.name, size=0, odd=odd,
                                   error=f"odd entry: {odd}, not a regular file (not read)"[:300]))
            continue
        record = ReceiptFile(name=path.name, size=st.st_size, at=st.st_mtime)
        if data is None or len(data) > MAX_RECEIPT_BYTES:
            record.error = (f"too large to read ({st.st_size} bytes > {MAX_RECEIPT_BYTES})" if data is None else
                            f"too large to read (more than {MAX_RECEIPT_BYTES} bytes: it grew while read)")
            out.append(record)
            continue
        try:
            record.data = json.loads(data)
            record.readable = True
        except ValueError as exc:
            record.error = f"unreadable JSON: {exc}"[:300]
        out.append(record)
    return out, []


def extract(rule: RuleSection, record: ReceiptFile) -> str | None:
    """The part of a record a rule points at: a field, or a pattern's group over the name/metadata/text."""
    if isinstance(rule, FileRule) and rule.from_ != "json":
        source = {"name": record.name, "subject": record.subject, "title": record.title, "text": record.text}[rule.from_]
        return first_group(str(rule.pattern), source or "")  # bounded: harness.profile.patterns
    value = dig(record.data, str(rule.field))
    if value is not None and rule.pattern:
        value = first_group(rule.pattern, str(value))
    return None if value is None else str(value)


def _mongo_documents(section: EffectSection) -> list[dict[str, Any]]:
    import pymongo

    client: pymongo.MongoClient = pymongo.MongoClient(section.uri, serverSelectionTimeoutMS=5000)
    try:
        return list(client[str(section.database)][str(section.collection)].find(section.filter))
    finally:
        client.close()


def _http_items(section: EffectSection, base_url: str, client: httpx.Client) -> list[dict[str, Any]]:
    url = section.url or base_url.rstrip("/") + str(section.path)
    response = bounded_request(client, "GET", url)  # harness.tls's size and time bounds
    response.raise_for_status()
    items = dig(response.json(), section.items)
    if not isinstance(items, list):
        raise ValueError(f"the answer has no list at {section.items or '(the top)'!r}")
    return items


def _rows(section: EffectSection, documents: list[dict[str, Any]]) -> list[ReceiptFile]:
    key, amount = section.rule("key"), section.rule("amount")
    out = []
    for i, document in enumerate(documents):
        name = str(document.get("_id", document.get("id", i))) if isinstance(document, dict) else str(i)
        record = ReceiptFile(name=name, size=0, readable=isinstance(document, dict), kind=section.kind,
                             source=section.source, keyed=True,
                             data=json.loads(json.dumps(document, default=str)) if isinstance(document, dict) else None)
        if not record.readable:
            record.error = f"not a record: {type(document).__name__}"
        elif key is not None:
            record.joins = key.joins
            record.key = extract(key, record)
            if amount is not None:
                record.amount = to_paise(extract(amount, record), amount)
        out.append(record)
    return out
