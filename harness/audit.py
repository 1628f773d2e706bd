"""``race-harness audit``: judge receipts that already exist, with no run and no history.

A copy of production's receipts directory is grouped by a key rule (the PDF's Subject, else the
transaction id in the reference service's file names ``receipt-<id>-<ms>.pdf``, or any rule the user
gives) and reported per key: duplicates (two or more receipts), unreadable files, temporary or
partial files, receipts whose key could not be found, and duplicates that print different amounts.

Reading is the cost: metadata comes first for every file (in a process pool for large
directories) and a page's text is extracted only where it is needed (a ``text:`` key rule that
earlier rules left unanswered, or the amounts of duplicates), which is most of the time saved.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ._cli_common import ProgressBar, fail
from .content import amounts_printed
from .observe import ReceiptFile, read_receipts, scan_receipts
from .result import EXIT_INVALID, EXIT_OK

AUDIT_KIND = "race-harness-audit"
AUDIT_VERSION = 1
SOURCES = ("subject", "title", "text", "name")
# The reference service names a receipt receipt-<merchantTransactionId>-<unix ms>.pdf (its temporary
# copy .receipt-….pdf.tmp); the id may itself hold '-', so the key runs to the last '-<digits>.pdf'.
REFERENCE_NAME_RULE = r"name:^\.?receipt-(?P<key>[A-Za-z0-9_-]+)-\d+\.pdf"
DEFAULT_KEY_RULES = ("subject", REFERENCE_NAME_RULE)


class AuditError(ValueError):
    """A usage mistake: a rule that does not parse, a directory that does not exist (exit 4)."""


@dataclass(frozen=True)
class Rule:
    """Where a value is read (a ``SOURCES`` field) and, optionally, the regex that picks it out."""

    source: str
    pattern: re.Pattern | None = None

    def __str__(self) -> str:
        return self.source + (f":{self.pattern.pattern}" if self.pattern else "")

    def value(self, receipt: ReceiptFile) -> str | None:
        """The named group ``key`` (or the first group, or the whole match) in the field; None when absent."""
        raw = {"subject": receipt.subject, "title": receipt.title, "text": receipt.text, "name": receipt.name}[
            self.source]
        if not raw or self.pattern is None:
            return (raw or "").strip() or None
        match = self.pattern.search(raw)
        if not match:
            return None
        if "key" in self.pattern.groupindex:
            found = match.group("key")
        else:
            found = match.group(1) if self.pattern.groups else match.group(0)
        return (found or "").strip() or None


def parse_rule(spec: str, option: str = "--key") -> Rule:
    """``subject``, ``title``, ``text:REGEX`` or ``name:REGEX`` (a regex on subject and title too)."""
    source, sep, regex = spec.partition(":")
    if source not in SOURCES:
        raise AuditError(f"{option} {spec!r}: the source must be one of {', '.join(SOURCES)} (e.g. 'name:REGEX')")
    if source in ("text", "name") and not regex:
        raise AuditError(f"{option} {spec!r}: a {source} rule needs a regular expression ({source}:REGEX)")
    try:
        return Rule(source, re.compile(regex) if sep else None)
    except re.error as exc:
        raise AuditError(f"{option} {spec!r}: the regular expression does not compile: {exc}") from None


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
                    progress: Callable[[str, int, int], None] | None = None, fast: bool = True) -> dict[str, Any]:
    """The audit of a receipts directory as a report (plain data, ``kind`` and ``version``).

    ``fast=False`` reads every file's metadata with pypdf rather than the fast reader for simple PDFs
    (``observe.read_receipt``); the report is the same either way, only slower.

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
        return _audit(root, rules, amount, workers, label, progress, fast)
    finally:
        log.setLevel(level)


