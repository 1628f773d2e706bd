"""The profile file's schema: every section as a pydantic model, so a mistake names its field.

The models hold the file as written (after ``${ENV}`` expansion); ``harness.profile.Profile`` is
what a run uses. The format is documented in docs/profiles.md. ``parse_profile`` validates plain
data against it and names the first wrong field (and its line in the file).
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from harness.errors import ProfileError, TemplateError
from harness.profile.patterns import PatternError, compile_pattern
from harness.profile.template import check_placeholders, expand_env, placeholders_in
from harness.signing import SCHEMES, scheme

PROFILE_VERSION = 1
STATES = ("COMPLETED", "FAILED", "PENDING")
__all__ = ["AnswersSection", "DeliverySection", "EffectSection", "FieldRule", "FileRule", "PROFILE_VERSION",
           "HooksSection", "LinkSection", "PaidSection", "PaymentsSection", "ProfileFile", "REDELIVERY_SCHEDULES",
           "RedeliverySection", "RunSection", "ServiceSection", "RuleSection", "STATES", "SettleSection",
           "SigningSection", "SinkRule", "SinkSection", "StateSection", "TargetEntry", "TargetsSection"]


# -- what every section shares ------------------------------------------------------------

class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def checked_regex(value: str | None) -> str | None:
    """A rule's pattern, compiled as a run will search it (bounded, on RE2): refused here, at load, if it cannot be."""
    if value is None:
        return None
    try:
        compiled = compile_pattern(value)
    except PatternError as exc:
        raise ValueError(str(exc)) from None
    if compiled.groups > 1:
        raise ValueError("a key pattern has at most one group (the part that is the key)")
    return value


def checked_mongo_uri(value: str | None) -> str | None:
    """A MongoDB URI checked as the driver will read it, at load, not after the burst (no name is resolved)."""
    if value is None or value.startswith("mongodb+srv://"):  # an SRV URI is resolved by DNS: checked when used
        return value
    from pymongo.errors import InvalidURI
    from pymongo.uri_parser import parse_uri

    try:
        parse_uri(value, warn=True)
    except (InvalidURI, ValueError) as exc:  # the driver's message never carries the password back
        raise ValueError(f"not a MongoDB URI: {str(exc).replace(value, '<uri>')[:200]}") from None
    return value


def checked_url(value: str) -> str:
    """An http(s) URL whose host and port are what a client can connect to."""
    if not re.match(r"^https?://[^/]+", value):
        raise ValueError("an http:// or https:// URL")
    try:
        port = urllib.parse.urlsplit(value).port
    except ValueError:
        raise ValueError("its port is not a number from 1 to 65535") from None
    if port == 0:
        raise ValueError("its port is not a number from 1 to 65535")
    return value


def checked_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError("a path starts with /")
    check_placeholders(value)
    return value


# -- side effects: where they are read, and the rules that find their keys and amounts ----------

class RuleSection(Strict):
    """Where a side effect's key (or amount) is: a field, or a pattern over part of a file."""

    field: str | None = None
    pattern: str | None = None
    joins: str = "transaction"
    unit: Literal["paise", "rupees"] = "paise"

    @field_validator("pattern")
    @classmethod
    def _check_pattern(cls, value: str | None) -> str | None:
        return checked_regex(value)

    @field_validator("joins")
    @classmethod
    def _join(cls, value: str) -> str:
        if value not in ("transaction", "id") and not (value.startswith("state.") and len(value) > 6):
            raise ValueError("joins is transaction, id or state.<field>")
        return value


class FileRule(RuleSection):
    from_: Literal["name", "subject", "title", "text", "json"] = Field(alias="from")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _complete(self) -> "FileRule":
        if self.from_ == "json" and not self.field:
            raise ValueError("a key from a JSON file needs field")
        if self.from_ != "json" and not self.pattern:
            raise ValueError(f"a key from the {self.from_} needs pattern")
        return self


class FieldRule(RuleSection):
    @model_validator(mode="after")
    def _has_field(self) -> "FieldRule":
        if not self.field:
            raise ValueError("needs field")
        return self


