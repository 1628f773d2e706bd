"""The ``race-harness`` command: serve, run, burst, verify, compare, demo, matrix, sink.

Exit codes: 0 every invariant and target holds; 1 an invariant is violated; 2 a target is missed;
3 inconclusive; 4 usage or configuration error. The options come from ``harness.options`` (the
run's) and ``harness.reference`` (the reference service's), the same definitions the Locust
scenarios and the pytest fixtures use.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from pathlib import Path
from typing import Iterator, Sequence

from . import cli_run, cli_tools
from .audit import add_audit_parser
from .cli_sink import add_sink_parser
from ._cli_common import Parser
from .options import OUTPUT, PLAN, SENDING, TARGET, TLS, Option, add_options
from .reference import SERVICE, add_serve_arguments
from .result import EXIT_INCONCLUSIVE
from .senders import SENDERS


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


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="race-harness", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    serve = sub.add_parser("serve", help="run the reference receipt service")
    add_serve_arguments(serve)
    serve.set_defaults(func=cli_tools._cmd_serve)

    run = sub.add_parser("run", help="fire duplicate webhooks, verify exactly-once, check targets, report")
    _add_plan_options(run)
    _add_service_options(run, SERVICE)
    _add_target_options(run)
    _add_output_options(run, report_default="reports/runs")
    run.set_defaults(func=cli_run._cmd_run)

    demo = sub.add_parser("demo", help="vulnerable then atomic on the embedded service, with the before/after table")
    _add_plan_options(demo)
    _add_service_options(demo, [o for o in SERVICE if o.name != "mode"])
    demo.add_argument("--mongo-uri", help="an external MongoDB for the service (default: $MONGODB_URI when --store "
                                          "is not given); state is read straight from it")
    add_options(demo.add_argument_group("the reference service's contract"), TARGET)
    _add_output_options(demo, report_default="reports/demo")
    demo.set_defaults(func=cli_run._cmd_demo, receipts_dir=None, target=None, target_file=None,
                      gateway_url=None, merchant_id=None, salt_key=None, salt_index=None, service_pid=None)

    matrix = sub.add_parser("matrix", help="every mode under every fault: receipts, missing receipts, verdicts")
    matrix.add_argument("--modes", default="vulnerable,atomic,lease")
    matrix.add_argument("--faults", default="none,generation failure,crash after claim,slow store")
    matrix.add_argument("--payments", type=int, default=5)
    matrix.add_argument("--duplicates", type=int, default=5)
    matrix.add_argument("--lease-seconds", type=float, default=1.0)
    matrix.add_argument("--generation-delay-ms", type=float, default=200.0)
    matrix.add_argument("--profile", help="judge every cell through this built-in profile (reference, reference-v2)")
    matrix.add_argument("--report-dir", type=Path, default=Path("reports/matrix"))
    matrix.add_argument("--json", action="store_true")
    matrix.add_argument("--quiet", action="store_true")
    matrix.set_defaults(func=cli_tools._cmd_matrix)

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
    power.set_defaults(func=cli_tools._cmd_power)

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
    burst.set_defaults(func=cli_tools._cmd_burst)

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
    verify.set_defaults(func=cli_run._cmd_verify)

    cmp = sub.add_parser("compare", help="the before/after table of two run reports")
    cmp.add_argument("before", type=Path)
    cmp.add_argument("after", type=Path)
    cmp.add_argument("--report-dir", type=Path, help="where comparison.md/.json go (default: beside AFTER)")
    cmp.add_argument("--json", action="store_true")
    cmp.set_defaults(func=cli_run._cmd_compare)

    add_audit_parser(sub)
    add_sink_parser(sub)

    profile = sub.add_parser("profile", help="work with target profiles (docs/profiles.md)")
    profile_sub = profile.add_subparsers(dest="profile_command", required=True, parser_class=Parser)
    check = profile_sub.add_parser("check", help="a dry run: one payment, one signed delivery, and what every rule "
                                                 "of the profile extracted (exit 4 naming the rule that found nothing)")
    check.add_argument("profile", help="a profile file, or a built-in name")
    check.add_argument("--target", metavar="URL", help="the service's base URL (default: the profile's base_url)")
    check.set_defaults(func=cli_tools._cmd_profile_check)
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
