"""Start the reference service (and the PhonePe simulator) as real processes on loopback.

The store is chosen here too: ``memory`` (the service's embedded mongomock), ``wire`` (a SecantusDB
wire-protocol server that the harness starts, see ``harness.local.wire``, and hands to the service as
its ``--mongo-uri``), or an external MongoDB by URI. ``workers`` runs the service as several
processes sharing its port; they need a shared store (wire or MongoDB).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import httpx

from harness.local.service import ServiceProcess, free_port, spawn
from harness.errors import ServiceStartError
from harness.local.poll import poll

STORES = ("memory", "wire")


def resolve_store(store: str | None, mongo_uri: str | None, workers: int = 1,
                  environ: dict[str, str] | None = None) -> tuple[str, str | None]:
    """('memory' | 'wire' | 'mongodb', URI) from a store name and/or a URI; ValueError on a contradiction.

    With neither given, ``MONGODB_URI`` picks an external MongoDB, else memory (the service's rule).
    """
    if store is not None and store not in STORES:
        raise ValueError(f"--store must be one of {', '.join(STORES)}, not {store!r}")
    if store and mongo_uri:
        raise ValueError(f"--store {store} and --mongo-uri name two different stores: give one of them")
    if not store and not mongo_uri:
        mongo_uri = (os.environ if environ is None else environ).get("MONGODB_URI") or None
    kind = store or ("mongodb" if mongo_uri else "memory")
    if mongo_uri and not mongo_uri.startswith(("mongodb://", "mongodb+srv://")):
        raise ValueError(f"--mongo-uri must start with mongodb:// or mongodb+srv://, not {mongo_uri!r}")
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, not {workers}")
    if kind == "memory" and workers > 1:
        raise ValueError(f"--workers {workers} needs a store the workers share: with the memory store each worker "
                         f"process would hold a database of its own. Use --store wire or --mongo-uri URI")
    return kind, mongo_uri


@dataclass(frozen=True)
class FaultFlags:
    """Faults to start the reference service with (its flags of the same names)."""

    failure_rate: float = 0.0
    crash_after_claim_rate: float = 0.0
    store_delay_ms: float = 0.0
    write_error_rate: float = 0.0
    race_window_ms: float = 0.0  # vulnerable mode: exactly this long between the flag's check and its setting
    seed: int | None = None  # the service's --seed: which rolls of the dice fail, for repeatable runs

    def _faults(self) -> dict[str, float]:
        return {k: v for k, v in self.__dict__.items() if k != "seed"}

    def args(self) -> list[str]:
        args = [arg for name, value in self._faults().items() if value
                for arg in (f"--{name.replace('_', '-')}", str(value))]
        return args + (["--seed", str(self.seed)] if self.seed is not None else [])

    def runtime(self) -> dict[str, float]:
        """The faults by the names the service's faults endpoint takes."""
        return self._faults()

    def active(self) -> bool:
        return any(self._faults().values())


def start_service(receipts_dir: Path, *, mode: str = "atomic", generation_delay_ms: float = 200.0,
                  failure_rate: float = 0.0, faults: FaultFlags | None = None, lease_seconds: float | None = None,
                  phonepe_base_url: str | None = None, mongo_uri: str | None = None, store: str | None = None,
                  wire: Any = None, database: str | None = None, workers: int = 1,
                  extra_args: Sequence[str] = (), host: str = "127.0.0.1", port: int | None = None,
                  log_path: Path | None = None, env: dict[str, str] | None = None,
                  timeout: float = 120.0, http2: bool = False, tls: bool = False,
                  webhook_username: str | None = None, webhook_password: str | None = None) -> ServiceProcess:
    """Run ``python -m reference_service`` on a free loopback port and wait until it answers.

    ``webhook_username``/``webhook_password``: the credentials of its PhonePe v2 webhook (else the
    service's local defaults), handed over in its environment so they are not on its command line.

    ``http2`` serves with hypercorn (h2c with prior knowledge beside HTTP/1.1); ``tls`` (with
    ``http2``) serves ``https://`` under the service's throw-away self-signed certificate, so
    clients must not verify it (``verify_tls=False``).

    ``store="wire"`` starts a wire server for this service (stopped with it), or uses ``wire`` (a
    running ``harness.local.wire.WireServer``, left running: e.g. one per test session, a database per
    service). ``workers`` > 1: the call returns once every worker answers.
    """
    kind, uri = resolve_store("wire" if wire is not None else store, mongo_uri, workers)
    credentials = {name: value for name, value in (("RH_WEBHOOK_USERNAME", webhook_username),
                                                   ("RH_WEBHOOK_PASSWORD", webhook_password)) if value is not None}
    if credentials:
        env = {**(env or {}), **credentials}
    receipts_dir = Path(receipts_dir)
    receipts_dir.mkdir(parents=True, exist_ok=True)
    owned: list[Any] = []
    if kind == "wire":
        from harness.errors import WireServerError
        from harness.local.wire import start_wire_server

        if wire is None:
            try:
                wire = start_wire_server(host=host)
            except WireServerError as exc:
                raise ServiceStartError(str(exc)) from None
            owned.append(wire)
        uri = wire.uri
    try:
        service = _start_service(receipts_dir, mode=mode, generation_delay_ms=generation_delay_ms,
                                 failure_rate=failure_rate, faults=faults, lease_seconds=lease_seconds,
                                 phonepe_base_url=phonepe_base_url, kind=kind, mongo_uri=uri, database=database,
                                 workers=workers, extra_args=extra_args, host=host, port=port, log_path=log_path,
                                 env=env, timeout=timeout, http2=http2, tls=tls)
    except BaseException:
        for thing in owned:
            thing.stop()
        raise
    service.owned = owned
    return service


def _start_service(receipts_dir: Path, *, mode: str, generation_delay_ms: float, failure_rate: float,
                   faults: FaultFlags | None, lease_seconds: float | None, phonepe_base_url: str | None, kind: str,
                   mongo_uri: str | None, database: str | None, workers: int, extra_args: Sequence[str], host: str,
                   port: int | None, log_path: Path | None, env: dict[str, str] | None,
                   timeout: float, http2: bool = False, tls: bool = False) -> ServiceProcess:
    port = port or free_port(host)
    args = ["reference_service", "--mode", mode, "--host", host, "--port", str(port),
            "--receipts-dir", str(receipts_dir), "--generation-delay-ms", str(generation_delay_ms)]
    faults = faults or FaultFlags()
    if failure_rate:
        faults = FaultFlags(**{**faults.__dict__, "failure_rate": failure_rate})
    args += faults.args()
    if lease_seconds is not None:
        args += ["--lease-seconds", str(lease_seconds)]
    if phonepe_base_url:
        args += ["--phonepe-base-url", phonepe_base_url]
    # The store is always named, so a MONGODB_URI in this environment cannot change it behind our back.
    args += ["--mongo-uri", mongo_uri] if mongo_uri else ["--store", "memory"]
    if database:
        args += ["--database", database]
    if workers != 1:
        args += ["--workers", str(workers)]
    if http2 or tls:
        args += ["--http2"] + (["--tls"] if tls else [])
    args += list(extra_args)
    if log_path is None:
        log_path = Path(tempfile.mkstemp(prefix="reference-service-", suffix=".log")[1])
    if tls:
        service = _spawn_tls(args, f"https://{host}:{port}", log_path, env=env, timeout=timeout)
    else:
        service = spawn(args, f"http://{host}:{port}", log_path, env=env, timeout=timeout, health_path="/healthz")
    service.receipts_dir = receipts_dir
    service.store, service.mongo_uri, service.workers = kind, mongo_uri, workers
    service.database = database or "race_harness"
    if workers > 1:
        try:
            _wait_for_workers(service, workers, time.monotonic() + timeout)
        except BaseException:
            service.stop()
            raise
    return service


def _spawn_tls(args: list[str], url: str, log_path: Path, *, env: dict[str, str] | None,
               timeout: float) -> ServiceProcess:
    """``spawn`` for a service whose certificate it made itself: its health check cannot verify it."""
    with open(log_path, "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", *args], stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})
    service = ServiceProcess(url=url, process=process, log_path=log_path, args=list(args))

    def healthy() -> bool:
        if process.poll() is not None:
            raise ServiceStartError(f"reference_service exited with {process.returncode}: {service.log_text()[-2000:]}")
        try:
            return httpx.get(url + "/healthz", timeout=1.0, verify=False).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        if poll(healthy, timeout=timeout):
            return service
    except BaseException:
        service.stop()
        raise
    service.stop()
    raise ServiceStartError(f"reference_service did not answer /healthz over TLS within {timeout:.0f} s")


