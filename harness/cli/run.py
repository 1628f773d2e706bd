"""The ``race-harness`` commands that run and judge races: run, demo, verify, compare."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from harness.verdict.result import EXIT_INCONCLUSIVE, EXIT_INVALID, EXIT_OK, RunReport, Verdict
from harness.progress import ProgressBar
from harness.cli.common import fail, say
from harness.reference import SERVICE
from harness.run.options import FAULTS, OUTPUT, PLAN, SENDING, TARGET, TLS, Option, add_options, defaults
from harness.report.tables import strength_text


def _profile_from_args(args: argparse.Namespace):
    """The one description of the service, made here once: --profile, --target-file or --target URL (with
    the legacy flags that adjust a target) become a Profile. None: the reference service is started."""
    from harness.profile import BUILT_IN, Signing, Target, load_profile

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
    origin = ({"from": "target file", "path": str(args.target_file)} if args.target_file else
              {"from": "--target", "base_url": target.base_url})
    return target.to_profile(origin)


def _run_config(args: argparse.Namespace, **overrides: Any):
    """(RunConfig, ReferenceOptions or None): with no target the reference service is started for the run."""
    from harness.prepare.plan import Plan, parse_channel_mix
    from harness.reference import ReferenceOptions
    from harness.run.session import RunConfig
    from harness.tls import trust_of

    plan = Plan(payments=args.payments, duplicates=args.duplicates, unpaid=args.unpaid,
                channel_mix=parse_channel_mix(args.channel_mix), seed=args.seed, rounds=args.rounds,
                round_interval=args.round_interval)
    target = _profile_from_args(args)
    if target is not None and (args.store or args.workers is not None):
        raise ValueError("--store and --workers configure the service race-harness starts; with --target nothing "
                         "is started (use --mongo-uri to read a target's state from its MongoDB)")
    if target is not None and (getattr(args, "http2", False) or getattr(args, "tls", False)):
        raise ValueError("--http2 and --tls configure the service race-harness starts; with --target nothing is "
                         "started (--sync auto asks the target whether it speaks HTTP/2)")
    config = RunConfig(plan=plan, profile=target, sync=args.sync, timeout=args.timeout,
                       targets_file=args.targets_file, label=overrides.pop("label", args.label),
                       report_dir=args.report_dir, service_pid=args.service_pid, announce=_announce,
                       verify_tls=trust_of(args.insecure, args.ca_file),
                       **{name: getattr(args, name, default) for name, default in defaults(FAULTS).items()})
    if config.nemesis and target is None:
        raise ValueError("--nemesis acts on a service whose profile says how it runs ([service]): give --profile "
                         "FILE (the reference service's faults are --crash-after-claim-rate and the matrix)")
    reference = None if target is not None else ReferenceOptions.from_args(
        args, receipts_dir=args.receipts_dir, profile=getattr(args, "profile", None), **overrides)
    return config, reference


def _announce(message: str) -> None:
    print(f"race-harness: {say(message)}", file=sys.stderr, flush=True)


def _secrets(config: Any) -> frozenset[str]:
    """The secret values a run was given (its profile's), masked wherever they appear in what it writes and prints.
    A run of the reference service started here (no profile yet) has none known here."""
    return config.profile.secret_values() if config.profile is not None else frozenset()


def print_report(report: RunReport, as_json: bool, paths: dict[str, Path] | None = None,
                 secrets: frozenset[str] = frozenset(), extra: dict[str, Any] | None = None) -> None:
    """The run's summary on stdout: secrets masked as in the written report, and (as text) every value the
    service controls — a file name, an answer — escaped for the terminal."""
    from harness.redact import printable, printable_values
    from harness.report.write import redacted

    report = redacted(report, secrets)
    if as_json:
        print(json.dumps({"label": report.label, "verdict": report.verdict.__dict__, "metrics": report.metrics,
                          "checks": [{"name": c.name, "valid": c.valid, "violations": [v.__dict__ for v in c.violations]}
                                     for c in report.checks],
                          "targets": [t.__dict__ for t in report.targets],
                          "reports": {k: str(v) for k, v in (paths or {}).items()}, **(extra or {})},
                         indent=2, default=str))
        return
    report = RunReport.from_dict(printable_values(json.loads(report.dumps())))
    print(f"[{report.label}] {report.explain(limit=5)}")
    m = report.metrics
    if m.get("payments_indeterminate"):
        print(f"  judged {m.get('payments_judged')} of {m.get('payments')} payments; {m.get('payments_indeterminate')} "
              f"indeterminate: none of their deliveries was acknowledged after the fault")
    elif m.get("payments_unjudged"):
        print(f"  judged {m.get('payments_judged')} of {m.get('payments')} payments; {m.get('payments_unjudged')} "
              f"unjudged: none of their requests reached the service")
    if m.get("faults") is not None:
        print(f"  faults: {m.get('faults')}; redelivered requests: {m.get('redeliveries')}; "
              f"lost side effects: {m.get('lost_effects')}")
    def per_payment(metrics: dict) -> str:
        low, high = metrics.get("receipts_per_payment_min"), metrics.get("receipts_per_payment_max")
        if low is None or high is None:  # nothing was read back: say so, never "None–None"
            return "not measured"
        return str(low) if low == high else f"{low}–{high}"

    def ms(name: str) -> str:
        return f"{m[name]} ms" if m.get(name) is not None else "not measured"

    print(f"  payments {m.get('payments_paid')} paid + {m.get('payments_unpaid')} unpaid, {m.get('requests')} requests; "
          f"side effects per paid payment {per_payment(m)}; "
          f"release spread {ms('release_spread_ms')}, server-seen spread {ms('arrival_spread_ms')}")
    print(f"  strength: {strength_text(m)}")
    for target in report.targets:
        measured = "not measured" if target.measured is None else f"{target.measured:g} {target.unit}".strip()
        print(f"  target {target.name:<26} {target.status:<13} {measured} (expected {target.expected})")
    for kind, path in (paths or {}).items():
        print(f"  report ({kind}): {printable(path)}")


def _execute(config, reference, args: argparse.Namespace) -> tuple[RunReport, dict[str, Path]]:
    from harness.reference import race
    from harness.report.write import write_report
    from harness.run.session import run_race

    # The run knows the directory (a sink keeps its records there); the report is written here, and its paths printed.
    with ProgressBar(not args.quiet and not args.json) as progress:
        report = race(reference, config, progress) if reference is not None else run_race(config, progress)
    paths = write_report(report, config.report_dir, secrets=_secrets(config)) if config.report_dir else {}
    return report, paths


def _cmd_run(args: argparse.Namespace) -> int:
    from harness.errors import PlanError
    from harness.errors import HarnessError

    try:
        config, reference = _run_config(args)
        if args.probe:  # what would be probed, before the race: bad input for the probes changes nothing
            from harness.probe.session import plan_probes
            from harness.profile import load_profile

            plan_probes(config.profile or load_profile(reference.profile or "reference",
                                                       {"RECEIPTS_DIR": "/nonexistent"}))
        report, paths = _execute(config, reference, args)
    except (HarnessError, PlanError, ValueError) as exc:
        return fail(str(exc))
    if not args.probe:
        print_report(report, args.json, paths, _secrets(config))
        return report.verdict.exit_code
    from harness.probe import probe_stdout
    from harness.probe.report import masked

    try:
        probe_report, probe_paths = _probe_after(config, reference, args)
    except (HarnessError, ValueError) as exc:  # the race stands; the probes could not say anything
        print_report(report, args.json, paths, _secrets(config), extra={"probe": {"error": say(str(exc))}})
        print(f"race-harness: the probes could not run: {say(str(exc))}", file=sys.stderr)
        return with_probe_exit(report.verdict.exit_code, EXIT_INCONCLUSIVE)
    shown = masked(probe_report, _secrets(config))
    print_report(report, args.json, paths, _secrets(config),
                 extra={"probe": {**shown, "reports": {k: str(v) for k, v in probe_paths.items()}}})
    if not args.json:
        print(say(probe_stdout(shown, probe_paths)))
    return with_probe_exit(report.verdict.exit_code, probe_report["exit_code"])


def with_probe_exit(run: int, probe: int) -> int:
    """``run --probe``'s exit code: 1 when the race or a probe found a violation (a hole is one), else the run's
    own (a missed target, an inconclusive run), else the probe's (3 when one could not be judged)."""
    if EXIT_INVALID in (run, probe):
        return EXIT_INVALID
    return run if run != EXIT_OK else probe


def _probe_after(config: Any, reference: Any, args: argparse.Namespace) -> tuple[dict, dict[str, Path]]:
    """``run --probe``: the webhook probes against the same service after the race (the reference service is
    started again in the same mode: a race leaves it stopped), their report beside the run's."""
    import tempfile

    from harness.probe import ProbeOptions, run_probes, write_probe_report

    label = config.label or (reference.mode if reference is not None else None)
    options = ProbeOptions(label=label, report_dir=config.report_dir, verify_tls=config.verify_tls,
                           timeout=config.timeout)
    if reference is None:
        report = run_probes(config.profile, options)
        secrets = _secrets(config)
    else:
        from harness.reference import started

        with tempfile.TemporaryDirectory(prefix="race-harness-probe-") as tmp, \
                started(reference, Path(tmp)) as provided:
            report = run_probes(provided.profile, options)
            secrets = provided.profile.secret_values()
    paths = write_probe_report(report, config.report_dir, secrets=secrets) if config.report_dir else {}
    return report, paths


def _cmd_demo(args: argparse.Namespace) -> int:
    from harness.report.compare import compare, print_comparison, write_comparison
    from harness.errors import PlanError
    from harness.errors import HarnessError

    from harness.reference import require

    from harness.profile import BUILT_IN

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
                print_report(reports[label], False, paths)
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
    from harness.report.compare import compare_files, print_comparison, write_comparison

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
    from harness.report.write import write_report
    from harness.errors import HarnessError
    from harness.redact import uri_credentials
    from harness.run import reverify

    # The credentials given here (the report's own were masked when it was written).
    secrets = frozenset(uri_credentials(args.target or "") | uri_credentials(args.mongo_uri or ""))
    try:
        previous = RunReport.load(args.report)
        changes = {k: v for k, v in (("base_url", args.target), ("mongo_uri", args.mongo_uri),
                                     ("mongo_database", args.mongo_database),
                                     ("receipts_dir", str(args.receipts_dir) if args.receipts_dir else None)) if v}
        report = reverify(previous, changes, targets_file=args.targets_file, sink_records=args.sink_records,
                          report_file=args.report)
    except (HarnessError, OSError, ValueError, KeyError) as exc:
        return fail(str(exc))
    paths = write_report(report, args.report_dir, secrets=secrets) if args.report_dir else {}
    print_report(report, args.json, paths, secrets)
    return report.verdict.exit_code


# -- the parsers --------------------------------------------------------------------------------

def _add_plan_options(p: argparse.ArgumentParser) -> None:
    add_options(p.add_argument_group("plan"), PLAN + SENDING)
    add_options(p.add_argument_group("TLS (an https:// service: its certificate is verified unless told otherwise)"),
                TLS)


def _add_service_options(p: argparse.ArgumentParser, options: Sequence[Option]) -> None:
    add_options(p.add_argument_group("embedded reference service (when no --target is given)"), options)


def _add_target_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("a service elsewhere")
    g.add_argument("--target", metavar="URL", help="base URL of the service under test (default: start the reference service)")
    add_options(g, TARGET)
    g.add_argument("--target-file", type=Path, help="legacy JSON target description (paths, signing, state source)")
    g.add_argument("--receipts-dir", type=Path, help="where the service writes its receipts (readable from here)")
    g.add_argument("--mongo-uri", help="read state straight from this MongoDB instead of the service's API (without "
                                       "--target: the started service's MongoDB, and state is read from it)")
    g.add_argument("--mongo-database", help="the database holding the charges (default: race_harness)")
    g.add_argument("--gateway-url", help="PhonePe status API simulator the target's verify path asks")
    g.add_argument("--merchant-id")
    g.add_argument("--salt-key")
    g.add_argument("--salt-index", type=int)
    g.add_argument("--service-pid", type=int, help="a local service's process id, to measure its memory")


def _add_output_options(p: argparse.ArgumentParser, report_default: str | None = None) -> None:
    g = p.add_argument_group("output")
    add_options(g, OUTPUT)
    g.add_argument("--report-dir", type=Path, default=Path(report_default) if report_default else None)
    g.add_argument("--json", action="store_true", help="print the result as JSON for machines")
    g.add_argument("--quiet", action="store_true", help="no progress bar")


def register(sub: Any) -> None:
    """run, demo, verify and compare on the CLI's subparsers."""
    run = sub.add_parser("run", help="fire duplicate webhooks, verify exactly-once, check targets, report")
    _add_plan_options(run)
    add_options(run.add_argument_group("faults (a profile whose [service] says how the service runs)"), FAULTS)
    _add_service_options(run, SERVICE)
    _add_target_options(run)
    _add_output_options(run, report_default="reports/runs")
    run.add_argument("--probe", action="store_true",
                     help="after the race, the webhook probes against the same service (race-harness probe): a hole "
                          "exits 1; their report goes beside the run's")
    run.set_defaults(func=_cmd_run)

    demo = sub.add_parser("demo", help="vulnerable then atomic on the embedded service, with the before/after table")
    _add_plan_options(demo)
    _add_service_options(demo, [o for o in SERVICE if o.name != "mode"])
    demo.add_argument("--mongo-uri", help="an external MongoDB for the service (default: $MONGODB_URI when --store "
                                          "is not given); state is read straight from it")
    add_options(demo.add_argument_group("the reference service's contract"), TARGET)
    _add_output_options(demo, report_default="reports/demo")
    demo.set_defaults(func=_cmd_demo, receipts_dir=None, target=None, target_file=None,
                      gateway_url=None, merchant_id=None, salt_key=None, salt_index=None, service_pid=None)

    verify = sub.add_parser("verify", help="judge a finished run again from the files and state as they are now")
    verify.add_argument("report", type=Path, help="a run's JSON report")
    verify.add_argument("--target", metavar="URL", help="the service's base URL, if it moved")
    verify.add_argument("--receipts-dir", type=Path)
    verify.add_argument("--mongo-uri")
    verify.add_argument("--mongo-database", help="the database holding the charges (default: the report's)")
    verify.add_argument("--targets", type=Path, dest="targets_file")
    verify.add_argument("--sink-records", type=Path, metavar="FILE",
                        help="the run's sink records (default: <report stem>.sink.jsonl beside the report, "
                             "else where the run wrote them)")
    verify.add_argument("--report-dir", type=Path)
    verify.add_argument("--json", action="store_true")
    verify.set_defaults(func=_cmd_verify)

    cmp = sub.add_parser("compare", help="the before/after table of two run reports")
    cmp.add_argument("before", type=Path)
    cmp.add_argument("after", type=Path)
    cmp.add_argument("--report-dir", type=Path, help="where comparison.md/.json go (default: beside AFTER)")
    cmp.add_argument("--json", action="store_true")
    cmp.set_defaults(func=_cmd_compare)
