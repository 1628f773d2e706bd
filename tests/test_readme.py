"""The README's promises, run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

# Real processes, nested pytest or Locust runs: `pytest -m 'not slow'` leaves these out.
pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_block_after(heading: str) -> str:
    text = README.read_text()
    section = text[text.index(heading):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_first_screen_gives_the_install_and_run_command_and_the_test_command():
    first_screen = "\n".join(README.read_text().splitlines()[:15])
    assert "pip install -e '.[test]' && race-harness demo" in first_screen
    assert "pytest -n auto" in first_screen


def test_the_pytest_plugin_example_in_the_readme_passes(pytester):
    pytester.makepyfile(test_readme_example=_python_block_after("## pytest plugin"))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=240)
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["*test_vulnerable_mode_duplicates: 3 of 3 trials showed a violation (0 inconclusive)*"])
