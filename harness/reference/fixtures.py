"""pytest fixtures for the reference service: start it, and race it (entry point ``pytest11``).

Every service a fixture starts is a real process on a free loopback port with its own receipts
directory under the test's ``tmp_path``, so the fixtures work under ``pytest -n auto``. The
``race`` fixture's options and defaults are ``harness.run.options`` and ``harness.reference.SERVICE``,
the CLI's and the Locust scenarios' own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from harness.local.service import ServiceProcess
from harness.run.options import RUN, defaults
from harness.prepare.plan import Plan, parse_channel_mix
from ..pytest_plugin import record_verdict
from harness.verdict.result import RunReport
from harness.run.session import RunConfig, run_race
from . import SERVICE, FaultFlags, Provided, ReferenceOptions, profile_of, start_service, start_simulator

_D = defaults(RUN + SERVICE)
# Unlike the CLI, a test judges by the exactly-once invariants alone: timing targets would make a
# busy CI machine flip verdicts that the invariants decide.
TEST_TARGETS = "exactly-once"
# The syncs that race an HTTP/2 service: a race with one of them starts the reference service over HTTP/2.
H2_SYNCS = ("single-packet", "auto")


@pytest.fixture
def reference_service(tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    """A factory: start the reference service (mode, faults, flags) as a process with its own receipts dir."""
    started: list[ServiceProcess] = []

    def start(mode: str = "atomic", *, name: str | None = None, **kwargs: Any) -> ServiceProcess:
        receipts = tmp_path / (name or f"receipts-{mode}-{len(started)}")
        service = start_service(receipts, mode=mode, log_path=tmp_path / f"service-{len(started)}.log", **kwargs)
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


@pytest.fixture
def race(request: pytest.FixtureRequest, reference_service: Callable[..., ServiceProcess],
         tmp_path: Path) -> Iterator[Callable[..., RunReport]]:
    """A factory: fire a race at a reference service and return the oracle's report.

    ``race(payments=10, duplicates=5, mode="atomic", unpaid=0, channel_mix="callback:1",
    faults=FaultFlags(...), rounds=1, round_interval=0.0, transient_faults=False, sync="last-byte",
    targets="exactly-once", generation_delay_ms=200, lease_seconds=None, store=None, workers=1,
    service=None, http2=None, tls=False, verify_tls=None)`` (the defaults are the CLI's, but for ``targets``).
    The service is started over HTTP/2 (hypercorn, h2c) when ``http2`` says so, or, left None, when the
    sync needs it (``single-packet``, and ``auto``, which then picks single-packet); ``tls`` serves it over
    https with ALPN h2 under a throw-away certificate, which the race does not verify unless ``verify_tls``
    says otherwise (True, or a CA file). ``store`` is "memory", "wire" (a SecantusDB server started for the service) or
    None (``MONGODB_URI`` when set, else memory); ``workers`` > 1 needs a shared store.
    The service (and the PhonePe simulator that verify calls need) stays up until the test ends
    (pass ``service=`` to race one you started), so a finished run can be judged again with
    ``harness.reverify(report)``. The default targets are the exactly-once invariants alone: timing
    targets would make a busy CI machine flip verdicts. Every result's verdict is recorded for the
    ``race_trials`` count.
    """
    simulators: list[ServiceProcess] = []

    def simulator_url() -> str:
        """One PhonePe simulator per test, started when a race first makes verify calls."""
        if not simulators:
            simulators.append(start_simulator(log_path=tmp_path / "simulator.log"))
        return simulators[0].url

    def run(payments: int = _D["payments"], duplicates: int = _D["duplicates"], *, mode: str = _D["mode"],
            unpaid: int = _D["unpaid"], channel_mix: str = _D["channel_mix"], faults: FaultFlags | None = None,
            rounds: int = _D["rounds"], round_interval: float = _D["round_interval"],
            transient_faults: bool = _D["transient_faults"], sync: str = _D["sync"],
            targets: str | Path = TEST_TARGETS, generation_delay_ms: float = _D["generation_delay_ms"],
            lease_seconds: float | None = _D["lease_seconds"], store: str | None = _D["store"], workers: int = 1,
            service: ServiceProcess | None = None, seed: int = _D["seed"], http2: bool | None = None,
            tls: bool = False, verify_tls: bool | str | None = None) -> RunReport:
        plan = Plan(payments=payments, duplicates=duplicates, unpaid=unpaid,
                    channel_mix=parse_channel_mix(channel_mix), rounds=rounds, round_interval=round_interval, seed=seed)
        options = ReferenceOptions(mode=mode, generation_delay_ms=generation_delay_ms, faults=faults or FaultFlags(),
                                   lease_seconds=lease_seconds, store=store, workers=workers,
                                   transient_faults=transient_faults,
                                   http2=bool(tls or (sync in H2_SYNCS if http2 is None else http2)), tls=tls)
        gateway_url = None
        if service is None:
            gateway_url = simulator_url() if plan.uses_verify() else None
            service = reference_service(mode, generation_delay_ms=generation_delay_ms, faults=options.faults,
                                        lease_seconds=lease_seconds, store=store, workers=workers,
                                        phonepe_base_url=gateway_url, http2=options.http2, tls=tls)
            if tls and verify_tls is None:
                verify_tls = False  # the certificate is the one the service just made for itself
        provided = Provided(profile_of(service, gateway_url=gateway_url), service.pid, service, options)
        config = RunConfig(plan=plan, sync=sync, targets_file=Path(targets), label=mode, verify_tls=verify_tls,
                           **provided.run_settings())
        report = run_race(config)
        record_verdict(request, report)
        return report

    yield run
    for simulator in simulators:
        simulator.stop()
