# Sourced by before_after.sh and before_after_bench.sh: their shared set-up. Expects
# USAGE and DEFAULTS (an array) set, and the script's arguments "REV [ROUNDS] [ITEM...]"
# in "$@". Sets rev, rounds, items (the ITEMs, or DEFAULTS), py (this checkout's venv
# Python), out (benchmarks/runs/before-after-SHORTREV, created) and before (REV checked
# out in a temporary worktree, removed on exit).
rev=${1:?usage: $USAGE}
rounds=${2:-2}
shift $(( $# >= 2 ? 2 : 1 ))
items=("$@")
if [ ${#items[@]} -eq 0 ]; then
    items=("${DEFAULTS[@]}")
fi
py="$PWD/.venv/bin/python"
out="$PWD/benchmarks/runs/before-after-$(git rev-parse --short "$rev")"
mkdir -p "$out"
before=$(mktemp -d)
trap 'git worktree remove --force "$before" >/dev/null 2>&1 || true' EXIT
git worktree add --detach -f "$before" "$rev" >/dev/null
