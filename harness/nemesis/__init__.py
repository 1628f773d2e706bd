"""The nemesis: harm done to the service on purpose during a run (its process killed and started again, or
paused), recorded in the history, and the gateway's redeliveries that follow a fault.

It needs to know how the service runs: the profile's ``[service]`` (a command the harness starts, or
hooks for a service it does not). Judging after faults asks for *eventual* exactly-once: an
acknowledged payment ends with one side effect of each kind; one never acknowledged is indeterminate.
"""

from harness.nemesis.gateway import RedeliveryPlan, acknowledged, redeliver, redelivery_plan, unacknowledged
from harness.nemesis.nemesis import DownstreamOutage, FaultSpec, Nemesis, parse_fault
from harness.nemesis.service import CommandService, HookedService, ManagedService, managed_service

__all__ = ["CommandService", "DownstreamOutage", "FaultSpec", "HookedService", "ManagedService", "Nemesis", "RedeliveryPlan",
           "acknowledged", "managed_service", "parse_fault", "redeliver", "redelivery_plan", "unacknowledged"]
