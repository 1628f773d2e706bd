"""The nemesis (Jepsen's word): one component that does harm to the service on purpose, on a schedule or a
trigger, and writes what it did into the history.

A schedule is one line, the same for the CLI (``--nemesis``), the pytest fixture (``nemesis=``) and
the Locust scenarios::

    crash@log:Generating receipt    SIGKILL the service's process group when a line of its output
                                    matches the pattern, start it again --restart-after seconds later
    crash@after:0.3                 ... 0.3 s after the burst is released
    crash@random                    ... at a random instant in the first second after the release
    crash@random:2.5                ... in the first 2.5 s
    crash@file                      ... when the first new file appears in one of the profile's
                                    effect directories (a receipt being written)
    crash@sink                      ... when the first call reaches the sink
    pause@log:Generating receipt    SIGSTOP instead, and SIGCONT --pause-for seconds later (a GC pause,
                                    a frozen VM: a lease expires while its owner sleeps)
    cut@log:Generating receipt      reset every connection of the service's relayed links (its database,
                                    in the middle of an operation; ``[service.links]``) and refuse new
                                    ones for --pause-for seconds: a partition that heals
    downstream@first:3              the sink (what the service calls out to) fails its first 3 HTTP calls
    downstream@first:3:reset        with 503 (default), a reset, or no answer (``timeout``), then recovers

Each fault is recorded as it happens (``kill``, ``restart``, ``ready``, ``pause``, ``resume``, ``cut``, ``heal``; or
``never-ready`` when the service did not come back), with the wall-clock time and what triggered it.
"""

from __future__ import annotations

import random
import re
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from harness.errors import HarnessError, ServiceStartError
from harness.nemesis.service import ManagedService

KINDS = ("crash", "pause", "cut", "downstream")
TRIGGERS = ("log", "after", "random", "file", "sink", "first")
DOWNSTREAM_FAILURES = ("reset", "timeout")  # or a status code, 500-599
RANDOM_WINDOW = 1.0  # seconds after the release in which crash@random strikes, unless it names its own
POLL = 0.005  # seconds between looks at an effect directory or the sink's records


@dataclass(frozen=True)
class FaultSpec:
    """One scheduled fault: what (crash, pause), when (its trigger), and how long until the service is back."""

    kind: str
    trigger: str
    pattern: str | None = None  # log: the regular expression
    at: float | None = None  # after: seconds after the release; random: the window
    restart_after: float = 1.0  # crash: seconds from the kill to the start
    pause_for: float = 2.0  # pause: seconds from SIGSTOP to SIGCONT; cut: seconds the link refuses connections
    count: int | None = None  # downstream: how many calls fail
    fail_as: str | None = None  # downstream: "503" (a status), "reset" or "timeout"

    @property
    def text(self) -> str:
        if self.kind == "downstream":
            return f"downstream@first:{self.count}" + (f":{self.fail_as}" if self.fail_as != "503" else "")
        arg = {"log": self.pattern, "after": _g(self.at), "random": _g(self.at)}.get(self.trigger)
        return f"{self.kind}@{self.trigger}" + (f":{arg}" if arg is not None else "")

    def describe(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if v is not None}
        data["schedule"] = self.text
        if self.kind != "crash":
            data.pop("restart_after", None)
        if self.kind not in ("pause", "cut"):
            data.pop("pause_for", None)
        return data


def _g(value: float | None) -> str | None:
    return None if value is None else f"{value:g}"


def parse_fault(text: str, *, restart_after: float = 1.0, pause_for: float = 2.0) -> FaultSpec:
    """A schedule line (``crash@log:PATTERN``, ``crash@after:0.3``, ...) as a FaultSpec; HarnessError naming the mistake."""
    kind, sep, rest = text.strip().partition("@")
    if not sep or kind not in KINDS:
        raise HarnessError(f"--nemesis {text!r}: write KIND@TRIGGER, KIND one of {', '.join(KINDS)} "
                           f"(e.g. crash@log:Generating receipt)")
    trigger, _, arg = rest.partition(":")
    if kind == "downstream" or trigger == "first":
        return _downstream(text, kind, trigger, arg)
    if trigger not in TRIGGERS:
        raise HarnessError(f"--nemesis {text!r}: the trigger is one of {', '.join(TRIGGERS)}, not {trigger!r}")
    if restart_after < 0 or pause_for <= 0:
        raise HarnessError("--restart-after must not be negative and --pause-for must be positive")
    pattern, at = None, None
    if trigger == "log":
        if not arg:
            raise HarnessError(f"--nemesis {text!r}: log needs a pattern (crash@log:Generating receipt)")
        try:
            re.compile(arg)
        except re.error as exc:
            raise HarnessError(f"--nemesis {text!r}: not a regular expression: {exc}") from None
        pattern = arg
    elif trigger in ("after", "random"):
        if trigger == "after" and not arg:
            raise HarnessError(f"--nemesis {text!r}: after needs seconds (crash@after:0.3)")
        try:
            at = float(arg.removesuffix("s")) if arg else RANDOM_WINDOW
        except ValueError:
            raise HarnessError(f"--nemesis {text!r}: {arg!r} is not a number of seconds") from None
        if at < 0 or (trigger == "random" and at == 0):
            raise HarnessError(f"--nemesis {text!r}: the seconds must be positive")
    elif arg:
        raise HarnessError(f"--nemesis {text!r}: {trigger} takes no argument")
    return FaultSpec(kind, trigger, pattern=pattern, at=at, restart_after=restart_after, pause_for=pause_for)


