"""Each payment's state as the profile's field map reads it: over HTTP (concurrently) or from MongoDB (one query).

The state is normalised to the oracle's shape: ``paid`` (the paid field holds a paid value),
``receiptGenerated`` (the claim flag, or None when the profile names none), ``receiptPath`` (the
field that names the side effect), and the raw values the oracle may join effects by.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from harness.profile.payments import Payment
from harness.profile.schema import StateSection
from harness.profile.template import dig
from harness.tls import bounded_request

HTTP_READERS = 8  # state requests in flight at once: a batch, not one request per payment in a row


def normalised(section: StateSection, record: dict[str, Any] | None, join_fields: set[str]) -> dict | None:
    if record is None:
        return None
    status = dig(record, section.paid.field)
    return {
        "paymentStatus": status,
        "paid": status in section.paid.values,
        "receiptGenerated": bool(dig(record, section.claim)) if section.claim else None,
        "receiptPath": _plain(dig(record, section.effect)) if section.effect else None,
        "join": {f: _plain(dig(record, f)) for f in sorted(join_fields)},
    }


def _plain(value: Any) -> Any:
    return value if value is None or isinstance(value, (str, int, float, bool)) else str(value)


def read_state(section: StateSection, payments: list[Payment], *, base_url: str, client: httpx.Client,
               join_fields: set[str]) -> dict[str, dict | None]:
    """payment id -> normalised state (None: the service has no record of it)."""
    if section.source == "http":
        return _over_http(section, payments, base_url, client, join_fields)
    return _from_mongo(section, payments, join_fields)


def _over_http(section: StateSection, payments: list[Payment], base_url: str, client: httpx.Client,
               join_fields: set[str]) -> dict[str, dict | None]:
    def one(payment: Payment) -> dict | None:
        path = str(section.path).replace("{id}", payment.id).replace("{transaction}", payment.merchant_transaction_id)
        response = bounded_request(client, "GET", base_url.rstrip("/") + path)  # harness.tls's size and time bounds
        if response.status_code == 404:
            return None
        response.raise_for_status()
        record = dig(response.json(), section.root)
        return normalised(section, record if isinstance(record, dict) else None, join_fields)

    with ThreadPoolExecutor(max_workers=min(HTTP_READERS, max(1, len(payments)))) as pool:
        futures = [pool.submit(one, p) for p in payments]
        try:
            return {p.id: f.result() for p, f in zip(payments, futures)}
        except BaseException:  # the first failure is the answer: the reads not yet started are not made
            for future in futures:
                future.cancel()
            raise


def _from_mongo(section: StateSection, payments: list[Payment], join_fields: set[str]) -> dict[str, dict | None]:
    import pymongo
    from bson import ObjectId

    def value_of(payment: Payment) -> str:
        return payment.id if section.by == "id" else payment.merchant_transaction_id

    wanted: list[Any] = []
    for payment in payments:
        value = value_of(payment)
        wanted.append(value)
        if ObjectId.is_valid(value):  # a service's ids may be ObjectIds, strings or numbers: match each
            wanted.append(ObjectId(value))
        if value.isdigit():
            wanted.append(int(value))
    client: pymongo.MongoClient = pymongo.MongoClient(section.uri, serverSelectionTimeoutMS=5000)
    try:
        documents = client[str(section.database)][str(section.collection)].find({section.match: {"$in": wanted}})
        by_value = {str(dig(d, section.match)): d for d in documents}
    finally:
        client.close()
    return {p.id: normalised(section, by_value.get(value_of(p)), join_fields) for p in payments}
