"""``race-harness sink``: the recording sink for long-lived use (point a service at it, read the JSON lines)."""

from __future__ import annotations

import argparse
import json
import threading
from collections.abc import Callable
from pathlib import Path

from harness.cli.common import say
from harness.errors import SinkError
from harness.verdict.result import EXIT_USAGE
from harness.sink.server import MAX_BODY, READ_TIMEOUT, SinkSettings, serve, stop_on_signals


def _positive(kind: type) -> Callable[[str], float]:
    """An argparse type: a number of ``kind`` above zero."""
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be above 0: {text!r}")
        return value
    return parse


def register(sub: argparse._SubParsersAction) -> None:
    """sink on the CLI's subparsers."""
    sink = sub.add_parser("sink", help="record outbound HTTP calls, e-mails and proxied HTTPS calls until stopped")
    sink.add_argument("--http", type=int, metavar="PORT", help="HTTP endpoint on 127.0.0.1:PORT (0: a free port)")
    sink.add_argument("--smtp", type=int, metavar="PORT", help="SMTP server on 127.0.0.1:PORT (0: a free port)")
    sink.add_argument("--proxy", type=int, metavar="PORT", help="forward proxy on 127.0.0.1:PORT (0: a free port; "
                                                                "needs mitmproxy's mitmdump)")
    sink.add_argument("--status", type=int, default=200, help="status of every answer")
    sink.add_argument("--body", default='{"ok": true}', help="body of every answer")
    sink.add_argument("--content-type", default="application/json")
    sink.add_argument("--latency-ms", type=float, default=0.0, help="wait this long before answering")
    sink.add_argument("--read-timeout", type=_positive(float), default=READ_TIMEOUT, metavar="SECONDS",
                      help="record a call whose body sends no byte for this long as partial, and hang up "
                           f"(default {READ_TIMEOUT:g})")
    sink.add_argument("--max-body", type=_positive(int), default=MAX_BODY, metavar="BYTES",
                      help="keep this much of a body; the rest is read, counted and hashed, and the record "
                           f"says truncated (default {MAX_BODY})")
    sink.add_argument("--ca-dir", type=Path, help="keep the proxy's throw-away CA here (made the first time)")
    sink.add_argument("--mitmdump", help="the mitmdump to run (default: $RACE_HARNESS_MITMDUMP, beside Python, PATH)")
    sink.add_argument("--records", type=Path, default=Path("sink.jsonl"), help="JSON-lines file of what was recorded")
    sink.add_argument("--json", action="store_true", help="print the ready line as JSON")
    sink.set_defaults(func=_cmd_sink)


def _cmd_sink(args: argparse.Namespace) -> int:
    if args.http is None and args.smtp is None and args.proxy is None:
        args.http = args.smtp = 0
    settings = SinkSettings(http=args.http, smtp=args.smtp, proxy=args.proxy, status=args.status, body=args.body,
                            content_type=args.content_type, latency_ms=args.latency_ms,
                            ca_dir=str(args.ca_dir) if args.ca_dir else None, mitmdump=args.mitmdump,
                            read_timeout=args.read_timeout, max_body=args.max_body)
    stop = threading.Event()
    stop_on_signals(stop)

    def announce(ready: dict) -> None:
        if args.json:
            print(json.dumps(ready), flush=True)
            return
        for channel, port in ready["ports"].items():
            print(f"sink: {channel} on 127.0.0.1:{port}")
        if ready.get("ca_cert"):
            print(f"sink: the proxy's CA (tell the service to trust it): {ready['ca_cert']}")
        print(f"sink: recording to {ready['records']} (Ctrl-C to stop); point the service at it with:")
        for name, value in ready["env"].items():
            print(f"  {name}={value}")
        print("", flush=True)

    try:
        serve(settings, args.records, announce, stop)
    except SinkError as exc:
        print(f"race-harness sink: {say(str(exc))}")
        return EXIT_USAGE
    return 0
