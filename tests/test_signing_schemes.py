"""Every signing scheme is checked by the provider's own verifier, not only by our code.

standardwebhooks, svix, stripe and razorpay install beside the harness. PhonePe's and Cashfree's
SDKs pin urllib3/requests below ours, so they live in a separate virtualenv built once (cached
under ~/.cache/race-harness) and are run in a subprocess; secrets reach it on stdin, never argv.
PhonePe PG v1 has no SDK on PyPI: the reference service's own parser stands in for it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import subprocess
import time
from dataclasses import dataclass
from typing import Callable

import pytest
import razorpay
import standardwebhooks.webhooks
import stripe
import svix.webhooks
from razorpay.errors import SignatureVerificationError

from harness.signing import (
    SCHEMES,
    Scheme,
    callback_body,
    callback_payload,
    redeliver,
    scheme,
    signed_callback,
    v2_webhook_body,
    v2_webhook_payload,
)
from harness.signing.base import digest
from reference_service.phonepe import BadRequest, Unauthorized, parse_callback

SDK_PINS = ("phonepe-pg-sdk-python==3.0.1", "cashfree-pg==6.0.1")
STRIPE_TOLERANCE_S = 300  # stripe.Webhook.construct_event's default
STANDARD_WEBHOOKS_TOLERANCE_S = 5 * 60


class Rejected(Exception):
    """A provider's verifier refused a delivery."""


# --- the providers' SDKs that cannot share our environment ------------------------------------

SDK_SCRIPT = r"""
import json, sys
case = json.load(sys.stdin)
try:
    if case["provider"] == "phonepe":
        from phonepe.sdk.pg.payments.v2.standard_checkout_client import StandardCheckoutClient
        # validate_callback reads no client state on its way to an answer; skipping __init__
        # skips the OAuth token fetch a real client starts, which needs PhonePe's servers.
        client = object.__new__(StandardCheckoutClient)
        r = client.validate_callback(case["username"], case["password"], case["authorization"], case["body"])
        out = {"ok": True, "event": r.event, "merchantOrderId": r.payload.merchant_order_id, "state": r.payload.state}
    else:
        from cashfree_pg.api_client import Cashfree
        cf = Cashfree(XEnvironment=Cashfree.SANDBOX, XClientId="race-harness", XClientSecret=case["secret"])
        r = cf.PGVerifyWebhookSignature(case["signature"], case["body"], case["timestamp"])
        out = {"ok": True, "type": r.type}
except Exception as exc:
    out = {"ok": False, "error": type(exc).__name__}
print(json.dumps(out))
"""


def sdk_python() -> str:
    """A Python with PhonePe's and Cashfree's SDKs: $RACE_HARNESS_SDK_PYTHON, or a venv built once."""
    if os.environ.get("RACE_HARNESS_SDK_PYTHON"):
        return os.environ["RACE_HARNESS_SDK_PYTHON"]
    from _cached_venv import cached_venv

    return str(cached_venv("provider-sdks", SDK_PINS) / "bin" / "python")


