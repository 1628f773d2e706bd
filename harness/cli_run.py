"""The ``race-harness`` commands that run and judge races: run, demo, verify, compare."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .result import EXIT_INCONCLUSIVE, EXIT_INVALID, EXIT_OK, RunReport, Verdict
from ._cli_common import ProgressBar, fail
from .report_tables import strength_text


def _target_from_args(args: argparse.Namespace):
    from .profile import BUILT_IN, load_profile
    from .target import Signing, Target

    profile = getattr(args, "profile", None)
    if profile:
        if args.target_file:
            raise ValueError("--profile and --target-file both describe the service: give one of them")
        if profile in BUILT_IN and not args.target:
            return None  # the reference service is started and judged through the built-in profile
        return load_profile(profile, base_url=args.target)
    if args.target_file:
        try:
            target = Target.load(args.target_file)
        except (OSError, ValueError, TypeError) as exc:
            raise ValueError(f"cannot read target file {args.target_file}: {exc}") from None
        if args.target:
            target = target.with_(base_url=args.target)
    elif args.target:
        target = Target(base_url=args.target)
    else:
        return None
    signing = target.signing
    changes = {k: v for k, v in (("merchant_id", args.merchant_id), ("salt_key", args.salt_key),
                                 ("salt_index", args.salt_index)) if v is not None}
    if changes:
        target = target.with_(signing=Signing(**{**signing.__dict__, **changes}))
    for field, value in (("receipts_dir", str(args.receipts_dir) if args.receipts_dir else None),
                         ("mongo_uri", args.mongo_uri), ("mongo_database", getattr(args, "mongo_database", None)),
                         ("gateway_url", args.gateway_url)):
        if value:
            target = target.with_(**{field: value})
    if not target.base_url.startswith(("http://", "https://")):
        raise ValueError(f"--target must be an http:// or https:// URL, not {target.base_url!r}")
    return target


def _run_config(args: argparse.Namespace, **overrides: Any):
    """(RunConfig, ReferenceOptions or None): with no target the reference service is started for the run."""
    from .plan import Plan, parse_channel_mix
    from .reference import ReferenceOptions
    from .runner import RunConfig
    from .tls import trust_of

    plan = Plan(payments=args.payments, duplicates=args.duplicates, unpaid=args.unpaid,
                channel_mix=parse_channel_mix(args.channel_mix), seed=args.seed, rounds=args.rounds,
                round_interval=args.round_interval)
    target = _target_from_args(args)
    if target is not None and (args.store or args.workers is not None):
        raise ValueError("--store and --workers configure the service race-harness starts; with --target nothing "
                         "is started (use --mongo-uri to read a target's state from its MongoDB)")
    if target is not None and (getattr(args, "http2", False) or getattr(args, "tls", False)):
        raise ValueError("--http2 and --tls configure the service race-harness starts; with --target nothing is "
                         "started (--sync auto asks the target whether it speaks HTTP/2)")
    config = RunConfig(plan=plan, target=target, sync=args.sync, timeout=args.timeout,
                       targets_file=args.targets_file, label=overrides.pop("label", args.label),
                       report_dir=args.report_dir, service_pid=args.service_pid, announce=_announce,
                       verify_tls=trust_of(args.insecure, args.ca_file))
    reference = None if target is not None else ReferenceOptions.from_args(
        args, receipts_dir=args.receipts_dir, profile=getattr(args, "profile", None), **overrides)
    return config, reference


def _announce(message: str) -> None:
    print(f"race-harness: {message}", file=sys.stderr, flush=True)


def _print_report(report: RunReport, as_json: bool, paths: dict[str, Path] | None = None) -> None:
    if as_json:
        print(json.dumps({"label": report.label, "verdict": report.verdict.__dict__, "metrics": report.metrics,
                          "checks": [{"name": c.name, "valid": c.valid, "violations": [v.__dict__ for v in c.violations]}
                                     for c in report.checks],
                          "targets": [t.__dict__ for t in report.targets],
                          "reports": {k: str(v) for k, v in (paths or {}).items()}}, indent=2, default=str))
        return
    print(f"[{report.label}] {report.explain(limit=5)}")
    m = report.metrics
    if m.get("payments_unjudged"):
        print(f"  judged {m.get('payments_judged')} of {m.get('payments')} payments; {m.get('payments_unjudged')} "
              f"unjudged: none of their requests reached the service")
    def ms(name: str) -> str:
        return f"{m[name]} ms" if m.get(name) is not None else "not measured"

    print(f"  payments {m.get('payments_paid')} paid + {m.get('payments_unpaid')} unpaid, {m.get('requests')} requests; "
          f"receipts per paid payment {m.get('receipts_per_payment_min')}–{m.get('receipts_per_payment_max')}; "
          f"release spread {ms('release_spread_ms')}, server-seen spread {ms('arrival_spread_ms')}")
    print(f"  strength: {strength_text(m)}")
    for target in report.targets:
        measured = "not measured" if target.measured is None else f"{target.measured:g} {target.unit}".strip()
        print(f"  target {target.name:<26} {target.status:<13} {measured} (expected {target.expected})")
    for kind, path in (paths or {}).items():
        print(f"  report ({kind}): {path}")


def _execute(config, reference, args: argparse.Namespace) -> tuple[RunReport, dict[str, Path]]:
    from .reference import race
    from .report import write_report
    from .runner import run_race

    # Written here, so the paths can be printed; the run still knows the directory (a sink keeps its records there).
    config.write_report = False
    with ProgressBar(not args.quiet and not args.json) as progress:
        report = race(reference, config, progress) if reference is not None else run_race(config, progress)
    paths = write_report(report, config.report_dir) if config.report_dir else {}
    return report, paths


def _cmd_run(args: argparse.Namespace) -> int:
    from .plan import PlanError
    from .runner import HarnessError

    try:
        config, reference = _run_config(args)
        report, paths = _execute(config, reference, args)
    except (HarnessError, PlanError, ValueError) as exc:
        return fail(str(exc))
    _print_report(report, args.json, paths)
    return report.verdict.exit_code


def _cmd_demo(args: argparse.Namespace) -> int:
    from .compare import compare, print_comparison, write_comparison
    from .plan import PlanError
    from .runner import HarnessError

    from .reference import require

    from .profile import BUILT_IN

    reports = {}
    if args.profile and args.profile not in BUILT_IN:
        return fail(f"the demo races the reference service: --profile takes a built-in name ({', '.join(BUILT_IN)})")
    try:
        require()  # before anything is announced: one line naming the extra to install
        for label, mode in (("vulnerable", "vulnerable"), ("atomic", "atomic")):
            config, reference = _run_config(args, mode=mode, label=label)
            service = f"the {mode} service" + (f" ({reference.workers} workers)" if reference.workers > 1 else "")
            print(f"race-harness demo: {args.payments} payments x {args.duplicates} simultaneous callbacks "
                  f"against {service} ...", file=sys.stderr)
            reports[label], paths = _execute(config, reference, args)
            if not args.json:
                _print_report(reports[label], False, paths)
                print()
    except (HarnessError, PlanError, ValueError, RuntimeError) as exc:
        return fail(str(exc))
    comparison = compare(reports["vulnerable"], reports["atomic"])
    written = write_comparison(comparison, args.report_dir)
    if args.json:
        print(json.dumps(comparison.to_dict(), indent=2, default=str))
    else:
        print_comparison(comparison)
        for kind, path in written.items():
            print(f"comparison ({kind}): {path}")
    return demo_exit(reports["vulnerable"].verdict, reports["atomic"].verdict)


def demo_exit(before: Verdict, after: Verdict) -> int:
    """The demo's exit code: 0 when its story holds — duplicates before, every invariant after.

    A timing target the atomic run missed (a busy machine's processing time) is shown in the
    comparison but is not the story; a violated or unjudgeable invariant after the fix is.
    """
    if after.valid is False:
        return EXIT_INVALID
    if after.valid is None:
        return EXIT_INCONCLUSIVE
    if before.exit_code != EXIT_INVALID:
        return EXIT_INCONCLUSIVE  # the vulnerable service showed no duplicates: the demo proved nothing
    return EXIT_OK


def _cmd_compare(args: argparse.Namespace) -> int:
    from .compare import compare_files, print_comparison, write_comparison

    try:
        comparison = compare_files(args.before, args.after)
    except ValueError as exc:
        return fail(str(exc))
    if args.json:
        print(json.dumps(comparison.to_dict(), indent=2, default=str))
    else:
        print_comparison(comparison)
    out_dir = args.report_dir or Path(args.after).parent
    for kind, path in write_comparison(comparison, out_dir).items():
        if not args.json:
            print(f"comparison ({kind}): {path}")
    return EXIT_OK


def _cmd_verify(args: argparse.Namespace) -> int:
    from .report import write_report
    from .runner import HarnessError, reverify

    try:
        previous = RunReport.load(args.report)
        changes = {k: v for k, v in (("base_url", args.target), ("mongo_uri", args.mongo_uri),
                                     ("mongo_database", args.mongo_database),
                                     ("receipts_dir", str(args.receipts_dir) if args.receipts_dir else None)) if v}
        report = reverify(previous, changes, targets_file=args.targets_file, sink_records=args.sink_records,
                          report_file=args.report)
    except (HarnessError, OSError, ValueError, KeyError) as exc:
        return fail(str(exc))
    paths = write_report(report, args.report_dir) if args.report_dir else {}
    _print_report(report, args.json, paths)
    return report.verdict.exit_code
