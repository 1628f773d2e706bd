"""Start a stranger service (a script under tests/strangers/) as a real process on a free loopback port."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx

from harness.local.process import end_process

from harness.local.service import free_port

STRANGERS = Path(__file__).with_name("strangers")


@dataclass
class Stranger:
    url: str
    receipts_dir: Path | None
    process: subprocess.Popen


@contextlib.contextmanager
def stranger(script: str, receipts_dir: Path | None, *args: str, log: Path | None = None,
             timeout: float = 30.0, env: dict[str, str] | None = None) -> Iterator[Stranger]:
    """Run ``tests/strangers/<script>`` until the block ends; waits (bounded) until /healthz answers.

    ``receipts_dir`` None: the service keeps its side effects elsewhere (a database) and gets no ``--receipts``.
    ``env``: variables added to the service's environment.
    """
    import os

    port = free_port()
    out = open(log, "ab") if log else subprocess.DEVNULL
    receipts = ["--receipts", str(receipts_dir)] if receipts_dir is not None else []
    process = subprocess.Popen([sys.executable, str(STRANGERS / script), "--port", str(port), *receipts, *args],
                               stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               env={**os.environ, **env} if env else None)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{script} exited with {process.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/healthz", timeout=1.0).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{script} did not answer within {timeout} s")
            time.sleep(0.05)
        yield Stranger(url, receipts_dir, process)
    finally:
        end_process(process)
        if log:
            out.close()


# -- strangers as a user meets them: a running service and the variables its profile file reads ----

SHOP_USERNAME, SHOP_PASSWORD = "shop-webhooks", "shop-webhook-password-for-tests"
DONATIONS_SECRET = "whsec_" + __import__("base64").b64encode(b"donations-stranger-test-secret!!").decode()
PROFILES = {"v2shop": STRANGERS / "phonepe_v2_shop.toml", "donations": STRANGERS / "donations_service.toml"}


@contextlib.contextmanager
def stranger_with_profile(name: str, variant: str, workdir: Path) -> Iterator[dict[str, str]]:
    """Start stranger ``name`` (v2shop, donations) in ``variant`` on the wire store; yield its profile's variables."""
    from _wire import fresh_database, wire_server

    uri, database = wire_server().uri, fresh_database()
    if name == "v2shop":
        with stranger("phonepe_v2_shop.py", workdir / "receipts", "--mongo-uri", uri, "--database", database,
                      "--variant", variant, "--username", SHOP_USERNAME, "--password", SHOP_PASSWORD,
                      log=workdir / "shop.log", timeout=120) as service:
            yield {"V2SHOP_BASE_URL": service.url, "V2SHOP_RECEIPTS_DIR": str(service.receipts_dir),
                   "V2SHOP_MONGO_URI": uri, "V2SHOP_DATABASE": database,
                   "V2SHOP_WEBHOOK_USERNAME": SHOP_USERNAME, "V2SHOP_WEBHOOK_PASSWORD": SHOP_PASSWORD}
    elif name == "donations":
        with stranger("donations_service.py", None, "--mongo-uri", uri, "--database", database, "--variant", variant,
                      "--secret", DONATIONS_SECRET, log=workdir / "donations.log", timeout=120) as service:
            yield {"DONATIONS_BASE_URL": service.url, "DONATIONS_MONGO_URI": uri, "DONATIONS_DATABASE": database,
                   "DONATIONS_WEBHOOK_SECRET": DONATIONS_SECRET}
    else:
        raise ValueError(f"no stranger called {name!r}")


# The webhook-security strangers (race-harness probe): a PhonePe v2 checkout and a Stripe order backend.
CHECKOUT_USERNAME, CHECKOUT_PASSWORD = "co-webhook", "co-webhook-password-for-probes"
ORDERS_SECRET = "whsec_probe_tests_0123456789abcdef"
CHECKOUT_PROFILE, ORDERS_PROFILE = STRANGERS / "v2_checkout.toml", STRANGERS / "stripe_orders.toml"


@contextlib.contextmanager
def checkout_with_profile(variant: str, workdir: Path, gateway: str, *more: str) -> Iterator[dict[str, str]]:
    """Start the PhonePe v2 checkout (any-auth, checks-auth, asks-gateway) asking ``gateway`` (the PhonePe
    simulator), with ``more`` of its flags; yield its profile's variables."""
    invoices = workdir / "invoices"
    with stranger("v2_checkout.py", invoices, "--db", str(workdir / "checkout.sqlite"), "--variant", variant,
                  "--username", CHECKOUT_USERNAME, "--password", CHECKOUT_PASSWORD, "--gateway-url", gateway, *more,
                  log=workdir / "checkout.log") as service:
        yield {"V2CO_BASE_URL": service.url, "V2CO_INVOICES_DIR": str(invoices),
               "V2CO_WEBHOOK_USERNAME": CHECKOUT_USERNAME, "V2CO_WEBHOOK_PASSWORD": CHECKOUT_PASSWORD,
               "V2CO_GATEWAY_URL": gateway}


