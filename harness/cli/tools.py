"""The ``race-harness`` tools around a run: serve (the reference service), burst, matrix, power, profile check."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from harness.verdict.result import EXIT_INVALID, EXIT_OK, EXIT_USAGE
from harness.progress import ProgressBar
from harness.cli.common import Parser, fail, say
from harness.redact import mask_values
from harness.reference import add_serve_arguments
from harness.senders import SENDERS


def _cmd_serve(args: argparse.Namespace) -> int:
    from harness.reference import serve
    from harness.errors import WireServerError

    try:
        return serve(args)
    except (ValueError, WireServerError) as exc:
        return fail(str(exc))


def _cmd_burst(args: argparse.Namespace) -> int:
    from harness.senders.burst import PreparedRequest, fire
    from harness.profile.payments import Payment
    from harness.profile.legacy import Target

    headers = []
    for raw in args.header:
        name, sep, value = raw.partition(":")
        if not sep or not name.strip():
            return fail(f"--header must look like 'Name: value', not {raw!r}")
        headers.append((name.strip(), value.strip()))
    if not args.url.startswith(("http://", "https://")):
        return fail("--url must be an absolute http:// or https:// URL")
    if args.duplicates < 1:
        return fail("--duplicates must be at least 1")
    if args.kind == "raw":
        body = args.data.encode() if args.data is not None else b""
        request = PreparedRequest(args.method.upper(), args.url, tuple(headers), body, channel="raw")
    else:
        target = Target(base_url=args.url)
        if args.kind == "callback":
            if not args.transaction or args.amount is None:
                return fail("--kind callback needs --transaction and --amount")
            request = target.callback_request(Payment(args.payment_id or args.transaction, args.transaction, args.amount),
                                              args.state)
        else:
            if not args.payment_id:
                return fail("--kind verify needs --payment-id")
            request = target.verify_request(Payment(args.payment_id, args.transaction or "", args.amount or 0))
    try:
        result = fire([request] * args.duplicates, sync=args.sync, timeout=args.timeout,
                      warmup_path=args.warmup_path or None, verify_tls=not args.insecure)
    except ValueError as exc:
        return fail(str(exc))
    summary = result.summary()
    if args.json:
        print(json.dumps({"summary": summary, "history": result.history.to_dict()}, indent=2, default=str))
    else:
        print(say(f"{summary['requests']} requests ({summary['sync']}): {summary['responded']} answered, "
                  f"{summary['errors']} errors; statuses {summary['statuses']}"))
        print(f"release spread {summary['release_spread_ms']} ms; server-seen arrival spread "
              f"{summary['arrival_spread_ms'] if summary['arrival_spread_ms'] is not None else 'not reported'} ms; "
              f"latency p50 {summary['latency_ms']['p50']} ms, p95 {summary['latency_ms']['p95']} ms")
        for kind, count in summary["error_kinds"].items():
            print(say(f"  {count} x {kind} error"))
    return EXIT_OK if result.all_responded() else EXIT_INVALID


def _cmd_matrix(args: argparse.Namespace) -> int:
    from harness.studies.matrix import FAULTS, MODES, NEMESIS_FAULTS, run_matrix, to_dicts, to_markdown

    modes = tuple(m.strip() for m in args.modes.split(",") if m.strip())
    faults = tuple(f.strip() for f in args.faults.split(",") if f.strip())
    known = (*FAULTS, *NEMESIS_FAULTS)
    bad = [m for m in modes if m not in MODES] + [f for f in faults if f not in known]
    if bad or not modes or not faults:
        return fail(f"unknown mode or fault {', '.join(bad) or '(none given)'}; modes: {', '.join(MODES)}; "
                     f"faults: {', '.join(known)}")
    from harness.errors import HarnessError

    try:
        with ProgressBar(not args.quiet and not args.json) as progress:
            cells = run_matrix(modes, faults, payments=args.payments, duplicates=args.duplicates,
                               lease_seconds=args.lease_seconds, generation_delay_ms=args.generation_delay_ms,
                               report_dir=args.report_dir, profile=args.profile, progress=progress)
    except HarnessError as exc:
        return fail(str(exc))
    table = to_markdown(cells, payments=args.payments, duplicates=args.duplicates, lease_seconds=args.lease_seconds)
    if args.report_dir:
        args.report_dir.mkdir(parents=True, exist_ok=True)
        (args.report_dir / "matrix.md").write_text(table)
        (args.report_dir / "matrix.json").write_text(json.dumps({"version": 1, "kind": "race-harness-matrix",
                                                                  "cells": to_dicts(cells)}, indent=2))
    print(json.dumps(to_dicts(cells), indent=2) if args.json else say(table))
    return EXIT_OK


def _cmd_power(args: argparse.Namespace) -> int:
    from harness.errors import ServiceStartError
    from harness.studies.power import PowerSettings, render_markdown, sweep, write

    try:
        settings = PowerSettings(
            windows_ms=tuple(float(w) for w in args.windows.split(",") if w.strip()),
            duplicates=tuple(int(d) for d in args.duplicates.split(",") if d.strip()),
            syncs=tuple(s.strip() for s in args.syncs.split(",") if s.strip()), trials=args.trials, link=args.link,
            max_seconds=args.max_seconds, trial_timeout=args.trial_timeout)
        settings.validate()
    except ValueError as exc:
        return fail(str(exc))
    try:
        with ProgressBar(not args.quiet and not args.json) as progress:
            result = sweep(settings, progress)
    except ServiceStartError as exc:
        return fail(f"could not start the reference service: {exc}")
    paths = write(result, args.report_dir) if args.report_dir else {}
    if args.json:
        print(json.dumps({**result.to_dict(), "reports": {k: str(v) for k, v in paths.items()}}, indent=2))
    else:
        print(say(render_markdown(result)))
        for kind, path in paths.items():
            print(say(f"report ({kind}): {path}"))
    return EXIT_OK


def _cmd_profile_check(args: argparse.Namespace) -> int:
    from harness.errors import ProfileError
    from harness.profile import load_profile
    from harness.run.check import check_profile

    try:
        profile = load_profile(args.profile, base_url=args.target)
    except ProfileError as exc:
        return fail(str(exc))
    result = check_profile(profile)
    # What the service answered and each rule extracted: its secrets masked by value, escaped for the terminal.
    print(say(mask_values(result.render(), profile.secret_values())))
    return EXIT_OK if result.ok else EXIT_USAGE


# -- the parsers --------------------------------------------------------------------------------


def register(sub: Any) -> None:
    """serve, matrix, power, burst and profile check on the CLI's subparsers."""
    serve = sub.add_parser("serve", help="run the reference receipt service")
    add_serve_arguments(serve)
    serve.set_defaults(func=_cmd_serve)

    matrix = sub.add_parser("matrix", help="every mode under every fault: receipts, missing receipts, verdicts")
    matrix.add_argument("--modes", default="vulnerable,atomic,lease")
    matrix.add_argument("--faults", default="none,generation failure,crash after claim,slow store,"
                                            "process killed mid-generation,paused past the lease,database link cut",
                        help="the service's own injected faults and the nemesis's (process killed mid-generation, "
                             "paused past the lease, database link cut: the service's process, on a wire store; "
                             "default: %(default)s)")
    matrix.add_argument("--payments", type=int, default=5)
    matrix.add_argument("--duplicates", type=int, default=5)
    matrix.add_argument("--lease-seconds", type=float, default=1.0)
    matrix.add_argument("--generation-delay-ms", type=float, default=200.0)
    matrix.add_argument("--profile", help="judge every cell through this built-in profile (reference, reference-v2)")
    matrix.add_argument("--report-dir", type=Path, default=Path("reports/matrix"))
    matrix.add_argument("--json", action="store_true")
    matrix.add_argument("--quiet", action="store_true")
    matrix.set_defaults(func=_cmd_matrix)

    power = sub.add_parser("power", help="detection power: P(duplicate caught) per race-window width, duplicates "
                                         "and sync mode on the vulnerable reference service, with a chart")
    power.add_argument("--windows", default="0.5,1,2,5,10,50", help="check-then-act windows in ms (default: %(default)s)")
    power.add_argument("--duplicates", default="2,5,20", help="duplicates per payment (default: %(default)s)")
    power.add_argument("--syncs", default="last-byte,single-packet", help="sync modes (default: %(default)s)")
    power.add_argument("--trials", type=int, default=5, help="one-payment trials per cell (default: %(default)s)")
    power.add_argument("--link", metavar="DELAY±JITTER", help="race across a relay link, e.g. 20ms±3ms "
                                                               "(base delay each way ± per-chunk jitter)")
    power.add_argument("--max-seconds", type=float, default=1800.0,
                       help="start no trial after this long (default: %(default)s); short cells say so")
    power.add_argument("--trial-timeout", type=float, default=30.0, help="each trial's run timeout (s)")
    power.add_argument("--report-dir", type=Path, default=Path("reports/power"))
    power.add_argument("--json", action="store_true")
    power.add_argument("--quiet", action="store_true", help="no progress bar")
    power.set_defaults(func=_cmd_power)

    burst = sub.add_parser("burst", help="fire N simultaneous copies of one request and report the spread")
    burst.add_argument("--url", required=True, help="full URL (raw) or the service's base URL (callback, verify)")
    burst.add_argument("--kind", choices=("raw", "callback", "verify"), default="raw")
    burst.add_argument("--method", default="POST")
    burst.add_argument("--data", help="request body (raw)")
    burst.add_argument("--header", action="append", default=[], help="'Name: value' (repeatable)")
    burst.add_argument("--duplicates", type=int, default=10)
    burst.add_argument("--sync", choices=tuple(SENDERS), default="last-byte")
    burst.add_argument("--timeout", type=float, default=30.0)
    burst.add_argument("--warmup-path", default="/healthz", help="GET sent on each connection first ('' for none)")
    burst.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    burst.add_argument("--transaction", help="merchantTransactionId (callback)")
    burst.add_argument("--amount", type=int, help="amount in paise (callback)")
    burst.add_argument("--state", choices=("COMPLETED", "FAILED", "PENDING"), default="COMPLETED")
    burst.add_argument("--payment-id", help="the service's payment id (verify)")
    burst.add_argument("--json", action="store_true")
    burst.set_defaults(func=_cmd_burst)

    profile = sub.add_parser("profile", help="work with target profiles (docs/profiles.md)")
    profile_sub = profile.add_subparsers(dest="profile_command", required=True, parser_class=Parser)
    check = profile_sub.add_parser("check", help="a dry run: one payment, one signed delivery, and what every rule "
                                                 "of the profile extracted (exit 4 naming the rule that found nothing)")
    check.add_argument("profile", help="a profile file, or a built-in name")
    check.add_argument("--target", metavar="URL", help="the service's base URL (default: the profile's base_url)")
    check.set_defaults(func=_cmd_profile_check)
