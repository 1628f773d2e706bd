"""Side effects that left the service, read from the recording sink a run starts (``source = "sink"``).

Each recorded call or message that passes an effect's filter (channel; path, host, method or
recipient globs) becomes a ``ReceiptFile`` of the effect's kind, keyed and priced by the effect's
rules over its body (a JSON path or a pattern), a header, its path, a recipient, its subject, its
text or an attachment's text. Which payment it belongs to is the oracle's job, as for files.
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import fnmatch
import json
import re
import urllib.parse
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.errors import SinkError
from harness.observe.content import to_paise
from harness.observe.observation import RECEIPTS_DIR, Problem, ReceiptFile
from harness.profile.patterns import first_group
from harness.profile.schema import (
    EffectSection,
    ProfileFile,
    SettleSection,
    SinkRule,
    SinkSection,
)
from harness.profile.template import dig
from harness.sink import RecordedSink, Sink, SinkSettings
from harness.sink.smtp import pdf_text


def uses_sink(spec: ProfileFile) -> bool:
    return spec.sink is not None or any(e.source == "sink" for e in spec.effects)


def sink_section(spec: ProfileFile) -> SinkSection:
    return spec.sink or SinkSection()


def sink_settings(spec: ProfileFile) -> SinkSettings:
    """The sink a profile asks for: every channel it gives a port, and every channel an effect reads (a free port)."""
    section = sink_section(spec)
    ports = {"http": section.http, "smtp": section.smtp, "proxy": section.proxy}
    for effect in spec.effects:
        if effect.source == "sink" and ports[str(effect.channel)] is None:
            ports[str(effect.channel)] = 0
    return SinkSettings(**ports, status=section.status, body=section.body, content_type=section.content_type,
                        latency_ms=section.latency_ms, ca_dir=section.ca_dir, mitmdump=section.mitmdump,
                        read_timeout=section.read_timeout, max_body=section.max_body)


def settle_for_sink(spec: ProfileFile) -> SettleSection | None:
    """How a run waits: the profile's [settle], or, for a sink's effects (many handlers send after they
    answered), a wait until nothing changed for the sink's quiet seconds."""
    if spec.settle is not None or not uses_sink(spec):
        return spec.settle
    return SettleSection(quiet=sink_section(spec).quiet)


def sink_quiet(spec: ProfileFile, sink: Sink | RecordedSink | None) -> bool:
    """Whether the sink has recorded nothing for its quiet seconds (always, with no sink running)."""
    return sink is None or sink.quiet_for() >= sink_section(spec).quiet


def start_sink(spec: ProfileFile, report_dir: Path | str | None, label: str | None,
               outage: dict[str, Any] | None = None) -> Sink | None:
    """The profile's sink, started (SinkError when it cannot be); None when the profile has none.

    Its records go to ``[sink] records``, else beside the run's report (``<label>.sink.jsonl``), else a
    temporary file that the written report copies beside itself.
    """
    if not uses_sink(spec):
        return None
    section = sink_section(spec)
    records: Path | None = Path(section.records) if section.records else None
    if records is None and report_dir is not None:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "-", label or "run").strip(".-") or "run"
        records = Path(report_dir) / f"{stem}.sink.jsonl"
    settings = sink_settings(spec)
    if outage:  # a downstream outage the nemesis asks for (fail_first, fail_as)
        settings = replace(settings, **outage)
    return Sink(settings, records).start()


def describe_sink(section: EffectSection) -> str:
    filters = [f"{name} {value}" for name, value in (("method", section.method), ("host", section.host),
                                                     ("path", section.path), ("recipient", section.recipient)) if value]
    return f"sink {section.channel}" + (f" ({', '.join(filters)})" if filters else "")


def nothing_reached(spec: ProfileFile, sink: Sink | RecordedSink | None, payments: int) -> Problem | None:
    """A sink that recorded nothing at all while payments were made: the service was never pointed at it
    (or never sent), which the run cannot tell apart: every side-effect check is unknown, never a pass."""
    if sink is None or not payments or not any(e.source == "sink" for e in spec.effects):
        return None
    try:
        if any("blocked" not in r for r in sink.records()):
            return None
    except SinkError:  # no records to read at all: read_sink_effects says so, naming where it looked
        return None
    channels = ", ".join(f"{c} on 127.0.0.1:{p}" for c, p in sink.ports.items())
    return Problem(RECEIPTS_DIR, f"nothing reached the sink ({channels}): is the service pointed at it "
                                 f"({', '.join(sorted(sink.env())) or 'its settings'})?")


