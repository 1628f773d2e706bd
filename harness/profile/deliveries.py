"""Deliveries: each channel's request template, rendered once per event and signed by its scheme.

A gateway's duplicates are the same event again: the same bytes (and, for a scheme that covers no
time, the same headers). A scheme that signs a timestamp signs each duplicate afresh, keeping the
event id, as Stripe or Svix do when they retry.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

from harness.profile.payments import Payment
from harness.senders.burst import PreparedRequest

from ..signing import callback_body, redeliver, scheme
from .payments import event_values
from .schema import DeliverySection
from .template import render


class Channel:
    """One delivery channel of a profile (``callback``, ``verify``)."""

    def __init__(self, name: str, section: DeliverySection, base_url: str) -> None:
        self.name, self.section, self.base_url = name, section, base_url.rstrip("/")
        self.scheme = scheme(section.signing.scheme, **section.signing.settings)
        self._events: dict[tuple[str, str], _Event] = {}
        self._lock = threading.Lock()

    def sends(self, state: str) -> bool:
        return state in self.section.states

    def _values(self, payment: Payment, state: str) -> dict[str, Any]:
        words = self.section.states[state]
        table = words if isinstance(words, dict) else {"state": words}
        return event_values(payment.merchant_transaction_id, payment.amount, id=payment.id, state=table["state"],
                            **{f"state.{k}": v for k, v in table.items()})

    def _event(self, payment: Payment, state: str) -> _Event:
        """This payment's event in ``state``, rendered (and first signed) once."""
        key = (payment.id, state)
        with self._lock:
            if key not in self._events:
                event = self.render(payment, state)
                self._events[key] = _Event(event.path, event.body, event.headers,
                                           self.scheme.sign(event.body, event_id=event.event_id), event.event_id)
            return self._events[key]

    def render(self, payment: Payment, state: str = "COMPLETED") -> Rendered:
        """A new event for ``payment`` in ``state``, rendered and not signed (the webhook probes sign it their way:
        with other credentials, at another time, over another body). A run's deliveries go through ``request``."""
        values = self._values(payment, state)
        body = self._body(values)
        headers = {k: str(v) for k, v in render(self.section.headers, values).items()}
        if self.section.body is not None and not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
        return Rendered(str(render(self.section.path, values)), body, headers, values["event_id"])

    def prepared(self, payment: Payment, event: Rendered, signed: dict[str, str], state: str,
                 **meta: object) -> PreparedRequest:
        """A request of this channel carrying ``event`` under the headers ``signed`` (whatever they are)."""
        return PreparedRequest(self.section.method.upper(), self.base_url + event.path,
                               tuple({**event.headers, **signed}.items()), event.body,
                               payment=payment.id, channel=self.name, meta={"state": state, **meta})

    def _body(self, values: dict[str, Any]) -> bytes:
        if self.section.body is not None:
            rendered = render(self.section.body, values)
            if self.section.envelope == "phonepe-v1":
                return callback_body(rendered)
            return json.dumps(rendered, separators=(",", ":")).encode("utf-8")
        if self.section.text is not None:
            return str(render(self.section.text, values)).encode("utf-8")
        return b""

    def request(self, payment: Payment, state: str = "COMPLETED") -> PreparedRequest:
        """This payment's delivery in ``state``: the event's bytes, signed for this send."""
        if not self.sends(state):
            raise ValueError(f"deliveries.{self.name}: no words for state {state} (states = ...)")
        event = self._event(payment, state)
        signed = redeliver(self.scheme, event.body, event.signed, event_id=event.event_id)
        return self.prepared(payment, Rendered(event.path, event.body, event.headers, event.event_id), signed, state)


@dataclass(frozen=True)
class Rendered:
    """One event of a channel, rendered: where it goes, its bytes, the template's headers (unsigned), its id."""

    path: str
    body: bytes
    headers: dict[str, str]
    event_id: str


@dataclass(frozen=True)
class _Event:
    path: str
    body: bytes
    headers: dict[str, str]  # the template's, unsigned
    signed: dict[str, str]  # the scheme's headers as first signed
    event_id: str
