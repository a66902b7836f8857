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
rev=${1:?usage: benchmarks/before_after_bench.sh REV [ROUNDS] [CASE-PATTERN...]}
rounds=${2:-2}
shift $(( $# >= 2 ? 2 : 1 ))
patterns=("$@")
if [ ${#patterns[@]} -eq 0 ]; then
    patterns=('stream.*' 'forwarding.*' concurrency.flat-1 concurrency.flat-10)
fi
cases=()
for p in "${patterns[@]}"; do cases+=(--case "$p"); done
py="$PWD/.venv/bin/python"
short=$(git rev-parse --short "$rev")
out="$PWD/benchmarks/runs/before-after-$short"
mkdir -p "$out"
before=$(mktemp -d)
trap 'git worktree remove --force "$before" >/dev/null 2>&1 || true' EXIT
git worktree add --detach -f "$before" "$rev" >/dev/null
for round in $(seq 1 "$rounds"); do
    for side in before after; do
        if [ "$side" = before ]; then tree=$before; else tree=$PWD; fi
        echo "=== $side round $round $(date +%T) load $(cut -d' ' -f1 /proc/loadavg)"
        (cd "$tree" && PYTHONPATH="$tree" "$py" -m provcfg bench --suite full "${cases[@]}" \
            --format json -o "$out/$side.$round.json") >"$out/$side.$round.log" 2>&1
    done
done
