"""Detection power: how likely a run is to catch a check-then-act window of a given width.

``race-harness power`` starts the vulnerable reference service with a deterministic race window
(its ``race_window_ms`` fault: the receipt flag is read, exactly that long passes, then it is set)
and, for every window width x duplicates x sync mode, runs K one-payment races. A trial *catches*
the window when its run finds the violation (verdict INVALID: more than one receipt, two generations
writing one file, or more than one delivery answered "generated"). Per cell it reports the fraction
caught with a 95 % Wilson interval, and per sync mode and duplicates the narrowest window caught
with at least 95 % probability (``narrowest_window``). Optionally every request crosses a relay
link (``--link 20ms±3ms``: base delay each way, per-chunk jitter, independent per connection).

Bounded: at most ``MAX_TRIALS`` trials, each a run with its own timeout, and the whole sweep stops
starting trials after ``max_seconds`` (cells left short say how many trials they had).
"""

from __future__ import annotations

import json
import math
import os
import re
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from harness.prepare.plan import Plan
from harness.reference import FaultFlags, profile_of, start_service
from harness.profile import Profile
from harness.progress import Progress, no_progress
from harness.run.session import RunConfig, run_race

WINDOWS_MS = (0.5, 1.0, 2.0, 5.0, 10.0, 50.0)
DUPLICATES = (2, 5, 20)
SYNCS = ("last-byte", "single-packet")
PROBABILITY = 0.95
Z95 = 1.959963984540054  # two-sided 95 % normal quantile
MAX_TRIALS = 5000



def wilson(caught: int, trials: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval (default 95 %) for ``caught`` successes in ``trials``; None for no trials.

    Unlike the normal approximation it stays inside [0, 1] and is honest at 0 or all successes:
    10 of 10 gives (0.72, 1.0), not (1.0, 1.0).
    """
    if trials <= 0:
        return None
    if not 0 <= caught <= trials:
        raise ValueError(f"caught must be between 0 and trials ({trials}), not {caught}")
    p = caught / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    low = 0.0 if caught == 0 else max(0.0, centre - half)
    high = 1.0 if caught == trials else min(1.0, centre + half)  # exact at the ends, not 0.9999999999999999
    return low, high


def narrowest_window(cells: dict[float, tuple[int, int]], probability: float = PROBABILITY) -> float | None:
    """The narrowest window caught with at least ``probability``, from (caught, trials) per window width.

    The rule: the smallest width ``w`` whose observed catch rate, and that of every wider width
    measured, is at least ``probability`` (a wider window is never harder to catch, so a lucky narrow
    cell below an unlucky wider one does not count). None when not even the widest qualifies, or
    nothing was measured. With K trials a rate of 95 % needs every trial caught while K < 20: read the
    Wilson interval beside it for how sure that is.
    """
    answer = None
    for width in sorted(cells, reverse=True):
        caught, trials = cells[width]
        if trials == 0 or caught / trials < probability:
            break
        answer = width
    return answer


def parse_link(text: str) -> tuple[float, float]:
    """'20ms±3ms' (or '20ms+-3ms', '20±3', '20ms') as (delay, jitter) in seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:ms)?\s*(?:(?:±|\+-|\+/-)\s*(\d+(?:\.\d+)?)\s*(?:ms)?)?\s*", text)
    if not match:
        raise ValueError(f"--link must look like 20ms±3ms (base delay ± per-chunk jitter), not {text!r}")
    return float(match.group(1)) / 1000, float(match.group(2) or 0) / 1000


