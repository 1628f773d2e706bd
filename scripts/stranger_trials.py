"""Race each stranger of the test suite N times through a front end and count the verdicts.

    python scripts/stranger_trials.py --runs 10                  # the CLI: race-harness run --profile FILE
    python scripts/stranger_trials.py --runs 10 --via locust     # a Locust swarm: --target-profile FILE

Each stranger (tests/strangers/*.toml) is started once per variant (vulnerable, fixed) on a
SecantusDB wire server, and raced N times through the chosen front end, which knows it only by its
profile file. Expected: exit 1 (INVALID) for every vulnerable run, exit 0 (VALID) for every fixed
one. Prints one line per stranger and variant; exit 1 when any run went otherwise. (The pytest
fixture's count: ``pytest tests/test_profile_strangers.py -k "vulnerable_stranger or fixed_stranger"
--race-trials 10``.)
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

from _cached_venv import mitmdump  # noqa: E402
from _strangers import MAILER_PROFILE, PROFILES, mailer_with_profile, stranger_with_profile  # noqa: E402

STRANGERS = {**PROFILES, "mailer": MAILER_PROFILE}  # the mailer's side effects leave it: judged through the sink


def start(name: str, variant: str, workdir: Path):
    if name == "mailer":
        mitmdump()  # its proxy channel runs mitmproxy's mitmdump
        return mailer_with_profile(variant, workdir)
    return stranger_with_profile(name, variant, workdir)

EXPECTED = {"vulnerable": 1, "fixed": 0}


def command(via: str, profile: Path, report_dir: Path, payments: int, duplicates: int) -> list[str]:
    plan = ["--payments", str(payments), "--duplicates", str(duplicates), "--targets", "exactly-once"]
    if via == "cli":
        return [str(Path(sys.executable).with_name("race-harness")), "run", "--profile", str(profile), *plan,
                "--quiet", "--report-dir", str(report_dir)]
    return [sys.executable, "-m", "locust", "-f", str(ROOT / "scenarios" / "webhook_storm.py"), "--headless", "-u", "2",
            "-r", "50", "-t", "45s", "--report-dir", str(report_dir), "--target-profile", str(profile), *plan]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--via", choices=("cli", "locust"), default="cli")
    parser.add_argument("--payments", type=int, default=4)
    parser.add_argument("--duplicates", type=int, default=5)
    parser.add_argument("--stranger", choices=sorted(STRANGERS), action="append")
    args = parser.parse_args()
    failed = False
    for name in args.stranger or sorted(STRANGERS):
        for variant, expected in EXPECTED.items():
            with tempfile.TemporaryDirectory(prefix="trials-") as tmp, \
                    start(name, variant, Path(tmp)) as variables:
                codes: Counter[int] = Counter()
                started = time.monotonic()
                for run in range(args.runs):
                    report_dir = Path(tmp) / f"run-{run}"
                    result = subprocess.run(command(args.via, STRANGERS[name], report_dir, args.payments,
                                                    args.duplicates), cwd=tmp, env={**os.environ, **variables},
                                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
                    codes[result.returncode] += 1
                    if result.returncode != expected:
                        print(f"  run {run + 1}: exit {result.returncode}\n{result.stdout[-1500:]}", flush=True)
                ok = codes[expected]
                failed |= ok != args.runs
                print(f"{name:<10} {variant:<10} via {args.via}: exit {expected} in {ok} of {args.runs} runs "
                      f"(exit codes {dict(sorted(codes.items()))}; {time.monotonic() - started:.0f} s)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
