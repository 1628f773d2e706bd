"""A service's contract, ready to use: the ``Profile`` every stage of a run takes.

Built from a validated profile file (``load_profile``), a legacy target description
(``harness.profile.legacy``) or a report's config (``Profile.from_dict``): how each delivery is
rendered and signed, what an answer says, where side effects and state are. ``origin`` says where
the description came from, for the report. The stages that read the service back
(``harness.observe``) and prepare payments (``harness.prepare``) take a Profile and nothing else.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from harness.errors import TargetError
from harness.profile.deliveries import Channel
from harness.profile.schema import parse_profile
from harness.profile.payments import Payment
from harness.profile.schema import ProfileFile
from harness.profile.template import dig, placeholders_in
from harness.redact import (
    MASK, MIN_SECRET_LENGTH, credential_header, is_secret_key, redact_uris, uri_credentials, without_userinfo,
)
from harness.senders.base import PreparedRequest
from harness.tls import AnswerUnbounded, bounded_request

# A profile's outcome words -> the oracle's (the reference service's answers use these).
OUTCOMES = {"generated": "generated", "already": "already_generated", "failed": "failed"}


class Profile:
    """A service's contract, ready to use: built from a validated ``ProfileFile``."""

    def __init__(self, spec: ProfileFile, origin: dict[str, Any] | None = None) -> None:
        self.spec = spec
        # Where this description came from (a profile file, a built-in, --target URL, a target file,
        # a report), as the report records it.
        self.origin: dict[str, Any] = origin or {"from": "profile", "name": spec.name}
        self.name, self.base_url = spec.name, spec.base_url or ""  # "": an audit-only profile that reads no HTTP
        self.health_path, self.metrics_path, self.faults_path = spec.health_path, spec.metrics_path, spec.faults_path
        self.channels = {name: Channel(name, section, spec.base_url) for name, section in spec.deliveries.items()}
        self._baseline: set[str] | None = None  # side effects that existed before this run's deliveries
        # The recording sink a run started (harness.sink.Sink), or a finished run's kept records (RecordedSink).
        self.sink: Any = None

    def cannot_run(self) -> str | None:
        """Why this profile cannot drive a run (an audit-only profile: no [payments], no [deliveries]); None: it can."""
        if self.spec.payments is None or not self.spec.deliveries:
            return (f"profile {self.name!r} is audit-only: a run needs [payments] (how a payment is made) and "
                    f"[deliveries.callback] (how the gateway tells the service); `race-harness audit --profile` "
                    f"reads its [[effects]] and [state] as they are")
        return None

    # -- what the run session asks -----------------------------------------------------------
    def url(self, path: str, payment: Payment | None = None) -> str:
        if payment is not None:
            path = path.replace("{id}", payment.id).replace("{transaction}", payment.merchant_transaction_id)
            path = path.replace("{merchantTransactionId}", payment.merchant_transaction_id)
        return self.base_url.rstrip("/") + path

    def with_base_url(self, base_url: str) -> "Profile":
        return Profile(self.spec.model_copy(update={"base_url": base_url}), self.origin)

    def with_service_env(self, env: dict[str, str]) -> "Profile":
        """The same contract, its service started with ``env`` added (e.g. the sink's address and proxy)."""
        if self.spec.service is None or not env:
            return self
        service = self.spec.service.model_copy(update={"env": {**env, **self.spec.service.env}})
        changed = Profile(self.spec.model_copy(update={"service": service}), self.origin)
        changed.baseline, changed.sink = self.baseline, self.sink
        return changed

    @property
    def tls_trust(self) -> bool | str:
        """How this service's certificate is trusted (``harness.tls.Trust``): True, a CA file, or False."""
        return (self.spec.ca_file or True) if self.spec.verify_tls else False

    def with_tls_trust(self, trust: bool | str) -> "Profile":
        """The same contract, trusting the certificate as ``trust`` says (``--insecure``, ``--ca-file``)."""
        ca_file = trust if isinstance(trust, str) else None
        return Profile(self.spec.model_copy(update={"verify_tls": bool(trust), "ca_file": ca_file}), self.origin)

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
        try:  # its answer read only up to harness.tls's bounds: an endless health answer is a failure too
            bounded_request(client, "GET", self.url(self.health_path), timeout=5.0)
        except httpx.HTTPError as exc:
            # Named without its credentials: a base_url may carry user:password@ (and the error may repeat it).
            failed = "answered its health check without bound" if isinstance(exc, AnswerUnbounded) else "is unreachable"
            raise TargetError(f"{without_userinfo(self.base_url)} {failed}: {exc.__class__.__name__}: "
                              f"{redact_uris(str(exc))}") from None

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
            value = dig(body, answers.field) if isinstance(body, (dict, list)) else None
            if value is not None:
                for outcome in ("generated", "already", "failed"):
                    if value in getattr(answers, outcome):
                        return OUTCOMES[outcome]
                return str(value)
        for outcome, codes in answers.status.items():
            if status in codes:
                return OUTCOMES.get(outcome, outcome)
        return None

    def injected_fault_of(self, body: Any) -> str | None:
        field = self.spec.answers.injected_fault_field if self.spec.answers else None
        if not field or not isinstance(body, dict):
            return None
        value = body.get(field)
        return str(value) if value else None

    # -- reading back ------------------------------------------------------------------------
    def join_fields(self) -> set[str]:
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

    # -- plain data --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The profile as data, every secret masked (reports carry it)."""
        return _masked(self.spec.model_dump(mode="json", by_alias=True, exclude_none=True))

    def secret_values(self) -> frozenset[str]:
        """Every secret this profile holds, as text, for masking wherever it appears (``harness.redact.mask_values``):
        what ``to_dict`` masks — signing settings, credential headers, secret-named fields anywhere (a
        ``${ENV}`` value placed in one included) — and the credentials in its URIs. Values shorter than
        ``MIN_SECRET_LENGTH`` are left out, and so are settings that name rather than prove (a PhonePe v2
        ``username``, a ``header_prefix``), and templates still holding a per-request ``{placeholder}``."""
        found: set[str] = set()
        _collect_secrets(self.spec.model_dump(mode="json", by_alias=True, exclude_none=True), "", found)
        return frozenset(v for v in found if len(v) >= MIN_SECRET_LENGTH and v != MASK)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "profile", *, reading_only: bool = False) -> "Profile":
        """A profile from plain data; ``reading_only``: from a report, whose masked credentials cannot sign."""
        if reading_only:
            data = {**data, "deliveries": {name: {**channel, "signing": {"scheme": "none"}}
                                           for name, channel in data.get("deliveries", {}).items()}}
        return Profile(parse_profile(data, source), {"from": source})

