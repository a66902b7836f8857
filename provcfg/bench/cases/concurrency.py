"""Concurrency scaling: 1, 10, 100 and 400 streams at once, flat out and paced like a real API.

Every client saturates one event loop from a single stream: flat out, aggregate
chunks/s stays about flat from 1 to 400 streams, so first-chunk latency grows
linearly with the number of streams. Paced streams (deltas 20 ms apart, as a real
API sends them) leave the loop idle most of the time; there the figure that matters
is CPU seconds per chunk. The gated figure is the client's CPU per chunk (its
aggregate chunks/s, flat out, is the inverse: one saturated loop), which other
processes on a shared machine do not inflate; each case also reports wall aggregate
chunks/s, first-chunk p50/p99 and the process RSS while the streams are open.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

from provcfg.bench._case import Case, CaseContext, Contender, Role, Sample, TimeFunc
from provcfg.bench._stats import quantile
from provcfg.bench.cases._readers import Reader, readers, stub_process

NOTE = (
    "every client saturates one event loop from a single stream: aggregate chunks/s is "
    "about flat from 1 to 400 streams, so first-chunk latency grows linearly with them"
)
_PAGE = os.sysconf("SC_PAGE_SIZE")
_CLIENTS: tuple[tuple[str, Role, str], ...] = (
    ("sdk", "reference", "sdk"),
    ("provcfg-sdk", "subject", "provcfg_sdk"),
    ("provcfg-fast", "subject", "provcfg_fast"),
)


def rss_bytes() -> int:
    """This process's resident set size now (from /proc/self/statm)."""
    with open("/proc/self/statm", "rb") as handle:
        return int(handle.read().split()[1]) * _PAGE


def _run(
    read: Reader, streams: int, model: str, spin: Callable[[], None] | None, cpu: bool
) -> TimeFunc:
    async def run(loops: int) -> Sample:
        peak = 0
        firsts: list[float] = []
        chunks = 0
        elapsed = cpu_used = 0.0
        for _ in range(loops):
            done = asyncio.Event()

            async def watch(done: asyncio.Event = done) -> None:
                nonlocal peak
                while not done.is_set():
                    peak = max(peak, rss_bytes())
                    await asyncio.sleep(0.02)

            watcher = asyncio.create_task(watch())
            start, cpu0 = time.perf_counter(), time.process_time()
            results = await asyncio.gather(*(read(model, None) for _ in range(streams)))
            if spin is not None:
                spin()
            elapsed += time.perf_counter() - start
            cpu_used += time.process_time() - cpu0
            done.set()
            await watcher
            firsts.extend(r[0] for r in results)
            chunks += sum(r[2] for r in results)
        primary = (cpu_used if cpu else elapsed) / max(chunks, 1)
        extra = {
            "chunks_per_s": chunks / elapsed if elapsed else float("nan"),
            "first_chunk_p50": quantile(firsts, 0.5),
            "first_chunk_p99": quantile(firsts, 0.99),
            "rss_bytes": float(peak),
            "cpu_per_chunk": cpu_used / max(chunks, 1),
        }
        return Sample(primary, extra, (cpu_used if cpu else elapsed) / loops)

    return run


def _case(streams: int, paced: bool) -> Case:
    def deltas(ctx: CaseContext) -> int:
        if paced:
            return 20 if ctx.smoke else 600
        return 20 if ctx.smoke else 200

    @asynccontextmanager
    async def build(ctx: CaseContext) -> AsyncIterator[Sequence[Contender]]:
        model = f"stub-deltas-{deltas(ctx)}"
        if paced:
            model += "-delay-0.02"
        async with stub_process() as stub, readers(stub.base_url, connections=streams + 10) as r:
            yield [
                Contender(
                    name,
                    role,
                    _run(getattr(r, attr), streams, model, ctx.slowed(role), cpu=True),
                    f"{streams} concurrent streams" + (", deltas 20 ms apart" if paced else ""),
                )
                for name, role, attr in _CLIENTS
            ]

    mode = "paced" if paced else "flat"
    what = "client CPU per chunk"
    if paced:
        rounds = {"quick": (3, 3), "full": (3, 6)}
        seconds = {"quick": 0.0, "full": 60.0}
    else:
        rounds = {"quick": (4, 12), "full": (8, 40)}
        seconds = {"quick": 4.0, "full": 20.0}
    return Case(
        name=f"concurrency.{mode}-{streams}",
        title=f"{streams} concurrent streams, {'600 deltas 20 ms apart' if paced else 'flat out'}:"
        f" {what} vs the SDK",
        build=build,
        sample_seconds=0.0,
        rate_unit="chunks/CPU-s",
        clock="cpu",
        rounds=rounds,
        seconds=seconds,
        warmup=1 if paced else 2,
        suites=("quick", "full") if not paced and streams in (1, 10) else ("full",),
        # Calibrated (docs/performance.md, calibration-sizer*): one stream caught 11 of
        # 15 slowdowns of +15 % at 10 %, 15 of 15 of +38 % at 25 %. Ten streams caught
        # 15 of 15 at 10 % in one session, but their ratio jumps between two levels
        # about 7 % apart from run to run (13 of 15 of +38 % at 25 % against a baseline
        # run on the upper one) and drifted +12 % between sessions: 40 % (15 of 15 of
        # +60 %). 100 and 400 streams (full suite only) are not calibrated: 40 %.
        threshold=0.25 if streams == 1 else 0.40,
        note=NOTE + "; gated on client CPU per chunk (1 / chunks per CPU-second)",
    )


CASES = [_case(n, paced) for paced in (False, True) for n in (1, 10, 100, 400)]
