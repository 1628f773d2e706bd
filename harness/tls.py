"""How the harness trusts a target's TLS certificate: the system's CAs, a CA file of one's own, or not at all.

One value says it everywhere (the senders' sockets, the httpx clients that make payments and read
state and side effects): ``True`` verifies against the system's CAs (the default), a path verifies
against the CA certificates in that PEM file (``--ca-file``, a profile's ``ca_file``), ``False``
verifies nothing (``--insecure``, a profile's ``verify_tls = false``: a staging service's
throw-away certificate).

Every answer those clients read from a target goes through ``bounded_request``: at most
``ANSWER_MAX_BYTES`` and for at most ``ANSWER_DEADLINE`` seconds (httpx's own timeout bounds only
the gap between two reads, so an endless answer would otherwise be read for ever).
"""

from __future__ import annotations

import ssl
import time
from typing import Any, Union

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


# The bounds of every answer the harness reads (bounded_request's defaults; read when it is called).
ANSWER_MAX_BYTES = 8 * 2**20  # bytes of a body (decoded): a state record, a listing, /metrics are far smaller
ANSWER_DEADLINE = 30.0  # seconds from sending the request until the whole body is in (time.monotonic)


class AnswerUnbounded(httpx.HTTPError):
    """An answer ``bounded_request`` stopped reading: it passed the size or the time bound."""


class AnswerTooLarge(AnswerUnbounded):
    """The answer was larger than ``max_bytes``."""


class AnswerTooSlow(AnswerUnbounded):
    """The answer was still streaming after ``deadline`` seconds."""


_ENCODED = ("content-encoding", "content-length", "transfer-encoding")  # say how the wire carried the body


def bounded_request(client: httpx.Client, method: str, url: str | httpx.URL, *, max_bytes: int | None = None,
                    deadline: float | None = None, **kwargs: Any) -> httpx.Response:
    """``client.request(method, url, **kwargs)``, reading the answer's body only up to two bounds.

    * ``max_bytes`` (default ``ANSWER_MAX_BYTES``, 8 MiB): the body, decoded (after gzip and the like),
      may hold at most this many bytes; a larger one (or a Content-Length saying so) raises
      ``AnswerTooLarge``: "the answer from URL was larger than N bytes";
    * ``deadline`` (default ``ANSWER_DEADLINE``, 30 s): the whole exchange, from sending the request to
      the body's last byte, may take at most this many seconds of wall clock; an answer still streaming
      then raises ``AnswerTooSlow``: "the answer from URL was still streaming after N s". The deadline is
      checked as each piece of the body arrives, so it may be passed by one of httpx's own ``timeout``
      (the longest gap between two reads) before it is noticed.

    Both are ``httpx.HTTPError`` subclasses (``AnswerUnbounded``), so a caller that handles a failed
    request handles these too. The defaults are read when called: change one call with the keywords,
    or every call by setting ``harness.tls.ANSWER_MAX_BYTES`` / ``ANSWER_DEADLINE``. ``kwargs`` are
    ``client.stream``'s (headers, content, json, data, timeout, ...).

    Returns a closed ``httpx.Response`` holding the body that was read: ``.status_code``, ``.headers``
    (without the wire's Content-Encoding / Transfer-Encoding), ``.content``, ``.text``, ``.json()`` and
    ``.raise_for_status()`` work as on any answer.
    """
    max_bytes = ANSWER_MAX_BYTES if max_bytes is None else max_bytes
    deadline = ANSWER_DEADLINE if deadline is None else deadline
    started = time.monotonic()
    with client.stream(method, url, **kwargs) as response:
        shown = _shown(response.request.url)
        declared = response.headers.get("content-length", "")
        if declared.strip().isdigit() and "content-encoding" not in response.headers and int(declared) > max_bytes:
            raise _bound(AnswerTooLarge(f"the answer from {shown} was larger than {max_bytes} bytes "
                                        f"(it says {int(declared)})"), response)
        parts: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > max_bytes:
                raise _bound(AnswerTooLarge(f"the answer from {shown} was larger than {max_bytes} bytes"), response)
            parts.append(chunk)
            if time.monotonic() - started > deadline:
                raise _bound(AnswerTooSlow(f"the answer from {shown} was still streaming after {deadline:g} s"),
                             response)
    answer = httpx.Response(
        response.status_code,
        headers=[(k, v) for k, v in response.headers.multi_items() if k.lower() not in _ENCODED],
        content=b"".join(parts), request=response.request, history=response.history,
        extensions={k: v for k, v in response.extensions.items() if k in ("http_version", "reason_phrase")},
        default_encoding=response.default_encoding)
    try:
        answer.elapsed = response.elapsed
    except RuntimeError:  # an answer made in-process (httpx.MockTransport) has no time of its own
        pass
    return answer


def _bound(exc: AnswerUnbounded, response: httpx.Response) -> AnswerUnbounded:
    exc.request = response.request
    return exc


def _shown(url: httpx.URL) -> str:
    """The URL as an error names it: never its user:password@."""
    return str(url.copy_with(userinfo=b"")) if url.userinfo else str(url)


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
