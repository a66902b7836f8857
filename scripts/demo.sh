#!/usr/bin/env bash
# The main job, offline: install, validate the example manifest, start the embedded
# stub server on the `local` provider's loopback address, stream one answer, print timings.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh         # a plain install: the example manifest needs no extra
.venv/bin/provcfg validate providers.yaml
# Three runs: the first pays the one-time costs (client, TLS context), the others show the warm path.
.venv/bin/provcfg run --stub --timings --repeat 3 -p local "Write a haiku about configuration files"
