"""What the probes forge is worked out from each scheme, never from a table per gateway.

Each scheme's credentials, signature headers and body coverage are found by signing: these tests pin
what that finds for every scheme, and that a forged value fails the provider's own verifier where one
is installed (Stripe's SDK, the Standard Webhooks library).
"""

from __future__ import annotations

import json
import time

import pytest
import standardwebhooks
import stripe

from harness.signing import callback_body, callback_payload, scheme
from harness.signing.forgery import (
    STALE_AGE, altered, covers_body, credentials, signature_headers, stale_time, with_other_credentials,
)

WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BODY = json.dumps({"id": "evt_1", "amount": 1000}).encode()
OTHER_BODY = json.dumps({"id": "evt_1", "amount": 1}).encode()
V1_BODY = callback_body(callback_payload("M", "MT1", 1000))
V1_OTHER = callback_body(callback_payload("M", "MT1", 1))

SCHEMES = {
    "phonepe-v1": (dict(salt_key="salt-key-123456", salt_index=1), V1_BODY, V1_OTHER, ["X-VERIFY"]),
    "phonepe-v2": (dict(username="merchant-user", password="merchant-password"), BODY, OTHER_BODY, ["Authorization"]),
    "razorpay": (dict(secret="rzp-webhook-secret"), BODY, OTHER_BODY, ["X-Razorpay-Signature"]),
    "stripe": (dict(secret="whsec_stripe_secret_value"), BODY, OTHER_BODY, ["Stripe-Signature"]),
    "cashfree": (dict(secret="cashfree-client-secret"), BODY, OTHER_BODY, ["x-webhook-signature"]),
    "standard-webhooks": (dict(secret=WHSEC), BODY, OTHER_BODY, ["webhook-signature"]),
    "hmac": (dict(secret="generic-secret-value", header="X-Hub-Signature-256", prefix="sha256="), BODY, OTHER_BODY,
             ["X-Hub-Signature-256"]),
}


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_every_signing_scheme_names_its_credentials_by_keeping_them_out_of_repr(name):
    settings, *_ = SCHEMES[name]
    found = credentials(scheme(name, **settings))
    assert found and set(found) <= set(settings)
    assert all(str(settings[f]) not in repr(scheme(name, **settings)) for f in found)


def test_a_scheme_that_signs_nothing_has_no_credentials_and_no_signature_header():
    none = scheme("none")
    assert credentials(none) == [] and signature_headers(none, BODY) == []


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_the_signature_headers_are_those_that_change_with_the_credentials(name):
    settings, body, _, expected = SCHEMES[name]
    assert signature_headers(scheme(name, **settings), body) == expected


@pytest.mark.parametrize("name", sorted(set(SCHEMES) - {"phonepe-v2"}))
def test_every_scheme_but_phonepe_v2_covers_the_body(name):
    settings, body, other, _ = SCHEMES[name]
    assert covers_body(scheme(name, **settings), body, other)


def test_phonepe_v2_authorization_does_not_cover_the_body():
    settings, body, other, _ = SCHEMES["phonepe-v2"]
    assert not covers_body(scheme("phonepe-v2", **settings), body, other)


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_other_credentials_sign_differently_and_keep_the_scheme_usable(name):
    settings, body, _, expected = SCHEMES[name]
    real = scheme(name, **settings)
    other = with_other_credentials(real)
    assert type(other) is type(real)
    header = expected[0]
    assert other.sign(body, now=1_700_000_000)[header] != real.sign(body, now=1_700_000_000)[header]


@pytest.mark.parametrize("value", ["t=1700000000,v1=" + "ab" * 32, "0f" * 32 + "###1", "v1,SGVsbG8gd29ybGQhIQ=="])
def test_an_altered_signature_keeps_its_form_and_differs_in_one_character(value):
    changed = altered(value)
    assert len(changed) == len(value) and sum(a != b for a, b in zip(value, changed)) == 1
    assert changed[:3] == value[:3] and changed[-4:] == value[-4:]  # "t=1", "v1,", "###1", "==" kept


def test_a_stripe_signature_from_other_credentials_fails_stripes_own_verifier():
    real = scheme("stripe", secret="whsec_stripe_secret_value")
    forged = with_other_credentials(real).sign(BODY)["Stripe-Signature"]
    stripe.Webhook.construct_event(BODY.decode(), real.sign(BODY)["Stripe-Signature"], real.secret)  # the real one passes
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(BODY.decode(), forged, real.secret)


def test_a_stale_stripe_signature_is_valid_but_outside_stripes_tolerance():
    real = scheme("stripe", secret="whsec_stripe_secret_value")
    stale = real.sign(BODY, now=stale_time())["Stripe-Signature"]
    assert STALE_AGE > 300
    stripe.Webhook.construct_event(BODY.decode(), stale, real.secret, tolerance=2 * STALE_AGE)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(BODY.decode(), stale, real.secret)  # the SDK's default tolerance: 300 s


def test_an_altered_standard_webhooks_signature_fails_the_librarys_verifier():
    real = scheme("standard-webhooks", secret=WHSEC)
    headers = real.sign(BODY, now=time.time(), event_id="msg_1")
    verifier = standardwebhooks.Webhook(WHSEC)
    verifier.verify(BODY, headers)
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        verifier.verify(BODY, {**headers, "webhook-signature": altered(headers["webhook-signature"])})


def test_the_catalogue_names_every_probe_once_whatever_applies():
    from harness.probe.probes import PROBE_NAMES, catalogue
    from harness.profile import load_profile

    for name in ("reference", "reference-v2"):
        applies, skipped = catalogue(load_profile(name, {"RECEIPTS_DIR": "/tmp/r"}))
        assert sorted([p.name for p in applies] + [s.name for s in skipped]) == sorted(PROBE_NAMES)
