"""Target profiles: one file that describes a service's contract, and what a run does with it.

``load_profile("shop.toml")`` (or ``"reference"``) gives a ``Profile``: how to get payments, each
delivery channel rendered and signed, what answers say, where side effects and state are. The run
session, the swarm and the oracle use a Profile and nothing else of the service. The file format
is in docs/profiles.md; a legacy target file (``Target``) becomes a Profile with ``as_profile``.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable

import httpx

from ..burst import PreparedRequest
from ..observe import Observation, Problem
from ..plan import Plan
from ..redact import MASK, is_secret_key
from ..target import Payment, Target, TargetError
from .deliveries import Channel
from .effects import describe, existing_ids, read_effects
from .loader import BUILT_IN, ProfileError, load_profile, parse_profile
from .payments import make_payments
from .schema import ProfileFile
from .state import read_state

__all__ = ["BUILT_IN", "Profile", "ProfileError", "as_profile", "load_profile", "parse_profile"]

Progress = Callable[[str, int, int], None]
UNSETTLED = "unsettled"
# A profile's outcome words -> the oracle's (the reference service's answers use these).
_OUTCOMES = {"generated": "generated", "already": "already_generated", "failed": "failed"}  # Problem kind: side effects or state were still changing when the wait ended


def _no_progress(stage: str, done: int, total: int) -> None:
    pass


class Profile:
    """A service's contract, ready to use: built from a validated ``ProfileFile``."""

    def __init__(self, spec: ProfileFile) -> None:
        self.spec = spec
        self.name, self.base_url = spec.name, spec.base_url
        self.health_path, self.metrics_path, self.faults_path = spec.health_path, spec.metrics_path, spec.faults_path
        self.channels = {name: Channel(name, section, spec.base_url) for name, section in spec.deliveries.items()}
        self._baseline: set[str] | None = None  # side effects that existed before this run's deliveries
        # The recording sink a run started (harness.sink.Sink), or a finished run's kept records (RecordedSink).
        self.sink: Any = None

    # -- what the run session asks -----------------------------------------------------------
    def url(self, path: str, payment: Payment | None = None) -> str:
        if payment is not None:
            path = path.replace("{id}", payment.id).replace("{transaction}", payment.merchant_transaction_id)
            path = path.replace("{merchantTransactionId}", payment.merchant_transaction_id)
        return self.base_url.rstrip("/") + path

    def with_base_url(self, base_url: str) -> "Profile":
        return Profile(self.spec.model_copy(update={"base_url": base_url}))

    @property
    def tls_trust(self) -> bool | str:
        """How this service's certificate is trusted (``harness.tls.Trust``): True, a CA file, or False."""
        return (self.spec.ca_file or True) if self.spec.verify_tls else False

    def with_tls_trust(self, trust: bool | str) -> "Profile":
        """The same contract, trusting the certificate as ``trust`` says (``--insecure``, ``--ca-file``)."""
        ca_file = trust if isinstance(trust, str) else None
        return Profile(self.spec.model_copy(update={"verify_tls": bool(trust), "ca_file": ca_file}))

    def channel_path(self, channel: str) -> str:
        return self.spec.deliveries[channel].path

    def binds_time(self, channel: str | None) -> bool:
        """Whether the channel's signing scheme covers a timestamp (its requests must be signed when sent)."""
        return channel in self.channels and self.channels[channel].scheme.binds_time

    @property
    def receipts_dir(self) -> str | None:
        """The first files source's directory (what a swarm warns about when there is none)."""
        dirs = [e.dir for e in self.spec.effects if e.source == "files"]
        return dirs[0] if dirs else ("" if self.spec.effects else None)

    @property
    def mongo_uri(self) -> str | None:
        return self.spec.state.uri if self.spec.state and self.spec.state.source == "mongo" else None

    def check_reachable(self, client: httpx.Client) -> None:
        try:
            client.get(self.url(self.health_path), timeout=5.0)
        except httpx.HTTPError as exc:
            raise TargetError(f"{self.base_url} is unreachable: {exc.__class__.__name__}: {exc}") from None

    def prepare_payments(self, plan: Plan, client: httpx.Client, progress: Progress = _no_progress) -> list[Payment]:
        """The plan's payments made the profile's way (and a gateway simulator told which are paid)."""
        for channel in plan.channel_mix:
            if plan.channel_mix[channel] > 0 and channel not in self.channels:
                raise TargetError(f"the plan sends on {channel!r} but the profile has no deliveries.{channel}")
        payments = make_payments(self.spec.payments, plan.amounts(), base_url=self.base_url, client=client,
                                 progress=progress)
        verify = self.spec.deliveries.get("verify")
        if plan.uses_verify() and verify is not None and verify.gateway:
            for payment in payments[:plan.payments]:
                self._tell_gateway(client, verify, payment)
        return payments

    def _tell_gateway(self, client: httpx.Client, section: Any, payment: Payment) -> None:
        if not section.gateway_url:
            raise TargetError("deliveries.verify.gateway_url is empty: verify calls need the PhonePe status API "
                              "simulator the service asks")
        response = client.put(f"{str(section.gateway_url).rstrip('/')}/sim/transactions/{payment.merchant_transaction_id}",
                              json={"amount": payment.amount, "state": "COMPLETED"})
        if response.status_code != 200:
            raise TargetError(f"gateway simulator answered {response.status_code}: {response.text[:300]}")

    def request(self, channel: str, payment: Payment, state: str = "COMPLETED") -> PreparedRequest:
        return self.channels[channel].request(payment, state)

    def callback_request(self, payment: Payment, state: str = "COMPLETED") -> PreparedRequest:
        return self.request("callback", payment, state)

    def verify_request(self, payment: Payment) -> PreparedRequest:
        return self.request("verify", payment, "COMPLETED")

    # -- reading answers ---------------------------------------------------------------------
    @property
    def describes_answers(self) -> bool:
        return self.spec.answers is not None and (self.spec.answers.field is not None or bool(self.spec.answers.status))

    def outcome_of(self, body: Any, status: int | None = None) -> str | None:
        """What an answer says happened (``generated``, ``already``, ``failed``, or the service's own word)."""
        answers = self.spec.answers
        if answers is None:
            return None
        if answers.field is not None:
            from .template import dig

            value = dig(body, answers.field) if isinstance(body, (dict, list)) else None
            if value is not None:
                for outcome in ("generated", "already", "failed"):
                    if value in getattr(answers, outcome):
                        return _OUTCOMES[outcome]
                return str(value)
        for outcome, codes in answers.status.items():
            if status in codes:
                return _OUTCOMES.get(outcome, outcome)
        return None

    def injected_fault_of(self, body: Any) -> str | None:
        field = self.spec.answers.injected_fault_field if self.spec.answers else None
        if not field or not isinstance(body, dict):
            return None
        value = body.get(field)
        return str(value) if value else None

    # -- reading back ------------------------------------------------------------------------
    def _join_fields(self) -> set[str]:
        fields = set()
        for effect in self.spec.effects:
            key = effect.rule("key")
            if key is not None and key.joins.startswith("state."):
                fields.add(key.joins.removeprefix("state."))
        return fields

    @property
    def baseline(self) -> set[str] | None:
        """Side effects present before the run's deliveries (None: not listed)."""
        return self._baseline

    @baseline.setter
    def baseline(self, ids: set[str] | None) -> None:
        self._baseline = ids

    def mark_baseline(self) -> None:
        """Remember which side effects exist before the run sends anything (names only, nothing is read).

        A service-assigned key (a receipt number) that joins no payment is then told apart: an effect
        that was there before is another run's; one that appeared during this run belongs to no payment.
        """
        if not any(e.rule("key") is not None and e.rule("key").joins.startswith("state.") for e in self.spec.effects):
            return
        baseline: set[str] = set()
        for effect in self.spec.effects:
            ids = existing_ids(effect)
            if ids is None:  # a source that cannot be listed: orphans cannot be told from another run's
                self._baseline = None
                return
            baseline |= ids
        self._baseline = baseline

    def observe(self, payments: list[Payment], client: httpx.Client) -> Observation:
        """Every side-effect source and the state, read as they are now."""
        files = [e.dir for e in self.spec.effects if e.source == "files"]
        obs = Observation(receipts_dir=files[0] if files else None)
        obs.baseline = self._baseline
        obs.effect_sources = [describe(e) for e in self.spec.effects]
        obs.effect_kinds = sorted({e.kind for e in self.spec.effects})
        obs.answers_described = self.describes_answers
        for i, effect in enumerate(self.spec.effects):
            records, problems = read_effects(effect, self.base_url, client, sink=self.sink)
            obs.receipts += records
            obs.problems += problems
            keyed = [r for r in records if r.keyed and r.readable and r.is_final]
            if keyed and all(r.key is None for r in keyed):
                obs.rule_misses.append(_rule_miss(i, effect, keyed))
        from .sink_source import nothing_reached

        if silent := nothing_reached(self.spec, self.sink, len(payments)):
            obs.problems.append(silent)
        if self.spec.state is None:
            obs.state_source = "none"
            return obs
        state = self.spec.state
        obs.state_fields = {"paid": state.paid.field, "claim": state.claim, "effect": state.effect,
                            "effect_is": state.effect_is}
        try:
            obs.state = read_state(state, payments, base_url=self.base_url, client=client,
                                   join_fields=self._join_fields())
            obs.state_source = "mongodb" if state.source == "mongo" else "http"
        except Exception as exc:  # any failure to read state makes the state checks unknown, never a pass
            from ..observe import STATE
            from ..redact import redact_text
            from .effects import _no_userinfo

            detail = _no_userinfo(redact_text(str(exc)))[:200]
            obs.problems.append(Problem(STATE, f"cannot read state: {exc.__class__.__name__}: {detail}"))
        return obs

    def observe_settled(self, payments: list[Payment], client: httpx.Client,
                        progress: Progress = _no_progress) -> Observation:
        """``observe``, after waiting (bounded) until side effects and state stop changing, when the profile asks."""
        from .sink_source import settle_for_sink, sink_quiet

        settle = settle_for_sink(self.spec)  # the profile's [settle], or the sink's quiet seconds
        if settle is None:
            return self.observe(payments, client)
        started = time.monotonic()
        last, since = None, started
        while True:
            obs = self.observe(payments, client)
            now = time.monotonic()
            mark = _fingerprint(obs)
            if mark != last:
                last, since = mark, now
            elif now - since >= settle.quiet and sink_quiet(self.spec, self.sink):
                obs.settled = True
                progress("settling", 1, 1)
                return obs
            if now - started >= settle.timeout:
                obs.settled = False
                obs.problems.append(Problem(UNSETTLED, f"side effects or state still changed after {settle.timeout:g} s "
                                                       f"(settle.timeout)"))
                return obs
            progress("settling", int(min(now - since, settle.quiet) * 1000), int(settle.quiet * 1000))
            time.sleep(settle.interval)

    # -- plain data --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The profile as data, every secret masked (reports carry it)."""
        return _masked(self.spec.model_dump(mode="json", by_alias=True, exclude_none=True))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "profile", *, reading_only: bool = False) -> "Profile":
        """A profile from plain data; ``reading_only``: from a report, whose masked credentials cannot sign."""
        if reading_only:
            data = {**data, "deliveries": {name: {**channel, "signing": {"scheme": "none"}}
                                           for name, channel in data.get("deliveries", {}).items()}}
        return Profile(parse_profile(data, source))


