"""The reference receipt service: a FastAPI mirror of the seed's PhonePe service-charge backend."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Callable

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from . import logs, phonepe
from .config import ServiceConfig
from .faults import Faults, SimulatedCrash
from .metrics import ServiceMetrics
from .modes import NOT_PAID, STEPS, LeaseStep, ReceiptGenerator, ReceiptOutcome
from .store import ChargeStore, open_store

API = "/api/public/service-charges"
# prometheus_client's multiprocess mode: set (by ``serve --workers N``) before any worker imports it.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_CHARGE_ID = re.compile(r"^[0-9a-f]{32}$")


class CreateCharge(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vendorName: str = Field(min_length=1, max_length=200)
    exhibitionId: str = Field(min_length=1, max_length=100)
    amount: StrictInt = Field(gt=0, le=10**11)  # paise


class FaultChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    failure_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    crash_after_claim_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    store_delay_ms: float | None = Field(default=None, ge=0.0, le=60_000)
    write_error_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    race_window_ms: float | None = Field(default=None, ge=0.0, le=60_000)


class ArrivalStampMiddleware:
    """Stamps each response with the time its request was complete (``X-Arrival-Ns``, epoch ns) and
    how long the app worked on it from then (the standard ``Server-Timing: app;dur=<ms>``).

    Complete means the last body message was received (for a request without a body: when its
    headers were), so a client that holds back a request's final byte is not counted as arrived.
    The duration ends when the response starts, after the handler's work: arrival plus duration is
    when the service was done, on its own clock, without the network's round trip in it.
    Plain ASGI rather than Starlette's BaseHTTPMiddleware: a clock read or two per request.
    """

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Wall time for the stamp (comparable across processes), a monotonic clock for the duration.
        stamp = [time.time_ns(), time.perf_counter_ns()]

        async def receive_and_stamp() -> dict:
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                stamp[:] = [time.time_ns(), time.perf_counter_ns()]
            return message

        async def send_with_stamp(message: dict) -> None:
            if message["type"] == "http.response.start":
                duration_ms = (time.perf_counter_ns() - stamp[1]) / 1e6
                message["headers"] = list(message.get("headers", [])) + [
                    (b"x-arrival-ns", str(stamp[0]).encode()),
                    (b"server-timing", f"app;dur={duration_ms:.3f}".encode()),
                ]
            await send(message)

        await self.app(scope, receive_and_stamp, send_with_stamp)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"success": False, "error": message}, status_code=status)


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or None when it is over ``limit`` bytes (checked before and while reading)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def public_charge(doc: dict) -> dict:
    return {
        "id": doc["_id"],
        "merchantTransactionId": doc["merchantTransactionId"],
        "vendorName": doc.get("vendorName"),
        "exhibitionId": doc.get("exhibitionId"),
        "amount": doc["amount"],
        "paymentStatus": doc["paymentStatus"],
        "transactionId": doc.get("transactionId"),
        "receiptGenerated": bool(doc.get("receiptGenerated")),
        "receiptPath": doc.get("receiptPath"),
    }


def create_app(config: ServiceConfig, store: ChargeStore | None = None,
               http_client: httpx.AsyncClient | None = None) -> FastAPI:
    config.validate()
    if store is None and config.store == "wire" and not config.mongo_uri:
        raise ValueError("the wire store's server is started by `serve --store wire`; give create_app its URI "
                         "(ServiceConfig.mongo_uri)")
    receipts_dir = Path(config.receipts_dir).resolve()
    receipts_dir.mkdir(parents=True, exist_ok=True)
    store = store if store is not None else open_store(config.mongo_uri, config.database)
    metrics = ServiceMetrics()
    faults = Faults(failure_rate=config.failure_rate, crash_after_claim_rate=config.crash_after_claim_rate,
                    store_delay_ms=config.store_delay_ms, write_error_rate=config.write_error_rate,
                    race_window_ms=config.race_window_ms, seed=config.seed)
    executor = ThreadPoolExecutor(max_workers=32, thread_name_prefix="store")

    async def run_blocking(fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)

    generator = ReceiptGenerator(receipts_dir, config.generation_delay_ms, faults, metrics, run_blocking)
    step = STEPS[config.mode](store, generator, metrics, executor, faults, config.lease_seconds)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        app.state.http = http_client or httpx.AsyncClient(timeout=10.0)
        yield
        if http_client is None:
            await app.state.http.aclose()
        executor.shutdown(wait=False)

    app = FastAPI(title="race-harness reference receipt service", lifespan=lifespan)
    app.state.config = config
    app.state.store = store
    app.state.metrics = metrics
    app.state.faults = faults
    app.add_middleware(ArrivalStampMiddleware)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors()]
        return _error(400, "invalid request: " + "; ".join(errors))

    async def apply_payment(charge: dict, payload: phonepe.PaymentPayload, channel: str) -> JSONResponse:
        """The shared tail of callback, webhook and verify: record the payment state, then the receipt step."""
        data = payload.data
        if data.merchantId != config.merchant_id:
            return _error(400, f"unknown merchantId {data.merchantId!r}")
        if data.amount != charge["amount"]:
            return _error(409, f"amount {data.amount} does not match the charge's {charge['amount']}")
        if data.state == "COMPLETED":
            await run_blocking(store.mark_paid, charge["_id"], data.transactionId, data.paymentInstrument)
            try:
                result = await step.run(charge["_id"], channel)
            except SimulatedCrash as exc:
                # The injected "process death": no rollback ran; the client sees a server error,
                # marked as injected so a harness can tell it from a real one.
                return JSONResponse({"success": False, "error": str(exc), "injectedFault": "crash_after_claim"},
                                    status_code=500)
        else:
            if data.state == "FAILED":
                await run_blocking(store.mark_failed, charge["_id"])
            result = ReceiptOutcome(NOT_PAID)
        current = await run_blocking(store.get, charge["_id"])
        return JSONResponse({
            "success": True,
            "chargeId": charge["_id"],
            "merchantTransactionId": charge["merchantTransactionId"],
            "state": data.state,
            "paymentStatus": current["paymentStatus"],
            "receipt": result.outcome,
            "receiptPath": result.receipt_path,
        })

    @app.get("/healthz")
    async def healthz() -> dict:
        # pid: which worker answered (several share the port with --workers N)
        return {"status": "ok", "mode": config.mode, "store": store.kind, "workers": config.workers,
                "pid": os.getpid()}

    @app.get("/_admin/faults")
    async def get_faults() -> dict:
        return faults.to_dict()

    @app.put("/_admin/faults")
    async def set_faults(change: FaultChange) -> dict:
        """Change injected faults at runtime (the reference service is a test subject)."""
        faults.update(**change.model_dump(exclude_none=True))
        return faults.to_dict()

    @app.post("/_admin/sweep")
    async def sweep() -> JSONResponse:
        """Complete paid charges left without a receipt (lease mode: expired leases, rolled-back failures)."""
        if not isinstance(step, LeaseStep):
            return _error(409, f"the sweep needs --mode lease (this service runs {config.mode})")
        return JSONResponse({"swept": await step.sweep()})

    multiprocess_dir = os.environ.get(MULTIPROC_ENV) if config.workers > 1 else None

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        # With several workers each counts in its own process: report the sum over all of them.
        body = _multiprocess_metrics(multiprocess_dir) if multiprocess_dir else metrics.render()
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.post(API, status_code=201)
    async def create_charge(body: CreateCharge) -> dict:
        # PhonePe: merchantTransactionId is unique, < 36 chars, letters/digits/_/- only.
        mtid = f"MT{int(time.time() * 1000)}{secrets.token_hex(5).upper()}"
        doc = await run_blocking(lambda: store.create(vendor_name=body.vendorName, exhibition_id=body.exhibitionId,
                                                      amount=body.amount, merchant_transaction_id=mtid))
        return {"id": doc["_id"], "merchantTransactionId": mtid, "amount": doc["amount"],
                "paymentStatus": doc["paymentStatus"]}

    @app.post(API + "/phonepe/callback")
    async def phonepe_callback(request: Request) -> JSONResponse:
        response = await _callback(request)
        metrics.callbacks.labels(status=str(response.status_code)).inc()
        return response

    async def _callback(request: Request) -> JSONResponse:
        return await _deliver(request, "callback", lambda raw: phonepe.parse_callback(
            raw, request.headers.get("x-verify"), salt_key=config.salt_key, salt_index=config.salt_index))

    @app.post(API + "/phonepe/webhook")
    async def phonepe_webhook(request: Request) -> JSONResponse:
        """PhonePe PG v2's order webhook: the same payment, the same receipt step as a v1 callback."""
        response = await _deliver(request, "webhook", lambda raw: phonepe.parse_webhook(
            raw, request.headers.get("authorization"), username=config.webhook_username,
            password=config.webhook_password))
        metrics.webhooks.labels(status=str(response.status_code)).inc()
        return response

    async def _deliver(request: Request, channel: str,
                       parse: Callable[[bytes], phonepe.PaymentPayload]) -> JSONResponse:
        """A server-to-server delivery (v1 callback or v2 webhook): read, authenticate and parse it,
        find its charge, then the shared payment tail."""
        raw = await _read_limited(request, config.max_body_bytes)
        if raw is None:
            return _error(413, f"body over {config.max_body_bytes} bytes")
        try:
            payload = parse(raw)
        except phonepe.Unauthorized as exc:
            return _error(401, str(exc))
        except phonepe.BadRequest as exc:
            return _error(400, str(exc))
        charge = await run_blocking(store.get_by_transaction, payload.data.merchantTransactionId)
        if charge is None:
            return _error(404, f"unknown merchantTransactionId {payload.data.merchantTransactionId!r}")
        return await apply_payment(charge, payload, channel)

    @app.post(API + "/{charge_id}/verify")
    async def verify_payment(charge_id: str) -> JSONResponse:
        charge = await _find(charge_id)
        if charge is None:
            return _error(404, "unknown service charge")
        try:
            payload = await phonepe.fetch_status(app.state.http, config.phonepe_base_url, config.merchant_id,
                                                 charge["merchantTransactionId"], salt_key=config.salt_key,
                                                 salt_index=config.salt_index)
        except phonepe.GatewayError as exc:
            return _error(502, str(exc))
        if payload.data.merchantTransactionId != charge["merchantTransactionId"]:
            return _error(502, "status API answered for another transaction")
        return await apply_payment(charge, payload, "verify")

    async def _find(charge_id: str) -> dict | None:
        if not _CHARGE_ID.match(charge_id):
            return None
        return await run_blocking(store.get, charge_id)

    @app.get(API + "/{charge_id}")
    async def get_charge(charge_id: str) -> JSONResponse:
        charge = await _find(charge_id)
        if charge is None:
            return _error(404, "unknown service charge")
        return JSONResponse(public_charge(charge))

    @app.get(API + "/{charge_id}/receipt")
    async def get_receipt(charge_id: str) -> Response:
        charge = await _find(charge_id)
        if charge is None or not charge.get("receiptPath"):
            return _error(404, "no receipt for this service charge")
        path = Path(charge["receiptPath"]).resolve()
        if path.parent != receipts_dir or not path.is_file():
            return _error(404, "receipt file not found")
        return FileResponse(path, media_type="application/pdf", filename=path.name)

    return app


def _multiprocess_metrics(directory: str) -> bytes:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    return generate_latest(registry)


def app_from_env() -> FastAPI:
    """uvicorn factory for worker processes: configuration comes from RH_* variables."""
    config = ServiceConfig.from_env()
    logs.configure(config.log_level)
    return create_app(config)
