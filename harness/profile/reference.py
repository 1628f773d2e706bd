"""A legacy target description (``Target``: the reference service's contract with other paths or keys) as a Profile.

The reference service is one profile among many: ``harness/profiles/reference.toml`` is the same
contract written as a user would write it, and a test keeps the two equal.
"""

from __future__ import annotations

from typing import Any

from ..signing.phonepe_v1 import CODES
from ..target import Target
from .schema import STATES

REFERENCE_VENDOR = {"vendorName": "race-harness vendor", "exhibitionId": "EXPO-1", "amount": "{amount}"}
# PhonePe PG v1's words for each state, as its server-to-server callback carries them.
V1_STATES = {state: {"state": state, "code": CODES[state], "success": state == "COMPLETED",
                     "message": f"Your payment is {state.lower()}",
                     "response_code": "SUCCESS" if state == "COMPLETED" else state} for state in STATES}


def v1_callback_body(merchant_id: str) -> dict[str, Any]:
    """The template of a PG v1 callback payload (sent base64-wrapped: ``envelope = "phonepe-v1"``)."""
    return {"success": "{state.success}", "code": "{state.code}", "message": "{state.message}",
            "data": {"merchantId": merchant_id, "merchantTransactionId": "{transaction}",
                     "transactionId": "T{random}", "amount": "{amount}", "state": "{state}",
                     "responseCode": "{state.response_code}",
                     "paymentInstrument": {"type": "UPI", "utr": "000000000000"}}}


def _path(path: str) -> str:
    return path.replace("{merchantTransactionId}", "{transaction}")


def profile_data_of_target(t: Target) -> dict[str, Any]:
    verify: dict[str, Any] = {"method": "POST", "path": _path(t.verify_path), "states": {"COMPLETED": "COMPLETED"},
                              "gateway": "phonepe-v1-simulator", "gateway_url": t.gateway_url or ""}
    fields = {"paid": {"field": "paymentStatus", "values": ["paid"]}, "claim": "receiptGenerated",
              "effect": "receiptPath", "effect_is": "name"}
    state = ({"source": "mongo", "uri": t.mongo_uri, "database": t.mongo_database, "collection": t.mongo_collection,
              "match": "_id", "by": "id", **fields} if t.mongo_uri else
             {"source": "http", "path": _path(t.state_path), **fields})
    answers: dict[str, Any] = {"field": t.outcome_field, "generated": ["generated"]}
    if t.injected_fault_field:
        answers["injected_fault_field"] = t.injected_fault_field
    data: dict[str, Any] = {
        "version": 1,
        "name": "reference",
        "base_url": t.base_url,
        "health_path": t.health_path,
        "payments": {"source": "http", "method": "POST", "path": t.create_path, "body": dict(REFERENCE_VENDOR),
                     "id": "id", "transaction": "merchantTransactionId"},
        "deliveries": {
            "callback": {"method": "POST", "path": t.callback_path, "envelope": "phonepe-v1",
                         "body": v1_callback_body(t.signing.merchant_id), "states": V1_STATES,
                         "signing": {"scheme": "phonepe-v1", "salt_key": t.signing.salt_key,
                                     "salt_index": t.signing.salt_index}},
            "verify": verify,
        },
        "answers": answers,
        "effects": [{"kind": "receipt", "source": "files", "dir": t.receipts_dir}] if t.receipts_dir else [],
        "state": state,
    }
    if t.metrics_path:
        data["metrics_path"] = t.metrics_path
    if t.faults_path:
        data["faults_path"] = t.faults_path
    return data


def profile_of_target(t: Target) -> "Profile":  # noqa: F821
    from . import Profile, parse_profile

    return Profile(parse_profile(profile_data_of_target(t), "target"))
