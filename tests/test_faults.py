"""Faults for any service: the nemesis kills or pauses a real service mid-burst, the gateway redelivers, and the
oracle judges eventual exactly-once (a lost receipt is a violation; an unacknowledged payment is indeterminate).

The stranger ``tests/strangers/claim_then_generate.py`` is built like the design document's fix (a claim
flag, a receipt that takes a second, the path saved after it): killed while its receipt renders, it loses
the receipt for good; its lease twin makes it on a redelivery; its check-then-act twin duplicates.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from _strangers import CLAIM_THEN_GENERATE, claim_then_generate_variables, claim_then_generate_with_crm

from harness.errors import HarnessError
from harness.history import Event, History
from harness.nemesis import parse_fault
from harness.observe import Observation, ReceiptFile
from harness.oracle import LOST, MISSING, Evidence, PlannedPayment, check, exactly_one_receipt
from harness.profile import Payment, load_profile
from harness.verdict import EXIT_INCONCLUSIVE, EXIT_INVALID, EXIT_OK, EXIT_USAGE

CRASH_WHILE_RENDERING = "crash@log:Generating receipt"


# -- the schedule ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, kind, trigger", [
    ("crash@log:Generating receipt", "crash", "log"), ("crash@after:0.3", "crash", "after"),
    ("crash@random", "crash", "random"), ("crash@random:2.5", "crash", "random"), ("crash@file", "crash", "file"),
    ("crash@sink", "crash", "sink"), ("pause@after:0.2s", "pause", "after")])
def test_a_fault_schedule_names_what_and_when(text, kind, trigger):
    spec = parse_fault(text, restart_after=3.5, pause_for=4.5)
    assert (spec.kind, spec.trigger) == (kind, trigger)
    assert (spec.restart_after, spec.pause_for) == (3.5, 4.5)
    assert parse_fault(spec.text, restart_after=3.5, pause_for=4.5) == spec  # the report's words read back


@pytest.mark.parametrize("text, says", [
    ("explode@after:1", "KIND@TRIGGER"), ("crash", "KIND@TRIGGER"), ("crash@soon", "the trigger is one of"),
    ("crash@log:", "needs a pattern"), ("crash@log:(", "not a regular expression"),
    ("crash@after:", "needs seconds"), ("crash@after:x", "not a number"), ("crash@file:/tmp", "takes no argument")])
def test_a_bad_fault_schedule_is_one_clear_line(text, says):
    with pytest.raises(HarnessError, match=says.replace("(", r"\(")):
        parse_fault(text)


# -- judging after faults, on evidence made by hand -----------------------------------------------------

def _faulted_evidence(*, acknowledged: bool, claimed: bool, receipts: int = 0) -> Evidence:
    payment = Payment("p1", "T1", 49_900)
    history = History(origin_wall=1000.0, nemesis={"schedule": CRASH_WHILE_RENDERING, "fired": True,
                                                    "came_back": True})
    history.faults = [{"kind": "kill", "wall": 1000.25, "detail": "SIGKILL to process group 7"}]
    history.extend([Event(0, "p1", "callback", t_release=0.0, error="read: connection reset", meta={"round": 0}),
                    Event(1, "p1", "callback", t_release=2.0, t_response=2.1, status=200 if acknowledged else 503,
                          meta={"round": 1, "redelivery": 1})])
    files = [ReceiptFile(f"receipt-T1-{i}.pdf", 900, readable=True, subject="T1") for i in range(receipts)]
    observation = Observation(receipts=files, receipts_dir="/r",
                              state={"p1": {"paymentStatus": "PAID", "paid": True, "receiptGenerated": claimed,
                                            "receiptPath": None}},
                              state_source="http",
                              state_fields={"paid": "status", "claim": "receiptGenerated", "effect": "receiptPath",
                                            "effect_is": "name"})
    return Evidence([PlannedPayment(payment, True)], history, observation)


def test_an_acknowledged_payment_claimed_but_without_its_receipt_after_a_kill_is_a_lost_receipt():
    result = exactly_one_receipt(_faulted_evidence(acknowledged=True, claimed=True))
    assert result.valid is False
    (violation,) = result.violations
    assert violation.kind == LOST and "lost receipt" in violation.message
    assert "after the kill at 0.250 s" in violation.message  # it names the fault that came before it


def test_an_acknowledged_payment_with_no_claim_and_no_receipt_is_missing_not_lost():
    (violation,) = exactly_one_receipt(_faulted_evidence(acknowledged=True, claimed=False)).violations
    assert violation.kind == MISSING


def test_a_payment_never_acknowledged_after_a_fault_is_indeterminate_not_missing():
    evidence = _faulted_evidence(acknowledged=False, claimed=True)
    results = {c.name: c for c in check(evidence)}
    assert results["exactly-one-receipt"].valid is True
    assert results["exactly-one-receipt"].details["indeterminate"] == ["p1"]
    assert results["state-agrees-with-disk"].valid is True  # a claim without a receipt is no finding either


def test_a_duplicate_is_a_violation_whether_or_not_the_payment_was_acknowledged():
    assert exactly_one_receipt(_faulted_evidence(acknowledged=False, claimed=True, receipts=2)).valid is False


def test_a_fault_whose_trigger_never_fired_leaves_the_run_unknown():
    evidence = _faulted_evidence(acknowledged=True, claimed=True, receipts=1)
    evidence.history.nemesis = {"schedule": CRASH_WHILE_RENDERING, "fired": False, "came_back": None}
    fault = next(c for c in check(evidence) if c.name == "fault-injected")
    assert fault.valid is None and "never fired" in fault.details["reason"]


def test_the_history_keeps_what_the_nemesis_did_across_a_round_trip():
    history = _faulted_evidence(acknowledged=True, claimed=True).history
    data = history.to_dict()
    assert data["faults"][0]["t"] == pytest.approx(0.25)
    again = History.from_dict(data)
    assert again.faults == history.faults and again.nemesis == history.nemesis
    assert "faults" not in History().to_dict()  # a run without a nemesis reads as it always did


# -- the real thing: a service started, killed while its receipt renders, started again ---------------------

def _run(variant: str, tmp_path: Path, *extra: str, payments: int = 2, duplicates: int = 3,
         variables: dict[str, str] | None = None, profile: Path = CLAIM_THEN_GENERATE) -> subprocess.CompletedProcess:
    env = {**os.environ, **claim_then_generate_variables(variant, tmp_path), **(variables or {})}
    return subprocess.run([sys.executable, "-m", "harness", "run", "--profile", str(profile),
                           "--payments", str(payments), "--duplicates", str(duplicates), "--targets", "exactly-once",
                           "--report-dir", str(tmp_path / "report"), "--label", variant, "--quiet", *extra],
                          env=env, capture_output=True, text=True, timeout=240)


def _service_processes(marker: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if any(marker in part for part in process.info["cmdline"] or []):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return found


@pytest.mark.slow
def test_the_design_documents_fix_loses_a_receipt_when_killed_while_it_renders(tmp_path):
    result = _run("claim", tmp_path, "--nemesis", CRASH_WHILE_RENDERING)
    assert result.returncode == EXIT_INVALID, result.stdout + result.stderr
    assert "lost receipt" in result.stdout
    assert not _service_processes(str(tmp_path))  # the service the run started was ended with it


@pytest.mark.slow
def test_its_lease_twin_makes_every_receipt_exactly_once_after_the_same_kill(tmp_path):
    result = _run("lease", tmp_path, "--nemesis", CRASH_WHILE_RENDERING)
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    report = (tmp_path / "report" / "lease.md").read_text()
    assert "kill" in report and "fault-injected" in report


@pytest.mark.slow
def test_its_check_then_act_twin_duplicates_under_the_same_schedule(tmp_path):
    result = _run("check-then-act", tmp_path, "--nemesis", CRASH_WHILE_RENDERING)
    assert result.returncode == EXIT_INVALID, result.stdout + result.stderr
    assert "duplicate receipts" in result.stdout


@pytest.mark.slow
def test_the_pytest_fixture_races_a_profile_under_the_same_nemesis(race_profile, tmp_path):
    variables = claim_then_generate_variables("claim", tmp_path)
    report = race_profile(CLAIM_THEN_GENERATE, variables, payments=2, duplicates=3, nemesis=CRASH_WHILE_RENDERING)
    assert not report.valid
    assert any(v.kind == LOST for c in report.checks for v in c.violations)


@pytest.mark.slow
def test_a_start_command_that_fails_is_one_line_and_exit_4(tmp_path):
    result = _run("claim", tmp_path, variables={"CTG_PYTHON": str(tmp_path / "no-such-python")})
    assert result.returncode == EXIT_USAGE, result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]  # one line
    assert "could not start the service" in result.stderr and "no-such-python" in result.stderr


@pytest.mark.slow
def test_a_service_that_never_comes_back_is_inconclusive_and_says_so(tmp_path):
    # The service starts once; the "restart" after the kill runs a database URI that refuses it.
    broken = tmp_path / "restart-fails.sh"
    variables = claim_then_generate_variables("lease", tmp_path)
    broken.write_text("#!/bin/sh\nif [ -e \"$0.started\" ]; then exit 3; fi\ntouch \"$0.started\"\n"
                      f"exec {sys.executable} \"$@\"\n")
    broken.chmod(0o755)
    result = _run("lease", tmp_path, "--nemesis", CRASH_WHILE_RENDERING, variables={**variables, "CTG_PYTHON": str(broken)})
    assert result.returncode == EXIT_INCONCLUSIVE, result.stdout + result.stderr
    assert "did not come back" in result.stdout
    assert not _service_processes(str(tmp_path))


def test_a_nemesis_needs_a_profile_that_says_how_the_service_runs(tmp_path):
    from harness.cli.main import main

    code = main(["run", "--profile", "reference", "--target", "http://127.0.0.1:9", "--nemesis", CRASH_WHILE_RENDERING,
                 "--quiet"])
    assert code == EXIT_USAGE


def test_a_profile_says_how_its_service_runs_and_never_shows_its_secrets():
    variables = {"CTG_PYTHON": "python", "CTG_PORT": "8140", "CTG_RECEIPTS_DIR": "/r", "CTG_DB_UPSTREAM": "m:27017",
                 "CTG_DB_PORT": "27118",
                 "CTG_DATABASE": "d", "CTG_VARIANT": "claim", "CTG_SECRET": "s3cret-value", "CTG_LEASE_SECONDS": "2"}
    profile = load_profile(CLAIM_THEN_GENERATE, variables)
    assert profile.spec.service.command[1] == "claim_then_generate.py"
    assert "s3cret-value" not in str(profile.to_dict())  # the report carries the profile: never its secrets


@pytest.mark.parametrize("service, says", [
    ({}, "a command (argv the harness starts) or hooks"),
    ({"command": ["x"], "hooks": {"kill": "k", "start": "s"}, "ready_path": "/h"}, "not both"),
    ({"command": []}, "at least the program"),
    ({"hooks": {"kill": "k", "start": "s"}}, "needs ready_path"),
    ({"command": ["x"], "ready_log": "("}, "not a regular expression"),
    ({"command": ["x"], "restart": 1}, "unknown field")])
def test_a_service_section_that_cannot_work_is_refused_naming_the_field(service, says):
    from harness.profile import ProfileError, parse_profile

    data = {"version": 1, "base_url": "http://127.0.0.1:9", "payments": {"source": "http", "path": "/p", "id": "id"},
            "deliveries": {"callback": {"path": "/cb", "body": {"a": "{transaction}"}}}, "service": service}
    with pytest.raises(ProfileError, match=says.replace("(", r"\(").replace(")", r"\)")):
        parse_profile(data, "p")


@pytest.mark.slow
def test_ctrl_c_while_the_nemesis_waits_to_restart_the_service_leaves_no_process_behind(tmp_path):
    import signal

    env = {**os.environ, **claim_then_generate_variables("claim", tmp_path)}
    harness = subprocess.Popen([sys.executable, "-m", "harness", "run", "--profile", str(CLAIM_THEN_GENERATE),
                                "--payments", "1", "--duplicates", "2", "--nemesis", CRASH_WHILE_RENDERING,
                                "--restart-after", "30", "--report-dir", str(tmp_path / "report"), "--quiet"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               # as a terminal starts it: a test run started in the background (nohup ... &)
                               # ignores SIGINT, and a child inherits that, so Ctrl-C would never arrive
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    log = tmp_path / "report" / "claim-then-generate.service.log"  # a run is named by its profile
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "Generating receipt" not in (log.read_text() if log.exists() else ""):
        time.sleep(0.05)
    time.sleep(0.5)  # the kill is done; the restart is 30 s away
    assert harness.poll() is None, harness.communicate()
    harness.send_signal(signal.SIGINT)
    stdout, stderr = harness.communicate(timeout=60)
    assert harness.returncode == 130, stdout + stderr
    time.sleep(0.5)
    assert not _service_processes(str(tmp_path))


@pytest.mark.slow
@pytest.mark.parametrize("variant, expected, says", [("claim", EXIT_INVALID, "lost receipt"),
                                                     ("lease", EXIT_OK, "VALID")])
def test_a_locust_swarm_races_the_profile_under_the_same_nemesis(tmp_path, variant, expected, says):
    from _locust import locust

    result = locust("webhook_storm", tmp_path, "--target-profile", str(CLAIM_THEN_GENERATE), "--payments", "2",
                    "--duplicates", "3", "--targets", "exactly-once", "--nemesis", CRASH_WHILE_RENDERING,
                    env=claim_then_generate_variables(variant, tmp_path))
    assert result.returncode == expected, result.stdout[-4000:]
    assert says in result.stdout
    assert not _service_processes(str(tmp_path))


# A pause longer than the lease (2 s): the owner sleeps in the middle of its receipt, the gateway gives up
# waiting for it (--timeout 3) and redelivers while it still sleeps; on waking, that redelivery has taken
# the expired lease over. Fencing makes the sleeper's completion void; without it, two receipts.
PAUSE_PAST_THE_LEASE = ("--nemesis", "pause@log:Generating receipt", "--pause-for", "5", "--timeout", "3")


@pytest.mark.slow
def test_a_lease_with_fencing_stays_exactly_once_when_its_owner_is_paused_past_the_lease(tmp_path):
    result = _run("lease", tmp_path, *PAUSE_PAST_THE_LEASE, payments=1)
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    assert "pause" in (tmp_path / "report" / "lease.md").read_text()


@pytest.mark.slow
def test_a_lease_without_fencing_is_caught_duplicating_when_its_owner_is_paused_past_the_lease(tmp_path):
    result = _run("lease-unfenced", tmp_path, *PAUSE_PAST_THE_LEASE, payments=1)
    assert result.returncode == EXIT_INVALID, result.stdout + result.stderr
    assert "duplicate receipts" in result.stdout


@pytest.mark.slow
def test_the_matrix_runs_the_reference_service_under_the_nemesis(tmp_path):
    from harness.studies.matrix import run_matrix, to_markdown

    cells = run_matrix(("vulnerable", "atomic"), ("process killed mid-generation",), payments=2, duplicates=3,
                       report_dir=tmp_path)
    vulnerable, atomic = cells
    # Redelivered duplicates race again. Generations of one payment in the same millisecond write one file name
    # (one overwrites the other: one-generation names them), so not every payment need show two files.
    assert vulnerable.exit_code == EXIT_INVALID and vulnerable.duplicated >= 1
    assert atomic.exit_code == EXIT_INVALID and atomic.lost == 2  # claimed, killed, acknowledged: lost for good
    assert "| atomic | process killed mid-generation | 0 | 2 | 2 |" in to_markdown(cells, payments=2, duplicates=3,
                                                                                   lease_seconds=1.0)


@pytest.mark.slow
def test_a_database_link_cut_mid_receipt_ends_with_exactly_one_receipt_after_redelivery_for_the_lease_twin(tmp_path):
    # The relay in front of its MongoDB ([service.links]) resets every connection when the receipt starts
    # rendering and refuses new ones for 2 s; the gateway redelivers what was not acknowledged.
    result = _run("lease", tmp_path, "--nemesis", "cut@log:Generating receipt", "--pause-for", "2")
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    report = (tmp_path / "report" / "lease.md").read_text()
    assert "| cut |" in report and "| heal |" in report


def test_a_cut_link_resets_its_connections_and_refuses_new_ones_until_it_heals():
    import socket
    import threading

    from harness.local.relay import Relay

    upstream = socket.create_server(("127.0.0.1", 0))
    accepted = []
    threading.Thread(target=lambda: accepted.append(upstream.accept()[0]), daemon=True).start()
    with Relay(upstream.getsockname()[1]) as relay:
        client = socket.create_connection(("127.0.0.1", relay.port), timeout=5)
        client.sendall(b"ping")
        deadline = time.monotonic() + 5
        while not accepted and time.monotonic() < deadline:
            time.sleep(0.01)
        # The upstream accepts before the relay has its side of the pair: the relayed ping says the pair is open.
        accepted[0].settimeout(5)
        assert accepted[0].recv(4) == b"ping"
        assert relay.cut(0.5) == 1
        try:  # reset in the middle: the connection ends (a reset, or an end of stream), nothing more comes
            ended = client.recv(1) == b""
        except ConnectionResetError:
            ended = True
        assert ended
        refused = socket.create_connection(("127.0.0.1", relay.port), timeout=5)
        assert refused.recv(1) == b""  # accepted and closed at once while cut
        time.sleep(0.6)
        threading.Thread(target=lambda: accepted.append(upstream.accept()[0]), daemon=True).start()
        healed = socket.create_connection(("127.0.0.1", relay.port), timeout=5)
        healed.sendall(b"again")
        deadline = time.monotonic() + 5
        while len(accepted) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(accepted) == 2  # healed: relayed to the upstream again
    upstream.close()


@pytest.mark.slow
def test_a_kill_triggered_by_the_first_receipt_file_strikes_and_the_lease_twin_stays_exactly_once(tmp_path):
    result = _run("lease", tmp_path, "--nemesis", "crash@file")
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    report = (tmp_path / "report" / "lease.md").read_text()
    # the kill came as its first receipt was written (the temporary file, or the receipt renamed into place)
    assert re.search(r"trigger: new file '\.?receipt-order_", report)


@pytest.mark.slow
def test_a_downstream_outage_then_recovery_ends_with_one_receipt_and_one_notice_for_the_outbox_twin(tmp_path):
    # The CRM (the sink) fails its first 3 calls with 503: the lease twin answers 503 until its notice went
    # out, the gateway redelivers, and the notice is sent once the CRM is back, the receipt never again.
    result = _run("lease", tmp_path, "--nemesis", "downstream@first:3",
                  profile=claim_then_generate_with_crm(tmp_path))
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    report = (tmp_path / "report" / "lease.md").read_text()
    assert "downstream-fail" in report and "| recover |" in report


@pytest.mark.slow
def test_a_downstream_outage_loses_the_claims_notice_once_its_duplicates_were_acknowledged(tmp_path):
    # The owner's CRM call fails and the design document's rollback gives the claim back (500), but its
    # duplicates were already answered 200 "already": nothing is redelivered, the notice is never sent,
    # and the receipt is left with its flag down.
    result = _run("claim", tmp_path, "--nemesis", "downstream@first:1", payments=1,
                  profile=claim_then_generate_with_crm(tmp_path))
    assert result.returncode == EXIT_INVALID, result.stdout + result.stderr
    assert "lost 'crm notice' side effect" in result.stdout


@pytest.mark.parametrize("text, count, fail_as", [("downstream@first:3", 3, "503"),
                                                  ("downstream@first:2:reset", 2, "reset"),
                                                  ("downstream@first:1:timeout", 1, "timeout"),
                                                  ("downstream@first:4:502", 4, "502")])
def test_a_downstream_outage_names_how_many_calls_fail_and_how(text, count, fail_as):
    spec = parse_fault(text)
    assert (spec.kind, spec.count, spec.fail_as) == ("downstream", count, fail_as)
    assert parse_fault(spec.text) == spec


@pytest.mark.parametrize("text", ["downstream@first:0", "downstream@first:x", "downstream@first:2:418",
                                  "downstream@after:1", "crash@first:2"])
def test_a_bad_downstream_outage_is_one_clear_line(text):
    with pytest.raises(HarnessError):
        parse_fault(text)


def test_the_sink_fails_its_first_calls_records_them_as_attempts_and_then_recovers(tmp_path):
    import httpx

    from harness.observe.sink import read_sink_effects
    from harness.profile.schema import EffectSection
    from harness.sink import Sink, SinkSettings

    with Sink(SinkSettings(http=0, fail_first=2, fail_as="503"), tmp_path / "sink.jsonl") as sink:
        url = f"http://127.0.0.1:{sink.ports['http']}/crm/receipts"
        statuses = [httpx.post(url, json={"orderId": f"o{i}"}, timeout=10).status_code for i in range(3)]
        assert statuses == [503, 503, 200]
        records = sink.records()
        assert [r.get("failed") for r in records] == ["503", "503", None]
        section = EffectSection.model_validate({"kind": "crm notice", "source": "sink", "channel": "http",
                                                "key": {"from": "body", "field": "orderId"}})
        effects, problems = read_sink_effects(section, sink)
        assert [e.key for e in effects] == ["o2"] and not problems  # a failed call is an attempt, not an effect


@pytest.mark.slow
def test_a_kill_when_the_first_call_reaches_the_sink_strikes_and_the_run_is_judged(tmp_path):
    result = _run("lease", tmp_path, "--nemesis", "crash@sink", payments=1,
                  profile=claim_then_generate_with_crm(tmp_path))
    assert result.returncode in (EXIT_OK, EXIT_INVALID), result.stdout + result.stderr  # judged, not inconclusive
    report = (tmp_path / "report" / "lease.md").read_text()
    assert "trigger: a call reached the sink (http)" in report
    assert "| ✅ pass | fault-injected |" in report  # it struck, and the service came back


@pytest.mark.slow
def test_hooks_kill_and_start_a_service_the_harness_did_not_start(tmp_path):
    # The user runs the service (here: a shell script that starts it in the background, as docker or systemd
    # would); the profile's hooks are how the nemesis kills it and starts it again.
    import signal

    from _wire import fresh_database, wire_server

    variables = claim_then_generate_variables("lease", tmp_path)
    pidfile, log = tmp_path / "service.pid", tmp_path / "service.out"
    start = tmp_path / "start.sh"
    start.write_text(f"cd {CLAIM_THEN_GENERATE.parent}\n"
                     f"WEBHOOK_SECRET={variables['CTG_SECRET']} LEASE_SECONDS=2 setsid {sys.executable} "
                     f"claim_then_generate.py --port {variables['CTG_PORT']} --receipts {variables['CTG_RECEIPTS_DIR']} "
                     f"--mongo-uri {wire_server().uri} --database {fresh_database()} --variant lease "
                     f">> {log} 2>&1 < /dev/null &\necho $! > {pidfile}\n")
    text = CLAIM_THEN_GENERATE.read_text()
    service = text[text.index("\n[service]\n") + 1:text.index("\n[redelivery]\n") + 1]
    hooked = tmp_path / "hooked.toml"
    hooked.write_text(text.replace(service, f'[service]\nhooks = {{ kill = "kill -9 $(cat {pidfile})", '
                                            f'start = "sh {start}" }}\nready_path = "/healthz"\n\n'))
    subprocess.run(["sh", str(start)], check=True, timeout=30)
    try:
        result = _run("lease", tmp_path, "--nemesis", "crash@after:0.3", profile=hooked, variables=variables)
        assert result.returncode == EXIT_OK, result.stdout + result.stderr + log.read_text()
        report = (tmp_path / "report" / "lease.md").read_text()
        assert f"hook kill: kill -9 $(cat {pidfile})" in report and "| ready |" in report
    finally:
        try:
            os.kill(int(pidfile.read_text()), signal.SIGKILL)  # the user's service is the user's to stop
        except (OSError, ValueError):
            pass
