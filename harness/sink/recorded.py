"""A finished run's sink, read back from the records it kept: what ``reverify`` judges sink effects from.

The run stopped its sink, so nothing more will arrive: the stand-in is always quiet. Its records
are the JSON lines the sink wrote (secret headers masked when written), which a written report
keeps beside itself as ``<stem>.sink.jsonl``; ``kept_records`` finds them.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

from harness.errors import SinkError
from .records import read_records
from .server import service_env


class RecordedSink:
    """A read-only stand-in for a ``Sink``: the records a run kept, the ports its report names, nothing new."""

    def __init__(self, path: Path | str | None, ports: dict[str, int] | None = None,
                 looked_for: Sequence[Path | str] = ()) -> None:
        self.records_path = Path(path) if path is not None else None
        self.looked_for = [Path(p) for p in looked_for] or ([self.records_path] if self.records_path else [])
        self.ports: dict[str, int] = dict(ports or {})
        self.ca_cert: str | None = None
        self._records: list[dict[str, Any]] | None = None

    @property
    def missing(self) -> str | None:
        """Why there are no records to read, naming where they were looked for (None: there are)."""
        if self.records_path is not None and self.records_path.is_file():
            return None
        where = ", ".join(str(p) for p in self.looked_for) or "nowhere: the report names no records file"
        return (f"the run's sink records were not found (looked for {where}; a file there holding other than the "
                f"number of records the report says the run kept is another run's); --sink-records FILE names them")

    def records(self) -> list[dict[str, Any]]:
        """Every record the run kept; SinkError when there are none to read (never an empty, silent sink)."""
        if self._records is None:
            if why := self.missing:
                raise SinkError(why)
            assert self.records_path is not None
            self._records = read_records(self.records_path)  # read once: a finished run's file does not grow
        return list(self._records)

    def quiet_for(self) -> float:
        """Always quiet: the run that recorded is over, nothing more will arrive."""
        return math.inf

    def env(self) -> dict[str, str]:
        """The variables that pointed the service at the run's sink (for a message saying nothing reached it)."""
        return service_env(self.ports, None)

    def describe(self) -> dict[str, Any]:
        """For a report: which file was read and how much it held, or where it was looked for."""
        if self.missing:
            # no "records": a written report must not keep a file beside itself that was not judged
            return {"ports": dict(self.ports), "records": None, "records_not_found": [str(p) for p in self.looked_for]}
        records = self.records()
        return {"ports": dict(self.ports), "records": str(self.records_path),
                "recorded": sum(1 for r in records if "blocked" not in r),
                "blocked_upstream": sum(1 for r in records if "blocked" in r)}


def kept_records(config: dict[str, Any], report_file: Path | str | None = None,
                 given: Path | str | None = None) -> RecordedSink:
    """The stand-in over a run's records: ``given``; else ``<stem>.sink.jsonl`` beside the report file;
    else where the run wrote them (``config.sink.records``), while that file exists."""
    sink = config.get("sink") or {}
    if given is not None:
        candidates = [Path(given)]
    else:
        candidates = []
        if report_file is not None:
            report = Path(report_file)
            candidates.append(report.with_name(f"{report.stem}.sink.jsonl"))
        if sink.get("records") and Path(sink["records"]).resolve() not in [c.resolve() for c in candidates]:
            candidates.append(Path(sink["records"]))
    # A file found by default must be this run's: the path the run wrote to is reused (and truncated) by the
    # next run with the same [sink] records or label, so its counts are checked against the report's.
    found = next((c for c in candidates if c.is_file() and (given is not None or _same_run(c, sink))), None)
    return RecordedSink(found, ports=sink.get("ports"), looked_for=candidates)


def _same_run(path: Path, sink: dict[str, Any]) -> bool:
    """Whether the records in ``path`` are as many as the report says its run recorded (when it says)."""
    if "recorded" not in sink:
        return True
    records = read_records(path)
    return (sum(1 for r in records if "blocked" not in r) == sink.get("recorded")
            and sum(1 for r in records if "blocked" in r) == sink.get("blocked_upstream", 0))
