"""What happened, judged: read back the side effects and state, run the checkers, compose the report.

``verify_history`` judges a history however it was sent (a burst, a Locust swarm); ``reverify``
judges a finished run again from its report, with the side effects and state read afresh.
"""

from __future__ import annotations

import os
import platform
import socket
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, ProfileError
from harness.history import History
from harness.observe.observer import observe_settled
from harness.oracle import Evidence, PlannedPayment, check
from harness.prepare.deliveries import check_reachable
from harness.prepare.plan import Plan
from harness.profile import Payment, Profile, Target
from harness.progress import Progress, no_progress
from harness.tls import http_client
from harness.verdict.measure import compute_metrics, payment_rows
from harness.verdict.result import Coverage, RunReport, decide
from harness.verdict.targets import evaluate, parse_targets, targets_as_data, targets_for
from harness.version import __version__


def environment() -> dict[str, Any]:
    return {
        "harness_version": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "hostname": socket.gethostname(),
    }


def target_config(profile: Profile) -> dict[str, Any]:
    """How a report records the service's description: the profile (secrets masked) and where it came from."""
    data = {"target": {"base_url": profile.base_url, "profile": profile.name, "receipts_dir": profile.receipts_dir},
            "profile": profile.to_dict(), "origin": profile.origin}
    if profile.baseline is not None:  # judging again later must tell orphans from another run's effects
        data["effects_baseline"] = sorted(profile.baseline)
    return data


def read_answers(profile: Profile, history: History) -> None:
    """What each answer says, by the profile: the outcome, and an injected-fault mark.

    An answer whose body was kept only in part (``Event.body_truncated``) or cut before it ended says
    nothing through its body: with a profile that reads a field of the body its outcome is unknown
    (None), never guessed from the status; a profile that reads only status codes still reads them.
    """
    reads_body = profile.spec.answers is not None and profile.spec.answers.field is not None
    for event in history:
        partial = event.body_truncated or (event.status is not None and event.error is not None)
        event.outcome = None if partial and reads_body else profile.outcome_of(event.body, event.status)
        fault = profile.injected_fault_of(event.body)
        if fault:
            event.meta["injected_fault"] = fault


def verify_history(profile: Profile, plan: Plan, payments: list[Payment], history: History, *,
                   targets_file: Path | None = None, label: str = "run", config: dict[str, Any] | None = None,
                   counters: dict[str, float] | None = None, memory: dict[str, Any] | None = None,
                   started: float | None = None, server_errors_injected: bool = False,
                   progress: Progress = no_progress) -> RunReport:
    """Judge a history however it was sent (a burst, a Locust swarm): read back files and state, check, report.

    Events are matched to payments by ``Event.payment`` (the payment id); their outcomes are read
    here with the profile's description of its answers.
    """
    read_answers(profile, history)
    planned = [PlannedPayment(p, plan.is_paid(i)) for i, p in enumerate(payments)]
    config = {"plan": plan.to_dict(), **(config or {}), "server_errors_injected": server_errors_injected,
              **target_config(profile)}
    try:
        targets = targets_for(targets_file, profile)
    except ValueError as exc:
        raise HarnessError(str(exc)) from None
    return _observe_and_judge(profile, planned, history, targets, server_errors_injected, counters=counters or {},
                              memory=memory or {}, label=label, config=config,
                              started=started or history.origin_wall or time.time(), progress=progress)


def _observe_and_judge(profile: Profile, planned: list[PlannedPayment], history: History,
                       targets: tuple[list, str], server_errors_injected: bool, **report: Any) -> RunReport:
    """Read the side effects and state (once they settle, if the profile waits), then judge the history
    against ``targets`` (the targets and where they came from, both kept in the report's config)."""
    report["config"] = {**report["config"], "targets": {"source": targets[1], "targets": targets_as_data(targets[0])}}
    progress = report.pop("progress", no_progress)
    with http_client(profile.tls_trust) as client:
        observation = observe_settled(profile, [p.payment for p in planned], client, progress)
    if observation.rule_misses:  # a profile's key rule that finds nothing is a mistake in the profile
        raise HarnessError(f"profile: {observation.rule_misses[0]}")
    if miss := state_miss(profile, observation):
        raise HarnessError(f"profile: {miss}")
    return judge(Evidence(planned, history, observation, server_errors_injected), targets[0], **report)


def state_miss(profile: Profile, observation: Any) -> str | None:
    """A state field map that finds nothing in any payment's record: a mistake in the profile, not the service's."""
    section = profile.spec.state
    records = [s for s in observation.state.values()]
    if section is None or not records:
        return None
    where = (f"{section.path} (root {section.root!r})" if section.source == "http" else
             f"{section.database}.{section.collection} by {section.match} = the payment's {section.by}")
    if all(r is None for r in records):
        return f"state: no record found for any of the {len(records)} payments in {where}"
    if all(r is None or r.get("paymentStatus") is None for r in records):
        return f"state.paid.field: {section.paid.field!r} is in none of the {len(records)} records read from {where}"
    return None


