"""The sink's records: one JSON line per call or message that reached it, secrets in headers masked.

A record is a plain dict: ``seq`` (1, 2, …), ``t`` (unix time it arrived), ``channel`` (``http``,
``smtp`` or ``proxy``) and what the channel saw: ``method``, ``host``, ``path``, ``headers``,
``body`` for calls; ``mail_from``, ``recipients``, ``subject``, ``text`` and ``attachments``
(``name``, ``size``, ``content_type``, ``readable``, ``text``, ``error``) for messages.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from ..redact import MASK, credential_header, redact

def masked_headers(headers: dict[str, str]) -> dict[str, str]:
    """Headers as a record keeps them: every credential-bearing value masked."""
    return {k: (MASK if credential_header(k) and v else v) for k, v in headers.items()}


class RecordWriter:
    """Appends records to one JSON-lines file (truncated when opened), numbering them; thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "w", encoding="utf-8")
        self._lock = threading.Lock()
        self._seq = 0

    def write(self, record: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._seq += 1
            record = {"seq": self._seq, "t": record.pop("t", None) or time.time(), **record}
            if isinstance(record.get("headers"), dict):
                record["headers"] = masked_headers(record["headers"])
            self._file.write(json.dumps(record, default=str) + "\n")
            self._file.flush()
            return record

    def close(self) -> None:
        with self._lock:
            self._file.close()


def read_records(path: Path | str) -> list[dict[str, Any]]:
    """Every whole record in the file (a line still being written is left for the next read)."""
    out = []
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    for line in text.splitlines(keepends=True):
        if not line.endswith("\n"):
            break
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def copy_masked(source: Path | str, target: Path | str) -> None:
    """Copy a records file, masking every credential-bearing header again: a file handed in by hand
    (``verify --sink-records``) was never written by a sink that masks."""
    with open(target, "w", encoding="utf-8") as out:
        for record in read_records(source):
            headers = record.get("headers")
            if isinstance(headers, dict):
                record["headers"] = masked_headers(headers)
            elif isinstance(headers, list):  # [[name, value], ...], as a hand-made file may have them
                record["headers"] = [[p[0], MASK] if isinstance(p, list) and len(p) == 2 and credential_header(str(p[0]))
                                     else p for p in headers]
            # the report's own rule over the rest: secret-named fields, credentials in URLs and text
            out.write(json.dumps(redact(record), default=str) + "\n")
