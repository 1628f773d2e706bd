"""PhonePe's (PG v1) callback verification, payload schema and status API, service side."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError



class BadRequest(Exception):
    """The request is malformed (400)."""


class Unauthorized(Exception):
    """The X-VERIFY checksum is missing or wrong (401)."""


class GatewayError(Exception):
    """PhonePe's status API could not be asked or gave a bad answer (502)."""


class PaymentData(BaseModel):
    model_config = ConfigDict(extra="allow")

    merchantId: str = Field(min_length=1, max_length=64)
    merchantTransactionId: str = Field(min_length=1, max_length=64)
    transactionId: str | None = Field(default=None, max_length=128)
    amount: int = Field(gt=0)
    state: Literal["COMPLETED", "FAILED", "PENDING"]
    responseCode: str | None = None
    paymentInstrument: dict[str, Any] | None = None


class PaymentPayload(BaseModel):
    model_config = ConfigDict(extra="allow")

    success: bool
    code: str = Field(min_length=1, max_length=64)
    message: str | None = None
    data: PaymentData


def checksum(message: str, salt_key: str, salt_index: int) -> str:
    """PhonePe's X-VERIFY: sha256_hex(message + saltKey) + '###' + saltIndex."""
    return hashlib.sha256((message + salt_key).encode()).hexdigest() + "###" + str(salt_index)


def verify_checksum(header: str | None, message: str, salt_key: str, salt_index: int) -> None:
    if not header:
        raise Unauthorized("missing X-VERIFY header")
    expected = checksum(message, salt_key, salt_index)
    if not hmac.compare_digest(header.strip().encode(), expected.encode()):
        raise Unauthorized("X-VERIFY checksum does not match")


def parse_callback(raw_body: bytes, x_verify: str | None, *, salt_key: str, salt_index: int) -> PaymentPayload:
    """Body ``{"response": base64(JSON)}`` -> the validated payload, or BadRequest/Unauthorized."""
    if not x_verify:
        raise Unauthorized("missing X-VERIFY header")
    try:
        body = json.loads(raw_body)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("body is not JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("response"), str):
        raise BadRequest("body must be an object with a string 'response'")
    response = body["response"]
    verify_checksum(x_verify, response, salt_key, salt_index)
    try:
        decoded = base64.b64decode(response, validate=True)
        payload = json.loads(decoded)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise BadRequest("'response' is not base64 of JSON") from None
    return validate_payload(payload)


def validate_payload(payload: Any) -> PaymentPayload:
    try:
        return PaymentPayload.model_validate(payload)
    except ValidationError as exc:
        raise BadRequest(f"payload does not match the schema: {exc.errors(include_url=False)[:3]}") from None


async def fetch_status(client: httpx.AsyncClient, base_url: str, merchant_id: str, merchant_transaction_id: str,
                       *, salt_key: str, salt_index: int) -> PaymentPayload:
    """GET {base}/pg/v1/status/{merchantId}/{merchantTransactionId}, signed over the path."""
    path = f"/pg/v1/status/{merchant_id}/{merchant_transaction_id}"
    headers = {"X-VERIFY": checksum(path, salt_key, salt_index), "X-MERCHANT-ID": merchant_id,
               "Content-Type": "application/json"}
    try:
        response = await client.get(base_url.rstrip("/") + path, headers=headers)
    except httpx.HTTPError as exc:
        raise GatewayError(f"status API unreachable: {exc.__class__.__name__}") from None
    if response.status_code >= 500 or response.status_code in (401, 403):
        raise GatewayError(f"status API answered {response.status_code}")
    try:
        payload = response.json()
    except ValueError:
        raise GatewayError("status API answered non-JSON") from None
    try:
        return PaymentPayload.model_validate(payload)
    except ValidationError:
        raise GatewayError("status API answer does not match the schema") from None
