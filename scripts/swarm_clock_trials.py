"""Skewed swarms across two network namespaces: offsets, spreads and verdicts, as the README's table shows them.

Needs root and iproute2. A master and a worker in one namespace, a worker in another (veth pair) whose clock is
shifted with RACE_HARNESS_LANE_CLOCK_OFFSET_MS; the reference service (vulnerable, then atomic) with a 10 ms
check-then-act window; 40 payments x 2 duplicates (one per worker), --targets exactly-once. Exit code -1 in
the table: the run gave no verdict within the bound (tests/_netns.py RUN_TIMEOUT).

    sudo python scripts/swarm_clock_trials.py --trials 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import _netns  # noqa: E402 - the suite's namespace helpers, shared with tests/test_swarm_clocks.py

OFF = ("--no-clock-correction",)
# (service mode, the far worker's clock, its offset in ms, extra flags); the atomic rows show what the judge says
# of a correct service raced by a skewed swarm (no violation can decide the verdict there)
CASES = [("vulnerable", "none", 0.0, ()), ("vulnerable", "+20 ms", 20.0, ()), ("vulnerable", "+20 ms", 20.0, OFF),
         ("vulnerable", "-300 ms", -300.0, ()), ("vulnerable", "-300 ms", -300.0, OFF),
         ("atomic", "+20 ms", 20.0, ()), ("atomic", "+20 ms", 20.0, OFF)]
VERDICTS = {0: "VALID", 1: "INVALID", 2: "TARGET MISSED", 3: "INCONCLUSIVE", 4: "USAGE"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3, help="runs per row (default 3)")
    args = parser.parse_args()
    if _netns.available() is not None:
        print(f"ERROR: {_netns.available()}", file=sys.stderr)
        return 4
    print("| service | far worker's clock | correction | runs | verdicts (exit) | measured offset (± uncertainty, "
          "round trip) | server-seen spread, median | release spread, median |")
    print("|---|---|---|---|---|---|---|---|")
    seed = 1000
    with tempfile.TemporaryDirectory() as tmp, _netns.two_hosts() as hosts:
        for mode in dict.fromkeys(case[0] for case in CASES):
            with _netns.service(hosts, Path(tmp) / mode, race_window_ms=10.0, mode=mode) as url:
                for _, name, offset, extra in (case for case in CASES if case[0] == mode):
                    results = []
                    for _ in range(args.trials):
                        seed += 1
                        results.append(_netns.swarm(hosts, url, Path(tmp) / mode / f"{seed}", far_offset_ms=offset,
                                                    seed=seed, extra=extra))
                    print(_row(mode, name, extra, results), flush=True)
    return 0


def _row(mode: str, name: str, extra: tuple[str, ...], results: list) -> str:
    codes = [r.returncode for r in results]
    said = ", ".join(f"{VERDICTS.get(c, c)} ({c}) ×{codes.count(c)}" for c in sorted(set(codes)))
    reports = [r.report for r in results if r.report is not None]
    lanes = [lane for r in reports for lane in r["config"]["locust"]["clocks"]["lanes"].values()]
    far = max(lanes, key=lambda lane: abs(lane["offset_ms"] or 0)) if lanes else None
    offset_text = f"{far['offset_ms']:+.2f} ms (± {far['uncertainty_ms']:.2f}, rtt {far['rtt_ms']:.2f})" if far else "-"
    arrival = statistics.median(r["metrics"]["payment_arrival_spread_ms_p50"] for r in reports)
    release = statistics.median(r["metrics"]["payment_release_spread_ms_p50"] for r in reports)
    return (f"| {mode} | {name} | {'off' if extra else 'on'} | {len(results)} | {said} | {offset_text} | "
            f"{arrival:.1f} ms | {release:.1f} ms |")


if __name__ == "__main__":
    sys.exit(main())
