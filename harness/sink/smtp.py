"""The sink's SMTP server (aiosmtpd): every message recorded with its recipients, subject and attachments."""

from __future__ import annotations

import asyncio
import email
import time
import email.policy
import io
from typing import Any, Callable

MAX_PDF_PAGES = 3  # pages of a PDF attachment whose text is extracted


def pdf_text(data: bytes) -> tuple[bool, str, str | None]:
    """(readable, the text of its first pages, the error) of a PDF attachment."""
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        text = "\n".join((page.extract_text() or "") for page in list(reader.pages)[:MAX_PDF_PAGES])
    except Exception as exc:  # pypdf raises many kinds on damaged files; any of them means unreadable
        return False, "", f"unreadable PDF: {exc.__class__.__name__}: {exc}"[:300]
    return True, text, None


def parse_message(content: bytes) -> dict[str, Any]:
    """A message as a record: subject, plain text, and each attachment (a PDF's text extracted)."""
    message = email.message_from_bytes(content, policy=email.policy.default)
    body = message.get_body(preferencelist=("plain", "html"))
    attachments = []
    for part in message.iter_attachments():
        data = part.get_payload(decode=True) or b""
        name = part.get_filename() or ""
        item: dict[str, Any] = {"name": name, "size": len(data), "content_type": part.get_content_type(),
                                "readable": True, "text": "", "error": None}
        if part.get_content_type() == "application/pdf" or name.lower().endswith(".pdf"):
            item["readable"], item["text"], item["error"] = pdf_text(data)
        elif part.get_content_maintype() == "text":
            item["text"] = data.decode("utf-8", "replace")
        attachments.append(item)
    return {"subject": str(message.get("Subject", "")), "message_id": str(message.get("Message-ID", "")),
            "text": body.get_content() if body is not None else "", "attachments": attachments}


class RecordingHandler:
    """aiosmtpd's handler: each message delivered becomes a record; answered 250 after ``latency_ms``."""

    def __init__(self, record: Callable[[dict[str, Any]], Any], latency_ms: float = 0.0) -> None:
        self.record, self.latency_ms = record, latency_ms

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        arrived = time.time()
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode("utf-8", "surrogateescape")
        try:
            parsed = parse_message(content)
        except Exception as exc:  # a message the parser cannot read is still a message that was sent
            parsed = {"subject": "", "text": "", "attachments": [], "error": f"{exc.__class__.__name__}: {exc}"[:300]}
        self.record({"t": arrived, "channel": "smtp", "mail_from": envelope.mail_from,
                     "recipients": list(envelope.rcpt_tos), "size": len(content), **parsed})
        if self.latency_ms:
            await asyncio.sleep(self.latency_ms / 1000)
        return "250 Message accepted for delivery"


def start_smtp(port: int, record: Callable[[dict[str, Any]], Any], latency_ms: float = 0.0,
               max_body: int = 32 * 1024 * 1024) -> Any:
    """A started aiosmtpd Controller on 127.0.0.1:port (its ``stop()`` ends it).

    A message over ``max_body`` bytes is refused as aiosmtpd refuses it (552), and recorded as refused at
    once (``"refused"``, with its sender and recipients): the service did send it, and a run must say the
    sink's limit stopped it, never that nothing reached the sink."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import SMTP

    class RecordingSMTP(SMTP):
        async def push(self, status: str) -> None:
            # aiosmtpd answers an oversized message (or line) without calling the handler: the refusal is seen here
            if status.startswith(("552", "500 Line too long")):
                envelope = getattr(self, "envelope", None)
                record({"t": time.time(), "channel": "smtp", "mail_from": getattr(envelope, "mail_from", None),
                        "recipients": list(getattr(envelope, "rcpt_tos", None) or []),
                        "refused": f"{status.strip()} (the sink keeps messages up to {max_body} bytes: "
                                   f"[sink] max_body)"})
            await super().push(status)

    class RecordingController(Controller):
        def factory(self) -> SMTP:
            return RecordingSMTP(self.handler, **self.SMTP_kwargs)

    controller = RecordingController(RecordingHandler(record, latency_ms), hostname="127.0.0.1", port=port,
                                     ready_timeout=10.0, data_size_limit=max_body)
    controller.start()
    return controller