def _downstream(text: str, kind: str, trigger: str, arg: str) -> FaultSpec:
    """``downstream@first:K[:503|reset|timeout]``."""
    if kind != "downstream" or trigger != "first":
        raise HarnessError(f"--nemesis {text!r}: a downstream outage is downstream@first:COUNT[:503|reset|timeout]")
    count, _, fail_as = arg.partition(":")
    if not count.isdigit() or int(count) < 1:
        raise HarnessError(f"--nemesis {text!r}: how many calls fail is a whole number, at least 1")
    fail_as = fail_as or "503"
    if fail_as not in DOWNSTREAM_FAILURES and not (fail_as.isdigit() and 500 <= int(fail_as) <= 599):
        raise HarnessError(f"--nemesis {text!r}: the calls fail with a 5xx status, reset or timeout, not {fail_as!r}")
    return FaultSpec(kind, trigger, count=int(count), fail_as=fail_as)


class DownstreamOutage:
    """The downstream (the sink the service calls out to) fails its first calls, then recovers.

    The sink is started failing (``outage``); what it failed and when it recovered is read back from
    its records, as the nemesis's steps (``downstream-fail``, ``recover``).
    """

    def __init__(self, spec: FaultSpec, sink: Any) -> None:
        if sink is None:
            raise HarnessError(f"--nemesis {spec.text}: the profile has no sink ([sink], or an effect read from it) to "
                               "fail")
        self.spec, self.sink = spec, sink
        self.faults: list[dict[str, Any]] = []
        self.fired = threading.Event()
        self.came_back: bool | None = None
        self.error: str | None = None

    @property
    def outage(self) -> dict[str, Any]:
        """The sink's settings for the outage."""
        return {"fail_first": self.spec.count, "fail_as": self.spec.fail_as}

    def arm(self) -> None:
        """Nothing to wait for: the sink fails the first calls whenever they come."""

    def wait(self, timeout: float) -> None:
        """The outage's steps, from the sink's records (its own receipt times)."""
        records = self.sink.records()
        failed = [r for r in records if r.get("failed") and r.get("channel") == "http"]
        self.faults = [{"kind": "downstream-fail", "wall": r["t"], "detail": f"the sink failed {r.get('method')} "
                        f"{r.get('host', '')}{r.get('path', '')} ({r['failed']})"} for r in failed]
        if failed:
            self.fired.set()
            after = [r for r in records if not r.get("failed") and r.get("t", 0) >= failed[-1]["t"]]
            self.came_back = len(failed) >= int(self.spec.count or 0) or bool(after)
            if after:
                self.faults.append({"kind": "recover", "wall": after[0]["t"], "detail": "the sink answered a call "
                                    "again"})
        for fault in self.faults:
            fault["schedule"] = self.spec.text

    def cancel(self) -> None:
        """Nothing runs in the background."""

    def describe(self) -> dict[str, Any]:
        return {**self.spec.describe(), "fired": self.fired.is_set(), "came_back": self.came_back}


