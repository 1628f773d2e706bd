"""Services as real child processes on loopback: start one, wait until it answers, stop it and its workers.

The harness judges a service from outside, like any stranger's: it runs it as a separate process,
talks to it over sockets, and reads what it leaves on disk. Which service (its module and flags) is
the provider's business (``harness.reference``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import httpx

from harness.local.process import LoggedProcess, end_process
from harness.local.poll import poll
from harness.errors import ServiceStartError

def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass
class ServiceProcess(LoggedProcess):
    """A running process that serves HTTP on ``url``; stop() it (or use it as a context manager)."""

    url: str
    process: subprocess.Popen
    log_path: Path
    receipts_dir: Path | None = None
    args: list[str] = field(default_factory=list)
    store: str = "memory"
    mongo_uri: str | None = None  # the service's MongoDB (wire or external), for reading state straight from it
    database: str = "race_harness"
    workers: int = 1
    owned: list[Any] = field(default_factory=list)  # stopped after the process (a wire server started for it)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the process and its worker processes, then what was started for it (its wire server)."""
        try:
            children = _children(self.process.pid) if self.process.poll() is None else []
            if self.process.poll() is None:
                end_process(self.process, timeout)
            _reap(children, timeout)
        finally:
            while self.owned:
                self.owned.pop().stop()

    def __enter__(self) -> "ServiceProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _children(pid: int) -> list:
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _reap(children: list, timeout: float) -> None:
    """Workers the service's supervisor should have stopped: wait for them, kill any left (by pid)."""
    import psutil

    def running(proc: "psutil.Process") -> bool:
        try:  # an exited worker may linger as a zombie until something reaps it: it has stopped
            return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    stopped = poll(lambda: not any(running(p) for p in children), timeout=timeout, interval=0.01)
    for proc in ([] if stopped else [p for p in children if running(p)]):
        try:
            proc.kill()
        except psutil.Error:
            pass


def spawn(module_args: Sequence[str], url: str, log_path: Path, *, env: dict[str, str] | None,
           timeout: float, health_path: str) -> ServiceProcess:
    log = open(log_path, "ab")
    proc_env = dict(os.environ)
    proc_env.update(env or {})
    process = subprocess.Popen([sys.executable, "-m", *module_args], stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, env=proc_env)
    log.close()
    service = ServiceProcess(url=url, process=process, log_path=log_path, args=list(module_args))

    def healthy() -> bool:
        if process.poll() is not None:
            raise ServiceStartError(f"{module_args[0]} exited with {process.returncode}: {service.log_text()[-2000:]}")
        try:
            return httpx.get(url + health_path, timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    if poll(healthy, timeout=timeout):
        return service
    service.stop()
    raise ServiceStartError(f"{module_args[0]} did not answer {health_path} within {timeout:.0f} s")


