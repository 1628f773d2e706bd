"""The one error a run cannot go on from: a usage or configuration problem (exit code 4)."""

from __future__ import annotations


class HarnessError(RuntimeError):
    """A usage or configuration problem (exit code 4): the run could not be made."""
