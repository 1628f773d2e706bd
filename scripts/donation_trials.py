"""Race the donation-server stranger N times per variant through the CLI, as a new user would, and count verdicts.

    python scripts/donation_trials.py --runs 10

The profile (tests/strangers/donation_server.toml) starts the sink (an HTTP endpoint and mitmproxy's forward
proxy) and the service ([service]) on a fresh database of one SecantusDB wire server; nothing passes
--targets or --timeout. Expected: the vulnerable server exit 1 (duplicate donation records and WhatsApp
uploads), the fixed one exit 0, and the fixed one whose uploaded PDF carries a wrong amount exit 1. Prints
one line per case with the exit codes and the seconds each run took; exit 1 when any run went otherwise.
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
from _wire import fresh_database, wire_server  # noqa: E402

from harness.local.service import free_port  # noqa: E402

PROFILE = ROOT / "tests" / "strangers" / "donation_server.toml"
CASES = {"vulnerable": ("vulnerable", {}, 1), "fixed": ("fixed", {}, 0),
         "fixed, wrong amount uploaded": ("fixed", {"DS_WRONG_AMOUNT": "1"}, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--payments", type=int, default=3)
    parser.add_argument("--duplicates", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("RACE_HARNESS_MITMDUMP", mitmdump())
    uri = wire_server().uri
    failed = False
    for case, (variant, extra, expected) in CASES.items():
        codes: Counter[int] = Counter()
        seconds = []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory(prefix="donation-trial-") as work:
                env = {**os.environ, "DS_PYTHON": sys.executable, "DS_PORT": str(free_port()),
                       "DS_RECEIPTS_DIR": f"{work}/receipts", "DS_MONGO_URI": uri, "DS_DATABASE": fresh_database(),
                       "DS_VARIANT": variant, "DS_SECRET": "rzp-donation-trials", **extra}
                started = time.monotonic()
                result = subprocess.run([sys.executable, "-m", "harness", "run", "--profile", str(PROFILE),
                                         "--payments", str(args.payments), "--duplicates", str(args.duplicates),
                                         "--quiet", "--report-dir", f"{work}/report"],
                                        env=env, capture_output=True, text=True, timeout=300)
                seconds.append(time.monotonic() - started)
                codes[result.returncode] += 1
                if result.returncode != expected:
                    print(result.stdout[-1500:], file=sys.stderr)
        ok = codes[expected] == args.runs
        failed |= not ok
        print(f"{case:30} expected exit {expected}: {codes[expected]} of {args.runs}  exits {dict(codes)}  "
              f"{min(seconds):.1f}-{max(seconds):.1f} s per run", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
