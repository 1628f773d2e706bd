"""The receipt step, once a charge is paid: the seed's vulnerable "before", atomic "after", lease, and locked.

Faults are injected only through ``Faults`` hooks, at fixed points of each step.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .faults import Faults, GenerationFailed, SimulatedCrash
from .metrics import ServiceMetrics
from .receipts import (discard_receipt, publish_receipt, stale_temp_receipts, temp_path_for, write_receipt,
                       write_temp_receipt)
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

    async def generate(self, charge: dict, *, writer: Callable[[Path, dict], Path] = write_receipt) -> Path:
        """Take the generation time, then write with ``writer``; any failure is GenerationFailed."""
        self.metrics.generations_started.inc()
        started = time.perf_counter()
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            self.faults.generation()
            try:
                self.faults.before_write()
                path = await self._run_blocking(writer, self.receipts_dir, charge)
            except OSError as exc:
                raise GenerationFailed(f"could not write receipt: {exc.strerror or exc}") from exc
        except GenerationFailed:
            self.metrics.generations_failed.inc()
            raise
        finally:
            self.metrics.generation_seconds.observe(time.perf_counter() - started)
        self.metrics.generations_succeeded.inc()
        return path


class ReceiptStep:
    """Run after a charge is marked paid; returns what happened to its receipt."""

    mode = ""

    def __init__(self, store: ChargeStore, generator: ReceiptGenerator, metrics: ServiceMetrics,
                 executor: Executor, faults: Faults, lease_seconds: float = 30.0):
        self.store = store
        self.generator = generator
        self.metrics = metrics
        self.faults = faults
        self.lease_seconds = lease_seconds
        self._executor = executor

    async def _db(self, fn: Callable[..., Any], *args: Any) -> Any:
        # pymongo is blocking; keep the event loop free for the other racing requests.
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def run(self, charge_id: str, channel: str) -> ReceiptOutcome:
        raise NotImplementedError


def _log(level: int, channel: str, message: str, event: str, charge: dict, **extra: Any) -> None:
    tag = "[WEBHOOK]" if channel in ("callback", "webhook") else "[VERIFY]" if channel == "verify" else "[SWEEP]"
    log.log(level, f"{tag} {message}", extra={"event": event, "channel": channel, "chargeId": charge["_id"],
                                              "merchantTransactionId": charge.get("merchantTransactionId"), **extra})


class VulnerableStep(ReceiptStep):
    """The seed's "before": check the flag, then generate. Concurrent deliveries all pass the check."""

    mode = "vulnerable"

    async def run(self, charge_id: str, channel: str) -> ReceiptOutcome:
        if self.faults.race_window_ms > 0:
            charge = await self._db(self._check_then_flag, charge_id)
        else:
            charge = await self._db(self.store.get, charge_id)
        await self.faults.after_store_read()
        if charge is None or charge["paymentStatus"] != "paid":
            return ReceiptOutcome(NOT_PAID)
        if charge.get("receiptGenerated"):
            self.metrics.claims_skipped.inc()
            _log(logging.INFO, channel, "Receipt already generated - skipping", "claim_skipped", charge)
            return ReceiptOutcome(ALREADY_GENERATED, charge.get("receiptPath"))
        self.faults.after_claim()
        try:
            path = await self.generator.generate(charge)
        except GenerationFailed as exc:
            _log(logging.ERROR, channel, "Receipt generation failed", "generation_failed", charge, error=str(exc))
            return ReceiptOutcome(FAILED)
        await self._db(self.store.save_receipt, charge_id, str(path))
        return ReceiptOutcome(GENERATED, str(path))

    def _check_then_flag(self, charge_id: str) -> dict | None:
        """The race-window fault's check-then-act, on one store thread: read the flag; if it is clear,
        let exactly ``race_window_ms`` pass and then set it (a plain write, no condition). A second
        delivery whose read falls inside that window passes the check too: the window is the bug."""
        charge = self.store.get(charge_id)
        if charge is not None and charge["paymentStatus"] == "paid" and not charge.get("receiptGenerated"):
            self.faults.hold_race_window()
            self.store.set_receipt_flag(charge_id)
        return charge


