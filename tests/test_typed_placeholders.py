"""Typed placeholders: a template value that is exactly ``{name:type}`` is a number, a date or an ObjectId.

A MongoDB insert (``[payments]`` with ``source = "mongo"``) stores native values (a double, a BSON
date, an ObjectId); a JSON body (deliveries, http payments) carries a number as a number, a date as
ISO-8601 text and an ObjectId as its hex, and is signed as sent. Inside a longer string a placeholder
stays text, and the untyped placeholders give what they always gave. A type a placeholder cannot
take is one error when the profile is loaded. The inserts here go to mongomock (in-process) and,
in the one slow test, to a real MongoDB wire server.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import bson
import httpx
import mongomock
import pytest
from bson import ObjectId

from harness.profile import Payment, Profile, ProfileError, load_profile
from harness.profile.payments import make_payments
from harness.progress import no_progress

SECRET = "rzp-typed-placeholders-test-secret"
CAMPAIGN = "64f1c0ffee0123456789abcd"
PAYMENT = Payment("6650a1b2c3d4e5f601234567", "RH0001", 452_720)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

PROFILE = """\
version = 1
name = "donations"
base_url = "http://127.0.0.1:9"

[payments]
source = "mongo"
uri = "mongodb://127.0.0.1:9"
database = "donations"
collection = "donations"
document = {document}

[deliveries.callback]
path = "/webhooks/razorpay"
body = {body}
states = {{ COMPLETED = "payment.captured" }}
signing = {{ scheme = "razorpay", secret = "${{RZP_SECRET}}" }}
"""
DOCUMENT = '{ orderId = "{transaction}", amount = "{amount}" }'
BODY = '{ event = "{state}", order_id = "{transaction}", amount = "{amount}" }'


def profile(tmp_path: Path, *, document: str = DOCUMENT, body: str = BODY, **variables: str) -> Profile:
    path = tmp_path / "donations.toml"
    path.write_text(PROFILE.format(document=document, body=body))
    return load_profile(path, {"RZP_SECRET": SECRET, "CAMPAIGN_ID": CAMPAIGN, **variables})


@pytest.fixture
def mongo(monkeypatch) -> mongomock.MongoClient:
    """The service's MongoDB, in-process: every pymongo client the harness opens is this one."""
    client = mongomock.MongoClient()
    monkeypatch.setattr("pymongo.MongoClient", lambda *args, **kwargs: client)
    return client


def inserted(tmp_path: Path, mongo: mongomock.MongoClient, document: str, amount: int = 452_720) -> dict[str, Any]:
    """The document the harness inserts for one payment from ``document``, as MongoDB holds it (a BSON round trip)."""
    spec = profile(tmp_path, document=document).spec.payments
    with httpx.Client() as client:
        [payment] = make_payments(spec, [amount], base_url="http://127.0.0.1:9", client=client, progress=no_progress)
    stored = mongo["donations"]["donations"].find_one({"_id": ObjectId(payment.id)})
    return bson.decode(bson.encode(stored))  # what pymongo would write and read back


def sent_json(tmp_path: Path, body: str) -> dict[str, Any]:
    return json.loads(profile(tmp_path, body=body).callback_request(PAYMENT).body)


# -- MongoDB inserts: native values --------------------------------------------------------------

def test_a_whole_value_amount_in_rupees_is_stored_as_a_number_in_mongodb(tmp_path, mongo):
    document = inserted(tmp_path, mongo, '{ orderId = "{transaction}", amount = "{amount_rupees:number}" }')
    assert document["amount"] == 4527.2 and isinstance(document["amount"], float)


def test_a_whole_value_amount_in_paise_as_int_is_stored_as_a_whole_number_in_mongodb(tmp_path, mongo):
    document = inserted(tmp_path, mongo, '{ orderId = "{transaction}", paise = "{amount:int}" }')
    assert document["paise"] == 452_720 and type(document["paise"]) is int


