#!/usr/bin/env bash
# How far a case's ratios move when the machine is busy: ROUNDS pairs of quick runs of
# CASE, one on the machine as it is, one with a pure-Python busy loop on every core
# (what a shared VM's neighbours do to it), alternated. The ratios are compared
# side by side within a run, so a case whose ratio holds here should hold across the
# sessions and machines the CI gate meets; benchmarks/drift.py prints each run over
# the committed baseline:
#
#   benchmarks/under_load.sh reload.save-to-live 3
#   .venv/bin/python benchmarks/drift.py benchmarks/runs/under-load-reload.save-to-live/*.json
set -euo pipefail
cd "$(dirname "$0")/.."
case_name=${1:?usage: benchmarks/under_load.sh CASE [ROUNDS]}
rounds=${2:-3}
py="$PWD/.venv/bin/python"
out="$PWD/benchmarks/runs/under-load-$case_name"
mkdir -p "$out"
busy=()
stop_busy() { kill "${busy[@]}" 2>/dev/null || true; wait "${busy[@]}" 2>/dev/null || true; busy=(); }
trap stop_busy EXIT
for round in $(seq 1 "$rounds"); do
    "$py" -m provcfg bench --case "$case_name" -o "$out/idle-$round.json" >/dev/null
    for _ in $(seq 1 "$(nproc)"); do
        "$py" -c "while True: pass" &
        busy+=($!)
    done
    "$py" -m provcfg bench --case "$case_name" -o "$out/busy-$round.json" >/dev/null
    stop_busy
    echo "round $round of $rounds: $out/idle-$round.json, $out/busy-$round.json" >&2
done
