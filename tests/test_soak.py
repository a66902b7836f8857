"""The short soak, run by CI: benchmarks/soak.py with 600 requests and 60 reloads.

The long version (10,000 requests, 1,000 reloads; figures in docs/reliability.md) is
the same script with its defaults, run by hand: ``.venv/bin/python benchmarks/soak.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.soak
@pytest.mark.timeout(600)
def test_short_soak_loses_nothing_leaks_nothing_and_shows_no_secret() -> None:
    """Streamed requests over both transports and a fake CLI, under drops, 429/529,
    hangs, CLI crashes, a tripping breaker, fallbacks and good/bad/identical reloads,
    all end in an answer or a typed ProviderError, with descriptors, threads, child
    processes and RSS back where they started and no planted secret in any output."""
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "soak.py"),
            "--requests",
            "600",
            "--reloads",
            "60",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=550,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )
    assert done.stdout.strip(), done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    failed = [name for name, ok in report["checks"].items() if not ok]
    assert failed == [], json.dumps(report, indent=1)
    assert done.returncode == 0
    assert report["ok"] + sum(report["errors"].values()) == 600
    assert set(report["errors"]) <= {
        "overloaded",
        "rate_limit",
        "stream_incomplete",
        "network",
        "timeout",
        "server_error",
        "cli_failed",
    }
    assert report["cli_spawned"] > 0 and report["answered_by"].get("cli", 0) > 0
    assert report["errors"].get("cli_failed", 0) > 0  # crashes reached callers, scrubbed
    assert report["answered_by"].get("sdk", 0) > 0 and report["answered_by"].get("fast", 0) > 0
