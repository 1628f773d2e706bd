"""Measure what a hostile service or directory costs the harness: wall time, peak memory, exit code, verdict.

    python scripts/hostile_measure.py                 # all three cases below
    python scripts/hostile_measure.py --only audit

Cases (each through the CLI under ``/usr/bin/time -v``, a fresh directory each):

- ``huge``     ``race-harness run`` against tests/strangers/hostile_service.py answering every delivery 200 MB
- ``endless``  the same service answering with a chunked stream that never ends (``--timeout 10``)
- ``audit``    ``race-harness audit DIR`` of a directory holding a 1 GB sparse ``receipt-*.pdf``, a PDF whose
               content stream inflates to 1 GB (a Flate bomb), a FIFO, a symlink loop and 10 000 empty files

Prints one line per case: seconds, peak RSS (the largest single process, as ``time -v`` reports it), the
exit code and the first line the command printed.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from harness.local.service import free_port  # noqa: E402

STRANGERS = ROOT / "tests" / "strangers"


def timed(command: list[str], env: dict[str, str], timeout: float = 600) -> tuple[float, float, int, str]:
    """(seconds, peak RSS in MB, exit code, the first line printed) of ``command`` under /usr/bin/time -v."""
    result = subprocess.run(["/usr/bin/time", "-v", *command], env=env, capture_output=True, text=True,
                            timeout=timeout)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", result.stderr)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr)
    seconds = (int(wall.group(1) or 0) * 3600 + int(wall.group(2)) * 60 + float(wall.group(3))) if wall else -1.0
    first = next((line for line in result.stdout.splitlines() if line.strip()), "")
    return seconds, int(rss.group(1)) / 1024 if rss else -1.0, result.returncode, first[:150]


def hostile_run(mode: str, work: Path, *extra: str) -> list[str]:
    profile = work / "hostile.toml"
    profile.write_text((STRANGERS / "hostile_service.toml").read_text().replace(
        "[service]\n", f"[service]\ncwd = {str(STRANGERS)!r}\n", 1))
    os.environ.update({"HX_PYTHON": sys.executable, "HX_PORT": str(free_port()), "HX_RECEIPTS_DIR": str(work / "r"),
                       "HX_MODE": mode, "HX_SECRET": "hx-measure-secret", "HX_PASSWORD": "hx-measure-password",
                       "HX_SIZE_MB": "200"})
    return [sys.executable, "-m", "harness", "run", "--profile", str(profile), "--payments", "3", "--duplicates", "5",
            "--quiet", "--report-dir", str(work / "report"), *extra]


def flate_bomb(path: Path, inflated: int = 1 << 30, chunk: int = 1 << 20) -> None:
    """A one-page PDF whose content stream inflates to ``inflated`` bytes of zeros (about 1 MB on disk)."""
    compressor = zlib.compressobj(9)
    stream = b"".join(compressor.compress(bytes(chunk)) for _ in range(inflated // chunk)) + compressor.flush()
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
               b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream"]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    path.write_bytes(bytes(out))


def hostile_directory(root: Path) -> Path:
    receipts = root / "receipts"
    receipts.mkdir()
    with open(receipts / "receipt-SPARSE.pdf", "wb") as sparse:
        sparse.truncate(1 << 30)
    flate_bomb(receipts / "receipt-BOMB.pdf")
    os.mkfifo(receipts / "receipt-FIFO.pdf")
    os.symlink("receipt-LOOP.pdf", receipts / "receipt-LOOP.pdf")
    for i in range(10_000):
        (receipts / f"receipt-E{i:05d}.pdf").touch()
    return receipts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("huge", "endless", "audit"))
    args = parser.parse_args()
    for case in ("huge", "endless", "audit"):
        if args.only and case != args.only:
            continue
        with tempfile.TemporaryDirectory(prefix=f"hostile-{case}-") as work:
            if case == "audit":
                command = [sys.executable, "-m", "harness", "audit", str(hostile_directory(Path(work))), "--quiet",
                           "--report-dir", f"{work}/report"]
            else:
                command = hostile_run(case, Path(work), *(["--timeout", "10"] if case == "endless" else []))
            seconds, rss, code, first = timed(command, dict(os.environ))
            size = sum(p.stat().st_size for p in Path(work, "report").glob("*.json")) / 1e6
            print(f"{case:8} {seconds:7.1f} s  peak RSS {rss:6.0f} MB  exit {code}  report {size:.2f} MB  {first}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
