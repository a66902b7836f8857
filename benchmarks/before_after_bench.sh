#!/usr/bin/env bash
# Before/after in one session with `provcfg bench`: the cases given (default: the
# streaming, forwarding and flat concurrency cases) run by an older commit's own code
# (REV, checked out in a temporary worktree) and by this checkout's, alternated round by
# round so drift hits both alike, with this checkout's venv. Do not edit the checkout
# while it runs (cases import provcfg as they start).
#
#   benchmarks/before_after_bench.sh REV [ROUNDS] [CASE-PATTERN...]
#
# Outputs: benchmarks/runs/before-after-REV/{before,after}.ROUND.{json,log}
# (the JSON is `provcfg bench --format json`; read its "ratios").
set -euo pipefail
cd "$(dirname "$0")/.."
USAGE="benchmarks/before_after_bench.sh REV [ROUNDS] [CASE-PATTERN...]"
DEFAULTS=('stream.*' 'forwarding.*' concurrency.flat-1 concurrency.flat-10)
# shellcheck source=benchmarks/_before_after_common.sh
. benchmarks/_before_after_common.sh
cases=()
for p in "${items[@]}"; do cases+=(--case "$p"); done
for round in $(seq 1 "$rounds"); do
    for side in before after; do
        if [ "$side" = before ]; then tree=$before; else tree=$PWD; fi
        echo "=== $side round $round $(date +%T) load $(cut -d' ' -f1 /proc/loadavg)"
        (cd "$tree" && PYTHONPATH="$tree" "$py" -m provcfg bench --suite full "${cases[@]}" \
            --format json -o "$out/$side.$round.json") >"$out/$side.$round.log" 2>&1
    done
done
