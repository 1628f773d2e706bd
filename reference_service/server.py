"""``serve``: run the reference service under uvicorn."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

import uvicorn

from . import logs
from .app import create_app
from .config import add_arguments, from_args


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="reference_service",
                                               description="Reference PhonePe receipt service")
    add_arguments(parser)
    return parser


def serve(args: argparse.Namespace) -> int:
    try:
        config = from_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 4
    logs.configure(config.log_level)
    try:
        app = create_app(config)
    except Exception as exc:  # e.g. an unreachable MongoDB: say so, no traceback
        print(f"error: cannot start the service: {exc}", file=sys.stderr)
        return 4
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning", access_log=False)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return serve(build_parser().parse_args(argv))
