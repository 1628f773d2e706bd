"""The swarm's conversation: message kinds, the transport it travels on, and plain data on the wire.

The master and its lanes talk only through a ``Transport``: ``send(kind, data, to)`` and ``on(kind,
handler)``. It is modelled on Locust's ``runner.send_message`` / ``register_message`` so that the
Locust adapter is a few lines, and a test can carry the same messages between threads. Data is
plain (dicts, lists, strings, numbers): Locust carries it as msgpack between processes.
"""

from __future__ import annotations

import base64
import json
from dataclasses import fields
from typing import Any, Callable, Protocol

from ..history import Event
from ..senders import PreparedRequest

HELLO = "rh:hello"  # lane -> master: {"users": n}, one more user ready to hold shares
PREPARE = "rh:prepare"  # master -> lane: a share of one wave to open and warm
READY = "rh:ready"  # lane -> master: the share is open and warm (or how it failed)
GO = "rh:go"  # master -> lane: release at this instant (epoch seconds), or abort
DONE = "rh:done"  # lane -> master: the share's events, or why there are none

Handler = Callable[[str, dict[str, Any]], None]  # (the sending node's id, the message's data)


class Transport(Protocol):
    """How messages travel between the master and its lanes.

    ``send`` from the master names the lane (``to`` = its node id); from a lane ``to`` is None (the
    master). A handler is called with the sending node's id and the data; handlers must not block:
    Locust calls them on the loop that also carries heartbeats (or, in a local run, inside ``send``).
    """

    def send(self, kind: str, data: dict[str, Any], to: str | None = None) -> None:
        ...

    def on(self, kind: str, handler: Handler) -> None:
        ...


def request_to_wire(request: PreparedRequest, stats_name: str) -> dict[str, Any]:
    """A request as plain data; ``stats_name`` is how the lane reports it (Locust groups by it)."""
    return {"method": request.method, "url": request.url, "headers": [list(h) for h in request.headers],
            "body": base64.b64encode(request.body).decode("ascii"), "payment": request.payment,
            "channel": request.channel, "meta": request.meta, "name": stats_name}


def request_from_wire(data: dict[str, Any]) -> PreparedRequest:
    return PreparedRequest(data["method"], data["url"], tuple((str(k), str(v)) for k, v in data["headers"]),
                           base64.b64decode(data["body"]), payment=data["payment"], channel=data["channel"],
                           meta=dict(data["meta"] or {}))


_EVENT_FIELDS = tuple(f.name for f in fields(Event))


def event_to_wire(event: Event) -> dict[str, Any]:
    # One JSON round trip makes it plain data (the body is JSON or text already); no ``asdict``,
    # whose deep copy of every body and meta cost more than the round trip itself.
    return json.loads(json.dumps({name: getattr(event, name) for name in _EVENT_FIELDS}, default=str))


def event_from_wire(data: dict[str, Any]) -> Event:
    return Event(**{k: v for k, v in data.items() if k in Event.__dataclass_fields__})
