#!/usr/bin/env bash
# Create .venv and install provcfg into it (editable). Sourced by demo.sh and test.sh.
# Usage: scripts/bootstrap.sh [EXTRAS]   e.g. "dev"
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
stamp=".venv/.provcfg-installed${extras:+-$extras}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
    if [ -n "$extras" ]; then
        .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[$extras]"
    else
        .venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
    fi
    touch "$stamp"
fi
