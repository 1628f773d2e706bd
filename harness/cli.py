"""The ``race-harness`` command: serve, run, burst, verify, compare, demo.

Exit codes: 0 every invariant and target holds; 1 an invariant is violated; 2 a target is missed;
3 inconclusive; 4 usage or configuration error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Iterator, Sequence

from .result import EXIT_INCONCLUSIVE, EXIT_INVALID, EXIT_OK, EXIT_USAGE, RunReport

MODES = ("vulnerable", "atomic", "lease", "locked")
STORES = ("memory", "wire")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # usage errors exit 4, as documented
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _fail(message: str) -> int:
    print(f"race-harness: error: {message}", file=sys.stderr)
    return EXIT_USAGE


# -- progress ----------------------------------------------------------------------------------

class _ProgressBar:
    """A rich progress bar on stderr for long runs; quiet when asked or when stderr is not a terminal."""

    def __init__(self, enabled: bool):
        self._progress = None
        self._tasks: dict[str, Any] = {}
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            console = Console(stderr=True)
            if console.is_terminal:
                self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                          TimeElapsedColumn(), console=console, transient=True)

    def __enter__(self) -> "_ProgressBar":
        if self._progress:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress:
            self._progress.stop()

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self._progress:
            return
        if stage not in self._tasks:
            self._tasks[stage] = self._progress.add_task(stage, total=total)
        self._progress.update(self._tasks[stage], completed=done, total=total)


# -- shared options ----------------------------------------------------------------------------

def _add_plan_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("plan")
    g.add_argument("--payments", type=int, default=10, help="paid payments (default: %(default)s)")
    g.add_argument("--duplicates", type=int, default=5, help="simultaneous requests per payment (default: %(default)s)")
    g.add_argument("--unpaid", type=int, default=0, help="control payments that only get FAILED/PENDING callbacks")
    g.add_argument("--channel-mix", default="callback:1",
                   help="weights of callback and verify requests, e.g. callback:3,verify:1 (default: %(default)s)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--sync", choices=("last-byte", "naive", "sequential"), default="last-byte",
                   help="how duplicates are sent (default: %(default)s; sequential never overlaps)")
    g.add_argument("--timeout", type=float, default=60.0, help="seconds one burst may take (default: %(default)s)")
    g.add_argument("--rounds", type=int, default=1, help="delivery rounds; later ones are the gateway's retries")
    g.add_argument("--round-interval", type=float, default=0.0, help="seconds between rounds (e.g. > a lease)")


def _add_service_options(p: argparse.ArgumentParser, with_mode: bool = True, with_mongo_uri: bool = False) -> None:
    g = p.add_argument_group("embedded reference service (when no --target is given)")
    if with_mode:
        g.add_argument("--mode", choices=MODES, default="atomic")
    g.add_argument("--store", choices=STORES,
                   help="the service's store: memory (embedded, the default) or wire (a SecantusDB wire-protocol "
                        "server started for the run, pip install -e '.[wire]'); an external MongoDB: --mongo-uri")
    if with_mongo_uri:
        g.add_argument("--mongo-uri", help="an external MongoDB for the service (default: $MONGODB_URI when --store "
                                           "is not given); state is read straight from it")
    g.add_argument("--workers", type=int, help="the service's worker processes, sharing its port and store "
                                               "(N > 1 needs --store wire or --mongo-uri; default: 1)")
    g.add_argument("--generation-delay-ms", type=float, default=200.0)
    g.add_argument("--failure-rate", type=float, default=0.0, help="probability a receipt generation fails")
    g.add_argument("--crash-after-claim-rate", type=float, default=0.0,
                   help="probability the claim's winner dies before generating (no rollback)")
    g.add_argument("--store-delay-ms", type=float, default=0.0, help="latency between store read and write")
    g.add_argument("--write-error-rate", type=float, default=0.0, help="probability the receipt write fails")
    g.add_argument("--lease-seconds", type=float, help="lease length for --mode lease")
    g.add_argument("--transient-faults", action="store_true", help="clear the faults before retry rounds")


def _add_target_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("a service elsewhere")
    g.add_argument("--target", metavar="URL", help="base URL of the service under test (default: start the reference service)")
    g.add_argument("--target-file", type=Path, help="JSON target description (paths, signing, state source)")
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
    g.add_argument("--targets", type=Path, dest="targets_file", help="documented targets file (default: the seed's)")
    g.add_argument("--report-dir", type=Path, default=Path(report_default) if report_default else None)
    g.add_argument("--label", help="name of this run in reports")
    g.add_argument("--json", action="store_true", help="print the result as JSON for machines")
    g.add_argument("--quiet", action="store_true", help="no progress bar")


def _target_from_args(args: argparse.Namespace):
    from .target import Signing, Target

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
    from .plan import Plan, parse_channel_mix
    from .runner import RunConfig

    plan = Plan(payments=args.payments, duplicates=args.duplicates, unpaid=args.unpaid,
                channel_mix=parse_channel_mix(args.channel_mix), seed=args.seed, rounds=args.rounds,
                round_interval=args.round_interval)
    target = _target_from_args(args)
    if target is not None and (args.store or args.workers is not None):
        raise ValueError("--store and --workers configure the service race-harness starts; with --target nothing "
                         "is started (use --mongo-uri to read a target's state from its MongoDB)")
    config = RunConfig(plan=plan, target=target, mode=getattr(args, "mode", "atomic"),
                       store=args.store, workers=1 if args.workers is None else args.workers,
                       mongo_uri=args.mongo_uri if target is None else None, announce=_announce,
                       generation_delay_ms=args.generation_delay_ms, faults=_fault_flags(args),
                       lease_seconds=args.lease_seconds, transient_faults=args.transient_faults,
                       receipts_dir=args.receipts_dir if target is None else None, sync=args.sync,
                       timeout=args.timeout, targets_file=args.targets_file, label=args.label,
                       report_dir=args.report_dir, service_pid=args.service_pid)
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def _announce(message: str) -> None:
    print(f"race-harness: {message}", file=sys.stderr, flush=True)


def _fault_flags(args: argparse.Namespace):
    from .embedded import FaultFlags

    return FaultFlags(failure_rate=args.failure_rate, crash_after_claim_rate=args.crash_after_claim_rate,
                      store_delay_ms=args.store_delay_ms, write_error_rate=args.write_error_rate)


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
    print(f"  payments {m.get('payments_paid')} paid + {m.get('payments_unpaid')} unpaid, {m.get('requests')} requests; "
          f"receipt files per paid payment {m.get('receipts_per_payment_min')}–{m.get('receipts_per_payment_max')}; "
          f"release spread {m.get('release_spread_ms')} ms, server-seen spread {m.get('arrival_spread_ms')} ms")
    for target in report.targets:
        measured = "not measured" if target.measured is None else f"{target.measured:g} {target.unit}".strip()
        print(f"  target {target.name:<26} {target.status:<13} {measured} (expected {target.expected})")
    for kind, path in (paths or {}).items():
        print(f"  report ({kind}): {path}")


def _execute(config, args: argparse.Namespace) -> tuple[RunReport, dict[str, Path]]:
    from .report import write_report
    from .runner import run_race

    report_dir = config.report_dir
    config.report_dir = None  # written here, so the paths can be printed
    with _ProgressBar(not args.quiet and not args.json) as progress:
        report = run_race(config, progress=progress)
    paths = write_report(report, report_dir) if report_dir else {}
    return report, paths


# -- commands ----------------------------------------------------------------------------------

def _cmd_serve(args: argparse.Namespace) -> int:
    # The CLI only launches the reference service; the harness's checkers never import it. A wire
    # store's server is the harness's to start (the service never imports the harness): it is
    # handed to the service as its --mongo-uri and stopped when the service returns, however it ends.
    from reference_service.server import serve

    if getattr(args, "store", None) != "wire":
        return serve(args)
    if args.mongo_uri:
        return _fail("--store wire and --mongo-uri name two different stores: give one of them")
    from .wire import WireServerError, start_wire_server

    try:
        wire = start_wire_server(host="127.0.0.1")
    except WireServerError as exc:
        return _fail(str(exc))
    with wire:
        print(f"wire store: SecantusDB at {wire.uri} (stopped when the service stops)", flush=True)
        args.store, args.mongo_uri = None, wire.uri
        return serve(args)


def _cmd_run(args: argparse.Namespace) -> int:
    from .plan import PlanError
    from .runner import HarnessError

    try:
        config = _run_config(args)
        report, paths = _execute(config, args)
    except (HarnessError, PlanError, ValueError) as exc:
        return _fail(str(exc))
    _print_report(report, args.json, paths)
    return report.verdict.exit_code


def _cmd_demo(args: argparse.Namespace) -> int:
    from .compare import compare, print_comparison, write_comparison
    from .plan import PlanError
    from .runner import HarnessError

    reports = {}
    try:
        for label, mode in (("vulnerable", "vulnerable"), ("atomic", "atomic")):
            config = _run_config(args, mode=mode, label=label, target=None)
            service = f"the {mode} service" + (f" ({config.workers} workers)" if config.workers > 1 else "")
            print(f"race-harness demo: {args.payments} payments x {args.duplicates} simultaneous callbacks "
                  f"against {service} ...", file=sys.stderr)
            reports[label], paths = _execute(config, args)
            if not args.json:
                _print_report(reports[label], False, paths)
                print()
    except (HarnessError, PlanError, ValueError) as exc:
        return _fail(str(exc))
    comparison = compare(reports["vulnerable"], reports["atomic"])
    written = write_comparison(comparison, args.report_dir)
    if args.json:
        print(json.dumps(comparison.to_dict(), indent=2, default=str))
    else:
        print_comparison(comparison)
        for kind, path in written.items():
            print(f"comparison ({kind}): {path}")
    before, after = reports["vulnerable"].verdict, reports["atomic"].verdict
    if before.exit_code == EXIT_INVALID and after.exit_code == EXIT_OK:
        return EXIT_OK  # the story holds: duplicates before, exactly one after
    if after.exit_code != EXIT_OK:
        return after.exit_code
    return EXIT_INCONCLUSIVE  # the vulnerable service showed no duplicates: the demo proved nothing


def _cmd_compare(args: argparse.Namespace) -> int:
    from .compare import compare_files, print_comparison, write_comparison

    try:
        comparison = compare_files(args.before, args.after)
    except ValueError as exc:
        return _fail(str(exc))
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
        report = reverify(previous, changes, targets_file=args.targets_file)
    except (HarnessError, OSError, ValueError, KeyError) as exc:
        return _fail(str(exc))
    paths = write_report(report, args.report_dir) if args.report_dir else {}
    _print_report(report, args.json, paths)
    return report.verdict.exit_code


def _cmd_burst(args: argparse.Namespace) -> int:
    from .burst import PreparedRequest, fire
    from .target import Payment, Target

    headers = []
    for raw in args.header:
        name, sep, value = raw.partition(":")
        if not sep or not name.strip():
            return _fail(f"--header must look like 'Name: value', not {raw!r}")
        headers.append((name.strip(), value.strip()))
    if not args.url.startswith(("http://", "https://")):
        return _fail("--url must be an absolute http:// or https:// URL")
    if args.duplicates < 1:
        return _fail("--duplicates must be at least 1")
    if args.kind == "raw":
        body = args.data.encode() if args.data is not None else b""
        request = PreparedRequest(args.method.upper(), args.url, tuple(headers), body, channel="raw")
    else:
        target = Target(base_url=args.url)
        if args.kind == "callback":
            if not args.transaction or args.amount is None:
                return _fail("--kind callback needs --transaction and --amount")
            request = target.callback_request(Payment(args.payment_id or args.transaction, args.transaction, args.amount),
                                              args.state)
        else:
            if not args.payment_id:
                return _fail("--kind verify needs --payment-id")
            request = target.verify_request(Payment(args.payment_id, args.transaction or "", args.amount or 0))
    try:
        result = fire([request] * args.duplicates, sync=args.sync, timeout=args.timeout,
                      warmup_path=args.warmup_path or None, verify_tls=not args.insecure)
    except ValueError as exc:
        return _fail(str(exc))
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
        return _fail(f"unknown mode or fault {', '.join(bad) or '(none given)'}; modes: {', '.join(MODES)}; "
                     f"faults: {', '.join(FAULTS)}")
    from .runner import HarnessError

    try:
        with _ProgressBar(not args.quiet and not args.json) as progress:
            cells = run_matrix(modes, faults, payments=args.payments, duplicates=args.duplicates,
                               lease_seconds=args.lease_seconds, generation_delay_ms=args.generation_delay_ms,
                               report_dir=args.report_dir, progress=progress)
    except HarnessError as exc:
        return _fail(str(exc))
    table = to_markdown(cells, payments=args.payments, duplicates=args.duplicates, lease_seconds=args.lease_seconds)
    if args.report_dir:
        args.report_dir.mkdir(parents=True, exist_ok=True)
        (args.report_dir / "matrix.md").write_text(table)
        (args.report_dir / "matrix.json").write_text(json.dumps({"version": 1, "kind": "race-harness-matrix",
                                                                  "cells": to_dicts(cells)}, indent=2))
    print(json.dumps(to_dicts(cells), indent=2) if args.json else table)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="race-harness", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    from reference_service.config import add_arguments

    serve = sub.add_parser("serve", help="run the reference receipt service")
    add_arguments(serve)
    serve.set_defaults(func=_cmd_serve)

    run = sub.add_parser("run", help="fire duplicate webhooks, verify exactly-once, check targets, report")
    _add_plan_options(run)
    _add_service_options(run)
    _add_target_options(run)
    _add_output_options(run, report_default="reports/runs")
    run.set_defaults(func=_cmd_run)

    demo = sub.add_parser("demo", help="vulnerable then atomic on the embedded service, with the before/after table")
    _add_plan_options(demo)
    _add_service_options(demo, with_mode=False, with_mongo_uri=True)
    _add_output_options(demo, report_default="reports/demo")
    demo.set_defaults(func=_cmd_demo, receipts_dir=None, target=None, target_file=None,
                      gateway_url=None, merchant_id=None, salt_key=None, salt_index=None, service_pid=None)

    matrix = sub.add_parser("matrix", help="every mode under every fault: receipts, missing receipts, verdicts")
    matrix.add_argument("--modes", default="vulnerable,atomic,lease")
    matrix.add_argument("--faults", default="none,generation failure,crash after claim,slow store")
    matrix.add_argument("--payments", type=int, default=5)
    matrix.add_argument("--duplicates", type=int, default=5)
    matrix.add_argument("--lease-seconds", type=float, default=1.0)
    matrix.add_argument("--generation-delay-ms", type=float, default=200.0)
    matrix.add_argument("--report-dir", type=Path, default=Path("reports/matrix"))
    matrix.add_argument("--json", action="store_true")
    matrix.add_argument("--quiet", action="store_true")
    matrix.set_defaults(func=_cmd_matrix)

    burst = sub.add_parser("burst", help="fire N simultaneous copies of one request and report the spread")
    burst.add_argument("--url", required=True, help="full URL (raw) or the service's base URL (callback, verify)")
    burst.add_argument("--kind", choices=("raw", "callback", "verify"), default="raw")
    burst.add_argument("--method", default="POST")
    burst.add_argument("--data", help="request body (raw)")
    burst.add_argument("--header", action="append", default=[], help="'Name: value' (repeatable)")
    burst.add_argument("--duplicates", type=int, default=10)
    burst.add_argument("--sync", choices=("last-byte", "naive"), default="last-byte")
    burst.add_argument("--timeout", type=float, default=30.0)
    burst.add_argument("--warmup-path", default="/healthz", help="GET sent on each connection first ('' for none)")
    burst.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    burst.add_argument("--transaction", help="merchantTransactionId (callback)")
    burst.add_argument("--amount", type=int, help="amount in paise (callback)")
    burst.add_argument("--state", choices=("COMPLETED", "FAILED", "PENDING"), default="COMPLETED")
    burst.add_argument("--payment-id", help="the service's payment id (verify)")
    burst.add_argument("--json", action="store_true")
    burst.set_defaults(func=_cmd_burst)

    verify = sub.add_parser("verify", help="judge a finished run again from the files and state as they are now")
    verify.add_argument("report", type=Path, help="a run's JSON report")
    verify.add_argument("--target", metavar="URL", help="the service's base URL, if it moved")
    verify.add_argument("--receipts-dir", type=Path)
    verify.add_argument("--mongo-uri")
    verify.add_argument("--mongo-database", help="the database holding the charges (default: the report's)")
    verify.add_argument("--targets", type=Path, dest="targets_file")
    verify.add_argument("--report-dir", type=Path)
    verify.add_argument("--json", action="store_true")
    verify.set_defaults(func=_cmd_verify)

    cmp = sub.add_parser("compare", help="the before/after table of two run reports")
    cmp.add_argument("before", type=Path)
    cmp.add_argument("after", type=Path)
    cmp.add_argument("--report-dir", type=Path, help="where comparison.md/.json go (default: beside AFTER)")
    cmp.add_argument("--json", action="store_true")
    cmp.set_defaults(func=_cmd_compare)
    return parser


def _terminated(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so whatever a command started (services, wire servers) is stopped."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with _sigterm_unwinds():
            return args.func(args)
    except KeyboardInterrupt:
        print("race-harness: interrupted", file=sys.stderr)
        return 130
    except Exception:  # a fault of the harness itself: it could not judge, which is not "invalid"
        import traceback

        traceback.print_exc()
        print("race-harness: internal error: the run could not be judged (exit 3)", file=sys.stderr)
        return EXIT_INCONCLUSIVE


if __name__ == "__main__":
    sys.exit(main())
