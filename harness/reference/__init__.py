"""The reference service as one provider of a target: the only harness module that knows its flags.

The harness judges any service through its ``Profile``; this module starts the reference service
(and, for verify calls, the PhonePe simulator) as real processes, and yields its Profile, the
process id whose memory is measured, what the service was told to fail at (so retry rounds can
clear it), and a description for the report. Everything about modes, faults, stores and workers
lives here; ``RunConfig`` knows none of it.
"""

from __future__ import annotations

import argparse
import contextlib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

from harness.local.service import ServiceProcess
from harness.errors import ReferenceUnavailable, ServiceStartError
from harness.run.options import Option
from harness.profile import Profile, Target, load_profile
from .processes import STORES, FaultFlags, resolve_store, start_service, start_simulator

MODES = ("vulnerable", "atomic", "lease", "locked")
# What the reference service imports beyond the harness: the `reference` extra.
_EXTRA = ("fastapi", "uvicorn", "mongomock", "fpdf")
INSTALL_HINT = "pip install 'race-harness[reference]'  (from a checkout: pip install -e '.[reference]')"


def require() -> None:
    """Raise ReferenceUnavailable, naming the extra to install, when the reference service cannot run here."""
    import importlib.util

    missing = [name for name in _EXTRA if importlib.util.find_spec(name) is None]
    if missing:
        raise ReferenceUnavailable(f"the reference service needs {', '.join(missing)}: {INSTALL_HINT}")

# The reference service's options as run options (the CLI's run/demo, the Locust scenarios' embedded
# service, the pytest fixtures): one definition each.
SERVICE = (
    Option("mode", str, "atomic", "the reference service's receipt code path", choices=MODES),
    Option("store", str, None, "the service's store: memory (embedded, the default) or wire (a SecantusDB "
                               "wire-protocol server started for the run, pip install -e '.[wire]'); an external "
                               "MongoDB: --mongo-uri", choices=STORES),
    Option("workers", int, None, "the service's worker processes, sharing its port and store (N > 1 needs "
                                 "--store wire or --mongo-uri; default: 1)"),
    Option("generation_delay_ms", float, 200.0, "the service's receipt generation time in ms"),
    Option("failure_rate", float, 0.0, "probability a receipt generation fails"),
    Option("crash_after_claim_rate", float, 0.0, "probability the claim's winner dies before generating (no rollback)"),
    Option("store_delay_ms", float, 0.0, "latency between store read and write"),
    Option("write_error_rate", float, 0.0, "probability the receipt write fails"),
    Option("lease_seconds", float, None, "lease length for --mode lease"),
    Option("transient_faults", None, False, "clear the faults before retry rounds (a crash happens once)", flag=True),
    Option("http2", None, False, "serve the reference service over HTTP/2 (hypercorn: h2c with prior knowledge, "
                                 "beside HTTP/1.1), for --sync single-packet or auto", flag=True),
    Option("tls", None, False, "serve the reference service over https with ALPN h2 (implies --http2), under a "
                               "throw-away certificate: --insecure to race it", flag=True),
)


