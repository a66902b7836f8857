"""Benchmark `provcfg doctor` on the example manifest with every remote part down.

Run: .venv/bin/python benchmarks/bench_doctor.py [--runs N]

Budget (docs/performance.md, "doctor"): the whole process, for the example manifest,
under 3 s even when every remote part is down. "Down" here is the worst case doctor
can meet, all on loopback: no agent CLI on PATH (or one that hangs on --version), the
`api` provider's base_url blackholed (a TCP connect that never completes, so the check
runs into --timeout, 2 s by default) and nothing listening on the `local` provider's
port. Each case is reported with `provcfg validate` of the same file, measured in the
same run, as the floor (interpreter start and imports), because this machine is shared.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "providers.yaml"
SCRIPT = Path(sys.executable).with_name("provcfg")
BUDGET_S = 3.0


@contextlib.contextmanager
def down_ports() -> Iterator[tuple[int, int]]:
    """(blackholed, refused): a full listen queue, and a bound port nobody listens on."""
    with contextlib.ExitStack() as stack:
        hole = stack.enter_context(socket.socket())
        hole.bind(("127.0.0.1", 0))
        hole.listen(0)
        port = hole.getsockname()[1]
        for _ in range(2):
            filler = stack.enter_context(socket.socket())
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
        time.sleep(0.1)
        refused = stack.enter_context(socket.socket())
        refused.bind(("127.0.0.1", 0))
        yield port, refused.getsockname()[1]


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, capture_output=True, check=False, timeout=60)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="processes per case (median)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home, down_ports() as (hole, refused):
        hanging = Path(home) / "bin"
        hanging.mkdir()
        claude = hanging / "claude"
        claude.write_text('#!/bin/sh\n[ "$1" = "--version" ] && exec sleep 600\n')
        claude.chmod(0o755)
        base = {
            "PATH": "/usr/bin:/bin",
            "HOME": home,
            "LANG": "C.UTF-8",
            "PROVCFG_PROVIDERS__API__BASE_URL": f"https://127.0.0.1:{hole}",
            "PROVCFG_PROVIDERS__LOCAL__BASE_URL": f"http://127.0.0.1:{refused}",
        }
        cases = {
            "validate (floor)": ([str(SCRIPT), "validate", str(EXAMPLE)], base),
            "doctor, no CLI installed": ([str(SCRIPT), "doctor", str(EXAMPLE)], base),
            "doctor, claude hangs on --version": (
                [str(SCRIPT), "doctor", str(EXAMPLE)],
                {**base, "PATH": f"{hanging}:/usr/bin:/bin"},
            ),
        }
        results: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.runs):  # interleaved, so load changes hit every case alike
            for name, (argv, env) in cases.items():
                results[name].append(timed(argv, env))
    load = os.getloadavg()[0]
    print(f"{args.runs} runs per case, interleaved; load average {load:.1f}")
    floor = statistics.median(results["validate (floor)"])
    for name, times in results.items():
        median = statistics.median(times)
        verdict = (
            ""
            if name.startswith("validate")
            else (f"  budget {BUDGET_S:.0f} s: {'met' if max(times) < BUDGET_S else 'MISSED'}")
        )
        print(
            f"{name:<36} median {median:6.3f} s  max {max(times):6.3f} s  "
            f"floor+{median - floor:6.3f} s{verdict}"
        )


if __name__ == "__main__":
    main()
