"""Run the webhook probes against a service and judge each from what the service left behind.

First a *control*: a payment the gateway says is paid gets a valid COMPLETED, and must end paid with its
side effects. Without that, nothing a probe sees means anything (a mistyped secret makes every forged
delivery "rejected"), and every probe is ``unknown``. Then, for every probe that applies
(``harness.probe.probes``): a fresh payment of its own, the gateway simulator told what the gateway knows
of it, the setup (if any) sent and read back, then the attack sent and read back — one probe after
another, so a change is the last probe's unless it belongs to another probe's payment. A last read after
every probe catches what a service did late. The same readers as a run's oracle (``harness.observe``)
read state and side effects; side effects are told to their payment the oracle's way
(``harness.oracle.Evidence``).

What a probe may not do: mark an order paid, set its claim or its side-effect field, make a side effect
(for the state probes: un-pay an order, clear its claim or side effect, make a second one). Any other
move of the order's status is said in a note, never called a hole. Each probe ends ``rejected`` (every
attack answered, none with a 2xx, nothing changed), ``accepted, no change``, ``hole`` (the evidence says
what changed), ``consistent`` (the burst of contradictory deliveries left the service consistent; what
it ended with is said) or ``unknown`` (no answer, or the evidence could not be read). Exit 1 on any hole,
else 3 on any unknown, else 0.
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
from harness.report.write import keep_sink_records
from harness.run.session import RunConfig, RunSession
from harness.senders import fire
from harness.tls import bounded_request, http_client
from harness.version import __version__

from .probes import (
    CHANNEL, NOT_PAID, PAID, UNDERPAID, Delivery, Forger, NotApplicable, Probe, catalogue, check_names, scheme_facts,
    underpaid,
)

REJECTED, IGNORED, HOLE, CONSISTENT, UNKNOWN = "rejected", "accepted, no change", "hole", "consistent", "unknown"
EXIT_OK, EXIT_HOLE, EXIT_UNKNOWN = 0, 1, 3
ANSWER_SHOWN = 160  # characters of an answer's body the report keeps (after secrets are masked in all of it)
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
    kind: str = "unchanged"  # how it was judged (probes.Probe.kind)


@dataclass
class ProbeOptions:
    label: str | None = None
    report_dir: Path | None = None
    only: list[str] | None = None  # probe names to run (default: every one that applies)
    verify_tls: bool | str | None = None
    timeout: float | None = None  # seconds one delivery may take; None: the profile's [run] timeout, else 30


def plan_probes(profile: Profile, only: list[str] | None = None) -> tuple[list[Probe], list[NotApplicable]]:
    """The probes to run on ``profile`` and those left out (with why); HarnessError (exit 4) for a profile that
    cannot be probed, a name that is no probe, or nothing left to run. Nothing is started."""
    if missing := profile.cannot_run():
        raise HarnessError(missing)
    try:
        check_names(only)
        probes, skipped = catalogue(profile)
    except ValueError as exc:
        raise HarnessError(str(exc)) from None
    if only:
        skipped += [NotApplicable(p.name, "not asked for (--only)") for p in probes if p.name not in only]
        probes = [p for p in probes if p.name in only]
    if not probes:
        why = "; ".join(f"{s.name}: {s.reason}" for s in skipped if s.name in (only or [s.name]))
        raise HarnessError(f"none of the probes asked for applies to profile {profile.name!r} ({why})")
    return probes, skipped


def run_probes(profile: Profile, options: ProbeOptions | None = None, progress: Progress = no_progress) -> dict[str, Any]:
    """Probe ``profile``'s service and return the report (plain data, secrets masked; ``write_probe_report``
    writes it). The profile's recording sink and ``[service]`` are started as a run starts them (its records
    go to ``<label>-probe.sink.jsonl``, never a race's), and stopped on every path. HarnessError (exit 4) for
    a profile that cannot be probed or a service that cannot be reached."""
    options = options or ProbeOptions()
    probes, skipped = plan_probes(profile, options.only)
    if options.timeout is not None and not options.timeout > 0:
        raise HarnessError(f"the probe timeout must be above 0 seconds, not {options.timeout:g}")
    label = options.label or profile.name
    timeout = options.timeout or profile.spec.run.timeout or DEFAULT_TIMEOUT
    config = RunConfig(plan=Plan(payments=len(probes) + 1, duplicates=1), profile=profile, label=f"{label}-probe",
                       report_dir=options.report_dir, verify_tls=options.verify_tls, timeout=timeout)
    secrets = set(profile.secret_values())
    started = time.time()
    with RunSession(config) as session:
        session.start()  # the sink, then the service (told where the sink is)
        prober = _Prober(session.profile, timeout, progress, secrets)
        try:
            results, control, late = prober.run(probes)
        finally:
            prober.close()
        records = session.sink.describe().get("records") if session.sink is not None else None
    secrets |= prober.forger.valid_values
    report = _report(profile, label, results, skipped, started, prober.facts, control, late)
    if records:  # what reached the sink, its secrets masked where it is kept
        target = Path(options.report_dir) / f"{label}-probe.sink.jsonl" if options.report_dir else Path(records)
        report["sink_records"] = str(keep_sink_records(records, target, secrets))
    return mask_values(report, secrets)


class _Prober:
    def __init__(self, profile: Profile, timeout: float, progress: Progress, secrets: set[str]) -> None:
        self.profile, self.timeout, self.progress, self.secrets = profile, timeout, progress, secrets
        self.client = http_client(profile.tls_trust)
        self.forger = Forger(profile)
        self.facts = scheme_facts(self.forger)
        self.section = profile.spec.deliveries[CHANNEL]
        self.payments: list[Payment] = []
        self.by_transaction: dict[str, ProbeResult] = {}  # a payment's probe, for changes found later
        self.control_transaction = ""  # the control payment's: its side effects are meant to be

    def close(self) -> None:
        self.client.close()

    def run(self, probes: list[Probe]) -> tuple[list[ProbeResult], dict[str, Any], list[str]]:
        """(each probe's result, the control, changes after the last probe that belong to none of them)."""
        try:
            check_reachable(self.profile, self.client)
            mark_baseline(self.profile)
            amounts = [FIRST_AMOUNT + AMOUNT_STEP * i for i in range(len(probes) + 1)]
            self.payments = make_payments(self.profile.spec.payments, amounts, base_url=self.profile.base_url,
                                          client=self.client, progress=self.progress)
        except (TargetError, httpx.HTTPError) as exc:
            raise HarnessError(f"could not prepare payments on {self.profile.base_url}: {exc}") from None
        *mine, control_payment = self.payments
        self.control_transaction = control_payment.merchant_transaction_id
        observation = self._observe()
        control, observation = self._control(control_payment, observation)
        results = [ProbeResult(p.name, p.title, UNKNOWN, q.id, q.merchant_transaction_id, kind=p.kind)
                   for p, q in zip(probes, mine)]
        self.by_transaction = {r.transaction: r for r in results}
        if not control["ok"]:
            for result in results:
                result.evidence.append(f"not judged: {control['reason']}")
            return results, control, []
        for i, (probe, payment, result) in enumerate(zip(probes, mine, results)):
            self.progress("probing", i, len(probes))
            observation = self._probe(probe, payment, result, observation)
        self.progress("probing", len(probes), len(probes))
        return results, control, self._late(results, observation)

    # -- the control ---------------------------------------------------------------------------
    def _control(self, payment: Payment, before: Observation) -> tuple[dict[str, Any], Observation]:
        """A valid COMPLETED for a payment the gateway says is paid: it must end paid with its side effects."""
        control: dict[str, Any] = {"payment": payment.id, "transaction": payment.merchant_transaction_id, "ok": False}
        result = ProbeResult("control", "a valid COMPLETED for a payment the gateway says is paid", UNKNOWN)
        try:
            if self.section.gateway:
                tell_gateway(self.client, self.section, payment, PAID, channel=CHANNEL)
        except (TargetError, httpx.HTTPError) as exc:
            control["reason"] = f"the gateway simulator could not be told: {exc}"
            return control, before
        self._send([self.forger.valid(payment)], result, together=False, phase="control")
        after = self._observe()
        control["sent"] = result.sent
        state = after.state.get(payment.id)
        mine = self._owned(after, payment)
        kinds = after.effect_kinds if self.profile.spec.effects else []
        missing = [k for k in kinds if not mine.get(k)]
        control["ended"] = _ended(self._paid_field(), state, mine, self.profile.spec.state is not None)
        if problem := self._unreadable(after):
            control["reason"] = problem
        elif self.profile.spec.state is not None and not (state or {}).get("paid"):
            control["reason"] = (f"a valid COMPLETED did not pay the control payment (answered "
                                 f"{_answers(result.sent)}; ended {control['ended']}): are the profile's signing "
                                 f"settings and states the service's?")
        elif missing:
            control["reason"] = (f"a valid COMPLETED made no {', '.join(missing)} for the control payment "
                                 f"(answered {_answers(result.sent)}): the profile's [[effects]] read nothing of it")
        else:
            control["ok"] = True
        return control, after

    # -- one probe -----------------------------------------------------------------------------
    def _probe(self, probe: Probe, payment: Payment, result: ProbeResult, before: Observation) -> Observation:
        try:
            self._tell_gateway(probe, payment)
        except (TargetError, httpx.HTTPError) as exc:
            result.evidence.append(f"the gateway simulator could not be told: {exc}")
            return before
        if probe.setup is not None:
            self._send(probe.setup(self.forger, payment), result, together=False, phase="setup")
            before = self._observe()
        result.state_before = before.state.get(payment.id)
        attack = probe.attack(self.forger, payment)
        made_up = [str(d.request.meta["sent_for"]) for d in attack if "sent_for" in d.request.meta]
        records_before = {m: self._record(m) for m in made_up}
        self._send(attack, result, together=probe.together, phase="attack")
        after = self._observe()
        result.state_after = after.state.get(payment.id)
        if problem := self._unreadable(before) or self._unreadable(after):
            result.evidence.append(problem)
            return after
        judge = {"unchanged": self._judge_unchanged, "regression": self._judge_regression,
                 "burst": self._judge_burst}[probe.kind]
        judge(payment, before, after, result, made_up, records_before)
        if probe.name.startswith("unprotected-"):
            result.note = "the scheme cannot protect the body: only the gateway knows what was paid; " + \
                self._asked(payment)
        return after

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

    # -- sending and reading -------------------------------------------------------------------
    def _send(self, deliveries: list[Delivery], result: ProbeResult, *, together: bool, phase: str) -> None:
        history = History(sync="last-byte")
        groups = [deliveries] if together else [[d] for d in deliveries]
        for group in groups:
            fire([d.request for d in group], sync="last-byte", timeout=self.timeout, history=history,
                 warmup_path=self.profile.health_path, verify_tls=self.profile.tls_trust,
                 body_limit=self.profile.spec.run.answer_bytes)
        secrets = self.secrets | self.forger.valid_values  # masked in the whole answer before it is cut
        for delivery, event in zip(deliveries, history.events):
            result.sent.append(_sent(delivery, event, phase, secrets))

    def _observe(self) -> Observation:
        return observe_settled(self.profile, self.payments, self.client)

    def _record(self, transaction: str) -> dict | None | str:
        """The service's record of an order it never made (None: none), or why it could not be read. A 4xx for
        an id of a form the service never issues is no record; anything else unreadable is said."""
        section = self.profile.spec.state
        if section is None:
            return None
        try:
            states = read_state(section, [Payment(transaction, transaction, 1)], base_url=self.profile.base_url,
                                client=self.client, join_fields=set())
        except httpx.HTTPStatusError as exc:
            return None if 400 <= exc.response.status_code < 500 else f"answered {exc.response.status_code}"
        except Exception as exc:  # noqa: BLE001 - any other failure is said, never read as "no record"
            return f"{exc.__class__.__name__}"
        return states.get(transaction)

    def _unreadable(self, observation: Observation) -> str | None:
        """Why the observation cannot judge a probe (None: it can). A sink nothing has reached is expected when
        the service's only calls out come from deliveries that must change nothing."""
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

    def _owned(self, observation: Observation, payment: Payment) -> dict[str, list[str]]:
        """The payment's side effects, by kind."""
        mine: dict[str, list[str]] = {k: [] for k in observation.effect_kinds}
        for (kind, name), (_, owner) in self._effects(observation).items():
            if owner == payment.merchant_transaction_id:
                mine.setdefault(kind, []).append(name)
        return mine

    # -- judging -------------------------------------------------------------------------------
    def _judge_unchanged(self, payment: Payment, before: Observation, after: Observation, result: ProbeResult,
                         made_up: list[str], records_before: dict[str, Any]) -> None:
        old, new = before.state.get(payment.id), after.state.get(payment.id)
        if old is not None and old.get("paid"):  # a payment made paid already (a payments file's): nothing to move
            result.evidence.append("the order was already paid before the probe: a change could not show")
            return
        if any(self._owned(before, payment).values()):
            result.evidence.append("the order already had a side effect before the probe: a new one could not show")
            return
        holes, notes = forbidden_changes(old, new)
        for transaction in made_up:
            record, earlier = self._record(transaction), records_before.get(transaction)
            if isinstance(record, str) or isinstance(earlier, str):
                result.evidence.append(f"the record of the order it never made could not be read: "
                                       f"{record if isinstance(record, str) else earlier}")
                return
            if record is not None and (record.get("paid") or record.get("receiptGenerated")
                                       or record.get("receiptPath")) and record != earlier:
                holes.append(f"the service marked the order it never made ({transaction}) paid or claimed")
        holes += self._new_effects(before, after, made_up, result)
        settle(result, holes, notes)

    def _judge_regression(self, payment: Payment, before: Observation, after: Observation, result: ProbeResult,
                          made_up: list[str], records_before: dict[str, Any]) -> None:
        old, new = before.state.get(payment.id), after.state.get(payment.id)
        mine = [k for k, names in self._owned(before, payment).items() if names]
        if (old is not None and not old.get("paid")) or (old is None and not mine):
            shown = "no record" if old is None else f"{self._paid_field()} {old.get('paymentStatus')!r}"
            result.evidence.append(f"the valid COMPLETED delivery did not pay the order ({shown}): a regression "
                                   f"could not show")
            return
        holes, notes = regressions(old, new, self._paid_field())
        holes += self._new_effects(before, after, made_up, result)
        settle(result, holes, notes)

    def _judge_burst(self, payment: Payment, before: Observation, after: Observation, result: ProbeResult,
                     made_up: list[str], records_before: dict[str, Any]) -> None:
        state = after.state.get(payment.id)
        mine = self._owned(after, payment)
        has_state = self.profile.spec.state is not None
        result.ended = _ended(self._paid_field(), state, mine, has_state)
        paid = None if state is None else bool(state.get("paid"))
        status = "no record" if state is None else f"{self._paid_field()} {state.get('paymentStatus')!r}"
        problems = [f"{len(v)} {k}s for one order: {', '.join(sorted(v)[:4])}" for k, v in mine.items() if len(v) > 1]
        if paid is False:
            problems += [f"a {k} for an order that ended unpaid ({status})" for k, v in mine.items() if v]
        if paid is True and self.profile.spec.effects:
            problems += [f"ended paid with no {k}" for k, v in mine.items() if not v]
        problems += [line for line in self._new_effects(before, after, made_up, result)
                     if line.endswith("(no payment of this probe run)")]  # a second effect no key could join
        if any(s["status"] is None for s in result.sent if s["phase"] == "attack") and not problems:
            result.evidence.append("a delivery of the burst got no answer: " + _answers(result.sent))
            return
        result.evidence += problems
        result.outcome = HOLE if problems else CONSISTENT

    def _new_effects(self, before: Observation, after: Observation, made_up: list[str],
                     result: ProbeResult) -> list[str]:
        """The probe's new side effects, in words; one that belongs to another probe's payment is charged to that
        probe (it came late), not to this one."""
        old = self._effects(before)
        lines = []
        for key, (receipt, owner) in sorted(self._effects(after, made_up).items()):
            if key in old or (owner is not None and owner == self.control_transaction):
                continue  # the control's side effects (late ones too) are what a valid delivery makes
            other = self.by_transaction.get(owner or "")
            if other is not None and other is not result:
                _charge(other, f"later: a new {receipt.kind}: {receipt.name}")
                continue
            whose = ("the order the service never made" if owner in made_up else f"payment {owner}" if owner
                     else "no payment of this probe run")
            lines.append(f"a new {receipt.kind}: {receipt.name} ({whose})")
        return lines

    def _late(self, results: list[ProbeResult], last: Observation) -> list[str]:
        """Read everything once more after the last probe: a change a service made late is charged to the probe
        whose payment it touched; a new side effect that belongs to none of them is returned."""
        final = self._observe()
        if self._unreadable(final):
            return []
        unowned = self._new_effects(last, final, [], ProbeResult("", "", UNKNOWN))
        for result in results:
            if result.outcome in (UNKNOWN,) or result.state_after is None:
                continue
            new = final.state.get(result.payment)
            holes = (regressions(result.state_after, new, self._paid_field())[0] if result.kind == "regression"
                     else forbidden_changes(result.state_after, new)[0] if result.kind == "unchanged" else [])
            for line in holes:
                _charge(result, f"later: {line}")
        return unowned

    def _paid_field(self) -> str:
        return self.profile.spec.state.paid.field if self.profile.spec.state is not None else "state"


def settle(result: ProbeResult, holes: list[str], notes: list[str]) -> None:
    """The outcome of a probe that had to change nothing: a hole when anything forbidden changed; unknown when
    an attack got no answer (the service may still be at it, and "no answer" is not a refusal); else rejected
    or accepted, by the answers."""
    if notes:
        result.note = "; ".join(notes)
    if holes:
        result.outcome, result.evidence = HOLE, result.evidence + holes
        return
    attack = [s for s in result.sent if s["phase"] == "attack"]
    if any(s["status"] is None for s in attack):
        result.evidence.append("no answer, so the service may still be at it: " + _answers(attack))
        return
    result.outcome = IGNORED if any(200 <= s["status"] < 300 for s in attack) else REJECTED


def forbidden_changes(old: dict | None, new: dict | None) -> tuple[list[str], list[str]]:
    """(what a delivery that must change nothing may not have done, other moves worth a note) between two
    normalised states of an order: marking it paid, setting its claim or its side-effect field, or making its
    record vanish are forbidden; a status that moved without paying (CREATED -> PENDING, a flag the service
    keeps for rejected deliveries) is a note."""
    if old is None and new is None:
        return [], []
    if new is None:
        return ["the order's record is gone"], []
    if old is None:
        old = {}
    holes = []
    if not old.get("paid") and new.get("paid"):
        holes.append(f"paid: status {old.get('paymentStatus')!r} -> {new.get('paymentStatus')!r}")
    if not old.get("receiptGenerated") and new.get("receiptGenerated"):
        holes.append("claimed: its claim flag was set")
    if old.get("receiptPath") in (None, "") and new.get("receiptPath") not in (None, ""):
        holes.append(f"its side-effect field was set: {new.get('receiptPath')!r}")
    notes = [] if holes or old.get("paymentStatus") == new.get("paymentStatus") else [
        f"status {old.get('paymentStatus')!r} -> {new.get('paymentStatus')!r} (not paid)"]
    return holes, notes


def regressions(old: dict | None, new: dict | None, paid_field: str = "status") -> tuple[list[str], list[str]]:
    """(what a late FAILED or PENDING may not have done to a paid order, other moves worth a note): un-pay it,
    clear its claim or its side-effect field (a later delivery could then make a second side effect), or make
    its record vanish. A status that moved while the order stayed paid is a note."""
    if old is None:
        return [], []
    if new is None:
        return ["the order's record is gone"], []
    holes = []
    if old.get("paid") and not new.get("paid"):
        holes.append(f"un-paid: {paid_field} {old.get('paymentStatus')!r} -> {new.get('paymentStatus')!r}")
    if old.get("receiptGenerated") and not new.get("receiptGenerated"):
        holes.append("its claim flag was cleared: a later delivery could make a second side effect")
    if old.get("receiptPath") not in (None, "") and new.get("receiptPath") != old.get("receiptPath"):
        holes.append(f"its side-effect field changed: {old.get('receiptPath')!r} -> {new.get('receiptPath')!r}")
    notes = [] if holes or old.get("paymentStatus") == new.get("paymentStatus") else [
        f"{paid_field} {old.get('paymentStatus')!r} -> {new.get('paymentStatus')!r} (still paid)"]
    return holes, notes


def _charge(result: ProbeResult, line: str) -> None:
    result.evidence.append(line)
    result.outcome = HOLE


def _ended(paid_field: str, state: dict | None, mine: dict[str, list[str]], has_state: bool) -> str:
    counts = ", ".join(f"{len(v)} {k}" for k, v in mine.items())
    if not has_state:
        return counts
    status = "no record" if state is None else f"{paid_field} {state.get('paymentStatus')!r}"
    return f"{status}, {counts}" if counts else status


def _answers(sent: list[dict[str, Any]]) -> str:
    return ", ".join(str(s["status"]) if s["status"] is not None else f"no answer ({(s['error'] or '')[:60]})"
                     for s in sent) or "nothing sent"


def shown_answer(body: Any, secrets: set[str] | frozenset[str]) -> str:
    """An answer's body as the report keeps it: every secret masked in all of it first, then its first
    ``ANSWER_SHOWN`` characters (a cut made first could split a secret and leave half of it unmasked)."""
    text = body if isinstance(body, str) else json.dumps(body, default=str)
    return mask_values(printable(text or ""), secrets)[:ANSWER_SHOWN]


def _sent(delivery: Delivery, event: Event, phase: str, secrets: set[str]) -> dict[str, Any]:
    answer = shown_answer(event.body, secrets) if event.status is not None else ""
    return {"what": delivery.what, "phase": phase, "status": event.status,
            "error": mask_values(event.error, secrets) if event.error else None, "answer": answer,
            "headers": [{"header": s.header, "value": s.value, "forged": s.forged} for s in delivery.shown]}


def _report(profile: Profile, label: str, results: list[ProbeResult], skipped: list[NotApplicable], started: float,
            facts: dict[str, Any], control: dict[str, Any], late: list[str]) -> dict[str, Any]:
    holes = [r.name for r in results if r.outcome == HOLE]
    unknown = [r.name for r in results if r.outcome == UNKNOWN]
    exit_code = EXIT_HOLE if holes or late else EXIT_UNKNOWN if unknown else EXIT_OK
    if holes or late:
        summary = (f"HOLE: {len(holes)} of {len(results)} probes changed the service ({', '.join(holes)})" if holes
                   else f"HOLE: after the probes, {len(late)} side effect(s) appeared that belong to none of them")
    elif not control["ok"]:
        summary = f"UNKNOWN: {control['reason']}"
    elif unknown:
        summary = f"UNKNOWN: {len(unknown)} of {len(results)} probes could not be judged ({', '.join(unknown)})"
    else:
        summary = f"NO HOLE: none of {len(results)} probes changed the service"
    return {
        "kind": "probe", "label": label, "summary": summary, "exit_code": exit_code,
        "created": datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="seconds"),
        "elapsed_s": round(time.time() - started, 2), "harness_version": __version__,
        "target": profile.base_url, "origin": profile.origin, "scheme": facts, "control": control,
        "probes": [r.__dict__ for r in results], "late": late,
        "not_applicable": [{"name": s.name, "reason": s.reason} for s in skipped],
        "counts": {outcome: sum(r.outcome == outcome for r in results)
                   for outcome in (REJECTED, IGNORED, CONSISTENT, HOLE, UNKNOWN)},
    }