@dataclass(frozen=True)
class ReferenceOptions:
    """How to start the reference service for a run."""

    mode: str = "atomic"
    generation_delay_ms: float = 200.0
    faults: FaultFlags = field(default_factory=FaultFlags)
    lease_seconds: float | None = None
    # "memory", "wire" (a SecantusDB server started for the service), or an external MongoDB by
    # ``mongo_uri``; None: MONGODB_URI when set, else memory. With MongoDB, state is read from it.
    store: str | None = None
    mongo_uri: str | None = None
    workers: int = 1
    transient_faults: bool = False
    receipts_dir: Path | None = None  # a directory of the run's own if None
    service_args: tuple[str, ...] = ()  # more flags for the service
    # Judge the started service through this profile (a file or a built-in name such as "reference"
    # or "reference-v2") instead of the legacy target description.
    profile: str | None = None
    http2: bool = False  # hypercorn: h2c with prior knowledge (and HTTP/1.1) on the port
    tls: bool = False  # https with ALPN h2 under a throw-away certificate (implies http2)

    def validate(self) -> tuple[str, str | None]:
        """(store kind, MongoDB URI); ValueError on a contradiction or an unknown mode."""
        if self.mode not in MODES:
            raise ValueError(f"--mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if (self.http2 or self.tls) and self.workers > 1:
            raise ValueError("--http2 and --tls serve from one process: --workers is for the HTTP/1.1 server")
        return resolve_store(self.store, self.mongo_uri, self.workers)

    def describe(self) -> dict[str, Any]:
        described = {"embedded": True, "mode": self.mode, "generation_delay_ms": self.generation_delay_ms,
                     "faults": asdict(self.faults), "lease_seconds": self.lease_seconds,
                     "args": list(self.service_args), "store": self.store or "default", "workers": self.workers}
        if self.http2 or self.tls:
            described.update(http2=True, tls=self.tls)
        return described

    @classmethod
    def from_args(cls, args: argparse.Namespace, **overrides: Any) -> "ReferenceOptions":
        faults = FaultFlags(failure_rate=args.failure_rate, crash_after_claim_rate=args.crash_after_claim_rate,
                            store_delay_ms=args.store_delay_ms, write_error_rate=args.write_error_rate)
        options = cls(mode=getattr(args, "mode", "atomic"), generation_delay_ms=args.generation_delay_ms,
                      faults=faults, lease_seconds=args.lease_seconds, store=args.store,
                      mongo_uri=getattr(args, "mongo_uri", None),
                      workers=1 if args.workers is None else args.workers, transient_faults=args.transient_faults,
                      http2=bool(getattr(args, "http2", False)), tls=bool(getattr(args, "tls", False)))
        return replace(options, **overrides)


@dataclass
class Provided:
    """A running reference service, as the run sees it."""

    profile: Profile  # the service as the run judges it: the reference contract, or the profile the options name
    pid: int
    service: ServiceProcess
    options: ReferenceOptions

    def run_settings(self) -> dict[str, Any]:
        """RunConfig fields this service fills in: its profile, process, faults and description."""
        faults = self.options.faults
        return {"profile": self.profile, "service_pid": self.pid, "faults": faults.runtime(),
                "transient_faults": self.options.transient_faults,
                "server_errors_injected": faults.crash_after_claim_rate > 0, "service": self.options.describe()}


@contextlib.contextmanager
def started(options: ReferenceOptions, workdir: Path, *, gateway: bool = False,
            announce: Callable[[str], None] | None = None) -> Iterator[Provided]:
    """Start the reference service (and with ``gateway`` the PhonePe simulator its verify path asks) for one run."""
    require()
    kind, uri = options.validate()
    receipts = options.receipts_dir or workdir / "receipts"
    simulator = start_simulator(log_path=workdir / "simulator.log") if gateway else None
    try:
        service = start_service(receipts, mode=options.mode, generation_delay_ms=options.generation_delay_ms,
                                faults=options.faults, lease_seconds=options.lease_seconds,
                                phonepe_base_url=simulator.url if simulator else None,
                                store=kind if kind != "mongodb" else None, mongo_uri=uri, workers=options.workers,
                                extra_args=options.service_args, log_path=workdir / "service.log",
                                http2=options.http2, tls=options.tls)
        try:
            if kind == "wire" and announce:
                announce(f"wire store: SecantusDB at {service.mongo_uri} (stopped when the run ends)")
            gateway_url = simulator.url if simulator else None
            profile = (named_profile_of(options.profile, service, gateway_url) if options.profile
                       else profile_of(service, gateway_url=gateway_url))
            yield Provided(profile, service.pid, service, options)
        finally:
            service.stop()
    finally:
        if simulator:
            simulator.stop()


def target_of(service: ServiceProcess, **changes: Any) -> Target:
    """The legacy Target of a running reference service (a small client of it: create a payment, sign a
    callback); with a MongoDB store, state is read straight from it."""
    target = Target(base_url=service.url, receipts_dir=str(service.receipts_dir) if service.receipts_dir else None)
    if service.mongo_uri:
        target = target.with_(mongo_uri=service.mongo_uri, mongo_database=service.database)
    return target.with_(**changes)


def profile_of(service: ServiceProcess, **changes: Any) -> Profile:
    """The Profile a run judges a running reference service by (its contract, its URL, receipts and store)."""
    target = target_of(service, **changes)
    return target.to_profile({"from": "reference service", "base_url": target.base_url})


def service_profile(mode: str, *, port: int, receipts_dir: Path, mongo_uri: str, database: str,
                    generation_delay_ms: float = 200.0, lease_seconds: float | None = None,
                    database_link: int | None = None) -> Profile:
    """The reference service as a profile whose ``[service]`` the harness starts, kills and starts again (the
    nemesis): its own process on ``port``, its state in ``database`` on a MongoDB that outlives it (a
    restart finds its charges where they were). ``database_link``: a port for the harness's relay in front
    of that MongoDB, which the service then connects through (``[service.links.database]``, cut by ``cut@``)."""
    import sys
    from urllib.parse import urlsplit

    from harness.profile.schema import LinkSection, ServiceSection

    links = {}
    if database_link is not None:
        upstream = urlsplit(mongo_uri)
        links["database"] = LinkSection(listen=database_link, upstream=f"{upstream.hostname}:{upstream.port}")
        mongo_uri = f"mongodb://127.0.0.1:{database_link}/"
    command = [sys.executable, "-m", "reference_service", "--mode", mode, "--host", "127.0.0.1", "--port", str(port),
               "--receipts-dir", str(receipts_dir), "--mongo-uri", mongo_uri, "--database", database,
               "--generation-delay-ms", f"{generation_delay_ms:g}"]
    if lease_seconds is not None:
        command += ["--lease-seconds", f"{lease_seconds:g}"]
    target = Target(base_url=f"http://127.0.0.1:{port}", receipts_dir=str(receipts_dir))
    profile = target.to_profile({"from": "reference service", "mode": mode, "base_url": target.base_url})
    service = ServiceSection(command=command, ready_path="/healthz", ready_timeout=60.0, links=links)
    return Profile(profile.spec.model_copy(update={"service": service}), profile.origin)


def named_profile_of(profile: str, service: ServiceProcess, gateway_url: str | None = None) -> Profile:
    """A profile (file or built-in name) of a running reference service: its URL, receipts and simulator filled in."""
    import os

    variables = {**os.environ, "BASE_URL": service.url, "RECEIPTS_DIR": str(service.receipts_dir or ""),
                 "GATEWAY_URL": gateway_url or ""}
    return load_profile(profile, variables)


def race(options: ReferenceOptions, config: Any, progress: Any = None) -> Any:
    """Start the reference service, run ``config`` (a RunConfig without a target) against it, stop it."""
    import tempfile

    from harness.errors import HarnessError
    from harness.run.session import run_race

    try:  # usage errors before anything is started
        require()
        options.validate()
        config.plan.validate()
    except (ValueError, ReferenceUnavailable) as exc:
        raise HarnessError(str(exc)) from None
    with tempfile.TemporaryDirectory(prefix="race-harness-") as tmp:
        try:
            with started(options, Path(tmp), gateway=config.plan.uses_verify(), announce=config.announce) as provided:
                run = replace(config, **provided.run_settings(), label=config.label or options.mode)
                return run_race(run, progress) if progress else run_race(run)
        except ServiceStartError as exc:
            raise HarnessError(f"could not start the reference service: {exc}") from None


# -- race-harness serve ------------------------------------------------------------------------------

def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """The reference service's own flags, for ``race-harness serve``."""
    from reference_service.config import add_arguments  # the service's own flags (stdlib argparse only)

    add_arguments(parser)


def serve(args: argparse.Namespace) -> int:
    """Run the reference service in the foreground. A wire store's server is the harness's to start (the
    service never imports the harness): it is handed to the service as its --mongo-uri and stopped when
    the service returns, however it ends."""
    require()
    from reference_service.server import serve as serve_reference

    if getattr(args, "store", None) != "wire":
        return serve_reference(args)
    if args.mongo_uri:
        raise ValueError("--store wire and --mongo-uri name two different stores: give one of them")
    from harness.local.wire import start_wire_server

    with start_wire_server(host="127.0.0.1") as wire:
        print(f"wire store: SecantusDB at {wire.uri} (stopped when the service stops)", flush=True)
        args.store, args.mongo_uri = None, wire.uri
        return serve_reference(args)


__all__ = ["INSTALL_HINT", "MODES", "ReferenceUnavailable", "require", "SERVICE", "STORES", "FaultFlags", "Provided", "ReferenceOptions", "add_serve_arguments", "race",
           "resolve_store", "serve", "start_service", "start_simulator", "started", "target_of", "profile_of", "named_profile_of", "service_profile"]
