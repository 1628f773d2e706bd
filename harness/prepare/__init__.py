"""Prepare a run: the plan (how many payments, duplicates, channels), the payments made the profile's way,
and every delivery rendered and signed as a ``PreparedRequest`` for a sender."""

from harness.prepare.deliveries import (
    build_requests, check_reachable, make_planned_payments, prepare_payments, sent_payments, tell_gateway,
)
from harness.prepare.plan import Plan, PlannedRequest, parse_channel_mix

__all__ = ["Plan", "PlannedRequest", "build_requests", "check_reachable", "make_planned_payments",
           "parse_channel_mix", "prepare_payments", "sent_payments", "tell_gateway"]
