"""The webhook probes: deliveries a gateway would never send, each for a fresh payment of its own.

A probe is a name, one line saying what it sends, why it applies to a profile (or why not), and how it
is sent: an optional *setup* of valid deliveries (a payment paid first, for the state-regression
probes), then the *attack*. What each is judged by is ``harness.probe.session``'s: after the attack,
nothing the profile can read — the payment's state, any side effect — may have changed (or, for the
burst of contradictory deliveries, the service must end consistent).

What a probe forges is worked out from the profile's signing scheme (``harness.signing.forgery``):
which headers carry the signature, whether it covers the body, whether it binds a timestamp. A
gateway simulator a channel names (``gateway``) is told what the gateway knows of each payment,
so a service that asks the gateway (as it must when the signature cannot protect the body) hears the truth.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from harness.profile import Payment, Profile
from harness.profile.deliveries import Channel, Rendered
from harness.profile.template import placeholders_in
from harness.senders.base import PreparedRequest
from harness.signing.forgery import (
    STALE_AGE,
    altered,
    covers_body,
    credentials,
    signature_headers,
    stale_time,
    with_other_credentials,
)

CHANNEL = "callback"  # the gateway's deliveries; a verify call is the merchant's own request, not probed
UNDERPAID_SHARE = 100  # the amount a probe says was paid: 1/100 of the order's (at least 1 paise)

# Every probe of the catalogue, in the order they run (``catalogue`` says which apply to a profile).
PROBE_NAMES = ("unsigned", "wrong-signature", "other-secret", "tampered-body", "stale-timestamp", "unprotected-body",
               "unprotected-amount", "wrong-amount", "unknown-order", "failed-after-completed",
               "pending-after-completed", "completed-and-failed-together")

# What the gateway (a simulator the profile names) is told of a probe's payment before the attack.
NOT_PAID, PAID, UNDERPAID, UNTOLD = "PENDING", "COMPLETED", "underpaid", None


@dataclass(frozen=True)
class Shown:
    """A header as the report shows it: a value the harness made up is shown; a valid signature never is."""

    header: str
    value: str
    forged: bool


@dataclass
class Delivery:
    """One request a probe sends, with what the report may show of its headers."""

    request: PreparedRequest
    what: str
    shown: list[Shown] = field(default_factory=list)


@dataclass(frozen=True)
class Probe:
    """One probe of the catalogue."""

    name: str
    title: str  # what it sends, in one line
    kind: str  # how it is judged: "unchanged", "regression" or "burst"
    gateway: str | None  # what the gateway is told of the payment before the attack (None: nothing)
    attack: Callable[[Forger, Payment], list[Delivery]]
    setup: Callable[[Forger, Payment], list[Delivery]] | None = None
    # Deliveries of the attack released together (one burst) rather than one after another.
    together: bool = False


@dataclass(frozen=True)
class NotApplicable:
    name: str
    reason: str


class Forger:
    """Makes a profile's deliveries, valid or forged, for the probes."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.channel: Channel = profile.channels[CHANNEL]
        self.scheme = self.channel.scheme
        # The values of every valid signature sent: never shown, and masked wherever they turn up (an answer
        # echoing a PhonePe v2 Authorization, which is a password in all but name).
        self.valid_values: set[str] = set()

    def sends(self, state: str) -> bool:
        return self.channel.sends(state)

    def event(self, payment: Payment, state: str = "COMPLETED") -> Rendered:
        return self.channel.render(payment, state)

    def _delivery(self, payment: Payment, event: Rendered, signed: dict[str, str], state: str, what: str,
                  forged: set[str] | None = None, **meta: object) -> Delivery:
        """A delivery of ``event`` under ``signed``; headers in ``forged`` are shown, the rest of the signature not."""
        forged = forged or set()
        names = set(signature_headers(self.scheme, event.body, event_id=event.event_id))
        shown = [Shown(h, v if h in forged else "(valid, not shown)", h in forged)
                 for h, v in signed.items() if h in names or h in forged]
        self.valid_values |= {v for h, v in signed.items() if h in names and h not in forged}
        return Delivery(self.channel.prepared(payment, event, signed, state, **meta), what, shown)

    def valid(self, payment: Payment, state: str = "COMPLETED", *, now: float | None = None) -> Delivery:
        event = self.event(payment, state)
        signed = self.scheme.sign(event.body, now=now, event_id=event.event_id)
        return self._delivery(payment, event, signed, state, f"{state}, validly signed")

    def unsigned(self, payment: Payment) -> Delivery:
        event = self.event(payment)
        return self._delivery(payment, event, {}, "COMPLETED", "COMPLETED with none of the scheme's headers")

    def wrong_signature(self, payment: Payment) -> Delivery:
        event = self.event(payment)
        signed = self.scheme.sign(event.body, event_id=event.event_id)
        names = signature_headers(self.scheme, event.body, event_id=event.event_id)
        forged = {**signed, **{n: altered(signed[n]) for n in names}}
        delivery = self._delivery(payment, event, forged, "COMPLETED",
                                  "COMPLETED, its signature changed in one character")
        # Not shown: one character away from the valid value, which for PhonePe v2 is the credential itself.
        delivery.shown = [Shown(s.header, "(the valid value with one character changed, not shown)", True)
                          for s in delivery.shown]
        return delivery

    def other_credentials(self, payment: Payment) -> Delivery:
        event = self.event(payment)
        signed = with_other_credentials(self.scheme).sign(event.body, event_id=event.event_id)
        names = signature_headers(self.scheme, event.body, event_id=event.event_id)
        return self._delivery(payment, event, signed, "COMPLETED", "COMPLETED signed with credentials that are not "
                              "the merchant's", set(names))

    def tampered(self, payment: Payment) -> Delivery:
        """The signature of one body over another: this order's FAILED event signed, its COMPLETED event sent
        (where the channel has no FAILED, a COMPLETED event saying 1 paise signed, the order's amount sent)."""
        sent = self.event(payment)
        if self.sends("FAILED"):
            signed_over, how = self.event(payment, "FAILED"), "the order's FAILED event signed, its COMPLETED event sent"
        else:
            signed_over = self.event(Payment(payment.id, payment.merchant_transaction_id, 1))
            how = "a COMPLETED event of 1 paise signed, the order's amount sent"
        signed = self.scheme.sign(signed_over.body, event_id=sent.event_id)
        return self._delivery(payment, sent, signed, "COMPLETED", f"a body changed after signing: {how}")

    def stale(self, payment: Payment) -> Delivery:
        event = self.event(payment)
        signed = self.scheme.sign(event.body, now=stale_time(), event_id=event.event_id)
        delivery = self._delivery(payment, event, signed, "COMPLETED",
                                  f"COMPLETED validly signed {STALE_AGE / 60:g} minutes ago")
        # The timestamp is shown: it is what makes the delivery stale (and no secret).
        delivery.shown += [Shown(h, v, True) for h, v in signed.items()
                           if h not in {s.header for s in delivery.shown} and v.isdigit()]
        return delivery

    def other_amount(self, payment: Payment) -> Delivery:
        """A validly signed COMPLETED whose amount is a hundredth of the order's (what was really paid)."""
        paid = underpaid(payment)
        event = self.event(Payment(payment.id, payment.merchant_transaction_id, paid))
        signed = self.scheme.sign(event.body, event_id=event.event_id)
        return self._delivery(payment, event, signed, "COMPLETED",
                              f"COMPLETED validly signed, saying {paid} paise paid for an order of {payment.amount}")

    def unknown_order(self, payment: Payment) -> Delivery:
        made_up = made_up_payment(payment.amount)
        event = self.event(made_up)
        signed = self.scheme.sign(event.body, event_id=event.event_id)
        delivery = self._delivery(made_up, event, signed, "COMPLETED",
                                  f"COMPLETED validly signed, for an order the service never made "
                                  f"({made_up.merchant_transaction_id})")
        delivery.request = _for_payment(delivery.request, payment)  # judged as the probe's own payment
        return delivery


