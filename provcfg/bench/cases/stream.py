"""Streaming against the stub: first chunk and chunks/s, provcfg's two transports vs the SDK.

Five readers of the same stub stream (the stub in its own process): the SDK used
directly (the reference), a second identical SDK reader (the A/A control: how far two
identical readers drift apart in this run), provcfg ``transport: sdk`` and ``transport:
fast``, and raw httpx2 ``aiter_bytes()`` (the floor).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

from provcfg.bench._case import Budget, Case, CaseContext, Contender, Role, Sample, TimeFunc
from provcfg.bench.cases._readers import Reader, Readers, readers, stub_process

SHORT = "stub-text"
ROLES: tuple[tuple[str, Role, str, str], ...] = (
    ("sdk", "reference", "sdk", "anthropic SDK used directly (messages.create(stream=True))"),
    ("sdk-again", "control", "sdk_again", "a second identical SDK reader (A/A control)"),
    ("provcfg-sdk", "subject", "provcfg_sdk", "provcfg anthropic-api, transport: sdk"),
    ("provcfg-fast", "subject", "provcfg_fast", "provcfg anthropic-api, transport: fast"),
    ("raw-httpx2", "floor", "raw", "raw httpx2 aiter_bytes(), counting deltas"),
)


def first_chunk_run(read: Reader, spin: Callable[[], None] | None) -> TimeFunc:
    """Seconds to the first text chunk of a short reply (the spin runs at that chunk)."""

    async def run(loops: int) -> Sample:
        first = total = 0.0
        for _ in range(loops):
            f, t, _n = await read(SHORT, spin)
            first += f
            total += t
        return Sample(first / loops, {"total": total / loops}, total / loops)

    return run


def throughput_run(read: Reader, spin: Callable[[], None] | None, model: str) -> TimeFunc:
    """This process's CPU seconds per text chunk over whole long streams; wall chunks/s too.

    The client saturates its event loop, so its chunks/s is 1 / CPU per chunk; CPU time
    is not inflated by other processes on a shared machine (the stub runs in its own).
    The spin runs inside each stream.
    """

    async def run(loops: int) -> Sample:
        cpu = wall = firsts = 0.0
        chunks = 0
        for _ in range(loops):
            start, cpu0 = time.perf_counter(), time.process_time()
            f, _t, n = await read(model, None)
            if spin is not None:
                spin()
            cpu += time.process_time() - cpu0
            wall += time.perf_counter() - start
            chunks += n
            firsts += f
        extra = {
            "first_chunk": firsts / loops,
            "chunks": chunks / loops,
            "chunks_per_s": chunks / wall if wall else float("nan"),
        }
        return Sample(cpu / max(chunks, 1), extra, cpu / loops)

    return run


def contenders(
    r: Readers, ctx: CaseContext, make: Callable[[Reader, Callable[[], None] | None], TimeFunc]
) -> list[Contender]:
    """The five readers as contenders, each timed by ``make``."""
    return [
        Contender(name, role, make(getattr(r, attr), ctx.slowed(role)), label)
        for name, role, attr, label in ROLES
    ]


@asynccontextmanager
async def _first(ctx: CaseContext) -> AsyncIterator[Sequence[Contender]]:
    async with stub_process() as stub, readers(stub.base_url) as r:
        yield contenders(r, ctx, first_chunk_run)


def _deltas(ctx: CaseContext) -> int:
    return 200 if ctx.smoke else 2000


@asynccontextmanager
async def _rate(ctx: CaseContext) -> AsyncIterator[Sequence[Contender]]:
    model = f"stub-deltas-{_deltas(ctx)}"
    async with stub_process() as stub, readers(stub.base_url) as r:
        yield contenders(r, ctx, lambda read, spin: throughput_run(read, spin, model))


CASES = [
    Case(
        name="stream.first-chunk",
        title="first text chunk of a short reply: provcfg transports vs the SDK directly",
        build=_first,
        threshold=0.10,  # calibrated: 15/15 of +15 %; cross-session drift <= +1 %
        sample_seconds=0.003,
        repeats=3,
        rounds={"quick": (10, 60), "full": (60, 400)},
        seconds={"quick": 8.0, "full": 60.0},
        budgets=(
            Budget("provcfg-sdk", "<= 1.03x the SDK", max_ratio=1.03),
            Budget("provcfg-fast", "<= 0.75x the SDK", max_ratio=0.75),
        ),
    ),
    Case(
        name="stream.throughput",
        title="chunks per CPU-second of a 2,000-delta stream: provcfg transports vs the SDK",
        build=_rate,
        clock="cpu",
        sample_seconds=0.0,
        rate_unit="chunks/CPU-s",
        rounds={"quick": (6, 30), "full": (20, 100)},
        seconds={"quick": 6.0, "full": 60.0},
        budgets=(
            Budget("provcfg-sdk", ">= 0.97x the SDK's chunks/s", min_rate_ratio=0.97),
            Budget("provcfg-fast", ">= 1.8x the SDK's chunks/s", min_rate_ratio=1.8),
        ),
    ),
]
