"""How the harness trusts a target's TLS certificate: the system's CAs, a CA file of one's own, or not at all.

One value says it everywhere (the senders' sockets, the httpx clients that make payments and read
state and side effects): ``True`` verifies against the system's CAs (the default), a path verifies
against the CA certificates in that PEM file (``--ca-file``, a profile's ``ca_file``), ``False``
verifies nothing (``--insecure``, a profile's ``verify_tls = false``: a staging service's
throw-away certificate).
"""

from __future__ import annotations

import ssl
from typing import Union

import httpx

Trust = Union[bool, str]  # True: the system's CAs; a path: the CAs in that PEM file; False: no verification

# How OpenSSL says a certificate could not be verified (the text of the SSLError every client raises).
_UNVERIFIED = "CERTIFICATE_VERIFY_FAILED"
HINT = ("the service's certificate is not trusted here: give the CA that signed it (--ca-file FILE, or ca_file "
        "in the profile), or for a throw-away certificate do not verify (--insecure, or verify_tls = false)")


def client_context(trust: Trust, alpn: list[str] | None = None) -> ssl.SSLContext:
    """A client TLS context that trusts as ``trust`` says and offers ``alpn`` (ValueError: an unreadable CA file)."""
    if isinstance(trust, str):
        try:
            context = ssl.create_default_context(cafile=trust)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"cannot read the CA file {trust}: {exc}") from None
    else:
        context = ssl.create_default_context()
        if not trust:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    if alpn:
        context.set_alpn_protocols(alpn)
    return context


def httpx_verify(trust: Trust) -> bool | ssl.SSLContext:
    """httpx's ``verify=`` for ``trust``."""
    return client_context(trust) if isinstance(trust, str) else bool(trust)


def http_client(trust: Trust = True, *, timeout: float = 10.0, **kwargs: object) -> httpx.Client:
    """The harness's own HTTP client for a target (payments, state, side effects, telemetry)."""
    return httpx.Client(timeout=timeout, verify=httpx_verify(trust), **kwargs)


def trust_of(insecure: bool = False, ca_file: str | None = None) -> Trust | None:
    """The trust the ``--insecure`` / ``--ca-file`` options ask for; None when neither is given (ValueError: both)."""
    if insecure and ca_file:
        raise ValueError("--insecure verifies nothing and --ca-file trusts a CA: give one of them")
    if ca_file:
        return str(ca_file)
    return False if insecure else None


def explain(message: str) -> str:
    """``message``, and when it says a certificate could not be verified, what to do about it."""
    return f"{message} ({HINT})" if _UNVERIFIED in message else message
