"""Processes and sockets the harness runs on this machine: child processes, the relay, the wire store, the recorder.

Every child is started in a way that lets it be ended on every path (``end_process``), and waits
are bounded (``poll``).
"""

from harness.local.poll import poll
from harness.local.process import LoggedProcess, end_process
from harness.local.relay import Relay, RelayProcess, RelayStats
from harness.local.service import ServiceProcess, free_port, spawn
from harness.local.wire import WireServer, start_wire_server

__all__ = ["LoggedProcess", "Relay", "RelayProcess", "RelayStats", "ServiceProcess", "WireServer", "end_process",
           "free_port", "poll", "spawn", "start_wire_server"]
