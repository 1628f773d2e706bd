"""The ``[sink]`` section and ``source = "sink"`` effects of a profile: checked when the file is loaded."""

from __future__ import annotations

import pytest

from harness.profile import ProfileError, parse_profile
from harness.profile.sink_source import settle_for_sink, sink_settings

BASE = {"version": 1, "base_url": "http://127.0.0.1:9", "payments": {"source": "http", "path": "/p", "id": "id"},
        "deliveries": {"callback": {"path": "/hook"}}}


def profile(effects: list[dict], **sections):
    return parse_profile({**BASE, "effects": effects, **sections})


def test_a_sink_effect_starts_its_channel_on_a_free_port_unless_the_profile_gives_one():
    spec = profile([{"kind": "receipt e-mail", "source": "sink", "channel": "smtp", "key": {"from": "subject",
                                                                                           "pattern": "(RH\\w+)"}},
                    {"kind": "crm post", "source": "sink", "channel": "proxy", "host": "crm.example.com",
                     "key": {"from": "body", "field": "donation.order_id"}}],
                   sink={"smtp": 2525, "status": 503, "latency_ms": 250})
    settings = sink_settings(spec)
    assert (settings.smtp, settings.proxy, settings.http) == (2525, 0, None)
    assert (settings.status, settings.latency_ms) == (503, 250)


def test_a_profile_with_sink_effects_waits_for_the_sink_to_be_quiet_even_without_settle():
    spec = profile([{"source": "sink", "channel": "http", "path": "/v1/*", "key": {"from": "path",
                                                                                  "pattern": "/v1/(\\w+)"}}],
                   sink={"quiet": 2.5})
    assert settle_for_sink(spec).quiet == 2.5


@pytest.mark.parametrize("effect, message", [
    ({"source": "sink", "key": {"from": "subject", "pattern": "x"}}, "effects from sink need 'channel'"),
    ({"source": "sink", "channel": "ftp"}, "channel"),
    ({"source": "sink", "channel": "http", "key": {"from": "header"}}, "a key from a header needs header"),
    ({"source": "sink", "channel": "http", "key": {"from": "body"}}, "needs field"),
    ({"source": "sink", "channel": "smtp", "key": {"from": "subject", "field": "x"}}, "field is a dotted path"),
    ({"source": "sink", "channel": "smtp", "key": {"from": "subject", "pattern": "(a)(b)"}}, "at most one group"),
])
def test_a_wrong_sink_effect_is_one_line_naming_its_field(effect, message):
    with pytest.raises(ProfileError, match=message):
        profile([effect])


def test_a_sink_port_out_of_range_is_named():
    with pytest.raises(ProfileError, match="sink.smtp"):
        profile([], sink={"smtp": 70000})
