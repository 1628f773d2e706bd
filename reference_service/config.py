"""The service's configuration, in one place: flags, environment variables, defaults."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

# PhonePe's published UAT (sandbox) credentials; safe to ship as defaults.
UAT_MERCHANT_ID = "PGTESTPAYUAT"
UAT_SALT_KEY = "099eb0cd-02cf-4e2a-8aca-3e6c6aff0399"
UAT_SALT_INDEX = 1
UAT_BASE_URL = "https://api-preprod.phonepe.com/apis/pg-sandbox"
# PG v2 webhook credentials for local runs: set your own with --webhook-username/--webhook-password
# or RH_WEBHOOK_USERNAME/RH_WEBHOOK_PASSWORD (the environment keeps the password off the command line).
LOCAL_WEBHOOK_USERNAME = "race-harness"
LOCAL_WEBHOOK_PASSWORD = "race-harness-webhook"

MODES = ("vulnerable", "atomic", "lease", "locked")
# memory: embedded mongomock, in this process; wire: a MongoDB wire-protocol server (SecantusDB) that
# ``serve`` starts on loopback; mongodb: an external MongoDB at ``mongo_uri``. Only the first two are
# flag values: an external MongoDB is chosen by giving its URI.
STORES = ("memory", "wire")
STORE_KINDS = (*STORES, "mongodb")
ENV_PREFIX = "RH_"


@dataclass
class ServiceConfig:
    mode: str = "atomic"
    host: str = "127.0.0.1"
    port: int = 8000
    receipts_dir: Path = Path("receipts")
    generation_delay_ms: float = 200.0
    failure_rate: float = 0.0
    crash_after_claim_rate: float = 0.0
    store_delay_ms: float = 0.0
    write_error_rate: float = 0.0
    race_window_ms: float = 0.0  # vulnerable mode: exactly this long between the flag's check and its setting
    lease_seconds: float = 30.0
    merchant_id: str = UAT_MERCHANT_ID
    salt_key: str = UAT_SALT_KEY
    salt_index: int = UAT_SALT_INDEX
    webhook_username: str = LOCAL_WEBHOOK_USERNAME
    webhook_password: str = field(default=LOCAL_WEBHOOK_PASSWORD, repr=False)
    phonepe_base_url: str = UAT_BASE_URL
    store: str = "memory"
    mongo_uri: str | None = None
    database: str = "race_harness"
    workers: int = 1
    max_body_bytes: int = 64 * 1024
    log_level: str = "info"
    seed: int | None = None
    http2: bool = False  # serve with hypercorn: h2c (prior knowledge) and HTTP/1.1 on one port
    tls: bool = False  # with http2: TLS with ALPN h2, under a throw-away self-signed certificate

    def __post_init__(self) -> None:
        if self.store == "memory" and self.mongo_uri:
            self.store = "mongodb"  # a URI names the store (ServiceConfig(mongo_uri=...) keeps its old meaning)

    def validate(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        for name in ("failure_rate", "crash_after_claim_rate", "write_error_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name.replace('_', '-')} must be between 0 and 1")
        if not self.webhook_username or not self.webhook_password:
            raise ValueError("webhook-username and webhook-password must not be empty")
        if self.store_delay_ms < 0:
            raise ValueError("store-delay-ms must be >= 0")
        if not 0 <= self.race_window_ms <= 60_000:
            raise ValueError("race-window-ms must be between 0 and 60000")
        if self.lease_seconds <= 0:
            raise ValueError("lease-seconds must be > 0")
        if self.generation_delay_ms < 0:
            raise ValueError("generation-delay-ms must be >= 0")
        if not 0 <= self.port <= 65535:
            raise ValueError("port must be between 0 and 65535")
        if self.store not in STORE_KINDS:
            raise ValueError(f"store must be one of {', '.join(STORES)} (or give --mongo-uri), not {self.store!r}")
        if self.workers < 1:
            raise ValueError(f"--workers must be at least 1, not {self.workers}")
        if self.store == "memory" and self.workers > 1:
            raise ValueError(f"--workers {self.workers} needs a store the workers share: with the memory store each "
                             f"worker process would hold a database of its own. Use --store wire or --mongo-uri URI")
        if self.store == "mongodb" and not self.mongo_uri:
            raise ValueError("the mongodb store needs --mongo-uri URI (or MONGODB_URI)")
        if self.tls and not self.http2:
            raise ValueError("--tls is served by the HTTP/2 server: give --http2 too")
        if self.http2 and self.workers > 1:
            raise ValueError("--http2 runs one process: --workers is for the HTTP/1.1 server (uvicorn)")
        if self.mongo_uri and not self.mongo_uri.startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError(f"--mongo-uri must start with mongodb:// or mongodb+srv://, not {self.mongo_uri!r}")

    def to_env(self) -> dict[str, str]:
        """The configuration as environment variables, for worker processes started by uvicorn."""
        env = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                env[ENV_PREFIX + f.name.upper()] = str(value)
        return env

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "ServiceConfig":
        environ = dict(os.environ if environ is None else environ)
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(ENV_PREFIX + f.name.upper())
            if raw is None:
                continue
            kwargs[f.name] = _coerce(f.name, raw)
        if "mongo_uri" not in kwargs and environ.get("MONGODB_URI"):
            kwargs["mongo_uri"] = environ["MONGODB_URI"]
        return cls(**kwargs)


def _coerce(name: str, raw: str) -> Any:
    if name in ("http2", "tls"):
        return raw.strip().lower() in ("1", "true", "yes")
    if name in ("port", "salt_index", "max_body_bytes", "seed", "workers"):
        return int(raw)
    if name in ("generation_delay_ms", "failure_rate", "crash_after_claim_rate", "store_delay_ms",
                "write_error_rate", "lease_seconds", "race_window_ms"):
        return float(raw)
    if name == "receipts_dir":
        return Path(raw)
    return raw


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``serve`` flags; defaults come from the environment, then from ServiceConfig."""
    env = ServiceConfig.from_env()
    parser.add_argument("--mode", choices=MODES, default=env.mode, help="receipt code path (default: %(default)s)")
    parser.add_argument("--host", default=env.host)
    parser.add_argument("--port", type=int, default=env.port)
    parser.add_argument("--receipts-dir", type=Path, default=env.receipts_dir)
    parser.add_argument("--generation-delay-ms", type=float, default=env.generation_delay_ms,
                        help="extra receipt generation latency (default: %(default)s, the seed's figure)")
    parser.add_argument("--failure-rate", type=float, default=env.failure_rate,
                        help="probability that a receipt generation fails (default: %(default)s)")
    faults = parser.add_argument_group("injected faults (also changeable at runtime: PUT /_admin/faults)")
    faults.add_argument("--crash-after-claim-rate", type=float, default=env.crash_after_claim_rate,
                        help="probability that the claim's winner dies before generating (no rollback)")
    faults.add_argument("--store-delay-ms", type=float, default=env.store_delay_ms,
                        help="latency between reading the store and acting on it (widens race windows)")
    faults.add_argument("--write-error-rate", type=float, default=env.write_error_rate,
                        help="probability that writing the receipt file fails")
    faults.add_argument("--race-window-ms", type=float, default=env.race_window_ms,
                        help="vulnerable mode: exactly this long between checking the receipt flag and setting it "
                             "(a deterministic check-then-act window; 0: the seed's path, flag set after generation)")
    parser.add_argument("--lease-seconds", type=float, default=env.lease_seconds,
                        help="how long a lease-mode claim lasts before another delivery may take over")
    parser.add_argument("--merchant-id", default=env.merchant_id)
    parser.add_argument("--salt-key", default=env.salt_key)
    parser.add_argument("--salt-index", type=int, default=env.salt_index)
    parser.add_argument("--webhook-username", default=env.webhook_username,
                        help="PhonePe v2 webhook username (Authorization is sha256 of username:password; "
                             "env RH_WEBHOOK_USERNAME)")
    parser.add_argument("--webhook-password", default=env.webhook_password,
                        help="PhonePe v2 webhook password (env RH_WEBHOOK_PASSWORD, which keeps it off the "
                             "command line; a local default when unset)")
    parser.add_argument("--phonepe-base-url", default=env.phonepe_base_url,
                        help="base URL of PhonePe's status API (or the simulator)")
    stores = parser.add_argument_group("store (one of: --store memory, --store wire, --mongo-uri URI)")
    stores.add_argument("--store", choices=STORES, default=os.environ.get(ENV_PREFIX + "STORE") or None,
                        help="memory: embedded mongomock in the service's process (the default); wire: start a "
                             "MongoDB wire-protocol server (SecantusDB, pip install -e '.[wire]') on a free loopback "
                             "port, print its URI, stop it when the service stops")
    stores.add_argument("--mongo-uri", default=None,
                        help="an external MongoDB; nothing is started (default: $MONGODB_URI when --store is not given)")
    stores.add_argument("--database", default=env.database)
    parser.add_argument("--workers", type=int, default=env.workers,
                        help="worker processes sharing the port and the store (N > 1 needs --store wire or "
                             "--mongo-uri; default: %(default)s)")
    parser.add_argument("--log-level", default=env.log_level)
    parser.add_argument("--seed", type=int, default=env.seed, help="seed for injected failures")
    parser.add_argument("--http2", action="store_true", default=env.http2,
                        help="serve HTTP/2 with hypercorn: cleartext h2c (prior knowledge) beside HTTP/1.1, or "
                             "with --tls TLS with ALPN h2 (default: HTTP/1.1 on uvicorn)")
    parser.add_argument("--tls", action="store_true", default=env.tls,
                        help="with --http2: serve https under a self-signed certificate made at start (openssl)")


