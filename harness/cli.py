"""The ``race-harness`` command."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

EXIT_OK, EXIT_INVALID, EXIT_TARGET_MISSED, EXIT_INCONCLUSIVE, EXIT_USAGE = 0, 1, 2, 3, 4


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # usage errors exit 4, as documented
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _cmd_serve(args: argparse.Namespace) -> int:
    # The CLI only launches the reference service; the harness's checkers never import it.
    from reference_service.server import serve

    return serve(args)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="race-harness", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    serve = sub.add_parser("serve", help="run the reference receipt service")
    from reference_service.config import add_arguments

    add_arguments(serve)
    serve.set_defaults(func=_cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