@contextlib.contextmanager
def orders_with_profile(variant: str, workdir: Path) -> Iterator[dict[str, str]]:
    """Start the Stripe order backend (fixed, ignores-timestamp, unpays); yield its profile's variables."""
    with stranger("stripe_orders.py", None, "--db", str(workdir / "orders.sqlite"), "--variant", variant,
                  "--secret", ORDERS_SECRET, log=workdir / "orders.log") as service:
        yield {"STRIPE_ORDERS_BASE_URL": service.url, "STRIPE_ORDERS_SECRET": ORDERS_SECRET}


MAILER_SECRET = "rzp-webhook-secret-for-tests"
MAILER_PROFILE = STRANGERS / "donation_mailer.toml"


@contextlib.contextmanager
def mailer_with_profile(variant: str, workdir: Path, **overrides: str) -> Iterator[dict[str, str]]:
    """Start the donation mailer (``variant``) pointed at a sink's ports (not yet listening: the run starts
    the sink) and its throw-away CA; yield its profile's variables (``overrides`` replace some)."""
    from harness.local.service import free_port
    from harness.sink.proxy import ensure_ca

    ca_dir = workdir / "ca"
    cert = ensure_ca(ca_dir)
    variables = {"MAILER_SMTP_PORT": str(free_port()), "MAILER_PROXY_PORT": str(free_port()),
                 "MAILER_CA_DIR": str(ca_dir), "MAILER_WEBHOOK_SECRET": MAILER_SECRET, **overrides}
    service_env = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": variables["MAILER_SMTP_PORT"],
                   "HTTPS_PROXY": f"http://127.0.0.1:{variables['MAILER_PROXY_PORT']}",
                   "REQUESTS_CA_BUNDLE": str(cert), "NO_PROXY": "", "no_proxy": ""}
    with stranger("donation_mailer.py", workdir / "receipts", "--variant", variant, "--secret", MAILER_SECRET,
                  log=workdir / "mailer.log", env=service_env) as service:
        yield {**variables, "MAILER_BASE_URL": service.url, "MAILER_RECEIPTS_DIR": str(service.receipts_dir)}


# -- a stranger the harness starts itself (its profile's [service]), for faults ----------------------

CLAIM_THEN_GENERATE = STRANGERS / "claim_then_generate.toml"
CTG_SECRET = "rzp-ctg-webhook-secret-for-tests"


def claim_then_generate_variables(variant: str, workdir: Path) -> dict[str, str]:
    """The variables of claim_then_generate.toml for ``variant`` on a fresh database of the wire server;
    the run starts the service (its [service] section) on a free port and stops it."""
    from _wire import fresh_database, wire_server

    wire = wire_server()
    return {"CTG_PYTHON": sys.executable, "CTG_PORT": str(free_port()), "CTG_RECEIPTS_DIR": str(workdir / "receipts"),
            "CTG_DB_UPSTREAM": f"{wire.host}:{wire.port}", "CTG_DB_PORT": str(free_port()),
            "CTG_DATABASE": fresh_database(), "CTG_VARIANT": variant,
            "CTG_SECRET": CTG_SECRET, "CTG_LEASE_SECONDS": "2"}


# The same stranger with the CRM it announces receipts to: the run's sink, and a side effect read from it.
CRM_NOTICE = """
[[effects]]
kind = "crm notice"
source = "sink"
channel = "http"
path = "/crm/receipts"
key = { from = "body", field = "orderId" }
"""


def claim_then_generate_with_crm(workdir: Path) -> Path:
    """claim_then_generate.toml with the CRM notice as a second side effect (the sink answers or fails it)."""
    workdir.mkdir(parents=True, exist_ok=True)
    profile = workdir / "claim_then_generate_crm.toml"
    text = CLAIM_THEN_GENERATE.read_text().replace("[state]", CRM_NOTICE + "\n[state]", 1)
    profile.write_text(text.replace("[service]\n", f"[service]\ncwd = {str(STRANGERS)!r}\n", 1))  # where the script is
    return profile