class Nemesis:
    """Does the scheduled fault to the service once its trigger fires, and records each step.

    ``arm()`` at the release starts watching for the trigger; ``wait()`` returns once the fault is
    done and the service is back (or the trigger never fired within the bound). ``faults`` holds
    the recorded steps (plain data for the history).
    """

    def __init__(self, spec: FaultSpec, service: ManagedService, *, effect_dirs: list[Path] | None = None,
                 sink: Any = None, seed: int | None = None, links: dict[str, Any] | None = None) -> None:
        self.spec, self.service = spec, service
        self.links = links or {}
        self.effect_dirs = effect_dirs or []
        self.sink = sink
        self.faults: list[dict[str, Any]] = []
        self.fired = threading.Event()
        self.done = threading.Event()
        self.came_back: bool | None = None  # None: nothing was done; False: the service never got ready again
        self.error: str | None = None
        self._trigger = threading.Event()
        self._why = ""
        self._cancel = threading.Event()
        self._unwatch: Callable[[], None] | None = None
        self._thread: threading.Thread | None = None
        self._random = random.Random(seed)
        self._released = 0.0
        if spec.trigger == "file" and not self.effect_dirs:
            raise HarnessError(f"--nemesis {spec.text}: the profile reads no effects from files to watch")
        if spec.kind == "cut" and not self.links:
            raise HarnessError(f"--nemesis {spec.text}: the service has no link to cut: give its profile "
                               "[service.links.<name>] (listen, upstream) and point the service at the relay")
        if spec.trigger == "sink" and sink is None:
            raise HarnessError(f"--nemesis {spec.text}: the profile has no sink to watch")
        if spec.trigger == "log" and service.logs is None:
            raise HarnessError(f"--nemesis {spec.text}: the service's output can be watched only when the harness "
                               "starts it (service.command)")

    def record(self, kind: str, detail: str, wall: float | None = None) -> None:
        self.faults.append({"kind": kind, "wall": time.time() if wall is None else wall, "detail": detail,
                            "schedule": self.spec.text})

    def arm(self) -> None:
        """Start watching for the trigger (call it just before the burst is released)."""
        self._released = time.time()
        spec = self.spec
        if spec.trigger == "log":
            compiled = re.compile(str(spec.pattern))
            assert self.service.logs is not None

            def on_line(line: str, wall: float) -> None:
                if not self._trigger.is_set() and compiled.search(line):
                    self._why = f"log line {line.strip()[:120]!r}"
                    self._trigger.set()

            self._unwatch = self.service.logs.watch(on_line)
        self._thread = threading.Thread(target=self._run, name="nemesis", daemon=True)
        self._thread.start()

    def _wait_for_trigger(self, bound: float) -> bool:
        spec, deadline = self.spec, time.monotonic() + bound
        if spec.trigger in ("after", "random"):
            delay = spec.at if spec.trigger == "after" else self._random.uniform(0.0, float(spec.at))
            self._why = f"{delay:.3f} s after the release" + (" (a random instant)" if spec.trigger == "random" else "")
            return not self._cancel.wait(max(0.0, self._released + float(delay) - time.time()))
        if spec.trigger == "file":
            before = {p: set(_names(p)) for p in self.effect_dirs}
            while time.monotonic() < deadline and not self._cancel.is_set():
                for directory, seen in before.items():
                    new = set(_names(directory)) - seen
                    if new:
                        self._why = f"new file {sorted(new)[0]!r} in {directory}"
                        return True
                time.sleep(POLL)
            return False
        if spec.trigger == "sink":
            count = len(self.sink.records()) if hasattr(self.sink, "records") else 0
            while time.monotonic() < deadline and not self._cancel.is_set():
                records = self.sink.records()
                if len(records) > count:
                    self._why = f"a call reached the sink ({records[count].get('channel', 'http')})"
                    return True
                time.sleep(POLL)
            return False
        while time.monotonic() < deadline and not self._cancel.is_set():  # log
            if self._trigger.wait(0.05):
                return True
        return False

    def _run(self, bound: float = 120.0) -> None:
        try:
            if not self._wait_for_trigger(bound):
                return
            self.fired.set()
            if self._unwatch is not None:
                self._unwatch()
            if self.spec.kind == "crash":
                self.record("kill", f"{self.service.kill()} (trigger: {self._why})")
                if self._cancel.wait(self.spec.restart_after):
                    return
                self.record("restart", "the service is started again")
                try:
                    self.service.restart()
                except (ServiceStartError, HarnessError) as exc:
                    self.came_back, self.error = False, str(exc)
                    self.record("never-ready", str(exc))
                    return
                self.came_back = True
                self.record("ready", "the service answers again")
            elif self.spec.kind == "cut":
                cut = sum(relay.cut(self.spec.pause_for) for relay in self.links.values())
                self.record("cut", f"reset {cut} connection(s) of link(s) {', '.join(sorted(self.links))} and refused "
                                   f"new ones for {self.spec.pause_for:g} s (trigger: {self._why})")
                self._cancel.wait(self.spec.pause_for)
                self.record("heal", f"link(s) {', '.join(sorted(self.links))} accept connections again")
                self.came_back = True
            else:
                self.record("pause", f"{self.service.pause()} (trigger: {self._why})")
                self._cancel.wait(self.spec.pause_for)
                self.record("resume", self.service.resume())
                self.came_back = True
        except Exception as exc:  # noqa: BLE001 - the run must learn that its fault went wrong, not hang
            self.error = f"{exc.__class__.__name__}: {exc}"
            self.came_back = False
            self.record("error", self.error)
        finally:
            self.done.set()

    def wait(self, timeout: float) -> None:
        """Until the fault is done and the service back, or ``timeout`` seconds (then the trigger is given up)."""
        if self._thread is None:
            return
        if not self.done.wait(timeout):
            self._cancel.set()
            self.done.wait(10.0)
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None

    def cancel(self) -> None:
        """Call off what is still to come (the run is ending): no trigger waited for, no restart made."""
        self._cancel.set()
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        if self._thread is not None:
            self._thread.join(5.0)

    def describe(self) -> dict[str, Any]:
        """The schedule and what became of it, for the history."""
        return {**self.spec.describe(), "fired": self.fired.is_set(), "came_back": self.came_back,
                **({"error": self.error} if self.error else {}), **self.service.describe()}


def _names(directory: Path) -> list[str]:
    try:
        return [p.name for p in directory.iterdir()]
    except OSError:
        return []
