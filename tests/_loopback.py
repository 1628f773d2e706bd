"""A test server's frame: a listener on 127.0.0.1, its URL, and one serving thread started and stopped by ``with``."""

from __future__ import annotations

import socket
import threading
from typing import Callable


class LoopbackServer:
    """Subclasses call ``listen`` in ``__init__`` with the method that serves until ``self._stop`` is set."""

    def listen(self, serve: Callable[[], None]) -> socket.socket:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = "http://127.0.0.1:%d" % self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=serve, daemon=True)
        return self._listener

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()
