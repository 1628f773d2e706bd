"""pytest plugin: fixtures for concurrency tests, and repeated race trials with a violation count.

Installed with the project (entry point ``pytest11``), so any test can write::

    def test_webhook_is_exactly_once(race):
        result = race(payments=10, duplicates=20)
        assert result.valid, result.explain()

    @pytest.mark.race_trials(20)
    def test_vulnerable_mode_duplicates(race):
        assert not race(mode="vulnerable", payments=2).valid

Every service a fixture starts is a real process on a free loopback port with its own receipts
directory under the test's ``tmp_path``, so the fixtures work under ``pytest -n auto``.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import pytest

from harness.verdict.result import RunReport

_TRIAL_FIXTURE = "race_trial"
_TRIAL_ID = re.compile(r"trial-\d+-of-\d+")
VERDICT_PROPERTY = "race_verdict"  # a user property per race() call: one of the words below
VIOLATION, INCONCLUSIVE, VALID, NO_RACE = "violation", "inconclusive", "valid", "no race"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("race-harness")
    group.addoption("--race-trials", type=int, default=None, metavar="K",
                    help="repeat every test marked race_trials (or using the race fixture) K times")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "race_trials(k): run this race test k times and report how many "
                                       "trials showed a violation")
    config.pluginmanager.register(_TrialCounter(), "race-harness-trial-counter")


class _TrialCounter:
    """Counts, per repeated race test, the trials whose race result was invalid, inconclusive, or valid.

    A trial's outcome comes from what the ``race`` fixture returned during it (recorded in the
    test's ``user_properties``, so it reaches an xdist controller with the report), never from
    whether the test's assertions passed: ``assert not race(mode="vulnerable").valid`` passes on
    every trial that showed a violation.
    """

    def __init__(self) -> None:
        self.counts: dict[str, Counter[str]] = {}  # base test id -> trial outcome -> trials

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # The teardown report comes once per trial, with every verdict the setup and call recorded.
        if report.when != "teardown" or not _TRIAL_ID.search(report.nodeid):
            return
        verdicts = [value for name, value in report.user_properties if name == VERDICT_PROPERTY]
        self.counts.setdefault(_base_id(report.nodeid), Counter())[_trial_outcome(verdicts)] += 1

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.counts:
            return
        terminalreporter.section("race trials")
        for base, outcomes in sorted(self.counts.items()):
            line = (f"{base}: {outcomes[VIOLATION]} of {outcomes.total()} trials showed a violation "
                    f"({outcomes[INCONCLUSIVE]} inconclusive)")
            if outcomes[NO_RACE]:
                line += f"; {outcomes[NO_RACE]} ran no race"
            terminalreporter.write_line(line)


def _verdict_word(valid: bool | None) -> str:
    return {False: VIOLATION, None: INCONCLUSIVE}.get(valid, VALID)


def record_verdict(request: pytest.FixtureRequest, report: RunReport) -> None:
    """Record a race result's verdict on the running test, for the ``race_trials`` count."""
    request.node.user_properties.append((VERDICT_PROPERTY, _verdict_word(report.verdict.valid)))


def _trial_outcome(verdicts: list[str]) -> str:
    """One trial: a violation if any of its races was invalid, else inconclusive if any could not tell."""
    for outcome in (VIOLATION, INCONCLUSIVE, VALID):
        if outcome in verdicts:
            return outcome
    return NO_RACE


def _base_id(nodeid: str) -> str:
    """``test_x[atomic-trial-3-of-20]`` -> ``test_x[atomic]``; ``test_x[trial-3-of-20]`` -> ``test_x``."""
    base = _TRIAL_ID.sub("", nodeid)
    return base.replace("[-", "[").replace("-]", "]").replace("--", "-").replace("[]", "")


def _trials_for(metafunc: pytest.Metafunc) -> int | None:
    marker = metafunc.definition.get_closest_marker("race_trials")
    option = metafunc.config.getoption("--race-trials")
    if option is not None and (marker is not None or ("race" in metafunc.fixturenames or "race_profile" in metafunc.fixturenames)):
        return option
    if marker is not None:
        return int(marker.args[0]) if marker.args else 10
    return None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    trials = _trials_for(metafunc)
    if not trials or trials < 1:
        return
    # The same trick as pytest-repeat: a fixture parametrized once per trial, added when not asked for.
    if _TRIAL_FIXTURE not in metafunc.fixturenames:
        metafunc.fixturenames.append(_TRIAL_FIXTURE)
    metafunc.parametrize(_TRIAL_FIXTURE, range(trials), indirect=True,
                         ids=[f"trial-{i + 1}-of-{trials}" for i in range(trials)])


# -- fixtures ------------------------------------------------------------------------------------

@pytest.fixture
def race_trial(request: pytest.FixtureRequest) -> int:
    """The number of this trial (0-based) when a race test is repeated; 0 otherwise."""
    return getattr(request, "param", 0)