class AtomicStep(ReceiptStep):
    """The seed's "after": an atomic claim; only the winner generates; a failure rolls the flag back."""

    mode = "atomic"

    async def run(self, charge_id: str, channel: str) -> ReceiptOutcome:
        claimed = await self._db(self.store.claim_receipt, charge_id)
        await self.faults.after_store_read()
        if claimed is None:
            return await self._skip(charge_id, channel)
        self.metrics.claims_won.inc()
        _log(logging.INFO, channel, "This webhook won the race - generating receipt", "claim_won", claimed)
        self.faults.after_claim()  # a crash here leaves the flag set and no receipt: the seed's hole
        try:
            path = await self.generator.generate(claimed)
        except Exception as exc:  # any failure after the claim must give the claim back
            _log(logging.ERROR, channel, "Receipt generation failed", "generation_failed", claimed, error=str(exc))
            await self._db(self.store.release_claim, charge_id)
            self.metrics.rollbacks.inc()
            _log(logging.WARNING, channel, "Receipt flag reset due to generation failure", "flag_reset", claimed)
            return ReceiptOutcome(FAILED)
        await self._db(self.store.save_receipt, charge_id, str(path))
        return ReceiptOutcome(GENERATED, str(path))

    async def _skip(self, charge_id: str, channel: str) -> ReceiptOutcome:
        self.metrics.claims_skipped.inc()
        charge = await self._db(self.store.get, charge_id) or {"_id": charge_id}
        _log(logging.INFO, channel, "Another webhook already generating receipt - skipping", "claim_skipped", charge)
        return ReceiptOutcome(ALREADY_GENERATED, charge.get("receiptPath"))


