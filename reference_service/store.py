"""The charges collection, through pymongo's API on a real MongoDB or on embedded mongomock.

Every method is one single-document MongoDB operation. On a real server (an external MongoDB, or
the SecantusDB wire-protocol server of ``--store wire``: the same pymongo code for both, nothing
special-cased for the server behind the URI) each is atomic by MongoDB's own guarantee, across
every process that shares the database. mongomock gives no such guarantee (its ``find_one_and_update`` is a
find followed by an update, so two threads can both claim one document), so the embedded store
runs every operation under one lock: the same atomicity, inside one process.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from typing import Any, ContextManager

import pymongo
from pymongo import ReturnDocument
from pymongo.collection import Collection

COLLECTION = "servicecharges"


class StoreUnavailable(RuntimeError):
    """The store cannot be used: a malformed URI, or a MongoDB server that does not answer."""


class ChargeStore:
    def __init__(self, collection: Collection, *, lock: ContextManager[Any] | None = None, client: Any = None):
        self._charges = collection
        self._lock = lock if lock is not None else contextlib.nullcontext()
        self._client = client
        self.kind = "memory" if lock is not None else "mongodb"

    # -- set-up ---------------------------------------------------------------------------
    def ensure_indexes(self) -> None:
        """The seed's indexes, plus the unique transaction id the callbacks are looked up by."""
        with self._lock:
            self._charges.create_index([("receiptGenerated", pymongo.ASCENDING)])
            self._charges.create_index([("_id", pymongo.ASCENDING), ("receiptGenerated", pymongo.ASCENDING)])
            self._charges.create_index([("merchantTransactionId", pymongo.ASCENDING)], unique=True)

    def ping(self) -> bool:
        if self._client is None:
            return True
        self._client.admin.command("ping")
        return True

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    # -- charges --------------------------------------------------------------------------
    def create(self, *, vendor_name: str, exhibition_id: str, amount: int, merchant_transaction_id: str) -> dict:
        doc = {
            "_id": uuid.uuid4().hex,
            "vendorName": vendor_name,
            "exhibitionId": exhibition_id,
            "amount": amount,
            "merchantTransactionId": merchant_transaction_id,
            "paymentStatus": "pending",
            "receiptGenerated": False,
            "receiptPath": None,
            "createdAt": time.time(),
        }
        with self._lock:
            self._charges.insert_one(doc)
        return doc

    def get(self, charge_id: str) -> dict | None:
        with self._lock:
            return self._charges.find_one({"_id": charge_id})

    def get_by_transaction(self, merchant_transaction_id: str) -> dict | None:
        with self._lock:
            return self._charges.find_one({"merchantTransactionId": merchant_transaction_id})

    def mark_paid(self, charge_id: str, transaction_id: str | None, payment_instrument: Any) -> None:
        """pending/failed -> paid; a paid charge is left as it is."""
        with self._lock:
            self._charges.update_one(
                {"_id": charge_id, "paymentStatus": {"$ne": "paid"}},
                {"$set": {"paymentStatus": "paid", "transactionId": transaction_id,
                          "paymentInstrument": payment_instrument, "paidAt": time.time()}},
            )

    def mark_failed(self, charge_id: str) -> None:
        """pending -> failed. Never downgrades a paid charge: a late FAILED callback changes nothing."""
        with self._lock:
            self._charges.update_one({"_id": charge_id, "paymentStatus": "pending"},
                                     {"$set": {"paymentStatus": "failed"}})

    # -- the receipt flag -----------------------------------------------------------------
    def claim_receipt(self, charge_id: str) -> dict | None:
        """The seed's atomic claim: the document if this caller set the flag, else None."""
        with self._lock:
            return self._charges.find_one_and_update(
                {"_id": charge_id, "receiptGenerated": {"$ne": True}},
                {"$set": {"receiptGenerated": True}},
                return_document=ReturnDocument.AFTER,
            )

    def release_claim(self, charge_id: str) -> None:
        """The seed's rollback: reset the flag so a later delivery can retry."""
        with self._lock:
            self._charges.update_one({"_id": charge_id}, {"$set": {"receiptGenerated": False}})

    # -- the lease (hardened claim: a token and an expiry, fenced completion) --------------------
    def claim_lease(self, charge_id: str, token: str, lease_seconds: float) -> dict | None:
        """Take the receipt claim when nobody holds it or the holder's lease has expired."""
        now = time.time()
        with self._lock:
            return self._charges.find_one_and_update(
                {"_id": charge_id, "receiptGenerated": {"$ne": True},
                 "$or": [{"receiptClaim": None}, {"receiptClaim.expiresAt": {"$lt": now}}]},
                {"$set": {"receiptClaim": {"token": token, "expiresAt": now + lease_seconds}}},
                return_document=ReturnDocument.AFTER,
            )

    def complete_lease(self, charge_id: str, token: str, receipt_path: str) -> bool:
        """Mark done only if the claim is still ours: a slow former owner cannot overwrite a newer one."""
        with self._lock:
            result = self._charges.update_one(
                {"_id": charge_id, "receiptClaim.token": token, "receiptGenerated": {"$ne": True}},
                {"$set": {"receiptGenerated": True, "receiptPath": receipt_path}, "$unset": {"receiptClaim": ""}},
            )
        return result.modified_count == 1

    def release_lease(self, charge_id: str, token: str) -> None:
        """Give the claim back after a failed generation (only if it is still ours)."""
        with self._lock:
            self._charges.update_one({"_id": charge_id, "receiptClaim.token": token}, {"$unset": {"receiptClaim": ""}})

    def reset_lost_receipt(self, charge_id: str, receipt_path: str) -> bool:
        """A completed receipt whose file is gone: reopen the payment so it can be generated again."""
        with self._lock:
            result = self._charges.update_one(
                {"_id": charge_id, "receiptGenerated": True, "receiptPath": receipt_path},
                {"$set": {"receiptGenerated": False, "receiptPath": None}},
            )
        return result.modified_count == 1

    def paid_without_receipt(self, limit: int = 1000) -> list[dict]:
        """Paid charges with no completed receipt (stuck or rolled back), for the sweep."""
        with self._lock:
            return list(self._charges.find({"paymentStatus": "paid", "receiptGenerated": {"$ne": True}}).limit(limit))

    def completed_receipts(self, limit: int = 10_000) -> list[dict]:
        """Charges marked done, for the sweep to check their files are really there."""
        with self._lock:
            return list(self._charges.find({"receiptGenerated": True, "receiptPath": {"$ne": None}},
                                           {"_id": 1, "receiptPath": 1, "receiptGenerated": 1,
                                            "merchantTransactionId": 1}).limit(limit))

    def set_receipt_flag(self, charge_id: str) -> None:
        """Set ``receiptGenerated`` unconditionally (the vulnerable step's late, non-atomic claim)."""
        with self._lock:
            self._charges.update_one({"_id": charge_id}, {"$set": {"receiptGenerated": True}})

    def save_receipt(self, charge_id: str, receipt_path: str) -> None:
        with self._lock:
            self._charges.update_one({"_id": charge_id},
                                     {"$set": {"receiptPath": receipt_path, "receiptGenerated": True}})


