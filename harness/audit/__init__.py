"""Audit side effects that already exist (production receipts): group them by the payment they name and
report duplicates, with the same report formats as a run."""

from harness.audit.audit import Rule, audit_directory, audit_profile, parse_amount_rule, parse_rule
from harness.audit.report import write_audit_report

__all__ = ["Rule", "audit_directory", "audit_profile", "parse_amount_rule", "parse_rule", "write_audit_report"]
