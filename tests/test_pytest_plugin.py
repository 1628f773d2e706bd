"""The pytest plugin: fixtures any project can use, and repeated race trials with a violation count."""

from __future__ import annotations

import json

import httpx
import pytest

# Real processes, nested pytest or Locust runs: `pytest -m 'not slow'` leaves these out.
pytestmark = pytest.mark.slow


def test_race_fixture_reads_like_the_readme(race):
    result = race(payments=3, duplicates=8)
    assert result.valid, result.explain()


def test_race_fixture_sees_the_vulnerable_mode_fail(race):
    result = race(payments=2, duplicates=6, mode="vulnerable", generation_delay_ms=100)
    assert not result.valid
    assert "duplicate receipts" in result.explain()


def test_race_fixture_races_callbacks_against_verify_calls(race):
    result = race(payments=2, duplicates=4, channel_mix="callback:1,verify:1", generation_delay_ms=100)
    assert result.valid, result.explain()
    channels = {e["channel"] for e in result.history["events"]}
    assert channels == {"callback", "verify"}


def test_a_verify_mix_race_keeps_its_service_and_simulator_up_for_reverify_until_the_test_ends(inner):
    urls = inner.path / "urls.json"
    inner.makepyfile(f"""
        import json

        from harness import reverify

        def test_verify_mix(race):
            result = race(payments=2, duplicates=4, channel_mix="callback:1,verify:1", generation_delay_ms=100)
            base_url = result.config["target"]["base_url"]
            gateway_url = result.config["profile"]["deliveries"]["verify"]["gateway_url"]
            with open({str(urls)!r}, "w") as f:
                json.dump([base_url, gateway_url], f)
            again = reverify(result)  # reads the service's state afresh: it must still answer
            assert again.valid, again.explain()
            assert again.metrics["payments_paid"] == 2
    """)
    result = inner.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    for url in json.loads(urls.read_text()):
        with pytest.raises(httpx.ConnectError):  # stopped when the test ended
            httpx.get(url, timeout=2.0)


def test_reference_services_get_their_own_ports_and_receipt_directories(reference_service):
    first, second = reference_service("atomic"), reference_service("vulnerable")
    assert first.url != second.url
    assert first.receipts_dir != second.receipts_dir


@pytest.fixture
def inner(pytester):
    """A project of its own that only has the plugin, as a user would."""
    pytester.makeconftest("")
    return pytester


VULNERABLE_TRIALS = """
    import pytest

    @pytest.mark.race_trials(2)
    def test_expects_duplicates(race):
        assert not race(payments=1, duplicates=4, mode="vulnerable", generation_delay_ms=100).valid

    @pytest.mark.race_trials(2)
    def test_expects_none(race):
        assert race(payments=1, duplicates=4, mode="vulnerable", generation_delay_ms=100).valid
"""


def test_race_trials_count_trials_whose_race_was_invalid_whatever_the_assertion_says(inner):
    inner.makepyfile(VULNERABLE_TRIALS)
    result = inner.runpytest_subprocess()
    result.assert_outcomes(passed=2, failed=2)  # the same races; only the assertions' polarity differs
    result.stdout.fnmatch_lines_random([
        "*test_expects_duplicates: 2 of 2 trials showed a violation (0 inconclusive)*",
        "*test_expects_none: 2 of 2 trials showed a violation (0 inconclusive)*"])


def test_race_trials_count_no_violation_for_valid_races(inner):
    inner.makepyfile("""
        import pytest

        @pytest.mark.race_trials(2)
        def test_atomic(race):
            assert race(payments=1, duplicates=4, generation_delay_ms=100).valid
    """)
    result = inner.runpytest_subprocess()
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_atomic: 0 of 2 trials showed a violation (0 inconclusive)*"])


INCONCLUSIVE_TRIALS = """
    import pytest

    @pytest.mark.race_trials(2)
    def test_nothing_races(race):
        result = race(payments=1, duplicates=1, generation_delay_ms=100)  # one request: no race to judge
        assert result.verdict.valid is None, result.explain()
"""


def test_race_trials_count_inconclusive_trials_apart_from_violations(inner):
    inner.makepyfile(INCONCLUSIVE_TRIALS)
    result = inner.runpytest_subprocess()
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_nothing_races: 0 of 2 trials showed a violation (2 inconclusive)*"])


def test_race_trials_count_what_the_races_on_xdist_workers_found(inner):
    inner.makepyfile(test_vulnerable=VULNERABLE_TRIALS, test_inconclusive=INCONCLUSIVE_TRIALS)
    result = inner.runpytest_subprocess("-n", "2")
    result.assert_outcomes(passed=4, failed=2)
    result.stdout.fnmatch_lines_random([
        "*created: 2/2 workers*",
        "*test_expects_duplicates: 2 of 2 trials showed a violation (0 inconclusive)*",
        "*test_expects_none: 2 of 2 trials showed a violation (0 inconclusive)*",
        "*test_nothing_races: 0 of 2 trials showed a violation (2 inconclusive)*"])


def test_race_trials_marker_repeats_a_test_and_counts_trials_without_a_race_apart(inner):
    inner.makepyfile("""
        import pytest

        @pytest.mark.race_trials(5)
        def test_flaky(race_trial):
            assert race_trial % 2 == 0  # trials 2 and 4 (1-based) fail, but no race judged anything
    """)
    result = inner.runpytest_subprocess()  # the plugin comes in through its pytest11 entry point
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines(["*race trials*",
                                 "*test_flaky: 0 of 5 trials showed a violation (0 inconclusive); 5 ran no race*"])


def test_race_trials_option_repeats_marked_tests(inner):
    inner.makepyfile("""
        import pytest

        @pytest.mark.race_trials(2)
        def test_once(race_trial):
            pass
    """)
    result = inner.runpytest_subprocess("--race-trials", "4")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*test_once: 0 of 4 trials showed a violation*"])


def test_race_fixture_runs_a_multi_worker_service_on_the_wire_store(race):
    result = race(payments=3, duplicates=8, store="wire", workers=2, generation_delay_ms=150)
    assert result.valid, result.explain()
    assert result.history_summary["state_source"] == "mongodb"  # read from the database, not the service's API
