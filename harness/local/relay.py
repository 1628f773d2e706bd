"""A small TCP relay between the harness and a service: a network with delays, or one that refuses.

This machine's kernel has no netem, so a path's latency comes from userspace: each accepted
connection is relayed to the upstream service, and every chunk is forwarded a set time after it
was received (order kept, per direction, per connection). A connection can also be refused
(accepted and closed at once), as a crashed or overloaded peer would. Bounded: it listens on
loopback only, serves at most ``max_connections``, and stops with ``close()`` (or ``with``).
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

Delay = Callable[[int], float]  # connection number (0-based, in accept order) -> seconds


def _no_delay(_: int) -> float:
    return 0.0


def _never(_: int) -> bool:
    return False


@dataclass
class RelayStats:
    accepted: int = 0
    refused: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    # (connection, direction, seconds between receiving a chunk and forwarding it)
    held: list[tuple[int, str, float]] = field(default_factory=list)


class Relay:
    """``Relay(upstream_port, up_delay=..., down_delay=..., refuse=...)``; ``relay.url`` is where to connect."""

    def __init__(self, upstream_port: int, *, upstream_host: str = "127.0.0.1", up_delay: Delay = _no_delay,
                 down_delay: Delay = _no_delay, jitter: float = 0.0, seed: int = 0,
                 refuse: Callable[[int], bool] = _never, max_connections: int = 10_000, listen_port: int = 0) -> None:
        """``up_delay``/``down_delay``: each connection's base latency per direction; ``jitter``: the standard
        deviation (s) of a further delay drawn per chunk, independently per connection (``seed`` + its number),
        as on real paths; order within a connection is kept, so a chunk never overtakes the one before."""
        self.upstream = (upstream_host, upstream_port)
        self.up_delay, self.down_delay, self.refuse = up_delay, down_delay, refuse
        self.jitter, self.seed = jitter, seed
        self.max_connections = max_connections
        self.listen_port = listen_port
        self.stats = RelayStats()
        self._open: set[asyncio.StreamWriter] = set()  # both ends of every relayed connection, for cut()
        self._refuse_until = 0.0  # wall clock: a cut link refuses new connections until then
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server: asyncio.base_events.Server | None = None
        self._thread = threading.Thread(target=self._run, name="relay", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the relay did not start")
        assert self._server is not None
        self.port: int = self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", self.listen_port))
        self._ready.set()
        self._loop.run_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        number = self.stats.accepted + self.stats.refused
        if number >= self.max_connections or self.refuse(number) or time.time() < self._refuse_until:
            self.stats.refused += 1
            writer.transport.abort()  # closed at once: a reset, or a bare close if no byte has come in yet
            return
        self.stats.accepted += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self._open.update((writer, up_writer))
        try:
            await asyncio.gather(self._pipe(number, "up", reader, up_writer, self.up_delay(number)),
                                 self._pipe(number, "down", up_reader, writer, self.down_delay(number)),
                                 return_exceptions=True)
        finally:
            self._open.difference_update((writer, up_writer))

    def cut(self, seconds: float) -> int:
        """Reset every relayed connection now (both sides, in the middle of whatever they were doing) and refuse
        new ones for ``seconds``: a database link cut, then a partition that heals. Returns how many were cut."""
        async def cut_now() -> int:
            self._refuse_until = time.time() + seconds
            cut = list(self._open)
            for writer in cut:
                writer.transport.abort()
            return len(cut) // 2

        return asyncio.run_coroutine_threadsafe(cut_now(), self._loop).result(10)

    async def _pipe(self, number: int, direction: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    delay: float) -> None:
        """Forward each chunk ``delay`` seconds (plus jitter) after it arrived, in order, then close the far side."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        rng = random.Random(f"{self.seed}-{number}-{direction}")
        last_due = 0.0

        async def forward() -> None:
            nonlocal last_due
            while True:
                received, chunk = await queue.get()
                if not chunk:
                    break
                extra = abs(rng.gauss(0.0, self.jitter)) if self.jitter > 0 else 0.0
                last_due = max(last_due, received + delay + extra)  # never overtake the previous chunk
                wait = last_due - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
                # Counted as it is released, before the write: the far side may answer (and a caller
                # stop the relay) before this coroutine runs again after the drain.
                self.stats.held.append((number, direction, time.perf_counter() - received))
                if direction == "up":
                    self.stats.bytes_up += len(chunk)
                else:
                    self.stats.bytes_down += len(chunk)
                writer.write(chunk)
                await writer.drain()

        sender = asyncio.ensure_future(forward())
        try:
            while True:
                chunk = await reader.read(65536)
                queue.put_nowait((time.perf_counter(), chunk))
                if not chunk:
                    break
            await sender
        except (OSError, asyncio.CancelledError):
            sender.cancel()
        finally:
            writer.close()

    def close(self) -> None:
        """Stop listening, drop every relayed connection, and end the relay's thread."""
        if not self._loop.is_running():
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def __enter__(self) -> "Relay":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _relay_child(conn, upstream_port: int, delay: float, jitter: float, seed: int) -> None:  # pragma: no cover - child
    relay = Relay(upstream_port, up_delay=lambda _: delay, down_delay=lambda _: delay, jitter=jitter, seed=seed,
                  max_connections=1_000_000)
    conn.send(relay.port)
    try:
        conn.poll(_CHILD_LIFETIME)  # told to stop, the parent went away, or the lifetime is over
    finally:
        relay.close()


_CHILD_LIFETIME = 6 * 3600.0  # no relay process outlives this


class RelayProcess:
    """A ``Relay`` in a child process of its own (a link with ``delay`` s each way plus per-chunk ``jitter``),
    so that relaying does not compete with the sender for this process's GIL. ``url``; ``close()`` or ``with``."""

    def __init__(self, upstream_port: int, *, delay: float, jitter: float = 0.0, seed: int = 0) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_relay_child, args=(child, upstream_port, delay, jitter, seed),
                                        daemon=True, name="relay")
        self._process.start()
        if not self._conn.poll(30):
            self.close()
            raise RuntimeError("the relay process did not start")
        self.port: int = self._conn.recv()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        try:
            self._conn.send(None)
        except (OSError, ValueError):
            pass
        self._process.join(10)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5)

    def __enter__(self) -> "RelayProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
