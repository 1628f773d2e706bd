#!/usr/bin/env python
"""How fast does ``race-harness audit`` read a large receipts directory, next to the serial reader?

    python benchmarks/audit_scale.py [--n 100000] [--corpus DIR] [--serial-files N] [--workers W]
                                     [--reader fast|pypdf|both] [--no-fast] [--crossover]

Generates ``--n`` reference receipts (``reference_service.receipts.render_receipt``, in a process
pool) into a temporary directory, or into ``--corpus DIR`` to keep them: a later run with the same
``--corpus`` and ``--n`` reuses them (rendering 100 000 PDFs takes minutes on two cores; the
generation time is printed apart either way). The corpus is what a production copy holds: about 1 %
of payments have a duplicate receipt (a tenth of those printing another amount), 0.1 % damaged
files, 0.1 % temporary files left behind and a stray non-PDF file.

Then, in the same run, it times

* the serial reader: ``scan_receipts(dir, workers=1)``, every file's metadata and page text in one
  process, as the harness read receipts before (``--serial-files`` reads only the first N files and
  says so: on a loaded machine the whole directory takes minutes);
* the audit: ``audit_directory(dir)``, metadata for every file in a process pool, page text only for
  the duplicates whose amounts are compared; metadata is read by the fast reader for simple PDFs
  (``harness/pdf_fast.py``, pypdf for anything unusual), or with ``--no-fast`` by pypdf alone as
  before; ``--reader both`` times the two one after the other, prints them side by side and checks
  that their reports agree;

and prints receipts/s, total seconds and the ratio, with the load average beside them (the figures
are only as quiet as the machine). ``--crossover`` instead times reading small directories in this
process against the pool, to choose ``observe.POOL_MIN_FILES``.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere, without installing

from harness.audit import audit_directory  # noqa: E402
from harness.observe.files import pool_size, read_receipts, scan_receipts  # noqa: E402

STAMP = 1_700_000_000_000
DUPLICATES, DAMAGED, TEMPORARY = 0.01, 0.001, 0.001


def _render(job: tuple[str, int, int, str]) -> None:
    from reference_service.receipts import render_receipt

    directory, i, amount, name = job
    pdf = render_receipt({"merchantTransactionId": f"MT{i:07d}", "amount": amount, "_id": f"c{i}",
                          "vendorName": "Bench vendor", "exhibitionId": "EX1"})
    Path(directory, name).write_bytes(pdf)


def generate(directory: Path, n: int, seed: int = 12) -> dict[str, int]:
    """n receipt files (duplicates, damaged and temporary ones among them); returns how many of each."""
    rng = random.Random(seed)
    jobs, counts = [], {"duplicates": 0, "damaged": 0, "temporary": 0}
    payment = 0
    while len(jobs) < n:
        amount = 49_900 + payment % 1000
        jobs.append((str(directory), payment, amount, f"receipt-MT{payment:07d}-{STAMP + payment}.pdf"))
        if rng.random() < DUPLICATES and len(jobs) < n:
            other = amount + 100 if rng.random() < 0.1 else amount  # a second generation, maybe repriced
            jobs.append((str(directory), payment, other, f"receipt-MT{payment:07d}-{STAMP + payment + 7}.pdf"))
            counts["duplicates"] += 1
        elif rng.random() < TEMPORARY and len(jobs) < n:
            jobs.append((str(directory), payment, amount, f".receipt-MT{payment:07d}-{STAMP + payment + 9}.pdf.tmp"))
            counts["temporary"] += 1
        payment += 1
    with ProcessPoolExecutor(pool_size()) as pool:
        list(pool.map(_render, jobs, chunksize=500))
    finals = sorted(p for p in directory.iterdir() if p.name.endswith(".pdf"))
    for path in rng.sample(finals, max(1, int(n * DAMAGED))):  # truncated mid-file, as a full disk leaves it
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
        counts["damaged"] += 1
    (directory / "notes.txt").write_text("copied from production\n")
    return counts


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _comparable(report: dict) -> dict:
    """A report without what differs between two runs of the same audit (when, how long)."""
    return {k: v for k, v in report.items() if k not in ("created", "elapsed_s")}


def crossover(directory: Path) -> None:
    """Reading k files here against the pool, metadata only (the audit's first pass)."""
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # the damaged files would log a line each
    files = sorted(p for p in directory.iterdir() if p.name.endswith(".pdf"))
    print(f"{'files':>6} {'in-process s':>13} {'pool s':>8}   load {_load()}")
    for k in (50, 100, 200, 400, 800, 1600, 3200):
        if k > len(files):
            break
        timings = []
        for workers in (1, pool_size()):
            start = time.perf_counter()
            read_receipts(files[:k], text=False, workers=workers)
            timings.append(time.perf_counter() - start)
        print(f"{k:>6} {timings[0]:>13.3f} {timings[1]:>8.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="receipt files to generate (default 100 000)")
    parser.add_argument("--corpus", type=Path, help="keep (or reuse) the generated receipts here")
    parser.add_argument("--serial-files", type=int, help="time the serial reader on the first N files only")
    parser.add_argument("--workers", type=int, help="audit processes (default: one per core)")
    parser.add_argument("--reader", choices=("fast", "pypdf", "both"), default="fast",
                        help="how the audit reads metadata: the fast reader (default), pypdf alone, or both in turn")
    parser.add_argument("--no-fast", action="store_const", const="pypdf", dest="reader",
                        help="the audit reads every file with pypdf (same as --reader pypdf)")
    parser.add_argument("--crossover", action="store_true", help="time small directories in-process against the pool")
    args = parser.parse_args()

    temp = None if args.corpus else tempfile.mkdtemp(prefix="audit-scale-")
    directory = args.corpus or Path(temp)
    marker = directory / f".generated-{args.n}"
    try:
        if marker.exists():
            print(f"corpus: reusing {args.n} files in {directory}")
        else:
            directory.mkdir(parents=True, exist_ok=True)
            start = time.perf_counter()
            counts = generate(directory, args.n)
            marker.write_text("")
            print(f"generation: {args.n} files in {time.perf_counter() - start:.1f} s ({counts}), load {_load()}")
        marker.unlink()  # not a file the audit should see; put back below
        if args.crossover:
            crossover(directory)
            return 0
        files = sorted(p for p in directory.iterdir())
        for path in files:  # into the page cache, so whichever reader is timed first pays no cold reads
            path.read_bytes()
        start = time.perf_counter()
        if args.serial_files and args.serial_files < len(files):
            sample = Path(tempfile.mkdtemp(prefix="audit-serial-"))
            for path in files[: args.serial_files]:
                os.link(path, sample / path.name)
            start = time.perf_counter()
            serial, _ = scan_receipts(sample, workers=1)
            shutil.rmtree(sample)
        else:
            serial, _ = scan_receipts(directory, workers=1)
        serial_s = time.perf_counter() - start
        print(f"serial reader: {len(serial)} files in {serial_s:.1f} s = {len(serial) / serial_s:.0f} receipts/s"
              + (f" (the first {len(serial)} of {len(files)} files)" if len(serial) < len(files) else "")
              + f", load {_load()}")
        workers = pool_size() if args.workers is None else args.workers
        readers = ("fast", "pypdf") if args.reader == "both" else (args.reader,)
        figures, reports = {}, {}
        for reader in readers:
            start = time.perf_counter()
            report = reports[reader] = audit_directory(directory, workers=args.workers, fast=reader == "fast")
            audit_s = time.perf_counter() - start
            counts = report["counts"]
            figures[reader] = counts["files"] / audit_s
            print(f"audit ({workers} workers, {reader} reader): {counts['files']} files in {audit_s:.1f} s = "
                  f"{figures[reader]:.0f} receipts/s, load {_load()}")
            print(f"  found {counts['duplicate_keys']} duplicated keys, {counts['amounts_disagree']} with other "
                  f"amounts, {counts['unreadable']} unreadable, {counts['temporary']} temporary or stray, "
                  f"exit {report['exit_code']}")
            print(f"  the audit reads {figures[reader] / (len(serial) / serial_s):.1f}x as many receipts/s as the "
                  f"serial reader; {counts['files']} files in {audit_s:.1f} s, at this rate 100 000 in "
                  f"{100_000 / figures[reader]:.0f} s (target: 60 s)")
        if len(readers) == 2:
            same = _comparable(reports["fast"]) == _comparable(reports["pypdf"])
            print(f"fast reader {figures['fast']:.0f} receipts/s vs pypdf {figures['pypdf']:.0f} receipts/s = "
                  f"{figures['fast'] / figures['pypdf']:.1f}x; reports {'identical' if same else 'DIFFER'}, "
                  f"load {_load()}")
            if not same:
                return 1
        return 0
    finally:
        if temp:
            shutil.rmtree(temp, ignore_errors=True)
        elif directory.is_dir():
            marker.write_text("")


if __name__ == "__main__":
    sys.exit(main())
