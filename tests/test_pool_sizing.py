"""Pool defaults forgive what the SDK forgives, and an exhausted pool says how to size it.

A streamed answer holds its pooled connection for its whole length, so more concurrent
streams than connections queue for one. Under the defaults, waiting is bounded by each
request's own deadline, not by a short timer of its own: paced streams against the stub
(real loopback HTTP) all complete even when the later ones wait far longer than the old
10 s pool timeout. When a request's deadline passes while it is still queued, the error
says how many requests were queued and what to size.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from anthropic._constants import DEFAULT_CONNECTION_LIMITS

from provcfg._contract import Chunk
from provcfg._errors import ProviderError
from provcfg._manifest import PoolSpec
from provcfg.stub.server import StubServer
from tests.support_hostile_servers import TRANSPORTS, failure, outcome, pool_of, pooled

# 20 deltas 0.2 s apart: each stream holds its connection for about 4 s.
PACED = "stub-deltas-20-delay-0.2"


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    """The stub in its own thread (so it never waits for the client's loop)."""
    with StubServer().running_in_thread() as server:
        yield server


def test_pool_defaults_are_at_least_the_sdk_s_own() -> None:
    """max_connections and max_keepalive_connections are no lower than the anthropic SDK's
    DEFAULT_CONNECTION_LIMITS, and the pool wait has no separate short timer."""
    spec = PoolSpec()
    assert DEFAULT_CONNECTION_LIMITS.max_connections is not None
    assert DEFAULT_CONNECTION_LIMITS.max_keepalive_connections is not None
    assert spec.max_connections >= DEFAULT_CONNECTION_LIMITS.max_connections
    assert spec.max_keepalive_connections >= DEFAULT_CONNECTION_LIMITS.max_keepalive_connections
    assert spec.timeouts.pool is None


async def test_more_paced_streams_than_connections_all_complete(stub: StubServer) -> None:
    """Four paced streams (about 4 s each) on a one-connection pool with the default pool
    wait, per transport (both at once, each on its own pool): they run one after another,
    the last one queued about 12 s (beyond the old 10 s default), and every one completes
    with all its text."""

    async def four(transport: str) -> list[list[Chunk] | ProviderError]:
        pool = pool_of(max_connections=1, max_keepalive_connections=1)
        try:
            async with pooled(stub.base_url, transport, pool=pool, model=PACED) as provider:
                return await asyncio.gather(*(outcome(provider.stream("hi")) for _ in range(4)))
        finally:
            await pool.aclose()

    by_transport = await asyncio.gather(*(four(t) for t in TRANSPORTS))
    for results in by_transport:
        for result in results:
            assert not isinstance(result, ProviderError), result
            assert len([c for c in result if c.type == "text"]) == 20
            assert result[-1].type == "result"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_request_whose_deadline_passes_in_the_queue_says_how_to_size_the_pool(
    stub: StubServer, transport: str
) -> None:
    """One connection busy with a long stream, two requests queued behind it with a 1 s
    timeout: they fail with pool_exhausted (not a plain timeout), naming the pool's size,
    the requests queued and the setting to raise, and the pool_exhausted counter counts."""
    pool = pool_of(max_connections=1, max_keepalive_connections=1)
    try:
        async with pooled(stub.base_url, transport, pool=pool, model=PACED) as provider:
            holder = asyncio.create_task(outcome(provider.stream("long", timeout=30)))
            while not stub.requests:
                await asyncio.sleep(0.01)
            errors = await asyncio.gather(
                failure(provider.stream("a", timeout=1.0)),
                failure(provider.stream("b", timeout=1.0)),
            )
            holder.cancel()
            await asyncio.gather(holder, return_exceptions=True)
    finally:
        await pool.aclose()
    for error in errors:
        assert error.kind == "pool_exhausted", error
        assert "all 1 connections of the pool were busy" in error.message
        assert "before the request's deadline" in error.message
        assert "pools.hostile.max_connections" in error.message
        assert "at least the number of requests running at once" in error.message
    assert any("1 more request was queued" in e.message for e in errors)
    assert pool.metrics.snapshot()["counters"]["pool_exhausted"]["hostile"] == 2
