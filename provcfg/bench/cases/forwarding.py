"""What provcfg adds per chunk and per request, with no network at all.

A pre-built Messages stream is served by ``httpx2.MockTransport``; provcfg's
providers read it beside the bare minimum (for ``fast``: ``aiter_bytes`` + SSE split +
one ``json.loads`` per event; for ``sdk``: the SDK's own iteration). The paired
difference is what provcfg adds (budget: <= 1 us per chunk).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from provcfg.bench._case import Budget, Case, CaseContext, Contender, Sample, TimeFunc
from provcfg.bench.cases._fixtures import MODEL

KEY = "sk-bench"


def sse_blob(deltas: int) -> bytes:
    """A complete Messages SSE stream with ``deltas`` text deltas."""

    def ev(name: str, data: dict[str, Any]) -> bytes:
        return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()

    message: dict[str, Any] = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 1},
    }
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


def mock_client(blob: bytes) -> Any:
    """An httpx2 client whose every request gets ``blob`` as an SSE body in 64 KiB reads."""
    import httpx2

    pieces = [blob[i : i + 65536] for i in range(0, len(blob), 65536)]

    async def body() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    def handler(request: Any) -> Any:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    return httpx2.AsyncClient(transport=httpx2.MockTransport(handler))


def provider(transport: str, http: Any) -> Any:
    """An anthropic-api provider of ``transport`` on ``http`` (built without a Runtime)."""
    from provcfg._manifest import AnthropicApiSpec
    from provcfg.plugin import KindRegistry
    from provcfg.testing import make_context

    spec = AnthropicApiSpec.model_validate(
        {
            "kind": "anthropic-api",
            "base_url": "http://mock",
            "api_key": KEY,
            "transport": transport,
            "max_tokens": 1024,
            "model": MODEL,
            "max_retries": 0,
        }
    )
    factory = KindRegistry.builtin()["anthropic-api"].load_factory()
    return factory(make_context(spec, name=f"bench-{transport}", http_client=lambda: http))


def _timed(
    op: Callable[[], Any], per: int, spin: Callable[[], None] | None, clock: Callable[[], float]
) -> TimeFunc:
    async def run(loops: int) -> Sample:
        elapsed = 0.0
        for _ in range(loops):
            start = clock()
            await op()
            if spin is not None:
                spin()
            elapsed += clock() - start
        return Sample(elapsed / loops / per, op_seconds=elapsed / loops)

    return run


async def _via(p: Any) -> int:
    count = 0
    async for _chunk in p.stream("hi"):
        count += 1
    return count


def _deltas(ctx: CaseContext) -> int:
    return 200 if ctx.smoke else 1000


@asynccontextmanager
async def _fast(ctx: CaseContext) -> AsyncIterator[Sequence[Contender]]:
    from provcfg._providers._sse import SSEParser

    n = _deltas(ctx)
    http = mock_client(sse_blob(n))
    mine = provider("fast", http)

    async def bare() -> int:
        count = 0
        loads = json.loads
        parser = SSEParser()
        async with http.stream("POST", "http://mock/v1/messages", content=b"{}") as response:
            async for raw in response.aiter_bytes():
                for _event, data in parser.feed(raw):
                    loads(data)
                    count += 1
        return count

    try:
        yield [
            Contender(
                "bare",
                "reference",
                _timed(bare, n, None, ctx.clock),
                "aiter_bytes + SSE split + json.loads per event",
            ),
            Contender(
                "provcfg-fast",
                "subject",
                _timed(lambda: _via(mine), n, ctx.slowed("subject"), ctx.clock),
                "provcfg transport: fast, per chunk",
            ),
        ]
    finally:
        await mine.aclose()
        await http.aclose()


@asynccontextmanager
async def _sdk(ctx: CaseContext) -> AsyncIterator[Sequence[Contender]]:
    import anthropic

    n = _deltas(ctx) // 2
    http = mock_client(sse_blob(n))
    mine = provider("sdk", http)
    client = anthropic.AsyncAnthropic(
        api_key=KEY, base_url="http://mock", http_client=http, max_retries=0
    )

    async def bare() -> int:
        stream = await client.messages.create(
            model=MODEL,
            max_tokens=1024,
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
        )
        count = 0
        async for _event in stream:
            count += 1
        return count

    try:
        yield [
            Contender(
                "bare-sdk", "reference", _timed(bare, n, None, ctx.clock), "the SDK's own iteration"
            ),
            Contender(
                "provcfg-sdk",
                "subject",
                _timed(lambda: _via(mine), n, ctx.slowed("subject"), ctx.clock),
                "provcfg transport: sdk, per chunk",
            ),
        ]
    finally:
        await mine.aclose()
        await http.aclose()


@asynccontextmanager
async def _request(ctx: CaseContext) -> AsyncIterator[Sequence[Contender]]:
    import anthropic

    http = mock_client(sse_blob(1))
    mine = provider("sdk", http)
    client = anthropic.AsyncAnthropic(
        api_key=KEY, base_url="http://mock", http_client=http, max_retries=0
    )

    async def bare() -> None:
        stream = await client.messages.create(
            model=MODEL,
            max_tokens=1024,
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
        )
        async for event in stream:
            if event.type == "content_block_delta":
                break
        await stream.close()

    async def ours() -> None:
        chunks = mine.stream("hi")
        async for chunk in chunks:
            if chunk.type == "text":
                break
        await chunks.aclose()

    try:
        yield [
            Contender(
                "bare-sdk",
                "reference",
                _timed(bare, 1, None, ctx.clock),
                "the SDK alone, to the first text event",
            ),
            Contender(
                "provcfg-sdk",
                "subject",
                _timed(ours, 1, ctx.slowed("subject"), ctx.clock),
                "provcfg transport: sdk, to the first text chunk",
            ),
        ]
    finally:
        await mine.aclose()
        await http.aclose()


CASES = [
    Case(
        name="forwarding.fast",
        title="per chunk, no network: provcfg fast transport vs bare SSE parsing",
        build=_fast,
        gc_off=True,
        clock="cpu",
        sample_seconds=0.0,
        repeats=3,
        rounds={"quick": (8, 30), "full": (20, 100)},
        seconds={"quick": 4.0, "full": 15.0},
        budgets=(Budget("provcfg-fast", "<= +1 us per chunk", max_added=1e-6),),
    ),
    Case(
        name="forwarding.sdk",
        title="per chunk, no network: provcfg sdk transport vs the SDK's own iteration",
        build=_sdk,
        threshold=0.10,  # calibrated: 15/15 of +15 %; cross-session drift <= +2.4 %
        gc_off=True,
        clock="cpu",
        sample_seconds=0.0,
        repeats=3,
        rounds={"quick": (8, 30), "full": (20, 100)},
        seconds={"quick": 4.0, "full": 15.0},
        budgets=(Budget("provcfg-sdk", "<= +1 us per chunk", max_added=1e-6),),
    ),
    Case(
        name="forwarding.request",
        title="per request to the first chunk, no network: provcfg sdk vs the SDK alone",
        build=_request,
        threshold=0.10,  # calibrated: caught 14 of 15 slowdowns of +15 %, no false alarm
        gc_off=True,
        clock="cpu",
        sample_seconds=0.002,
        repeats=5,
        rounds={"quick": (10, 60), "full": (40, 300)},
        seconds={"quick": 4.0, "full": 15.0},
    ),
]
