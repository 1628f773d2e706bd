"""What every child process the harness runs (a service, a simulator, a wire server) answers alike."""

from __future__ import annotations

import subprocess
from pathlib import Path


def end_process(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """Terminate a child (bounded), killing it if it does not go."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)


class LoggedProcess:
    """Mixin for a dataclass with a ``process`` (Popen) and a ``log_path`` (its output)."""

    process: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""
