"""Start a stranger service (a script under tests/strangers/) as a real process on a free loopback port."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx

from harness.embedded import free_port

STRANGERS = Path(__file__).with_name("strangers")


@dataclass
class Stranger:
    url: str
    receipts_dir: Path | None
    process: subprocess.Popen


@contextlib.contextmanager
def stranger(script: str, receipts_dir: Path | None, *args: str, log: Path | None = None,
             timeout: float = 30.0) -> Iterator[Stranger]:
    """Run ``tests/strangers/<script>`` until the block ends; waits (bounded) until /healthz answers.

    ``receipts_dir`` None: the service keeps its side effects elsewhere (a database) and gets no ``--receipts``.
    """
    port = free_port()
    out = open(log, "ab") if log else subprocess.DEVNULL
    receipts = ["--receipts", str(receipts_dir)] if receipts_dir is not None else []
    process = subprocess.Popen([sys.executable, str(STRANGERS / script), "--port", str(port), *receipts, *args],
                               stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{script} exited with {process.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/healthz", timeout=1.0).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{script} did not answer within {timeout} s")
            time.sleep(0.05)
        yield Stranger(url, receipts_dir, process)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        if log:
            out.close()
