"""Read back what a service left behind, the way its profile says: every side-effect source and the state.

``observe`` reads once; ``observe_settled`` reads until side effects and state stop changing (the
profile's ``[settle]``, or the sink's quiet seconds), bounded. Either gives an ``Observation``:
plain data the oracle judges.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from harness.observe.effects import describe, existing_ids, read_effects
from harness.observe.observation import STATE, Observation, Problem
from harness.observe.sink import nothing_reached, settle_for_sink, sink_quiet, sink_rule_miss
from harness.observe.state import read_state
from harness.profile import Payment, Profile
from harness.progress import Progress, no_progress
from harness.redact import redact, redact_text, without_userinfo

UNSETTLED = "unsettled"  # Problem kind: side effects or state were still changing when the wait ended


def mark_baseline(profile: Profile) -> None:
    """Remember which side effects exist before the run sends anything (names only, nothing is read).

    A service-assigned key (a receipt number) that joins no payment is then told apart: an effect
    that was there before is another run's; one that appeared during this run belongs to no payment.
    """
    if not any(e.rule("key") is not None and e.rule("key").joins.startswith("state.") for e in profile.spec.effects):
        return
    baseline: set[str] = set()
    for effect in profile.spec.effects:
        ids = existing_ids(effect)
        if ids is None:  # a source that cannot be listed: orphans cannot be told from another run's
            profile.baseline = None
            return
        baseline |= ids
    profile.baseline = baseline


def observe(profile: Profile, payments: list[Payment], client: httpx.Client) -> Observation:
    """Every side-effect source and the state, read as they are now."""
    files = [e.dir for e in profile.spec.effects if e.source == "files"]
    obs = Observation(receipts_dir=files[0] if files else None)
    obs.baseline = profile.baseline
    obs.effect_sources = [describe(e) for e in profile.spec.effects]
    obs.effect_kinds = sorted({e.kind for e in profile.spec.effects})
    obs.answers_described = profile.describes_answers
    for i, effect in enumerate(profile.spec.effects):
        records, problems = read_effects(effect, profile.base_url, client, sink=profile.sink)
        obs.receipts += records
        obs.problems += problems
        keyed = [r for r in records if r.keyed and r.readable and r.is_final]
        if keyed and all(r.key is None for r in keyed):
            obs.rule_misses.append(rule_miss(i, effect, keyed))

    if silent := nothing_reached(profile.spec, profile.sink, len(payments)):
        obs.problems.append(silent)
    if profile.spec.state is None:
        obs.state_source = "none"
        return obs
    state = profile.spec.state
    obs.state_fields = {"paid": state.paid.field, "claim": state.claim, "effect": state.effect,
                        "effect_is": state.effect_is}
    try:
        obs.state = read_state(state, payments, base_url=profile.base_url, client=client,
                               join_fields=profile.join_fields())
        obs.state_source = "mongodb" if state.source == "mongo" else "http"
    except Exception as exc:  # any failure to read state makes the state checks unknown, never a pass

        detail = without_userinfo(redact_text(str(exc)))[:200]
        obs.problems.append(Problem(STATE, f"cannot read state: {exc.__class__.__name__}: {detail}"))
    return obs


def observe_settled(profile: Profile, payments: list[Payment], client: httpx.Client,
                    progress: Progress = no_progress) -> Observation:
    """``observe``, after waiting (bounded) until side effects and state stop changing, when the profile asks."""

    settle = settle_for_sink(profile.spec)  # the profile's [settle], or the sink's quiet seconds
    if settle is None:
        return observe(profile, payments, client)
    started = time.monotonic()
    last, since = None, started
    while True:
        obs = observe(profile, payments, client)
        now = time.monotonic()
        mark = _fingerprint(obs)
        if mark != last:
            last, since = mark, now
        elif now - since >= settle.quiet and sink_quiet(profile.spec, profile.sink):
            obs.settled = True
            progress("settling", 1, 1)
            return obs
        if now - started >= settle.timeout:
            obs.settled = False
            obs.problems.append(Problem(UNSETTLED, f"side effects or state still changed after {settle.timeout:g} s "
                                                   f"(settle.timeout)"))
            return obs
        progress("settling", int(min(now - since, settle.quiet) * 1000), int(settle.quiet * 1000))
        time.sleep(settle.interval)


def rule_miss(index: int, effect: Any, records: list) -> str:
    """One line saying which key rule found nothing, and what it looked at instead."""
    if effect.source == "sink":

        return sink_rule_miss(index, effect, records)
    rule = effect.rule("key")
    first = records[0]
    if effect.source == "files" and rule.from_ != "json":
        seen = {"name": first.name, "subject": first.subject, "title": first.title,
                "text": (first.text or "")[:80]}[rule.from_]
        how = f"pattern {rule.pattern!r} over the {rule.from_}"
    else:
        seen = {k: v for k, v in list((first.data or {}).items())[:8]}
        how = f"field {rule.field!r}" + (f" with pattern {rule.pattern!r}" if rule.pattern else "")

    return redact_text(f"effects.{index}.key: {how} matched none of the {len(records)} side effect(s) read from "
                       f"{describe(effect)}; the first ({first.name}) has: {redact(seen)!r}"[:400])



def _fingerprint(obs: Observation) -> tuple:
    effects = tuple(sorted((r.source, r.name, r.size, r.key or "", r.readable) for r in obs.receipts))
    state = tuple(sorted((pid, json.dumps(s, sort_keys=True, default=str)) for pid, s in obs.state.items()))
    # A problem counts by what it is about, not its wording: a source that keeps failing (refused credentials)
    # words each failure differently (a driver's topology ids, timings), and must settle as failing, not as
    # "still changed" after polling to the timeout.
    return effects, state, tuple(sorted((p.kind, p.file or "", p.message.split(":", 1)[0]) for p in obs.problems))