def test_a_whole_value_now_iso_is_stored_as_iso_8601_utc_text(tmp_path, mongo):
    before = datetime.now(timezone.utc).replace(microsecond=0)
    document = inserted(tmp_path, mongo, '{ orderId = "{transaction}", createdAt = "{now:iso}" }')
    assert ISO.match(document["createdAt"]), document["createdAt"]
    assert before <= datetime.fromisoformat(document["createdAt"].replace("Z", "+00:00")) <= datetime.now(timezone.utc)


def test_a_whole_value_now_date_is_stored_as_a_bson_date_in_mongodb(tmp_path, mongo):
    document = inserted(tmp_path, mongo, '{ orderId = "{transaction}", createdAt = "{now:date}", at = "{now:iso}" }')
    assert isinstance(document["createdAt"], datetime)  # a BSON date reads back as a (naive UTC) datetime
    assert document["createdAt"].isoformat(timespec="milliseconds") + "Z" == document["at"]  # the same instant


def test_a_fixed_objectid_reference_is_stored_as_an_objectid_in_mongodb(tmp_path, mongo):
    document = inserted(tmp_path, mongo, '{ orderId = "{transaction}", campaign = { "$oid" = "${CAMPAIGN_ID}" } }')
    assert document["campaign"] == ObjectId(CAMPAIGN)


def test_an_embedded_typed_placeholder_stays_text(tmp_path, mongo):
    document = inserted(tmp_path, mongo, '{ orderId = "{transaction}", note = "Rs {amount_rupees:number} paid", '
                                         'on = "day {now:date}" }')
    assert document["note"] == "Rs 4527.2 paid"
    assert document["on"].startswith("day ") and ISO.match(document["on"].removeprefix("day "))


def test_untyped_placeholders_give_what_they_always_gave(tmp_path, mongo):
    document = inserted(tmp_path, mongo, '{ orderId = "{transaction}", paise = "{amount}", '
                                         'rupees = "{amount_rupees}", s = "{now_s}", note = "Rs {amount_rupees}" }',
                        amount=49_900)
    assert (document["paise"], document["rupees"], document["note"]) == (49_900, "499.00", "Rs 499.00")
    assert type(document["s"]) is int


# -- load time: one clear error, never a send-time surprise ---------------------------------------

def test_an_unknown_type_is_one_clear_error_at_load(tmp_path):
    with pytest.raises(ProfileError) as caught:
        profile(tmp_path, document='{ orderId = "{transaction}", amount = "{amount_rupees:numbr}" }')
    message = str(caught.value)
    assert "payments (line 5)" in message and "{amount_rupees:numbr} at amount: unknown type 'numbr'" in message
    assert "\n" not in message


def test_a_type_the_placeholder_cannot_take_is_refused_at_load(tmp_path):
    with pytest.raises(ProfileError, match=r"deliveries\.callback .*\{transaction:number\} at payload\.order: "
                                           r"\{transaction\} cannot be a number \(it can be: string\)"):
        profile(tmp_path, body='{ payload = { order = "{transaction:number}" } }')


def test_a_fixed_objectid_that_is_not_24_hex_digits_is_refused_at_load(tmp_path):
    with pytest.raises(ProfileError, match=r"'64f1' \} at campaign: a fixed ObjectId is 24 hex digits"):
        profile(tmp_path, document='{ orderId = "{transaction}", campaign = { "$oid" = "64f1" } }')


# -- JSON bodies: numbers, ISO text, hex; signed as sent ---------------------------------------------

def test_a_json_body_carries_a_typed_number_as_a_json_number(tmp_path):
    request = profile(tmp_path, body='{ amount = "{amount_rupees:number}" }').callback_request(PAYMENT)
    assert request.body == b'{"amount":4527.2}'


