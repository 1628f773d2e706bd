"""A real MongoDB wire protocol on loopback: SecantusDB run as a separate server process.

SecantusDB (the ``wire`` extra) speaks the MongoDB wire protocol over WiredTiger. It is GPL-2.0, so
this module never imports it: it finds the ``secantusd-py`` daemon, runs it as its own process on
a free loopback port with storage in a temporary directory, waits until it answers ``ping``, and
hands out its URI. Everything else talks to it through pymongo, exactly as to any MongoDB.

The server is stopped on every exit path: ``stop()``, the context manager, an exception or Ctrl-C
while it starts, and interpreter exit (atexit). Its storage directory goes with it.
"""

from __future__ import annotations

import atexit
import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from harness.local.process import LoggedProcess
from harness.local.poll import poll
from harness.errors import WireServerError, WireUnavailable

DAEMON = "secantusd-py"
INSTALL_COMMAND = "pip install -e '.[wire]'"
START_TIMEOUT = 15.0  # the daemon starts in about half a second here
_LISTENING = re.compile(r"listening on ([0-9.]+):(\d+)")


def daemon_command() -> list[str]:
    """How to run the SecantusDB daemon from here, without importing it; WireUnavailable if it is absent."""
    beside = Path(sys.executable).with_name(DAEMON)  # the console script of this environment
    if beside.is_file():
        return [str(beside)]
    found = shutil.which(DAEMON)
    if found:
        return [found]
    if importlib.util.find_spec("secantus") is not None:  # locates the package; does not run it
        return [sys.executable, "-m", "secantus"]
    raise WireUnavailable(f"the wire store needs SecantusDB, which is not installed: run {INSTALL_COMMAND}")


@dataclass
class WireServer(LoggedProcess):
    """A running SecantusDB daemon; ``uri`` is what pymongo (and a service's --mongo-uri) connect to."""

    host: str
    port: int
    process: subprocess.Popen
    workdir: Path
    _stopped: bool = field(default=False, repr=False)

    @property
    def uri(self) -> str:
        return f"mongodb://{self.host}:{self.port}/"

    @property
    def log_path(self) -> Path:  # type: ignore[override]
        return self.workdir / "secantusd.log"

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the daemon and remove its storage; safe to call twice.

        The daemon is killed, not asked: its storage is ephemeral and removed right here, and its
        graceful stop waits seconds for its accept thread (2 s at least, up to 7 s measured).
        """
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        try:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait(timeout)
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "WireServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def ping(uri: str, timeout_ms: int = 1000) -> bool:
    """True when a MongoDB server at ``uri`` answers ``ping``."""
    import pymongo
    from pymongo.errors import PyMongoError

    client: pymongo.MongoClient = pymongo.MongoClient(uri, serverSelectionTimeoutMS=timeout_ms,
                                                      connectTimeoutMS=timeout_ms)
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()


def start_wire_server(*, host: str = "127.0.0.1", timeout: float = START_TIMEOUT,
                      command: Sequence[str] | None = None) -> WireServer:
    """Start a SecantusDB daemon on a free port of ``host`` with ephemeral storage; return once it answers ping.

    The daemon picks its own free port (``--port 0``) and logs it, so two servers started at the
    same moment (e.g. one per pytest-xdist worker) never race for a port.
    """
    command = list(command) if command is not None else daemon_command()
    workdir = Path(tempfile.mkdtemp(prefix="race-harness-wire-"))
    config = workdir / "secantusd.toml"
    config.write_text("# empty: no secantusd.toml of this machine's applies to a race-harness wire server\n")
    argv = [*command, "--host", host, "--port", "0", "--storage-path", str(workdir / "data"),
            "--config", str(config), "--log-level", "INFO", "--standalone"]
    log = open(workdir / "secantusd.log", "ab")
    try:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    except OSError as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        raise WireServerError(f"cannot run {command[0]}: {exc}") from None
    finally:
        log.close()
    server = WireServer(host=host, port=0, process=process, workdir=workdir)
    atexit.register(server.stop)
    try:
        _wait_ready(server, timeout)
    except BaseException:  # a failed start, Ctrl-C while waiting: nothing is left running
        server.stop()
        raise
    return server


def _wait_ready(server: WireServer, timeout: float) -> None:
    def answering() -> bool:
        if server.process.poll() is not None:
            raise WireServerError(f"the wire server ({DAEMON}) exited with {server.process.returncode}: "
                                  f"{server.log_text()[-2000:].strip()}")
        if not server.port:
            match = _LISTENING.search(server.log_text())
            if match:
                server.port = int(match.group(2))
        return bool(server.port and ping(server.uri, timeout_ms=500))

    if poll(answering, timeout=timeout):
        return
    raise WireServerError(f"the wire server ({DAEMON}) did not answer ping within {timeout:g} s: "
                          f"{server.log_text()[-2000:].strip()}")
