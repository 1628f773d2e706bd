"""The scenarios' options on Locust's parser, and reading them into the swarm's settings at test_start."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.options import OUTPUT, PLAN, SENDING, TARGET, TLS, by_name
from harness.plan import PlanError, parse_channel_mix
from harness.reference import MODES, SERVICE
from harness.runner import HarnessError
from harness.swarm import SwarmSettings
from harness.targets import load_targets
from harness.tls import trust_of

log = logging.getLogger("race-harness.scenarios")

# The options the CLI and the pytest fixtures also take: one definition each (harness.options,
# harness.reference), so a flag means the same and defaults the same everywhere.
SHARED = by_name(PLAN + SENDING + OUTPUT + SERVICE + TARGET + TLS)
# What a lane can send with: the burst senders made for a gevent-patched worker, or "auto" (single-packet
# when the target speaks HTTP/2, else last-byte; the master asks once). The naive sender runs asyncio,
# which does not mix with gevent; "sequential" is the CLI's one-by-one run, not a swarm's.
SWARM_SYNCS = ("last-byte", "single-packet", "auto")
DEFAULT = {name: option.default for name, option in SHARED.items()}
# The release lead must outlast a GO message's trip to the farthest lane. In one process (Locust's local
# runner) the trip is a function call, and every millisecond of lead is a millisecond each wave waits.
LOCAL_LEAD_MS = 10.0
WORKERS_LEAD_MS = 100.0


@dataclass(frozen=True)
class Scenario:
    """What differs between the locustfiles: a name, and the defaults of a few options."""

    name: str
    channel_mix: str = "callback:1"
    redelivery_rounds: int = 0
    failure_rate: float = 0.0  # the embedded service's injected generation failures, unless --failure-rate says
    heal_after: int = 0
    targets: str | None = None  # default targets file or built-in name (None: the seed's)


def add_options(parser: Any, scenario: Scenario) -> None:
    """The scenario's options, on Locust's own parser (command line, locust.conf, web UI).

    Help texts spell their defaults out: the web UI shows them as written, without argparse's expansion.
    """
    add = parser.add_argument  # Locust's own: a plain argparse group knows no include_in_web_ui / is_secret
    for name in ("payments", "duplicates", "unpaid", "seed", "label", "store", "workers", "generation_delay_ms",
                 "insecure", "ca_file", "http2", "tls"):
        SHARED[name].add_to(parser)
    replace(SHARED["sync"], choices=SWARM_SYNCS).add_to(parser)
    # Locust has a --profile of its own (a name grouping test runs): the harness's is --target-profile here.
    replace(SHARED["profile"], cli="--target-profile").add_to(parser)
    replace(SHARED["channel_mix"], default=scenario.channel_mix).add_to(parser)
    replace(SHARED["targets_file"], type=str, default=scenario.targets).add_to(parser)
    add("--receipts-dir", default=None,
        help="where the service under test writes its receipt PDFs, readable from the master")
    add("--mongo-uri", default=None, is_secret=True,
        help="read payment state straight from MongoDB (default: the service's API at -H)")
    add("--gateway-url", default=None,
        help="the PhonePe status API (simulator) the service's verify path asks; needed for verify calls on -H")
    add("--report-dir", default="reports/locust", help="where the JSON/Markdown/HTML report goes (default reports/locust)")
    add("--embedded", default="", choices=("",) + MODES,
        help="start the reference service in this mode instead of testing -H (one machine only)")
    add("--failure-rate", type=float, default=None,
        help="injected receipt generation failures, 0..1: the embedded service's flag (default "
             f"{scenario.failure_rate:g}), or set on -H for the run through PUT /_admin/faults (default: leave it)")
    add("--redelivery-rounds", type=int, default=None,
        help="deliver a payment's duplicates again while it has no receipt, up to this many more times "
             f"(default {scenario.redelivery_rounds})")
    # The old name, --rounds N (N deliveries in all), read like the CLI's --rounds (every request sent again).
    add("--rounds", type=int, default=None, help="deprecated: --redelivery-rounds N-1", include_in_web_ui=False)
    add("--heal-after", type=int, default=scenario.heal_after,
        help="after this many delivery rounds set the service's failure rate to 0 through PUT /_admin/faults (0: never)")
    add("--wave-size", type=int, default=10, help="payments released at one instant (default 10)")
    add("--inflight", type=int, default=2, help="waves under way at once (default 2)")
    add("--release-lead-ms", type=float, default=None,
        help=f"how far ahead the master names the release instant, in ms (default {LOCAL_LEAD_MS:g} in one process, "
             f"{WORKERS_LEAD_MS:g} with workers; more for workers far away)")
    add("--burst-timeout", type=float, default=30.0,
        help="seconds one share may take to connect, send and read (default 30)")


def _opt(options: Any, name: str, kind: type, default: Any = None) -> Any:
    value = getattr(options, name, default)
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return default
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise HarnessError(f"--{name.replace('_', '-')} must be a {kind.__name__}, not {value!r}") from None


def read_settings(environment: Any, scenario: Scenario) -> SwarmSettings:
    """Options as the coordinator sees them at test_start, checked; HarnessError on bad usage."""
    o = environment.parsed_options
    host = (environment.host or _opt(o, "host", str) or "").strip() or None
    embedded = _opt(o, "embedded", str) or None
    if embedded is not None and embedded not in MODES:
        raise HarnessError(f"--embedded must be one of {', '.join(MODES)}")
    if embedded and host:
        raise HarnessError("give either -H/--host (the service under test) or --embedded, not both")
    profile = _opt(o, "profile", str)
    if not embedded and not host and not profile:
        raise HarnessError("no service to test: give -H/--host URL (and --receipts-dir), --profile FILE, or "
                           "--embedded atomic|vulnerable")
    if host and not host.startswith(("http://", "https://")):
        raise HarnessError(f"-H/--host must be an http:// or https:// URL, not {host!r}")
    try:
        mix = parse_channel_mix(_opt(o, "channel_mix", str, scenario.channel_mix))
    except PlanError as exc:
        raise HarnessError(str(exc)) from None
    sync = _opt(o, "sync", str, DEFAULT["sync"])
    if sync not in SWARM_SYNCS:
        raise HarnessError(f"--sync must be one of {', '.join(SWARM_SYNCS)} in a swarm, not {sync!r}")
    try:
        verify_tls = trust_of(bool(getattr(o, "insecure", False)), _opt(o, "ca_file", str))
    except ValueError as exc:
        raise HarnessError(str(exc)) from None
    failure_rate = _opt(o, "failure_rate", float, scenario.failure_rate if embedded else None)
    if failure_rate is not None and not 0.0 <= failure_rate <= 1.0:
        raise HarnessError("--failure-rate must be between 0 and 1")
    settings = SwarmSettings(
        scenario=scenario.name, host=host,
        payments=_opt(o, "payments", int, DEFAULT["payments"]),
        duplicates=_opt(o, "duplicates", int, DEFAULT["duplicates"]),
        unpaid=_opt(o, "unpaid", int, DEFAULT["unpaid"]), channel_mix=mix, seed=_opt(o, "seed", int, DEFAULT["seed"]),
        receipts_dir=_opt(o, "receipts_dir", str), mongo_uri=_opt(o, "mongo_uri", str),
        gateway_url=_opt(o, "gateway_url", str), targets=_opt(o, "targets_file", str, scenario.targets),
        report_dir=Path(_opt(o, "report_dir", str, "reports/locust")),
        label=_opt(o, "label", str) or (f"{scenario.name}-{embedded}" if embedded else scenario.name),
        embedded=embedded, store=_opt(o, "store", str), workers=_opt(o, "workers", int, 1),
        generation_delay_ms=_opt(o, "generation_delay_ms", float, DEFAULT["generation_delay_ms"]),
        failure_rate=failure_rate, redelivery_rounds=_redelivery_rounds(o, scenario),
        heal_after=_opt(o, "heal_after", int, scenario.heal_after), wave_size=_opt(o, "wave_size", int, 10),
        inflight=_opt(o, "inflight", int, 2),
        release_lead=_opt(o, "release_lead_ms", float, _default_lead_ms(environment)) / 1000.0,
        burst_timeout=_opt(o, "burst_timeout", float, 30.0), headless=bool(getattr(o, "headless", False)),
        profile=profile, sync=sync, verify_tls=verify_tls, http2=bool(getattr(o, "http2", False)),
        tls=bool(getattr(o, "tls", False)),
    )
    try:
        settings.plan.validate()
        load_targets(settings.targets)
    except (PlanError, ValueError) as exc:
        raise HarnessError(str(exc)) from None
    for name in ("wave_size", "inflight"):
        if getattr(settings, name) < 1:
            raise HarnessError(f"--{name.replace('_', '-')} must be at least 1")
    if settings.redelivery_rounds < 0:
        raise HarnessError("--redelivery-rounds must be at least 0")
    if not embedded and (settings.store or settings.workers != 1 or settings.http2 or settings.tls):
        raise HarnessError("--store, --workers, --http2 and --tls describe the embedded service: give them with "
                           "--embedded")
    if embedded and settings.tls and settings.verify_tls is None:
        settings.verify_tls = False  # the embedded service's certificate is the throw-away one it made
    if settings.burst_timeout <= 0 or settings.release_lead < 0:
        raise HarnessError("--burst-timeout must be positive and --release-lead-ms not negative")
    if settings.plan.uses_verify() and not embedded and not settings.gateway_url and not profile:
        raise HarnessError("verify calls need --gateway-url: the PhonePe status API (simulator) the service asks")
    return settings


def _default_lead_ms(environment: Any) -> float:
    """The release lead when none is given: short in one process, longer when lanes are other processes."""
    from locust.runners import LocalRunner

    return LOCAL_LEAD_MS if isinstance(getattr(environment, "runner", None), LocalRunner) else WORKERS_LEAD_MS


def _redelivery_rounds(options: Any, scenario: Scenario) -> int:
    """--redelivery-rounds, or the deprecated --rounds N (N deliveries in all) as N - 1."""
    redeliveries, rounds = _opt(options, "redelivery_rounds", int), _opt(options, "rounds", int)
    if rounds is None:
        return scenario.redelivery_rounds if redeliveries is None else redeliveries
    if redeliveries is not None:
        raise HarnessError("give --redelivery-rounds only (--rounds is its deprecated old name)")
    if rounds < 1:
        raise HarnessError("--rounds must be at least 1")
    log.warning("race-harness: --rounds %d is deprecated here: use --redelivery-rounds %d", rounds, rounds - 1)
    return rounds - 1



