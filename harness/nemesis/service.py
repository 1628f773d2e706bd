"""The service's process, as the profile's ``[service]`` describes it: started, killed, paused and started again.

``CommandService`` starts the profile's command itself, in a process group of its own (so a kill or
a pause reaches every process it forked: a worker pool, a browser), with its output in a log file
kept beside the report, and a line watcher that the nemesis's triggers read. ``HookedService`` runs
the profile's shell hooks for a service the harness does not start (docker, systemd, a remote box).
Both end whatever they started on every path: ``stop()`` is safe to call more than once and from
an error path, and a process group that does not end on SIGTERM gets SIGKILL.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable

import httpx

from harness.errors import HarnessError, ServiceStartError
from harness.profile import Profile
from harness.profile.schema import ServiceSection

READY_POLL = 0.05  # seconds between readiness checks


class LogWatch:
    """Lines of the service's output as they are written, for triggers (``crash@log:REGEX``).

    Each process the harness starts writes to one log file; a reader thread follows it and calls
    every armed watcher with each new line and the wall-clock time it was read.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._watchers: list[Callable[[str, float], None]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, offset: int = 0) -> "LogWatch":
        self._stop.clear()
        self._thread = threading.Thread(target=self._follow, args=(offset,), name="service-log", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None

    def watch(self, callback: Callable[[str, float], None]) -> Callable[[], None]:
        """Call ``callback(line, wall_time)`` for every line from now on; returns the way to stop it."""
        with self._lock:
            self._watchers.append(callback)

        def unwatch() -> None:
            with self._lock:
                if callback in self._watchers:
                    self._watchers.remove(callback)

        return unwatch

    def _follow(self, offset: int) -> None:
        pending = b""
        with open(self.path, "rb") as log:
            log.seek(offset)
            while not self._stop.is_set():
                chunk = log.read(65536)
                if not chunk:
                    time.sleep(0.005)
                    continue
                pending += chunk
                *lines, pending = pending.split(b"\n")
                now = time.time()
                for raw in lines:
                    line = raw.decode("utf-8", errors="replace")
                    with self._lock:
                        watchers = list(self._watchers)
                    for callback in watchers:
                        callback(line, now)


class ManagedService:
    """What every way of running the service offers the nemesis."""

    log_path: Path | None = None
    logs: LogWatch | None = None

    def start(self) -> None:
        raise NotImplementedError

    def restart(self) -> None:
        """Start the service again after a kill, and wait until it is ready."""
        self.start()

    def kill(self) -> str:
        raise NotImplementedError

    def pause(self) -> str:
        raise NotImplementedError

    def resume(self) -> str:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        return None

    def describe(self) -> dict[str, Any]:
        return {}


def _env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (``#`` comments, blank lines and an ``export`` prefix allowed; quotes stripped)."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        key, sep, value = line.partition("=")
        if not sep or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key.strip()):
            raise HarnessError(f"service.env_file {path}: line {number} is not KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def _ready(url: str | None, verify: bool | str, process: subprocess.Popen | None, pattern: str | None,
           logs: LogWatch | None, timeout: float) -> None:
    """Wait (bounded) until the health path answers or a log line matches; ServiceStartError otherwise."""
    matched = threading.Event()
    unwatch = None
    if pattern is not None and logs is not None:
        compiled = re.compile(pattern)
        unwatch = logs.watch(lambda line, _: matched.set() if compiled.search(line) else None)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process is not None and process.poll() is not None:
                raise ServiceStartError(f"the service exited with code {process.returncode} before it was ready")
            if matched.is_set():
                return
            if url is not None and pattern is None:
                try:
                    if httpx.get(url, timeout=1.0, verify=verify).status_code < 500:
                        return
                except httpx.HTTPError:
                    pass
            if time.monotonic() > deadline:
                how = f"no line matched {pattern!r}" if pattern else f"{url} did not answer"
                raise ServiceStartError(f"the service was not ready within {timeout:g} s ({how})")
            time.sleep(READY_POLL)
    finally:
        if unwatch is not None:
            unwatch()


class CommandService(ManagedService):
    """The profile's command, started by the harness in a process group of its own."""

    def __init__(self, section: ServiceSection, profile: Profile, log_path: Path, base_dir: Path | None = None) -> None:
        assert section.command is not None
        self.section, self.profile = section, profile
        self.log_path = log_path
        self.base_dir = base_dir or Path.cwd()
        self.process: subprocess.Popen | None = None
        self.logs: LogWatch | None = None
        self.starts = 0
        self._log_file: Any = None
        self._lock = threading.Lock()
        self._stopped = False  # once stopped, never started again (a nemesis restarting late must not leave one)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.section.env_file:
            path = Path(self.section.env_file)
            path = path if path.is_absolute() else self.base_dir / path
            try:
                env.update(_env_file(path))
            except OSError as exc:
                raise HarnessError(f"service.env_file: cannot read {path}: {exc.strerror or exc}") from None
        env.update(self.section.env)
        return env

    def start(self) -> None:
        """Start the command and wait until it is ready; ServiceStartError (it exited, or never got ready)."""
        with self._lock:
            if self._stopped:
                raise ServiceStartError("the run has ended: the service is not started again")
            if self.process is not None and self.process.poll() is None:
                return
            cwd = Path(self.section.cwd) if self.section.cwd else self.base_dir
            cwd = cwd if cwd.is_absolute() else self.base_dir / cwd
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            if self._log_file is None:
                self._log_file = open(self.log_path, "ab")
            offset = self.log_path.stat().st_size
            self._log_file.write(f"--- race-harness: start {self.starts + 1} at {time.time():.3f}\n".encode())
            self._log_file.flush()
            try:
                self.process = subprocess.Popen(self.section.command, cwd=cwd, env=self._environment(),
                                                stdin=subprocess.DEVNULL, stdout=self._log_file,
                                                stderr=subprocess.STDOUT, start_new_session=True)
            except OSError as exc:
                raise ServiceStartError(f"cannot start {self.section.command[0]!r}: {exc.strerror or exc}") from None
            self.starts += 1
            if self.logs is None:
                self.logs = LogWatch(self.log_path).start(offset)
        ready_url = self.profile.url(self.section.ready_path) if self.section.ready_path else (
            self.profile.url(self.profile.health_path) if not self.section.ready_log else None)
        _ready(ready_url, self.profile.tls_trust, self.process, self.section.ready_log, self.logs,
               self.section.ready_timeout)

    def _signal_group(self, sig: int) -> bool:
        process = self.process
        if process is None or process.poll() is not None:
            return False
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return False
        return True

    def kill(self) -> str:
        """SIGKILL to the whole process group (the service and everything it started)."""
        with self._lock:
            pid = self.pid
            sent = self._signal_group(signal.SIGKILL)
            if self.process is not None:
                try:
                    self.process.wait(10.0)
                except subprocess.TimeoutExpired:
                    pass
            _reap_group(pid)
        return f"SIGKILL to process group {pid}" if sent else f"process group {pid} had already exited"

    def pause(self) -> str:
        sent = self._signal_group(signal.SIGSTOP)
        return f"SIGSTOP to process group {self.pid}" if sent else "nothing to pause: the service is not running"

    def resume(self) -> str:
        sent = self._signal_group(signal.SIGCONT)
        return f"SIGCONT to process group {self.pid}" if sent else "nothing to resume: the service is not running"

    def stop(self) -> None:
        """End the process group: SIGCONT (a paused group cannot act on SIGTERM), SIGTERM, then SIGKILL."""
        with self._lock:
            self._stopped = True
            process, pid = self.process, self.pid
            if process is not None:
                self._signal_group(signal.SIGCONT)
                self._signal_group(signal.SIGTERM)
                try:
                    process.wait(self.section.stop_timeout)
                except subprocess.TimeoutExpired:
                    self._signal_group(signal.SIGKILL)
                    try:
                        process.wait(10.0)
                    except subprocess.TimeoutExpired:
                        pass
                _reap_group(pid, sig=signal.SIGKILL)
            if self.logs is not None:
                self.logs.stop()
                self.logs = None
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None

    def describe(self) -> dict[str, Any]:
        return {"command": list(self.section.command or []), "log": str(self.log_path), "starts": self.starts}


def _reap_group(pid: int | None, sig: int = signal.SIGKILL) -> None:
    """Children that outlived the group's leader (reparented, same group): signalled until none is left."""
    if pid is None:
        return
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.02)