_PUBLIC_SIGNING = frozenset({"scheme", "salt_index", "header", "hash", "encoding", "signed", "prefix",
                             "timestamp_header", "timestamp_unit"})


def _masked(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        if key == "signing":  # every setting of a scheme is a credential unless known not to be
            return {k: v if k in _PUBLIC_SIGNING else MASK for k, v in value.items()}
        if key == "headers":  # credentials (X-Auth-Key, X-Client-Key, a session), not ids (X-Razorpay-Event-Id)
            return {k: MASK if credential_header(k) and v not in (None, "") else v for k, v in value.items()}
        return {k: _masked(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v, key) for v in value]
    return MASK if key and is_secret_key(key) and value not in (None, "") else value


# Signing settings that identify rather than prove: masked in the report's copy of the profile (``_masked``)
# but not searched for by value ("race-harness" or "webhook" would be masked all over a report).
_NAMING_SIGNING = _PUBLIC_SIGNING | {"username", "header_prefix"}
# An Authorization-style value's scheme word: the credential is what follows it.
_AUTH_SCHEME = re.compile(r"^(?:bearer|basic|digest|token)\s+(?P<credential>\S.*)$", re.IGNORECASE)


def _collect_secrets(value: Any, key: str, found: set[str], secret: bool = False) -> None:
    """Add to found every secret value inside value (``_masked``'s rule: what it masks, and URI credentials)."""
    if isinstance(value, dict):
        for k, v in value.items():
            if key == "signing":
                _collect_secrets(v, k, found, k not in _NAMING_SIGNING)
            elif key == "headers":
                _collect_secrets(v, k, found, credential_header(k))
            else:
                _collect_secrets(v, k, found, is_secret_key(k))
    elif isinstance(value, list):
        for v in value:
            _collect_secrets(v, key, found, secret)
    elif isinstance(value, str):
        found |= uri_credentials(value)
        if secret and not placeholders_in(value):
            found.add(value)
            if (auth := _AUTH_SCHEME.match(value)) is not None:
                found.add(auth["credential"])
    elif secret and isinstance(value, (int, float)) and not isinstance(value, bool):
        found.add(str(value))
