"""The naive sender, a yardstick: ``httpx.AsyncClient`` and ``asyncio.gather`` over warm connections.

This is how a burst is usually written in Python, and what the last-byte sender is measured
against. The armed burst owns an event loop on a thread of its own for its whole life: opening
warms the client's pool there (one concurrent GET per request, so the pool holds as many warm
connections per origin), and the release hands the gather to that loop. So it works the same
whether or not the caller runs a loop itself. ``t_release`` is the moment a request was handed to
httpx (not when its last byte left); ``connection`` numbers the pool connections in the order they
answered. It is not meant for gevent-patched processes (asyncio under gevent is a known trap).
Bodies are streamed as the other senders read them (``base.AnswerBody``): kept up to ``body_limit``
bytes, counted and hashed past it, cut at the deadline or past ``ANSWER_READ_CAP`` bytes.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from .base import (ARRIVAL_HEADER, SERVER_TIMING_HEADER, AnswerBody, AnswerTooLarge, ArmedBurst, Origin, Outcome,
                   PreparedRequest, plain, still_streaming)

_GRACE = 2.0  # seconds past a deadline allowed for the loop to cancel, close its client and stop


class NaiveBurst(ArmedBurst):
    """A warm httpx pool on its own loop thread, waiting for the release."""

    sync = "naive"

    # what close() finds if _open has not run (or failed early): nothing to signal or join
    _thread: threading.Thread | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _go: asyncio.Future | None = None  # resolved with the deadline (release) or None (close)

    def _open(self, warmup_path: str | None, verify_tls: bool | str) -> None:
        self._outcomes = [Outcome() for _ in self.requests]
        self._warmed = 0
        self._armed = threading.Event()
        self._failure: BaseException | None = None
        self._closed = False
        if not self.requests:
            return
        self._thread = threading.Thread(target=asyncio.run, args=(self._life(warmup_path, verify_tls),),
                                        name="burst-naive", daemon=True)
        self._thread.start()
        self._armed.wait(max(0.0, self.opened_at + self.timeout - time.perf_counter()) + _GRACE)
        if self._failure is not None:
            raise self._failure

    @property
    def ready(self) -> int:
        """Requests with a warm pool connection to go on (all of them when nothing was warmed)."""
        return self._warmed

    @property
    def errors(self) -> list[str]:
        return []  # a pool has no per-request connection: failures show in the events at release

    def close(self) -> None:
        self._closed = True  # before _signal reads the loop: see _life
        self._signal(None)
        if self._thread is not None:
            self._thread.join(_GRACE)

    def _signal(self, value: float | None) -> None:
        loop, go = self._loop, self._go
        if loop is None or go is None:
            return
        try:
            loop.call_soon_threadsafe(lambda: go.done() or go.set_result(value))
        except RuntimeError:
            pass  # the loop has already finished

    def _send(self, deadline: float, settle: float) -> tuple[list[Outcome], float | None]:
        # settle: nothing is sent ahead of the release here, so there is nothing to settle
        if self._thread is not None:
            self._signal(deadline)
            self._thread.join(max(0.0, deadline - time.perf_counter()) + _GRACE)
        if self._failure is not None:
            raise self._failure
        for outcome in self._outcomes:
            if outcome.t_response is None and outcome.error is None:
                outcome.error = "timeout: no complete response within the timeout"
        return self._outcomes, None

    async def _life(self, warmup_path: str | None, verify_tls: bool | str) -> None:
        """Open and warm, wait for the release (or close), burst, close: all on this loop."""
        try:
            import httpx  # only the naive sender needs it

            from ..tls import httpx_verify

            self._loop = asyncio.get_running_loop()
            self._go = self._loop.create_future()
            if self._closed:  # close() ran before the loop existed, so its signal went nowhere
                self._go.set_result(None)
            size = len(self.requests)
            limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
            async with httpx.AsyncClient(limits=limits, verify=httpx_verify(verify_tls),
                                         timeout=self.timeout) as client:
                self._warmed = size
                if warmup_path is not None:
                    self._warmed = await _warm(client, self.targets, warmup_path, self.opened_at + self.timeout)
                self._armed.set()
                deadline = await self._go
                if deadline is not None:
                    await _burst(client, self.requests, self._outcomes, deadline, self.body_limit)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread, raised there
            self._failure = exc
        finally:
            self._armed.set()


async def _warm(client: Any, targets: list[tuple[Origin, str]], path: str, deadline: float) -> int:
    """One concurrent GET per request; how many came back."""
    answered = []

    async def warm(origin: Origin) -> None:
        try:
            await client.get(f"{origin.scheme}://{origin.host_header}{path}")
            answered.append(origin)
        except Exception:  # noqa: BLE001 - a failed warm-up shows again, and is recorded, in the burst
            pass

    try:
        await asyncio.wait_for(asyncio.gather(*(warm(origin) for origin, _ in targets)),
                               timeout=max(0.001, deadline - time.perf_counter()))
    except asyncio.TimeoutError:
        pass
    return len(answered)


async def _burst(client: Any, requests: list[PreparedRequest], outcomes: list[Outcome], deadline: float,
                 body_limit: int) -> None:
    streams: dict[int, int] = {}
    burst = asyncio.gather(*(_one(client, r, o, streams, body_limit) for r, o in zip(requests, outcomes)))
    try:
        await asyncio.wait_for(burst, timeout=max(0.001, deadline - time.perf_counter()))
    except asyncio.TimeoutError:
        pass


async def _one(client: Any, request: PreparedRequest, outcome: Outcome, streams: dict[int, int],
               body_limit: int) -> None:
    import httpx

    outcome.t_release = time.perf_counter()  # handed to httpx; not when its last byte left
    response, answer = None, AnswerBody(body_limit)
    try:
        async with client.stream(request.method, request.url, headers=list(request.headers),
                                 content=request.body) as response:
            async for chunk in response.aiter_bytes():
                answer.add(chunk)  # AnswerTooLarge past ANSWER_READ_CAP
    except asyncio.CancelledError:  # the deadline: an answer whose head came is cut, what came of it kept
        if response is not None:
            _take(outcome, response, answer, streams)
            outcome.error = still_streaming(outcome.t_release)
        raise
    except AnswerTooLarge as exc:
        assert response is not None
        _take(outcome, response, answer, streams)
        outcome.error = f"read: {exc}"
        return
    except httpx.TimeoutException as exc:
        outcome.error = f"timeout: {plain(exc)}"
        return
    except httpx.ConnectError as exc:
        outcome.error = f"connect: {plain(exc)}"
        return
    except (httpx.HTTPError, OSError) as exc:
        outcome.error = f"read: {plain(exc)}"
        return
    except Exception as exc:  # noqa: BLE001 - e.g. httpx.InvalidURL: still this request's error only
        outcome.error = f"send: {plain(exc)}"
        return
    outcome.t_response = time.perf_counter()
    _take(outcome, response, answer, streams)


def _take(outcome: Outcome, response: Any, answer: AnswerBody, streams: dict[int, int]) -> None:
    """The answer's head and what was read of its body, into the outcome."""
    outcome.status = response.status_code
    outcome.content_type = response.headers.get("content-type", "")
    outcome.arrival_ns = response.headers.get(ARRIVAL_HEADER)
    outcome.server_timing = response.headers.get_list(SERVER_TIMING_HEADER)
    answer.settle(outcome)
    stream = response.extensions.get("network_stream")
    if stream is not None:
        outcome.connection = streams.setdefault(id(stream), len(streams))
