"""A profile's patterns are bounded (issue 25, item 5): a hostile text cannot hang a run, and a pattern the
bounded engine (RE2) cannot run is refused at load in one line naming the rule.

Each test is bounded by pytest-timeout (its signal method: Python's ``re`` checks for signals while it
backtracks, and holds the GIL, so a timer thread would never run): the old hang becomes a failure.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from harness.observe.effects import extract
from harness.observe.observation import ReceiptFile
from harness.observe.sink import read_sink_effects
from harness.profile import parse_profile
from harness.profile.schema import FileRule

ROOT = Path(__file__).resolve().parents[1]
NESTED = "(a+)+$"  # catastrophic backtracking in re: every split of the run of a's is tried before failing
HOSTILE_TEXT = "a" * 100_000 + "!"  # 100 KB of page text the pattern almost matches
BASE = {"version": 1, "base_url": "http://127.0.0.1:9", "payments": {"source": "http", "path": "/p", "id": "id"},
        "deliveries": {"callback": {"path": "/hook"}}}


class _RecordedSink:
    def __init__(self, records: list[dict]) -> None:
        self._records = records

    def records(self) -> list[dict]:
        return list(self._records)


@pytest.mark.timeout(20)
def test_a_nested_quantifier_key_pattern_over_a_long_page_text_returns_at_once_through_extract():
    rule = FileRule.model_validate({"from": "text", "pattern": NESTED})
    receipt = ReceiptFile(name="receipt-1.pdf", size=1, readable=True, text=HOSTILE_TEXT)
    started = time.perf_counter()
    assert extract(rule, receipt) is None
    assert time.perf_counter() - started < 2


@pytest.mark.timeout(20)
def test_a_nested_quantifier_key_pattern_over_a_long_message_returns_at_once_through_the_sink_reader():
    spec = parse_profile({**BASE, "effects": [{"kind": "receipt e-mail", "source": "sink", "channel": "smtp",
                                               "key": {"from": "text", "pattern": NESTED}}]})
    sink = _RecordedSink([{"seq": 1, "t": 1.0, "channel": "smtp", "recipients": ["a@x"], "subject": "Receipt",
                           "text": HOSTILE_TEXT}])
    started = time.perf_counter()
    effects, problems = read_sink_effects(spec.effects[0], sink)
    assert not problems and [(e.keyed, e.key) for e in effects] == [(True, None)]
    assert time.perf_counter() - started < 2


@pytest.mark.timeout(60)
def test_a_backreference_pattern_is_refused_at_load_in_one_line_naming_the_rule(tmp_path):
    profile = tmp_path / "audit.toml"
    profile.write_text(f'version = 1\nname = "prod"\n[[effects]]\nsource = "files"\ndir = "{tmp_path}"\n'
                       'key = { from = "text", pattern = "(R-\\\\d+) for \\\\1" }\n')
    result = subprocess.run([sys.executable, "-m", "harness", "profile", "check", str(profile)],
                            check=False, capture_output=True, text=True, timeout=50, env=dict(os.environ))
    said = (result.stdout + result.stderr).strip()
    assert result.returncode == 4, said
    assert len(said.splitlines()) == 1, said
    assert "effects.0.key" in said and "pattern: not supported" in said and "backreferences" in said, said


def _patterns_in_the_repository() -> list[str]:
    """Every ``pattern = "..."`` of the strangers' profiles, the built-in profiles and docs/profiles.md."""
    files = [*sorted((ROOT / "tests" / "strangers").glob("*.toml")), *sorted((ROOT / "harness" / "profiles").glob("*.toml")),
             ROOT / "docs" / "profiles.md"]
    found = []
    for path in files:
        for line in path.read_text().splitlines():
            if written := re.search(r'\bpattern\s*=\s*("(?:[^"\\]|\\.)*")', line):
                found.append(tomllib.loads(f"p = {written.group(1)}")["p"])
    return found


SAMPLES = ["Order order_1a2b3c for you", "Donation: INR 1,499.00 (149900 paise)", "Your receipt for order_9f8e",
           "This is your receipt for order RH0001 (Rs. 499.00)", "Amount: Rs. 1,234.50\n", "Order ID: RH0002\n",
           "Receipt R-42", "Amount: Rs 499.00", "Total Rs.499.00 paid", "Order order_Xy9 received",
           "Receipt for RH0003\n", "nothing to see here", ""]


@pytest.mark.timeout(20)
def test_the_patterns_of_existing_profiles_still_compile_and_match_the_same():
    from harness.profile.patterns import compile_pattern, first_group

    patterns = _patterns_in_the_repository()
    assert len(patterns) >= 10, patterns
    for pattern in patterns:
        compile_pattern(pattern)  # none is refused
        python = re.compile(pattern)
        matched = 0
        for text in SAMPLES:
            match = python.search(text)
            expected = (match.group(1) if match.groups() else match.group(0)) if match else None
            assert first_group(pattern, text) == expected, (pattern, text)
            matched += expected is not None
        assert matched, f"no sample exercises {pattern!r}"


@pytest.mark.timeout(20)
def test_a_pattern_searches_only_the_first_million_characters_of_a_text():
    from harness.profile.patterns import MAX_TEXT_CHARS, first_group

    assert MAX_TEXT_CHARS == 1_000_000
    assert first_group(r"Receipt (R-\d+)", "x" * (MAX_TEXT_CHARS - 20) + " Receipt R-7 ") == "R-7"
    assert first_group(r"Receipt (R-\d+)", "x" * MAX_TEXT_CHARS + " Receipt R-7 ") is None
