"""Profile files: loading, the errors a mistake gets, templates, deliveries and the readers' field maps."""

from __future__ import annotations

import base64
import json
import re
import textwrap
from pathlib import Path

import pytest
import standardwebhooks
import stripe

from harness.observe.observation import ReceiptFile
from harness.profile import BUILT_IN, Profile, load_profile
from harness.errors import ProfileError
from harness.observe.content import to_paise
from harness.observe.effects import extract
from harness.profile.schema import FileRule
from harness.observe.state import normalised
from harness.profile.template import dig, render
from harness.profile.payments import Payment
from harness.profile.legacy import Target

STRANGERS = Path(__file__).with_name("strangers")
PAYMENT = Payment("p-1", "RH0001", 49_900)
WHSEC = "whsec_" + base64.b64encode(b"a-test-secret-of-32-bytes-length").decode()

MINIMAL = """\
version = 1
name = "shop"
base_url = "http://127.0.0.1:9"

[payments]
source = "http"
path = "/orders"
body = { amount = "{amount}", ref = "{transaction}" }
id = "data.id"

[deliveries.callback]
path = "/hooks"
body = { type = "{state}", ref = "{transaction}", amount = "{amount}", id = "{event_id}" }
states = { COMPLETED = "paid", FAILED = "failed" }
signing = { scheme = "standard-webhooks", secret = "${SHOP_SECRET}" }

[[effects]]
source = "files"
dir = "/tmp/receipts"
key = { from = "title", pattern = "Receipt (R-\\\\d+)", joins = "state.receiptNo" }

[state]
source = "http"
path = "/orders/{id}"
root = "data"
paid = { field = "status", values = ["PAID"] }
claim = "issued"
effect = "receiptNo"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "profile.toml"
    path.write_text(textwrap.dedent(text))
    return path


def load(tmp_path: Path, text: str = MINIMAL, **variables: str) -> Profile:
    return load_profile(write(tmp_path, text), {"SHOP_SECRET": WHSEC, **variables})


def test_a_complete_profile_loads(tmp_path):
    profile = load(tmp_path)
    assert (profile.name, profile.base_url, list(profile.channels)) == ("shop", "http://127.0.0.1:9", ["callback"])


@pytest.mark.parametrize("change, field, line", [
    (('path = "/orders"\n', ''), "payments", 5),
    (('pattern = "Receipt (R-\\\\d+)"', 'pattern = "Receipt (R-\\\\d+"'), "effects.0.key", 20),
    (('scheme = "standard-webhooks"', 'scheme = "paypal"'), "deliveries.callback.signing", 15),
    (('claim = "issued"', 'claim = "issued"\nclaimed = "x"'), "state.claimed", 28),
    (('"{transaction}" }\nid', '"{transction}" }\nid'), "payments", 5),
    (('source = "files"', 'source = "ftp"'), "effects.0.source", 18),
])
def test_a_mistake_gets_one_line_naming_the_field_and_its_line(tmp_path, change, field, line):
    with pytest.raises(ProfileError) as caught:
        load(tmp_path, MINIMAL.replace(*change))
    message = str(caught.value)
    assert "\n" not in message
    assert f": {field}" in message and f"(line {line})" in message, message


def test_a_bad_regular_expression_says_so(tmp_path):
    with pytest.raises(ProfileError, match="not a regular expression"):
        load(tmp_path, MINIMAL.replace("(R-\\\\d+)", "(R-\\\\d+"))


def test_an_unset_environment_variable_is_named_and_never_guessed(tmp_path):
    with pytest.raises(ProfileError, match="SHOP_SECRET is not set"):
        load_profile(write(tmp_path, MINIMAL), {})


def test_an_unknown_placeholder_is_refused_not_sent_as_is(tmp_path):
    with pytest.raises(ProfileError, match=r"unknown placeholder \{transction\}"):
        load(tmp_path, MINIMAL.replace('ref = "{transaction}" }\nid', 'ref = "{transction}" }\nid'))


def test_a_wrong_version_is_refused(tmp_path):
    with pytest.raises(ProfileError, match="version"):
        load(tmp_path, MINIMAL.replace("version = 1", "version = 2"))


def test_a_secret_setting_is_never_echoed_in_an_error(tmp_path):
    with pytest.raises(ProfileError) as caught:
        load(tmp_path, SHOP_SECRET="not-a-whsec-secret-value")
    assert "not-a-whsec-secret-value" not in str(caught.value)


def test_a_placeholder_alone_keeps_its_type_and_inside_text_becomes_text():
    assert render({"a": "{amount}", "b": "Rs {amount_rupees}", "c": ["{transaction}"]},
                  {"amount": 49_900, "amount_rupees": "499.00", "transaction": "RH1"}) == {
        "a": 49_900, "b": "Rs 499.00", "c": ["RH1"]}


def test_dig_follows_dotted_paths_through_objects_and_lists():
    data = {"data": {"items": [{"id": "x"}, {"id": "y"}]}}
    assert (dig(data, "data.items.1.id"), dig(data, "data.missing"), dig(data, "")) == ("y", None, data)


def test_duplicates_of_one_event_carry_the_same_body_and_event_id(tmp_path):
    channel = load(tmp_path).channels["callback"]
    first, second = channel.request(PAYMENT), channel.request(PAYMENT)
    assert first.body == second.body
    assert dict(first.headers)["webhook-id"] == dict(second.headers)["webhook-id"]
    assert json.loads(first.body) == {"type": "paid", "ref": "RH0001", "amount": 49_900,
                                      "id": dict(first.headers)["webhook-id"]}


def test_each_state_is_its_own_event(tmp_path):
    channel = load(tmp_path).channels["callback"]
    assert json.loads(channel.request(PAYMENT, "FAILED").body)["type"] == "failed"
    with pytest.raises(ValueError, match="no words for state PENDING"):
        channel.request(PAYMENT, "PENDING")


def test_a_standard_webhooks_delivery_passes_the_providers_own_verifier(tmp_path):
    request = load(tmp_path).channels["callback"].request(PAYMENT)
    standardwebhooks.Webhook(WHSEC).verify(request.body, dict(request.headers))


def test_a_stripe_delivery_passes_stripes_own_verifier(tmp_path):
    text = MINIMAL.replace('scheme = "standard-webhooks", secret = "${SHOP_SECRET}"',
                           'scheme = "stripe", secret = "whsec_stripe_test"')
    request = load(tmp_path, text).channels["callback"].request(PAYMENT)
    event = stripe.Webhook.construct_event(request.body, dict(request.headers)["Stripe-Signature"], "whsec_stripe_test")
    assert event["ref"] == "RH0001"


def test_a_phonepe_v1_envelope_is_the_base64_response_the_reference_callback_sends():
    profile = load_profile("reference", {"RECEIPTS_DIR": "/tmp/r"})
    request = profile.channels["callback"].request(PAYMENT)
    payload = json.loads(base64.b64decode(json.loads(request.body)["response"]))
    assert payload["data"]["merchantTransactionId"] == "RH0001" and payload["code"] == "PAYMENT_SUCCESS"
    assert payload["success"] is True and payload["data"]["amount"] == 49_900


def test_the_built_in_reference_profile_is_the_reference_target_written_as_a_file():
    variables = {"BASE_URL": "http://127.0.0.1:9", "RECEIPTS_DIR": "/tmp/r", "GATEWAY_URL": "http://127.0.0.1:8"}
    from_file = load_profile("reference", variables)
    from_target = Target(base_url="http://127.0.0.1:9", receipts_dir="/tmp/r",
                         gateway_url="http://127.0.0.1:8").to_profile()
    assert from_file.to_dict() == from_target.to_dict()


@pytest.mark.parametrize("name", sorted(BUILT_IN))
def test_every_built_in_profile_loads(name):
    assert load_profile(name, {"RECEIPTS_DIR": "/tmp/r"}).name == name


@pytest.mark.parametrize("path", sorted(STRANGERS.glob("*.toml")), ids=lambda p: p.stem)
def test_every_stranger_profile_in_the_suite_loads(path):
    variables = {name: "http://127.0.0.1:9" if name.endswith("URL") else "mongodb://127.0.0.1:9/" if name.endswith("URI")
                 else WHSEC if "SECRET" in name
                 else "2525" if name.endswith("PORT") else "127.0.0.1:9" if name.endswith("UPSTREAM") else "x"
                 for name in ("V2SHOP_BASE_URL", "V2SHOP_RECEIPTS_DIR", "V2SHOP_MONGO_URI", "V2SHOP_DATABASE",
                              "V2SHOP_WEBHOOK_USERNAME", "V2SHOP_WEBHOOK_PASSWORD", "DONATIONS_BASE_URL",
                              "DONATIONS_MONGO_URI", "DONATIONS_DATABASE", "DONATIONS_WEBHOOK_SECRET",
                              "MAILER_BASE_URL", "MAILER_WEBHOOK_SECRET", "MAILER_RECEIPTS_DIR", "MAILER_SMTP_PORT",
                              "MAILER_PROXY_PORT", "MAILER_CA_DIR", "CTG_PYTHON", "CTG_PORT", "CTG_RECEIPTS_DIR",
                              "CTG_DB_UPSTREAM", "CTG_DB_PORT", "CTG_DATABASE", "CTG_VARIANT", "CTG_SECRET", "CTG_LEASE_SECONDS",
                              "DS_PYTHON", "DS_PORT", "DS_RECEIPTS_DIR", "DS_MONGO_URI", "DS_DATABASE", "DS_VARIANT",
                              "DS_SECRET", "HX_PYTHON", "HX_PORT", "HX_RECEIPTS_DIR", "HX_MODE", "HX_SECRET",
                              "HX_PASSWORD", "V2CO_BASE_URL", "V2CO_INVOICES_DIR", "V2CO_WEBHOOK_USERNAME",
                              "V2CO_WEBHOOK_PASSWORD", "V2CO_GATEWAY_URL", "STRIPE_ORDERS_BASE_URL",
                              "STRIPE_ORDERS_SECRET")}
    assert load_profile(path, variables).channels


def test_a_report_never_carries_a_signing_credential(tmp_path):
    signing = load(tmp_path).to_dict()["deliveries"]["callback"]["signing"]
    assert signing == {"scheme": "standard-webhooks", "secret": "***"}


@pytest.mark.parametrize("body, outcome", [
    ({"result": "created"}, "generated"), ({"result": "dup"}, "already_generated"), ({"result": "new-word"}, "new-word"),
    ({"other": 1}, None), ("not json", None),
])
def test_answers_map_the_services_words_to_outcomes(tmp_path, body, outcome):
    profile = load(tmp_path, MINIMAL + '\n[answers]\nfield = "result"\ngenerated = ["created"]\nalready = ["dup"]\n')
    assert profile.outcome_of(body, 200) == outcome


def test_answers_by_status_code(tmp_path):
    profile = load(tmp_path, MINIMAL + '\n[answers]\nstatus = { generated = [201], already = [409] }\n')
    assert (profile.outcome_of({}, 201), profile.outcome_of({}, 409), profile.outcome_of({}, 200)) == (
        "generated", "already_generated", None)


def test_a_key_rule_takes_its_group_from_the_part_it_names():
    receipt = ReceiptFile("receipt-R-7-1.pdf", 10, True, title="Receipt R-000007", text="Amount: Rs 1,234.50")
    assert extract(FileRule.model_validate({"from": "title", "pattern": r"Receipt (R-\d+)"}), receipt) == "R-000007"
    assert extract(FileRule.model_validate({"from": "name", "pattern": r"R-\d+-\d+"}), receipt) == "R-7-1"
    assert extract(FileRule.model_validate({"from": "text", "pattern": r"Order (\w+)"}), receipt) is None


def test_an_amount_in_rupees_becomes_paise():
    rule = FileRule.model_validate({"from": "text", "pattern": "x", "unit": "rupees"})
    assert (to_paise("1,234.50", rule), to_paise("abc", rule), to_paise(None, rule)) == (123_450, None, None)


def test_state_is_normalised_by_the_field_map(tmp_path):
    section = load(tmp_path).spec.state
    record = {"status": "PAID", "issued": 1, "receiptNo": "R-1"}
    assert normalised(section, record, {"receiptNo"}) == {
        "paymentStatus": "PAID", "paid": True, "receiptGenerated": True, "receiptPath": "R-1",
        "join": {"receiptNo": "R-1"}}
    assert normalised(section, None, set()) is None


# -- mistakes the review found a correct service could be blamed for -------------------------------

@pytest.mark.parametrize("change, message", [
    (('[state]', '[[effects]]\nsource = "files"\ndir = "/tmp/other"\n\n[state]'), "is also effects.0's kind"),
    (('key = { from = "title", pattern = "Receipt (R-\\\\d+)", joins = "state.receiptNo" }', ''),
     "no effect has a key rule"),
    (('states = { COMPLETED = "paid", FAILED = "failed" }',
      'states = { COMPLETED = { state = "paid", word = "p" }, FAILED = "failed" }\nheaders = { X-Word = "{state.word}" }'),
     "states.FAILED: the templates use {state.word}"),
    (('body = { amount = "{amount}", ref = "{transaction}" }', 'body = { amount = "{amount}", ref = "{id}" }'),
     "{id} is the service's id"),
])
def test_a_profile_that_would_blame_a_correct_service_is_refused_at_load(tmp_path, change, message):
    with pytest.raises(ProfileError, match=re.escape(message)):
        load(tmp_path, MINIMAL.replace(*change))


def test_a_report_masks_every_header_but_the_harmless_ones(tmp_path):
    text = MINIMAL.replace('path = "/orders"\n', 'path = "/orders"\nheaders = { X-Client-Key = "k-123", Content-Type = "application/json" }\n')
    headers = load(tmp_path, text).to_dict()["payments"]["headers"]
    assert headers == {"X-Client-Key": "***", "Content-Type": "application/json"}


def test_where_a_source_reads_never_shows_credentials_or_a_query():
    from harness.observe.effects import describe
    from harness.profile.schema import EffectSection

    section = EffectSection.model_validate({"source": "http", "url": "http://u:pw@h:1/receipts?api_key=K",
                                            "key": {"field": "ref"}})
    assert describe(section) == "http http://h:1/receipts"


@pytest.mark.parametrize("changes", [None, {"base_url": "http://127.0.0.1:8"}], ids=["as-run", "moved"])
def test_a_reverified_profile_keeps_the_runs_baseline_of_earlier_side_effects_wherever_the_service_now_is(
        tmp_path, changes):
    from harness.run.judge import reverify_target

    config = {"profile": load(tmp_path).to_dict(), "effects_baseline": ["receipt-R-0.pdf"]}
    target = reverify_target(config, changes)

    # Without it, an earlier run's receipt would be judged an orphan of this one.
    assert target.baseline == {"receipt-R-0.pdf"}
    assert target.base_url == (changes or {}).get("base_url", "http://127.0.0.1:9")


def test_a_profile_carries_where_it_came_from(tmp_path):
    written = tmp_path / "shop.toml"
    written.write_text(BUILT_IN["reference"].read_text())
    assert load_profile(written, {"BASE_URL": "http://127.0.0.1:9", "RECEIPTS_DIR": "/r"}).origin == {
        "from": "profile file", "path": str(written)}
    assert load_profile("reference", {"RECEIPTS_DIR": "/r"}).origin == {"from": "built-in profile", "name": "reference"}
    legacy = Target(base_url="http://127.0.0.1:9").to_profile()
    assert legacy.origin == {"from": "target", "base_url": "http://127.0.0.1:9"}
    assert legacy.with_base_url("http://127.0.0.1:8").origin == legacy.origin  # the same description, moved
