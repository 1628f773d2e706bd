"""The check over the nemesis itself: the scheduled fault happened, and the service came back.

A run whose fault never struck proves nothing about faults, and a service that never came back
could not be judged for eventual exactly-once: both are *unknown*, never a pass.
"""

from __future__ import annotations

from harness.oracle.evidence import Evidence
from harness.oracle.result import CheckResult


def fault_injected(ev: Evidence) -> CheckResult:
    """The scheduled fault struck during the run and the service was back before it was judged."""
    name, description = "fault-injected", "the scheduled fault happened and the service came back"
    nemesis = ev.history.nemesis
    if nemesis is None:
        return CheckResult(name, description, None, made=False, details={"reason": "no nemesis in this run"})
    steps = [f"{f['kind']} at {ev.history.fault_time(f):.3f} s: {f.get('detail', '')}" for f in ev.history.faults]
    details = {"schedule": nemesis.get("schedule"), "faults": steps}
    if not nemesis.get("fired"):
        details["reason"] = (f"the trigger of {nemesis.get('schedule')} never fired, so the run shows nothing about "
                             "that fault")
        return CheckResult(name, description, None, details=details)
    if nemesis.get("came_back") is False:
        details["reason"] = f"the service did not come back after the fault: {nemesis.get('error', 'unknown')}"
        return CheckResult(name, description, None, details=details)
    return CheckResult(name, description, True, details=details)
