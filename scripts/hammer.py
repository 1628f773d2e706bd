"""Run the whole test suite N times and show which tests ever failed (standard library only).

    python scripts/hammer.py --runs 10                # 10 runs of pytest -n auto
    python scripts/hammer.py --runs 5 --under-load    # the same, a busy loop on every CPU beside each run
    python scripts/hammer.py --runs 5 --under-load --load suite   # a second copy of the suite beside it

Each run is ``pytest -n JOBS -p no:cacheprovider -q`` with its own junit XML and base temp
directory; the load, when asked for, is started with the run and stopped when it ends. Every run
is bounded (``--run-timeout``). At the end: runs, passes, and every test that ever failed with the
number of runs it failed in. Exit 1 when any run failed.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUSY_LOOP = "while True: pass"


def pytest_command(jobs: str, junit: Path, basetemp: Path, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "pytest", "-n", jobs, "-p", "no:cacheprovider", "-q",
            f"--junitxml={junit}", f"--basetemp={basetemp}", *extra]


def start_load(kind: str, jobs: str, scratch: Path) -> list[subprocess.Popen]:
    """CPU-heavy processes to run beside the suite: a busy loop per CPU, or a second copy of the suite."""
    if kind == "busy":
        return [subprocess.Popen([sys.executable, "-c", BUSY_LOOP], start_new_session=True)
                for _ in range(os.cpu_count() or 2)]
    # A second copy of the suite, again and again until stopped; its results are not counted.
    loop = (f"import subprocess, sys\nwhile True: subprocess.run({pytest_command(jobs, scratch / 'load.xml', scratch / 'load', [])!r},"
            f" cwd={str(ROOT)!r}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)")
    return [subprocess.Popen([sys.executable, "-c", loop], start_new_session=True)]


def stop(processes: list[subprocess.Popen]) -> None:
    """Stop what this script started: each process's own session (it and the children it started)."""
    for process in processes:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
    for process in processes:
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def failed_tests(junit: Path) -> list[str]:
    """Test ids (``path::name``) with a failure or error in a junit XML report."""
    return [test for test, _ in failures_in(junit)]


def failures_in(junit: Path) -> list[tuple[str, str]]:
    """(test id, the first line of its failure or error message) for every test that failed."""
    if not junit.exists():
        return []
    failed = []
    for case in ET.parse(junit).iter("testcase"):
        problem = case.find("failure")
        problem = problem if problem is not None else case.find("error")
        if problem is not None:
            module = case.get("classname", "").replace(".", "/")
            test = f"{module}.py::{case.get('name')}" if module else case.get("name", "?")
            message = (problem.get("message") or problem.text or "").strip().splitlines()
            failed.append((test, message[0][:300] if message else ""))
    return failed


def summary_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    return lines[-1].strip("= ") if lines else "(no output)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--jobs", default="auto", help="pytest-xdist -n (default: auto)")
    parser.add_argument("--under-load", action="store_true", help="run a CPU-heavy load beside each run")
    parser.add_argument("--load", choices=("busy", "suite"), default="busy",
                        help="with --under-load: a busy loop per CPU (default) or a second copy of the suite")
    parser.add_argument("--run-timeout", type=float, default=1800.0, help="seconds one run may take")
    parser.add_argument("pytest_args", nargs="*", help="passed on to pytest (after --)")
    args = parser.parse_args(argv)
    # Stopped from outside (timeout, kill): unwind, so the suite and the load are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    failures: Counter[str] = Counter()
    passes = 0
    with tempfile.TemporaryDirectory(prefix="hammer-") as scratch_name:
        scratch = Path(scratch_name)
        for run in range(1, args.runs + 1):
            junit, basetemp = scratch / f"run-{run}.xml", scratch / f"run-{run}"
            load = start_load(args.load, args.jobs, scratch) if args.under_load else []
            started = time.monotonic()
            suite = subprocess.Popen(pytest_command(args.jobs, junit, basetemp, args.pytest_args), cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
            try:
                output, _ = suite.communicate(timeout=args.run_timeout)
                code, last = suite.returncode, summary_line(output)
            except subprocess.TimeoutExpired:
                stop([suite])  # with its workers and the services they started
                code, last = -1, f"timed out after {args.run_timeout:g} s"
            except BaseException:  # interrupted: the suite has a session of its own, so stop it here
                stop([suite])
                raise
            finally:
                stop(load)
            found = failures_in(junit)
            failed = [test for test, _ in found]
            if code == 0:
                passes += 1
            elif not failed:
                failed = [f"(run exited {code} with no failed test: {last})"]
            failures.update(failed)
            # the first line of each message: why a flaky test failed is gone with the run's temp directory
            print(f"run {run}/{args.runs}: exit {code}, {last} ({time.monotonic() - started:.0f} s)"
                  + "".join(f"\n    FAILED {test}" + (f"\n      {why}" if why else "") for test, why in found)
                  + ("" if found else "".join(f"\n    FAILED {test}" for test in failed)), flush=True)

    load_note = f", under load ({args.load})" if args.under_load else ""
    print(f"\n{args.runs} runs{load_note}: {passes} passed, {args.runs - passes} failed")
    if failures:
        width = max(len(test) for test in failures)
        print(f"\n{'test'.ljust(width)}  failed in")
        for test, count in failures.most_common():
            print(f"{test.ljust(width)}  {count} of {args.runs} runs")
    return 0 if passes == args.runs else 1


if __name__ == "__main__":
    sys.exit(main())
