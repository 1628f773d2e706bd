"""``race-harness audit``: the command over ``harness.audit`` (a receipts directory, or a profile's sources)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from harness.audit.audit import REFERENCE_NAME_RULE, audit_directory, audit_profile, parse_amount_rule, parse_rule
from harness.audit.report import audit_stdout, write_audit_report
from harness.cli.common import fail
from harness.errors import AuditError, ProfileError
from harness.profile import load_profile
from harness.progress import ProgressBar
from harness.redact import mask_values, redact

def register(sub: Any) -> argparse.ArgumentParser:
    """audit on the CLI's subparsers."""
    p = sub.add_parser("audit", help="judge a receipts directory that already exists: duplicate and unreadable "
                                     "receipts per payment, with no run and no history")
    p.add_argument("directory", type=Path, nargs="?",
                   help="the receipts directory (a copy of production's is fine); or give --profile")
    p.add_argument("--profile", help="audit every side-effect source of this profile (directories, MongoDB "
                                     "collections of rows, HTTP listings) by its own key rules")
    p.add_argument("--sink-records", type=Path, metavar="FILE",
                   help="with --profile: the sink's records (JSON lines a run kept, or `race-harness sink` wrote) its "
                        "source = \"sink\" effects are read from")
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
    secrets: frozenset[str] | set[str] = frozenset()
    try:
        if args.profile:
            if args.directory or args.key:
                raise AuditError("--profile names the sources and their key rules: give no directory or --key")
            try:
                profile = load_profile(args.profile)
                secrets = profile.secret_values()
                report = audit_profile(profile, label=args.label, sink_records=args.sink_records)
            except ProfileError as exc:
                raise AuditError(str(exc)) from None
        else:
            if args.sink_records:
                raise AuditError("--sink-records goes with --profile (its source = \"sink\" effects read them)")
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
    paths = write_audit_report(report, args.report_dir, secrets=secrets) if args.report_dir else {}
    report = mask_values(report, secrets)  # what is printed masks what the written report masks
    if args.json:
        print(json.dumps(redact(report), indent=2))
    else:
        print(audit_stdout(report, paths))
    sys.stdout.flush()
    return report["exit_code"]
