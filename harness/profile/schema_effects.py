"""The profile schema's side-effect sections: where effects are read (files, MongoDB, HTTP, the sink) and the
rules that find each effect's key and amount."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from ._strict import _regex, _Strict


class RuleSection(_Strict):
    """Where a side effect's key (or amount) is: a field, or a pattern over part of a file."""

    field: str | None = None
    pattern: str | None = None
    joins: str = "transaction"
    unit: Literal["paise", "rupees"] = "paise"

    @field_validator("pattern")
    @classmethod
    def _check_pattern(cls, value: str | None) -> str | None:
        return _regex(value)

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


class SinkSection(_Strict):
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


class EffectSection(_Strict):
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

    @model_validator(mode="after")
    def _fits_source(self) -> "EffectSection":
        need = {"files": ("dir",), "mongo": ("uri", "database", "collection", "key"), "http": ("key",),
                "sink": ("channel",)}[self.source]
        for name in need:
            if getattr(self, name) in (None, ""):
                raise ValueError(f"effects from {self.source} need {name!r}")
        if self.source == "http" and not (self.path or self.url):
            raise ValueError("effects from http need path or url")
        return self

    def rule(self, which: str) -> RuleSection | None:
        data = getattr(self, which)
        if data is None:
            return None
        if self.source == "sink":
            return SinkRule.model_validate(data)
        return FileRule.model_validate(data) if self.source == "files" else FieldRule.model_validate(data)
