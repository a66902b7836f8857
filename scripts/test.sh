#!/usr/bin/env bash
# The whole test suite from a fresh machine: system services, the venv with the dev
# extra, the pinned agent CLIs (project-local), then lint, types and pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/system-deps.sh
scripts/bootstrap.sh dev
if [ -x scripts/install-clis.sh ]; then
    scripts/install-clis.sh
fi
.venv/bin/ruff check provcfg tests benchmarks
.venv/bin/ruff format --check provcfg tests benchmarks
.venv/bin/mypy
.venv/bin/lint-imports --no-cache   # the layers of docs/architecture.md
.venv/bin/python -m pytest -p no:cacheprovider "$@"
# The performance gate: the quick suite against the committed baseline (ratios measured
# side by side in this run; exit 1 only on a regression beyond a case's threshold with
# confidence). docs/performance.md, "How provcfg bench measures".
.venv/bin/provcfg bench --suite quick --compare benchmarks/baseline.json --gate 10%