def test_a_json_body_carries_a_date_as_iso_text_and_an_objectid_as_its_hex(tmp_path):
    sent = sent_json(tmp_path, '{ created = "{now:date}", donation = "{id:objectid}", at = "{now:unix_ms}" }')
    assert ISO.match(sent["created"]) and sent["donation"] == PAYMENT.id
    created = datetime.fromisoformat(sent["created"].replace("Z", "+00:00"))
    assert (created - EPOCH) // timedelta(milliseconds=1) == sent["at"]  # one instant, to the millisecond


def test_a_signed_body_with_typed_values_is_signed_as_sent(tmp_path):
    channel = profile(tmp_path, body='{ amount = "{amount_rupees:number}", created_at = "{now:unix}", '
                                     'at = "{now:date}" }').channels["callback"]
    first, again = channel.request(PAYMENT), channel.request(PAYMENT)
    expected = hmac.new(SECRET.encode(), first.body, hashlib.sha256).hexdigest()
    assert dict(first.headers)["X-Razorpay-Signature"] == expected
    assert (again.body, dict(again.headers)) == (first.body, dict(first.headers))  # a duplicate: the same bytes


def test_an_objectid_of_a_value_that_is_not_24_hex_digits_is_a_template_error_naming_it(tmp_path):
    with pytest.raises(ValueError, match=r"\{id:objectid\}: 'ord_1' is not an ObjectId"):
        profile(tmp_path, body='{ donation = "{id:objectid}" }').callback_request(Payment("ord_1", "RH0001", 100))


def test_an_http_payment_sends_typed_values_as_json_and_headers_as_text(tmp_path):
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"data": {"id": "d-1"}})

    path = tmp_path / "http.toml"
    path.write_text(PROFILE.format(document=DOCUMENT, body=BODY).replace(
        'source = "mongo"\nuri = "mongodb://127.0.0.1:9"\ndatabase = "donations"\ncollection = "donations"\n'
        f'document = {DOCUMENT}\n',
        'source = "http"\npath = "/donations"\nid = "data.id"\nheaders = { X-Amount = "{amount}" }\n'
        'body = { amount = "{amount_rupees:number}", createdAt = "{now:date}" }\n'))
    spec = load_profile(path, {"RZP_SECRET": SECRET}).spec.payments
    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        make_payments(spec, [452_720], base_url="http://127.0.0.1:9", client=client, progress=no_progress)
    sent = json.loads(seen[0].content)
    assert sent["amount"] == 4527.2 and ISO.match(sent["createdAt"]) and seen[0].headers["X-Amount"] == "452720"


# -- a real MongoDB: the BSON types themselves ------------------------------------------------------

@pytest.mark.slow
def test_typed_values_are_a_double_a_date_and_an_objectid_on_a_real_mongodb(tmp_path):
    import pymongo
    from _wire import fresh_database, wire_server

    uri, database = wire_server().uri, fresh_database()
    text = PROFILE.format(document='{ orderId = "{transaction}", amount = "{amount_rupees:number}", '
                                   'createdAt = "{now:date}", campaign = { "$oid" = "${CAMPAIGN_ID}" } }', body=BODY)
    path = tmp_path / "wire.toml"
    path.write_text(text.replace("mongodb://127.0.0.1:9", uri).replace('database = "donations"',
                                                                        f'database = "{database}"'))
    spec = load_profile(path, {"RZP_SECRET": SECRET, "CAMPAIGN_ID": CAMPAIGN}).spec.payments
    with httpx.Client() as client:
        make_payments(spec, [452_720], base_url="http://127.0.0.1:9", client=client, progress=no_progress)
    client = pymongo.MongoClient(uri)
    try:
        donations = client[database]["donations"]
        assert donations.count_documents({"amount": {"$type": "double"}, "createdAt": {"$type": "date"},
                                          "campaign": {"$type": "objectId"}}) == 1
        assert donations.find_one()["campaign"] == ObjectId(CAMPAIGN)
    finally:
        client.close()