_PUBLIC_HEADERS = frozenset({"content-type", "accept", "user-agent", "accept-encoding", "content-encoding"})
_PUBLIC_SIGNING = frozenset({"scheme", "salt_index", "header", "hash", "encoding", "signed", "prefix",
                             "timestamp_header", "timestamp_unit"})


def _masked(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        if key == "signing":  # every setting of a scheme is a credential unless known not to be
            return {k: v if k in _PUBLIC_SIGNING else MASK for k, v in value.items()}
        if key == "headers":  # a header may carry any credential (X-Auth-Key, X-Client-Key, ...)
            return {k: v if k.lower() in _PUBLIC_HEADERS else MASK for k, v in value.items()}
        return {k: _masked(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v, key) for v in value]
    return MASK if key and is_secret_key(key) and value not in (None, "") else value


def _rule_miss(index: int, effect: Any, records: list) -> str:
    """One line saying which key rule found nothing, and what it looked at instead."""
    if effect.source == "sink":
        from .sink_source import sink_rule_miss

        return sink_rule_miss(index, effect, records)
    rule = effect.rule("key")
    first = records[0]
    if effect.source == "files" and rule.from_ != "json":
        seen = {"name": first.name, "subject": first.subject, "title": first.title,
                "text": (first.text or "")[:80]}[rule.from_]
        how = f"pattern {rule.pattern!r} over the {rule.from_}"
    else:
        seen = {k: v for k, v in list((first.data or {}).items())[:8]}
        how = f"field {rule.field!r}" + (f" with pattern {rule.pattern!r}" if rule.pattern else "")
    from ..redact import redact, redact_text

    return redact_text(f"effects.{index}.key: {how} matched none of the {len(records)} side effect(s) read from "
                       f"{describe(effect)}; the first ({first.name}) has: {redact(seen)!r}"[:400])


def _fingerprint(obs: Observation) -> tuple:
    effects = tuple(sorted((r.source, r.name, r.size, r.key or "", r.readable) for r in obs.receipts))
    state = tuple(sorted((pid, json.dumps(s, sort_keys=True, default=str)) for pid, s in obs.state.items()))
    return effects, state, tuple(p.message for p in obs.problems)


def as_profile(target: "Target | Profile") -> Profile:
    """A Profile for either form of a service's description (a legacy Target file becomes one)."""
    if isinstance(target, Profile):
        return target
    from .reference import profile_of_target

    return profile_of_target(target)

