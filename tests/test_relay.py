"""The relay really adds the delay it is configured with, per direction, and keeps each connection's order."""

from __future__ import annotations

import socket
import threading

import pytest

from harness.local.relay import Relay


@pytest.fixture
def echo_port():
    """A loopback echo server: whatever a connection sends comes straight back."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(10)

    def serve() -> None:
        try:
            while True:
                conn, _ = server.accept()
                threading.Thread(target=echo, args=(conn,), daemon=True).start()
        except OSError:
            return

    def echo(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


def _exchange(port: int, messages: list[bytes]) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for message in messages:
            sock.sendall(message)
        want, got = sum(map(len, messages)), b""
        while len(got) < want:
            data = sock.recv(65536)
            if not data:  # closed before everything came back: a refusal may end in a close, not a reset
                raise ConnectionError(f"closed after {len(got)} of {want} bytes")
            got += data
        return got


def test_every_chunk_is_held_at_least_its_directions_configured_delay(echo_port):
    with Relay(echo_port, up_delay=lambda k: 0.05, down_delay=lambda k: 0.03, jitter=0.01) as relay:
        assert _exchange(relay.port, [b"ping"]) == b"ping"
        held = {direction: [h for _, d, h in relay.stats.held if d == direction] for direction in ("up", "down")}
    # The event loop's timer may fire a hair early; a millisecond is far below the delays asked for.
    assert held["up"] and min(held["up"]) >= 0.049
    assert held["down"] and min(held["down"]) >= 0.029


def test_jittered_chunks_of_one_connection_arrive_in_the_order_they_were_sent(echo_port):
    messages = [f"{i:04d}".encode() for i in range(200)]
    with Relay(echo_port, up_delay=lambda k: 0.001, jitter=0.005, seed=7) as relay:
        assert _exchange(relay.port, messages) == b"".join(messages)


def test_a_refused_connection_is_reset_and_counted(echo_port):
    with Relay(echo_port, refuse=lambda k: k == 0) as relay:
        with pytest.raises(OSError):
            _exchange(relay.port, [b"x"])
        assert _exchange(relay.port, [b"y"]) == b"y"
        assert (relay.stats.refused, relay.stats.accepted) == (1, 1)
