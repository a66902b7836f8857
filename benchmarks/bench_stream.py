"""Streaming through provcfg vs the anthropic SDK used directly, side by side in one run.

Four readers of the same stub stream (the stub runs in its own process):

    sdk-direct     one reused AsyncAnthropic on its own httpx2 client, messages.create(stream=True)
    provcfg-sdk    AnthropicApiProvider, transport: sdk
    provcfg-fast   AnthropicApiProvider, transport: fast
    raw-httpx2     client.stream() + aiter_bytes(), the floor

Rounds are interleaved (a, b, c, d, a, b, ...) so machine noise hits all four alike.
Measured: first-chunk latency (median over short replies) and chunks/s over a long
stream (median). Then provcfg's own per-chunk forwarding cost with no network: the
same pre-built byte stream served by an httpx2.MockTransport, read through provcfg and
through the bare minimum (SDK iteration for sdk; aiter_bytes + SSE split + json.loads
per event for fast); the difference of the fastest rounds, per chunk, is what provcfg adds.

    .venv/bin/python benchmarks/bench_stream.py [--first-rounds 300] [--long-rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anthropic
import httpx2

from provcfg.manifest import AnthropicApiSpec
from provcfg.metrics import Metrics
from provcfg.providers._sse import SSEParser
from provcfg.providers.anthropic_api import AnthropicApiProvider
from provcfg.providers.base import ProviderContext
from provcfg.stub import StubProcess

MODEL = "stub-bench"  # not a real id: the SDK warns about deprecated real ones
KEY = "sk-bench"
Reader = Callable[[str], Awaitable[tuple[float, int]]]  # model -> (first-chunk s, chunks)


def _provider(base_url: str, transport: str, http: httpx2.AsyncClient) -> AnthropicApiProvider:
    spec = AnthropicApiSpec.model_validate(
        {
            "kind": "anthropic-api",
            "base_url": base_url,
            "api_key": KEY,
            "transport": transport,
            "max_tokens": 1024,
        }
    )
    ctx = ProviderContext(
        name=f"bench-{transport}",
        spec=spec,
        resolve_model=lambda alias: alias or MODEL,
        cli_path=lambda: Path("/nonexistent"),
        http_client=lambda: http,
        metrics=Metrics(),
    )
    return AnthropicApiProvider(ctx)


def _sdk_direct(base_url: str, http: httpx2.AsyncClient) -> Reader:
    client = anthropic.AsyncAnthropic(
        api_key=KEY, base_url=base_url, http_client=http, max_retries=0
    )

    async def read(model: str) -> tuple[float, int]:
        start = time.perf_counter()
        first = 0.0
        count = 0
        stream = await client.messages.create(
            model=model,
            max_tokens=1024,
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
        )
        async for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                if not count:
                    first = time.perf_counter() - start
                count += 1
        return first, count

    return read


def _provcfg(provider: AnthropicApiProvider) -> Reader:
    async def read(model: str) -> tuple[float, int]:
        start = time.perf_counter()
        first = 0.0
        count = 0
        async for chunk in provider.stream("hi", model=model):
            if chunk.type == "text":
                if not count:
                    first = time.perf_counter() - start
                count += 1
        return first, count

    return read


def _raw(base_url: str, http: httpx2.AsyncClient) -> Reader:
    headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01", "accept": "text/event-stream"}

    async def read(model: str) -> tuple[float, int]:
        body = {
            "model": model,
            "max_tokens": 1024,
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
        }
        start = time.perf_counter()
        first = 0.0
        count = 0
        async with http.stream(
            "POST", base_url + "/v1/messages", json=body, headers=headers
        ) as response:
            async for raw in response.aiter_bytes():
                n = raw.count(b'"text_delta"')
                if n and not count:
                    first = time.perf_counter() - start
                count += n
        return first, count

    return read


async def _interleaved(
    readers: dict[str, Reader], model: str, rounds: int
) -> dict[str, list[tuple[float, float, int]]]:
    out: dict[str, list[tuple[float, float, int]]] = {name: [] for name in readers}
    for _ in range(rounds):
        for name, read in readers.items():
            start = time.perf_counter()
            first, count = await read(model)
            out[name].append((first, time.perf_counter() - start, count))
    return out


# ----------------------------------------------------------------- forwarding, no network


def _sse_blob(deltas: int) -> bytes:
    def ev(name: str, data: dict[str, Any]) -> bytes:
        return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()

    usage = {"input_tokens": 5, "output_tokens": 1}
    message: dict[str, Any] = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
    }
    message |= {"content": [], "stop_reason": None, "stop_sequence": None, "usage": usage}
    parts = [
        ev("message_start", {"type": "message_start", "message": message}),
        ev(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
    ]
    delta = ev(
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "abcdefgh"},
        },
    )
    parts.extend([delta] * deltas)
    parts.append(ev("content_block_stop", {"type": "content_block_stop", "index": 0}))
    parts.append(
        ev(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": deltas},
            },
        )
    )
    parts.append(ev("message_stop", {"type": "message_stop"}))
    return b"".join(parts)


def _mock_client(blob: bytes) -> httpx2.AsyncClient:
    pieces = [blob[i : i + 65536] for i in range(0, len(blob), 65536)]

    async def body() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    return httpx2.AsyncClient(transport=httpx2.MockTransport(handler))


async def _bare_fast(http: httpx2.AsyncClient) -> int:
    # The least any SSE client does: read bytes, split events, parse each JSON once.
    count = 0
    loads = json.loads
    parser = SSEParser()
    async with http.stream("POST", "http://mock/v1/messages", content=b"{}") as response:
        async for raw in response.aiter_bytes():
            for _event, data in parser.feed(raw):
                loads(data)
                count += 1
    return count


def _bare_sdk(http: httpx2.AsyncClient) -> Callable[[], Awaitable[int]]:
    client = anthropic.AsyncAnthropic(
        api_key=KEY, base_url="http://mock", http_client=http, max_retries=0
    )

    async def read() -> int:
        stream = await client.messages.create(
            model=MODEL, max_tokens=1024, messages=[{"role": "user", "content": "hi"}], stream=True
        )
        count = 0
        async for _event in stream:
            count += 1
        return count

    return read


async def _via_provider(provider: AnthropicApiProvider) -> int:
    count = 0
    async for _chunk in provider.stream("hi"):
        count += 1
    return count


async def _forwarding(deltas: int, rounds: int) -> dict[str, float]:
    blob = _sse_blob(deltas)
    http = _mock_client(blob)
    fast = _provider("http://mock", "fast", http)
    sdk = _provider("http://mock", "sdk", http)
    bare_sdk = _bare_sdk(http)
    runs: dict[str, Callable[[], Awaitable[int]]] = {
        "bare-fast": lambda: _bare_fast(http),
        "provcfg-fast": lambda: _via_provider(fast),
        "bare-sdk": bare_sdk,
        "provcfg-sdk": lambda: _via_provider(sdk),
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    for run in runs.values():  # warm-up (imports, first client)
        await run()
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            await run()
            times[name].append(time.perf_counter() - start)
    await http.aclose()
    # CPU-bound with no I/O: the minimum is the estimator least disturbed by other load.
    med = {name: min(values) for name, values in times.items()}
    return {
        "fast_us": (med["provcfg-fast"] - med["bare-fast"]) / deltas * 1e6,
        "sdk_us": (med["provcfg-sdk"] - med["bare-sdk"]) / deltas * 1e6,
        "bare_fast_us": med["bare-fast"] / deltas * 1e6,
        "bare_sdk_us": med["bare-sdk"] / deltas * 1e6,
    }


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--first-rounds", type=int, default=300)
    parser.add_argument("--long-rounds", type=int, default=5)
    parser.add_argument("--deltas", type=int, default=20_000)
    parser.add_argument("--forward-rounds", type=int, default=15)
    args = parser.parse_args()
    with StubProcess() as stub:
        url = stub.base_url
        clients = [httpx2.AsyncClient(timeout=60) for _ in range(4)]
        readers: dict[str, Reader] = {
            "sdk-direct": _sdk_direct(url, clients[0]),
            "provcfg-sdk": _provcfg(_provider(url, "sdk", clients[1])),
            "provcfg-fast": _provcfg(_provider(url, "fast", clients[2])),
            "raw-httpx2": _raw(url, clients[3]),
        }
        await _interleaved(readers, "stub-text", 20)  # warm-up: imports, connections
        short = await _interleaved(readers, "stub-text", args.first_rounds)
        long = await _interleaved(readers, f"stub-deltas-{args.deltas}", args.long_rounds)
        for client in clients:
            await client.aclose()
    first = {n: statistics.median(r[0] for r in rs) for n, rs in short.items()}
    rate = {n: statistics.median(r[2] / r[1] for r in rs) for n, rs in long.items()}
    base_first, base_rate = first["sdk-direct"], rate["sdk-direct"]
    print(
        f"first chunk (median of {args.first_rounds}), chunks/s ({args.deltas:,} deltas, "
        f"median of {args.long_rounds}); ratios vs sdk-direct"
    )
    for name in readers:
        print(
            f"  {name:13s} first {first[name] * 1e3:7.3f} ms ({first[name] / base_first:5.2f}x)"
            f"   {rate[name]:10,.0f} chunks/s ({rate[name] / base_rate:5.2f}x)"
        )
    fwd = await _forwarding(args.deltas, args.forward_rounds)
    print(
        f"forwarding per chunk, no network: fast +{fwd['fast_us']:.3f} us over "
        f"{fwd['bare_fast_us']:.3f} us bare; sdk +{fwd['sdk_us']:.3f} us over "
        f"{fwd['bare_sdk_us']:.3f} us bare SDK iteration"
    )
    checks = {
        "sdk first <= 1.03x": first["provcfg-sdk"] / base_first <= 1.03,
        "sdk chunks/s >= 0.97x": rate["provcfg-sdk"] / base_rate >= 0.97,
        "fast first <= 0.75x": first["provcfg-fast"] / base_first <= 0.75,
        "fast chunks/s >= 1.8x": rate["provcfg-fast"] / base_rate >= 1.8,
        "forwarding <= 1 us": max(fwd["fast_us"], fwd["sdk_us"]) <= 1.0,
    }
    for name, ok in checks.items():
        print(f"  {'ok  ' if ok else 'MISS'} {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