class HookedService(ManagedService):
    """A service the harness does not start: the profile's shell hooks kill, start, pause and resume it."""

    def __init__(self, section: ServiceSection, profile: Profile, log_path: Path) -> None:
        assert section.hooks is not None
        self.section, self.profile, self.log_path = section, profile, log_path
        self.logs = None

    def _run(self, which: str) -> str:
        command = getattr(self.section.hooks, which)
        if not command:
            raise HarnessError(f"service.hooks.{which} is not given: the nemesis cannot {which} this service")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"--- race-harness: hook {which} at {time.time():.3f}: {command}\n".encode())
            log.flush()
            try:
                done = subprocess.run(command, shell=True, stdin=subprocess.DEVNULL, stdout=log,
                                      stderr=subprocess.STDOUT, timeout=self.section.hooks.timeout,
                                      start_new_session=True)
            except subprocess.TimeoutExpired:
                raise ServiceStartError(f"service.hooks.{which} did not end within "
                                        f"{self.section.hooks.timeout:g} s") from None
        if done.returncode != 0:
            raise ServiceStartError(f"service.hooks.{which} exited with code {done.returncode}")
        return f"hook {which}: {command}"

    def start(self) -> None:
        """The service is expected to be running already; wait until it answers (bounded)."""
        _ready(self.profile.url(self.section.ready_path or "/"), self.profile.tls_trust, None, None, None,
               self.section.ready_timeout)

    def restart(self) -> None:
        self._run("start")
        self.start()

    def kill(self) -> str:
        return self._run("kill")

    def pause(self) -> str:
        return self._run("pause")

    def resume(self) -> str:
        return self._run("resume")

    def stop(self) -> None:
        """Nothing the harness started is left: a service run by hooks is the user's to keep."""

    def describe(self) -> dict[str, Any]:
        return {"hooks": True, "log": str(self.log_path)}


def managed_service(profile: Profile, log_path: Path) -> ManagedService:
    """The profile's ``[service]`` as something the nemesis can act on; HarnessError when there is none."""
    section = profile.spec.service
    if section is None:
        raise HarnessError("faults need to know how the service runs: give the profile a [service] section "
                           "(a command the harness starts, or hooks that kill and start it)")
    if section.hooks is not None:
        return HookedService(section, profile, log_path)
    origin = profile.origin.get("path")
    base_dir = Path(origin).resolve().parent if origin else Path.cwd()
    return CommandService(section, profile, log_path, base_dir)
