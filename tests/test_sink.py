"""The recording sink: what leaves a service (HTTP calls, e-mails, HTTPS through a proxy) is recorded here.

Each channel listens on loopback only, records every call or message as one JSON line (secrets in
headers masked) and answers as told; the proxy answers hard-coded HTTPS hosts itself and never
opens a connection to them. A sink that cannot start says so in one line.
"""

from __future__ import annotations

import json
import smtplib
import socket
import ssl
import subprocess
import sys
from email.message import EmailMessage

import httpx
import pytest
from _poll import wait_until
from helpers import HTTP_TIMEOUT

from harness.sink import Sink, SinkSettings
from harness.errors import SinkError

needs_mitmdump = pytest.mark.usefixtures("mitmdump")


def receipt_pdf(lines: list[str]) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    for line in lines:
        pdf.cell(0, 10, line, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


@pytest.fixture
def sink(tmp_path):
    with Sink(SinkSettings(http=0, smtp=0, status=202, body='{"queued": true}'), tmp_path / "sink.jsonl") as running:
        yield running


def test_an_http_call_is_recorded_and_answered_as_configured_with_its_secrets_masked(sink):
    answer = httpx.post(f"http://127.0.0.1:{sink.ports['http']}/v1/donations?src=hook", json={"orderRef": "don_1"},
                        headers={"Authorization": "Bearer live-token-123", "X-Request-Id": "r1"}, timeout=HTTP_TIMEOUT)
    assert (answer.status_code, answer.json()) == (202, {"queued": True})
    (record,) = wait_until(sink.records, message="the call's record")
    assert (record["channel"], record["method"], record["path"]) == ("http", "POST", "/v1/donations?src=hook")
    assert json.loads(record["body"]) == {"orderRef": "don_1"}
    assert record["headers"]["X-Request-Id"] == "r1" and record["headers"]["Authorization"] == "***"
    assert "live-token-123" not in sink.records_path.read_text()


def test_an_email_is_recorded_with_recipients_subject_and_the_text_of_its_pdf_attachment(sink):
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "receipts@ngo.example", "asha@example.org", "Your receipt"
    message.set_content("Thank you for your donation.")
    message.add_attachment(receipt_pdf(["Receipt for order_abc123", "Amount INR 499.00"]), maintype="application",
                           subtype="pdf", filename="Receipt_Asha.pdf")
    with smtplib.SMTP("127.0.0.1", sink.ports["smtp"], timeout=10) as smtp:
        smtp.send_message(message)
    (record,) = wait_until(sink.records, message="the message's record")
    assert record["channel"] == "smtp" and record["recipients"] == ["asha@example.org"]
    assert record["subject"] == "Your receipt" and "Thank you" in record["text"]
    (attachment,) = record["attachments"]
    assert attachment["name"] == "Receipt_Asha.pdf" and attachment["readable"] and attachment["size"] > 0
    assert "order_abc123" in attachment["text"] and "499.00" in attachment["text"]


def test_a_truncated_pdf_attachment_is_recorded_as_unreadable(sink):
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@ngo.example", "b@example.org", "Receipt"
    message.set_content("see attached")
    message.add_attachment(receipt_pdf(["Receipt"])[:40], maintype="application", subtype="pdf", filename="R.pdf")
    with smtplib.SMTP("127.0.0.1", sink.ports["smtp"], timeout=10) as smtp:
        smtp.send_message(message)
    (record,) = wait_until(sink.records, message="the message's record")
    assert record["attachments"][0]["readable"] is False and "unreadable PDF" in record["attachments"][0]["error"]


def test_quiet_counts_from_the_last_record(sink):
    httpx.get(f"http://127.0.0.1:{sink.ports['http']}/ping", timeout=HTTP_TIMEOUT)
    wait_until(sink.records, message="the call's record")
    assert sink.quiet_for() < 30
    assert sink.env()["SMTP_PORT"] == str(sink.ports["smtp"])


def test_a_sink_that_cannot_bind_says_which_channel_and_port_in_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SinkError) as error:
            Sink(SinkSettings(smtp=port), tmp_path / "sink.jsonl").start()
    assert f"smtp on 127.0.0.1:{port}" in str(error.value) and "\n" not in str(error.value)


def test_the_sink_command_exits_4_with_one_line_when_a_port_is_taken(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "harness", "sink", "--http", str(port), "--records",
                                 str(tmp_path / "s.jsonl")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 4
    assert result.stdout.strip().splitlines() == [f"race-harness sink: cannot listen for http on 127.0.0.1:{port}: "
                                                  f"Address already in use"]


def test_without_mitmdump_the_proxy_channel_is_one_clear_line(tmp_path):
    with pytest.raises(SinkError, match="mitmdump"):
        Sink(SinkSettings(proxy=0, mitmdump=str(tmp_path / "no-such-mitmdump")), tmp_path / "s.jsonl").start()


@pytest.mark.slow
@needs_mitmdump
def test_a_call_to_a_hard_coded_https_host_is_recorded_and_never_leaves_the_machine(tmp_path):
    # A real server stands where the "hard-coded host" points: it must never see a connection.
    with socket.socket() as real_host:
        real_host.bind(("127.0.0.1", 0))
        real_host.listen()
        real_host.setblocking(False)
        real_port = real_host.getsockname()[1]
        settings = SinkSettings(proxy=0, status=201, body='{"id": "crm-1"}', ca_dir=str(tmp_path / "ca"))
        with Sink(settings, tmp_path / "sink.jsonl") as sink:
            proxy = f"http://127.0.0.1:{sink.ports['proxy']}"
            with httpx.Client(proxy=proxy, verify=ssl.create_default_context(cafile=sink.ca_cert),
                              timeout=20) as client:
                crm = client.post("https://crm.example.com/v1/donations", json={"orderRef": "don_9"},
                                  headers={"Authorization": "Bearer crm-key"})
                local = client.put(f"https://127.0.0.1:{real_port}/accounts/7", content=b"x")
            records = wait_until(lambda: len(sink.records()) >= 2 and sink.records(), message="both calls")
            described = sink.describe()
        with pytest.raises(BlockingIOError):
            real_host.accept()  # nothing ever connected to the real host
    assert (crm.status_code, crm.json(), local.status_code) == (201, {"id": "crm-1"}, 201)
    first, second = records
    assert (first["channel"], first["host"], first["path"]) == ("proxy", "crm.example.com", "/v1/donations")
    assert json.loads(first["body"]) == {"orderRef": "don_9"} and first["headers"]["Authorization"] == "***"
    assert (second["host"], second["port"], second["method"]) == ("127.0.0.1", real_port, "PUT")
    assert described["blocked_upstream"] == 0 and described["recorded"] == 2
    assert (tmp_path / "ca" / "mitmproxy-ca-cert.pem").is_file()