def resolve_store(store: str | None, mongo_uri: str | None, environ: dict[str, str] | None = None
                  ) -> tuple[str, str | None]:
    """The store kind and URI from the flags: ``--store`` and ``--mongo-uri`` are two ways to name one store.

    With neither, the environment's ``RH_MONGO_URI`` or ``MONGODB_URI`` picks an external MongoDB, else memory.
    """
    if store is not None and store not in STORES:
        raise ValueError(f"--store must be one of {', '.join(STORES)}, not {store!r}")
    if store and mongo_uri:
        raise ValueError(f"--store {store} and --mongo-uri name two different stores: give one of them")
    if store:
        return store, None
    if not mongo_uri:
        environ = os.environ if environ is None else environ
        mongo_uri = environ.get(ENV_PREFIX + "MONGO_URI") or environ.get("MONGODB_URI") or None
    return ("mongodb", mongo_uri) if mongo_uri else ("memory", None)


def from_args(args: argparse.Namespace) -> ServiceConfig:
    values = {f.name: getattr(args, f.name) for f in fields(ServiceConfig) if hasattr(args, f.name)}
    values["store"], values["mongo_uri"] = resolve_store(getattr(args, "store", None), getattr(args, "mongo_uri", None))
    config = ServiceConfig(**values)
    config.validate()
    return config