def open_store(mongo_uri: str | None, database: str = "race_harness", *, timeout_ms: int = 5000) -> ChargeStore:
    """A store on ``mongo_uri``, or the embedded mongomock store when it is None."""
    if not mongo_uri:
        import mongomock  # the embedded default; imported only when used

        store = ChargeStore(mongomock.MongoClient()[database][COLLECTION], lock=threading.Lock())
        store.ensure_indexes()
        return store
    from pymongo.errors import ConfigurationError, InvalidName, PyMongoError

    try:
        client: pymongo.MongoClient = pymongo.MongoClient(
            mongo_uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms)
    except (ConfigurationError, ValueError, TypeError) as exc:  # InvalidURI is a ConfigurationError
        raise StoreUnavailable(f"malformed MongoDB URI {mongo_uri!r}: {exc}") from None
    try:
        store = ChargeStore(client[database][COLLECTION], client=client)
        store.ensure_indexes()  # the first round trip: fails here when nothing answers at the URI
    except InvalidName as exc:
        client.close()
        raise StoreUnavailable(f"invalid database name {database!r}: {exc}") from None
    except PyMongoError as exc:
        client.close()
        text = str(exc) or exc.__class__.__name__
        first_line = text.split(", Timeout:")[0].split(" (configured timeouts")[0].splitlines()[0]
        raise StoreUnavailable(f"cannot reach MongoDB at {mongo_uri} within {timeout_ms / 1000:g} s: "
                               f"{first_line}") from None
    return store