def _audit(root: Path, rules: list[Rule], amount: Rule | None, workers: int | None, label: str | None,
           progress: Callable[[str, int, int], None] | None, fast: bool = True) -> dict[str, Any]:
    started = time.perf_counter()
    staged = (lambda stage: (lambda done, total: progress(stage, done, total))) if progress else (lambda _: None)
    text_first = rules[0].source == "text"  # every file needs its text: read it in the one pass
    receipts, problems = scan_receipts(root, text=text_first, workers=workers, progress=staged("reading receipts"),
                                       fast=fast)
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
                                                    progress=staged("reading page text"))):
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
    unreadable = sorted(r.name for r in by_name.values() if r.is_final and not r.readable)
    temporary = sorted(r.name for r in by_name.values() if not r.is_final)
    shown = [g for g in groups.values() if g.duplicated or g.unreadable or g.temporary]
    exit_code = EXIT_INVALID if duplicates or unreadable else EXIT_OK
    summary = (f"{'INVALID' if exit_code else 'VALID'}: {sum(len(g.receipts) for g in groups.values())} receipt(s) "
               f"for {sum(1 for g in groups.values() if g.receipts)} key(s); {len(duplicates)} key(s) with "
               f"duplicates, {len(unreadable)} unreadable, {len(temporary)} temporary or partial, "
               f"{len(keyless)} without a key")
    return {
        "kind": AUDIT_KIND, "version": AUDIT_VERSION, "label": label or f"audit-{root.name}",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "directory": str(root),
        "key_rules": [str(r) for r in rules], "amount_rule": str(amount) if amount else "none",
        "exit_code": exit_code, "summary": summary, "elapsed_s": round(elapsed, 3),
        "counts": {"files": len(by_name), "receipts": sum(len(g.receipts) for g in groups.values()),
                   "keys": sum(1 for g in groups.values() if g.receipts), "duplicate_keys": len(duplicates),
                   "duplicate_receipts": sum(len(g.receipts) for g in duplicates), "unreadable": len(unreadable),
                   "temporary": len(temporary), "keyless": len(keyless), "vanished": len(problems),
                   "amounts_disagree": sum(1 for g in duplicates if g.amounts_disagree)},
        "keys": [{"key": g.key, "receipts": g.receipts, "unreadable": g.unreadable, "temporary": g.temporary,
                  "amounts": g.amounts, "amounts_disagree": g.amounts_disagree}
                 for g in sorted(shown, key=lambda g: (-len(g.receipts), g.key))],
        "unreadable": [{"file": n, "error": by_name[n].error} for n in unreadable],
        "temporary": temporary, "keyless": keyless, "problems": [p.message for p in problems],
    }


# ---------------------------------------------------------------------------------------------
# The command


def add_audit_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``race-harness audit`` on the CLI's subparsers."""
    p = sub.add_parser("audit", help="judge a receipts directory that already exists: duplicate and unreadable "
                                     "receipts per payment, with no run and no history")
    p.add_argument("directory", type=Path, nargs="?",
                   help="the receipts directory (a copy of production's is fine); or give --profile")
    p.add_argument("--profile", help="audit every side-effect source of this profile (directories, MongoDB "
                                     "collections of rows, HTTP listings) by its own key rules")
    p.add_argument("--key", action="append", metavar="RULE",
                   help="how a receipt's payment key is found: subject, title, text:REGEX or name:REGEX (the named "
                        "group 'key', else group 1, else the match); repeat to try rules in order (default: subject, "
                        f"then {REFERENCE_NAME_RULE})")
    p.add_argument("--amount", default="text", metavar="RULE",
                   help="where duplicates' amounts are read to compare them: text, text:REGEX or none (default: text)")
    p.add_argument("--workers", type=int, help="processes reading receipts (default: one per core; 1: this process)")
    p.add_argument("--report-dir", type=Path, default=Path("reports/audit"))
    p.add_argument("--label", help="the report's name (default: audit-<directory name>)")
    p.add_argument("--json", action="store_true", help="print the report as JSON for machines")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_audit)
    return p


def cmd_audit(args: argparse.Namespace) -> int:
    """Run the audit, write its reports, print its summary; the exit code says what it found."""
    import json

    from .audit_report import audit_stdout, write_audit_report

    try:
        if args.profile:
            if args.directory or args.key:
                raise AuditError("--profile names the sources and their key rules: give no directory or --key")
            from .audit_profile import audit_profile
            from .profile import ProfileError, load_profile

            try:
                report = audit_profile(load_profile(args.profile), label=args.label)
            except ProfileError as exc:
                raise AuditError(str(exc)) from None
        else:
            if args.directory is None:
                raise AuditError("give the receipts directory, or --profile FILE")
            rules = [parse_rule(spec) for spec in args.key] if args.key else None
            amount = parse_amount_rule(args.amount)
            with ProgressBar(not args.quiet and not args.json) as bar:
                report = audit_directory(args.directory, rules, amount, workers=args.workers, label=args.label,
                                         progress=bar)
    except AuditError as exc:
        return fail(str(exc))
    except OSError as exc:
        return fail(f"cannot read receipts directory {args.directory}: {exc}")
    paths = write_audit_report(report, args.report_dir) if args.report_dir else {}
    if args.json:
        from .redact import redact

        print(json.dumps(redact(report), indent=2))
    else:
        print(audit_stdout(report, paths))
    sys.stdout.flush()
    return report["exit_code"]