def check_names(names: list[str] | None) -> None:
    """ValueError naming the first probe name that is not one of the catalogue (``--only``)."""
    unknown = [n for n in names or [] if n not in PROBE_NAMES]
    if unknown:
        raise ValueError(f"unknown probe {unknown[0]!r}; the probes: {', '.join(PROBE_NAMES)}")


def underpaid(payment: Payment) -> int:
    return max(1, payment.amount // UNDERPAID_SHARE)


def made_up_payment(amount: int) -> Payment:
    """A payment no service has heard of: ids of the harness's own form, never created anywhere."""
    token = secrets.token_hex(10).upper()
    return Payment(id=f"RHX{token}", merchant_transaction_id=f"RHX{token}", amount=amount)


def _for_payment(request: PreparedRequest, payment: Payment) -> PreparedRequest:
    return replace(request, payment=payment.id, meta={**request.meta, "sent_for": request.payment})


def catalogue(profile: Profile) -> tuple[list[Probe], list[NotApplicable]]:
    """The probes that apply to ``profile``'s callback channel, and each one that does not with the reason."""
    if CHANNEL not in profile.channels:
        raise ValueError(f"probes send on deliveries.{CHANNEL}: profile {profile.name!r} has no such channel")
    forger = Forger(profile)
    scheme, channel = forger.scheme, forger.channel
    facts = scheme_facts(forger)
    signs, covered, says_amount = facts["signs"], facts["covers_body"], facts["says_amount"]
    unnamed = "the body names neither the order nor its amount: whether the signature protects it cannot be shown"
    has_gateway = bool(channel.section.gateway)
    applies: list[Probe] = []
    skipped: list[NotApplicable] = []

    def add(probe: Probe, reason: str | None) -> None:
        (skipped.append(NotApplicable(probe.name, reason)) if reason else applies.append(probe))

    unsigned_reason = (f"the profile signs nothing (scheme {scheme.name!r}): there is no signature to forge"
                       if not signs else None)
    add(Probe("unsigned", "COMPLETED for an unpaid order, with none of the scheme's headers", "unchanged", NOT_PAID,
              lambda f, p: [f.unsigned(p)]), unsigned_reason)
    add(Probe("wrong-signature", "COMPLETED for an unpaid order, its signature changed in one character", "unchanged",
              NOT_PAID, lambda f, p: [f.wrong_signature(p)]), unsigned_reason)
    add(Probe("other-secret", "COMPLETED for an unpaid order, signed with credentials that are not the merchant's",
              "unchanged", NOT_PAID, lambda f, p: [f.other_credentials(p)]), unsigned_reason)
    add(Probe("tampered-body", "a body changed after signing: the order's FAILED event signed, COMPLETED sent",
              "unchanged", NOT_PAID, lambda f, p: [f.tampered(p)]),
        unsigned_reason or (unnamed if covered is None else
                            f"scheme {scheme.name!r} does not cover the body: a changed body verifies (see "
                            f"unprotected-body)" if not covered else
                            None if channel.sends("FAILED") or says_amount else
                            f"deliveries.{CHANNEL} has no word for FAILED and its body no amount: no other body of "
                            f"the order to sign"))
    add(Probe("stale-timestamp", f"COMPLETED for an unpaid order, validly signed {STALE_AGE / 60:g} minutes ago: a "
                                 f"captured delivery replayed after the tolerance window", "unchanged", NOT_PAID,
              lambda f, p: [f.stale(p)]),
        unsigned_reason or (None if scheme.binds_time else f"scheme {scheme.name!r} signs no timestamp: a captured "
                                                           f"delivery verifies for ever, and only the service's own "
                                                           f"idempotency stops its replay (the state probes)"))
    add(Probe("unprotected-body", "the signature covers no body: a validly signed COMPLETED for an order the gateway "
                                  "says is not paid", "unchanged", NOT_PAID, lambda f, p: [f.valid(p)]),
        unnamed if covered is None else None if not covered else f"scheme {scheme.name!r} covers the body")
    add(Probe("unprotected-amount", "the signature covers no body: a validly signed COMPLETED saying the order's "
                                    f"amount, while the gateway says 1/{UNDERPAID_SHARE} of it was paid", "unchanged",
              UNDERPAID, lambda f, p: [f.valid(p)]),
        unnamed if covered is None else f"scheme {scheme.name!r} covers the body (see wrong-amount)" if covered else
        (None if has_gateway else "no gateway simulator to tell what was paid (deliveries.callback.gateway)"))
    add(Probe("wrong-amount", f"COMPLETED validly signed, saying 1/{UNDERPAID_SHARE} of the order's amount was paid "
                              f"(as the gateway says)", "unchanged", UNDERPAID, lambda f, p: [f.other_amount(p)]),
        None if says_amount else f"deliveries.{CHANNEL}'s body does not say the amount ({{amount}})")
    add(Probe("unknown-order", "COMPLETED validly signed, for an order the service never made", "unchanged", UNTOLD,
              lambda f, p: [f.unknown_order(p)]), None)
    no_failed = None if channel.sends("FAILED") else f"deliveries.{CHANNEL} has no word for FAILED (states)"
    add(Probe("failed-after-completed", "the order paid by a valid COMPLETED, then a valid FAILED", "regression", PAID,
              lambda f, p: [f.valid(p, "FAILED")], setup=lambda f, p: [f.valid(p)]), no_failed)
    add(Probe("pending-after-completed", "the order paid by a valid COMPLETED, then a valid PENDING", "regression",
              PAID, lambda f, p: [f.valid(p, "PENDING")], setup=lambda f, p: [f.valid(p)]),
        None if channel.sends("PENDING") else f"deliveries.{CHANNEL} has no word for PENDING (states)")
    add(Probe("completed-and-failed-together", "a valid COMPLETED and a valid FAILED for one order, released in one "
                                               "burst", "burst", PAID,
              lambda f, p: [f.valid(p), f.valid(p, "FAILED")], together=True), no_failed)
    return applies, skipped


def scheme_facts(forger: Forger) -> dict[str, object]:
    """What the report says of the callback channel's scheme, worked out from the scheme: whether it signs at all,
    whether its signature covers the body (None: the body names neither the order nor its amount, so whether a
    changed body verifies cannot be shown), whether it binds a timestamp, whether the body says the amount, and
    which gateway simulator the channel names."""
    section = forger.channel.section
    named = placeholders_in(section.body if section.body is not None else section.text)
    one = forger.event(Payment("RHXSAMPLE1", "RHXSAMPLE1", 10_000)).body
    two = forger.event(Payment("RHXSAMPLE2", "RHXSAMPLE2", 20_000)).body
    signs = bool(credentials(forger.scheme)) and bool(signature_headers(forger.scheme, one))
    covered: bool | None = signs and covers_body(forger.scheme, one, two)
    if signs and not covered and not {"transaction", "id", "amount", "amount_rupees"} & named:
        covered = None
    return {"scheme": forger.scheme.name, "signs": signs, "covers_body": covered,
            "binds_time": bool(forger.scheme.binds_time), "says_amount": bool({"amount", "amount_rupees"} & named),
            "gateway": section.gateway or None}