class LeaseStep(ReceiptStep):
    """Beyond the seed: the claim is a lease (token + expiry), completion is fenced by the token,
    the file is written under a temporary name and renamed into place, and a later delivery (or the
    sweep) finishes what a dead owner left: an expired lease is taken over; a completed receipt whose
    rename never happened is renamed; one whose file is gone is generated again.
    """

    mode = "lease"

    async def run(self, charge_id: str, channel: str, *, _repaired: bool = False) -> ReceiptOutcome:
        token = uuid.uuid4().hex
        claimed = await self._db(self.store.claim_lease, charge_id, token, self.lease_seconds)
        await self.faults.after_store_read()
        if claimed is None:
            charge = await self._db(self.store.get, charge_id)
            if charge is not None and not _repaired and await self._repair(charge, channel):
                return await self.run(charge_id, channel, _repaired=True)
            self.metrics.claims_skipped.inc()
            _log(logging.INFO, channel, "Another webhook already generating receipt - skipping", "claim_skipped",
                 charge or {"_id": charge_id})
            return ReceiptOutcome(ALREADY_GENERATED, (charge or {}).get("receiptPath"))
        self.metrics.claims_won.inc()
        _log(logging.INFO, channel, "This webhook won the race - generating receipt", "claim_won", claimed,
             leaseSeconds=self.lease_seconds)
        self.faults.after_claim()  # a crash here leaves a lease that expires: a later delivery takes over
        try:
            final = await self.generator.generate(claimed, writer=write_temp_receipt)
        except Exception as exc:  # any failure after the claim must give the claim back
            _log(logging.ERROR, channel, "Receipt generation failed", "generation_failed", claimed, error=str(exc))
            await self._db(self.store.release_lease, charge_id, token)
            self.metrics.rollbacks.inc()
            _log(logging.WARNING, channel, "Receipt flag reset due to generation failure", "flag_reset", claimed)
            return ReceiptOutcome(FAILED)
        if not await self._db(self.store.complete_lease, charge_id, token, str(final)):
            # Our lease expired and someone else owns the receipt now: ours must not appear.
            await self._db(discard_receipt, final)
            self.metrics.claims_skipped.inc()
            _log(logging.WARNING, channel, "Lease lost before completion - discarding this receipt", "lease_lost",
                 claimed)
            return ReceiptOutcome(ALREADY_GENERATED)
        await self._db(publish_receipt, final)
        return ReceiptOutcome(GENERATED, str(final))

    async def _repair(self, charge: dict, channel: str) -> bool:
        """Finish a completed receipt left half-done; True when the payment was reopened for a new try."""
        path = charge.get("receiptPath")
        if not charge.get("receiptGenerated") or not path:
            return False
        final = Path(path)
        # The temporary name first: a receipt only ever moves from it to the final name, so looking in
        # this order cannot miss an owner's rename that lands between the two looks (the other order
        # sees neither name and generates the receipt a second time).
        if temp_path_for(final).exists():
            await self._db(publish_receipt, final)  # harmless if the owner renamed it meanwhile
            _log(logging.WARNING, channel, "Receipt renamed into place after an interrupted completion",
                 "receipt_repaired", charge)
            return False
        if final.exists():
            return False
        reopened = await self._db(self.store.reset_lost_receipt, charge["_id"], path)
        if reopened:
            _log(logging.WARNING, channel, "Receipt file missing - generating it again", "receipt_reopened", charge)
        return reopened

    async def sweep(self) -> dict[str, int]:
        """Complete every paid charge left without a receipt: expired leases, rolled-back failures,
        completions whose rename was interrupted, and receipts whose file was lost; then remove
        temporary receipts older than a lease that no completion will ever rename."""
        counts: dict[str, int] = {}

        def count(key: str) -> None:
            counts[key] = counts.get(key, 0) + 1

        for charge in await self._db(self.store.completed_receipts):
            path = charge.get("receiptPath")
            if path and not Path(path).exists() and not await self._repair(charge, "sweep"):
                count("repaired")  # renamed into place
        for charge in await self._db(self.store.paid_without_receipt):
            claim = charge.get("receiptClaim") or {}
            if claim.get("expiresAt", 0) > time.time():
                count("leased")  # someone is working on it
                continue
            try:
                count((await self.run(charge["_id"], "sweep")).outcome)
            except SimulatedCrash:
                count("crashed")
        # Completed-but-unrenamed temps were renamed above; what is left older than a lease belonged
        # to an owner that died before completing (its lease expired, someone else made the receipt).
        for orphan in await self._db(stale_temp_receipts, self.generator.receipts_dir, self.lease_seconds):
            await self._db(orphan.unlink, True)
            count("orphans_removed")
        return counts


class LockedStep(VulnerableStep):
    """The "fix" many teams try first: the vulnerable check-then-act, held under a process-local asyncio.Lock.

    One lock per payment, taken before the flag is read and released after the receipt is saved, so
    inside one process duplicates queue up and find the flag set. The lock lives in this process's
    memory: a second worker process (uvicorn/gunicorn workers, a Node cluster) has locks of its own,
    reads the same unset flag, and generates a second receipt. The claim has to live in the database.
    """

    mode = "locked"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._locks: dict[str, asyncio.Lock] = {}
        self._holders: dict[str, int] = {}  # tasks holding or awaiting each payment's lock

    async def run(self, charge_id: str, channel: str) -> ReceiptOutcome:
        lock = self._locks.setdefault(charge_id, asyncio.Lock())
        self._holders[charge_id] = self._holders.get(charge_id, 0) + 1
        try:
            async with lock:
                return await super().run(charge_id, channel)
        finally:
            self._holders[charge_id] -= 1
            if not self._holders[charge_id]:  # nobody else wants it: do not keep a lock per payment forever
                del self._holders[charge_id], self._locks[charge_id]


STEPS: dict[str, type[ReceiptStep]] = {cls.mode: cls for cls in (VulnerableStep, AtomicStep, LeaseStep, LockedStep)}
