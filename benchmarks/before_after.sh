#!/usr/bin/env bash
# Before/after in one session: each benchmark script of benchmarks/, run at an older
# commit (REV, checked out in a temporary worktree) and at the working tree, alternated
# round by round so drift hits both alike. Each side runs its own copy of the script
# (module names changed between them) with this checkout's venv.
#
#   benchmarks/before_after.sh REV [ROUNDS] [SCRIPT...]
#
# Outputs: benchmarks/runs/before-after-REV/SCRIPT.{before,after}.ROUND.txt
# bench_runtime.py's load() loop is timed in blocks (lazy, then eager) on both sides:
# the older script alternated single loads, which charges the eager runtime's close
# to the lazy load timed next (see the script's comment).
set -euo pipefail
cd "$(dirname "$0")/.."
USAGE="benchmarks/before_after.sh REV [ROUNDS] [SCRIPT...]"
DEFAULTS=(bench_runtime bench_stream bench_pools bench_validate bench_reload bench_clipath)
# shellcheck source=benchmarks/_before_after_common.sh
. benchmarks/_before_after_common.sh
scripts=("${items[@]}")
"$py" - "$before/benchmarks/bench_runtime.py" <<'PY'
import sys
path = sys.argv[1]
text = open(path).read()
old = """    for _ in range(25):
        for path, out in ((lazy, lazy_s), (eager, eager_s)):
            start = time.perf_counter()
            r = provcfg.load(path)
            out.append(time.perf_counter() - start)
            await r.aclose()"""
new = """    for _ in range(5):
        for path, out in ((lazy, lazy_s), (eager, eager_s)):
            for _ in range(5):
                start = time.perf_counter()
                r = provcfg.load(path)
                out.append(time.perf_counter() - start)
                await r.aclose()"""
open(path, "w").write(text.replace(old, new))
PY
for round in $(seq 1 "$rounds"); do
    for b in "${scripts[@]}"; do
        for side in before after; do
            if [ "$side" = before ]; then dir=$before; else dir=$PWD; fi
            echo "== $b $side round $round $(date +%T) load $(cut -d' ' -f1 /proc/loadavg)"
            (cd "$dir" && PYTHONPATH="$dir" timeout 900 "$py" "benchmarks/$b.py") \
                > "$out/$b.$side.$round.txt" 2>&1 || echo "   (exit $?: see the file)"
        done
    done
done
echo "outputs in $out"
