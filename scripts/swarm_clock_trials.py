"""Skewed swarms across two network namespaces: offsets, spreads and verdicts, as the README's table shows them.

Needs root and iproute2. A master and a worker in one namespace, a worker in another (veth pair) whose clock is
shifted with RACE_HARNESS_LANE_CLOCK_OFFSET_MS; the reference service in vulnerable mode with a 10 ms
check-then-act window; 40 payments x 2 duplicates (one per worker), --targets exactly-once.

    sudo python scripts/swarm_clock_trials.py --trials 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import _netns  # noqa: E402 - the suite's namespace helpers, shared with tests/test_swarm_clocks.py

CASES = [("none", 0.0, ()), ("+20 ms", 20.0, ()), ("+20 ms", 20.0, ("--no-clock-correction",)),
         ("-300 ms", -300.0, ()), ("-300 ms", -300.0, ("--no-clock-correction",))]
VERDICTS = {0: "VALID", 1: "INVALID", 2: "TARGET MISSED", 3: "INCONCLUSIVE", 4: "USAGE"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3, help="runs per row (default 3)")
    args = parser.parse_args()
    if _netns.available() is not None:
        print(f"ERROR: {_netns.available()}", file=sys.stderr)
        return 4
    print("| far worker's clock | correction | runs | verdicts (exit) | measured offset (± uncertainty, round trip) "
          "| server-seen spread, median | release spread, median |")
    print("|---|---|---|---|---|---|---|")
    seed = 1000
    with tempfile.TemporaryDirectory() as tmp, _netns.two_hosts() as hosts, \
            _netns.service(hosts, Path(tmp), race_window_ms=10.0) as url:
        for name, offset, extra in CASES:
            results = []
            for n in range(args.trials):
                seed += 1
                results.append(_netns.swarm(hosts, url, Path(tmp) / f"{seed}", far_offset_ms=offset, seed=seed,
                                            extra=extra))
            codes = [r.returncode for r in results]
            said = ", ".join(f"{VERDICTS.get(c, c)} ({c}) ×{codes.count(c)}" for c in sorted(set(codes)))
            reports = [r.report for r in results if r.report is not None]
            lanes = [lane for r in reports for lane in r["config"]["locust"]["clocks"]["lanes"].values()]
            far = max(lanes, key=lambda lane: abs(lane["offset_ms"] or 0)) if lanes else None
            offset_text = (f"{far['offset_ms']:+.2f} ms (± {far['uncertainty_ms']:.2f}, rtt {far['rtt_ms']:.2f})"
                           if far else "-")
            arrival = statistics.median(r["metrics"]["payment_arrival_spread_ms_p50"] for r in reports)
            release = statistics.median(r["metrics"]["payment_release_spread_ms_p50"] for r in reports)
            print(f"| {name} | {'off' if extra else 'on'} | {len(results)} | {said} | {offset_text} | "
                  f"{arrival:.1f} ms | {release:.1f} ms |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
