#!/usr/bin/env python
"""How long does the atomic claim take on each store, next to the receipt's generation time?

    python benchmarks/claim_latency.py [--sizes 300 3000] [--samples 200] [--racers 20] [--races 30]
                                       [--generation-ms 200] [--no-wire]

The claim is the seed's ``findOneAndUpdate({_id, receiptGenerated: {$ne: true}}, {$set: {receiptGenerated:
true}})``, made through the reference service's own store code (``ChargeStore.claim_receipt``), on:

* memory: the embedded mongomock store (one process; its lock makes the claim atomic);
* wire: a SecantusDB server (MongoDB wire protocol over WiredTiger) started here on loopback;
* mongodb: an external MongoDB, when ``MONGODB_URI`` is set.

Two figures per store, in milliseconds (p50 / p95):

* alone: one client claims a fresh charge, ``--samples`` times (the claim's own cost);
* racing: ``--racers`` clients (threads, a connection each through pymongo's pool) claim one fresh
  charge at the same instant, ``--races`` times; every claim's latency counts, and so does any
  race with more than one winner (there must be none).

Each store is measured with the collection at each of ``--sizes`` documents (filler charges whose
receipts are done, as in a live database), because a store whose planner scans the collection
gets slower as it grows. The figures are set against the seed's target, "atomic operations
< 10 ms" (p95), and against the generation time the claim guards (200 ms by default, the seed's).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere, without installing

from reference_service.store import ChargeStore, open_store  # noqa: E402

TARGET_MS = 10.0  # the seed: atomic operations < 10 ms


def _charge(store: ChargeStore) -> str:
    return store.create(vendor_name="bench", exhibition_id="EXPO-1", amount=49_900,
                        merchant_transaction_id=f"MT{uuid.uuid4().hex[:16].upper()}")["_id"]


def _timed_claim(store: ChargeStore, charge_id: str) -> tuple[float, bool]:
    started = time.perf_counter()
    won = store.claim_receipt(charge_id) is not None
    return (time.perf_counter() - started) * 1000, won


def fill(store: ChargeStore, size: int) -> None:
    """Grow the collection to ``size`` documents with paid charges whose receipts are done."""
    missing = size - store._charges.count_documents({})
    if missing > 0:
        store._charges.insert_many([{"_id": uuid.uuid4().hex, "merchantTransactionId": f"MT{uuid.uuid4().hex[:16]}",
                                     "amount": 49_900, "paymentStatus": "paid", "receiptGenerated": True,
                                     "receiptPath": "done.pdf"} for _ in range(missing)])


def alone(store: ChargeStore, charges: list[str]) -> list[float]:
    """Each of ``charges`` claimed by one client, one after another."""
    return [_timed_claim(store, charge_id)[0] for charge_id in charges]


def racing(store: ChargeStore, charges: list[str], racers: int) -> tuple[list[float], int]:
    """Every claim's latency when ``racers`` threads claim each of ``charges`` at once; races with 2+ winners."""
    latencies: list[float] = []
    double_claims = 0
    for charge_id in charges:
        barrier = threading.Barrier(racers)
        results: list[tuple[float, bool]] = []
        lock = threading.Lock()

        def racer() -> None:
            barrier.wait()
            result = _timed_claim(store, charge_id)
            with lock:
                results.append(result)

        threads = [threading.Thread(target=racer) for _ in range(racers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        latencies += [ms for ms, _ in results]
        double_claims += sum(won for _, won in results) > 1
    return latencies, double_claims


def _verdict(p95: float) -> str:
    return "met" if p95 < TARGET_MS else "missed"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


@contextlib.contextmanager
def stores(include_wire: bool) -> Iterator[list[tuple[str, ChargeStore]]]:
    opened: list[tuple[str, ChargeStore]] = [("memory", open_store(None, "bench"))]
    with contextlib.ExitStack() as stack:
        if include_wire:
            from harness.errors import WireServerError
            from harness.local.wire import start_wire_server  # runs SecantusDB as its own process

            try:
                server = stack.enter_context(start_wire_server())
                opened.append(("wire (SecantusDB)", open_store(server.uri, f"bench_{uuid.uuid4().hex[:8]}")))
            except WireServerError as exc:
                print(f"wire store skipped: {exc}", file=sys.stderr)
        if os.environ.get("MONGODB_URI"):
            opened.append(("mongodb ($MONGODB_URI)", open_store(os.environ["MONGODB_URI"], f"bench_{uuid.uuid4().hex[:8]}")))
        try:
            yield opened
        finally:
            for _, store in opened:
                if store._client is not None:
                    store._client.drop_database(store._charges.database.name)
                store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[300, 3000],
                        help="documents in the collection while measuring (default: %(default)s)")
    parser.add_argument("--samples", type=int, default=200, help="claims by one client (default: %(default)s)")
    parser.add_argument("--racers", type=int, default=20, help="clients per race (default: %(default)s)")
    parser.add_argument("--races", type=int, default=30, help="races (default: %(default)s)")
    parser.add_argument("--generation-ms", type=float, default=200.0, help="receipt generation time (default: %(default)s)")
    parser.add_argument("--no-wire", action="store_true", help="skip the wire store")
    args = parser.parse_args(argv)
    started = time.monotonic()
    rows = []
    with stores(not args.no_wire) as opened:
        for name, store in opened:
            for size in sorted(args.sizes):
                # The charges to claim first, then filler: the collection holds `size` documents throughout.
                fresh = [_charge(store) for _ in range(args.samples + args.races + 10)]
                fill(store, size)
                documents = store._charges.count_documents({})
                alone(store, fresh[:10])  # warm the connection and the code path
                one = alone(store, fresh[10:10 + args.samples])
                raced, doubles = racing(store, fresh[10 + args.samples:], args.racers)
                rows.append((name, documents, one, raced, doubles))
    print(f"Claim latency (findOneAndUpdate of the receipt flag, through the service's store code), ms; "
          f"{args.samples} claims alone, {args.races} races of {args.racers} clients; target p95 < {TARGET_MS:g} ms; "
          f"generation {args.generation_ms:g} ms\n")
    print("| store | documents | alone p50 | alone p95 | alone: p95 < 10 ms | racing p50 | racing p95 "
          "| racing: p95 < 10 ms | races with 2+ winners | racing p95 / generation |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, documents, one, raced, doubles in rows:
        print(f"| {name} | {documents} | {statistics.median(one):.2f} | {_pct(one, 0.95):.2f} | "
              f"{_verdict(_pct(one, 0.95))} | {statistics.median(raced):.2f} | {_pct(raced, 0.95):.2f} | "
              f"{_verdict(_pct(raced, 0.95))} | {doubles} of {args.races} | "
              f"{100 * _pct(raced, 0.95) / args.generation_ms:.1f} % |")
    print(f"\n(alone: the claim's own cost; racing: every claim of {args.racers} made at once, queueing included; "
          f"{time.monotonic() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
