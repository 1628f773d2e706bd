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
GO = "rh:go"  # master -> lane: release at this instant (epoch seconds on the lane's clock), or abort
DONE = "rh:done"  # lane -> master: the share's events, or why there are none
# The clocks (harness.swarm.clocks): the master's wall clock t0 out, the lane's t1 (received) and t2 (answered) back.
PING = "rh:ping"  # master -> lane: {"seq", "t0"}
PONG = "rh:pong"  # lane -> master: {"seq", "t0", "t1", "t2"}

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
    """An event as plain data: what a JSON round trip (``default=str``) would give, at a quarter of its cost
    (a lane sends every event of every wave; ``asdict``'s deep copy cost more than either)."""
    return {name: plain(getattr(event, name)) for name in _EVENT_FIELDS}


def plain(value: Any) -> Any:
    """``value`` as JSON would carry it: dicts with string keys, lists for tuples, anything else as text."""
    kind = type(value)
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value
    if isinstance(value, dict):
        return {_key(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (str, int, float)):  # subclasses (enums, say) as JSON writes them
        return json.loads(json.dumps(value))
    return str(value)


def _key(key: Any) -> str:
    if type(key) is str:
        return key
    try:  # as JSON writes a key: None -> "null", True -> "true", 1.5 -> "1.5", a str enum by its value
        return next(iter(json.loads(json.dumps({key: 0}))))
    except TypeError:  # a key JSON refuses (a tuple): its text, rather than losing the event
        return str(key)


def event_from_wire(data: dict[str, Any]) -> Event:
    return Event(**{k: v for k, v in data.items() if k in Event.__dataclass_fields__})