@pytest.fixture
def race_profile(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    """A factory: race any service described by a profile, and return the oracle's report.

    ``race_profile(profile, variables=None, *, base_url=None, payments=10, duplicates=5, unpaid=0,
    channel_mix="callback:1", rounds=1, round_interval=0.0, seed=0, sync="last-byte",
    targets=None, verify_tls=None, nemesis=None, restart_after=1.0, pause_for=2.0, redeliver=None)``:
    ``targets``: a targets file or built-in name; default the profile's ``[targets]``, else ``exactly-once``.
    ``profile`` is a file, a built-in name or a ``Profile``; ``variables`` fill its ``${NAME}`` values
    (default: the environment). ``sync`` is any sender, ``sequential`` or ``auto``; ``verify_tls``
    (False, or a CA file) overrides how the profile trusts an https service's certificate. The
    service is yours to start, unless the profile's ``[service]`` says how it runs: then the run
    starts and stops it, and ``nemesis`` (the CLI's ``--nemesis`` schedule) does harm to it during
    the burst. The verdict counts toward ``race_trials`` like the ``race`` fixture's.
    """
    import itertools
    from pathlib import Path

    from harness.run.options import FAULTS, RUN, defaults
    from harness.prepare.plan import Plan, parse_channel_mix
    from harness.profile import Profile, load_profile
    from harness.run.session import RunConfig, run_race

    d, f = defaults(RUN), defaults(FAULTS)
    runs = itertools.count(1)

    def run(profile: "str | Path | Profile", variables: dict[str, str] | None = None, *, base_url: str | None = None,
            payments: int = d["payments"], duplicates: int = d["duplicates"], unpaid: int = d["unpaid"],
            channel_mix: str = d["channel_mix"], rounds: int = d["rounds"],
            round_interval: float = d["round_interval"], seed: int = d["seed"], sync: str = d["sync"],
            targets: str | Path | None = None, label: str | None = None,
            verify_tls: bool | str | None = None, nemesis: str | None = f["nemesis"],
            restart_after: float = f["restart_after"], pause_for: float = f["pause_for"],
            redeliver: str | None = f["redeliver"]) -> RunReport:
        if not isinstance(profile, Profile):
            profile = load_profile(profile, variables, base_url=base_url)
        elif base_url:
            profile = profile.with_base_url(base_url)
        if targets is None and profile.spec.targets is None:  # the service's own targets, else exactly-once
            targets = "exactly-once"
        plan = Plan(payments=payments, duplicates=duplicates, unpaid=unpaid,
                    channel_mix=parse_channel_mix(channel_mix), rounds=rounds, round_interval=round_interval, seed=seed)
        # No report is written (the test has it); a sink's records go to the test's own tmp_path, which pytest
        # keeps for the last few runs and then removes, rather than to a temporary directory never removed.
        # One directory per run: two runs in one test must not share (and truncate) one records file.
        report = run_race(RunConfig(plan=plan, profile=profile, sync=sync, targets_file=targets,
                                    label=label or profile.name, verify_tls=verify_tls, nemesis=nemesis,
                                    restart_after=restart_after, pause_for=pause_for, redeliver=redeliver,
                                    report_dir=tmp_path / f"race-run-{next(runs)}"))
        record_verdict(request, report)
        return report

    return run


@pytest.fixture
def race_probe(tmp_path: Any) -> Any:
    """A factory: send a service deliveries a gateway would never send, and return the probe report (plain data).

    ``race_probe(profile, variables=None, *, base_url=None, only=None, verify_tls=None, timeout=None)``: the
    same probes as ``race-harness probe`` (unsigned, wrong signature, another secret, a body changed after
    signing, a stale timestamp, an unprotected body or amount, another amount, an unknown order, FAILED or
    PENDING after COMPLETED, COMPLETED and FAILED together). ``report["exit_code"]`` is 1 on any hole, 3
    when one could not be judged, else 0; ``report["probes"]`` has each probe's outcome and evidence.
    ``timeout``: seconds one delivery may take (default: the profile's ``[run] timeout``, else 30).
    ``profile`` is a file, a built-in name or a ``Profile``; its ``[service]``, if any, is started and stopped.
    """
    import itertools
    from pathlib import Path

    from harness.probe import ProbeOptions, run_probes
    from harness.profile import Profile, load_profile

    runs = itertools.count(1)

    def probe(profile: "str | Path | Profile", variables: dict[str, str] | None = None, *, base_url: str | None = None,
              only: list[str] | None = None, verify_tls: bool | str | None = None, timeout: float | None = None,
              label: str | None = None) -> dict[str, Any]:
        if not isinstance(profile, Profile):
            profile = load_profile(profile, variables, base_url=base_url)
        elif base_url:
            profile = profile.with_base_url(base_url)
        return run_probes(profile, ProbeOptions(label=label, report_dir=tmp_path / f"race-probe-{next(runs)}",
                                                only=only, verify_tls=verify_tls, timeout=timeout))

    return probe
