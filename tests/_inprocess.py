"""Run an ASGI app under a real uvicorn server on a loopback port, inside the test process.

Used where the test must reach into the service's dependencies (respx as PhonePe's status API),
which a separate process would not see. The sockets are still real.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any, Iterator

import uvicorn

from harness.local.service import free_port


@contextlib.contextmanager
def serve_in_thread(app: Any, timeout: float = 15.0) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("in-process server did not start")
        time.sleep(0.02)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout)
        assert not thread.is_alive()