def read_sink_effects(section: EffectSection,
                      sink: Sink | RecordedSink | None) -> tuple[list[ReceiptFile], list[Problem]]:
    """Every record of the sink (running, or a finished run's kept records) that is this effect, keyed by its rules."""
    if sink is None:
        return [], [Problem(RECEIPTS_DIR, f"cannot read side effects ({describe_sink(section)}): no sink is running "
                                          f"(a run reads its sink's records; race-harness verify reads those it kept)")]
    try:
        records = sink.records()
    except SinkError as exc:  # a finished run's records that cannot be found: unknown, never a pass
        return [], [Problem(RECEIPTS_DIR, f"cannot read side effects ({describe_sink(section)}): {exc}")]
    key, amount = section.rule("key"), section.rule("amount")
    refused = [r for r in records if "refused" in r and r.get("channel") == section.channel and (
        not r.get("recipients") or _passes(section, r))]  # refused before its recipients were named: any kind's
    if refused:  # sent, but over the sink's own limit: what it was cannot be judged, and the run must say why
        return [], [Problem(RECEIPTS_DIR, f"cannot read side effects ({describe_sink(section)}): the sink refused "
                                          f"{len(refused)} {section.channel} message(s): {refused[0]['refused']}")]
    out = []
    for record in records:
        # failed (a downstream outage) and partial (cut short: a real downstream discards it) are attempts only
        if "blocked" in record or "failed" in record or "partial" in record or not _passes(section, record):
            continue
        if record.get("channel") in ("http", "proxy") and (_reads_parts(section) or not _multipart_call(record)):
            record = {**record, **call_parts(record)}  # its body as JSON, form fields and files (multipart)
        effect = _as_effect(section, record)
        if isinstance(record.get("t"), (int, float)):
            effect.at = float(record["t"])  # when the call or message reached the sink (its own clock)
        if isinstance(key, SinkRule):
            effect.keyed, effect.joins = True, key.joins
            effect.key = _extract(key, record, effect)
        if isinstance(amount, SinkRule):
            effect.amount = to_paise(_extract(amount, record, effect), amount)
        out.append(effect)
    return out, []


def _glob(value: str | None, pattern: str | None) -> bool:
    return pattern is None or fnmatch.fnmatch((value or "").lower(), pattern.lower())


def _passes(section: EffectSection, record: dict[str, Any]) -> bool:
    if record.get("channel") != section.channel:
        return False
    if section.channel == "smtp":
        return section.recipient is None or any(_glob(r, section.recipient) for r in record.get("recipients", []))
    path = str(record.get("path", "")).split("?", 1)[0]
    return (_glob(path, section.path) and _glob(record.get("host", "").split(":")[0], section.host)
            and _glob(record.get("method"), section.method))


def _as_effect(section: EffectSection, record: dict[str, Any]) -> ReceiptFile:
    channel = record["channel"]
    name = f"{channel}#{record.get('seq')}"
    if channel == "smtp":
        attachments = record.get("attachments") or []
        unreadable = [a for a in attachments if not a.get("readable", True)]
        effect = ReceiptFile(name=name, size=int(record.get("size") or 0), readable=not unreadable and "error" not in record,
                             subject=record.get("subject") or None, kind=section.kind, source="sink",
                             text="\n".join(a.get("text") or "" for a in attachments) or record.get("text") or "",
                             data={"to": ", ".join(record.get("recipients", [])), "subject": record.get("subject"),
                                   "attachments": [f"{a.get('name')} ({a.get('size')} bytes)" for a in attachments]})
        if unreadable:
            effect.error = f"attachment {unreadable[0].get('name')!r}: {unreadable[0].get('error')}"
        elif "error" in record:
            effect.error = f"message: {record['error']}"
        return effect
    body = record.get("body") or ""
    data = record.get("fields")
    size = int(record.get("body_size") or len(body.encode()))
    files = record.get("attachments") or []
    if files:  # a multipart upload: what it says is its fields and its files' text, never its raw bytes
        text = "\n".join([*(f"{k}: {v}" for k, v in (data or {}).items()), *(f.get("text") or "" for f in files)])
    else:
        text = body
    effect = ReceiptFile(name=name, size=size, readable=True, kind=section.kind, source="sink", text=text,
                         data=data if isinstance(data, dict) else {"method": record.get("method"),
                                                                    "host": record.get("host"),
                                                                    "path": record.get("path"), "body": body[:200]})
    if files:
        effect.data = {**(effect.data or {}), "attachments": [f"{f.get('name')} ({f.get('size')} bytes)" for f in files]}
    if unreadable := [f for f in files if not f.get("readable", True)]:
        effect.readable, effect.error = False, f"attachment {unreadable[0].get('name')!r}: {unreadable[0].get('error')}"
    return effect


def _reads_parts(section: EffectSection) -> bool:
    """Whether a rule reads a body's fields or files (parsing a large multipart body is not free)."""
    rules = [section.rule(which) for which in ("key", "amount")]
    return any(isinstance(r, SinkRule) and (r.from_ == "attachment" or (r.from_ == "body" and r.field))
               for r in rules)


def _content_type(record: dict[str, Any]) -> str:
    """A call's Content-Type as sent ("" when it has none): its boundary parameter is case-sensitive."""
    headers = {str(k).lower(): str(v) for k, v in (record.get("headers") or {}).items()}
    return headers.get("content-type", "")


