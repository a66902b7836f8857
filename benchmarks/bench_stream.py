"""Streaming through provcfg vs the anthropic SDK used directly, side by side in one run.

Five readers of the same stub stream (the stub runs in its own process):

    sdk-direct     one reused AsyncAnthropic on its own httpx2 client, messages.create(stream=True)
    sdk-again      the same as sdk-direct, a second instance: the A/A control whose ratio
                   shows how far two identical readers drift apart in this run
    provcfg-sdk    AnthropicApiProvider, transport: sdk
    provcfg-fast   AnthropicApiProvider, transport: fast
    raw-httpx2     client.stream() + aiter_bytes(), the floor

Each round runs every reader once, and the order rotates from round to round (a reader
is not always the one after the same other one). Each round gives one ratio per reader
against sdk-direct *in that round*: on a shared, noisy machine, pairing removes the
drift between rounds. Reported: the median of those ratios and their spread (25th-75th
percentile), for first-chunk latency (short replies) and chunks/s (long streams).

Then, with no network: the same pre-built byte stream served by an httpx2.MockTransport,
read through provcfg and through the bare minimum (SDK iteration for sdk; aiter_bytes +
SSE split + json.loads per event for fast). Per chunk (a long stream) and per request
(a one-delta reply, time to the first text chunk), the difference is what provcfg adds:
the fastest rounds' difference, and the median of paired differences with its spread.

    .venv/bin/python benchmarks/bench_stream.py [--first-rounds 300] [--long-rounds 9]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anthropic
import httpx2

from provcfg._manifest import AnthropicApiSpec
from provcfg._metrics import Metrics
from provcfg._providers._sse import SSEParser
from provcfg._providers.anthropic_api import AnthropicApiProvider
from provcfg.stub import StubProcess
from provcfg.testing import make_context

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
            "model": MODEL,
        }
    )
    ctx = make_context(spec, name=f"bench-{transport}", http_client=lambda: http, metrics=Metrics())
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


def _rotations(names: list[str], rounds: int) -> list[list[str]]:
    return [names[i % len(names) :] + names[: i % len(names)] for i in range(rounds)]


async def _interleaved(
    readers: dict[str, Reader], model: str, rounds: int
) -> dict[str, list[tuple[float, float, int]]]:
    out: dict[str, list[tuple[float, float, int]]] = {name: [] for name in readers}
    for order in _rotations(list(readers), rounds):
        for name in order:
            start = time.perf_counter()
            first, count = await readers[name](model)
            out[name].append((first, time.perf_counter() - start, count))
    return out


def _spread(values: list[float]) -> tuple[float, float, float]:
    """Median, 25th and 75th percentile."""
    if len(values) < 2:
        return values[0], values[0], values[0]
    low, _, high = statistics.quantiles(values, n=4, method="inclusive")
    return statistics.median(values), low, high


def _paired(values: list[float], base: list[float]) -> tuple[float, float, float]:
    return _spread([v / b for v, b in zip(values, base, strict=True)])


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


async def _timed_rounds(
    runs: dict[str, Callable[[], Awaitable[Any]]], rounds: int
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in runs}
    for run in runs.values():  # warm-up (imports, first client)
        await run()
    for order in _rotations(list(runs), rounds):
        for name in order:
            start = time.perf_counter()
            await runs[name]()
            times[name].append(time.perf_counter() - start)
    return times


def _added(times: dict[str, list[float]], mine: str, bare: str, per: int) -> dict[str, float]:
    """What ``mine`` adds over ``bare`` in us per unit: fastest rounds and paired median."""
    diffs = [(m - b) / per * 1e6 for m, b in zip(times[mine], times[bare], strict=True)]
    med, low, high = _spread(diffs)
    return {
        "min": (min(times[mine]) - min(times[bare])) / per * 1e6,
        "med": med,
        "p25": low,
        "p75": high,
        "bare": min(times[bare]) / per * 1e6,
    }


async def _forwarding(deltas: int, rounds: int) -> dict[str, dict[str, float]]:
    blob = _sse_blob(deltas)
    http = _mock_client(blob)
    fast = _provider("http://mock", "fast", http)
    sdk = _provider("http://mock", "sdk", http)
    bare_sdk = _bare_sdk(http)
    runs: dict[str, Callable[[], Awaitable[Any]]] = {
        "bare-fast": lambda: _bare_fast(http),
        "provcfg-fast": lambda: _via_provider(fast),
        "bare-sdk": bare_sdk,
        "provcfg-sdk": lambda: _via_provider(sdk),
    }
    times = await _timed_rounds(runs, rounds)
    await http.aclose()
    return {
        "fast": _added(times, "provcfg-fast", "bare-fast", deltas),
        "sdk": _added(times, "provcfg-sdk", "bare-sdk", deltas),
    }


async def _per_request(rounds: int) -> dict[str, float]:
    """Time to the first text chunk of a one-delta reply, SDK alone vs provcfg-sdk."""
    http = _mock_client(_sse_blob(1))
    sdk = _provider("http://mock", "sdk", http)
    client = anthropic.AsyncAnthropic(
        api_key=KEY, base_url="http://mock", http_client=http, max_retries=0
    )

    async def bare() -> None:
        stream = await client.messages.create(
            model=MODEL, max_tokens=1024, messages=[{"role": "user", "content": "hi"}], stream=True
        )
        async for event in stream:
            if event.type == "content_block_delta":
                break
        await stream.close()

    async def mine() -> None:
        chunks = sdk.stream("hi")
        async for chunk in chunks:
            if chunk.type == "text":
                break
        await chunks.aclose()  # type: ignore[attr-defined]

    times = await _timed_rounds({"bare-sdk": bare, "provcfg-sdk": mine}, rounds)
    await http.aclose()
    return _added(times, "provcfg-sdk", "bare-sdk", 1)


def _ratio(median: float, low: float, high: float) -> str:
    return f"{median:5.3f}x [{low:5.3f}-{high:5.3f}]"


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--first-rounds", type=int, default=300)
    parser.add_argument("--long-rounds", type=int, default=9)
    parser.add_argument("--deltas", type=int, default=20_000)
    parser.add_argument("--forward-rounds", type=int, default=15)
    parser.add_argument("--request-rounds", type=int, default=1000)
    args = parser.parse_args()
    with StubProcess() as stub:
        url = stub.base_url
        clients = [httpx2.AsyncClient(timeout=60) for _ in range(5)]
        readers: dict[str, Reader] = {
            "sdk-direct": _sdk_direct(url, clients[0]),
            "sdk-again": _sdk_direct(url, clients[4]),
            "provcfg-sdk": _provcfg(_provider(url, "sdk", clients[1])),
            "provcfg-fast": _provcfg(_provider(url, "fast", clients[2])),
            "raw-httpx2": _raw(url, clients[3]),
        }
        await _interleaved(readers, "stub-text", 20)  # warm-up: imports, connections
        short = await _interleaved(readers, "stub-text", args.first_rounds)
        long = await _interleaved(readers, f"stub-deltas-{args.deltas}", args.long_rounds)
        for client in clients:
            await client.aclose()
    base_first = [r[0] for r in short["sdk-direct"]]
    base_rate = [r[2] / r[1] for r in long["sdk-direct"]]
    first = {n: _paired([r[0] for r in rs], base_first) for n, rs in short.items()}
    rate = {n: _paired([r[2] / r[1] for r in rs], base_rate) for n, rs in long.items()}
    print(
        f"vs sdk-direct in the same round: median [25th-75th percentile]; first chunk: "
        f"{args.first_rounds} short replies, chunks/s: {args.long_rounds} x {args.deltas:,} deltas"
    )
    for name, rs in short.items():
        first_ms = statistics.median(r[0] for r in rs) * 1e3
        rate_abs = statistics.median(r[2] / r[1] for r in long[name])
        print(
            f"  {name:13s} first {first_ms:7.3f} ms {_ratio(*first[name])}"
            f"   {rate_abs:10,.0f} chunks/s {_ratio(*rate[name])}"
        )
    fwd = await _forwarding(args.deltas, args.forward_rounds)
    req = await _per_request(args.request_rounds)
    for kind, bare in (("fast", "aiter_bytes + SSE split + json.loads"), ("sdk", "SDK iteration")):
        f = fwd[kind]
        print(
            f"forwarding per chunk, no network, {kind}: +{f['min']:.3f} us (fastest rounds), "
            f"+{f['med']:.3f} us [{f['p25']:.3f}, {f['p75']:.3f}] (paired) over "
            f"{f['bare']:.3f} us of {bare}"
        )
    print(
        f"per request to the first chunk, no network, sdk: +{req['min']:.1f} us (fastest), "
        f"+{req['med']:.1f} us [{req['p25']:.1f}, {req['p75']:.1f}] (paired) over "
        f"{req['bare']:.1f} us of the SDK alone"
    )
    checks = {
        "sdk first <= 1.03x": first["provcfg-sdk"][0] <= 1.03,
        "sdk chunks/s >= 0.97x": rate["provcfg-sdk"][0] >= 0.97,
        "fast first <= 0.75x": first["provcfg-fast"][0] <= 0.75,
        "fast chunks/s >= 1.8x": rate["provcfg-fast"][0] >= 1.8,
        "forwarding <= 1 us": max(fwd["fast"]["min"], fwd["sdk"]["min"]) <= 1.0,
    }
    for name, ok in checks.items():
        print(f"  {'ok  ' if ok else 'MISS'} {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
