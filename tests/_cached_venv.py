"""Tools whose pins clash with ours, installed once into a virtualenv of their own (cached under ~/.cache/race-harness)."""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import venv
from pathlib import Path

import pytest


def cached_venv(name: str, pins: tuple[str, ...]) -> Path:
    """The directory of a venv holding ``pins``, built the first time any test process asks (others wait)."""
    pins_id = hashlib.sha256(" ".join(pins).encode()).hexdigest()[:12]
    home = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "race-harness" / f"{name}-{pins_id}"
    ready = home / ".ready"
    home.parent.mkdir(parents=True, exist_ok=True)
    # xdist workers may both get here first: one builds, the other waits on the lock.
    with open(home.parent / f"{home.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not ready.exists():
            venv.create(home, with_pip=True, clear=True)
            build = subprocess.run([str(home / "bin" / "python"), "-m", "pip", "install", "--quiet", *pins],
                                   capture_output=True, text=True, timeout=900)
            if build.returncode != 0:
                # Fail, not skip: a tool that could not be had must not pass as a check that was made.
                pytest.fail(f"{name} ({' '.join(pins)}) could not be installed: {build.stderr.strip()[-300:]}")
            ready.touch()
    return home


MITMPROXY_PINS = ("mitmproxy==11.0.2",)  # the newest for Python 3.11; its h11 pin clashes with httpx's


def mitmdump() -> str:
    """mitmproxy's ``mitmdump`` for the sink's proxy: $RACE_HARNESS_MITMDUMP, on PATH, or a venv built once.

    Exported as $RACE_HARNESS_MITMDUMP, so the harness in this process and in the CLI and Locust
    processes the tests start finds the same one.
    """
    import shutil

    found = os.environ.get("RACE_HARNESS_MITMDUMP") or shutil.which("mitmdump")
    if not found:
        found = str(cached_venv("mitmproxy", MITMPROXY_PINS) / "bin" / "mitmdump")
    os.environ["RACE_HARNESS_MITMDUMP"] = found
    return found
