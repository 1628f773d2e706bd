"""What the service says about itself: Prometheus /metrics (when it has one) and its memory (when local)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import httpx

from harness.tls import bounded_request

# The reference service's counters; another target's absent counters are simply not measured.
COUNTERS = {
    "receipt_generations_started_total": "generations_started",
    "receipt_generations_succeeded_total": "generations_succeeded",
    "receipt_generations_failed_total": "generations_failed",
    "receipt_claims_won_total": "claims_won",
    "receipt_claims_skipped_total": "claims_skipped",
    "receipt_rollbacks_total": "rollbacks",
    "receipt_generation_seconds_sum": "generation_seconds_sum",
    "receipt_generation_seconds_count": "generation_seconds_count",
}


def scrape(client: httpx.Client, url: str | None) -> dict[str, float] | None:
    """The known counters from a Prometheus text endpoint, or None when there is none."""
    if not url:
        return None
    from prometheus_client.parser import text_string_to_metric_families

    try:
        response = bounded_request(client, "GET", url)  # harness.tls's size and time bounds
        if response.status_code != 200:
            return None
        values: dict[str, float] = {}
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                if sample.name in COUNTERS and not sample.labels:
                    values[COUNTERS[sample.name]] = values.get(COUNTERS[sample.name], 0.0) + sample.value
        return values
    except (httpx.HTTPError, ValueError):
        return None


def counter_deltas(before: dict[str, float] | None, after: dict[str, float] | None) -> dict[str, float]:
    if not before or not after:
        return {}
    return {k: after[k] - before.get(k, 0.0) for k in after}


@dataclass
class MemorySampler:
    """Samples a local process tree's RSS on a thread: baseline before, peak during the burst."""

    pid: int | None
    interval: float = 0.01
    baseline_mb: float | None = None
    peak_mb: float | None = None
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def _rss_mb(self) -> float | None:
        import psutil

        try:
            proc = psutil.Process(self.pid)
            procs = [proc, *proc.children(recursive=True)]
            total = 0
            for p in procs:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            return total / (1024 * 1024)
        except psutil.Error:
            return None

    def start(self) -> "MemorySampler":
        if self.pid is None:
            return self
        self.baseline_mb = self._rss_mb()
        self.peak_mb = self.baseline_mb
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            rss = self._rss_mb()
            if rss is not None:
                self.samples += 1
                self.peak_mb = max(self.peak_mb or 0.0, rss)

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            rss = self._rss_mb()
            if rss is not None and self.peak_mb is not None:
                self.peak_mb = max(self.peak_mb, rss)
        growth = None if self.baseline_mb is None or self.peak_mb is None else self.peak_mb - self.baseline_mb
        return {"service_rss_baseline_mb": _round(self.baseline_mb), "service_peak_rss_mb": _round(self.peak_mb),
                "service_rss_growth_mb": _round(growth), "rss_samples": self.samples}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
