"""Single-packet over HTTP/2, and TLS trust, through every front end: the CLI, a Locust scenario, the pytest fixture.

The reference service serves HTTP/2 on hypercorn (h2c, or https with ALPN h2 under a certificate it
makes for itself at start). Against it the single-packet sender judges the service's mode the same
way from each front end: the vulnerable service is INVALID (exit 1), the atomic one VALID (exit 0).
An https target's certificate is verified unless the run says otherwise (``--insecure``,
``--ca-file``, a profile's ``verify_tls``/``ca_file``); an unverified one is a usage error in one line.
"""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import threading
from pathlib import Path
from typing import Iterator

import h11
import pytest

from _locust import locust, report_of

from harness.cli.main import main
from harness.profile import Profile, parse_profile
from harness.errors import ProfileError
from harness.profile.legacy import profile_data_of_target
from harness.reference.processes import start_service
from harness.verdict.result import EXIT_INVALID, EXIT_OK, EXIT_USAGE
from harness.senders import PreparedRequest, fire
from harness.profile.legacy import Target
from harness.tls import http_client

# Real service processes and Locust runs: `pytest -m 'not slow'` leaves these out.
pytestmark = pytest.mark.slow

CALLBACK = "POST /api/public/service-charges/phonepe/callback [burst]"
_SERVE_FOR = 30.0  # no test server thread outlives this


@pytest.fixture
def h2_service(tmp_path: Path):
    """A factory: the reference service over HTTP/2 (h2c, or with ``tls`` https under its own certificate)."""
    started = []

    def start(mode: str, *, tls: bool = False):
        service = start_service(tmp_path / f"receipts-{len(started)}", mode=mode, http2=True, tls=tls,
                                generation_delay_ms=150, log_path=tmp_path / f"service-{len(started)}.log")
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


def _cli_run(tmp_path: Path, *argv: str) -> tuple[int, dict | None]:
    """``race-harness run`` in this process; (exit code, its JSON report when one was written)."""
    out = tmp_path / "cli-report"
    code = main(["run", "--quiet", "--generation-delay-ms", "150", "--payments", "3", "--duplicates", "5",
                 "--targets", "exactly-once", "--report-dir", str(out), "--label", "run", *argv])
    report = out / "run.json"
    return code, json.loads(report.read_text()) if report.exists() else None


def _sent_single_packet(history: dict) -> bool:
    """Every request of the run went out as an HTTP/2 stream of a single-packet burst, and was answered."""
    events = history["events"]
    return bool(events) and all(e["meta"].get("h2") and e["status"] is not None for e in events)


# -- the CLI ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode, exit_code", [("vulnerable", EXIT_INVALID), ("atomic", EXIT_OK)])
def test_cli_single_packet_against_the_http2_reference_service_judges_its_mode(tmp_path, mode, exit_code):
    code, report = _cli_run(tmp_path, "--mode", mode, "--http2", "--sync", "single-packet")

    assert code == exit_code, report and report["verdict"]
    assert report["config"]["service"]["http2"] is True
    assert report["history_summary"]["sync"] == "single-packet" and _sent_single_packet(report["history"])


@pytest.mark.parametrize("sync", ["single-packet", "last-byte"])
def test_cli_races_an_https_reference_service_with_insecure(tmp_path, sync):
    code, report = _cli_run(tmp_path, "--mode", "atomic", "--tls", "--insecure", "--sync", sync)

    assert code == EXIT_OK, report and report["verdict"]
    assert report["config"]["verify_tls"] is False and report["config"]["profile"]["verify_tls"] is False
    assert report["history_summary"]["sync"] == sync
    assert all(e["status"] == 200 for e in report["history"]["events"])
    if sync == "single-packet":  # ALPN agreed on h2
        assert _sent_single_packet(report["history"])


def test_cli_refuses_an_unverified_certificate_by_default_in_one_line(tmp_path, capsys):
    code, report = _cli_run(tmp_path, "--mode", "atomic", "--tls", "--sync", "single-packet")

    err = capsys.readouterr().err
    assert code == EXIT_USAGE and report is None
    assert len(err.strip().splitlines()) == 1, err
    assert "CERTIFICATE_VERIFY_FAILED" in err and "--insecure" in err and "--ca-file" in err
    assert "Traceback" not in err


def test_cli_tls_options_are_checked_before_anything_starts(tmp_path, capsys):
    assert _cli_run(tmp_path, "--insecure", "--ca-file", str(tmp_path / "ca.pem"))[0] == EXIT_USAGE
    assert "give one of them" in capsys.readouterr().err
    assert _cli_run(tmp_path, "--target", "http://127.0.0.1:9", "--http2")[0] == EXIT_USAGE
    assert "configure the service race-harness starts" in capsys.readouterr().err


# -- a Locust scenario -----------------------------------------------------------------------------

@pytest.mark.parametrize("mode, sync, exit_code", [("vulnerable", "single-packet", 1), ("atomic", "auto", 0)])
def test_webhook_storm_with_single_packet_against_the_http2_reference_service(h2_service, tmp_path, mode, sync,
                                                                             exit_code):
    service = h2_service(mode)
    run = locust("webhook_storm", tmp_path, "-H", service.url, "--receipts-dir", str(service.receipts_dir),
                 "--payments", "3", "--duplicates", "5", "--sync", sync, "--targets", "exactly-once")

    assert run.returncode == exit_code, run.stdout
    assert ("INVALID" if exit_code else "VALID") in run.stdout
    report = report_of(tmp_path)
    assert report["config"]["options"]["sync"] == sync  # as asked; "auto" is resolved once, by the master
    assert report["history_summary"]["sync"] == "single-packet" and _sent_single_packet(report["history"])
    assert CALLBACK in " ".join(run.stdout.split())  # Locust's statistics count every released request


