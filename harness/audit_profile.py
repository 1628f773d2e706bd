"""``race-harness audit --profile FILE``: past side effects grouped by a profile's own key rules.

Every side-effect source of the profile (a receipts directory, a MongoDB collection of rows, an
HTTP listing) is read as a run reads it, and each effect is keyed by the profile's rule. A key the
service assigned (``joins = "state.<field>"``, e.g. a receipt number) is taken to the payment whose
state holds it, with one query when the state is in MongoDB; a key no payment holds is reported
as an effect without a payment. The report has the shape of a directory audit's.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from .audit import DEFAULT_KEY_RULES, AuditError, _grouped, _key_of, _report, parse_rule
from .observe import ReceiptFile
from .profile import Profile
from .profile.effects import describe, read_effects


def audit_profile(profile: Profile, *, label: str | None = None) -> dict[str, Any]:
    """The audit of every side-effect source of ``profile`` (AuditError when a source cannot be read or keyed)."""
    started = time.perf_counter()
    if not profile.spec.effects:
        raise AuditError(f"profile {profile.name}: it names no side-effect source ([[effects]]) to audit")
    by_name: dict[str, ReceiptFile] = {}
    keys: dict[str, str | None] = {}
    orphans: list[str] = []  # effects whose assigned key no payment's state holds
    problems: list = []
    with httpx.Client(timeout=30.0) as client:
        for i, effect in enumerate(profile.spec.effects):
            records, read_problems = read_effects(effect, profile.base_url, client)
            if read_problems:
                raise AuditError(f"effects.{i}: {read_problems[0].message}")
            rule = effect.rule("key")
            joined = _payments_of(profile, rule, records) if rule is not None and rule.joins.startswith("state.") else None
            default_rules = [parse_rule(r) for r in DEFAULT_KEY_RULES]
            for record in records:
                name = record.name if effect.source == "files" else f"{effect.source}:{effect.kind}:{record.name}"
                record.name = name
                by_name[name] = record
                key = record.key if record.keyed else _key_of(record, default_rules)
                keys[name] = joined.get(key) if joined is not None and key is not None else key
                if joined is not None and key is not None and keys[name] is None and record.is_final:
                    orphans.append(name)
            usable = [r for r in records if r.readable and r.is_final]
            if usable and all(keys[r.name] is None for r in usable) and not orphans:
                raise AuditError(f"effects.{i} ({describe(effect)}): the key rule found no payment in any of the "
                                 f"{len(usable)} side effects read (e.g. {usable[0].name})")
    groups = _grouped(by_name.values(), keys)
    readable = [r for r in by_name.values() if r.readable and r.is_final]
    keyless = sorted(r.name for r in readable if keys[r.name] is None)
    report = _report(Path(profile.receipts_dir or "."), label or f"audit-{profile.name}",
                     [parse_rule("subject")], None, groups, by_name, keyless, problems, time.perf_counter() - started)
    report["directory"] = "; ".join(describe(e) for e in profile.spec.effects)
    report["key_rules"] = [_rule_text(e) for e in profile.spec.effects]
    report["profile"] = profile.name
    if orphans:
        # A payment's state names one of its receipts; another receipt numbered by the service that no
        # payment names is a duplicate whose claim was lost (or a stray): either way, not exactly once.
        report["orphans"] = sorted(orphans)
        report["counts"]["orphans"] = len(orphans)
        report["exit_code"] = 1
        report["summary"] = report["summary"].replace("VALID:", "INVALID:", 1) if report["summary"].startswith(
            "VALID") else report["summary"]
        report["summary"] += f"; {len(orphans)} side effect(s) whose key no payment's state holds"
    return report


def _rule_text(effect: Any) -> str:
    rule = effect.rule("key")
    if rule is None:
        return f"{effect.kind}: " + ", ".join(DEFAULT_KEY_RULES)
    where = f"{rule.from_}" if hasattr(rule, "from_") and rule.from_ != "json" else f"field {rule.field}"
    return f"{effect.kind}: {where}" + (f" ~ {rule.pattern}" if rule.pattern else "") + f" -> {rule.joins}"


def _payments_of(profile: Profile, rule: Any, records: list[ReceiptFile]) -> dict[str, str]:
    """Assigned key (a receipt number) -> the payment whose state holds it: one query on the state's MongoDB."""
    state = profile.spec.state
    if state is None or state.source != "mongo":
        raise AuditError("a key the service assigned (joins = state.<field>) is taken to its payment through the "
                         "state, which an audit reads from MongoDB only: give [state] source = \"mongo\"")
    import pymongo

    from .profile.template import dig

    field = rule.joins.removeprefix("state.")
    keys = sorted({r.key for r in records if r.key is not None})
    wanted: list[Any] = [*keys, *(int(k) for k in keys if k.isdigit())]  # a number may be stored as one
    try:
        client: pymongo.MongoClient = pymongo.MongoClient(state.uri, serverSelectionTimeoutMS=5000)
        try:
            documents = list(client[str(state.database)][str(state.collection)].find({field: {"$in": wanted}}))
        finally:
            client.close()
    except pymongo.errors.PyMongoError as exc:
        raise AuditError(f"state: cannot read {state.database}.{state.collection}: {exc.__class__.__name__}") from None
    return {str(dig(d, field)): str(dig(d, state.match)) for d in documents if dig(d, field) is not None}
