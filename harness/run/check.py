"""``race-harness profile check``: a dry run a new user starts with, printing what every rule extracted.

One payment is made, one signed delivery sent (no race), the side effects and state read back (after
settling when the profile waits), and each rule's finding printed — or exactly which rule found
nothing and what it saw instead. Exit 0 when every rule found what it looks for, 4 otherwise.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import httpx

from harness.history import History
from harness.observe.observation import Observation
from harness.oracle import Evidence, PlannedPayment
from harness.prepare.plan import Plan
from harness.profile.payments import Payment
from harness.errors import HarnessError, TargetError
from harness.tls import bounded_request, http_client
from harness.profile import Profile
from harness.observe.effects import describe
from harness.observe.observer import mark_baseline, observe, observe_settled
from harness.observe.sink import settle_for_sink
from harness.prepare.deliveries import make_planned_payments
from harness.run.session import RunConfig, RunSession

WAIT_FOR_EFFECT = 15.0  # seconds a profile without [settle] gets for its side effect to appear


@dataclass
class CheckLine:
    ok: bool
    what: str  # the rule or stage
    found: str  # what it extracted, or what it saw instead


@dataclass
class ProfileCheck:
    profile: str
    base_url: str
    lines: list[CheckLine] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.lines) and all(line.ok for line in self.lines)

    def add(self, ok: bool, what: str, found: str) -> bool:
        self.lines.append(CheckLine(ok, what, found))
        return ok

    def render(self) -> str:
        out = [f"profile {self.profile}: {self.base_url}"]
        out += [f"  {'ok ' if line.ok else 'NO '} {line.what}: {line.found}" for line in self.lines]
        failed = [line for line in self.lines if not line.ok]
        out.append("OK: every rule found what it looks for" if not failed else
                   f"PROBLEM: {failed[0].what} — {failed[0].found}")
        return "\n".join(out)


def check_profile(profile: Profile, *, amount: int = 49_900, say: Callable[[str], None] | None = None) -> ProfileCheck:
    """Make one payment, deliver it once (COMPLETED), read back and report what each rule found.

    What a run starts, the check starts too, and ends: the profile's recording sink (its [sink], or the
    channels its ``source = "sink"`` effects read) and its service ([service]), told where the sink is.
    """
    result = ProfileCheck(profile.name, profile.base_url)
    if missing := profile.cannot_run():
        result.add(False, "payments", missing)
        return result
    try:
        session = RunSession(RunConfig(plan=Plan(payments=1, duplicates=1, min_amount=amount, max_amount=amount),
                                       profile=profile, label="profile-check"))
    except HarnessError as exc:
        result.add(False, "profile", str(exc))
        return result
    with session:
        try:
            session.start()
        except HarnessError as exc:
            result.add(False, "sink" if str(exc).startswith("sink:") else "service", str(exc))
            return result
        if session.sink is not None:
            ports = ", ".join(f"{channel} on 127.0.0.1:{port}" for channel, port in session.sink.ports.items())
            result.add(True, "sink", f"started ({ports}); the service is told {', '.join(sorted(session.sink.env()))}")
        if session.service is not None:
            result.add(True, "service", "started ([service]) and ready")
        _check(session.profile, amount, result)
    return result


def _check(profile: Profile, amount: int, result: ProfileCheck) -> None:
    with http_client(profile.tls_trust) as client:
        try:
            profile.check_reachable(client)
        except TargetError as exc:
            result.add(False, "health_path", str(exc))
            return
        mark_baseline(profile)
        try:
            (payment,) = make_planned_payments(profile, Plan(payments=1, duplicates=1, min_amount=amount,
                                                                 max_amount=amount), client)
        except (TargetError, httpx.HTTPError, ValueError) as exc:
            result.add(False, f"payments ({profile.spec.payments.source})", str(exc))
            return
        result.add(True, f"payments ({profile.spec.payments.source})",
                   f"id {payment.id!r}, transaction {payment.merchant_transaction_id!r}, amount {payment.amount} paise")
        if not _deliver(profile, payment, client, result):
            return
        observation = _read_back(profile, payment, client)
    _effects(profile, payment, observation, result)
    _state(profile, payment, observation, result)


def _deliver(profile: Profile, payment: Payment, client: httpx.Client, result: ProfileCheck) -> bool:
    request = profile.request("callback", payment, "COMPLETED")
    try:
        response = bounded_request(client, request.method, request.url, headers=list(request.headers),
                                   content=request.body)  # its answer read only up to harness.tls's bounds
    except httpx.HTTPError as exc:
        return result.add(False, "deliveries.callback", f"{request.method} {request.url}: {exc.__class__.__name__}")
    scheme = profile.spec.deliveries["callback"].signing.scheme
    answered = f"{request.method} {profile.spec.deliveries['callback'].path} signed {scheme} -> {response.status_code}"
    if response.status_code >= 300:
        return result.add(False, "deliveries.callback", f"{answered}: {response.text[:200]}")
    result.add(True, "deliveries.callback", answered)
    if profile.spec.answers is not None:
        try:
            body = response.json()
        except ValueError:
            body = None
        outcome = profile.outcome_of(body, response.status_code)
        result.add(outcome is not None, "answers",
                   f"outcome {outcome!r}" if outcome else f"no outcome in the answer ({response.text[:120]})")
    return True


def _read_back(profile: Profile, payment: Payment, client: httpx.Client) -> Observation:
    """The side effects and state once they settled (the profile's [settle], or a sink's quiet seconds), or else
    once a side effect of every kind appeared (bounded)."""
    if settle_for_sink(profile.spec) is not None:
        return observe_settled(profile, [payment], client)
    kinds = {e.kind for e in profile.spec.effects}
    deadline = time.monotonic() + WAIT_FOR_EFFECT
    while True:
        observation = observe(profile, [payment], client)
        if kinds <= {r.kind for r in _owned(observation, payment)} or time.monotonic() > deadline:
            return observation
        time.sleep(0.2)


def _evidence(observation: Observation, payment: Payment) -> Evidence:
    return Evidence([PlannedPayment(payment, True)], History(), observation)


def _owned(observation: Observation, payment: Payment) -> list:
    return _evidence(observation, payment).receipts_of(payment)


def _effects(profile: Profile, payment: Payment, observation: Observation, result: ProfileCheck) -> None:
    owned = _owned(observation, payment)
    for problem in observation.problems:
        result.add(False, "read back", problem.message)
    for miss in observation.rule_misses:
        result.add(False, miss.split(":", 1)[0], miss.split(":", 1)[1].strip())
    for i, effect in enumerate(profile.spec.effects):
        mine = [r for r in owned if r.kind == effect.kind and r.source == effect.source]
        seen = [r for r in observation.receipts if r.kind == effect.kind and r.source == effect.source]
        where = f"effects.{i} ({describe(effect)})"
        if not mine:
            sample = seen[0] if seen else None
            result.add(False, where, "no side effect belongs to the payment" + (
                f"; {len(seen)} read, the first {sample.name!r} has key {sample.key!r}, title {sample.title!r}, "
                f"text {(sample.text or '')[:80]!r}" if sample else "; none read at all"))
            continue
        record = mine[0]
        key = f"key {record.key!r} ({effect.rule('key').joins})" if record.keyed else "named by its content"
        result.add(True, where, f"{len(mine)} for the payment: {record.name} {key}")
        if effect.amount is not None:
            result.add(record.amount == payment.amount, f"effects.{i}.amount",
                       f"{record.amount} paise" + ("" if record.amount == payment.amount else
                                                   f", expected {payment.amount}"))


def _state(profile: Profile, payment: Payment, observation: Observation, result: ProfileCheck) -> None:
    section = profile.spec.state
    if section is None:
        result.add(True, "state", "not read (no [state]): the state checks will not be made")
        return
    state = observation.state.get(payment.id)
    if state is None:
        result.add(False, f"state ({section.source})", f"no record found by {section.match} = "
                                                        f"{payment.id if section.by == 'id' else payment.merchant_transaction_id!r}")
        return
    result.add(bool(state["paid"]), f"state.paid ({section.paid.field})",
               f"{state['paymentStatus']!r}" + ("" if state["paid"] else f", not one of {section.paid.values}"))
    if section.claim:
        result.add(bool(state["receiptGenerated"]), f"state.claim ({section.claim})", repr(state["receiptGenerated"]))
    if section.effect:
        result.add(state["receiptPath"] not in (None, ""), f"state.effect ({section.effect})", repr(state["receiptPath"]))
