"""Constructing 10 ``anthropic.AsyncAnthropic`` clients: one shared Pool vs a pool each.

Run: ``.venv/bin/python benchmarks/bench_pools.py``. ``import anthropic`` happens
before timing (it costs ~0.7 s by itself and is paid once either way). Three
ways, in one run, each repeated and reported as the median total:

* shared, warm: the pool's client for this loop exists (the steady state of a
  Runtime: every provider after the first, and every provider after a reload);
* shared, cold: a fresh Pool and SSLContextCache, so the total includes building
  the one SSL context and the one client;
* a pool each: every provider gets its own Pool with its own SSL context (what
  ``AsyncAnthropic()`` without ``http_client`` amounts to).

Also prints ``Pool.client()`` on the hot path against a bare dict lookup.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from collections.abc import Awaitable, Callable

import structlog

from provcfg._manifest import PoolSpec
from provcfg._metrics import Metrics
from provcfg._pools import Pool, SSLContextCache

N_PROVIDERS = 10
REPEAT = 7
BASE_URL = "http://127.0.0.1:9"


async def median_seconds(fn: Callable[[], Awaitable[float]]) -> float:
    """Median of ``REPEAT`` runs of ``fn``, which returns its own measured seconds."""
    return statistics.median([await fn() for _ in range(REPEAT)])


async def main() -> None:
    """Measure and print."""
    import anthropic
    import httpx2

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    spec = PoolSpec()

    def construct(client: httpx2.AsyncClient) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(
            api_key="bench", base_url=BASE_URL, http_client=client, max_retries=0
        )

    warm_pool = Pool("shared", spec, ssl=SSLContextCache(), metrics=Metrics())
    warm_pool.client()
    construct(warm_pool.client())  # first-construction costs of the SDK itself, outside timing

    async def shared_warm() -> float:
        start = time.perf_counter()
        for _ in range(N_PROVIDERS):
            construct(warm_pool.client())
        return time.perf_counter() - start

    async def shared_cold() -> float:
        pool = Pool("shared", spec, ssl=SSLContextCache(), metrics=Metrics())
        start = time.perf_counter()
        for _ in range(N_PROVIDERS):
            construct(pool.client())
        elapsed = time.perf_counter() - start
        await pool.aclose()
        return elapsed

    async def pool_each() -> float:
        pools = []
        start = time.perf_counter()
        for i in range(N_PROVIDERS):
            pool = Pool(f"own{i}", spec, ssl=SSLContextCache(), metrics=Metrics())
            pools.append(pool)
            construct(pool.client())
        elapsed = time.perf_counter() - start
        for pool in pools:
            await pool.aclose()
        return elapsed

    results = {
        "shared pool, warm": await median_seconds(shared_warm),
        "shared pool, cold (1 SSL ctx + 1 client)": await median_seconds(shared_cold),
        "a pool each (10 SSL ctx + 10 clients)": await median_seconds(pool_each),
    }
    for label, seconds in results.items():
        print(f"{label:44s} {seconds * 1000:9.3f} ms total for {N_PROVIDERS}")
    warm = results["shared pool, warm"]
    cold = results["shared pool, cold (1 SSL ctx + 1 client)"]
    each = results["a pool each (10 SSL ctx + 10 clients)"]
    print(f"{'a pool each / shared warm':44s} {each / warm:9.1f} x")
    print(f"{'a pool each / shared cold':44s} {each / cold:9.1f} x")

    loop = asyncio.get_running_loop()
    table = {loop: object()}
    n = 200_000
    start = time.perf_counter_ns()
    for _ in range(n):
        warm_pool.client()
    client_ns = (time.perf_counter_ns() - start) / n
    start = time.perf_counter_ns()
    for _ in range(n):
        table.get(asyncio.get_running_loop())
    dict_ns = (time.perf_counter_ns() - start) / n
    print(f"{'Pool.client() hot path':44s} {client_ns:9.0f} ns")
    print(f"{'dict.get(get_running_loop()) floor':44s} {dict_ns:9.0f} ns")
    await warm_pool.aclose()


if __name__ == "__main__":
    asyncio.run(main())