@dataclass
class Cell:
    window_ms: float
    duplicates: int
    sync: str
    caught: int = 0
    trials: int = 0
    failed: int = 0  # trials whose run could not judge the payment (not counted in trials)
    unknown: int = 0  # trials judged but neither VALID nor INVALID (counted in trials, not caught)
    gaps_ms: list[float] = field(default_factory=list)  # per trial, the first two arrivals' gap

    @property
    def rate(self) -> float | None:
        return self.caught / self.trials if self.trials else None

    def row(self) -> dict[str, Any]:
        interval = wilson(self.caught, self.trials)
        return {"window_ms": self.window_ms, "duplicates": self.duplicates, "sync": self.sync,
                "caught": self.caught, "trials": self.trials, "failed": self.failed, "unknown": self.unknown,
                "p_caught": None if self.rate is None else round(self.rate, 4),
                "wilson95": None if interval is None else [round(interval[0], 4), round(interval[1], 4)],
                "first_gap_ms_median": round(statistics.median(self.gaps_ms), 3) if self.gaps_ms else None}


@dataclass
class PowerSettings:
    windows_ms: tuple[float, ...] = WINDOWS_MS
    duplicates: tuple[int, ...] = DUPLICATES
    syncs: tuple[str, ...] = SYNCS
    trials: int = 5
    link: str | None = None  # "20ms±3ms"
    max_seconds: float = 1800.0
    trial_timeout: float = 30.0
    generation_delay_ms: float = 0.0

    def validate(self) -> None:
        if self.trials < 1:
            raise ValueError("--trials must be at least 1")
        if not self.windows_ms or any(w <= 0 or w > 60_000 for w in self.windows_ms):
            raise ValueError("--windows must be widths in ms, each > 0 and <= 60000")
        if not self.duplicates or any(d < 2 or d > 100 for d in self.duplicates):
            raise ValueError("--duplicates must be between 2 and 100 (one HTTP/2 connection carries 100 streams)")
        unknown = set(self.syncs) - set(SYNCS)
        if not self.syncs or unknown:
            raise ValueError(f"--syncs must be among {', '.join(SYNCS)}")
        total = len(self.windows_ms) * len(self.duplicates) * len(self.syncs) * self.trials
        if total > MAX_TRIALS:
            raise ValueError(f"{total} trials is more than {MAX_TRIALS}: fewer windows, duplicates or --trials")
        if self.max_seconds <= 0 or self.trial_timeout <= 0:
            raise ValueError("--max-seconds and --trial-timeout must be positive")
        if self.link:
            parse_link(self.link)


@dataclass
class PowerResult:
    settings: PowerSettings
    cells: list[Cell]
    load_before: tuple[float, ...]
    load_after: tuple[float, ...]
    seconds: float
    stopped_early: bool = False

    def narrowest(self) -> dict[str, dict[int, float | None]]:
        """Per sync mode and duplicates: the narrowest window (ms) caught with >= 95 % probability."""
        out: dict[str, dict[int, float | None]] = {}
        for sync in self.settings.syncs:
            for dups in self.settings.duplicates:
                cells = {c.window_ms: (c.caught, c.trials) for c in self.cells
                         if c.sync == sync and c.duplicates == dups}
                out.setdefault(sync, {})[dups] = narrowest_window(cells)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"settings": asdict(self.settings), "cells": [c.row() for c in self.cells],
                "narrowest_window_ms_95": {s: {str(d): w for d, w in ws.items()} for s, ws in self.narrowest().items()},
                "load_average_before": list(self.load_before), "load_average_after": list(self.load_after),
                "seconds": round(self.seconds, 1), "stopped_early": self.stopped_early}


