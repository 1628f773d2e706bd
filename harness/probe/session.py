"""Run the webhook probes against a service and judge each from what the service left behind.

For every probe that applies (``harness.probe.probes``): a fresh payment of its own, the gateway
simulator told what the gateway knows of it, the setup (if any) sent and read back, then the attack
sent and read back — one probe after another, so every change the service makes is the last probe's.
The same readers as a run's oracle (``harness.observe``) read state and side effects; side effects
are told to their payment the oracle's way (``harness.oracle.Evidence``).

Each probe ends ``rejected`` (no 2xx, nothing changed), ``accepted, no change``, ``hole`` (the service
changed state or made a side effect: the evidence says which), ``consistent`` (the burst of
contradictory deliveries left the service consistent; what it ended with is said) or ``unknown``
(the evidence could not be read). Exit 1 on any hole, else 3 on any unknown, else 0.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

from harness.errors import HarnessError, TargetError
from harness.history import Event, History
from harness.observe.observation import Observation, ReceiptFile
from harness.observe.observer import mark_baseline, observe_settled
from harness.observe.sink import nothing_reached
from harness.observe.state import read_state
from harness.oracle.evidence import Evidence, PlannedPayment, effect_id
from harness.prepare.deliveries import check_reachable, tell_gateway
from harness.prepare.plan import Plan
from harness.profile import Payment, Profile
from harness.profile.payments import make_payments
from harness.progress import Progress, no_progress
from harness.redact import mask_values, printable
from harness.run.session import RunConfig, RunSession
from harness.senders import fire
from harness.tls import bounded_request, http_client
from harness.version import __version__

from .probes import (
    CHANNEL,
    NOT_PAID,
    PAID,
    UNDERPAID,
    Delivery,
    Forger,
    NotApplicable,
    Probe,
    catalogue,
    check_names,
    scheme_facts,
    underpaid,
)

REJECTED, IGNORED, HOLE, CONSISTENT, UNKNOWN = "rejected", "accepted, no change", "hole", "consistent", "unknown"
EXIT_OK, EXIT_HOLE, EXIT_UNKNOWN = 0, 1, 3
ANSWER_SHOWN = 160  # characters of an answer's body the report keeps
FIRST_AMOUNT, AMOUNT_STEP = 50_000, 1_111  # paise: each probe's payment has an amount of its own
DEFAULT_TIMEOUT = 30.0


@dataclass
class ProbeResult:
    """One probe as the report shows it (plain data)."""

    name: str
    title: str
    outcome: str
    payment: str = ""
    transaction: str = ""
    sent: list[dict[str, Any]] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    note: str = ""
    ended: str = ""
    state_before: dict[str, Any] | None = None
    state_after: dict[str, Any] | None = None


@dataclass
class ProbeOptions:
    label: str | None = None
    report_dir: Path | None = None
    only: list[str] | None = None  # probe names to run (default: every one that applies)
    verify_tls: bool | str | None = None
    timeout: float | None = None  # seconds one delivery may take; None: the profile's [run] timeout, else 30


def run_probes(profile: Profile, options: ProbeOptions | None = None, progress: Progress = no_progress) -> dict[str, Any]:
    """Probe ``profile``'s service and return the report (plain data; ``harness.probe.report`` writes it).

    The profile's recording sink and ``[service]`` are started as a run starts them, and stopped on every
    path. HarnessError (exit 4) for a profile that cannot be probed or a service that cannot be reached."""
    options = options or ProbeOptions()
    if missing := profile.cannot_run():
        raise HarnessError(missing)
    try:
        probes, skipped = catalogue(profile)
    except ValueError as exc:
        raise HarnessError(str(exc)) from None
    if options.only:
        try:
            check_names(options.only)
        except ValueError as exc:
            raise HarnessError(str(exc)) from None
        skipped += [NotApplicable(p.name, "not asked for (--only)") for p in probes if p.name not in options.only]
        probes = [p for p in probes if p.name in options.only]
    label = options.label or profile.name
    timeout = options.timeout or profile.spec.run.timeout or DEFAULT_TIMEOUT
    config = RunConfig(plan=Plan(payments=len(probes), duplicates=1), profile=profile, label=label,
                       report_dir=options.report_dir, verify_tls=options.verify_tls, timeout=timeout)
    started = time.time()
    with RunSession(config) as session:
        session.start()  # the sink, then the service (told where the sink is)
        prober = _Prober(session.profile, timeout, progress)
        try:
            results = prober.run(probes)
        finally:
            prober.close()
    report = _report(profile, label, results, skipped, started, prober.facts)
    return mask_values(report, profile.secret_values() | prober.forger.valid_values)


class _Prober:
    def __init__(self, profile: Profile, timeout: float, progress: Progress) -> None:
        self.profile, self.timeout, self.progress = profile, timeout, progress
        self.client = http_client(profile.tls_trust)
        self.forger = Forger(profile)
        self.facts = scheme_facts(self.forger)
        self.section = profile.spec.deliveries[CHANNEL]

    def close(self) -> None:
        self.client.close()

    def run(self, probes: list[Probe]) -> list[ProbeResult]:
        try:
            check_reachable(self.profile, self.client)
            mark_baseline(self.profile)
            amounts = [FIRST_AMOUNT + AMOUNT_STEP * i for i in range(len(probes))]
            payments = make_payments(self.profile.spec.payments, amounts, base_url=self.profile.base_url,
                                     client=self.client, progress=self.progress)
        except (TargetError, httpx.HTTPError) as exc:
            raise HarnessError(f"could not prepare payments on {self.profile.base_url}: {exc}") from None
        self.payments = payments
        observation = self._observe()
        results = []
        for i, (probe, payment) in enumerate(zip(probes, payments)):
            self.progress("probing", i, len(probes))
            result, observation = self._probe(probe, payment, observation)
            results.append(result)
        self.progress("probing", len(probes), len(probes))
        return results

    # -- one probe ---------------------------------------------------------------------------
    def _probe(self, probe: Probe, payment: Payment, before: Observation) -> tuple[ProbeResult, Observation]:
        result = ProbeResult(probe.name, probe.title, UNKNOWN, payment.id, payment.merchant_transaction_id)
        try:
            self._tell_gateway(probe, payment)
        except (TargetError, httpx.HTTPError) as exc:
            result.evidence.append(f"the gateway simulator could not be told: {exc}")
            return result, before
        if probe.setup is not None:
            self._send(probe.setup(self.forger, payment), result, together=False, phase="setup")
            before = self._observe()
        result.state_before = before.state.get(payment.id)
        attack = probe.attack(self.forger, payment)
        made_up = [d.request.meta["sent_for"] for d in attack if "sent_for" in d.request.meta]
        self._send(attack, result, together=probe.together, phase="attack")
        after = self._observe()
        result.state_after = after.state.get(payment.id)
        if problem := self._unreadable(before) or self._unreadable(after):
            result.evidence.append(problem)
            return result, after
        judge = {"unchanged": self._judge_unchanged, "regression": self._judge_regression,
                 "burst": self._judge_burst}[probe.kind]
        judge(probe, payment, before, after, result, made_up)
        if probe.name.startswith("unprotected-"):
            result.note = "the scheme cannot protect the body: only the gateway knows what was paid; " + \
                self._asked(payment)
        return result, after

    def _tell_gateway(self, probe: Probe, payment: Payment) -> None:
        if not self.section.gateway or probe.gateway is None:
            return
        if probe.gateway == UNDERPAID:
            tell_gateway(self.client, self.section, payment, "COMPLETED", amount=underpaid(payment), channel=CHANNEL)
        else:
            tell_gateway(self.client, self.section, payment, PAID if probe.gateway == PAID else NOT_PAID,
                         channel=CHANNEL)

    def _asked(self, payment: Payment) -> str:
        """Whether the service asked the gateway simulator about this payment (it counts status queries)."""
        if not self.section.gateway or not self.section.gateway_url:
            return "whether the service asked the gateway is not known (no gateway simulator in the profile)"
        url = f"{str(self.section.gateway_url).rstrip('/')}/sim/transactions/{payment.merchant_transaction_id}"
        try:
            queries = bounded_request(self.client, "GET", url).json().get("queries")
        except (httpx.HTTPError, ValueError, AttributeError):
            queries = None
        if not isinstance(queries, int):
            return "the gateway simulator does not say whether the service asked it"
        return (f"the service asked the gateway {queries} time(s) about this order" if queries else
                "the service never asked the gateway about this order")

    # -- sending and reading -----------------------------------------------------------------
    def _send(self, deliveries: list[Delivery], result: ProbeResult, *, together: bool, phase: str) -> None:
        history = History(sync="last-byte")
        groups = [deliveries] if together else [[d] for d in deliveries]
        for group in groups:
            fire([d.request for d in group], sync="last-byte", timeout=self.timeout, history=history,
                 warmup_path=self.profile.health_path, verify_tls=self.profile.tls_trust,
                 body_limit=self.profile.spec.run.answer_bytes)
        for delivery, event in zip(deliveries, history.events):
            result.sent.append(_sent(delivery, event, phase))

    def _observe(self) -> Observation:
        return observe_settled(self.profile, self.payments, self.client)

    def _has_record(self, transaction: str) -> bool:
        """Whether the service's state holds a record of an order it never made. A read that fails (a service
        answering 400 to an id of a form it never issues) is no record."""
        section = self.profile.spec.state
        if section is None:
            return False
        try:
            states = read_state(section, [Payment(transaction, transaction, 1)], base_url=self.profile.base_url,
                                client=self.client, join_fields=set())
        except Exception:  # noqa: BLE001 - any failure to read a record of an unknown id is no record of it
            return False
        return states.get(transaction) is not None

    def _unreadable(self, observation: Observation) -> str | None:
        """Why the observation cannot judge a probe (None: it can). A sink nothing has reached is expected here:
        a probe's deliveries must not reach it."""
        expected = nothing_reached(self.profile.spec, self.profile.sink, len(self.payments))
        problems = [p for p in observation.problems if p != expected]
        if problems:
            return f"the evidence could not be read: {problems[0].message}"
        if self.profile.spec.state is None and not self.profile.spec.effects:
            return "the profile reads neither state nor side effects: nothing can show a change"
        return None

    def _effects(self, observation: Observation, extra: list[str] = ()) -> dict[tuple[str, str], tuple[ReceiptFile, str | None]]:
        """(kind, side effect) -> (the side effect, the transaction it belongs to, or None)."""
        planned = [PlannedPayment(p, True) for p in self.payments]
        planned += [PlannedPayment(Payment(m, m, 1), False) for m in extra]
        evidence = Evidence(planned, History(), observation)
        return {(r.kind, effect_id(r)): (r, evidence.owner_of(r)) for r in observation.receipts}

    # -- judging -----------------------------------------------------------------------------
    def _judge_unchanged(self, probe: Probe, payment: Payment, before: Observation, after: Observation,
                         result: ProbeResult, made_up: list[str]) -> None:
        old, new = before.state.get(payment.id), after.state.get(payment.id)
        if old is not None and old.get("paid"):  # a payment made paid already (a payments file's): nothing to move
            result.evidence.append("the order was already paid before the probe: a change could not show")
            return
        changes = _state_changes(old, new)
        for transaction in made_up:
            if self._has_record(transaction):
                changes.append(f"the service made a record for the order it never made ({transaction})")
        changes += self._new_effects(before, after, made_up)
        _settle(result, changes)

    def _judge_regression(self, probe: Probe, payment: Payment, before: Observation, after: Observation,
                          result: ProbeResult, made_up: list[str]) -> None:
        old, new = before.state.get(payment.id), after.state.get(payment.id)
        mine = [k for k, (_, owner) in self._effects(before).items() if owner == payment.merchant_transaction_id]
        if (old is not None and not old.get("paid")) or (old is None and not mine):
            shown = "no record" if old is None else f"{self._paid_field()} {old.get('paymentStatus')!r}"
            result.evidence.append(f"the valid COMPLETED delivery did not pay the order ({shown}): a regression "
                                   f"could not show")
            return
        changes = []
        if old is not None and new is not None and old.get("paid") and not new.get("paid"):
            changes.append(f"un-paid: {self._paid_field()} {old.get('paymentStatus')!r} -> {new.get('paymentStatus')!r}")
        elif old is not None and new is None:
            changes.append("the order's record is gone")
        changes += self._new_effects(before, after, made_up)
        _settle(result, changes)
        if old is not None and new is not None and old.get("paymentStatus") != new.get("paymentStatus") \
                and result.outcome != HOLE:
            result.note = f"{self._paid_field()} {old.get('paymentStatus')!r} -> {new.get('paymentStatus')!r} " \
                          f"(still paid)"

    def _judge_burst(self, probe: Probe, payment: Payment, before: Observation, after: Observation,
                     result: ProbeResult, made_up: list[str]) -> None:
        state = after.state.get(payment.id)
        kinds = after.effect_kinds or sorted({r.kind for r in after.receipts}) or ["receipt"]
        mine: dict[str, list[str]] = {k: [] for k in kinds}
        for (kind, name), (_, owner) in self._effects(after).items():
            if owner == payment.merchant_transaction_id:
                mine.setdefault(kind, []).append(name)
        counts = ", ".join(f"{len(v)} {k}" for k, v in mine.items())
        paid = None if state is None else bool(state.get("paid"))
        status = "no record" if state is None else f"{self._paid_field()} {state.get('paymentStatus')!r}"
        result.ended = f"{status}, {counts}" if self.profile.spec.state is not None else counts
        problems = [f"{len(v)} {k}s for one order: {', '.join(sorted(v)[:4])}" for k, v in mine.items() if len(v) > 1]
        if paid is False:
            problems += [f"a {k} for an order that ended unpaid ({status})" for k, v in mine.items() if v]
        if paid is True and self.profile.spec.effects:
            problems += [f"ended paid with no {k}" for k, v in mine.items() if not v]
        result.evidence += problems
        result.outcome = HOLE if problems else CONSISTENT

    def _new_effects(self, before: Observation, after: Observation, made_up: list[str]) -> list[str]:
        old = self._effects(before)
        lines = []
        for key, (receipt, owner) in sorted(self._effects(after, made_up).items()):
            if key in old:
                continue
            whose = ("the order the service never made" if owner in made_up else f"payment {owner}" if owner
                     else "no payment of this probe run")
            lines.append(f"a new {receipt.kind}: {receipt.name} ({whose})")
        return lines

    def _paid_field(self) -> str:
        return self.profile.spec.state.paid.field if self.profile.spec.state is not None else "state"


