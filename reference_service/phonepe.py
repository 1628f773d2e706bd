"""PhonePe's PG v1 callback verification, payload schema and status API, and its PG v2 order webhooks,
service side."""

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
    """The X-VERIFY checksum (v1) or the Authorization header (v2) is missing or wrong (401)."""


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


# -- PG v2 webhooks -----------------------------------------------------------------------------------
# PhonePe v2 sends order events as plain JSON with ``Authorization: sha256_hex("username:password")``,
# the username and password the merchant set for the webhook on PhonePe's dashboard. The header
# covers neither the body nor a time: it only says the sender knows the credentials.

WEBHOOK_EVENTS = {"checkout.order.completed": "COMPLETED", "checkout.order.failed": "FAILED"}


class PaymentDetail(BaseModel):
    model_config = ConfigDict(extra="allow")

    transactionId: str | None = Field(default=None, max_length=128)
    paymentMode: str | None = Field(default=None, max_length=64)
    state: str | None = Field(default=None, max_length=32)


class OrderPayload(BaseModel):
    model_config = ConfigDict(extra="allow")

    merchantId: str = Field(min_length=1, max_length=64)
    merchantOrderId: str = Field(min_length=1, max_length=64)
    orderId: str = Field(min_length=1, max_length=128)
    state: Literal["COMPLETED", "FAILED"]
    amount: int = Field(gt=0)
    paymentDetails: list[PaymentDetail]


class OrderWebhook(BaseModel):
    model_config = ConfigDict(extra="allow")

    event: str = Field(min_length=1, max_length=64)
    payload: OrderPayload


def webhook_authorization(username: str, password: str) -> str:
    """PhonePe v2's webhook ``Authorization``: lowercase hex sha256 of ``username:password``."""
    return hashlib.sha256(f"{username}:{password}".encode()).hexdigest()


def verify_authorization(header: str | None, username: str, password: str) -> None:
    if not header:
        raise Unauthorized("missing Authorization header")
    expected = webhook_authorization(username, password)
    if not hmac.compare_digest(header.strip().encode(), expected.encode()):
        raise Unauthorized("Authorization does not match the webhook credentials")


def parse_webhook(raw_body: bytes, authorization: str | None, *, username: str, password: str) -> PaymentPayload:
    """A v2 order webhook -> the payment it reports, as the v1 payload the callback path takes.

    ``merchantOrderId`` is the charge's merchantTransactionId; the transaction id is the last
    payment attempt's. Unauthorized before anything of the body is read, BadRequest when it is malformed,
    an unknown event, or a state the event does not carry.
    """
    verify_authorization(authorization, username, password)
    try:
        body = json.loads(raw_body)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("body is not JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    event = body.get("event")
    if event not in WEBHOOK_EVENTS:
        raise BadRequest(f"unknown event {str(event)[:64]!r}: expected one of {', '.join(WEBHOOK_EVENTS)}")
    try:
        webhook = OrderWebhook.model_validate(body)
    except ValidationError as exc:
        raise BadRequest(f"webhook does not match the schema: {exc.errors(include_url=False)[:3]}") from None
    order = webhook.payload
    if order.state != WEBHOOK_EVENTS[event]:
        raise BadRequest(f"event {event} carries state {WEBHOOK_EVENTS[event]}, not {order.state}")
    last = order.paymentDetails[-1] if order.paymentDetails else None
    instrument = {"type": last.paymentMode} if last is not None and last.paymentMode else None
    return PaymentPayload(
        success=order.state == "COMPLETED",
        code="PAYMENT_SUCCESS" if order.state == "COMPLETED" else "PAYMENT_ERROR",
        message=event,
        data=PaymentData(merchantId=order.merchantId, merchantTransactionId=order.merchantOrderId,
                         transactionId=last.transactionId if last is not None else None, amount=order.amount,
                         state=order.state, paymentInstrument=instrument, orderId=order.orderId))
