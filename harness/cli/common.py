"""What every ``race-harness`` command shares: usage errors (exit 4)."""

from __future__ import annotations

import argparse
import sys

from harness.verdict.result import EXIT_USAGE


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # usage errors exit 4, as documented
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def fail(message: str) -> int:
    print(f"race-harness: error: {message}", file=sys.stderr)
    return EXIT_USAGE
