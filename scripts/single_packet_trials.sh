#!/bin/bash
# single-packet against the HTTP/2 reference service, N runs per mode (default 10), through the CLI,
# a Locust swarm and the pytest fixture; prints each run's exit code (expected: vulnerable 1, atomic 0).
#   bash scripts/single_packet_trials.sh [N]
set -u
N=${1:-10}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT
for mode in vulnerable atomic; do
  codes=""
  for i in $(seq 1 "$N"); do
    race-harness run --mode "$mode" --http2 --sync single-packet --payments 5 --duplicates 5 \
      --targets exactly-once --quiet --report-dir "$SCRATCH/cli-$mode-$i" > /dev/null 2>&1
    codes="$codes $?"
  done
  echo "cli $mode exit codes:$codes"
done
for mode in vulnerable atomic; do
  codes=""
  for i in $(seq 1 "$N"); do
    (cd "$SCRATCH" && timeout 120 python -m locust -f "$ROOT/scenarios/webhook_storm.py" --headless -u 2 -r 50 \
      -t 45s --embedded "$mode" --http2 --sync single-packet --payments 5 --duplicates 5 --targets exactly-once \
      --report-dir "$SCRATCH/locust-$mode-$i" > /dev/null 2>&1)
    codes="$codes $?"
  done
  echo "locust $mode exit codes:$codes"
done
cd "$ROOT" && python -m pytest -p no:cacheprovider -n 0 -q tests/test_h2_front_ends.py \
  -k race_fixture_with_single_packet --race-trials "$N" 2>&1 | grep "trials showed\|passed\|failed"
