"""Save-to-live latency against *when* a save lands in the watcher's step.

watchfiles checks for changes every ``step`` from the moment it goes back to waiting
(after reporting the previous change) and returns one step after the first check
that sees a change, so a save's wait is a saw-tooth of the moment it lands: between
one and two steps. This script makes saves a fixed pause after the previous reload
went live, for several pauses, and prints the latency from the save to the new
generation live (wall clock), with ``ReloadEvent.build_s`` (provcfg's own share)
beside it. It is why ``provcfg bench``'s ``reload.save-to-live`` times each save half
a step after a watcher check (docs/performance.md, Hot reload).

Usage (from the repository root)::

    .venv/bin/python benchmarks/reload_phase.py [--saves 40] [PAUSE_MS ...]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import provcfg
from provcfg.bench.cases.reload import _Watched

DEFAULT_PAUSES_MS = (5, 10, 15, 20, 25, 30, 40, 45, 50)


async def measure(pauses_ms: list[float], saves: int) -> list[tuple[float, list[float], float]]:
    """Per pause: (pause ms, sorted latencies ms, median build ms)."""
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        target = _Watched(Path(folder), "phase")
        async with provcfg.watch(target.path, environ={}) as live:
            await asyncio.sleep(0.2)
            for pause in pauses_ms:
                latencies, builds = [], []
                for _ in range(saves):
                    await asyncio.sleep(pause / 1000)
                    waiting = asyncio.ensure_future(live.reload_event(timeout=10))
                    await asyncio.sleep(0)
                    start = time.perf_counter()
                    target.next_save()
                    event = await waiting
                    latencies.append((time.perf_counter() - start) * 1000)
                    builds.append((event.build_s or 0.0) * 1000)
                rows.append((pause, sorted(latencies), statistics.median(builds)))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(
        description="save-to-live latency against when a save lands in the watcher's step"
    )
    parser.add_argument("pauses", nargs="*", type=float, help="pauses in ms after each reload")
    parser.add_argument("--saves", type=int, default=40, help="saves per pause (default 40)")
    args = parser.parse_args()
    pauses = args.pauses or list(DEFAULT_PAUSES_MS)
    rows = asyncio.run(measure(pauses, max(2, args.saves)))
    out = sys.stdout
    out.write("pause after the last reload | save -> live median | p10-p90 | build (median)\n")
    out.write("---|---|---|---\n")
    for pause, lat, build in rows:
        p10, p90 = lat[len(lat) // 10], lat[(len(lat) * 9) // 10]
        median = statistics.median(lat)
        out.write(f"{pause:g} ms | {median:.1f} ms | {p10:.1f}-{p90:.1f} ms | {build:.2f} ms\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