class SinkRule(RuleSection):
    """A key or amount in what reached the sink: a call's body/header/path, a message's recipient/subject/text
    or an attachment's text (``attachment``: which attachments, by a glob of their names)."""

    from_: Literal["body", "header", "path", "recipient", "subject", "text", "attachment"] = Field(alias="from")
    header: str | None = None
    attachment: str = "*"

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _complete(self) -> "SinkRule":
        if self.from_ == "header" and not self.header:
            raise ValueError("a key from a header needs header (its name)")
        if self.from_ == "body" and not (self.field or self.pattern):
            raise ValueError("a key from the body needs field (a dotted path in its JSON) or pattern")
        if self.field and self.from_ != "body":
            raise ValueError(f"field is a dotted path in a JSON body: use pattern over the {self.from_}")
        return self


class SinkSection(Strict):
    """The recording sink a run starts: its ports on 127.0.0.1 (0: a free one) and how it answers."""

    http: int | None = Field(None, ge=0, le=65535)
    smtp: int | None = Field(None, ge=0, le=65535)
    proxy: int | None = Field(None, ge=0, le=65535)
    status: int = Field(200, ge=100, le=599)
    body: str = '{"ok": true}'
    content_type: str = "application/json"
    latency_ms: float = Field(0.0, ge=0)
    quiet: float = Field(1.0, gt=0)
    ca_dir: str | None = None
    records: str | None = None
    mitmdump: str | None = None
    # What a hostile or broken caller cannot make the sink do: wait for a body forever, or keep it whole.
    read_timeout: float = Field(5.0, gt=0)  # seconds without a byte before a call is recorded as partial
    max_body: int = Field(32 * 1024 * 1024, gt=0)  # bytes of a body kept (the rest counted and hashed)


class EffectSection(Strict):
    kind: str = "receipt"
    source: Literal["files", "mongo", "http", "sink"]
    # sink: which channel, and which of its calls/messages are this kind (globs; path is shared with http)
    channel: Literal["http", "smtp", "proxy"] | None = None
    host: str | None = None
    recipient: str | None = None
    method: str | None = None
    # files
    dir: str | None = None
    glob: str = "*"
    # mongo
    uri: str | None = None
    database: str | None = None
    collection: str | None = None
    filter: dict[str, Any] = Field(default_factory=dict)
    # http
    path: str | None = None
    url: str | None = None
    items: str = ""
    key: dict[str, Any] | None = None
    amount: dict[str, Any] | None = None


    @field_validator("uri")
    @classmethod
    def _mongo_uri(cls, value: str | None) -> str | None:
        return checked_mongo_uri(value)
    @model_validator(mode="after")
    def _fits_source(self) -> "EffectSection":
        need = {"files": ("dir",), "mongo": ("uri", "database", "collection", "key"), "http": ("key",),
                "sink": ("channel",)}[self.source]
        for name in need:
            if getattr(self, name) in (None, ""):
                raise ValueError(f"effects from {self.source} need {name!r}")
        if self.source == "http" and not (self.path or self.url):
            raise ValueError("effects from http need path or url")
        if self.source == "sink":
            # A rule over a part the channel's records do not have would find nothing, silently: refused here.
            cannot = {"smtp": ("body", "header", "path"), "http": ("recipient", "subject", "text"),
                      "proxy": ("recipient", "subject", "text")}[str(self.channel)]
            for which in ("key", "amount"):
                data = getattr(self, which)
                if isinstance(data, dict) and data.get("from") in cannot:
                    has = {"smtp": "recipient, subject, text, attachment",
                           "http": "body, header, path, attachment (a multipart part)"}.get(str(self.channel),
                                                                                          "body, header, path, attachment (a multipart part)")
                    raise ValueError(f"{which}: from = {data['from']!r} cannot apply to a {self.channel} record "
                                     f"(it has {has})")
        return self

    def rule(self, which: str) -> RuleSection | None:
        data = getattr(self, which)
        if data is None:
            return None
        if self.source == "sink":
            return SinkRule.model_validate(data)
        return FileRule.model_validate(data) if self.source == "files" else FieldRule.model_validate(data)


# -- the rest of the file ----------------------------------------------------------------------

