"""The sink's forward proxy: mitmproxy's ``mitmdump`` with a recording addon, in a process of its own.

mitmproxy pins older h11/h2 than httpx needs, so it lives in its own environment (``pipx install
mitmproxy``, or a venv with ``race-harness[proxy]``): the sink finds ``mitmdump`` through
``RACE_HARNESS_MITMDUMP``, beside this Python, or on PATH. The service is told
``HTTPS_PROXY=http://127.0.0.1:<port>`` and to trust a throw-away CA (``ca_cert``); every request
is recorded and answered by the addon, and no connection to the real host is ever opened. A body is
read under the same deadline and bound as the HTTP channel's (``read_timeout``, ``max_body``: the
addon's ``sink_read_timeout`` and ``sink_max_body`` options).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

from harness.local.process import end_process
from harness.errors import SinkError
from .mitm_addon import MAX_BODY, READ_TIMEOUT

ADDON = Path(__file__).with_name("mitm_addon.py")
CA_CERT = "mitmproxy-ca-cert.pem"
START_TIMEOUT = 30.0


def find_mitmdump(explicit: str | None = None) -> str:
    """The ``mitmdump`` to run: given, ``$RACE_HARNESS_MITMDUMP``, beside this Python, or on PATH."""
    for candidate in (explicit, os.environ.get("RACE_HARNESS_MITMDUMP")):
        if candidate:
            if not (shutil.which(candidate) or Path(candidate).is_file()):
                raise SinkError(f"the proxy channel: mitmdump {candidate!r} does not exist")
            return candidate
    beside = Path(sys.executable).with_name("mitmdump")
    if beside.is_file():
        return str(beside)
    found = shutil.which("mitmdump")
    if found:
        return found
    raise SinkError("the proxy channel needs mitmproxy's mitmdump: `pipx install mitmproxy` (or a venv with "
                    "race-harness[proxy]) and set RACE_HARNESS_MITMDUMP to it")


def ensure_ca(ca_dir: Path | str, mitmdump: str | None = None, timeout: float = START_TIMEOUT) -> Path:
    """The throw-away CA certificate in ``ca_dir`` (made by mitmproxy the first time): tell the service to trust it."""
    ca_dir = Path(ca_dir)
    cert = ca_dir / CA_CERT
    if cert.is_file():
        return cert
    ca_dir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen([find_mitmdump(mitmdump), "--set", f"confdir={ca_dir}", "--set", "server=false",
                                "-q"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + timeout
        while not cert.is_file():
            if process.poll() is not None:
                raise SinkError(f"mitmdump could not make a CA in {ca_dir}: "
                                f"{(process.stderr.read() or b'').decode(errors='replace').strip()[-300:]}")
            if time.monotonic() > deadline:
                raise SinkError(f"mitmdump made no CA in {ca_dir} within {timeout:g} s")
            time.sleep(0.05)
    finally:
        end_process(process)
    return cert


class ProxyChannel:
    """mitmdump on 127.0.0.1:port with the recording addon; its records are copied into the sink's."""

    def __init__(self, port: int, record: Callable[[dict[str, Any]], Any], *, status: int, body: str,
                 content_type: str, latency_ms: float, ca_dir: Path | str | None = None,
                 mitmdump: str | None = None, read_timeout: float = READ_TIMEOUT, max_body: int = MAX_BODY) -> None:
        self.port, self.record = port, record
        self._own_dir = tempfile.mkdtemp(prefix="race-harness-proxy-")
        self.ca_dir = Path(ca_dir) if ca_dir else Path(self._own_dir) / "ca"
        self._raw = Path(self._own_dir) / "proxy.jsonl"
        self._raw.touch()
        self._options = {"sink_records": str(self._raw), "sink_status": status, "sink_body": body,
                         "sink_content_type": content_type, "sink_latency_ms": int(latency_ms),
                         "sink_read_timeout": repr(float(read_timeout)), "sink_max_body": int(max_body),
                         "connection_strategy": "lazy", "upstream_cert": "false", "confdir": str(self.ca_dir),
                         "termlog_verbosity": "error", "flow_detail": 0}
        self._mitmdump = mitmdump
        self._process: subprocess.Popen | None = None
        self._stop = threading.Event()
        self._tail: threading.Thread | None = None
        self.blocked = 0  # connections mitmproxy tried to open to a real server (each refused)

    @property
    def ca_cert(self) -> Path:
        return self.ca_dir / CA_CERT

    def start(self) -> "ProxyChannel":
        mitmdump = find_mitmdump(self._mitmdump)
        ensure_ca(self.ca_dir, mitmdump)
        command = [mitmdump, "--listen-host", "127.0.0.1", "--listen-port", str(self.port), "-s", str(ADDON)]
        for name, value in self._options.items():
            command += ["--set", f"{name}={value}"]
        self._log = open(Path(self._own_dir) / "mitmdump.log", "wb")
        self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while not _listening(self.port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                log = (Path(self._own_dir) / "mitmdump.log").read_text(errors="replace").strip()
                self.stop()
                raise SinkError(f"mitmdump did not listen on 127.0.0.1:{self.port}: {log[-300:] or 'no output'}")
            time.sleep(0.05)
        self._tail = threading.Thread(target=self._copy, name="race-harness-proxy-tail", daemon=True)
        self._tail.start()
        return self

    def _copy(self) -> None:
        """Move the addon's lines into the sink's records (bounded: every 20 ms until stopped, then once more)."""
        import json

        offset = 0
        while True:
            stopping = self._stop.wait(0.02)
            with open(self._raw, "rb") as raw:
                raw.seek(offset)
                chunk = raw.read()
            end = chunk.rfind(b"\n") + 1
            offset += end
            for line in chunk[:end].splitlines():
                try:
                    item = json.loads(line)
                except ValueError:
                    continue
                if "blocked" in item:
                    self.blocked += 1
                self.record(item)
            if stopping:
                return

    def stop(self) -> None:
        if self._process is not None:
            end_process(self._process)
            self._process = None
            self._log.close()
        self._stop.set()
        if self._tail is not None:
            self._tail.join(10)
            self._tail = None
        shutil.rmtree(self._own_dir, ignore_errors=True)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False
