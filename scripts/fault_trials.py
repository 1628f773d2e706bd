"""Race the claim-then-generate stranger N times under a nemesis, through a front end, and count the verdicts.

    python scripts/fault_trials.py --runs 10                       # the CLI: race-harness run --profile ... --nemesis
    python scripts/fault_trials.py --runs 10 --via locust          # a Locust swarm: --target-profile ... --nemesis
    python scripts/fault_trials.py --runs 10 --via pytest          # the race_profile fixture, nemesis=...

Each run starts the service itself (the profile's [service]) on a fresh database of one SecantusDB wire
server, kills it when its first receipt starts rendering (``--nemesis``, default crash@log:Generating
receipt), starts it again, redelivers like the gateway, and judges. Expected: the design document's claim
loses a receipt (exit 1, "lost receipt"), its lease twin is valid (exit 0), its check-then-act twin
duplicates (exit 1, "duplicate receipts"). Prints one line per variant; exit 1 when any run went otherwise.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from _strangers import CLAIM_THEN_GENERATE, claim_then_generate_variables  # noqa: E402

EXPECTED = {"claim": (1, "lost receipt"), "lease": (0, "VALID"), "check-then-act": (1, "duplicate receipts")}
PYTEST_FILE = '''
import os
from harness.profile import load_profile

def test_one_run(race_profile):
    report = race_profile({profile!r}, dict(os.environ), payments={payments}, duplicates={duplicates},
                          nemesis={nemesis!r})
    print("EXIT", report.verdict.exit_code, report.explain())
'''


def command(via: str, report_dir: Path, payments: int, duplicates: int, nemesis: str) -> list[str]:
    plan = ["--payments", str(payments), "--duplicates", str(duplicates), "--targets", "exactly-once",
            "--nemesis", nemesis]
    if via == "cli":
        return [sys.executable, "-m", "harness", "run", "--profile", str(CLAIM_THEN_GENERATE), *plan, "--quiet",
                "--report-dir", str(report_dir)]
    if via == "locust":
        return [sys.executable, "-m", "locust", "-f", str(ROOT / "scenarios" / "webhook_storm.py"), "--headless",
                "-u", "2", "-r", "50", "-t", "60s", "--report-dir", str(report_dir), "--target-profile",
                str(CLAIM_THEN_GENERATE), *plan]
    report_dir.mkdir(parents=True, exist_ok=True)
    test = report_dir / "test_fault_trial.py"
    test.write_text(PYTEST_FILE.format(profile=str(CLAIM_THEN_GENERATE), payments=payments, duplicates=duplicates,
                                       nemesis=nemesis))
    return [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", str(test)]


def exit_of(via: str, result: subprocess.CompletedProcess) -> int:
    """The verdict's exit code: the process's, or (pytest) the one the test printed."""
    if via != "pytest":
        return result.returncode
    for line in result.stdout.splitlines():
        if line.startswith("EXIT "):
            return int(line.split()[1])
    return 99


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--via", choices=("cli", "locust", "pytest"), default="cli")
    parser.add_argument("--payments", type=int, default=2)
    parser.add_argument("--duplicates", type=int, default=3)
    parser.add_argument("--nemesis", default="crash@log:Generating receipt")
    parser.add_argument("--variant", choices=sorted(EXPECTED), action="append")
    args = parser.parse_args()
    failed = False
    for variant in args.variant or list(EXPECTED):
        expected, says = EXPECTED[variant]
        codes: Counter[int] = Counter()
        started, ok = time.monotonic(), 0
        with tempfile.TemporaryDirectory(prefix="fault-trials-") as tmp:
            for run in range(args.runs):
                workdir = Path(tmp) / f"run-{run}"
                variables = claim_then_generate_variables(variant, workdir)
                result = subprocess.run(command(args.via, workdir / "report", args.payments, args.duplicates,
                                                args.nemesis), cwd=tmp, env={**os.environ, **variables},
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=240)
                code = exit_of(args.via, result)
                codes[code] += 1
                if code == expected and says in result.stdout:
                    ok += 1
                else:
                    print(f"  run {run + 1}: exit {code}\n{result.stdout[-1500:]}", flush=True)
        failed |= ok != args.runs
        print(f"{variant:<15} via {args.via:<7}: exit {expected} ({says}) in {ok} of {args.runs} runs "
              f"(exit codes {dict(sorted(codes.items()))}; {time.monotonic() - started:.0f} s)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
