"""Probe the reference service and every webhook stranger N times through the CLI, and count what each probe found.

    python scripts/probe_trials.py --runs 10            # the README's probe table
    python scripts/probe_trials.py --runs 3 --only v2_checkout

Each service is started once per variant; ``race-harness probe --profile FILE --json`` runs N times against
it (fresh payments every run). Prints a Markdown table: per service and variant, the exit codes, the
probes that found a hole in how many runs, and the probes that did not apply. Exit 1 when a variant did
not behave as expected (a hole on every run of a vulnerable variant and none on its fixed twin; the
unpays variant's COMPLETED-and-FAILED burst is a hole only when FAILED lands last).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from _strangers import (  # noqa: E402
    CHECKOUT_PROFILE, ORDERS_PROFILE, STRANGERS, checkout_with_profile, claim_then_generate_variables,
    orders_with_profile,
)

# service -> variant -> the probes expected to find a hole on every run (empty: none on any run)
# A probe that may find one in some runs only: which of two racing deliveries lands last decides.
MAY = {("stripe_orders", "unpays"): {"completed-and-failed-together"}}
EXPECTED: dict[str, dict[str, set[str]]] = {
    "reference": {"atomic": set()},
    "reference-v2": {"atomic": {"unprotected-body"}},
    "v2_checkout": {"any-auth": {"wrong-signature", "other-secret", "unprotected-body", "unprotected-amount"},
                    "checks-auth": {"unprotected-body", "unprotected-amount"}, "asks-gateway": set()},
    "stripe_orders": {"ignores-timestamp": {"stale-timestamp"}, "unpays": {"failed-after-completed",
                                                                          "pending-after-completed"},
                      "fixed": set()},
    "claim_then_generate": {"lease": {"wrong-amount"}},
}


@contextlib.contextmanager
def started(service: str, variant: str, workdir: Path) -> Iterator[tuple[str, dict[str, str], list[str]]]:
    """(the profile to give --profile, its variables, more CLI flags) with the service running (or to be started)."""
    if service.startswith("reference"):
        yield service, {}, ["--mode", variant]
    elif service == "v2_checkout":
        from harness.reference import start_simulator

        simulator = start_simulator(log_path=workdir / "simulator.log")
        try:
            with checkout_with_profile(variant, workdir, simulator.url) as variables:
                yield str(CHECKOUT_PROFILE), variables, []
        finally:
            simulator.stop()
    elif service == "stripe_orders":
        with orders_with_profile(variant, workdir) as variables:
            yield str(ORDERS_PROFILE), variables, []
    else:  # its [service] is started by each probe run
        yield str(STRANGERS / "claim_then_generate.toml"), claim_then_generate_variables(variant, workdir), []


def _unwind(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM ends the services this script started, as Ctrl-C does


def main() -> int:
    signal.signal(signal.SIGTERM, _unwind)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--only", choices=sorted(EXPECTED), action="append")
    args = parser.parse_args()
    rows, failed = [], False
    for service in args.only or list(EXPECTED):
        for variant, expected in EXPECTED[service].items():
            with tempfile.TemporaryDirectory(prefix="probe-trials-") as tmp, \
                    started(service, variant, Path(tmp)) as (profile, variables, flags):
                codes: Counter[int] = Counter()
                found: Counter[str] = Counter()
                skipped: list[str] = []
                scheme = "?"
                began = time.monotonic()
                for run in range(args.runs):
                    done = subprocess.run([sys.executable, "-m", "harness", "probe", "--profile", profile, *flags,
                                           "--json", "--quiet", "--report-dir", str(Path(tmp) / f"run-{run}")],
                                          env={**os.environ, **variables}, capture_output=True, text=True,
                                          timeout=300, stdin=subprocess.DEVNULL)
                    codes[done.returncode] += 1
                    try:
                        report = json.loads(done.stdout)
                    except ValueError:
                        print(f"  {service} {variant} run {run + 1}: exit {done.returncode}\n{done.stderr[-1500:]}")
                        continue
                    found.update(p["name"] for p in report["probes"] if p["outcome"] == "hole")
                    skipped = [s["name"] for s in report["not_applicable"]]
                    scheme = report["scheme"]["scheme"]
                may = MAY.get((service, variant), set())
                ok = expected <= set(found) <= expected | may and all(found[name] == args.runs for name in expected)
                failed |= not ok
                holes = ", ".join(f"{name} ({found[name]} of {args.runs})" for name in sorted(found)) or "none"
                rows.append(f"| {service} | {variant} | {scheme} | {dict(sorted(codes.items()))} | {holes} | "
                            f"{', '.join(skipped) or '—'} |")
                print(f"{service} {variant}: exit codes {dict(sorted(codes.items()))}, holes {holes} "
                      f"({time.monotonic() - began:.0f} s){'' if ok else '  <- NOT AS EXPECTED'}", flush=True)
    print(f"\n| service | variant | scheme | exit codes ({args.runs} runs) | holes found | probes that do not apply |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
