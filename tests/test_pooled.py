"""The keep-alive pool of a swarm lane's last-byte sender: a burst goes out on the connections the last one left warm.

Real sockets: a small HTTP/1.1 server on loopback (h11) that counts the connections it accepted
and can close each connection after its answer, with or without saying so.
"""

from __future__ import annotations

import socket
import threading
import time

import h11
import pytest

from _loopback import LoopbackServer
from _poll import wait_until

from harness.senders import PreparedRequest
from harness.senders.pooled import ConnectionPool, PooledLastByte

_SERVE_FOR = 30.0  # no test server thread outlives this


class Server(LoopbackServer):
    """Answers every request 200; ``close_after``: "no" (keep-alive), "say" (Connection: close), "silently"."""

    def __init__(self, close_after: str = "no") -> None:
        self.close_after = close_after
        self.accepted = 0
        self.closed = 0
        self.listen(self._accept).settimeout(0.05)
        self._lock = threading.Lock()

    def _accept(self) -> None:
        end = time.monotonic() + _SERVE_FOR
        while not self._stop.is_set() and time.monotonic() < end:
            try:
                sock, _ = self._listener.accept()
            except socket.timeout:
                continue
            with self._lock:
                self.accepted += 1
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        """Answer the warm-up GET and what follows; with ``close_after`` close after the second answer."""
        http = h11.Connection(h11.SERVER)
        sock.settimeout(1.0)
        answered, end = 0, time.monotonic() + _SERVE_FOR
        with sock:
            while not self._stop.is_set() and time.monotonic() < end:
                event = http.next_event()
                if event is h11.NEED_DATA:
                    try:
                        http.receive_data(sock.recv(65536))
                    except socket.timeout:
                        continue
                    except OSError:
                        break
                elif isinstance(event, h11.EndOfMessage):
                    answered += 1
                    last = self.close_after != "no" and answered >= 2
                    headers = [("Content-Length", "2")] + ([("Connection", "close")]
                                                           if last and self.close_after == "say" else [])
                    sock.sendall(http.send(h11.Response(status_code=200, headers=headers))
                                 + http.send(h11.Data(data=b"ok")) + http.send(h11.EndOfMessage()))
                    if last:
                        break
                    http.start_next_cycle()
                elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                    break
        with self._lock:
            self.closed += 1


def posts(url: str, n: int) -> list[PreparedRequest]:
    return [PreparedRequest("POST", f"{url}/r/{i}", body=b"{}") for i in range(n)]


def burst(sender: PooledLastByte, url: str, n: int = 4):
    armed = sender.open(posts(url, n), timeout=10)
    return armed.release(time.time() + 0.05)  # at an instant, as a lane releases its share


def test_the_next_burst_goes_out_on_the_connections_the_last_one_left_warm():
    sender = PooledLastByte()
    with Server() as server:
        first = burst(sender, server.url)
        second = burst(sender, server.url)
        sender.close()

    assert first.all_responded() and second.all_responded(), (first.summary(), second.summary())
    assert server.accepted == 4  # the second burst opened nothing
    assert not any(e.meta.get("reused") for e in first.events)
    assert all(e.meta.get("reused") for e in second.events)
    assert len({e.connection for e in second.events}) == 4  # still one connection per request


@pytest.mark.parametrize("close_after", ["say", "silently"])
def test_a_connection_the_server_closes_is_never_used_again(close_after):
    sender = PooledLastByte()
    with Server(close_after) as server:
        first = burst(sender, server.url)
        wait_until(lambda: server.closed == 4, message="the server closing its four connections")
        second = burst(sender, server.url)
        sender.close()

    assert first.all_responded() and second.all_responded(), (first.summary(), second.summary())
    assert server.accepted == 8 and not any(e.meta.get("reused") for e in second.events)


def test_a_connection_idle_longer_than_the_pool_keeps_them_is_closed_not_reused():
    sender = PooledLastByte(ConnectionPool(max_idle=0.0))
    with Server() as server:
        burst(sender, server.url)
        second = burst(sender, server.url)
        sender.close()

    assert second.all_responded() and server.accepted == 8
    assert not any(e.meta.get("reused") for e in second.events)


def test_a_pool_keeps_several_waves_of_connections_but_never_more_than_half_the_file_descriptors(monkeypatch):
    import resource

    from harness.senders import pooled

    monkeypatch.setattr(resource, "getrlimit", lambda kind: (1_000_000, 1_000_000))
    assert pooled._kept_limit() == 4096  # 4 waves of 500 requests under way, and some to spare
    monkeypatch.setattr(resource, "getrlimit", lambda kind: (1024, 4096))
    assert pooled._kept_limit() == 512
    assert ConnectionPool().max_kept == pooled.MAX_KEPT


def test_a_body_larger_than_the_send_buffer_still_goes_out_whole_with_its_last_byte_held_back():
    sender = PooledLastByte()
    body = b"x" * (8 << 20)  # more than loopback's send buffer: the prefix cannot leave in one send
    with Server() as server:
        armed = sender.open([PreparedRequest("POST", f"{server.url}/big", body=body)], timeout=20)
        result = armed.release(time.time() + 0.05)
        again = burst(sender, server.url, n=1)
        sender.close()

    assert result.all_responded() and result.events[0].status == 200, result.summary()
    assert again.all_responded() and again.events[0].meta.get("reused")  # framing intact: the connection is kept
