"""What every ``race-harness`` command shares: usage errors (exit 4) and the progress bar."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .result import EXIT_USAGE


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # usage errors exit 4, as documented
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def fail(message: str) -> int:
    print(f"race-harness: error: {message}", file=sys.stderr)
    return EXIT_USAGE


class ProgressBar:
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

    def __enter__(self) -> "ProgressBar":
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
