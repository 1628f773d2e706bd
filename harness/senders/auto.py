"""``--sync auto``: single-packet when the target speaks HTTP/2, else last-byte; the run records which ran."""

from __future__ import annotations

import time

from .h1conn import connect_socket, resolve_address
from .h2conn import H2Conn, h2_context
from .base import split_url

AUTO = "auto"


# An HTTP/1.1 server refuses the preface at once; an HTTP/2 server on a loaded machine may take seconds to
# send its SETTINGS, and a probe that gave up early would pick last-byte for it.
PROBE_TIMEOUT = 10.0


def speaks_h2(url: str, *, timeout: float = PROBE_TIMEOUT, verify_tls: bool | str = True) -> bool:
    """Does the origin of ``url`` speak HTTP/2: ALPN ``h2`` over TLS, or an h2c preface answered with SETTINGS?"""
    origin, _ = split_url(url)
    deadline = time.perf_counter() + timeout
    conn = H2Conn(0, origin)
    try:
        conn.adopt(connect_socket(origin, resolve_address(origin), deadline, h2_context(verify_tls) if origin.tls else None))
        conn.handshake(deadline)
        return conn.settings_seen
    except Exception:  # noqa: BLE001 - an HTTP/1.1 server answers the preface with an error or a close: a "no"
        return False
    finally:
        conn.close()


def resolve_sync(sync: str, url: str, *, verify_tls: bool | str = True) -> str:
    """The sender a run uses: ``sync`` itself, or for ``auto`` what the target speaks."""
    if sync != AUTO:
        return sync
    return "single-packet" if speaks_h2(url, verify_tls=verify_tls) else "last-byte"
