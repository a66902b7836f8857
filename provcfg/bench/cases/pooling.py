"""Per-request latency with a pooled (keep-alive) connection vs a new connection per request.

The same provcfg provider (``transport: fast``) on two pools: one keeping connections
alive (the default), one with ``max_keepalive_connections: 0`` (every request opens a
new TCP connection), plus a new HTTP client per request (what code without a shared
pool does: a new SSL context and connection each time). Short replies, so the
connection set-up is a visible part of each request. The stub serves plain HTTP on
loopback: against a TLS API the gain of pooling is larger (a TLS handshake per new
connection).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from provcfg.bench._case import Budget, Case, CaseContext, Contender, Sample, TimeFunc
from provcfg.bench.cases._fixtures import MODEL, scratch, write
from provcfg.bench.cases._readers import KEY, Reader, provider_reader, stub_process


def _manifest(base_url: str) -> str:
    lines = [
        "version: 1",
        "pools:",
        "  pooled: {max_connections: 10, max_keepalive_connections: 10}",
        "  unpooled: {max_connections: 10, max_keepalive_connections: 0}",
        "providers:",
    ]
    lines.extend(
        f"  {pool}: {{kind: anthropic-api, base_url: '{base_url}', api_key: {KEY}, "
        f"pool: {pool}, transport: fast, max_retries: 0, model: {MODEL}}}"
        for pool in ("pooled", "unpooled")
    )
    return "\n".join(lines) + "\n"


def _run(read: Reader, spin: object) -> TimeFunc:
    async def run(loops: int) -> Sample:
        elapsed = 0.0
        for _ in range(loops):
            start = time.perf_counter()
            await read("stub-text", None)
            if spin is not None:
                spin()  # type: ignore[operator]
            elapsed += time.perf_counter() - start
        return Sample(elapsed / loops)

    return run


@asynccontextmanager
async def _build(ctx: CaseContext) -> AsyncIterator[Sequence[Contender]]:
    import provcfg

    async with stub_process() as stub:
        with scratch() as folder:
            base = write(folder, "providers.yaml", _manifest(stub.base_url))
            one_off = base
            rt = provcfg.load(base)

            async def client_per_request(model: str, at_first: object) -> tuple[float, float, int]:
                fresh = provcfg.load(one_off)
                try:
                    return await provider_reader(fresh.provider("pooled"))(model, None)
                finally:
                    await fresh.aclose()

            try:
                yield [
                    Contender(
                        "unpooled",
                        "reference",
                        _run(provider_reader(rt.provider("unpooled")), None),
                        "a new connection per request (max_keepalive_connections: 0)",
                    ),
                    Contender(
                        "pooled",
                        "subject",
                        _run(provider_reader(rt.provider("pooled")), ctx.slowed("subject")),
                        "keep-alive pool (the default)",
                    ),
                    Contender(
                        "client-per-request",
                        "other",
                        _run(client_per_request, None),
                        "a new runtime, pool and client per request",
                    ),
                ]
            finally:
                await rt.aclose()


CASES = [
    Case(
        name="pool.request-latency",
        title="per-request latency, short reply: pooled keep-alive vs a new connection each",
        build=_build,
        threshold=0.25,  # at 10 %: 15/15 of +15 %, but +6 % cross-session drift
        sample_seconds=0.005,
        repeats=3,
        rounds={"quick": (10, 60), "full": (40, 300)},
        seconds={"quick": 5.0, "full": 30.0},
        budgets=(Budget("pooled", ">= 20 % faster than a new connection each", max_ratio=0.8),),
    ),
]
