"""Side effects that leave as uploads: a multipart form with a PDF attached, read back in parts (issue 22, item 4).

A WhatsApp-style gateway is sent the receipt as ``multipart/form-data``: text fields (the phone, a caption)
and the PDF. The sink keeps the exact bytes; the harness reads the form's fields and the PDF's text, so a
key or an amount rule can point at them the way it points at an e-mail's attachment.
"""

from __future__ import annotations

import base64
import json

import httpx
import pytest
from fpdf import FPDF

from harness.errors import ProfileError
from harness.observe.sink import call_parts, read_sink_effects
from harness.profile.schema import EffectSection
from harness.sink import RecordedSink


def _pdf(text: str) -> bytes:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.cell(0, 10, text)
    return bytes(pdf.output())


def _upload(order: str, amount_text: str, *, seq: int = 1) -> dict:
    """A sink record of a multipart upload, as the proxy channel keeps it (the body's exact bytes in body_b64)."""
    request = httpx.Request("POST", "https://graph.whatsapp-gateway.example/v1/messages",
                            data={"phone": "+919800000001", "caption": f"Receipt for {order}"},
                            files={"document": (f"Donation_Receipt_{order}.pdf",
                                                _pdf(f"Order {order} - Amount: Rs. {amount_text}"), "application/pdf")})
    body = request.read()
    return {"seq": seq, "t": 1.0, "channel": "proxy", "method": "POST", "host": "graph.whatsapp-gateway.example",
            "path": "/v1/messages", "headers": {"Content-Type": request.headers["content-type"]},
            "body": body.decode("utf-8", "replace"), "body_b64": base64.b64encode(body).decode(),
            "body_size": len(body)}


def _sink(tmp_path, records: list[dict]) -> RecordedSink:
    path = tmp_path / "sink.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return RecordedSink(path)


WHATSAPP = {"kind": "whatsapp receipt", "source": "sink", "channel": "proxy", "host": "graph.whatsapp-gateway.example",
            "key": {"from": "body", "field": "caption", "pattern": "Receipt for (\\S+)"},
            "amount": {"from": "attachment", "attachment": "*.pdf", "pattern": "Amount: Rs\\. ([\\d,.]+)",
                       "unit": "rupees"}}


def test_a_multipart_upload_is_read_as_its_fields_and_its_pdfs_text():
    parts = call_parts(_upload("order_1", "4,527.20"))
    assert parts["fields"] == {"phone": "+919800000001", "caption": "Receipt for order_1"}
    (pdf,) = parts["attachments"]
    assert pdf["name"] == "Donation_Receipt_order_1.pdf" and pdf["content_type"] == "application/pdf"
    assert "Amount: Rs. 4,527.20" in pdf["text"] and pdf["readable"]


def test_an_attachment_amount_rule_reads_the_pdf_inside_an_upload(tmp_path):
    section = EffectSection.model_validate(WHATSAPP)
    effects, problems = read_sink_effects(section, _sink(tmp_path, [_upload("order_1", "4,527.20")]))
    assert not problems
    assert [(e.key, e.amount) for e in effects] == [("order_1", 452_720)]


def test_an_attachment_amount_rule_catches_a_wrong_amount_in_the_uploaded_pdf(tmp_path):
    section = EffectSection.model_validate(WHATSAPP)
    effects, _ = read_sink_effects(section, _sink(tmp_path, [_upload("order_1", "4,528.20")]))
    assert effects[0].amount == 452_820  # the oracle compares it with the payment's 452 720 paise


def test_a_call_cut_short_is_an_attempt_not_a_side_effect(tmp_path):
    # A real downstream discards a request cut short; a service that sends it again whole made one side effect.
    cut = {**_upload("order_1", "1.00"), "partial": "the body ended after 900 of 1400 bytes"}
    whole = _upload("order_1", "4,527.20", seq=2)
    effects, _ = read_sink_effects(EffectSection.model_validate(WHATSAPP), _sink(tmp_path, [cut, whole]))
    assert [(e.name, e.amount) for e in effects] == [("proxy#2", 452_720)]


