"""How fast the stub serves a long stream, and how much of the CPU it takes while doing so.

The stub runs in its own process (``python -m provcfg.stub``); the client reads a
10,000-delta Messages stream several times three ways: raw bytes, ``aiter_lines``
(a minimal SSE reader), and the anthropic SDK's ``messages.create(stream=True)``.
The stub's CPU time comes from /proc/PID/stat, so its share is measured, not guessed.

    .venv/bin/python benchmarks/bench_stub.py [--deltas 10000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Awaitable, Callable

import anthropic
import httpx2

from provcfg.stub import StubProcess

BODY = {
    "model": "m",
    "max_tokens": 5,
    "messages": [{"role": "user", "content": "hi"}],
    "stream": True,
}


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _raw(http: httpx2.AsyncClient, url: str) -> int:
    marker = b"event: content_block_delta"
    count, pending = 0, bytearray()
    async with http.stream("POST", url + "/v1/messages", json=BODY) as response:
        async for chunk in response.aiter_raw():
            pending += chunk
            end = pending.rfind(b"\n\n")  # count whole events only: a read may split one
            if end >= 0:
                count += pending.count(marker, 0, end)
                del pending[:end]
    return count + pending.count(marker)


async def _lines(http: httpx2.AsyncClient, url: str) -> int:
    count = 0
    async with http.stream("POST", url + "/v1/messages", json=BODY) as response:
        async for line in response.aiter_lines():
            count += line == "event: content_block_delta"
    return count


def _sdk_reader(http: httpx2.AsyncClient, url: str) -> Callable[[], Awaitable[int]]:
    client = anthropic.AsyncAnthropic(base_url=url, api_key="k", http_client=http, max_retries=0)

    async def read() -> int:
        stream = await client.messages.create(**BODY)  # type: ignore[call-overload]
        return sum([event.type == "content_block_delta" async for event in stream])

    return read


async def _measure(
    name: str, pid: int, deltas: int, rounds: int, read: Callable[[], Awaitable[int]]
) -> None:
    assert await read() == deltas  # warm up: connection, imports, caches
    cpu0, own0, wall0 = _cpu_seconds(pid), time.process_time(), time.perf_counter()
    for _ in range(rounds):
        assert await read() == deltas
    wall = time.perf_counter() - wall0
    stub_cpu, client_cpu = _cpu_seconds(pid) - cpu0, time.process_time() - own0
    rate = deltas * rounds / wall
    print(
        f"{name:>14}: {rate:>12,.0f} deltas/s   stub CPU {stub_cpu / wall:5.1%} of wall, "
        f"{stub_cpu / (stub_cpu + client_cpu):5.1%} of all CPU (client {client_cpu / wall:5.1%})"
    )


async def _first_delta(http: httpx2.AsyncClient, pid: int, url: str, requests: int) -> None:
    body = {**BODY, "model": "stub-deltas-4"}
    times = []
    cpu0 = _cpu_seconds(pid)
    for _ in range(requests):
        start = time.perf_counter()
        async with http.stream("POST", url + "/v1/messages", json=body) as response:
            first = None
            async for line in response.aiter_lines():
                if first is None and line == "event: content_block_delta":
                    first = time.perf_counter() - start
            assert first is not None
            times.append(first)
    stub_cpu = _cpu_seconds(pid) - cpu0
    times.sort()
    print(
        f"{'first delta':>14}: median {times[len(times) // 2] * 1e3:.3f} ms, "
        f"p90 {times[len(times) * 9 // 10] * 1e3:.3f} ms over {requests} keep-alive requests; "
        f"stub CPU {stub_cpu / requests * 1e6:.0f} us per request"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deltas", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--chunk-size", type=int, default=8)
    args = parser.parse_args()
    stub_args = ["--deltas", str(args.deltas), "--chunk-size", str(args.chunk_size)]
    with StubProcess(stub_args) as stub:
        assert stub.process is not None
        pid, url = stub.process.pid, stub.base_url
        size = f"{args.deltas:,} deltas of {args.chunk_size} chars"
        print(f"{size} x {args.rounds} rounds, stub pid {pid}")
        async with httpx2.AsyncClient() as http:
            await _measure("raw bytes", pid, args.deltas, args.rounds, lambda: _raw(http, url))
            await _measure("aiter_lines", pid, args.deltas, args.rounds, lambda: _lines(http, url))
            await _measure("anthropic SDK", pid, args.deltas, args.rounds, _sdk_reader(http, url))
            await _first_delta(http, pid, url, 500)


if __name__ == "__main__":
    asyncio.run(main())