def run_sdk(case: dict[str, str]) -> dict[str, str]:
    """One verification by a provider SDK in its own environment; Rejected when it refuses."""
    done = subprocess.run([sdk_python(), "-c", SDK_SCRIPT], input=json.dumps(case), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    if not answer["ok"]:
        raise Rejected(answer["error"])
    return answer


# --- each provider's verifier, raising Rejected ------------------------------------------------

def verify_phonepe_v1(s: Scheme, body: bytes, headers: dict[str, str]) -> None:
    try:
        parse_callback(body, headers.get("X-VERIFY"), salt_key=s.salt_key, salt_index=s.salt_index)
    except (BadRequest, Unauthorized) as exc:
        raise Rejected(str(exc)) from exc


def verify_phonepe_v2(s: Scheme, body: bytes, headers: dict[str, str]) -> None:
    run_sdk({"provider": "phonepe", "username": s.username, "password": s.password,
             "authorization": headers["Authorization"], "body": body.decode()})


def verify_razorpay(s: Scheme, body: bytes, headers: dict[str, str]) -> None:
    try:
        razorpay.Utility().verify_webhook_signature(body.decode(), headers["X-Razorpay-Signature"], s.secret)
    except SignatureVerificationError as exc:
        raise Rejected(str(exc)) from exc


def verify_stripe(s: Scheme, body: bytes, headers: dict[str, str]) -> None:
    try:
        stripe.Webhook.construct_event(body, headers["Stripe-Signature"], s.secret)
    except stripe.SignatureVerificationError as exc:
        raise Rejected(str(exc)) from exc


def verify_cashfree(s: Scheme, body: bytes, headers: dict[str, str]) -> None:
    run_sdk({"provider": "cashfree", "secret": s.secret, "signature": headers["x-webhook-signature"],
             "body": body.decode(), "timestamp": headers["x-webhook-timestamp"]})


def verify_standard_webhooks(s: Scheme, body: bytes, headers: dict[str, str]) -> None:
    try:
        standardwebhooks.webhooks.Webhook(s.secret).verify(body, headers)
    except standardwebhooks.webhooks.WebhookVerificationError as exc:
        raise Rejected(str(exc)) from exc


def verify_svix(s: Scheme, body: bytes, headers: dict[str, str]) -> None:
    try:
        svix.webhooks.Webhook(s.secret).verify(body, headers)
    except svix.webhooks.WebhookVerificationError as exc:
        raise Rejected(str(exc)) from exc


# --- the cases: a scheme, a body builder, and the verifier that judges it ----------------------

def event_body(amount: int) -> bytes:
    """A gateway event in the shape each provider's SDK parses (Cashfree's needs `type`)."""
    return json.dumps({"id": "evt_1", "type": "PAYMENT_SUCCESS_WEBHOOK", "event": "payment.captured",
                       "data": {"order": {"order_id": "MT1", "order_amount": amount}}}).encode()


def v1_body(amount: int) -> bytes:
    return callback_body(callback_payload("PGTESTPAYUAT", "MT1", amount))


def v2_body(amount: int) -> bytes:
    return v2_webhook_body(v2_webhook_payload("M1", "MO1", "OMO1", amount))


@dataclass(frozen=True)
class Case:
    id: str
    scheme: Scheme
    body: Callable[[int], bytes]
    verify: Callable[[Scheme, bytes, dict[str, str]], None]


def whsec() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


CASES = [
    Case("phonepe-v1", scheme("phonepe-v1", salt_key=secrets.token_hex(16), salt_index=2), v1_body, verify_phonepe_v1),
    Case("phonepe-v2", scheme("phonepe-v2", username="merchant", password=secrets.token_hex(8)), v2_body,
         verify_phonepe_v2),
    Case("razorpay", scheme("razorpay", secret=secrets.token_hex(12)), event_body, verify_razorpay),
    Case("stripe", scheme("stripe", secret="whsec_" + secrets.token_hex(16)), event_body, verify_stripe),
    Case("cashfree", scheme("cashfree", secret=secrets.token_hex(20)), event_body, verify_cashfree),
    Case("standard-webhooks", scheme("standard-webhooks", secret=whsec()), event_body, verify_standard_webhooks),
    Case("svix", scheme("standard-webhooks", secret=whsec(), header_prefix="svix"), event_body, verify_svix),
    # The generic scheme, set up as two providers, must satisfy their verifiers too.
    Case("hmac-as-razorpay", scheme("hmac", secret=secrets.token_hex(12), header="X-Razorpay-Signature"),
         event_body, verify_razorpay),
    Case("hmac-as-cashfree", scheme("hmac", secret=secrets.token_hex(12), header="x-webhook-signature",
                                    encoding="base64", signed="{timestamp}{body}",
                                    timestamp_header="x-webhook-timestamp", timestamp_unit="ms"),
         event_body, verify_cashfree),
]
BY_ID = {c.id: c for c in CASES}
BODY_COVERING = [c for c in CASES if c.id != "phonepe-v2"]  # v2's header covers no body
TIMED = [BY_ID["stripe"], BY_ID["standard-webhooks"], BY_ID["svix"]]  # verifiers that enforce a tolerance


def ids(cases: list[Case]) -> list[str]:
    return [c.id for c in cases]


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_each_scheme_round_trips_through_its_providers_verifier(case: Case) -> None:
    body = case.body(100)
    case.verify(case.scheme, body, case.scheme.sign(body))


@pytest.mark.parametrize("case", BODY_COVERING, ids=ids(BODY_COVERING))
def test_a_tampered_body_is_rejected_by_the_providers_verifier(case: Case) -> None:
    headers = case.scheme.sign(case.body(100))
    with pytest.raises(Rejected):
        case.verify(case.scheme, case.body(100_000), headers)


def test_phonepe_v2_authorization_is_rejected_by_the_sdk_under_other_credentials() -> None:
    case = BY_ID["phonepe-v2"]
    body = case.body(100)
    headers = scheme("phonepe-v2", username="merchant", password=secrets.token_hex(8)).sign(body)
    with pytest.raises(Rejected):
        case.verify(case.scheme, body, headers)


@pytest.mark.parametrize("state", ["COMPLETED", "FAILED"])
def test_phonepe_v2_webhook_body_is_read_by_the_sdk_as_the_order_it_describes(state: str) -> None:
    s = BY_ID["phonepe-v2"].scheme
    body = v2_webhook_body(v2_webhook_payload("M1", "MO-42", "OMO-42", 4200, state))
    answer = run_sdk({"provider": "phonepe", "username": s.username, "password": s.password,
                      "authorization": s.sign(body)["Authorization"], "body": body.decode()})
    assert (answer["event"], answer["merchantOrderId"], answer["state"]) == (
        f"checkout.order.{state.lower()}", "MO-42", state)


def test_a_phonepe_v2_webhook_for_a_pending_order_is_refused() -> None:
    with pytest.raises(ValueError, match="COMPLETED or FAILED"):
        v2_webhook_payload("M1", "MO1", "OMO1", 100, "PENDING")


@pytest.mark.parametrize("case", TIMED, ids=ids(TIMED))
def test_a_signature_older_than_the_tolerance_is_rejected_by_the_providers_verifier(case: Case) -> None:
    tolerance = STRIPE_TOLERANCE_S if case.id == "stripe" else STANDARD_WEBHOOKS_TOLERANCE_S
    body = case.body(100)
    with pytest.raises(Rejected):
        case.verify(case.scheme, body, case.scheme.sign(body, now=time.time() - tolerance - 30))


@pytest.mark.parametrize("case", TIMED, ids=ids(TIMED))
def test_a_stale_duplicate_is_re_signed_and_accepted_again(case: Case) -> None:
    body = case.body(100)
    first = case.scheme.sign(body, now=time.time() - 3600)
    again = redeliver(case.scheme, body, first)
    case.verify(case.scheme, body, again)


def test_cashfree_signature_covers_its_timestamp() -> None:
    """Cashfree's SDK checks no tolerance itself, but a redelivery at a new time needs a new signature."""
    case = BY_ID["cashfree"]
    body = case.body(100)
    headers = case.scheme.sign(body, now=1_700_000_000)
    later = {**headers, "x-webhook-timestamp": str(int(headers["x-webhook-timestamp"]) + 1000)}
    with pytest.raises(Rejected):
        case.verify(case.scheme, body, later)


ALL_SCHEMES = CASES + [Case("none", scheme("none"), event_body, lambda s, b, h: None)]


@pytest.mark.parametrize("case", ALL_SCHEMES, ids=ids(ALL_SCHEMES))
def test_binds_time_is_true_exactly_when_the_signature_changes_with_the_send_time(case: Case) -> None:
    body = case.body(100)
    changes = case.scheme.sign(body, now=1_700_000_000) != case.scheme.sign(body, now=1_700_000_900)
    assert case.scheme.binds_time is changes


@pytest.mark.parametrize("case", ALL_SCHEMES, ids=ids(ALL_SCHEMES))
def test_a_duplicate_is_replayed_byte_for_byte_unless_the_scheme_binds_time(case: Case) -> None:
    body = case.body(100)
    first = case.scheme.sign(body, now=1_700_000_000)
    again = redeliver(case.scheme, body, first, now=1_700_000_900)
    assert (again == first) is (not case.scheme.binds_time)


def test_a_standard_webhooks_duplicate_keeps_its_webhook_id() -> None:
    s, body = BY_ID["standard-webhooks"].scheme, event_body(100)
    first = s.sign(body, now=1_700_000_000)
    assert redeliver(s, body, first, now=1_700_000_900)["webhook-id"] == first["webhook-id"]


def test_no_signing_adds_no_header() -> None:
    assert scheme("none").sign(event_body(100)) == {}


def test_phonepe_v1_signed_callback_is_the_published_formula() -> None:
    salt_key = secrets.token_hex(16)
    payload = callback_payload("PGTESTPAYUAT", "MT7", 1234)
    body, headers = signed_callback(payload, salt_key, 3)
    response = json.loads(body)["response"]
    assert json.loads(base64.b64decode(response)) == payload
    assert headers == {"Content-Type": "application/json",
                       "X-VERIFY": hashlib.sha256((response + salt_key).encode()).hexdigest() + "###3"}


def test_generic_hmac_prefix_and_hash_follow_the_settings() -> None:
    secret, body = secrets.token_hex(8), event_body(100)
    s = scheme("hmac", secret=secret, header="X-Hub-Signature-256", prefix="sha256=", hash="sha512")
    assert s.sign(body) == {"X-Hub-Signature-256": "sha256=" + digest(secret.encode(), body, "sha512")}


def test_an_unknown_scheme_name_is_a_value_error_naming_the_known_ones() -> None:
    with pytest.raises(ValueError) as err:
        scheme("paypal", secret="x")
    named = str(err.value).split("known: ", 1)[1].split(", ")
    assert "paypal" in str(err.value) and named == list(SCHEMES)


@pytest.mark.parametrize("name, settings, complaint", [
    ("razorpay", {}, "secret"),
    ("razorpay", {"secret": ""}, "secret"),
    ("standard-webhooks", {"secret": "whsec_not*base64"}, "whsec_"),
    ("hmac", {"secret": "s", "hash": "md5"}, "sha256, sha1, sha512"),
    ("hmac", {"secret": "s", "signed": "{timestamp}"}, "{body}"),
    ("hmac", {"secret": "s", "signed": "timestamp.body"}, "timestamp_header"),
    ("phonepe-v1", {"salt_key": "k", "salt_index": "one"}, "salt_index"),
])
def test_a_bad_setting_is_a_value_error_naming_it(name: str, settings: dict, complaint: str) -> None:
    with pytest.raises(ValueError, match=re.escape(complaint)):
        scheme(name, **settings)


SECRET_WORDS = {"secret", "salt_key", "password", "username"}


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_no_secret_appears_in_a_schemes_repr(case: Case) -> None:
    hidden = [v for k, v in vars(case.scheme).items() if k in SECRET_WORDS]
    assert hidden and not any(v in repr(case.scheme) or v in str(case.scheme) for v in hidden)


def test_a_bad_setting_never_echoes_the_secret_beside_it() -> None:
    secret = secrets.token_hex(12)
    with pytest.raises(ValueError) as err:
        scheme("hmac", secret=secret, encoding="base32")
    assert secret not in str(err.value)
