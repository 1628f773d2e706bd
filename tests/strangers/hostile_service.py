"""A hostile receipt service: correct about receipts, hostile in everything else the harness reads.

Written only for the tests of issue 25 (hostile services cannot hang, flood or fool the harness). It
makes exactly one receipt per paid payment — a correct service — so every run against it must end
VALID or honestly INCONCLUSIVE, never hang, never grow without bound, never leak a secret, never
paint the terminal. Plain ``http.server`` (threads), so it can answer in ways a framework would not:

- ``POST /pay``  ``{"amount": N}`` → 201 ``{"id": "...", "transaction": "HX..."}``
- ``POST /hook`` ``{"transaction": "HX...", "state": "COMPLETED"}`` with ``X-Signature`` = hex
  HMAC-SHA256 of the body under ``HOSTILE_SECRET``; the first delivery of a payment writes
  ``<receipts>/receipt-<transaction>.pdf`` (under a lock), every delivery is answered per ``--mode``
- ``GET /pay/<id>`` the payment's state ``{"status": "PAID", "receiptGenerated": true, ...}``
- ``GET /healthz``

Modes (``--mode``):

``plain``         ``{"receipt": "generated" | "already"}``
``hex``           the same with a 16 KB hex ``trace`` field (redaction must stay linear)
``huge``          a ``--size-mb`` MB answer (200 by default) with a valid prefix
``endless``       a chunked answer that never ends (unthrottled)
``echo-secrets``  ``{"debug": "signed with <secret>; password <password>"}`` (both from the environment)
``escape-name``   the receipt's file name carries ``ESC ] 0 ; … BEL ESC [ 2 J`` (a terminal title and a clear)
``long-text``     the receipt's page starts with ``--text-kb`` KB of ``a``s (2), then its transaction id
``chunked-sink``  announces each receipt to ``$SINK_URL/notices`` with ``Transfer-Encoding: chunked``

    python tests/strangers/hostile_service.py --port 8190 --receipts DIR --mode huge [--size-mb 200]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import json
import os
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MODES = ("plain", "hex", "huge", "endless", "echo-secrets", "escape-name", "long-text", "chunked-sink")
ESCAPES = "\x1b]0;owned\x07\x1b[2J"


def receipt_pdf(lines: list[str]) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=10)
    for line in lines:
        pdf.multi_cell(0, 5, line, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def serve(args: argparse.Namespace) -> None:
    receipts = Path(args.receipts)
    receipts.mkdir(parents=True, exist_ok=True)
    secret = os.environ.get("HOSTILE_SECRET", "")
    payments: dict[str, dict[str, Any]] = {}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *more: Any) -> None:
            pass

        def _json(self, status: int, data: Any) -> None:
            body = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self._stamps()
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _stamps(self) -> None:
            """When the request arrived, and how long it took (what lets a run show its race was exercised)."""
            arrived = getattr(self, "arrived", None)
            if arrived:
                self.send_header("X-Arrival-Ns", str(arrived))
                self.send_header("Server-Timing", f"app;dur={(time.time_ns() - arrived) / 1e6:.3f}")

        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._json(200, {"ok": True})
                return
            pid = self.path.rsplit("/", 1)[-1]
            with lock:
                payment = payments.get(pid)
            self._json(200, payment) if payment else self._json(404, {"error": "not found"})

        def do_POST(self) -> None:
            self.arrived = time.time_ns()
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path == "/pay":
                pid, transaction = uuid.uuid4().hex, f"HX{uuid.uuid4().hex[:12].upper()}"
                with lock:
                    payments[pid] = {"id": pid, "transaction": transaction, "amount": json.loads(raw)["amount"],
                                     "status": "CREATED", "receiptGenerated": False, "receiptPath": None}
                self._json(201, {"id": pid, "transaction": transaction})
                return
            expected = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(self.headers.get("X-Signature", ""), expected):
                self._json(401, {"error": "bad signature"})
                return
            event = json.loads(raw)
            with lock:
                payment = next((p for p in payments.values() if p["transaction"] == event["transaction"]), None)
                if payment is None:
                    self._json(404, {"error": "unknown"})
                    return
                first = not payment["receiptGenerated"]
                payment.update(status="PAID", receiptGenerated=True)
                if first:
                    payment["receiptPath"] = self._receipt(payment)
            self._answer("generated" if first else "already", payment)

        def _receipt(self, payment: dict[str, Any]) -> str:
            name = f"receipt-{payment['transaction']}.pdf"
            if args.mode == "escape-name":
                name = f"receipt-{payment['transaction']}{ESCAPES}.pdf"
            time.sleep(0.2)  # a render that takes a while: the duplicates arrive while it runs (under the lock)
            lines = [f"Receipt for {payment['transaction']}", f"Amount: {payment['amount']} paise"]
            if args.mode == "long-text":  # a run of "a"s before its own lines, on the page that is read
                lines.insert(0, "a" * (args.text_kb * 1024))
            (receipts / name).write_bytes(receipt_pdf(lines))
            if args.mode == "chunked-sink":
                self._announce(payment, name)
            return name

        def _announce(self, payment: dict[str, Any], name: str) -> None:
            url = urllib.parse.urlsplit(os.environ["SINK_URL"])
            body = json.dumps({"transaction": payment["transaction"], "receipt": name}).encode()
            connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
            connection.putrequest("POST", "/notices")
            connection.putheader("Content-Type", "application/json")
            connection.putheader("Transfer-Encoding", "chunked")
            connection.endheaders()
            for start in range(0, len(body), 7):  # a few small chunks, as a streaming client sends them
                piece = body[start:start + 7]
                connection.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            connection.send(b"0\r\n\r\n")
            connection.getresponse().read()
            connection.close()

        def _answer(self, outcome: str, payment: dict[str, Any]) -> None:
            if args.mode == "hex":
                self._json(200, {"receipt": outcome, "trace": os.urandom(8192).hex()})
            elif args.mode == "echo-secrets":
                self._json(200, {"receipt": outcome, "debug": f"signed with {secret}; password "
                                                              f"{os.environ.get('HOSTILE_PASSWORD', '')}"})
            elif args.mode == "huge":
                self._huge(outcome)
            elif args.mode == "endless":
                self._endless(outcome)
            else:
                self._json(200, {"receipt": outcome})

        def _huge(self, outcome: str) -> None:
            head = json.dumps({"receipt": outcome, "padding": ""})[:-2].encode()  # {"receipt": ..., "padding": "
            size = args.size_mb * 1024 * 1024
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self._stamps()
            self.send_header("Content-Length", str(size))
            self.end_headers()
            try:
                self.wfile.write(head)
                block, left = b"x" * 65536, size - len(head) - 2
                while left > 0:
                    self.wfile.write(block[:min(left, len(block))])
                    left -= len(block)
                self.wfile.write(b'"}')
            except OSError:  # the harness stopped reading: that is its right
                pass

        def _endless(self, outcome: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self._stamps()
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b"x" * 65536
            try:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(outcome) + 14, b'{"receipt": "' + outcome.encode() + b'"'))
                while True:  # never ends: bounded only by the harness hanging up
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except OSError:
                pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--receipts", required=True)
    parser.add_argument("--mode", choices=MODES, default="plain")
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--text-kb", type=int, default=2)
    serve(parser.parse_args())


if __name__ == "__main__":
    main()
