"""Messages that say what happened (issue 25, item 12): a bad record is named by its line, a source that keeps
failing is reported failing (not "still changed"), and an unanswered run is not blamed on the profile."""

from __future__ import annotations

import time

import httpx
import pytest

from harness.errors import TargetError
from harness.history import Event, History
from harness.observe.observation import Observation
from harness.observe.observer import observe_settled
from harness.oracle import Evidence, PlannedPayment
from harness.oracle.answers import one_generation
from harness.profile import Payment, load_profile
from harness.profile.payments import make_payments
from harness.profile.schema import PaymentsSection
from harness.progress import no_progress


def test_a_bad_json_lines_record_is_named_by_its_own_line(tmp_path):
    path = tmp_path / "payments.jsonl"
    good = '{"id": "p%d", "tx": "T%d", "amount": 100}\n'
    path.write_text("".join(good % (i, i) for i in range(1, 2001)) + '{"id": "p2001", "tx": \n')
    section = PaymentsSection.model_validate({"source": "file", "file": str(path), "id": "id", "transaction": "tx",
                                              "amount": "amount"})
    with pytest.raises(TargetError, match=r"payments\.file: .* line 2001 column \d+: not a JSON record"):
        make_payments(section, [100] * 3, base_url="http://127.0.0.1:9", client=httpx.Client(),
                      progress=no_progress)


def test_requests_that_got_no_answer_are_not_blamed_on_the_profiles_answers():
    payment = Payment("p1", "T1", 100)
    events = [Event(index=i, payment="p1", channel="callback", t_release=0.0, t_response=None, status=None,
                    error="read: ReadTimeout") for i in range(3)]
    result = one_generation(Evidence([PlannedPayment(payment, True)], History(events=events),
                                     Observation(answers_described=True)))
    assert result.valid is None
    assert result.details["reason"] == "no request got an answer to read an outcome from (3 sent, 3 transport errors)"
    assert "Target.outcome_field" not in str(result.details)


@pytest.mark.slow
def test_a_state_source_that_keeps_failing_is_reported_failing_not_still_changing(tmp_path):
    profile = tmp_path / "p.toml"
    profile.write_text(f"""
version = 1
name = "s"
base_url = "http://127.0.0.1:9"
[payments]
source = "http"
path = "/p"
id = "id"
[deliveries.callback]
path = "/h"
body = {{ id = "{{id}}" }}
signing = {{ scheme = "none" }}
[[effects]]
source = "files"
dir = "{tmp_path}"
[state]
source = "mongo"
uri = "mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=300"
database = "d"
collection = "c"
paid = {{ field = "status", values = ["PAID"] }}
[settle]
quiet = 0.5
timeout = 30
""")
    started = time.monotonic()
    with httpx.Client() as client:
        obs = observe_settled(load_profile(profile), [Payment("p1", "T1", 100)], client)
    assert time.monotonic() - started < 20  # settled as failing, not polled to the 30 s timeout
    messages = [p.message for p in obs.problems]
    assert any(m.startswith("cannot read state") for m in messages), messages
    assert not any("still changed" in m for m in messages), messages


def test_a_run_that_read_nothing_back_says_not_measured_not_none(capsys):
    from _reports import make_report

    from harness.cli.run import print_report

    report = make_report("nothing", [1, 1])
    report.metrics.update(receipts_per_payment_min=None, receipts_per_payment_max=None)
    print_report(report, False)
    out = capsys.readouterr().out
    assert "side effects per paid payment not measured" in out and "None–None" not in out


@pytest.mark.parametrize("base_url", ["http://127.0.0.1:abc", "http://127.0.0.1:99999"])
def test_a_base_url_with_a_bad_port_is_one_line_at_load_exit_4(tmp_path, base_url):
    import subprocess
    import sys

    profile = tmp_path / "p.toml"
    profile.write_text(f'version = 1\nname = "s"\nbase_url = "{base_url}"\n[payments]\nsource = "http"\npath = "/p"\n'
                       f'id = "id"\n[deliveries.callback]\npath = "/h"\nbody = {{ id = "{{id}}" }}\n'
                       f'signing = {{ scheme = "none" }}\n')
    for command in (["run", "--profile", str(profile)], ["profile", "check", str(profile)]):
        result = subprocess.run([sys.executable, "-m", "harness", *command], capture_output=True, text=True, timeout=60)
        lines = (result.stdout + result.stderr).strip().splitlines()
        assert result.returncode == 4 and len(lines) == 1, result.stdout + result.stderr
        assert "base_url (line 3): its port is not a number from 1 to 65535" in lines[0]


def test_a_malformed_mongodb_uri_is_refused_at_load_without_its_password():
    from harness.errors import ProfileError
    from harness.profile.schema import parse_profile

    data = {"version": 1, "name": "s", "base_url": "http://127.0.0.1:9",
            "payments": {"source": "http", "path": "/p", "id": "id"},
            "deliveries": {"callback": {"path": "/h", "body": {"id": "{id}"}, "signing": {"scheme": "none"}}},
            "effects": [{"source": "files", "dir": "/tmp"}],
            "state": {"source": "mongo", "uri": "mongodb://shop:s3cr3t-pw@db:port/x", "database": "d",
                      "collection": "c", "paid": {"field": "status", "values": ["PAID"]}}}
    with pytest.raises(ProfileError, match=r"state\.uri: not a MongoDB URI") as caught:
        parse_profile(data)
    assert "s3cr3t-pw" not in str(caught.value)


def test_answers_kept_only_in_part_make_one_generation_unknown_never_a_pass():
    payment = Payment("p1", "T1", 100)

    def answer(i: int, outcome: str | None, truncated: bool) -> Event:
        return Event(index=i, payment="p1", channel="callback", t_release=0.0, t_response=0.01, status=200,
                     outcome=outcome, body_truncated=truncated)

    events = [answer(0, None, True), answer(1, None, True), answer(2, "already_generated", False)]
    result = one_generation(Evidence([PlannedPayment(payment, True)], History(events=events),
                                     Observation(answers_described=True)))
    assert result.valid is None and result.details["unread_answers"] == ["p1"]
