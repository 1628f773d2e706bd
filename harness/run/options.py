"""One definition of every run option and its default, for the CLI, the Locust scenarios and pytest.

Each front end builds its own parser (argparse for the CLI, Locust's configargparse, keyword
arguments of the pytest ``race`` fixture) from these definitions, so a flag, its type, its default
and its help are written once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable


@dataclass(frozen=True)
class Option:
    name: str  # the Python name (argparse ``dest``, the fixture's keyword); the flag is --name-with-dashes
    type: Callable[[str], Any] | None
    default: Any
    help: str
    choices: tuple[str, ...] | None = None
    flag: bool = False  # a switch: --name sets True
    cli: str | None = None  # the flag, when it is not --name-with-dashes

    @property
    def cli_flag(self) -> str:
        return self.cli or "--" + self.name.replace("_", "-")

    def add_to(self, parser: Any, **extra: Any) -> None:
        """``parser.add_argument`` for this option (argparse, an argument group, or Locust's parser)."""
        if self.flag:
            parser.add_argument(self.cli_flag, dest=self.name, action="store_true", default=self.default,
                                help=self.help, **extra)
            return
        default = f" (default: {self.default})" if self.default not in (None, "") else ""
        parser.add_argument(self.cli_flag, dest=self.name, type=self.type, default=self.default,
                            choices=self.choices, help=self.help + default, **extra)


def _sync_choices() -> tuple[str, ...]:
    from harness.senders import SENDERS

    return (*SENDERS, "sequential", "auto")


PLAN = (
    Option("payments", int, 10, "paid payments"),
    Option("duplicates", int, 5, "simultaneous requests per payment"),
    Option("unpaid", int, 0, "control payments that only hear FAILED/PENDING callbacks"),
    Option("channel_mix", str, "callback:1", "weights of callback and verify requests, e.g. callback:3,verify:1"),
    Option("seed", int, 0, "seed of the plan's amounts and channel choices"),
    Option("rounds", int, 1, "delivery rounds: every request is delivered again in each (the gateway's retries)"),
    Option("round_interval", float, 0.0, "seconds between delivery rounds (e.g. longer than a lease)"),
)
SENDING = (
    Option("sync", str, "last-byte", "how duplicates are sent: a sender (single-packet is HTTP/2), sequential "
                                     "(never overlaps), or auto (single-packet when the target speaks HTTP/2, else "
                                     "last-byte)", choices=_sync_choices()),
    Option("timeout", float, None, "seconds one burst may take (default: the profile's [run] timeout, else 60)"),
)
# How an https:// target's certificate is trusted (harness.tls): the system's CAs unless one of these says otherwise.
TLS = (
    Option("insecure", None, False, "do not verify the target's TLS certificate (a throw-away certificate)",
           flag=True),
    Option("ca_file", str, None, "verify the target's TLS certificate against the CA certificates in this PEM file"),
)
OUTPUT = (
    Option("targets_file", Path, None, "documented targets: a file, or 'seed' / 'exactly-once' (default: seed)",
           cli="--targets"),
    Option("label", str, None, "name of this run in reports"),
)

# Faults for a service whose profile says how it runs ([service]): the nemesis, and the gateway's redeliveries.
FAULTS = (
    Option("nemesis", str, None, "a fault during the burst: crash@log:PATTERN (when a line of the service's output "
                                 "matches), crash@after:SECONDS, crash@random[:WINDOW], crash@file (the first new "
                                 "effect file), crash@sink (the first call out); pause@... the same with SIGSTOP; "
                                 "cut@... resets the service's relayed links ([service.links]) for --pause-for"),
    Option("restart_after", float, 1.0, "seconds from a crash to the service's start again"),
    Option("pause_for", float, 2.0, "seconds a paused service stays paused (or a cut link refuses connections)"),
    Option("redeliver", str, None, "redeliver deliveries not acknowledged with a 2xx, like a gateway: phonepe, "
                                   "razorpay, stripe (compressed into seconds), delays such as 0.5,1,2, or none "
                                   "(default: the profile's [redelivery]; phonepe with --nemesis)"),
)

# The service's contract. Not part of RUN: the pytest fixtures take a profile as their first argument.
TARGET = (
    Option("profile", str, None, "the service's contract: a profile file (docs/profiles.md) or a built-in name "
                                 "(reference, reference-v2: the reference service, judged through it)"),
)

RUN = PLAN + SENDING + OUTPUT


def by_name(options: Iterable[Option] = RUN) -> dict[str, Option]:
    return {o.name: o for o in options}


def defaults(options: Iterable[Option] = RUN) -> dict[str, Any]:
    return {o.name: o.default for o in options}


def add_options(parser: Any, options: Iterable[Option], **extra: Any) -> None:
    for option in options:
        option.add_to(parser, **extra)
