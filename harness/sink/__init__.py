"""A recording sink for side effects that leave the service: outbound HTTP calls, e-mails, HTTPS via a proxy.

``Sink(settings, records).start()`` runs the sink in a process of its own (so neither the burst
sender's timing nor Locust's gevent is disturbed), waits until every channel listens, and reads
back what it recorded; ``stop()`` ends it. A run starts one when its profile has a ``[sink]`` or a
``source = "sink"`` effect (docs/profiles.md); ``race-harness sink`` runs one for long-lived use.
``RecordedSink`` stands in for a finished run's sink, over the records it kept (``reverify``).
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.errors import SinkError
from harness.local.process import end_process
from .recorded import RecordedSink, kept_records
from .records import read_records
from .server import SinkSettings, service_env

__all__ = ["RecordedSink", "Sink", "SinkError", "SinkSettings", "kept_records", "read_records", "service_env"]

START_TIMEOUT = 60.0


class Sink:
    """The sink in a child process: its ports, the CA a service trusts, and its records as they are now."""

    def __init__(self, settings: SinkSettings, records: Path | str | None = None) -> None:
        self.settings = settings
        if records is None:
            records = Path(tempfile.mkdtemp(prefix="race-harness-sink-")) / "sink.jsonl"
        self.records_path = Path(records)
        self.ports: dict[str, int] = {}
        self.ca_cert: str | None = None
        self.started_at: float | None = None
        self._process: subprocess.Popen | None = None
        self._cache: tuple[int, list[dict[str, Any]]] = (-1, [])

    def __enter__(self) -> "Sink":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = START_TIMEOUT) -> "Sink":
        """Start the sink and wait (bounded) until it listens; SinkError with its one line when it cannot."""
        self.records_path.parent.mkdir(parents=True, exist_ok=True)
        errors = tempfile.TemporaryFile()
        command = [sys.executable, "-m", "harness.sink.server", "--settings", json.dumps(self.settings.to_dict()),
                   "--records", str(self.records_path)]
        self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
        line = self._ready_line(timeout)
        if line is None:
            self.stop()
            errors.seek(0)
            said = [x for x in errors.read().decode(errors="replace").splitlines() if x.strip()]
            errors.close()
            raise SinkError(said[-1].removeprefix("sink: ") if said else f"the sink did not start within {timeout:g} s")
        errors.close()
        ready = json.loads(line)
        self.ports, self.ca_cert = ready["ports"], ready.get("ca_cert")
        self.started_at = time.time()
        return self

    def _ready_line(self, timeout: float) -> str | None:
        assert self._process is not None and self._process.stdout is not None
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self._process.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if selector.select(min(0.2, max(0.0, deadline - time.monotonic()))):
                    line = self._process.stdout.readline().decode(errors="replace")
                    return line if line.startswith("{") else None
                if self._process.poll() is not None:
                    return None
        return None

    def env(self) -> dict[str, str]:
        """Variables that point a service at this sink (SMTP_HOST/PORT, HTTPS_PROXY, SSL_CERT_FILE, …)."""
        return service_env(self.ports, self.ca_cert)

    def records(self) -> list[dict[str, Any]]:
        """Every record so far (calls, messages; a proxy's refused upstream connections marked ``blocked``)."""
        try:
            size = self.records_path.stat().st_size
        except FileNotFoundError:
            return []
        if size != self._cache[0]:
            self._cache = (size, read_records(self.records_path))
        return list(self._cache[1])

    def quiet_for(self) -> float:
        """Seconds since the last record arrived (or since the sink started)."""
        times = [r.get("t") or 0.0 for r in self.records()[-1:]]
        last = max([self.started_at or time.time(), *times])
        return max(0.0, time.time() - last)

    def describe(self) -> dict[str, Any]:
        """For a report: where it listened and where its records are."""
        records = self.records()
        return {"ports": dict(self.ports), "records": str(self.records_path),
                "recorded": sum(1 for r in records if "blocked" not in r),
                "blocked_upstream": sum(1 for r in records if "blocked" in r),
                "answer": {"status": self.settings.status, "latency_ms": self.settings.latency_ms}}

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        end_process(process)
        if process.stdout is not None:
            process.stdout.close()
