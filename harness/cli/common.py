"""What every ``race-harness`` command shares: usage errors (exit 4), messages safe for the terminal."""

from __future__ import annotations

import argparse
import sys

from harness.redact import printable, redact_uris
from harness.verdict.result import EXIT_USAGE


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # usage errors exit 4, as documented
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {say(message)}\n")


def fail(message: str) -> int:
    print(f"race-harness: error: {say(message)}", file=sys.stderr)
    return EXIT_USAGE


def say(message: str) -> str:
    """A message safe for the terminal: no URI's password (a base_url may carry one), and no control character
    raw (a name from the service may carry terminal escapes); its own line breaks kept."""
    return printable(redact_uris(str(message)), newlines=True)
