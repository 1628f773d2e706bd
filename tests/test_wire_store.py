"""The store on a real MongoDB wire protocol: the same claim, rollback and lease as on the memory store.

Store tests call the service's store code directly; race tests fire last-byte bursts at the
service as a process. Each runs on the memory store and on a SecantusDB wire server, through the
same pymongo code. Also here: the wire server's lifecycle, and the oracle reading state straight
from the database.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import httpx
import pymongo
import pytest
from _poll import wait_until
from _wire import start_on_store, store, store_kind, target_of  # noqa: F401 (fixtures)
from helpers import claim_winners

from harness.local import wire
from harness.senders.burst import fire
from harness.cli.main import main
from harness.local.service import free_port
from harness.prepare.plan import Plan
from harness.reference import FaultFlags
from harness.run.session import RunConfig, run_race

# Real processes, nested pytest or Locust runs: `pytest -m 'not slow'` leaves these out.
pytestmark = pytest.mark.slow

TRIALS = 20


def _new_charge(store) -> str:
    return store.create(vendor_name="v", exhibition_id="e", amount=100,
                        merchant_transaction_id=f"MT{uuid.uuid4().hex[:12]}")["_id"]


# -- the store's operations, on both stores ----------------------------------------------------------

def test_claim_is_won_exactly_once_by_racing_threads(store, fast_switching):
    winners = [claim_winners(store.claim_receipt, _new_charge(store)) for _ in range(TRIALS)]
    assert winners == [1] * TRIALS


def test_released_claim_can_be_won_again(store):
    charge_id = _new_charge(store)
    assert store.claim_receipt(charge_id) is not None
    assert store.claim_receipt(charge_id) is None
    store.release_claim(charge_id)
    assert store.claim_receipt(charge_id) is not None


def test_lease_is_won_once_and_completed_only_by_its_holder(store, fast_switching):
    charge_id = _new_charge(store)
    assert claim_winners(lambda: store.claim_lease(charge_id, uuid.uuid4().hex, 30.0)) == 1
    holder = store.get(charge_id)["receiptClaim"]["token"]
    assert store.complete_lease(charge_id, "someone-else", "/r.pdf") is False
    assert store.complete_lease(charge_id, holder, "/r.pdf") is True
    assert store.claim_lease(charge_id, "late", 30.0) is None  # completed: nobody claims it again


def test_expired_lease_is_taken_over_and_the_former_holder_cannot_complete(store):
    charge_id = _new_charge(store)
    assert store.claim_lease(charge_id, "first", 2.0) is not None
    assert store.claim_lease(charge_id, "second", 30.0) is None  # still held (2 s is far beyond one round trip)
    expires = store.get(charge_id)["receiptClaim"]["expiresAt"]
    wait_until(lambda: time.time() > expires, timeout=10, message="the first lease to expire")
    assert store.claim_lease(charge_id, "second", 30.0) is not None
    assert store.complete_lease(charge_id, "first", "/first.pdf") is False
    assert store.complete_lease(charge_id, "second", "/second.pdf") is True


def test_failed_state_never_downgrades_a_paid_charge(store):
    charge_id = _new_charge(store)
    store.mark_paid(charge_id, "T1", None)
    store.mark_failed(charge_id)
    assert store.get(charge_id)["paymentStatus"] == "paid"


# -- the service under simultaneous duplicates, on both stores ---------------------------------------

def _files_for(service, payment) -> list:
    return [p for p in service.receipts_dir.iterdir() if payment.merchant_transaction_id in p.name]


def _answers(target, burst) -> list:
    return sorted((target.outcome_of(e.body) for e in burst.history), key=str)


def assert_rolled_back(answers: list) -> None:
    """Every delivery of a burst whose generations all fail either failed or found the claim taken.

    How many fail depends on timing, not on correctness: the claim is given back when a generation
    fails, so a duplicate that reaches the store after that (a loaded machine delays some by more
    than the generation) claims again and fails too. What must never happen is a receipt.
    """
    assert "failed" in answers and set(answers) <= {"failed", "already_generated"}, answers


def _payments(target, count: int) -> list:
    with httpx.Client(timeout=30) as client:
        return [target.create_payment(client, 49_900 + i) for i in range(count)]


def test_atomic_service_writes_exactly_one_receipt_per_payment(start_on_store, store_kind):
    service = start_on_store(store_kind, "atomic", generation_delay_ms=100)
    target = target_of(service)
    for payment in _payments(target, 3):
        burst = fire([target.callback_request(payment)] * 20, timeout=30)
        assert _answers(target, burst) == ["already_generated"] * 19 + ["generated"]
        assert len(_files_for(service, payment)) == 1


def test_failed_generation_rolls_back_and_the_next_delivery_makes_exactly_one(start_on_store, store_kind):
    service = start_on_store(store_kind, "atomic", generation_delay_ms=20, failure_rate=1.0)
    target = target_of(service)
    (payment,) = _payments(target, 1)

    first = fire([target.callback_request(payment)] * 5, timeout=30)
    assert_rolled_back(_answers(target, first))
    assert httpx.get(target.url(target.state_path, payment), timeout=30).json()["receiptGenerated"] is False

    httpx.put(service.url + "/_admin/faults", json={"failure_rate": 0.0}, timeout=30).raise_for_status()
    retry = fire([target.callback_request(payment)] * 5, timeout=30)

    assert _answers(target, retry) == ["already_generated"] * 4 + ["generated"]
    assert len(_files_for(service, payment)) == 1


def test_crashed_claimants_lease_expires_and_the_retry_round_makes_exactly_one(start_on_store, store_kind,
                                                                             exactly_once_targets):
    crash = FaultFlags(crash_after_claim_rate=1.0)
    service = start_on_store(store_kind, "lease", generation_delay_ms=50, lease_seconds=0.5, faults=crash)
    config = RunConfig(plan=Plan(payments=3, duplicates=5, rounds=2, round_interval=0.7), profile=target_of(service).to_profile(),
                       faults=crash.runtime(), transient_faults=True, server_errors_injected=True,
                       targets_file=exactly_once_targets)
    report = run_race(config)
    assert (report.metrics["receipts_per_payment_min"], report.metrics["receipts_per_payment_max"]) == (1, 1)
    assert report.metrics["missing_receipts"] == 0


# -- the oracle reads state straight from the database --------------------------------------------------

def test_oracle_reads_state_from_the_wire_database_and_it_agrees_with_the_files(start_on_store, tmp_path,
                                                                                exactly_once_targets, capsys):
    service = start_on_store("wire", "atomic", generation_delay_ms=50)
    code = main(["run", "--quiet", "--target", service.url, "--receipts-dir", str(service.receipts_dir),
                 "--mongo-uri", service.mongo_uri, "--mongo-database", service.database, "--payments", "3",
                 "--duplicates", "5", "--targets", str(exactly_once_targets), "--report-dir", str(tmp_path),
                 "--label", "from-db"])
    assert code == 0, capsys.readouterr()
    report = json.loads((tmp_path / "from-db.json").read_text())
    assert report["history_summary"]["state_source"] == "mongodb"
    service.stop()  # from here on only the database and the files can answer

    assert main(["verify", str(tmp_path / "from-db.json")]) == 0

    victim = report["payments"][0]["payment"]
    with pymongo.MongoClient(service.mongo_uri) as client:
        client[service.database]["servicecharges"].update_one({"_id": victim}, {"$set": {"receiptGenerated": False}})
    capsys.readouterr()
    assert main(["verify", str(tmp_path / "from-db.json"), "--json"]) == 1
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert [v["payment"] for v in checks["state-agrees-with-disk"]["violations"]] == [victim]


# -- the wire server's lifecycle ---------------------------------------------------------------------

def test_wire_server_answers_ping_on_loopback_and_leaves_nothing_when_stopped():
    server = wire.start_wire_server()
    assert server.uri.startswith("mongodb://127.0.0.1:") and wire.ping(server.uri)
    server.stop()
    assert not server.alive()
    assert not server.workdir.exists()
    assert not wire.ping(server.uri, timeout_ms=300)


def test_wire_server_that_exits_at_start_is_a_clear_error_and_leaves_nothing():
    with pytest.raises(wire.WireServerError, match="exited with 3"):
        wire.start_wire_server(command=[sys.executable, "-c", "import sys; print('no storage'); sys.exit(3)"])


@pytest.mark.parametrize("argv", [
    ["serve", "--store", "wire"],
    ["run", "--quiet", "--store", "wire", "--payments", "1"],
])
def test_missing_wire_extra_exits_4_naming_the_install_command(monkeypatch, capsys, tmp_path, argv):
    def not_installed():
        raise wire.WireUnavailable(f"the wire store needs SecantusDB, which is not installed: run {wire.INSTALL_COMMAND}")

    monkeypatch.setattr(wire, "daemon_command", not_installed)
    assert main([*argv, "--receipts-dir", str(tmp_path / "receipts")]) == 4
    assert "pip install -e '.[wire]'" in capsys.readouterr().err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_serve_stops_its_wire_server_when_interrupted(tmp_path, sig):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MONGODB_URI"}
    serve = subprocess.Popen([sys.executable, "-m", "harness.cli", "serve", "--store", "wire", "--port", str(port),
                              "--receipts-dir", str(tmp_path / "receipts")],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        line = serve.stdout.readline()  # "wire store: SecantusDB at mongodb://... (stopped when the service stops)"
        uri = line.split(" at ")[1].split()[0]
        assert wire.ping(uri)
        _wait_until_serving(f"http://127.0.0.1:{port}/healthz")
        serve.send_signal(sig)
        serve.wait(60)
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
    assert not wire.ping(uri, timeout_ms=300)


def _wait_until_serving(url: str, timeout: float = 60.0) -> None:
    def serving() -> bool:
        try:
            return httpx.get(url, timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(serving, timeout=timeout, interval=0.05, message=f"{url} to answer")
