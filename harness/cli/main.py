"""The ``race-harness`` command: serve, run, burst, verify, compare, demo, matrix, sink.

Exit codes: 0 every invariant and target holds; 1 an invariant is violated; 2 a target is missed;
3 inconclusive; 4 usage or configuration error. The options come from ``harness.run.options`` (the
run's) and ``harness.reference`` (the reference service's), the same definitions the Locust
scenarios and the pytest fixtures use.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from typing import Iterator, Sequence

from harness.cli import audit, probe, run, sink, tools
from harness.cli.common import Parser, say
from harness.verdict.result import EXIT_INCONCLUSIVE


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="race-harness", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    # One way of registering: each family of subcommands adds its own parsers.
    for family in (run, tools, audit, probe, sink):
        family.register(sub)
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

        # The exception's text may hold a URL's password or a name the service chose: masked and escaped.
        print(say(traceback.format_exc()), file=sys.stderr, end="")
        print("race-harness: internal error: the run could not be judged (exit 3)", file=sys.stderr)
        return EXIT_INCONCLUSIVE


if __name__ == "__main__":
    sys.exit(main())
