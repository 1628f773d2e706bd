"""Getting payments to race: created over HTTP, inserted into the service's MongoDB, or read from a file."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from harness.errors import TargetError
from harness.profile.schema import PaymentsSection
from harness.profile.template import dig, iso_time, render
from harness.progress import Progress
from harness.tls import bounded_request


@dataclass(frozen=True)
class Payment:
    """One payment the plan drives: the service's id for it and the gateway's transaction id."""

    id: str
    merchant_transaction_id: str
    amount: int


def new_transaction() -> str:
    """A gateway id the harness makes up: unique, short enough for every gateway's limits (PhonePe: 35)."""
    return f"RH{secrets.token_hex(10).upper()}"


def event_values(transaction: str, amount: int, **more: Any) -> dict[str, Any]:
    """The placeholder values of one payment (``{transaction}``, ``{amount}``, ...) at this moment."""
    now = time.time()
    return {"transaction": transaction, "amount": amount, "amount_rupees": f"{amount // 100}.{amount % 100:02d}",
            "now": iso_time(int(now * 1000)), "now_ms": int(now * 1000), "now_s": int(now),
            "event_id": f"evt_{secrets.token_hex(12)}",
            "random": secrets.token_hex(6), **more}


def make_payments(section: PaymentsSection, amounts: list[int], *, base_url: str, client: httpx.Client,
                  progress: Progress) -> list[Payment]:
    """One payment per amount, the way the profile says; TargetError names what went wrong."""
    if section.source == "http":
        return _created(section, amounts, base_url, client, progress)
    if section.source == "mongo":
        return _inserted(section, amounts, progress)
    return _from_file(section, amounts)


def _created(section: PaymentsSection, amounts: list[int], base_url: str, client: httpx.Client,
             progress: Progress) -> list[Payment]:
    url = base_url.rstrip("/") + str(section.path)
    out = []
    for i, amount in enumerate(amounts):
        values = event_values(new_transaction(), amount)
        kwargs: dict[str, Any] = {"headers": {k: str(v) for k, v in render(section.headers, values).items()}}
        if section.form is not None:
            kwargs["data"] = {k: str(v) for k, v in render(section.form, values).items()}
        elif section.body is not None:
            kwargs["json"] = render(section.body, values)
        response = bounded_request(client, section.method, url, **kwargs)  # harness.tls's size and time bounds
        if response.status_code not in section.status:
            raise TargetError(f"payments: {section.method} {section.path} answered {response.status_code}: "
                              f"{response.text[:300]}")
        try:
            answer = response.json()
        except ValueError:
            raise TargetError(f"payments: {section.path} answered {response.status_code} without JSON: "
                              f"{response.text[:200]}") from None
        pid = dig(answer, str(section.id))
        if pid in (None, ""):
            raise TargetError(f"payments.id: no {section.id!r} in the create answer (it has: {_shape(answer)})")
        transaction = dig(answer, section.transaction) if section.transaction else values["transaction"]
        if transaction in (None, ""):
            raise TargetError(f"payments.transaction: no {section.transaction!r} in the create answer "
                              f"(it has: {_shape(answer)})")
        out.append(Payment(id=str(pid), merchant_transaction_id=str(transaction), amount=amount))
        progress("creating payments", i + 1, len(amounts))
    return out


def _inserted(section: PaymentsSection, amounts: list[int], progress: Progress) -> list[Payment]:
    import pymongo
    from bson import ObjectId

    documents, transactions = [], []
    for amount in amounts:
        values = event_values(new_transaction(), amount)
        document = render(section.document, values, bson=True)  # typed values stay dates, ObjectIds
        document.setdefault("_id", ObjectId())
        documents.append(document)
        transactions.append(values["transaction"])
    try:
        client: pymongo.MongoClient = pymongo.MongoClient(section.uri, serverSelectionTimeoutMS=5000)
        try:
            client[str(section.database)][str(section.collection)].insert_many(documents, ordered=True)
        finally:
            client.close()
    except pymongo.errors.PyMongoError as exc:  # InvalidURI included: never the URI itself (credentials)
        raise TargetError(f"payments: cannot insert into {section.database}.{section.collection}: "
                          f"{exc.__class__.__name__}") from None
    progress("creating payments", len(amounts), len(amounts))
    field = section.id or "_id"
    out = []
    for document, transaction, amount in zip(documents, transactions, amounts):
        pid = dig(document, field)
        if pid is None:
            raise TargetError(f"payments.id: the inserted document has no {field!r}")
        out.append(Payment(id=str(pid), merchant_transaction_id=transaction, amount=amount))
    return out


def _from_file(section: PaymentsSection, amounts: list[int]) -> list[Payment]:
    path = Path(str(section.file))
    try:
        text = path.read_text()
    except OSError as exc:
        raise TargetError(f"payments.file: cannot read {path}: {exc.strerror or exc}") from None
    if text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except ValueError as exc:
            raise TargetError(f"payments.file: {path} is neither a JSON array nor JSON lines: {exc}") from None
    else:
        records = []
        for number, line in enumerate(text.splitlines(), 1):  # a bad record is named by its own line, not line 1
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except ValueError as exc:
                column = f" column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
                reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
                raise TargetError(f"payments.file: {path} line {number}{column}: not a JSON record ({reason})") from None
    if len(records) < len(amounts):
        raise TargetError(f"payments.file: the plan needs {len(amounts)} payments; {path} holds {len(records)}")
    out = []
    for i, record in enumerate(records[:len(amounts)]):
        values = [dig(record, str(getattr(section, f))) for f in ("id", "transaction", "amount")]
        if any(v in (None, "") for v in values):
            missing = [f for f, v in zip(("id", "transaction", "amount"), values) if v in (None, "")]
            raise TargetError(f"payments.{missing[0]}: record {i} of {path} has no {getattr(section, missing[0])!r}")
        try:
            amount = int(values[2])
        except (TypeError, ValueError):
            raise TargetError(f"payments.amount: record {i} of {path} has {values[2]!r}, not a whole number of "
                              f"paise") from None
        out.append(Payment(id=str(values[0]), merchant_transaction_id=str(values[1]), amount=amount))
    return out


def _shape(answer: Any, depth: int = 2) -> str:
    """The keys of an answer, two levels deep, to show a user where their ids really are."""
    if not isinstance(answer, dict) or depth == 0:
        return type(answer).__name__
    return "{" + ", ".join(f"{k}: {_shape(v, depth - 1)}" if isinstance(v, dict) else str(k)
                           for k in list(answer)[:12] for v in [answer[k]]) + "}"
