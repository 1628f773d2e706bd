"""How often does a fault find a lost receipt? Random-instant kills against triggered kills, with Wilson intervals.

    python scripts/fault_power.py [--trials 20] [--schedules "crash@log:Generating receipt,crash@random:1,crash@random:3"]

Each trial races one payment (3 duplicates) of the claim-then-generate stranger (the design document's
claim flag before a 1 s receipt; ``tests/strangers/claim_then_generate.py``) through
``race-harness run --profile ... --nemesis SCHEDULE``: the harness starts the service, kills it per the
schedule, starts it again, redelivers like the gateway and judges. A trial *finds* the bug when its
verdict is INVALID with a lost receipt. A random kill finds it only when it lands while the receipt
renders; a kill triggered by the service's own "Generating receipt" line lands there every time.

Prints a table (found k of n, the rate, its 95 % Wilson interval, and the trials a schedule needs to
find the bug with 95 % probability at that rate) and writes it to docs/faults/detection.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from _strangers import CLAIM_THEN_GENERATE, claim_then_generate_variables  # noqa: E402

from harness.studies.power import wilson  # noqa: E402


def trial(schedule: str, workdir: Path, seed: int) -> tuple[bool, int]:
    """(found a lost receipt, exit code) of one run under ``schedule``."""
    env = {**os.environ, **claim_then_generate_variables("claim", workdir)}
    result = subprocess.run([sys.executable, "-m", "harness", "run", "--profile", str(CLAIM_THEN_GENERATE),
                             "--payments", "1", "--duplicates", "3", "--targets", "exactly-once", "--seed", str(seed),
                             "--nemesis", schedule, "--quiet", "--report-dir", str(workdir / "report")],
                            env=env, capture_output=True, text=True, timeout=240)
    return result.returncode == 1 and "lost receipt" in result.stdout, result.returncode


def needed(rate: float, probability: float = 0.95) -> int | None:
    """Trials for at least one find with ``probability``, at a per-trial ``rate``."""
    if rate <= 0:
        return None
    if rate >= 1:
        return 1
    return math.ceil(math.log(1 - probability) / math.log(1 - rate))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--schedules", default="crash@log:Generating receipt,crash@random:1,crash@random:3")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "faults")
    args = parser.parse_args()
    rows, started, load = [], time.monotonic(), os.getloadavg()[0]
    schedules = [s.strip() for s in args.schedules.split(",") if s.strip()]
    with tempfile.TemporaryDirectory(prefix="fault-power-") as tmp:
        found = {s: 0 for s in schedules}
        codes: dict[str, dict[int, int]] = {s: {} for s in schedules}
        for n in range(args.trials):  # the schedules alternate, so drift over the study hits each alike
            for schedule in schedules:
                hit, code = trial(schedule, Path(tmp) / f"{n}-{schedules.index(schedule)}", seed=n)
                found[schedule] += hit
                codes[schedule][code] = codes[schedule].get(code, 0) + 1
            print(f"trial {n + 1}/{args.trials}: " + ", ".join(f"{s} {found[s]}" for s in schedules), flush=True)
    for schedule in schedules:
        low, high = wilson(found[schedule], args.trials)
        rate = found[schedule] / args.trials
        rows.append({"schedule": schedule, "found": found[schedule], "trials": args.trials, "rate": rate,
                     "wilson95": [round(low, 3), round(high, 3)], "trials_for_95pct": needed(rate),
                     "exit_codes": codes[schedule]})
    lines = [f"Lost receipts found by each fault schedule on the claim-then-generate stranger (the design "
             f"document's claim before a 1 s receipt), 1 payment x 3 duplicates per trial, {args.trials} trials "
             f"each, schedules alternating; load average {load:.2f} at the start, "
             f"{time.monotonic() - started:.0f} s in all.", "",
             "| schedule | found | rate | 95 % Wilson interval | trials for a 95 % chance to find it |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| `{r['schedule']}` | {r['found']} of {r['trials']} | {r['rate']:.2f} | "
                     f"{r['wilson95'][0]:.2f}–{r['wilson95'][1]:.2f} | {r['trials_for_95pct'] or '—'} |")
    table = "\n".join(lines) + "\n"
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "detection.md").write_text(table)
    (args.out / "detection.json").write_text(json.dumps({"version": 1, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
