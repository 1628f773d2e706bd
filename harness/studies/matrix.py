"""Every receipt mode under every fault: receipts per payment, missing and lost receipts, the oracle's verdict.

Each cell is a real run. The service's own injected faults (``FAULTS``): the reference service
started with the fault, one simultaneous burst, then (the fault over, as after a crash and restart)
the gateway's retry round after the lease would have expired. The nemesis's faults
(``NEMESIS_FAULTS``): the reference service started by the harness from its profile's
``[service]`` on a wire store that outlives it, its process killed or paused mid-generation, and the
gateway's redeliveries until acknowledged; judged for eventual exactly-once. Same plan for every
mode, so the cells compare.
"""

from __future__ import annotations

import tempfile
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from harness.prepare.plan import Plan
from harness.verdict.result import EXIT_INCONCLUSIVE, EXIT_INVALID
from harness.local.service import free_port
from harness.local.wire import start_wire_server
from harness.reference import MODES, FaultFlags, ReferenceOptions, race, service_profile
from harness.report.write import write_report
from harness.run.session import RunConfig, run_race

FAULTS: dict[str, FaultFlags] = {
    "none": FaultFlags(),
    "generation failure": FaultFlags(failure_rate=0.5, seed=1),  # seed 1: the first roll fails
    "crash after claim": FaultFlags(crash_after_claim_rate=1.0),
    "slow store": FaultFlags(store_delay_ms=100.0),
}

# Faults the nemesis does to the service's process (harness.nemesis): the schedule, and the run's settings.
NEMESIS_FAULTS: dict[str, dict[str, Any]] = {
    "process killed mid-generation": {"nemesis": "crash@after:0.2"},
    "paused past the lease": {"nemesis": "pause@after:0.2", "pause_for": 3.0, "timeout": 2.0},
    "database link cut": {"nemesis": "cut@after:0.2", "pause_for": 2.0},
}
NEMESIS_GENERATION_MS = 600.0  # every mode is mid-generation 0.2 s after the release


@dataclass
class Cell:
    mode: str
    fault: str
    receipts_min: int | None
    receipts_max: int | None
    missing: int | None
    duplicated: int | None
    injected_errors: int
    verdict: str
    exit_code: int
    lost: int | None = None  # acknowledged, claimed, never made (after a fault of the nemesis)

    @property
    def receipts(self) -> str:
        if self.receipts_min is None:
            return "—"
        return str(self.receipts_min) if self.receipts_min == self.receipts_max else f"{self.receipts_min}–{self.receipts_max}"


def run_cell(mode: str, fault: str, *, payments: int, duplicates: int, lease_seconds: float,
             generation_delay_ms: float, report_dir: Path | None, profile: str | None = None) -> Cell:
    flags = FAULTS[fault]
    reference = ReferenceOptions(mode=mode, generation_delay_ms=generation_delay_ms, faults=flags,
                                 lease_seconds=lease_seconds, transient_faults=flags.active(), profile=profile)
    config = RunConfig(
        plan=Plan(payments=payments, duplicates=duplicates, rounds=2, round_interval=lease_seconds + 0.5),
        targets_file=Path("exactly-once"), label=f"{mode}-{fault.replace(' ', '-')}", report_dir=report_dir)
    report = race(reference, config)
    if report_dir is not None:
        write_report(report, report_dir)
    m = report.metrics
    errors = next((c.details.get("injected_server_errors", 0) for c in report.checks if c.name == "no-errors"), 0)
    return Cell(mode, fault, m.get("receipts_per_payment_min"), m.get("receipts_per_payment_max"),
                m.get("missing_receipts"), m.get("payments_with_duplicates"), errors,
                _verdict_word(report.verdict.exit_code), report.verdict.exit_code)


