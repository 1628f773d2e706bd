"""The receipt step, once a charge is paid: the seed's vulnerable "before" and atomic "after"."""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .faults import Faults, GenerationFailed
from .metrics import ServiceMetrics
from .receipts import write_receipt
from .store import ChargeStore

log = logging.getLogger("reference_service.receipts")

GENERATED = "generated"
ALREADY_GENERATED = "already_generated"
FAILED = "failed"
NOT_PAID = "not_paid"


@dataclass
class ReceiptOutcome:
    outcome: str
    receipt_path: str | None = None


class ReceiptGenerator:
    """Renders and writes one receipt, taking the configured extra latency without blocking the loop."""

    def __init__(self, receipts_dir: Path, delay_ms: float, faults: Faults, metrics: ServiceMetrics,
                 run_blocking: Callable[..., Any]):
        self.receipts_dir = receipts_dir
        self.delay_s = delay_ms / 1000.0
        self.faults = faults
        self.metrics = metrics
        self._run_blocking = run_blocking

    async def generate(self, charge: dict) -> str:
        self.metrics.generations_started.inc()
        started = time.perf_counter()
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            self.faults.generation()
            try:
                path = await self._run_blocking(write_receipt, self.receipts_dir, charge)
            except OSError as exc:
                raise GenerationFailed(f"could not write receipt: {exc.strerror or exc}") from exc
        except GenerationFailed:
            self.metrics.generations_failed.inc()
            raise
        finally:
            self.metrics.generation_seconds.observe(time.perf_counter() - started)
        self.metrics.generations_succeeded.inc()
        return str(path)


class ReceiptStep:
    """Run after a charge is marked paid; returns what happened to its receipt."""

    mode = ""

    def __init__(self, store: ChargeStore, generator: ReceiptGenerator, metrics: ServiceMetrics,
                 executor: Executor):
        self.store = store
        self.generator = generator
        self.metrics = metrics
        self._executor = executor

    async def _db(self, fn: Callable[..., Any], *args: Any) -> Any:
        # pymongo is blocking; keep the event loop free for the other racing requests.
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def run(self, charge_id: str, channel: str) -> ReceiptOutcome:
        raise NotImplementedError


def _log(level: int, channel: str, message: str, event: str, charge: dict, **extra: Any) -> None:
    tag = "[WEBHOOK]" if channel == "callback" else "[VERIFY]"
    log.log(level, f"{tag} {message}", extra={"event": event, "channel": channel, "chargeId": charge["_id"],
                                              "merchantTransactionId": charge.get("merchantTransactionId"), **extra})


class VulnerableStep(ReceiptStep):
    """The seed's "before": check the flag, then generate. Concurrent deliveries all pass the check."""

    mode = "vulnerable"

    async def run(self, charge_id: str, channel: str) -> ReceiptOutcome:
        charge = await self._db(self.store.get, charge_id)
        if charge is None or charge["paymentStatus"] != "paid":
            return ReceiptOutcome(NOT_PAID)
        if charge.get("receiptGenerated"):
            self.metrics.claims_skipped.inc()
            return ReceiptOutcome(ALREADY_GENERATED, charge.get("receiptPath"))
        try:
            path = await self.generator.generate(charge)
        except GenerationFailed as exc:
            _log(logging.ERROR, channel, "Receipt generation failed", "generation_failed", charge, error=str(exc))
            return ReceiptOutcome(FAILED)
        await self._db(self.store.save_receipt, charge_id, path)
        return ReceiptOutcome(GENERATED, path)


class AtomicStep(ReceiptStep):
    """The seed's "after": an atomic claim; only the winner generates; a failure rolls the flag back."""

    mode = "atomic"

    async def run(self, charge_id: str, channel: str) -> ReceiptOutcome:
        claimed = await self._db(self.store.claim_receipt, charge_id)
        if claimed is None:
            self.metrics.claims_skipped.inc()
            charge = await self._db(self.store.get, charge_id) or {"_id": charge_id}
            _log(logging.INFO, channel, "Another webhook already generating receipt - skipping", "claim_skipped", charge)
            return ReceiptOutcome(ALREADY_GENERATED, charge.get("receiptPath"))
        self.metrics.claims_won.inc()
        _log(logging.INFO, channel, "This webhook won the race - generating receipt", "claim_won", claimed)
        try:
            path = await self.generator.generate(claimed)
        except GenerationFailed as exc:
            _log(logging.ERROR, channel, "Receipt generation failed", "generation_failed", claimed, error=str(exc))
            await self._db(self.store.release_claim, charge_id)
            self.metrics.rollbacks.inc()
            _log(logging.WARNING, channel, "Receipt flag reset due to generation failure", "flag_reset", claimed)
            return ReceiptOutcome(FAILED)
        await self._db(self.store.save_receipt, charge_id, path)
        return ReceiptOutcome(GENERATED, path)


STEPS: dict[str, type[ReceiptStep]] = {cls.mode: cls for cls in (VulnerableStep, AtomicStep)}
