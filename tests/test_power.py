"""Detection power: the Wilson interval, the narrowest-window rule, the link syntax, the service's
deterministic race window, and a tiny `race-harness power` sweep end to end."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from harness.cli.main import main
from harness.prepare.plan import Plan
from harness.studies.power import PowerSettings, narrowest_window, parse_link, wilson
from harness.reference import FaultFlags, profile_of, start_service
from harness.run.session import RunConfig, run_race

# -- the Wilson score interval --------------------------------------------------------------------


def test_wilson_interval_of_all_caught_stays_below_one_at_the_low_end():
    low, high = wilson(10, 10)
    assert low == pytest.approx(0.7225, abs=1e-4) and high == 1.0


def test_wilson_interval_of_none_caught_starts_at_zero():
    low, high = wilson(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)


def test_wilson_interval_of_half_is_symmetric_around_a_half():
    low, high = wilson(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-4) and high == pytest.approx(1 - low)


def test_wilson_interval_narrows_with_more_trials():
    few, many = wilson(19, 20), wilson(190, 200)
    assert many[1] - many[0] < few[1] - few[0]


def test_no_trials_have_no_interval_and_impossible_counts_are_refused():
    assert wilson(0, 0) is None
    with pytest.raises(ValueError):
        wilson(3, 2)


# -- the narrowest window caught with 95 % probability -----------------------------------------------


def test_the_narrowest_window_is_the_smallest_width_caught_at_95_percent_there_and_at_every_wider_one():
    cells = {0.5: (2, 10), 1.0: (9, 10), 2.0: (10, 10), 5.0: (20, 20), 10.0: (10, 10)}
    assert narrowest_window(cells) == 2.0


def test_a_lucky_narrow_cell_below_an_unlucky_wider_one_does_not_count():
    cells = {0.5: (10, 10), 1.0: (7, 10), 2.0: (10, 10)}
    assert narrowest_window(cells) == 2.0


def test_when_even_the_widest_window_falls_short_there_is_no_narrowest_window():
    assert narrowest_window({1.0: (10, 10), 50.0: (18, 20)}) is None
    assert narrowest_window({}) is None
    assert narrowest_window({5.0: (0, 0)}) is None


def test_nineteen_of_twenty_reaches_95_percent_and_eighteen_does_not():
    assert narrowest_window({1.0: (19, 20)}) == 1.0
    assert narrowest_window({1.0: (18, 20)}) is None


# -- settings ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [("20ms±3ms", (0.020, 0.003)), ("20ms+-3ms", (0.020, 0.003)),
                                            ("20±3", (0.020, 0.003)), ("5ms", (0.005, 0.0)),
                                            ("0.5ms±0.1ms", (0.0005, 0.0001))])
def test_a_link_is_base_delay_plus_minus_jitter_in_milliseconds(text, expected):
    assert parse_link(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["fast", "20ms±", "±3ms", "-20ms"])
def test_a_link_that_does_not_read_as_delay_and_jitter_is_refused(text):
    with pytest.raises(ValueError, match="--link"):
        parse_link(text)


@pytest.mark.parametrize("change, message", [({"trials": 0}, "--trials"), ({"windows_ms": (0.0,)}, "--windows"),
                                             ({"duplicates": (1,)}, "--duplicates"), ({"syncs": ("naive",)}, "--syncs"),
                                             ({"trials": 10_000}, "more than")])
def test_a_sweep_is_bounded_and_its_settings_checked_before_anything_starts(change, message):
    with pytest.raises(ValueError, match=message):
        PowerSettings(**change).validate()


def test_a_bad_setting_through_the_cli_is_one_line_and_exit_4(capsys):
    assert main(["power", "--windows", "1,x", "--quiet"]) == 4
    assert "race-harness: error" in capsys.readouterr().err


@pytest.mark.parametrize("valid, caught, unknown", [(False, 1, 0), (True, 0, 0), (None, 0, 1)])
def test_a_trial_is_caught_only_by_an_invalid_verdict_and_an_unknown_one_is_counted_apart(
        monkeypatch, tmp_path, valid, caught, unknown):
    from types import SimpleNamespace

    from harness.studies import power

    report = SimpleNamespace(verdict=SimpleNamespace(valid=valid), metrics={"payments_judged": 1,
                                                                          "catchable_window_ms": 0.3})
    monkeypatch.setattr(power, "run_race", lambda config: report)
    cell = power.Cell(1.0, 2, "last-byte")
    power._trial(cell, target=None, trial=0, timeout=5.0, receipts=tmp_path)

    assert (cell.trials, cell.caught, cell.unknown, cell.failed) == (1, caught, unknown, 0)
    line = next(x for x in power.render_markdown(power.PowerResult(
        PowerSettings(windows_ms=(1.0,), duplicates=(2,), syncs=("last-byte",)), [cell], (0, 0, 0), (0, 0, 0), 1.0,
        False)).splitlines() if x.startswith("| 1 ms"))
    assert ("(1 unknown)" in line) is bool(unknown)


# -- the service's deterministic race window, and a sweep end to end (real processes) -------------------------


def _outcomes(report) -> list[str]:
    return sorted(str(e.get("outcome")) for e in report.to_dict()["history"]["events"])


@pytest.mark.slow
def test_the_race_window_lets_simultaneous_duplicates_through_and_not_a_later_one(tmp_path: Path):
    service = start_service(tmp_path / "receipts", mode="vulnerable", generation_delay_ms=0.0,
                            faults=FaultFlags(race_window_ms=1000.0), log_path=tmp_path / "service.log")
    try:
        target = profile_of(service)
        together = run_race(RunConfig(plan=Plan(payments=1, duplicates=2), profile=target, sync="last-byte"))
        # both read the flag inside the second-long window and both generated (after the same second, possibly
        # into one file name: the oracle counts that as a conflict, so the outcomes are what is asserted here)
        assert _outcomes(together) == ["generated", "generated"] and together.verdict.valid is False
        changed = httpx.put(f"{service.url}/_admin/faults", json={"race_window_ms": 0.5}, timeout=10).json()
        assert changed["race_window_ms"] == 0.5
        one_at_a_time = run_race(RunConfig(plan=Plan(payments=1, duplicates=1, rounds=2, round_interval=0.2),
                                           profile=target, sync="last-byte"))
        assert _outcomes(one_at_a_time) == ["already_generated", "generated"]  # the retry came after the flag was set
        assert one_at_a_time.metrics["receipts_per_payment_max"] == 1
    finally:
        service.stop()


@pytest.mark.slow
def test_a_tiny_power_sweep_across_a_relay_link_writes_its_table_json_and_chart(tmp_path: Path, capsys):
    exit_code = main(["power", "--windows", "2,50", "--duplicates", "2", "--trials", "2", "--link", "5ms±1ms",
                      "--report-dir", str(tmp_path), "--quiet"])
    out = capsys.readouterr().out
    assert exit_code == 0
    assert "| window | duplicates | sync | caught | P(caught) | 95% Wilson interval |" in out
    assert "across a 5ms±1ms relay link" in out
    data = json.loads((tmp_path / "power.json").read_text())
    cells = data["cells"]
    assert {(c["window_ms"], c["sync"]) for c in cells} == {(w, s) for w in (2.0, 50.0)
                                                           for s in ("last-byte", "single-packet")}
    assert all(c["trials"] + c["failed"] == 2 for c in cells)  # every trial ran and was judged, or says it failed
    assert set(data["narrowest_window_ms_95"]) == {"last-byte", "single-packet"}
    assert len(data["load_average_before"]) == 3
    assert (tmp_path / "power.png").read_bytes()[:4] == b"\x89PNG"
    assert "<svg" in (tmp_path / "power.svg").read_text()
