"""``race-harness probe``: the command over ``harness.probe`` (forged, replayed, tampered deliveries change nothing)."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.cli.common import fail, say
from harness.errors import HarnessError, ProfileError
from harness.progress import ProgressBar
from harness.run.options import TLS, add_options

MODES_HELP = "with a built-in profile (reference, reference-v2): the reference service's mode (default: atomic)"


def register(sub: Any) -> argparse.ArgumentParser:
    """probe on the CLI's subparsers."""
    p = sub.add_parser("probe", help="send deliveries a gateway would never send (unsigned, forged, tampered, stale, "
                                     "for another amount, out of order) and check that none changed the service")
    p.add_argument("--profile", required=True,
                   help="the service's profile (what `run` takes); a built-in name (reference, reference-v2) starts "
                        "the reference service and probes it")
    p.add_argument("--mode", default="atomic", help=MODES_HELP)
    p.add_argument("--only", metavar="NAMES", help="comma-separated probe names to run (default: every one that applies)")
    p.add_argument("--timeout", type=float, help="seconds one delivery may take (default: the profile's [run] timeout, "
                                                  "else 30)")
    p.add_argument("--report-dir", type=Path, default=Path("reports/probe"))
    p.add_argument("--label", help="the report's name (default: the profile's name)")
    p.add_argument("--json", action="store_true", help="print the report as JSON for machines")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_options(p, TLS)
    p.set_defaults(func=cmd_probe)
    return p


@contextlib.contextmanager
def probed_profile(args: argparse.Namespace) -> Iterator[Any]:
    """The Profile to probe: a profile file (its service is the user's, or its [service] is started by the
    probe run), or the reference service started here for a built-in name."""
    from harness.profile import BUILT_IN, load_profile

    if args.profile not in BUILT_IN:
        yield load_profile(args.profile)
        return
    from harness.errors import ServiceStartError
    from harness.reference import (
        ReferenceOptions,
        ReferenceUnavailable,
        require,
        started,
    )

    try:
        require()
        options = ReferenceOptions(mode=args.mode, profile=args.profile)
        options.validate()
    except (ValueError, ReferenceUnavailable) as exc:
        raise HarnessError(str(exc)) from None
    with tempfile.TemporaryDirectory(prefix="race-harness-probe-") as tmp:
        try:
            with started(options, Path(tmp)) as provided:
                yield provided.profile
        except ServiceStartError as exc:
            raise HarnessError(f"could not start the reference service: {exc}") from None


def cmd_probe(args: argparse.Namespace) -> int:
    """Run the probes, write their report, print its summary; exit 1 on a hole, 3 when one could not be judged."""
    from harness.probe import ProbeOptions, probe_stdout, run_probes, write_probe_report
    from harness.probe.report import masked
    from harness.probe.session import plan_probes
    from harness.profile import BUILT_IN, load_profile
    from harness.tls import trust_of

    only = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
    try:
        if args.timeout is not None and not args.timeout > 0:
            raise HarnessError(f"--timeout must be above 0 seconds, not {args.timeout:g}")
        if args.profile in BUILT_IN:  # what would be probed, known before the reference service is started
            plan_probes(load_profile(args.profile, {"RECEIPTS_DIR": "/nonexistent"}), only)
        with probed_profile(args) as profile, ProgressBar(not args.quiet and not args.json) as bar:
            secrets = profile.secret_values()
            options = ProbeOptions(label=args.label, report_dir=args.report_dir, only=only, timeout=args.timeout,
                                   verify_tls=trust_of(args.insecure, args.ca_file))
            report = run_probes(profile, options, bar)
    except (HarnessError, ProfileError, ValueError) as exc:
        return fail(str(exc))
    paths = write_probe_report(report, args.report_dir, secrets=secrets) if args.report_dir else {}
    shown = masked(report, secrets)  # what is printed masks what the written report masks
    if args.json:
        print(json.dumps({**shown, "reports": {k: str(v) for k, v in paths.items()}}, indent=2))
    else:
        print(say(probe_stdout(shown, paths)))
    sys.stdout.flush()
    return report["exit_code"]