class PaymentsSection(Strict):
    source: Literal["http", "mongo", "file"]
    # http
    method: str = "POST"
    path: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    body: dict[str, Any] | None = None
    form: dict[str, Any] | None = None
    status: list[int] = Field(default_factory=lambda: [200, 201])
    id: str | None = None
    transaction: str | None = None
    # mongo
    uri: str | None = None
    database: str | None = None
    collection: str | None = None
    document: dict[str, Any] | None = None
    # file
    file: str | None = None
    amount: str | None = None


    @field_validator("uri")
    @classmethod
    def _mongo_uri(cls, value: str | None) -> str | None:
        return checked_mongo_uri(value)
    @model_validator(mode="after")
    def _fits_source(self) -> "PaymentsSection":
        need = {"http": ("path", "id"), "mongo": ("uri", "database", "collection", "document"),
                "file": ("file", "id", "transaction", "amount")}[self.source]
        for name in need:
            if getattr(self, name) in (None, ""):
                raise ValueError(f"payments from {self.source} need {name!r}")
        if self.path is not None:
            checked_path(self.path)
        if self.body is not None and self.form is not None:
            raise ValueError("give body (JSON) or form, not both")
        if any("id" in placeholders_in(t) for t in (self.body, self.form, self.document, self.headers, self.path)):
            raise ValueError("{id} is the service's id for a payment, which does not exist yet when it is made")
        for template in (self.body, self.form, self.document, self.headers):
            check_placeholders(template)
        return self


