"""The harness's version (reports record it)."""

__version__ = "0.1.0"
