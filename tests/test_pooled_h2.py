"""The HTTP/2 pool of a swarm lane's single-packet sender: the next burst multiplexes on the connections the last one left warm.

Real sockets: the h2c server of ``tests/_h2server.py``, which counts the connections it accepted,
records which data segment ended each stream, and can end a connection (GOAWAY or a silent close)
or leave a path unanswered.
"""

from __future__ import annotations

import json
import time

import pytest
from _h2server import H2Server
from _poll import wait_until

from harness.senders import PreparedRequest
from harness.senders.pooled_h2 import H2Pool, PooledSinglePacket


def posts(url: str, n: int, path: str = "r") -> list[PreparedRequest]:
    return [PreparedRequest("POST", f"{url}/{path}/{i}", headers=(("content-type", "application/json"),),
                            body=json.dumps({"i": i}).encode()) for i in range(n)]


def burst(sender: PooledSinglePacket, requests: list[PreparedRequest], timeout: float = 10):
    armed = sender.open(requests, timeout=timeout)
    return armed.release(time.time() + 0.05)  # at an instant, as a lane releases its share


def test_the_next_burst_multiplexes_its_streams_on_the_connection_the_last_one_left_warm():
    sender = PooledSinglePacket()
    with H2Server() as server:
        first = burst(sender, posts(server.url, 6))
        second = burst(sender, posts(server.url, 6))
        wait_until(lambda: len(server.ended) == 12, message="the server seeing all twelve streams end")
        sender.close()

    assert first.all_responded() and second.all_responded(), (first.summary(), second.summary())
    assert server.connections == 1  # the second burst opened nothing
    assert not any(e.meta.get("reused") or e.meta["h2"]["reused"] for e in first.events)
    assert all(e.meta.get("reused") and e.meta["h2"]["reused"] for e in second.events)
    assert {e.body["conn"] for e in second.events} == {0}
    # New stream ids on the old connection, above every id the first burst (and its warm-up) used.
    assert min(e.meta["h2"]["stream"] for e in second.events) > max(e.meta["h2"]["stream"] for e in first.events)
    # The second burst is still one packet: after its PING, one data segment ended all six streams.
    later = [r for r in server.ended if r["stream"] in {e.meta["h2"]["stream"] for e in second.events}]
    assert len(later) == 6 and {r["segments"] for r in later} == {server.ping_segments[0] + 1}


def test_a_burst_larger_than_the_stream_limit_reuses_every_connection_it_was_split_over():
    sender = PooledSinglePacket()
    with H2Server(max_streams=4) as server:
        first = burst(sender, posts(server.url, 10))
        second = burst(sender, posts(server.url, 10))
        sender.close()

    assert first.all_responded() and second.all_responded(), (first.summary(), second.summary())
    assert server.connections == 3
    assert {e.meta["h2"]["connections"] for e in second.events} == {3}
    assert all(e.meta["h2"]["reused"] for e in second.events)


@pytest.mark.parametrize("end_with", ["goaway", "close"])
def test_a_connection_the_server_ended_is_never_used_again(end_with):
    sender = PooledSinglePacket()
    with H2Server(end_after=3, end_with=end_with) as server:
        first = burst(sender, posts(server.url, 3))
        wait_until(lambda: server.closed == 1, message="the server ending the first connection")
        second = burst(sender, posts(server.url, 3))
        sender.close()

    assert first.all_responded() and second.all_responded(), (first.summary(), second.summary())
    assert server.connections == 2
    assert not any(e.meta["h2"]["reused"] for e in second.events)


def test_a_connection_idle_longer_than_the_pool_keeps_them_is_closed_not_reused():
    sender = PooledSinglePacket(H2Pool(max_idle=0.0))
    with H2Server() as server:
        burst(sender, posts(server.url, 3))
        second = burst(sender, posts(server.url, 3))
        sender.close()

    assert second.all_responded() and server.connections == 2
    assert not any(e.meta["h2"]["reused"] for e in second.events)


def test_a_connection_with_a_stream_left_unanswered_is_not_kept():
    sender = PooledSinglePacket()
    with H2Server(silent_paths=("/silent/0",)) as server:
        first = burst(sender, posts(server.url, 2) + posts(server.url, 1, path="silent"), timeout=1.5)
        second = burst(sender, posts(server.url, 2))
        sender.close()

    assert [e.error is None for e in first.events] == [True, True, False]
    assert first.events[2].error.startswith("timeout:")
    assert second.all_responded() and server.connections == 2
    assert not any(e.meta["h2"]["reused"] for e in second.events)


def test_a_burst_closed_before_its_release_leaves_its_warm_connection_for_the_next():
    sender = PooledSinglePacket()
    with H2Server() as server:
        sender.open(posts(server.url, 4), timeout=10).close()  # e.g. the master aborted the wave
        second = burst(sender, posts(server.url, 4))
        sender.close()

    assert second.all_responded() and server.connections == 1
    assert all(e.meta["h2"]["reused"] for e in second.events)
    assert len(server.ended) == 4  # the aborted share sent nothing


def test_closing_the_sender_closes_every_kept_connection():
    pool = H2Pool()
    sender = PooledSinglePacket(pool)
    with H2Server() as server:
        burst(sender, posts(server.url, 3))
        assert len(pool) == 1
        sender.close()
        assert len(pool) == 0
        again = burst(sender, posts(server.url, 3))
        sender.close()

    assert again.all_responded() and server.connections == 2


def test_a_connection_is_retired_before_the_server_would_end_it_for_its_number_of_requests(monkeypatch):
    from harness.senders import h2conn

    monkeypatch.setattr(h2conn, "REQUESTS_PER_CONNECTION", 10)  # the server below answers 10 per connection
    sender = PooledSinglePacket()
    with H2Server(max_requests=10) as server:
        waves = [burst(sender, posts(server.url, 4)) for _ in range(6)]
        sender.close()

    assert all(w.all_responded() for w in waves), [w.summary() for w in waves]
    assert server.refused == 0
    # 24 requests and the warm-ups, at most 10 streams a connection: wave 3 split over an old and a new one
    assert server.connections >= 3 and any(e.meta["h2"]["reused"] for w in waves[1:] for e in w.events)
    assert {e.meta["h2"]["connections"] for e in waves[2].events} == {2}
