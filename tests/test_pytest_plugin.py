"""The pytest plugin: fixtures any project can use, and repeated race trials with a violation count."""

from __future__ import annotations

import pytest



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


def test_reference_services_get_their_own_ports_and_receipt_directories(reference_service):
    first, second = reference_service("atomic"), reference_service("vulnerable")
    assert first.url != second.url
    assert first.receipts_dir != second.receipts_dir


@pytest.fixture
def inner(pytester):
    """A project of its own that only has the plugin, as a user would."""
    pytester.makeconftest("")
    return pytester


def test_race_trials_marker_repeats_a_test_and_counts_the_trials_that_failed(inner):
    inner.makepyfile("""
        import pytest

        @pytest.mark.race_trials(5)
        def test_flaky(race_trial):
            assert race_trial % 2 == 0  # trials 2 and 4 (1-based) "see a violation"
    """)
    result = inner.runpytest_subprocess()  # the plugin comes in through its pytest11 entry point
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines(["*race trials*", "*test_flaky: 2 of 5 trials showed a violation*"])


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
