"""Many concurrent streams paced like a real API: which pool settings lose requests?

A streamed answer holds its pooled connection for its whole length, so N concurrent
streams need N connections or they queue. This runs N streams at once (default 400),
each 600 deltas 20 ms apart (about 12 s, the pace of a real model), against the stub in
its own process, through:

    old-example    provcfg, fast transport, the pool the example manifest used to have:
                   max_connections 100, keep-alive 20, timeouts.pool 10s
    100-deadline   provcfg, fast transport, 100 connections, the pool wait bounded by the
                   request's deadline (the new default wait)
    defaults       provcfg, fast transport, the new PoolSpec() defaults (1000 connections)
    sdk-direct     the anthropic SDK with its own default client (DEFAULT_CONNECTION_LIMITS)

and reports per reader: completed / failed (by error kind), wall time, first-chunk and
total seconds (median and 95th percentile), and the kernel's listen-overflow count over
the run (TcpExt ListenOverflows: connections the stub's listen queue dropped; machine-
wide, so other work on the machine can add to it).

    .venv/bin/python benchmarks/bench_pool_load.py [--n 400] [--deltas 600] [--delay 0.02]
        [--readers old-example,100-deadline,defaults,sdk-direct] [--transport fast|sdk]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import logging
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anthropic
import structlog

from provcfg._errors import ProviderError
from provcfg._manifest import AnthropicApiSpec, PoolSpec, TimeoutsSpec
from provcfg._metrics import Metrics
from provcfg._pools import Pool, SSLContextCache
from provcfg._providers.anthropic_api import AnthropicApiProvider
from provcfg.stub import StubProcess
from provcfg.testing import make_context

KEY = "sk-bench"
Outcome = tuple[str, float | None, float]  # (ok or error kind, first chunk s, total s)
Reader = Callable[[str], Awaitable[Outcome]]

POOLS: dict[str, PoolSpec] = {
    "old-example": PoolSpec(
        max_connections=100,
        max_keepalive_connections=20,
        timeouts=TimeoutsSpec(connect=5, read=600, write=30, pool=10),
    ),
    "100-deadline": PoolSpec(max_connections=100, max_keepalive_connections=20),
    "defaults": PoolSpec(),
}


def listen_overflows() -> int | None:
    """The kernel's TcpExt ListenOverflows counter (machine-wide), or None if unreadable."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return None
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:], strict=False))
            return int(table.get("ListenOverflows", 0))
    return None


def provcfg_reader(base_url: str, spec: PoolSpec, transport: str) -> tuple[Reader, Pool]:
    pool = Pool("bench", spec, ssl=SSLContextCache(), metrics=Metrics())
    provider_spec = AnthropicApiSpec.model_validate(
        {"kind": "anthropic-api", "base_url": base_url, "api_key": KEY, "transport": transport,
         "max_retries": 0, "max_tokens": 1024}
    )  # fmt: skip
    provider = AnthropicApiProvider(make_context(provider_spec, name="bench", pool=pool))

    async def read(model: str) -> Outcome:
        start = time.perf_counter()
        first: float | None = None
        try:
            async for chunk in provider.stream("hi", model=model):
                if first is None and chunk.type == "text":
                    first = time.perf_counter() - start
        except ProviderError as error:
            return error.kind, first, time.perf_counter() - start
        return "ok", first, time.perf_counter() - start

    return read, pool


def sdk_reader(base_url: str) -> tuple[Reader, anthropic.AsyncAnthropic]:
    client = anthropic.AsyncAnthropic(api_key=KEY, base_url=base_url, max_retries=0)

    async def read(model: str) -> Outcome:
        start = time.perf_counter()
        first: float | None = None
        try:
            stream = await client.messages.create(
                model=model,
                max_tokens=1024,
                messages=[{"role": "user", "content": "hi"}],
                stream=True,
            )
            async for event in stream:
                if first is None and event.type == "content_block_delta":
                    first = time.perf_counter() - start
        except anthropic.APIError as error:
            return type(error).__name__, first, time.perf_counter() - start
        return "ok", first, time.perf_counter() - start

    return read, client


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def run_reader(name: str, read: Reader, n: int, model: str) -> dict[str, Any]:
    overflows = listen_overflows()
    start = time.perf_counter()
    outcomes = await asyncio.gather(*(read(model) for _ in range(n)))
    wall = time.perf_counter() - start
    after = listen_overflows()
    kinds = collections.Counter(kind for kind, _, _ in outcomes)
    firsts = [f for kind, f, _ in outcomes if kind == "ok" and f is not None]
    totals = [t for kind, _, t in outcomes if kind == "ok"]
    return {
        "reader": name,
        "ok": kinds.pop("ok", 0),
        "failed": dict(kinds),
        "wall_s": wall,
        "first_p50": statistics.median(firsts) if firsts else float("nan"),
        "first_p95": _pct(firsts, 0.95),
        "total_p50": statistics.median(totals) if totals else float("nan"),
        "total_p95": _pct(totals, 0.95),
        "listen_overflows": None if overflows is None or after is None else after - overflows,
    }


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--deltas", type=int, default=600)
    parser.add_argument("--delay", type=float, default=0.02)
    parser.add_argument("--readers", default="old-example,100-deadline,defaults,sdk-direct")
    parser.add_argument("--transport", choices=("fast", "sdk"), default="fast")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    model = f"stub-deltas-{args.deltas}-delay-{args.delay:g}"
    stub_args = []
    try:  # the stub's --backlog (a larger listen queue), where this version has it
        from provcfg.stub.server import DEFAULT_BACKLOG  # type: ignore[attr-defined]  # noqa: F401

        stub_args = ["--backlog", "4096"]
    except ImportError:
        pass
    print(
        f"{args.n} concurrent streams, {args.deltas} deltas {args.delay:g}s apart "
        f"(~{args.deltas * args.delay:.0f}s each), transport {args.transport}, "
        f"stub backlog {'4096' if stub_args else 'asyncio default (100)'}"
    )
    rows = []
    with StubProcess(stub_args) as stub:
        for name in args.readers.split(","):
            if name == "sdk-direct":
                read, client = sdk_reader(stub.base_url)
                rows.append(await run_reader(name, read, args.n, model))
                await client.close()
                continue
            read, pool = provcfg_reader(stub.base_url, POOLS[name], args.transport)
            rows.append(await run_reader(name, read, args.n, model))
            await pool.aclose()
    print(
        f"{'reader':14} {'ok':>5} {'failed':28} {'wall s':>7} {'first p50/p95 s':>16} "
        f"{'total p50/p95 s':>16} {'overflows':>9}"
    )
    for row in rows:
        failed = ", ".join(f"{k} {v}" for k, v in row["failed"].items()) or "-"
        print(
            f"{row['reader']:14} {row['ok']:5d} {failed:28} {row['wall_s']:7.1f} "
            f"{row['first_p50']:7.2f}/{row['first_p95']:<8.2f} "
            f"{row['total_p50']:7.2f}/{row['total_p95']:<8.2f} {row['listen_overflows']!s:>9}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
