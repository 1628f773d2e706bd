"""Start the reference service (and the PhonePe simulator) as real processes on loopback.

The harness judges the service from outside, like any stranger's: it runs it as a separate
process, talks to it over sockets, and reads its receipts from disk.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import httpx


class ServiceStartError(RuntimeError):
    """The service process exited or did not answer in time."""


@dataclass(frozen=True)
class FaultFlags:
    """Faults to start the reference service with (its flags of the same names)."""

    failure_rate: float = 0.0
    crash_after_claim_rate: float = 0.0
    store_delay_ms: float = 0.0
    write_error_rate: float = 0.0

    def args(self) -> list[str]:
        return [arg for name, value in self.__dict__.items() if value
                for arg in (f"--{name.replace('_', '-')}", str(value))]

    def cleared(self) -> dict[str, float]:
        return {name: 0.0 for name in self.__dict__}

    def active(self) -> bool:
        return any(self.__dict__.values())


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass
class ServiceProcess:
    """A running process that serves HTTP on ``url``; stop() it (or use it as a context manager)."""

    url: str
    process: subprocess.Popen
    log_path: Path
    receipts_dir: Path | None = None
    args: list[str] = field(default_factory=list)

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

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)

    def __enter__(self) -> "ServiceProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _spawn(module_args: Sequence[str], url: str, log_path: Path, *, env: dict[str, str] | None,
           timeout: float, health_path: str) -> ServiceProcess:
    log = open(log_path, "ab")
    proc_env = dict(os.environ)
    proc_env.update(env or {})
    process = subprocess.Popen([sys.executable, "-m", *module_args], stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, env=proc_env)
    log.close()
    service = ServiceProcess(url=url, process=process, log_path=log_path, args=list(module_args))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServiceStartError(f"{module_args[0]} exited with {process.returncode}: {service.log_text()[-2000:]}")
        try:
            if httpx.get(url + health_path, timeout=1.0).status_code == 200:
                return service
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    service.stop()
    raise ServiceStartError(f"{module_args[0]} did not answer {health_path} within {timeout:.0f} s")


def start_service(receipts_dir: Path, *, mode: str = "atomic", generation_delay_ms: float = 200.0,
                  failure_rate: float = 0.0, faults: FaultFlags | None = None, lease_seconds: float | None = None,
                  phonepe_base_url: str | None = None, mongo_uri: str | None = None,
                  extra_args: Sequence[str] = (), host: str = "127.0.0.1", port: int | None = None,
                  log_path: Path | None = None, env: dict[str, str] | None = None,
                  timeout: float = 30.0) -> ServiceProcess:
    """Run ``python -m reference_service`` on a free loopback port and wait until it answers."""
    receipts_dir = Path(receipts_dir)
    receipts_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port(host)
    args = ["reference_service", "--mode", mode, "--host", host, "--port", str(port),
            "--receipts-dir", str(receipts_dir), "--generation-delay-ms", str(generation_delay_ms)]
    faults = faults or FaultFlags()
    if failure_rate:
        faults = FaultFlags(**{**faults.__dict__, "failure_rate": failure_rate})
    args += faults.args()
    if lease_seconds is not None:
        args += ["--lease-seconds", str(lease_seconds)]
    if phonepe_base_url:
        args += ["--phonepe-base-url", phonepe_base_url]
    if mongo_uri:
        args += ["--mongo-uri", mongo_uri]
    args += list(extra_args)
    if log_path is None:
        log_path = Path(tempfile.mkstemp(prefix="reference-service-", suffix=".log")[1])
    service = _spawn(args, f"http://{host}:{port}", log_path, env=env, timeout=timeout, health_path="/healthz")
    service.receipts_dir = receipts_dir
    return service


def start_simulator(*, host: str = "127.0.0.1", port: int | None = None, log_path: Path | None = None,
                    extra_args: Sequence[str] = (), timeout: float = 30.0) -> ServiceProcess:
    """Run the PhonePe simulator (status API) on a free loopback port."""
    port = port or free_port(host)
    if log_path is None:
        log_path = Path(tempfile.mkstemp(prefix="phonepe-simulator-", suffix=".log")[1])
    args = ["reference_service.simulator", "--host", host, "--port", str(port), *extra_args]
    # The status API answers 401 to an unsigned probe: the docs page is the health check.
    return _spawn(args, f"http://{host}:{port}", log_path, env=None, timeout=timeout, health_path="/docs")