class SigningSection(BaseModel):
    """A signing scheme by name and its settings (checked by the scheme itself)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    scheme: str = "none"

    @field_validator("scheme")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in SCHEMES:
            raise ValueError(f"unknown signing scheme {value!r} (known: {', '.join(SCHEMES)})")
        return value

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @model_validator(mode="after")
    def _builds(self) -> "SigningSection":
        scheme(self.scheme, **self.settings)  # ValueError names the setting, never its value
        return self


class DeliverySection(Strict):
    method: str = "POST"
    path: str
    headers: dict[str, str] = Field(default_factory=dict)
    body: dict[str, Any] | None = None
    text: str | None = None
    envelope: Literal["phonepe-v1"] | None = None
    # The plan's state -> the channel's word for it ({state}), or a table of words ({state.<name>})
    # with the word itself under "state".
    states: dict[str, str | dict[str, Any]] = Field(default_factory=lambda: {s: s for s in STATES})
    signing: SigningSection = Field(default_factory=SigningSection)
    # A PhonePe simulator (reference_service.simulator) the harness tells what the gateway knows of each payment
    # before the deliveries (its v1 status API and v2 order status answer from it); both names mean the same.
    gateway: Literal["phonepe-simulator", "phonepe-v1-simulator"] | None = None
    gateway_url: str | None = None
    # the PhonePe merchant the simulator's status API answers for (the v1 salt key signs it)
    merchant_id: str | None = None

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        return checked_path(value)

    @field_validator("states")
    @classmethod
    def _known_states(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - set(STATES))
        if unknown:
            raise ValueError(f"unknown state {unknown[0]!r} (the plan's states: {', '.join(STATES)})")
        for state, words in value.items():
            if isinstance(words, dict) and "state" not in words:
                raise ValueError(f"states.{state}: a table of words needs the word itself as state")
        return value

    @model_validator(mode="after")
    def _one_body(self) -> "DeliverySection":
        if self.body is not None and self.text is not None:
            raise ValueError("give body (JSON) or text, not both")
        if self.envelope and self.body is None:
            raise ValueError("an envelope wraps a JSON body: give body")
        for template in (self.body, self.text, self.headers):
            check_placeholders(template)
        wanted = {p.removeprefix("state.") for t in (self.body, self.text, self.headers, self.path)
                  for p in placeholders_in(t) if p.startswith("state.")}
        for state, words in self.states.items():
            missing = sorted(wanted - (set(words) if isinstance(words, dict) else set()))
            if missing:
                raise ValueError(f"states.{state}: the templates use {{state.{missing[0]}}}, which this state "
                                 f"does not give (write it as a table: {{ state = ..., {missing[0]} = ... }})")
        return self


class AnswersSection(Strict):
    field: str | None = None
    generated: list[Any] = Field(default_factory=list)
    already: list[Any] = Field(default_factory=list)
    failed: list[Any] = Field(default_factory=list)
    status: dict[str, list[int]] = Field(default_factory=dict)
    injected_fault_field: str | None = None

    @model_validator(mode="after")
    def _says_something(self) -> "AnswersSection":
        if self.field is None and not self.status and self.injected_fault_field is None:
            raise ValueError("answers need a field (and its values) or status codes")
        if self.field is not None and not (self.generated or self.already or self.failed):
            raise ValueError("answers.field needs the values that mean generated (generated = [...])")
        return self


class PaidSection(Strict):
    field: str
    values: list[Any]


class StateSection(Strict):
    source: Literal["http", "mongo"]
    path: str | None = None
    root: str = ""
    uri: str | None = None
    database: str | None = None
    collection: str | None = None
    match: str = "_id"
    by: Literal["id", "transaction"] = "id"
    paid: PaidSection
    claim: str | None = None
    effect: str | None = None
    effect_is: Literal["key", "name"] = "key"


    @field_validator("uri")
    @classmethod
    def _mongo_uri(cls, value: str | None) -> str | None:
        return checked_mongo_uri(value)
    @model_validator(mode="after")
    def _fits_source(self) -> "StateSection":
        need = {"http": ("path",), "mongo": ("uri", "database", "collection")}[self.source]
        for name in need:
            if getattr(self, name) in (None, ""):
                raise ValueError(f"state from {self.source} needs {name!r}")
        if self.path is not None:
            checked_path(self.path)
        return self


class SettleSection(Strict):
    quiet: float = Field(1.0, gt=0)
    timeout: float = Field(30.0, gt=0)
    interval: float = Field(0.25, gt=0)


class HooksSection(Strict):
    """Shell commands that act on a service the harness does not start itself (docker, systemd, a remote box)."""

    kill: str
    start: str
    pause: str | None = None
    resume: str | None = None
    timeout: float = Field(60.0, gt=0)  # seconds one hook may take


class LinkSection(Strict):
    """A link of the service's (to its database, say) that goes through the harness's relay, so the nemesis can
    cut it: the relay listens on 127.0.0.1:``listen`` (point the service there) and forwards to ``upstream``."""

    listen: int = Field(gt=0, lt=65536)
    upstream: str

    @field_validator("upstream")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError("upstream is host:port")
        return value


class ServiceSection(Strict):
    """How the service runs, so the harness can start it, kill it and start it again (the nemesis).

    Either ``command`` (argv; the harness starts it in a process group of its own, with ``cwd``,
    ``env`` and ``env_file``, and keeps its output beside the report) or ``hooks``. The service is
    ready when ``ready_path`` answers (any status below 500) or a line of its output matches
    ``ready_log``; with hooks, when ``ready_path`` answers.
    """

    command: list[str] | None = None
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    env_file: str | None = None
    hooks: HooksSection | None = None
    ready_path: str | None = None
    ready_log: str | None = None
    ready_timeout: float = Field(30.0, gt=0)
    stop_timeout: float = Field(10.0, gt=0)
    links: dict[str, LinkSection] = Field(default_factory=dict)  # relayed links the nemesis can cut

    @field_validator("ready_log")
    @classmethod
    def _check_pattern(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _one_way(self) -> "ServiceSection":
        if (self.command is None) == (self.hooks is None):
            raise ValueError("service needs a command (argv the harness starts) or hooks (kill, start), not both")
        if self.command is not None and not self.command:
            raise ValueError("service.command is an argv list with at least the program")
        if self.hooks is not None and self.ready_path is None:
            raise ValueError("a service run by hooks needs ready_path: how the harness knows it is back")
        if self.ready_path is not None:
            checked_path(self.ready_path)
        return self


# Gateways' documented retry schedules, compressed into seconds (see README "Faults"): the delays before
# each redelivery of an unacknowledged delivery.
REDELIVERY_SCHEDULES: dict[str, tuple[float, ...]] = {
    "phonepe": (1.0, 2.0, 3.0),  # PhonePe: 3 retries of a callback that got no 200 within seconds
    "razorpay": (0.5, 1.0, 2.0, 4.0, 8.0),  # Razorpay: exponential backoff, 24 h (compressed)
    "stripe": (0.5, 1.0, 2.0, 4.0, 8.0, 16.0),  # Stripe: exponential backoff, 3 days (compressed); re-signed
}


class RedeliverySection(Strict):
    """Redelivery like a gateway: a delivery not acknowledged with a 2xx is delivered again on a schedule."""

    schedule: str | list[float] = "phonepe"
    budget: float = Field(60.0, gt=0)  # seconds after the burst that redeliveries may take in all
    verify: bool = False  # one manual verify call per payment once the service is back (deliveries.verify)

    @field_validator("schedule")
    @classmethod
    def _known(cls, value: str | list[float]) -> str | list[float]:
        if isinstance(value, str) and value not in REDELIVERY_SCHEDULES:
            raise ValueError(f"unknown schedule {value!r} (known: {', '.join(REDELIVERY_SCHEDULES)}, or a list "
                             "of delays in seconds)")
        if isinstance(value, list) and (not value or any(d < 0 for d in value)):
            raise ValueError("a schedule is a non-empty list of delays (seconds, not negative)")
        return value

    @property
    def delays(self) -> tuple[float, ...]:
        return REDELIVERY_SCHEDULES[self.schedule] if isinstance(self.schedule, str) else tuple(self.schedule)


class RunSection(Strict):
    """What a run of this service may take (a command-line flag overrides each)."""

    timeout: float | None = Field(None, gt=0)  # seconds one burst may take (default 60)
    # bytes of each answer's body kept in the history (default 64 KiB): a service whose answers are larger and
    # say their outcome raises it, or their outcomes cannot be read (harness.senders.base.ANSWER_BODY_LIMIT)
    answer_bytes: int | None = Field(None, gt=0, le=64 * 1024 * 1024)


class TargetEntry(Strict):
    """One documented target, as a targets file writes it (docs/profiles.md)."""

    name: str
    metric: str
    eq: float | None = None
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    unit: str = ""
    description: str = ""
    judged: bool = True  # false: shown as measured, never passes or fails a run

    @model_validator(mode="after")
    def _bounded(self) -> "TargetEntry":
        if not any(getattr(self, op) is not None for op in ("eq", "gt", "ge", "lt", "le")):
            raise ValueError(f"target {self.name!r} has no bound (one of eq, gt, ge, lt, le)")
        return self


class TargetsSection(Strict):
    """The service's own targets: a targets file (relative to the profile), a built-in set, and/or targets here."""

    file: str | None = None  # a path, or "seed" / "exactly-once"
    target: list[TargetEntry] = Field(default_factory=list)

    @model_validator(mode="after")
    def _some(self) -> "TargetsSection":
        if self.file is None and not self.target:
            raise ValueError("give file (a targets file, or seed / exactly-once) or [[targets.target]] entries")
        return self