def _settle(result: ProbeResult, changes: list[str]) -> None:
    """The outcome of a probe that had to change nothing: a hole when anything changed, else by the answers."""
    if changes:
        result.outcome, result.evidence = HOLE, result.evidence + changes
        return
    accepted = [s for s in result.sent if s["phase"] == "attack" and s["status"] is not None
                and 200 <= s["status"] < 300]
    result.outcome = IGNORED if accepted else REJECTED


def _state_changes(old: dict | None, new: dict | None) -> list[str]:
    if old is None and new is None:
        return []
    if old is None or new is None:
        return [f"the order's record {'appeared' if old is None else 'is gone'}"]
    changes = []
    for key, label in (("paymentStatus", "status"), ("paid", "paid"), ("receiptGenerated", "claim"),
                       ("receiptPath", "side effect field")):
        if old.get(key) != new.get(key):
            changes.append(f"{label}: {old.get(key)!r} -> {new.get(key)!r}")
    return changes


def _sent(delivery: Delivery, event: Event, phase: str) -> dict[str, Any]:
    body = event.body if isinstance(event.body, str) else json.dumps(event.body, default=str)
    return {"what": delivery.what, "phase": phase,
            "status": event.status, "error": event.error,
            "answer": printable(body or "")[:ANSWER_SHOWN] if event.status is not None else "",
            "headers": [{"header": s.header, "value": s.value, "forged": s.forged} for s in delivery.shown]}


