"""The stub itself: how fast it serves a long stream, and its share of the CPU meanwhile.

Not provcfg's code but the yardstick every streaming case stands on: if the stub
took most of the CPU, client differences would shrink. Three readers of a
10,000-delta stream (raw bytes, ``aiter_lines``, the SDK); the stub's CPU comes
from /proc/PID/stat. Informational: no subject, nothing gated.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from provcfg.bench._case import Case, CaseContext, Contender, Sample, TimeFunc
from provcfg.bench.cases._readers import KEY, Reader, raw_reader, sdk_reader, stub_process


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid``."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _lines_reader(base_url: str, http: Any) -> Reader:
    async def read(model: str, at_first: object) -> tuple[float, float, int]:
        body = {
            "model": model,
            "max_tokens": 5,
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        }
        start = time.perf_counter()
        count = 0
        async with http.stream(
            "POST", base_url + "/v1/messages", json=body, headers={"x-api-key": KEY}
        ) as response:
            async for line in response.aiter_lines():
                count += line == "event: content_block_delta"
        return 0.0, time.perf_counter() - start, count

    return read


def _run(read: Reader, pid: int, model: str) -> TimeFunc:
    async def run(loops: int) -> Sample:
        cpu0, own0, start = cpu_seconds(pid), time.process_time(), time.perf_counter()
        chunks = 0
        for _ in range(loops):
            chunks += (await read(model, None))[2]
        wall = time.perf_counter() - start
        stub_cpu, client_cpu = cpu_seconds(pid) - cpu0, time.process_time() - own0
        share = stub_cpu / (stub_cpu + client_cpu) if stub_cpu + client_cpu else float("nan")
        return Sample(wall / max(chunks, 1), {"stub_cpu_share": share}, wall / loops)

    return run


@asynccontextmanager
async def _build(ctx: CaseContext) -> AsyncIterator[Sequence[Contender]]:
    import httpx2

    model = f"stub-deltas-{500 if ctx.smoke else 10000}"
    async with stub_process() as stub:
        pid = stub.process.pid
        async with httpx2.AsyncClient(timeout=60) as http:
            url = stub.base_url
            yield [
                Contender(
                    "sdk",
                    "reference",
                    _run(sdk_reader(url, http), pid, model),
                    "the anthropic SDK reading the stream",
                ),
                Contender(
                    "raw-bytes", "floor", _run(raw_reader(url, http), pid, model), "raw bytes"
                ),
                Contender(
                    "aiter-lines",
                    "other",
                    _run(_lines_reader(url, http), pid, model),
                    "aiter_lines, a minimal SSE reader",
                ),
            ]


CASES = [
    Case(
        name="stub.serve",
        title="the stub serving 10,000 deltas: chunks/s and its CPU share (informational)",
        build=_build,
        sample_seconds=0.0,
        rate_unit="chunks/s",
        rounds={"quick": (3, 10), "full": (5, 20)},
        seconds={"quick": 5.0, "full": 20.0},
        suites=("full",),
    ),
]
