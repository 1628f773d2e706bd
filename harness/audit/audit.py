"""Audit side effects that already exist (``race-harness audit``), with no run and no history.

A copy of production's receipts directory is grouped by a key rule (the PDF's Subject, else the
transaction id in the reference service's file names ``receipt-<id>-<ms>.pdf``, or any rule the user
gives) and reported per key: duplicates (two or more receipts), unreadable files, temporary or
partial files, receipts whose key could not be found, and duplicates that print different amounts.
Entries that are not regular files (FIFOs, devices, directories, dangling symlinks, symlink loops)
are never opened and are counted apart as odd entries; one named like a finished receipt makes the
audit INVALID, as an unreadable receipt does. Files over ``observe.files.MAX_RECEIPT_BYTES`` are not
read (unreadable, "too large to read"); see ``observe.files`` for every bound on reading.

Reading is the cost: metadata comes first for every file (in a process pool for large
directories) and a page's text is extracted only where it is needed (a ``text:`` key rule that
earlier rules left unanswered, or the amounts of duplicates), which is most of the time saved.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from harness.errors import AuditError
from harness.observe.content import amounts_printed
from harness.observe.effects import describe, read_effects
from harness.observe.files import read_receipts, scan_receipts
from harness.observe.observation import ReceiptFile
from harness.profile import Profile
from harness.profile.patterns import Pattern, PatternError, compile_pattern, first_group
from harness.sink import RecordedSink
from harness.verdict.result import EXIT_INVALID, EXIT_OK

AUDIT_KIND = "race-harness-audit"
AUDIT_VERSION = 1
SOURCES = ("subject", "title", "text", "name")
# The reference service names a receipt receipt-<merchantTransactionId>-<unix ms>.pdf (its temporary
# copy .receipt-….pdf.tmp); the id may itself hold '-', so the key runs to the last '-<digits>.pdf'.
REFERENCE_NAME_RULE = r"name:^\.?receipt-(?P<key>[A-Za-z0-9_-]+)-\d+\.pdf"
DEFAULT_KEY_RULES = ("subject", REFERENCE_NAME_RULE)


@dataclass(frozen=True)
class Rule:
    """Where a value is read (a ``SOURCES`` field) and, optionally, the regex that picks it out."""

    source: str
    pattern: Pattern | None = None  # bounded (RE2): a hostile receipt cannot make it backtrack forever

    def __str__(self) -> str:
        return self.source + (f":{self.pattern.pattern}" if self.pattern else "")

    def value(self, receipt: ReceiptFile) -> str | None:
        """The named group ``key`` (or the first group, or the whole match) in the field; None when absent."""
        raw = {"subject": receipt.subject, "title": receipt.title, "text": receipt.text, "name": receipt.name}[
            self.source]
        if not raw or self.pattern is None:
            return (raw or "").strip() or None
        found = first_group(self.pattern, raw)
        return (found or "").strip() or None


def parse_rule(spec: str, option: str = "--key") -> Rule:
    """``subject``, ``title``, ``text:REGEX`` or ``name:REGEX`` (a regex on subject and title too)."""
    source, sep, regex = spec.partition(":")
    if source not in SOURCES:
        raise AuditError(f"{option} {spec!r}: the source must be one of {', '.join(SOURCES)} (e.g. 'name:REGEX')")
    if source in ("text", "name") and not regex:
        raise AuditError(f"{option} {spec!r}: a {source} rule needs a regular expression ({source}:REGEX)")
    try:
        return Rule(source, compile_pattern(regex) if sep else None)
    except PatternError as exc:
        raise AuditError(f"{option} {spec!r}: the regular expression cannot be used: {exc}") from None


def parse_amount_rule(spec: str) -> Rule | None:
    """``text`` (every money amount printed), ``text:REGEX`` (the amount the regex picks) or ``none``."""
    if spec == "none":
        return None
    if spec == "text":
        return Rule("text")
    if not spec.startswith("text:"):
        raise AuditError(f"--amount {spec!r}: expected 'text', 'text:REGEX' or 'none'")
    return parse_rule(spec, "--amount")


def amount_of(receipt: ReceiptFile, rule: Rule) -> tuple[str | None, frozenset[int]]:
    """The money the receipt prints (as printed) and the paise values it can mean (empty: none printed).

    Every amount marked as money that the rule finds must mean one value: "INR 499.00 (49900 paise)"
    is 49900 paise. A page whose amounts share no meaning keeps all of them.
    """
    found = rule.value(receipt)
    printed = [a for a in amounts_printed(found or "") if a.marked or rule.pattern is not None]
    if not printed:
        return None, frozenset()
    common = frozenset.intersection(*(a.paise for a in printed))
    return ", ".join(a.text for a in printed), common or frozenset().union(*(a.paise for a in printed))


@dataclass
class KeyGroup:
    """Everything found for one key."""

    key: str
    receipts: list[str] = field(default_factory=list)  # finished, readable receipts
    unreadable: list[str] = field(default_factory=list)
    temporary: list[str] = field(default_factory=list)  # temporary, partial or stray (not a finished .pdf)
    amounts: dict[str, str | None] = field(default_factory=dict)  # receipt -> amount printed (duplicates only)
    amounts_disagree: bool = False

    @property
    def duplicated(self) -> bool:
        return len(self.receipts) > 1


def _key_of(receipt: ReceiptFile, rules: Sequence[Rule]) -> str | None:
    for rule in rules:
        if (key := rule.value(receipt)) is not None:
            return key
    return None


def audit_directory(directory: Path, rules: Sequence[Rule] | None = None, amount: Rule | None = Rule("text"),
                    *, workers: int | None = None, label: str | None = None,
                    progress: Callable[[str, int, int], None] | None = None, fast: bool = True,
                    max_bytes: int | None = None, max_inflated: int | None = None) -> dict[str, Any]:
    """The audit of a receipts directory as a report (plain data, ``kind`` and ``version``).

    ``fast=False`` reads every file's metadata with pypdf rather than the fast reader for simple PDFs
    (``observe.read_receipt``); the report is the same either way, only slower. ``max_bytes`` and
    ``max_inflated`` bound each file read and each stream inflated (None: ``observe.files``'s
    ``MAX_RECEIPT_BYTES``, 50 MiB, and ``MAX_INFLATED_BYTES``, 32 MiB).

    Raises ``AuditError`` when the directory does not exist or no rule finds a key in any readable receipt.
    """
    rules = list(rules or [parse_rule(r) for r in DEFAULT_KEY_RULES])
    root = Path(directory)
    if not root.is_dir():
        raise AuditError(f"receipts directory {root} does not exist or is not a directory")
    # pypdf logs a line per damaged file on stderr; the report lists them instead (pool workers fork
    # after this, so they inherit the level).
    log = logging.getLogger("pypdf")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        return _audit(root, rules, amount, workers, label, progress, fast, {"max_bytes": max_bytes,
                                                                            "max_inflated": max_inflated})
    finally:
        log.setLevel(level)


def _audit(root: Path, rules: list[Rule], amount: Rule | None, workers: int | None, label: str | None,
           progress: Callable[[str, int, int], None] | None, fast: bool = True,
           limits: dict[str, int | None] | None = None) -> dict[str, Any]:
    started = time.perf_counter()
    staged = (lambda stage: (lambda done, total: progress(stage, done, total))) if progress else (lambda _: None)
    text_first = rules[0].source == "text"  # every file needs its text: read it in the one pass
    limits = limits or {}
    receipts, problems = scan_receipts(root, text=text_first, workers=workers, progress=staged("reading receipts"),
                                       fast=fast, **limits)
    by_name = {r.name: r for r in receipts}
    with_text = set(by_name) if text_first else set()
    needs_text_rule = any(r.source == "text" for r in rules)
    while True:  # texts for keyless receipts and duplicates' amounts, until nothing new needs one
        keys = {r.name: _key_of(r, rules) for r in by_name.values()}
        groups = _grouped(by_name.values(), keys)
        wanted = {n for g in groups.values() if g.duplicated and amount is not None for n in g.receipts}
        if needs_text_rule:
            wanted |= {n for n, k in keys.items() if k is None and by_name[n].readable}
        wanted -= with_text
        if not wanted:
            break
        names = sorted(wanted)
        for name, fresh in zip(names, read_receipts([root / n for n in names], workers=workers,
                                                    progress=staged("reading page text"), **limits)):
            with_text.add(name)
            if fresh is not None:  # one that vanished since keeps what was read of it
                by_name[name] = fresh
    if amount is not None:
        for group in groups.values():
            if group.duplicated:
                _compare_amounts(group, [by_name[n] for n in group.receipts], amount)
    readable = [r for r in by_name.values() if r.readable and r.is_final]
    keyless = sorted(r.name for r in readable if keys[r.name] is None)
    if readable and len(keyless) == len(readable):
        raise AuditError(f"no key rule ({', '.join(map(str, rules))}) found a key in any of the "
                         f"{len(readable)} readable receipts in {root} (e.g. {keyless[0]})")
    return _report(root, label, rules, amount, groups, by_name, keyless, problems, time.perf_counter() - started)


def _grouped(receipts: Any, keys: dict[str, str | None]) -> dict[str, KeyGroup]:
    groups: dict[str, KeyGroup] = {}
    for receipt in sorted(receipts, key=lambda r: r.name):
        key = keys[receipt.name]
        if key is None:
            continue
        group = groups.setdefault(key, KeyGroup(key))
        if not receipt.is_final:
            group.temporary.append(receipt.name)
        elif receipt.readable:
            group.receipts.append(receipt.name)
        else:
            group.unreadable.append(receipt.name)
    return groups


def _compare_amounts(group: KeyGroup, receipts: list[ReceiptFile], rule: Rule) -> None:
    """Duplicates of one key that print amounts no single value can mean disagree."""
    meanings = []
    for receipt in receipts:
        printed, paise = amount_of(receipt, rule)
        group.amounts[receipt.name] = printed
        if paise:
            meanings.append(paise)
    group.amounts_disagree = len(meanings) > 1 and not frozenset.intersection(*meanings)


def _report(root: Path, label: str | None, rules: Sequence[Rule], amount: Rule | None, groups: dict[str, KeyGroup],
            by_name: dict[str, ReceiptFile], keyless: list[str], problems: list, elapsed: float) -> dict[str, Any]:
    duplicates = [g for g in groups.values() if g.duplicated]
    # Odd entries (not regular files: never opened) are a category of their own, apart from unreadable
    # PDFs and temporary files; one named like a finished receipt fails the audit as an unreadable one does.
    odd = sorted(r.name for r in by_name.values() if r.odd)
    unreadable = sorted(r.name for r in by_name.values() if r.is_final and not r.readable and not r.odd)
    temporary = sorted(r.name for r in by_name.values() if not r.is_final and not r.odd)
    odd_receipts = [n for n in odd if by_name[n].is_final]
    shown = [g for g in groups.values() if g.duplicated or g.unreadable or g.temporary]
    exit_code = EXIT_INVALID if duplicates or unreadable or odd_receipts else EXIT_OK
    summary = (f"{'INVALID' if exit_code else 'VALID'}: {sum(len(g.receipts) for g in groups.values())} receipt(s) "
               f"for {sum(1 for g in groups.values() if g.receipts)} key(s); {len(duplicates)} key(s) with "
               f"duplicates, {len(unreadable)} unreadable, {len(temporary)} temporary or partial, "
               f"{len(keyless)} without a key")
    if odd:
        summary += (f"; {len(odd)} odd entr{'y' if len(odd) == 1 else 'ies'} (not regular files, not opened: "
                    f"{', '.join(sorted({by_name[n].odd.split(' (')[0] for n in odd}))})")
    return {
        "kind": AUDIT_KIND, "version": AUDIT_VERSION, "label": label or f"audit-{root.name}",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "directory": str(root),
        "key_rules": [str(r) for r in rules], "amount_rule": str(amount) if amount else "none",
        "exit_code": exit_code, "summary": summary, "elapsed_s": round(elapsed, 3),
        "counts": {"files": len(by_name), "receipts": sum(len(g.receipts) for g in groups.values()),
                   "keys": sum(1 for g in groups.values() if g.receipts), "duplicate_keys": len(duplicates),
                   "duplicate_receipts": sum(len(g.receipts) for g in duplicates), "unreadable": len(unreadable),
                   "temporary": len(temporary), "keyless": len(keyless), "odd_entries": len(odd),
                   "vanished": len(problems),
                   "amounts_disagree": sum(1 for g in duplicates if g.amounts_disagree)},
        "keys": [{"key": g.key, "receipts": g.receipts, "unreadable": g.unreadable, "temporary": g.temporary,
                  "amounts": g.amounts, "amounts_disagree": g.amounts_disagree}
                 for g in sorted(shown, key=lambda g: (-len(g.receipts), g.key))],
        "unreadable": [{"file": n, "error": by_name[n].error} for n in unreadable],
        "odd_entries": [{"file": n, "what": by_name[n].odd, "error": by_name[n].error} for n in odd],
        "temporary": temporary, "keyless": keyless, "problems": [p.message for p in problems],
    }


# -- audit --profile: past side effects grouped by a profile's own key rules ---------------------
#
# Every side-effect source of the profile (a receipts directory, a MongoDB collection of rows, an
# HTTP listing) is read as a run reads it, and each effect is keyed by the profile's rule. A key the
# service assigned (``joins = "state.<field>"``, e.g. a receipt number) is taken to the payment whose
# state holds it, with one query when the state is in MongoDB; a key no payment holds is reported
# as an effect without a payment. The report has the shape of a directory audit's.

def audit_profile(profile: Profile, *, label: str | None = None,
                  sink_records: Path | str | None = None) -> dict[str, Any]:
    """The audit of every side-effect source of ``profile`` (AuditError when a source cannot be read or keyed).

    ``sink_records``: the JSON lines a sink recorded (a run's ``<label>.sink.jsonl``, or ``race-harness sink``'s
    file), which its ``source = "sink"`` effects are read from; an audit starts no sink of its own.
    """
    started = time.perf_counter()
    if not profile.spec.effects:
        raise AuditError(f"profile {profile.name}: it names no side-effect source ([[effects]]) to audit")
    reads_sink = any(e.source == "sink" for e in profile.spec.effects)
    if reads_sink and sink_records is None:
        raise AuditError(f"profile {profile.name}: its source = \"sink\" effects are read from a sink's records: "
                         f"give --sink-records FILE (the JSON lines a run kept beside its report, or `race-harness "
                         f"sink` wrote)")
    if sink_records is not None and not reads_sink:
        raise AuditError(f"--sink-records {sink_records}: profile {profile.name} reads no side effects from a sink")
    sink = RecordedSink(sink_records) if sink_records is not None else None
    by_name: dict[str, ReceiptFile] = {}
    keys: dict[str, str | None] = {}
    orphans: list[str] = []  # effects whose assigned key no payment's state holds
    problems: list = []
    with httpx.Client(timeout=30.0) as client:
        for i, effect in enumerate(profile.spec.effects):
            records, read_problems = read_effects(effect, profile.base_url, client, sink)
            if read_problems:
                raise AuditError(f"effects.{i}: {read_problems[0].message}")
            rule = effect.rule("key")
            joined = _payments_of(profile, rule, records) if rule is not None and rule.joins.startswith("state.") else None
            default_rules = [parse_rule(r) for r in DEFAULT_KEY_RULES]
            several = len(profile.spec.effects) > 1
            for record in records:
                # Each kind is audited on its own: one payment's receipt file and its CRM notice are one of each,
                # not two of anything, and two kinds that read the same files each count them.
                if effect.source != "files":
                    name = f"{effect.source}:{effect.kind}:{record.name}"
                else:
                    name = f"{effect.kind}/{record.name}" if several else record.name  # "/": no file name has one
                record.name = name
                by_name[name] = record
                key = record.key if record.keyed else _key_of(record, default_rules)
                keys[name] = joined.get(key) if joined is not None and key is not None else key
                if several and keys[name] is not None:
                    keys[name] = f"{keys[name]} ({effect.kind})"
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

    from harness.profile.template import dig

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
