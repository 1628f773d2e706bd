"""Running the same tests on the memory store and on a real MongoDB wire protocol (SecantusDB).

Each test process (each pytest-xdist worker) starts one wire server on its own free loopback port,
the first time a test asks for it, and stops it when the process exits. Every service and every
store on it gets a database of its own, so tests never see each other's charges.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Callable, Iterator

import pytest

from harness.local.service import ServiceProcess
from harness.reference import start_service
from harness.profile.legacy import Target
from harness.local.wire import WireServer, start_wire_server
from reference_service.store import ChargeStore, open_store

STORES = ("memory", "wire")
_server: WireServer | None = None


def wire_server() -> WireServer:
    """This process's wire server (started on first use; harness.local.wire stops it at exit)."""
    global _server
    if _server is None or not _server.alive():
        _server = start_wire_server()
    return _server


def fresh_database() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=STORES)
def store_kind(request) -> str:
    return request.param


@pytest.fixture
def store(store_kind) -> Iterator[ChargeStore]:
    """The service's store code on the embedded store, or through pymongo on the wire server."""
    opened = open_store(None if store_kind == "memory" else wire_server().uri, fresh_database())
    yield opened
    opened.close()


@pytest.fixture
def start_on_store(tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    """A factory: start the reference service on a store (memory or wire), with its own receipts directory."""
    started: list[ServiceProcess] = []

    def start(store: str, mode: str = "atomic", **kwargs) -> ServiceProcess:
        n = len(started)
        on_wire = {"wire": wire_server(), "database": fresh_database()} if store == "wire" else {"store": store}
        service = start_service(tmp_path / f"receipts-{n}", mode=mode, log_path=tmp_path / f"service-{n}.log",
                                **on_wire, **kwargs)
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


def target_of(service: ServiceProcess, *, state_from_database: bool = False) -> Target:
    """The service as the oracle sees it; state straight from its database when asked (and it has one)."""
    target = Target(base_url=service.url, receipts_dir=str(service.receipts_dir))
    if state_from_database:
        assert service.mongo_uri, "the memory store has no database to read from outside the service"
        target = target.with_(mongo_uri=service.mongo_uri, mongo_database=service.database)
    return target