def sweep(settings: PowerSettings, progress: Progress = no_progress) -> PowerResult:
    """Run the sweep (module docstring) and return every cell; the service and relay are stopped after."""
    from harness.local.relay import RelayProcess

    settings.validate()
    started, load_before = time.monotonic(), os.getloadavg()
    cells = {(w, d, s): Cell(w, d, s) for w in settings.windows_ms for d in settings.duplicates for s in settings.syncs}
    total = len(cells) * settings.trials
    done, stopped = 0, False
    with tempfile.TemporaryDirectory(prefix="race-harness-power-") as tmp:
        receipts = Path(tmp) / "receipts"
        service = start_service(receipts, mode="vulnerable", generation_delay_ms=settings.generation_delay_ms,
                                faults=FaultFlags(race_window_ms=settings.windows_ms[0]), http2=True,
                                log_path=Path(tmp) / "service.log")
        relay = None
        try:
            target = profile_of(service)
            if settings.link:
                delay, jitter = parse_link(settings.link)
                relay = RelayProcess(int(service.url.rsplit(":", 1)[1]), delay=delay, jitter=jitter)
                target = target.with_base_url(relay.url)
            progress("power sweep", 0, total)
            for window in settings.windows_ms:
                _set_window(service.url, window)
                for dups in settings.duplicates:
                    for trial in range(settings.trials):
                        # the modes alternate inside each cell, so drift over the sweep hits both alike
                        order = settings.syncs if trial % 2 == 0 else tuple(reversed(settings.syncs))
                        for sync in order:
                            if time.monotonic() - started > settings.max_seconds:
                                stopped = True
                                break
                            _trial(cells[(window, dups, sync)], target, trial, settings.trial_timeout, receipts)
                            done += 1
                            progress("power sweep", done, total)
                        if stopped:
                            break
                    if stopped:
                        break
                if stopped:
                    break
        finally:
            if relay is not None:
                relay.close()
            service.stop()
    return PowerResult(settings, list(cells.values()), load_before, os.getloadavg(), time.monotonic() - started,
                       stopped)


def _set_window(url: str, window_ms: float) -> None:
    response = httpx.put(f"{url}/_admin/faults", json={"race_window_ms": window_ms}, timeout=10.0)
    response.raise_for_status()
    if response.json().get("race_window_ms") != window_ms:
        raise RuntimeError(f"the service did not take race_window_ms={window_ms}: {response.text[:200]}")


def _trial(cell: Cell, target: Profile, trial: int, timeout: float, receipts: Path) -> None:
    config = RunConfig(plan=Plan(payments=1, duplicates=cell.duplicates, seed=trial), profile=target, sync=cell.sync,
                       timeout=timeout, label=f"power-{cell.sync}-{cell.window_ms:g}ms-{cell.duplicates}x-{trial}")
    try:
        report = run_race(config)
    except Exception:  # noqa: BLE001 - one trial that could not run is counted as failed, not as a verdict
        cell.failed += 1
        return
    finally:
        for path in receipts.glob("*"):  # the next trial's observation reads only its own receipts
            if path.is_file():
                path.unlink(missing_ok=True)
    if not report.metrics.get("payments_judged"):
        cell.failed += 1
        return
    cell.trials += 1
    # Caught: the run found the duplicate - more than one receipt, or two generations that wrote one file
    # name (simultaneous writers in the same millisecond), or more than one "generated" answer.
    cell.caught += 1 if report.verdict.valid is False else 0
    cell.unknown += 1 if report.verdict.valid is None else 0  # a miss for the user, but not a VALID verdict
    gap = report.metrics.get("catchable_window_ms")
    if gap is not None:
        cell.gaps_ms.append(gap)


# -- reporting ---------------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.0f}%"