def test_webhook_storm_races_an_embedded_https_service_with_single_packet(tmp_path):
    run = locust("webhook_storm", tmp_path, "--embedded", "vulnerable", "--tls", "--generation-delay-ms", "150",
                 "--payments", "2", "--duplicates", "4", "--sync", "single-packet", "--targets", "exactly-once")

    assert run.returncode == 1, run.stdout
    report = report_of(tmp_path)
    assert report["config"]["service"]["tls"] is True and report["config"]["target"]["base_url"].startswith("https://")
    assert report["history_summary"]["sync"] == "single-packet" and _sent_single_packet(report["history"])


def test_a_swarm_refuses_a_sync_it_cannot_send_with_naming_those_it_can(tmp_path):
    # The naive sender runs asyncio, which does not mix with a gevent-patched worker; sequential is not a burst.
    run = locust("webhook_storm", tmp_path, "--embedded", "atomic", "--sync", "naive", users=1)
    assert run.returncode != 0 and "choose from 'last-byte', 'single-packet', 'auto'" in run.stdout


# -- the pytest fixture ----------------------------------------------------------------------------

@pytest.mark.parametrize("mode, valid", [("vulnerable", False), ("atomic", True)])
def test_race_fixture_with_single_packet_races_the_reference_service_over_http2(race, mode, valid):
    report = race(payments=3, duplicates=5, mode=mode, sync="single-packet", generation_delay_ms=150)

    assert report.verdict.valid is valid, report.explain()
    assert report.config["service"]["http2"] is True and report.history_summary["sync"] == "single-packet"
    assert _sent_single_packet(report.history)


def test_race_fixture_over_tls_trusts_the_certificate_the_service_made_for_itself(race):
    report = race(payments=2, duplicates=4, mode="vulnerable", sync="auto", tls=True, generation_delay_ms=150)

    assert report.verdict.valid is False, report.explain()
    assert report.config["service"]["tls"] is True and report.history_summary["sync"] == "single-packet"


# -- a CA file of one's own ------------------------------------------------------------------------

@pytest.fixture
def ca_signed_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTPS (HTTP/1.1) server on loopback under a self-signed certificate naming 127.0.0.1; (URL, cert file)."""
    openssl = shutil.which("openssl")
    assert openssl is not None, "the openssl command is needed to make the test certificate"
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=30)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve(raw: socket.socket) -> None:
        with raw:
            raw.settimeout(5)
            try:
                with context.wrap_socket(raw, server_side=True) as tls:
                    _answer_every_request(tls)
            except (OSError, ssl.SSLError):
                return  # a client that refused the certificate, or went away

    def accept() -> None:
        for _ in range(int(_SERVE_FOR / 0.1)):
            if stop.is_set():
                return
            try:
                raw, _ = listener.accept()
            except socket.timeout:
                continue
            threading.Thread(target=serve, args=(raw,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{listener.getsockname()[1]}", cert
    stop.set()
    thread.join(5)
    listener.close()


def _answer_every_request(sock: ssl.SSLSocket) -> None:
    http = h11.Connection(h11.SERVER)
    for _ in range(100):  # bounded: a connection carries a warm-up and a request or two
        event = http.next_event()
        if event is h11.NEED_DATA:
            http.receive_data(sock.recv(65536))
        elif isinstance(event, h11.EndOfMessage):
            sock.sendall(http.send(h11.Response(status_code=200, headers=[("Content-Length", "2")]))
                         + http.send(h11.Data(data=b"ok")) + http.send(h11.EndOfMessage()))
            http.start_next_cycle()
        elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            return


def test_a_ca_file_is_trusted_by_the_senders_and_the_harness_client_and_the_system_cas_are_not_enough(
        ca_signed_server):
    url, cert = ca_signed_server
    requests = [PreparedRequest("POST", f"{url}/r/{i}", body=b"{}") for i in range(3)]

    trusted = fire(requests, sync="last-byte", verify_tls=str(cert), timeout=10)
    by_default = fire(requests, sync="last-byte", timeout=10)
    with http_client(str(cert)) as client:
        status = client.get(f"{url}/healthz").status_code

    assert trusted.all_responded(), trusted.summary()
    assert status == 200
    assert all(e.error.startswith("connect:") and "CERTIFICATE_VERIFY_FAILED" in e.error for e in by_default.events)


def test_a_profile_says_how_its_certificate_is_trusted():
    data = profile_data_of_target(Target(base_url="https://shop.example"))

    def trust(**changes: object) -> bool | str:
        return Profile(parse_profile({**data, **changes}, "p")).tls_trust

    assert trust() is True  # the system's CAs
    assert trust(verify_tls=False) is False
    assert trust(ca_file="/etc/shop-ca.pem") == "/etc/shop-ca.pem"
    assert Profile(parse_profile(data, "p")).with_tls_trust(False).tls_trust is False  # --insecure
    with pytest.raises(ProfileError, match="give one of them"):
        parse_profile({**data, "verify_tls": False, "ca_file": "/etc/shop-ca.pem"}, "p")
