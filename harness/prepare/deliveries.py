"""Prepare a run: the plan's payments made the profile's way, and every delivery rendered and signed.

What leaves here is plain data for a sender: ``PreparedRequest``s that know their payment by id and
nothing else of the service.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx

from harness.errors import HarnessError, TargetError
from harness.prepare.plan import Plan
from harness.profile import Payment, Profile
from harness.profile.payments import make_payments
from harness.progress import Progress, no_progress
from harness.redact import redact_uris
from harness.senders.base import PreparedRequest
from harness.tls import explain


def check_reachable(profile: Profile, client: httpx.Client) -> None:
    """HarnessError (exit 4) naming the service when its health path does not answer at all."""
    try:
        profile.check_reachable(client)
    except TargetError as exc:
        raise HarnessError(redact_uris(explain(f"target {exc}"))) from None  # no URL's password in the message


def prepare_payments(profile: Profile, plan: Plan, client: httpx.Client,
                     progress: Progress = no_progress) -> list[Payment]:
    """The plan's payments made the profile's way (and a gateway simulator told which are paid, for verify calls)."""
    check_reachable(profile, client)
    try:
        return make_planned_payments(profile, plan, client, progress)
    except (TargetError, httpx.HTTPError) as exc:
        raise HarnessError(f"could not prepare payments on {profile.base_url}: {exc}") from None


def make_planned_payments(profile: Profile, plan: Plan, client: httpx.Client,
                          progress: Progress = no_progress) -> list[Payment]:
    """The plan's payments, made; TargetError (or httpx's) when the service or a gateway simulator refuses."""
    for channel in plan.channel_mix:
        if plan.channel_mix[channel] > 0 and channel not in profile.channels:
            raise TargetError(f"the plan sends on {channel!r} but the profile has no deliveries.{channel}")
    payments = make_payments(profile.spec.payments, plan.amounts(), base_url=profile.base_url, client=client,
                             progress=progress)
    # A service that asks the gateway (its status API; a simulator in local runs) must hear what the gateway
    # knows before the deliveries race: every paid payment is COMPLETED there.
    for name, section in profile.spec.deliveries.items():
        if section.gateway and plan.channel_mix.get(name, 0) > 0 and (name != "verify" or plan.uses_verify()):
            for payment in payments[:plan.payments]:
                tell_gateway(client, section, payment, channel=name)
    return payments


def tell_gateway(client: httpx.Client, section: Any, payment: Payment, state: str = "COMPLETED", *,
                 amount: int | None = None, channel: str = "verify") -> None:
    """Tell the gateway simulator a channel names (``deliveries.<channel>.gateway``) what its status API says of
    ``payment``: its state, and the amount paid (default: the payment's). TargetError when it refuses."""
    if not section.gateway_url:
        raise TargetError(f"deliveries.{channel}.gateway_url is empty: the service asks the PhonePe status API "
                          f"simulator, and the harness must tell it what the gateway knows")
    response = client.put(f"{str(section.gateway_url).rstrip('/')}/sim/transactions/{payment.merchant_transaction_id}",
                          json={"amount": payment.amount if amount is None else amount, "state": state})
    if response.status_code != 200:
        raise TargetError(f"gateway simulator answered {response.status_code}: {response.text[:300]}")


def build_requests(plan: Plan, payments: list[Payment], profile: Profile) -> list[PreparedRequest]:
    """Every request of one delivery round: each planned delivery rendered and signed by the profile."""
    try:
        return [profile.request(p.channel, payments[p.slot], p.state) for p in plan.requests()]
    except (KeyError, ValueError) as exc:
        raise HarnessError(f"cannot build the deliveries: {exc}") from None


def sent_payments(plan: Plan, payments: list[Payment], history: Any) -> tuple[Plan, list[Payment]]:
    """The plan and payments cut down to those the history released a request for (paid ones first)."""
    sent = {e.payment for e in history if e.t_release is not None}
    slots = [i for i, p in enumerate(payments) if p.id in sent]
    if not slots:
        raise HarnessError("no payment was delivered before the run stopped")
    paid = [i for i in slots if plan.is_paid(i)]
    unpaid = [i for i in slots if not plan.is_paid(i)]
    return replace(plan, payments=len(paid), unpaid=len(unpaid)), [payments[i] for i in paid + unpaid]


def redelivery(profile: Profile, payment: Payment, request: PreparedRequest) -> PreparedRequest:
    """The same message again, signed afresh where the scheme binds time (a provider's retry), keeping the plan's meta."""
    fresh = profile.request(str(request.channel), payment, request.meta.get("state", "COMPLETED"))
    return replace(fresh, meta={**fresh.meta, **request.meta})