def judge(evidence: Evidence, targets: list, *, counters: dict[str, float],
          memory: dict[str, Any], label: str, config: dict[str, Any], started: float) -> RunReport:
    """Checkers, metrics and targets over the evidence, composed into one report."""
    checks = check(evidence)
    rows = payment_rows(evidence)
    metrics = compute_metrics(evidence, rows, checks, counters, memory)
    target_results = evaluate(targets, metrics)
    history = evidence.history
    summary = {
        "requests": len(history),
        "sync": history.sync,
        "release_spread_ms": metrics["release_spread_ms"],
        "arrival_spread_ms": metrics["arrival_spread_ms"],
        "statuses": dict(Counter(str(e.status) if e.status is not None else "error" for e in history)),
        "outcomes": dict(Counter(e.outcome or "none" for e in history)),
        "observation_errors": evidence.observation.errors,
        "payments_judged": metrics["payments_judged"],
        "payments_unjudged": metrics["payments_unjudged"],
        "state_source": evidence.observation.state_source,
    }
    return RunReport(
        label=label,
        config=config,
        environment=environment(),
        history=history.to_dict(),
        history_summary=summary,
        payments=rows,
        checks=checks,
        metrics=metrics,
        targets=target_results,
        verdict=decide(checks, target_results, Coverage(sum(1 for r in rows if r["expected"] == "paid" and r["judged"]),
                                                        metrics["payments_paid"])),
        started_at=started,
        finished_at=time.time(),
    )


def reverify(previous: RunReport, target_changes: dict[str, Any] | None = None,
             targets_file: Path | None = None, sink_records: Path | None = None,
             report_file: Path | None = None) -> RunReport:
    """Judge a finished run again from the receipts and state as they are now (e.g. after a lease expired).

    The history is the run's own; the files and state are read afresh. Telemetry from the run is
    not repeated, so memory and counters are not measured. Side effects the run read from its sink
    are read from the records it kept: ``sink_records``, else ``<stem>.sink.jsonl`` beside
    ``report_file`` (the JSON the report was loaded from), else where the run wrote them; with none
    found, those checks are unknown and say where they looked.
    """
    profile = reverify_target(previous.config, target_changes)
    config = {**previous.config, "reverified_from": previous.label}
    if _reads_sink(profile):
        from harness.sink import kept_records

        sink = profile.sink = kept_records(previous.config, report_file, sink_records)
        config["sink"] = {**(previous.config.get("sink") or {}), **sink.describe()}  # the records judged
    elif sink_records is not None:
        raise HarnessError(f"sink records {sink_records} were given, but the run read no side effects from a sink")
    planned = [PlannedPayment(Payment(r["payment"], r["merchant_transaction_id"], r["amount"]), r["expected"] == "paid")
               for r in previous.payments]
    if not profile.mongo_uri and _reads_service(profile):
        with http_client(profile.tls_trust) as client:
            check_reachable(profile, client)
    kept = previous.config.get("targets")
    try:
        if targets_file is None and isinstance(kept, dict) and "targets" in kept:  # what the run was judged by
            targets = (parse_targets({"version": 1, "targets": kept["targets"]}, "the report's targets"),
                       str(kept.get("source", "the report's targets")))
        else:  # --targets, or a report from before reports kept their targets
            targets = targets_for(targets_file or previous.config.get("targets_file"))
    except ValueError as exc:
        raise HarnessError(str(exc)) from None
    return _observe_and_judge(profile, planned, History.from_dict(previous.history), targets,
                              bool(previous.config.get("server_errors_injected")), counters={}, memory={},
                              label=f"{previous.label}-reverified", config=config, started=time.time())


def reverify_target(config: dict[str, Any], target_changes: dict[str, Any] | None = None) -> Profile:
    """The service a report was judged against, as its config says, with ``target_changes`` (e.g. its URL now)."""
    if "profile" not in config:  # a report written before every run recorded its profile: a legacy target
        target = Target.from_dict(config["target"]).with_(**(target_changes or {}))
        return target.to_profile({"from": "report", "base_url": target.base_url})
    try:
        profile = Profile.from_dict(config["profile"], "the report's profile", reading_only=True)
    except ProfileError as exc:
        raise HarnessError(str(exc)) from None
    if target_changes:
        profile = profile.with_base_url(target_changes.get("base_url", profile.base_url))
    if "effects_baseline" in config:  # after any change: a changed profile is a new one, without the run's baseline
        profile.baseline = set(config["effects_baseline"])
    return profile


def _reads_sink(profile: Profile) -> bool:
    return any(e.source == "sink" for e in profile.spec.effects)


def _reads_service(profile: Profile) -> bool:
    """Whether judging asks the service itself (its state or effects over HTTP); files and kept records do not."""
    state = profile.spec.state
    return (state is not None and state.source == "http") or any(e.source == "http" for e in profile.spec.effects)
