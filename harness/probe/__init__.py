"""Webhook security probes: deliveries a gateway would never send — forged, replayed, tampered, contradictory —
and a judgement, from the service's state and side effects, that none of them changed anything.

``run_probes(profile)`` runs every probe that applies to the profile's callback channel and returns the
report as plain data; ``write_probe_report`` writes it as JSON, Markdown and HTML.
"""

from harness.probe.probes import Probe, catalogue
from harness.probe.report import probe_stdout, write_probe_report
from harness.probe.session import (
           CONSISTENT,
           HOLE,
           IGNORED,
           REJECTED,
           UNKNOWN,
           ProbeOptions,
           ProbeResult,
           run_probes,
)

__all__ = [
           "CONSISTENT",
           "HOLE",
           "IGNORED",
           "REJECTED",
           "UNKNOWN",
           "Probe",
           "ProbeOptions",
           "ProbeResult",
           "catalogue",
           "probe_stdout",
           "run_probes",
           "write_probe_report",
]