class ProfileFile(Strict):
    version: Literal[1]
    name: str = "service"
    base_url: str | None = None  # required for a run; an audit of files, rows or kept sink records needs none
    health_path: str = "/"
    metrics_path: str | None = None
    faults_path: str | None = None
    # An audit-only profile has neither (its [[effects]] and [state] are enough for `audit`); a run needs both.
    payments: PaymentsSection | None = None
    deliveries: dict[str, DeliverySection] = Field(default_factory=dict)
    answers: AnswersSection | None = None
    effects: list[EffectSection] = Field(default_factory=list)
    state: StateSection | None = None
    settle: SettleSection | None = None
    sink: SinkSection | None = None
    service: ServiceSection | None = None  # how the service runs: what the nemesis kills and starts again
    redelivery: RedeliverySection | None = None  # redeliver unacknowledged deliveries, like a gateway
    run: RunSection = Field(default_factory=RunSection)
    targets: TargetsSection | None = None  # the service's own targets (without: exactly-once, timings shown)
    # How an https base_url's certificate is trusted (harness.tls): the system's CAs by default, the CA
    # certificates in ``ca_file`` (PEM), or none at all with ``verify_tls = false`` (a throw-away certificate).
    verify_tls: bool = True
    ca_file: str | None = None

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                checked_url(value)
            except ValueError as exc:
                raise ValueError(f"base_url is {exc}" if "http" in str(exc) else str(exc)) from None
        return value

    @field_validator("metrics_path", "faults_path")
    @classmethod
    def _optional_path(cls, value: str | None) -> str | None:
        return checked_path(value) if value else None

    @field_validator("deliveries")
    @classmethod
    def _channels(cls, value: dict[str, DeliverySection]) -> dict[str, DeliverySection]:
        unknown = sorted(set(value) - {"callback", "verify"})
        if unknown:
            raise ValueError(f"unknown channel {unknown[0]!r} (channels: callback, verify)")
        return value

    @model_validator(mode="after")
    def _rules(self) -> "ProfileFile":
        if self.ca_file and not self.verify_tls:
            raise ValueError("ca_file trusts a CA but verify_tls = false verifies nothing: give one of them")
        if (self.payments is None) != (not self.deliveries):
            raise ValueError("deliveries: a profile needs at least one delivery channel beside [payments] (an "
                             "audit-only profile has neither)" if self.payments is not None else
                             "deliveries: without [payments] there is nothing to deliver (an audit-only profile "
                             "has [[effects]] and [state] only)")
        if self.base_url is None:
            if self.payments is not None:
                raise ValueError("base_url: missing (required): a run sends its deliveries there")
            if (self.state is not None and self.state.source == "http") or any(
                    e.source == "http" and not e.url for e in self.effects):
                raise ValueError("base_url: missing (required): a path read over HTTP is read from the service")
        if self.payments is None and not self.effects:
            raise ValueError("effects: an audit-only profile (no [payments], no [deliveries]) needs [[effects]]")
        kinds: dict[str, int] = {}
        for i, effect in enumerate(self.effects):
            if effect.kind in kinds:  # one kind read from two sources would count every payment twice
                raise ValueError(f"effects.{i}.kind: {effect.kind!r} is also effects.{kinds[effect.kind]}'s kind; "
                                 f"give each side-effect source its own kind")
            kinds[effect.kind] = i
        if self.state is not None and self.state.effect and self.state.effect_is == "key":
            if not any(e.key is not None for e in self.effects):
                raise ValueError("state.effect_is: 'key' compares the state's effect field with the keys the "
                                 "[[effects]] key rules extract, and no effect has a key rule; use "
                                 "effect_is = \"name\" for a file name or path")
        for i, effect in enumerate(self.effects):
            for which in ("key", "amount"):
                try:
                    effect.rule(which)
                except ValueError as exc:
                    raise ValueError(f"effects.{i}.{which}: {_first_error(exc)}") from None
        return self


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"{where + ': ' if where else ''}{first['msg'].removeprefix('Value error, ')}"
    return str(exc)