def test_a_form_field_key_rule_reads_an_urlencoded_body(tmp_path):
    record = {"seq": 1, "t": 1.0, "channel": "http", "method": "POST", "path": "/donations",
              "headers": {"Content-Type": "application/x-www-form-urlencoded"}, "body": "orderId=o7&amount=10"}
    section = EffectSection.model_validate({"kind": "api", "source": "sink", "channel": "http",
                                            "key": {"from": "body", "field": "orderId"}})
    effects, _ = read_sink_effects(section, _sink(tmp_path, [record]))
    assert [e.key for e in effects] == ["o7"]


@pytest.mark.parametrize("channel, part", [("http", "recipient"), ("proxy", "subject"), ("smtp", "header")])
def test_a_rule_over_a_part_its_channel_does_not_have_is_refused_naming_it(channel, part):
    from harness.profile.schema import parse_profile

    rule = {"from": part, "pattern": "x", **({"header": "X-A"} if part == "header" else {})}
    data = {"version": 1, "name": "s", "base_url": "http://127.0.0.1:9",
            "payments": {"source": "http", "path": "/p", "id": "id"},
            "deliveries": {"callback": {"path": "/h", "body": {"id": "{id}"}, "signing": {"scheme": "none"}}},
            "effects": [{"kind": "k", "source": "sink", "channel": channel, "key": {"from": "body", "pattern": "x"}
                         if channel != "smtp" else {"from": "subject", "pattern": "x"}, "amount": rule}]}
    with pytest.raises(ProfileError, match=rf"effects\.0: amount: from = '{part}' cannot apply to a {channel} record"):
        parse_profile(data)


def test_the_sinks_variables_keep_a_services_loopback_calls_off_the_proxy():
    # HTTP_PROXY is set for a hard-coded host; a client that reads the environment must still reach the sink's
    # own http channel (SINK_URL, on loopback) directly, or its call is recorded on the wrong channel.
    import urllib.request

    from harness.sink.server import service_env

    env = service_env({"http": 8025, "proxy": 8026}, "/ca.pem")
    proxies = {k.lower().removesuffix("_proxy"): v for k, v in env.items() if k.lower().endswith("_proxy")}
    assert urllib.request.proxy_bypass_environment("127.0.0.1", proxies)
    assert not urllib.request.proxy_bypass_environment("graph.whatsapp-gateway.example", proxies)


def test_a_message_over_the_sinks_limit_is_recorded_refused_and_named_not_called_silence(tmp_path):
    import smtplib
    import time

    from harness.sink import Sink, SinkSettings, read_records

    sink = Sink(SinkSettings(smtp=0, max_body=20_000), tmp_path / "sink.jsonl").start()
    try:
        with smtplib.SMTP("127.0.0.1", sink.ports["smtp"], timeout=10) as smtp:
            with pytest.raises(smtplib.SMTPException):
                smtp.sendmail("shop@example.org", ["donor@example.org"],
                              "Subject: receipt\r\n\r\n" + ("x" * 70 + "\r\n") * 1000)
        deadline = time.monotonic() + 5
        while not read_records(tmp_path / "sink.jsonl") and time.monotonic() < deadline:
            time.sleep(0.05)
        (record,) = read_records(tmp_path / "sink.jsonl")
        assert record["refused"].startswith("552") and "[sink] max_body" in record["refused"]
        section = EffectSection.model_validate({"kind": "receipt e-mail", "source": "sink", "channel": "smtp",
                                                "key": {"from": "subject", "pattern": "(.+)"}})
        effects, problems = read_sink_effects(section, sink)
        assert not effects and "the sink refused 1 smtp message(s): 552" in problems[0].message
    finally:
        sink.stop()


def test_a_multipart_boundary_in_mixed_case_is_read_as_sent():
    # Browsers and Node's form-data name boundaries like "----WebKitFormBoundaryAbC12": case-sensitive.
    boundary = "----WebKitFormBoundaryAbC12xYz"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"caption\"\r\n\r\nReceipt for o9\r\n"
            f"--{boundary}--\r\n").encode()
    record = {"channel": "proxy", "headers": {"Content-Type": f"multipart/form-data; boundary={boundary}"},
              "body": body.decode()}
    assert call_parts(record)["fields"] == {"caption": "Receipt for o9"}
