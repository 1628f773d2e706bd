"""``serve``: run the reference service under uvicorn, as one process or as several workers.

The store is one of: memory (embedded mongomock, one process only), wire (a SecantusDB wire-protocol
server that ``race-harness serve --store wire`` starts on a free loopback port and hands over as the
URI), or an external MongoDB named by its URI. Workers share the listening port and the store; they get their
configuration through ``RH_*`` environment variables (``ServiceConfig.to_env``) and count their
Prometheus metrics in one multiprocess directory, so ``/metrics`` from any worker covers them all.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator, Sequence

import uvicorn

from . import logs
from .app import MULTIPROC_ENV, create_app
from .config import ServiceConfig, add_arguments, from_args
from .store import ChargeStore, StoreUnavailable, open_store

PREFLIGHT_TIMEOUT_MS = 4000  # an unreachable MongoDB is reported well within 10 s


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="reference_service",
                                               description="Reference PhonePe receipt service")
    add_arguments(parser)
    return parser


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 4


def _terminate_as_exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def _exit_on_sigterm() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C does, so what ``serve`` started (the wire server) is stopped.

    uvicorn (one worker) re-raises the signal it shut down on once it returns; this handler turns
    it into SystemExit instead of an abrupt death that would leave the wire server running.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate_as_exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def serve(args: argparse.Namespace) -> int:
    try:
        config = from_args(args)
    except ValueError as exc:
        return _error(str(exc))
    logs.configure(config.log_level)
    if config.store == "wire" and not config.mongo_uri:
        # The service never starts (or imports) the wire server: whoever runs it does, and passes its URI.
        return _error("the wire store's server is started by `race-harness serve --store wire`; "
                      "run the service alone with --mongo-uri URI")
    with _exit_on_sigterm(), contextlib.ExitStack() as stack:
        try:
            # Checks the URI and that the server answers, before any worker starts.
            store = open_store(config.mongo_uri, config.database, timeout_ms=PREFLIGHT_TIMEOUT_MS)
        except StoreUnavailable as exc:
            return _error(str(exc))
        if config.workers == 1:
            return _serve_one(config, store)
        store.close()
        return _serve_workers(config, stack)


def _serve_one(config: ServiceConfig, store: ChargeStore) -> int:
    try:
        app = create_app(config, store=store)
    except Exception as exc:  # e.g. an unwritable receipts directory: say so, no traceback
        return _error(f"cannot start the service: {exc}")
    if config.http2:
        return _serve_http2(app, config)
    print(f"serving on http://{config.host}:{config.port} (mode {config.mode}, store {config.store})", flush=True)
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning", access_log=False)
    return 0


def _serve_http2(app: object, config: ServiceConfig) -> int:
    """hypercorn: h2c with prior knowledge (and HTTP/1.1) on the port, or TLS offering h2 by ALPN.

    hypercorn hands a request's body to the app as it arrives and its end as a last, empty
    ``http.request`` message when END_STREAM does, so the arrival stamp still means "complete".
    """
    import asyncio

    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    hyper = Config()
    host = f"[{config.host}]" if ":" in config.host else config.host
    hyper.bind = [f"{host}:{config.port}"]
    hyper.loglevel = "WARNING"
    hyper.accesslog = None
    with tempfile.TemporaryDirectory(prefix="reference-service-tls-") as tmp:
        if config.tls:
            try:
                hyper.certfile, hyper.keyfile = _self_signed(Path(tmp), config.host)
            except (OSError, subprocess.CalledProcessError) as exc:
                return _error(f"cannot make a TLS certificate with openssl: {exc}")
        scheme = "https" if config.tls else "http"
        print(f"serving on {scheme}://{config.host}:{config.port} (HTTP/2{' over TLS' if config.tls else ', h2c'}, "
              f"mode {config.mode}, store {config.store})", flush=True)
        asyncio.run(_until_signalled(hypercorn_serve, app, hyper))
    return 0


async def _until_signalled(serve_with: Any, app: object, hyper: Any) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully (the app's lifespan ends)."""
    import asyncio

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await serve_with(app, hyper, shutdown_trigger=stop.wait)


def _self_signed(directory: Path, host: str) -> tuple[str, str]:
    """A throw-away certificate for ``host`` (and localhost), valid one day; (certfile, keyfile)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    kind = "IP" if host.replace(".", "").isdigit() or ":" in host else "DNS"
    names = f"subjectAltName={kind}:{host},DNS:localhost,IP:127.0.0.1"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "1", "-subj", f"/CN={host}", "-addext", names,
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=30)
    return str(cert), str(key)


def _serve_workers(config: ServiceConfig, stack: contextlib.ExitStack) -> int:
    config.receipts_dir = config.receipts_dir.resolve()
    try:
        config.receipts_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return _error(f"cannot create the receipts directory {config.receipts_dir}: {exc}")
    env = config.to_env()
    if not os.environ.get(MULTIPROC_ENV):
        metrics_dir = tempfile.mkdtemp(prefix="race-harness-metrics-")
        stack.callback(shutil.rmtree, metrics_dir, ignore_errors=True)
        env[MULTIPROC_ENV] = metrics_dir
    os.environ.update(env)  # the workers are spawned with this environment
    print(f"serving on http://{config.host}:{config.port} ({config.workers} workers, mode {config.mode}, "
          f"store {config.store})", flush=True)
    uvicorn.run("reference_service.app:app_from_env", factory=True, workers=config.workers, host=config.host,
                port=config.port, log_level="warning", access_log=False)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return serve(build_parser().parse_args(argv))
