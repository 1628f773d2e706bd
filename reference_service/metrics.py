"""The service's Prometheus metrics, in a registry of its own (no process-global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.generations_started = Counter("receipt_generations_started", "Receipt generations started", registry=r)
        self.generations_succeeded = Counter("receipt_generations_succeeded", "Receipt generations that wrote a file", registry=r)
        self.generations_failed = Counter("receipt_generations_failed", "Receipt generations that failed", registry=r)
        self.claims_won = Counter("receipt_claims_won", "Atomic receipt claims won", registry=r)
        self.claims_skipped = Counter("receipt_claims_skipped", "Receipt steps skipped: already generated or claimed", registry=r)
        self.rollbacks = Counter("receipt_rollbacks", "Receipt flags reset after a failed generation", registry=r)
        self.generation_seconds = Histogram(
            "receipt_generation_seconds", "Receipt generation time",
            buckets=(0.01, 0.05, 0.1, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 2.0, 5.0), registry=r)
        self.callbacks = Counter("phonepe_callbacks", "PhonePe callbacks by HTTP status", ["status"], registry=r)
        self.webhooks = Counter("phonepe_webhooks", "PhonePe v2 webhooks by HTTP status", ["status"], registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
