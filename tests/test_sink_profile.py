"""The ``[sink]`` section and ``source = "sink"`` effects of a profile: checked when the file is loaded."""

from __future__ import annotations

import pytest

from harness.errors import ProfileError
from harness.profile import parse_profile
from harness.observe.sink import settle_for_sink, sink_settings

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


class _RecordedSink:
    """A sink's records as the recording sink keeps them, without a server."""

    def __init__(self, records: list[dict]) -> None:
        self._records = records

    def records(self) -> list[dict]:
        return list(self._records)


def test_a_sink_effect_carries_when_it_reached_the_sink_into_the_payment_row():
    from harness.verdict.measure import effect_times
    from harness.observe.observation import ReceiptFile
    from harness.observe.sink import read_sink_effects

    spec = profile([{"kind": "receipt e-mail", "source": "sink", "channel": "smtp",
                     "key": {"from": "subject", "pattern": "(RH\\w+)"}}])
    sink = _RecordedSink([{"seq": 2, "t": 1_700_000_000.5, "channel": "smtp", "recipients": ["a@x"],
                           "subject": "Receipt RH1"},
                          {"seq": 1, "t": 1_700_000_000.25, "channel": "smtp", "recipients": ["a@x"],
                           "subject": "Receipt RH1"}])
    effects, problems = read_sink_effects(spec.effects[0], sink)
    assert not problems and [e.at for e in effects] == [1_700_000_000.5, 1_700_000_000.25]
    untimed = ReceiptFile(name="row-1", size=0, kind="ledger row", source="mongo")  # rows have no time
    assert effect_times(effects + [untimed]) == [{"kind": "receipt e-mail", "at": 1_700_000_000.25},
                                                 {"kind": "receipt e-mail", "at": 1_700_000_000.5}]


def test_a_finished_runs_records_are_read_quiet_and_a_missing_file_is_unknown_naming_where_it_looked(tmp_path):
    from harness.observe.sink import nothing_reached, read_sink_effects, sink_quiet
    from harness.sink import kept_records

    spec = profile([{"kind": "receipt e-mail", "source": "sink", "channel": "smtp",
                     "key": {"from": "subject", "pattern": "(RH\\w+)"}}])
    (tmp_path / "run.sink.jsonl").write_text('{"seq": 1, "t": 1.0, "channel": "smtp", "recipients": ["a@x"], '
                                             '"subject": "Receipt RH1"}\n')
    config = {"sink": {"records": str(tmp_path / "gone.jsonl"), "ports": {"smtp": 2525}}}
    sink = kept_records(config, tmp_path / "run.json")
    effects, problems = read_sink_effects(spec.effects[0], sink)
    assert [e.key for e in effects] == ["RH1"] and not problems and sink_quiet(spec, sink)

    missing = kept_records(config, tmp_path / "moved.json")
    effects, problems = read_sink_effects(spec.effects[0], missing)
    assert not effects and str(tmp_path / "moved.sink.jsonl") in problems[0].message
    assert str(tmp_path / "gone.jsonl") in problems[0].message
    assert nothing_reached(spec, missing, payments=1) is None  # not "nothing reached": the file is what is missing


def test_records_found_by_default_that_another_run_rewrote_are_not_judged_as_this_runs(tmp_path):
    from harness.sink import kept_records

    shared = tmp_path / "sink.jsonl"  # a profile's `[sink] records`: every run writes (and truncates) it
    line = '{{"seq": {n}, "t": 1.0, "channel": "smtp", "recipients": ["a@x"], "subject": "Receipt RH{n}"}}\n'
    shared.write_text(line.format(n=1) + line.format(n=2))  # the next run's two records
    config = {"sink": {"records": str(shared), "recorded": 3, "blocked_upstream": 0}}  # this run kept three

    stale = kept_records(config, tmp_path / "moved" / "run.json")
    assert stale.missing and str(shared) in stale.missing
    config["sink"]["recorded"] = 2
    assert kept_records(config, tmp_path / "moved" / "run.json").missing is None  # its own, as many as it kept
    config["sink"]["recorded"] = 3
    assert kept_records(config, given=shared).missing is None  # a file named on purpose is trusted