# -- validating a file ------------------------------------------------------------------------

def parse_profile(data: Any, source: str = "profile", *, variables: Mapping[str, str] | None = None,
                  text: str | None = None) -> ProfileFile:
    """A validated profile from plain data; ProfileError names the first wrong field (and its line)."""
    if not isinstance(data, dict):
        raise ProfileError(f"{source}: a profile is a table of fields, not {type(data).__name__}")
    if data.get("version") != PROFILE_VERSION:
        raise ProfileError(f"{source}: version: must be {PROFILE_VERSION} (got {data.get('version')!r})")
    try:
        expanded = expand_env(data, variables or {}) if variables is not None else data
    except TemplateError as exc:
        field = str(exc).split(":", 1)[0]
        raise ProfileError(f"{source}: {exc}{_line(text, field.split('.'))}") from None
    try:
        return ProfileFile.model_validate(expanded)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = [str(p) for p in error["loc"]]
        message = error["msg"].removeprefix("Value error, ")
        # An error raised by a whole-file rule names its field in the message ("effects.0.key: ...").
        if not loc and (named := re.match(r"^([a-z_]+(?:\.[\w]+)+): (.*)$", message)):
            loc, message = named.group(1).split("."), named.group(2)
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        elif error["type"] == "missing":
            message = "missing (required)"
        where = ".".join(loc) or "(the whole file)"
        raise ProfileError(f"{source}: {where}{_line(text, loc)}: {message}") from None


def _line(text: str | None, loc: list[str]) -> str:
    """`` (line N)`` of the TOML line that sets the field at ``loc`` (or its table), when it can be found."""
    if not text or not loc:
        return ""
    best, best_len = None, 0
    table: list[str] = []
    arrays: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[["):
            name = line.strip("[] ")
            arrays[name] = arrays.get(name, -1) + 1
            table = [*name.split("."), str(arrays[name])]
            path = table
        elif line.startswith("["):
            table = line.strip("[] ").split(".")
            path = table
        elif "=" in line:
            key = line.split("=", 1)[0].strip().strip('"')
            path = [*table, *key.split(".")]
        else:
            continue
        common = 0
        for a, b in zip(path, loc):
            if a != b:
                break
            common += 1
        if common == len(path) and common > best_len:
            best, best_len = number, common
    return f" (line {best})" if best else ""