def run_nemesis_cell(mode: str, fault: str, *, payments: int, duplicates: int, lease_seconds: float,
                     report_dir: Path | None, wire: Any, workdir: Path) -> Cell:
    """One mode under one of the nemesis's faults, judged for eventual exactly-once."""
    settings = dict(NEMESIS_FAULTS[fault])
    label = f"{mode}-{fault.split()[0]}"
    profile = service_profile(mode, port=free_port(), receipts_dir=workdir / label / "receipts", mongo_uri=wire.uri,
                              database=f"matrix_{uuid.uuid4().hex[:10]}", generation_delay_ms=NEMESIS_GENERATION_MS,
                              lease_seconds=lease_seconds,
                              database_link=free_port() if str(settings["nemesis"]).startswith("cut@") else None)
    config = RunConfig(plan=Plan(payments=payments, duplicates=duplicates), profile=profile,
                       targets_file=Path("exactly-once"), label=label, report_dir=report_dir or workdir / label,
                       **settings)
    report = run_race(config)
    if report_dir is not None:
        write_report(report, report_dir, secrets=profile.secret_values())
    m = report.metrics
    return Cell(mode, fault, m.get("receipts_per_payment_min"), m.get("receipts_per_payment_max"),
                m.get("missing_receipts"), m.get("payments_with_duplicates"), 0,
                _verdict_word(report.verdict.exit_code), report.verdict.exit_code, m.get("lost_effects"))


def _verdict_word(code: int) -> str:
    return {0: "valid", EXIT_INVALID: "INVALID", 2: "valid, target missed", EXIT_INCONCLUSIVE: "inconclusive"}.get(
        code, f"exit {code}")


def run_matrix(modes: tuple[str, ...] = MODES[:3], faults: tuple[str, ...] = tuple(FAULTS), *, payments: int = 5,
               duplicates: int = 5, lease_seconds: float = 1.0, generation_delay_ms: float = 200.0,
               report_dir: Path | None = None, profile: str | None = None,
               progress: Callable[[str, int, int], None] | None = None) -> list[Cell]:
    cells = []
    total = len(modes) * len(faults)
    wire = None
    try:
        with tempfile.TemporaryDirectory(prefix="race-harness-matrix-") as tmp:
            for mode in modes:
                for fault in faults:
                    if fault in NEMESIS_FAULTS:
                        wire = wire or start_wire_server()
                        cells.append(run_nemesis_cell(mode, fault, payments=payments, duplicates=duplicates,
                                                      lease_seconds=lease_seconds, report_dir=report_dir, wire=wire,
                                                      workdir=Path(tmp)))
                    else:
                        cells.append(run_cell(mode, fault, payments=payments, duplicates=duplicates,
                                              lease_seconds=lease_seconds, generation_delay_ms=generation_delay_ms,
                                              report_dir=report_dir, profile=profile))
                    if progress:
                        progress("matrix", len(cells), total)
    finally:
        if wire is not None:
            wire.stop()
    return cells


def to_markdown(cells: list[Cell], *, payments: int, duplicates: int, lease_seconds: float) -> str:
    lines = [
        f"{payments} paid payments × {duplicates} simultaneous callbacks, then one retry round of the same "
        f"{duplicates} after {lease_seconds + 0.5:g} s (the fault cleared, as after a restart); lease {lease_seconds:g} s.",
        "",
        *([f"Nemesis rows ({', '.join(f for f in NEMESIS_FAULTS if any(c.fault == f for c in cells))}): the service "
           "started by the harness from its profile's [service] on a wire store, no retry round; its process "
           f"killed 0.2 s after the release and started again 1 s later, or paused 0.2 s after it for 3 s while the "
           f"gateway waits 2 s for an answer, or its database link (through the harness's relay) cut 0.2 s after it "
           f"for 2 s; then the gateway's redeliveries (PhonePe's schedule) of what was not "
           f"acknowledged; generation {NEMESIS_GENERATION_MS:g} ms; judged for eventual exactly-once.", ""]
          if any(c.fault in NEMESIS_FAULTS for c in cells) else []),
        "| mode | fault | receipts per payment | missing receipts | lost receipts | payments with duplicates | "
        "injected 5xx | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in cells:
        lines.append(f"| {c.mode} | {c.fault} | {c.receipts} | {_n(c.missing)} | {_n(c.lost)} | {_n(c.duplicated)} | "
                     f"{c.injected_errors} | {c.verdict} (exit {c.exit_code}) |")
    return "\n".join(lines) + "\n"


def _n(value: int | None) -> str:
    return "—" if value is None else str(value)


def to_dicts(cells: list[Cell]) -> list[dict]:
    return [asdict(c) for c in cells]
