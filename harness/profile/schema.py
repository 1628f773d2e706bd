"""The profile file's schema: every section as a pydantic model, so a mistake names its field.

The models hold the file as written (after ``${ENV}`` expansion); ``harness.profile.Profile`` is
what a run uses. The format is documented in docs/profiles.md. The side effects' sections (where
effects are read, and the rules that find their keys and amounts) are in ``schema_effects``.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..signing import SCHEMES, scheme
from ._strict import _path, _Strict
from .schema_effects import (
    EffectSection,
    FieldRule,
    FileRule,
    RuleSection,
    SinkRule,
    SinkSection,
)
from .template import check_placeholders, placeholders_in

PROFILE_VERSION = 1
STATES = ("COMPLETED", "FAILED", "PENDING")
__all__ = ["AnswersSection", "DeliverySection", "EffectSection", "FieldRule", "FileRule", "PROFILE_VERSION",
           "PaidSection", "PaymentsSection", "ProfileFile", "RuleSection", "STATES", "SettleSection",
           "SigningSection", "SinkRule", "SinkSection", "StateSection"]


class PaymentsSection(_Strict):
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

    @model_validator(mode="after")
    def _fits_source(self) -> "PaymentsSection":
        need = {"http": ("path", "id"), "mongo": ("uri", "database", "collection", "document"),
                "file": ("file", "id", "transaction", "amount")}[self.source]
        for name in need:
            if getattr(self, name) in (None, ""):
                raise ValueError(f"payments from {self.source} need {name!r}")
        if self.path is not None:
            _path(self.path)
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


class DeliverySection(_Strict):
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
    gateway: Literal["phonepe-v1-simulator"] | None = None
    gateway_url: str | None = None
    # the PhonePe merchant the simulator's status API answers for (the v1 salt key signs it)
    merchant_id: str | None = None

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        return _path(value)

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


class AnswersSection(_Strict):
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


class PaidSection(_Strict):
    field: str
    values: list[Any]


class StateSection(_Strict):
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

    @model_validator(mode="after")
    def _fits_source(self) -> "StateSection":
        need = {"http": ("path",), "mongo": ("uri", "database", "collection")}[self.source]
        for name in need:
            if getattr(self, name) in (None, ""):
                raise ValueError(f"state from {self.source} needs {name!r}")
        if self.path is not None:
            _path(self.path)
        return self


class SettleSection(_Strict):
    quiet: float = Field(1.0, gt=0)
    timeout: float = Field(30.0, gt=0)
    interval: float = Field(0.25, gt=0)


class ProfileFile(_Strict):
    version: Literal[1]
    name: str = "service"
    base_url: str
    health_path: str = "/"
    metrics_path: str | None = None
    faults_path: str | None = None
    payments: PaymentsSection
    deliveries: dict[str, DeliverySection]
    answers: AnswersSection | None = None
    effects: list[EffectSection] = Field(default_factory=list)
    state: StateSection | None = None
    settle: SettleSection | None = None
    sink: SinkSection | None = None
    # How an https base_url's certificate is trusted (harness.tls): the system's CAs by default, the CA
    # certificates in ``ca_file`` (PEM), or none at all with ``verify_tls = false`` (a throw-away certificate).
    verify_tls: bool = True
    ca_file: str | None = None

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/]+", value):
            raise ValueError("base_url is an http:// or https:// URL")
        return value

    @field_validator("metrics_path", "faults_path")
    @classmethod
    def _optional_path(cls, value: str | None) -> str | None:
        return _path(value) if value else None

    @field_validator("deliveries")
    @classmethod
    def _channels(cls, value: dict[str, DeliverySection]) -> dict[str, DeliverySection]:
        unknown = sorted(set(value) - {"callback", "verify"})
        if unknown:
            raise ValueError(f"unknown channel {unknown[0]!r} (channels: callback, verify)")
        if not value:
            raise ValueError("a profile needs at least one delivery channel")
        return value

    @model_validator(mode="after")
    def _rules(self) -> "ProfileFile":
        if self.ca_file and not self.verify_tls:
            raise ValueError("ca_file trusts a CA but verify_tls = false verifies nothing: give one of them")
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
