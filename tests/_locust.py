"""Running a Locust scenario headless as a subprocess (importing Locust would gevent-patch the test process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


def locust(scenario: str, tmp_path: Path, *argv: str, users: int = 2,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run one scenario headless (bounded by --run-time and a subprocess timeout); output in stdout."""
    command = [sys.executable, "-m", "locust", "-f", str(SCENARIOS / f"{scenario}.py"), "--headless",
               "-u", str(users), "-r", "50", "-t", "45s", "--report-dir", str(tmp_path / "report"), *argv]
    return subprocess.run(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=58, env={**os.environ, **(env or {})})


def report_of(tmp_path: Path) -> dict:
    (path,) = (tmp_path / "report").glob("*.json")
    return json.loads(path.read_text())