def render_markdown(result: PowerResult) -> str:
    s = result.settings
    link = f"across a {s.link} relay link" if s.link else "on loopback"
    load = lambda xs: " ".join(f"{x:.2f}" for x in xs)  # noqa: E731
    lines = [f"## Detection power {link}", "",
             f"Vulnerable reference service (HTTP/2 + HTTP/1.1 on hypercorn) with a deterministic check-then-act "
             f"window; {s.trials} one-payment trials per cell; caught = the run's verdict is INVALID (the duplicate was found). "
             f"Load average {load(result.load_before)} before, {load(result.load_after)} after; "
             f"{result.seconds:.0f} s" + (" (stopped at --max-seconds: some cells are short)" if result.stopped_early else "")
             + ".", "",
             "| window | duplicates | sync | caught | P(caught) | 95% Wilson interval | first-two-arrival gap (median) |",
             "|---|---|---|---|---|---|---|"]
    for c in sorted(result.cells, key=lambda c: (c.window_ms, c.duplicates, s.syncs.index(c.sync))):
        r = c.row()
        interval = "—" if r["wilson95"] is None else f"{100 * r['wilson95'][0]:.0f}–{100 * r['wilson95'][1]:.0f}%"
        gap = "—" if r["first_gap_ms_median"] is None else f"{r['first_gap_ms_median']:g} ms"
        failed = "".join(f" ({n} {what})" for n, what in ((c.unknown, "unknown"), (c.failed, "failed")) if n)
        lines.append(f"| {c.window_ms:g} ms | {c.duplicates} | {c.sync} | {c.caught}/{c.trials}{failed} | "
                     f"{_pct(c.rate)} | {interval} | {gap} |")
    lines += ["", "Narrowest window caught with ≥ 95% probability (observed rate ≥ 95% there and at every wider window):",
              "", "| sync | " + " | ".join(f"{d} duplicates" for d in s.duplicates) + " |",
              "|---|" + "---|" * len(s.duplicates)]
    for sync, by_dups in result.narrowest().items():
        lines.append(f"| {sync} | " + " | ".join("none measured" if w is None else f"{w:g} ms"
                                                 for w in by_dups.values()) + " |")
    return "\n".join(lines) + "\n"


_COLORS = {"last-byte": "#ef6c00", "single-packet": "#1e88e5"}
_STYLES = ("-", "--", ":", "-.")


def draw_chart(result: PowerResult, path: Path) -> None:
    """P(caught) against window width (log), one line per sync mode and duplicates, Wilson intervals as bars."""
    import matplotlib

    from matplotlib.figure import Figure

    s = result.settings
    with matplotlib.rc_context({"svg.fonttype": "none", "font.size": 9, "svg.hashsalt": "power"}):
        figure = Figure(figsize=(7.5, 4.2), layout="constrained")
        ax = figure.add_subplot()
        for i, dups in enumerate(s.duplicates):
            for j, sync in enumerate(s.syncs):
                cells = sorted((c for c in result.cells if c.sync == sync and c.duplicates == dups and c.trials),
                               key=lambda c: c.window_ms)
                if not cells:
                    continue
                xs = [c.window_ms * (1 + 0.04 * (j - 0.5)) for c in cells]  # modes side by side
                ys = [c.rate for c in cells]
                bounds = [wilson(c.caught, c.trials) for c in cells]
                err = [[y - b[0] for y, b in zip(ys, bounds)], [b[1] - y for y, b in zip(ys, bounds)]]
                ax.errorbar(xs, ys, yerr=err, color=_COLORS.get(sync), linestyle=_STYLES[i % len(_STYLES)],
                            marker="o", markersize=3.5, capsize=2.5, linewidth=1.2,
                            label=f"{sync}, {dups} duplicates")
        ax.axhline(PROBABILITY, color="#888", linewidth=0.8, linestyle=":")
        ax.set_xscale("log")
        ax.set_xticks(list(s.windows_ms), [f"{w:g}" for w in s.windows_ms])
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("check-then-act window (ms, log scale)")
        ax.set_ylabel("P(duplicate caught)")
        ax.set_title(f"Detection power, {s.trials} trials per point, 95% Wilson intervals"
                     + (f", link {s.link}" if s.link else ", loopback"))
        ax.legend(loc="lower right", fontsize=7.5)
        figure.savefig(path, metadata=None if path.suffix == ".png" else {"Date": None})


def write(result: PowerResult, directory: Path, stem: str = "power") -> dict[str, Path]:
    """``<stem>.json``, ``.md``, ``.png`` and ``.svg`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {kind: directory / f"{stem}.{kind}" for kind in ("json", "md", "png", "svg")}
    paths["json"].write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    paths["md"].write_text(render_markdown(result), encoding="utf-8")
    draw_chart(result, paths["png"])
    draw_chart(result, paths["svg"])
    return paths