def _multipart_call(record: dict[str, Any]) -> bool:
    return _content_type(record).lower().startswith("multipart/")


def body_bytes(record: dict[str, Any]) -> bytes:
    """The exact bytes of a call's body as the sink kept them (``body_b64`` when they are not UTF-8 text)."""
    if record.get("body_b64"):
        return base64.b64decode(record["body_b64"])
    return str(record.get("body") or "").encode("utf-8")


def call_parts(record: dict[str, Any]) -> dict[str, Any]:
    """A call's body as parts: ``fields`` (a JSON object, a form's fields, a multipart form's text fields) and
    ``attachments`` (a multipart form's files: name, size, content type, a PDF's text), as an e-mail's are kept.

    Parsed by the standard library's MIME parser (``email``), which reads multipart/form-data as the MIME
    multipart it is; a body that is none of these keeps neither."""
    content_type = _content_type(record)
    data = body_bytes(record)
    if _multipart_call(record):
        try:
            return _multipart(content_type, data)
        except (RecursionError, ValueError, LookupError, TypeError) as exc:  # a header the parser chokes on
            return {"attachments": [{"name": "(the multipart body)", "size": len(data), "readable": False,
                                     "text": "", "error": f"unparsable multipart body: {exc.__class__.__name__}"}]}
    if content_type.lower().startswith("application/x-www-form-urlencoded"):
        fields = urllib.parse.parse_qs(data.decode("utf-8", "replace"), keep_blank_values=True)
        return {"fields": {k: v[0] if len(v) == 1 else v for k, v in fields.items()}}
    try:
        parsed = json.loads(data) if data.strip() else None
    except ValueError:
        return {}
    return {"fields": parsed} if isinstance(parsed, dict) else {}


def _multipart(content_type: str, data: bytes) -> dict[str, Any]:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"MIME-Version: 1.0\r\nContent-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n" + data)
    if not message.is_multipart():
        return {}
    fields: dict[str, Any] = {}
    files = []
    for part in message.iter_parts():
        payload = part.get_payload(decode=True) or b""
        field = part.get_param("name", header="content-disposition") or ""
        filename = part.get_filename()
        if filename is None and payload[:4] != b"%PDF":  # a form's text field (a file part names its file)
            fields[str(field)] = payload.decode(part.get_content_charset() or "utf-8", "replace")
            continue
        item: dict[str, Any] = {"name": filename or str(field), "field": str(field), "size": len(payload),
                                "content_type": part.get_content_type(), "readable": True, "text": "", "error": None}
        if part.get_content_type() == "application/pdf" or (filename or "").lower().endswith(".pdf") or (
                payload[:4] == b"%PDF"):
            item["readable"], item["text"], item["error"] = pdf_text(payload)
        elif part.get_content_maintype() == "text":
            item["text"] = payload.decode(part.get_content_charset() or "utf-8", "replace")
        files.append(item)
    return {"fields": fields, "attachments": files}


def _part(rule: SinkRule, record: dict[str, Any]) -> Any:
    """The part of a record a rule reads."""
    if rule.from_ == "body":
        if rule.field:  # a JSON object's field, or a form's (urlencoded or multipart)
            return dig(record.get("fields"), rule.field) if isinstance(record.get("fields"), dict) else None
        return record.get("body") or ""
    if rule.from_ == "header":
        headers = {k.lower(): v for k, v in (record.get("headers") or {}).items()}
        return headers.get(str(rule.header).lower())
    if rule.from_ == "recipient":
        return ", ".join(record.get("recipients", []))
    if rule.from_ == "attachment":
        return "\n".join(a.get("text") or "" for a in record.get("attachments") or []
                         if fnmatch.fnmatch(a.get("name") or "", rule.attachment))
    return record.get(rule.from_)  # path, subject, text


def _extract(rule: SinkRule, record: dict[str, Any], effect: ReceiptFile) -> str | None:
    value = _part(rule, record)
    if value is None:
        return None
    if rule.pattern:
        return first_group(rule.pattern, str(value))  # bounded: harness.profile.patterns
    return str(value) if str(value) != "" else None


def sink_rule_miss(index: int, section: EffectSection, records: list[ReceiptFile]) -> str:
    """One line: the sink effect's key rule found nothing in any of its records, and what the first one holds."""
    rule = section.rule("key")
    assert isinstance(rule, SinkRule)
    how = f"{'field ' + repr(rule.field) if rule.field else 'pattern ' + repr(rule.pattern)} over the {rule.from_}"
    first = records[0]
    seen = first.subject if rule.from_ == "subject" else (first.text[:80] if first.text else first.data)
    return (f"effects.{index}.key: {how} matched none of the {len(records)} record(s) of {describe_sink(section)}; "
            f"the first ({first.name}) has: {seen!r}")[:400]
