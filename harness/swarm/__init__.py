"""The swarm: many processes release each payment's duplicates at one instant, and one master judges them.

The protocol lives here with its message transport injected, so that it runs (and is tested)
without Locust: ``messages`` (kinds, ``Transport``, plain data on the wire), ``lane`` (the worker
side: hold a share of a wave, release it at the master's instant), ``coordinator`` (the master
side: waves across lanes, release instants, redelivery rounds, one History, bounded waits) and
``run`` (the master's run around them: payments, telemetry, the oracle, the verdict).
``scenarios/`` adapts it to Locust's runner messages and users.
"""

from harness.swarm.coordinator import Coordinator, WaveConfig, Work
from harness.errors import SwarmTimeout
from .lane import Lane
from .messages import DONE, GO, HELLO, PING, PONG, PREPARE, READY, Handler, Transport
from .run import VERDICT_PREFIX, SwarmRun, SwarmSettings, judge, prepare

__all__ = ["Coordinator", "DONE", "GO", "HELLO", "Handler", "Lane", "PING", "PONG", "PREPARE", "READY", "SwarmRun", "SwarmSettings",
           "SwarmTimeout", "Transport", "VERDICT_PREFIX", "WaveConfig", "Work", "judge", "prepare"]
