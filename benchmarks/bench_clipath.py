"""CLI path detection: cached vs uncached CLIResolver.resolve vs shutil.which, in one run.

Run: ``.venv/bin/python benchmarks/bench_clipath.py``. A fake ``claude`` is put in
a temporary folder at the END of a PATH of 12 folders (the realistic worst case:
the real PATH plus an npm global bin), so detection walks the whole PATH.
Prints medians of repeated timings and the ratios the budget is stated in.
"""

from __future__ import annotations

import logging
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from provcfg._clipath import CLIResolver
from provcfg._metrics import Metrics


def median_ns(fn: Callable[[], object], number: int, repeat: int = 9) -> float:
    """Median over ``repeat`` runs of the mean time per call, in nanoseconds."""
    runs = []
    for _ in range(repeat):
        start = time.perf_counter_ns()
        for _ in range(number):
            fn()
        runs.append((time.perf_counter_ns() - start) / number)
    return statistics.median(runs)


def main() -> None:
    """Measure and print."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    with tempfile.TemporaryDirectory() as tmp:
        folders = [Path(tmp, f"bin{i}") for i in range(12)]
        for folder in folders:
            folder.mkdir()
        exe = folders[-1] / "claude"
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
        os.environ["PATH"] = os.pathsep.join(map(str, folders))
        fd = os.open(exe, getattr(os, "O_PATH", os.O_RDONLY))

        cached = CLIResolver(Metrics())

        def hit() -> object:
            return cached.resolve("claude", path=None, search_paths=(), install_hint="")

        def miss() -> object:
            r = CLIResolver(Metrics())
            try:
                return r.resolve("claude", path=None, search_paths=(), install_hint="")
            finally:
                r.close()

        hit()
        results = {
            "os.fstat (floor of the per-hit check)": median_ns(lambda: os.fstat(fd), 50_000),
            "os.stat of the path (alternative)": median_ns(lambda: os.stat(exe), 50_000),
            "cached resolve": median_ns(hit, 50_000),
            "uncached resolve (detection)": median_ns(miss, 500),
            "shutil.which": median_ns(lambda: shutil.which("claude"), 500),
        }
        os.close(fd)
        cached.close()
    for label, ns in results.items():
        print(f"{label:40s} {ns / 1000:9.2f} us")
    hit_ns = results["cached resolve"]
    print(f"{'uncached / cached':40s} {results['uncached resolve (detection)'] / hit_ns:9.1f} x")
    print(f"{'shutil.which / cached':40s} {results['shutil.which'] / hit_ns:9.1f} x")
    overhead = hit_ns - results["os.fstat (floor of the per-hit check)"]
    print(f"{'cached - fstat (Python overhead)':40s} {overhead / 1000:9.2f} us")


if __name__ == "__main__":
    main()