def _report(profile: Profile, label: str, results: list[ProbeResult], skipped: list[NotApplicable], started: float,
            facts: dict[str, Any]) -> dict[str, Any]:
    holes = [r.name for r in results if r.outcome == HOLE]
    unknown = [r.name for r in results if r.outcome == UNKNOWN]
    exit_code = EXIT_HOLE if holes else EXIT_UNKNOWN if unknown else EXIT_OK
    if holes:
        summary = f"HOLE: {len(holes)} of {len(results)} probes changed the service ({', '.join(holes)})"
    elif unknown:
        summary = f"UNKNOWN: {len(unknown)} of {len(results)} probes could not be judged ({', '.join(unknown)})"
    else:
        summary = f"NO HOLE: none of {len(results)} probes changed the service"
    return {
        "kind": "probe", "label": label, "summary": summary, "exit_code": exit_code,
        "created": datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="seconds"),
        "elapsed_s": round(time.time() - started, 2), "harness_version": __version__,
        "target": profile.base_url, "origin": profile.origin, "scheme": facts,
        "probes": [r.__dict__ for r in results],
        "not_applicable": [{"name": s.name, "reason": s.reason} for s in skipped],
        "counts": {outcome: sum(r.outcome == outcome for r in results)
                   for outcome in (REJECTED, IGNORED, CONSISTENT, HOLE, UNKNOWN)},
    }
