"""The legacy target description (``--target URL``, ``--target-file``): the reference service's contract
with other paths or keys, and its conversion into the one description every stage takes, a ``Profile``.

A ``Target`` is met only at the edge: the CLI, the Locust scenarios and the reference provider turn
it into a Profile once (``Target.to_profile``). ``harness/profiles/reference.toml`` is the same
contract written as a user would write it, and a test keeps the two equal. The few client calls a
Target keeps (create a payment, sign a callback) serve tests and tools that talk to the reference
service directly.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
from pydantic import ConfigDict

from harness.senders.base import PreparedRequest
from harness.signing import callback_payload, signed_callback, status_headers
from harness.errors import TargetError
from harness.profile.contract import Profile
from harness.profile.schema import parse_profile
from harness.profile.payments import Payment
from harness.profile.schema import STATES
from harness.signing.phonepe_v1 import CODES

TARGET_VERSION = 1

# PhonePe's published UAT (sandbox) credentials, the reference service's defaults.
UAT_MERCHANT_ID = "PGTESTPAYUAT"
UAT_SALT_KEY = "099eb0cd-02cf-4e2a-8aca-3e6c6aff0399"
UAT_SALT_INDEX = 1


SIGNING_SCHEMES = ("phonepe-v1",)  # the schemes the harness can sign with


@dataclass(frozen=True)
class Signing:
    """PhonePe PG v1 X-VERIFY signing (sha256(payload + salt key) ### salt index)."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # a misspelt field in a target file is an error

    scheme: str = "phonepe-v1"
    merchant_id: str = UAT_MERCHANT_ID
    salt_key: str = UAT_SALT_KEY
    salt_index: int = UAT_SALT_INDEX

    def __post_init__(self) -> None:
        # A scheme the harness cannot sign with must stop the run: signing it as PhonePe v1 instead
        # would send deliveries the service rightly refuses, and judge that.
        if self.scheme not in SIGNING_SCHEMES:
            raise ValueError(f"signing.scheme {self.scheme!r} is not one the harness can sign with "
                             f"(known: {', '.join(SIGNING_SCHEMES)})")


@dataclass(frozen=True)
class Target:
    __pydantic_config__ = ConfigDict(extra="forbid")
    base_url: str
    create_path: str = "/api/public/service-charges"
    callback_path: str = "/api/public/service-charges/phonepe/callback"
    verify_path: str = "/api/public/service-charges/{id}/verify"
    state_path: str = "/api/public/service-charges/{id}"
    health_path: str = "/healthz"
    metrics_path: str | None = "/metrics"
    # Where injected faults can be changed at runtime (the reference service's admin endpoint).
    faults_path: str | None = "/_admin/faults"
    # Where receipts are written (a directory this machine can read), and where state lives.
    receipts_dir: str | None = None
    mongo_uri: str | None = None
    mongo_database: str = "race_harness"
    mongo_collection: str = "servicecharges"
    signing: Signing = field(default_factory=Signing)
    # The JSON field of a callback/verify answer that says what happened to the receipt.
    outcome_field: str = "receipt"
    # The JSON field by which the service marks an error answer as a fault it was told to inject.
    injected_fault_field: str | None = "injectedFault"
    # The payment gateway's status API the service's verify path asks (a simulator in local runs);
    # when set, the harness tells it each paid payment's state before a verify call races.
    gateway_url: str | None = None
    version: int = TARGET_VERSION

    # -- building requests ------------------------------------------------------------------
    def url(self, path: str, payment: Payment | None = None) -> str:
        if payment is not None:
            path = path.format(id=payment.id, merchantTransactionId=payment.merchant_transaction_id)
        return self.base_url.rstrip("/") + path

    def callback_request(self, payment: Payment, state: str = "COMPLETED") -> PreparedRequest:
        payload = callback_payload(self.signing.merchant_id, payment.merchant_transaction_id, payment.amount, state)
        body, headers = signed_callback(payload, self.signing.salt_key, self.signing.salt_index)
        return PreparedRequest("POST", self.url(self.callback_path), tuple(headers.items()), body,
                               payment=payment.id, channel="callback", meta={"state": state})

    def verify_request(self, payment: Payment) -> PreparedRequest:
        return PreparedRequest("POST", self.url(self.verify_path, payment), (), b"",
                               payment=payment.id, channel="verify", meta={"state": "COMPLETED"})

    def outcome_of(self, body: Any) -> str | None:
        value = body.get(self.outcome_field) if isinstance(body, dict) else None
        return value if isinstance(value, str) else None

    def injected_fault_of(self, body: Any) -> str | None:
        if not self.injected_fault_field or not isinstance(body, dict):
            return None
        value = body.get(self.injected_fault_field)
        return str(value) if value else None

    # -- talking to the service -------------------------------------------------------------
    def create_payment(self, client: httpx.Client, amount: int, *, vendor: str = "race-harness vendor",
                       exhibition: str = "EXPO-1") -> Payment:
        response = client.post(self.url(self.create_path),
                               json={"vendorName": vendor, "exhibitionId": exhibition, "amount": amount})
        if response.status_code not in (200, 201):
            raise TargetError(f"creating a payment answered {response.status_code}: {response.text[:300]}")
        data = response.json()
        return Payment(id=str(data["id"]), merchant_transaction_id=data["merchantTransactionId"], amount=amount)

    def set_gateway_state(self, client: httpx.Client, payment: Payment, state: str = "COMPLETED") -> None:
        """Tell the gateway simulator what its status API should say for this payment."""
        if not self.gateway_url:
            raise TargetError("verify calls need a gateway_url (the PhonePe status API the service asks)")
        response = client.put(f"{self.gateway_url.rstrip('/')}/sim/transactions/{payment.merchant_transaction_id}",
                              json={"amount": payment.amount, "state": state})
        if response.status_code != 200:
            raise TargetError(f"gateway simulator answered {response.status_code}: {response.text[:300]}")

    def status_headers(self, payment: Payment) -> dict[str, str]:
        path = f"/pg/v1/status/{self.signing.merchant_id}/{payment.merchant_transaction_id}"
        return status_headers(path, self.signing.merchant_id, self.signing.salt_key, self.signing.salt_index)

    # -- plain data -------------------------------------------------------------------------
    def to_profile(self, origin: dict[str, Any] | None = None) -> Profile:
        """This description as the Profile every stage of a run takes."""
        return profile_of_target(self, origin)

    def with_(self, **changes: Any) -> "Target":
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["signing"]["salt_key"] = "***"  # reports never carry the secret
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "target") -> "Target":
        """A Target from plain data (a target file, a report's config); ConfigError names any wrong field."""
        from harness.errors import ConfigError
        from harness.profile.validate import validated

        if not isinstance(data, dict):
            raise ConfigError(f"{source}: a target is a JSON object of fields, not {type(data).__name__}")
        if data.get("version", TARGET_VERSION) != TARGET_VERSION:
            raise ConfigError(f"{source}: version: unsupported target version {data.get('version')!r}")
        return validated(cls, data, source)

    @classmethod
    def load(cls, path: str | Path) -> "Target":
        return cls.from_dict(json.loads(Path(path).read_text()), source=f"target file {path}")


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


def profile_of_target(t: Target, origin: dict[str, Any] | None = None) -> Profile:
    """The Profile of a legacy description: the same contract, and where it came from (for the report)."""
    return Profile(parse_profile(profile_data_of_target(t), "target"),
                   origin=origin or {"from": "target", "base_url": t.base_url})
