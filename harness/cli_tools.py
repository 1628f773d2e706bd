"""The ``race-harness`` tools around a run: serve (the reference service), burst, matrix."""

from __future__ import annotations

import argparse
import json

from .result import EXIT_INVALID, EXIT_OK, EXIT_USAGE
from ._cli_common import ProgressBar, fail


def _cmd_serve(args: argparse.Namespace) -> int:
    from .reference import serve
    from .wire import WireServerError

    try:
        return serve(args)
    except (ValueError, WireServerError) as exc:
        return fail(str(exc))


def _cmd_burst(args: argparse.Namespace) -> int:
    from .burst import PreparedRequest, fire
    from .target import Payment, Target

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
        print(f"{summary['requests']} requests ({summary['sync']}): {summary['responded']} answered, "
              f"{summary['errors']} errors; statuses {summary['statuses']}")
        print(f"release spread {summary['release_spread_ms']} ms; server-seen arrival spread "
              f"{summary['arrival_spread_ms'] if summary['arrival_spread_ms'] is not None else 'not reported'} ms; "
              f"latency p50 {summary['latency_ms']['p50']} ms, p95 {summary['latency_ms']['p95']} ms")
        for kind, count in summary["error_kinds"].items():
            print(f"  {count} x {kind} error")
    return EXIT_OK if result.all_responded() else EXIT_INVALID


def _cmd_matrix(args: argparse.Namespace) -> int:
    from .matrix import FAULTS, MODES, run_matrix, to_dicts, to_markdown

    modes = tuple(m.strip() for m in args.modes.split(",") if m.strip())
    faults = tuple(f.strip() for f in args.faults.split(",") if f.strip())
    bad = [m for m in modes if m not in MODES] + [f for f in faults if f not in FAULTS]
    if bad or not modes or not faults:
        return fail(f"unknown mode or fault {', '.join(bad) or '(none given)'}; modes: {', '.join(MODES)}; "
                     f"faults: {', '.join(FAULTS)}")
    from .runner import HarnessError

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
    print(json.dumps(to_dicts(cells), indent=2) if args.json else table)
    return EXIT_OK


def _cmd_power(args: argparse.Namespace) -> int:
    from .embedded import ServiceStartError
    from .power import PowerSettings, render_markdown, sweep, write

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
        print(render_markdown(result))
        for kind, path in paths.items():
            print(f"report ({kind}): {path}")
    return EXIT_OK


def _cmd_profile_check(args: argparse.Namespace) -> int:
    from .profile import ProfileError, load_profile
    from .profile.check import check_profile

    try:
        profile = load_profile(args.profile, base_url=args.target)
    except ProfileError as exc:
        return fail(str(exc))
    result = check_profile(profile)
    print(result.render())
    return EXIT_OK if result.ok else EXIT_USAGE