def _wait_for_workers(service: ServiceProcess, workers: int, deadline: float) -> None:
    """Every worker answers before a race starts: a burst at one ready worker of four races nothing."""
    seen: set[int] = set()
    with httpx.Client(timeout=2.0, limits=httpx.Limits(max_keepalive_connections=0)) as client:

        def all_seen() -> bool:
            if service.process.poll() is not None:
                raise ServiceStartError(f"reference_service exited with {service.process.returncode}: "
                                        f"{service.log_text()[-2000:]}")
            try:
                seen.add(client.get(service.url + "/healthz").json()["pid"])
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            return len(seen) >= workers

        if poll(all_seen, timeout=max(0.0, deadline - time.monotonic()), interval=0.01):
            return
    raise ServiceStartError(f"only {len(seen)} of {workers} workers answered /healthz in time")


def start_simulator(*, host: str = "127.0.0.1", port: int | None = None, log_path: Path | None = None,
                    extra_args: Sequence[str] = (), timeout: float = 120.0) -> ServiceProcess:
    """Run the PhonePe simulator (status API) on a free loopback port."""
    port = port or free_port(host)
    if log_path is None:
        log_path = Path(tempfile.mkstemp(prefix="phonepe-simulator-", suffix=".log")[1])
    args = ["reference_service.simulator", "--host", host, "--port", str(port), *extra_args]
    # The status API answers 401 to an unsigned probe: the docs page is the health check.
    return spawn(args, f"http://{host}:{port}", log_path, env=None, timeout=timeout, health_path="/docs")
