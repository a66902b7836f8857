"""Readers of one stub stream: the anthropic SDK used directly, provcfg, raw httpx2.

Each reader is ``await read(model, at_first)`` -> ``(first-chunk seconds, total
seconds, text chunks)``; ``at_first`` (a calibration spin, or ``None``) runs when
the first text chunk arrives, before its time is taken.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from provcfg.bench.cases._fixtures import MODEL, scratch, write

__all__ = ["KEY", "Reader", "Readers", "readers", "stub_process"]

KEY = "sk-bench"
Reader = Callable[[str, "Callable[[], None] | None"], Awaitable[tuple[float, float, int]]]


@asynccontextmanager
async def stub_process(args: list[str] | None = None) -> AsyncIterator[Any]:
    """The stub in its own process (never sharing this event loop or GIL), stopped after."""
    from provcfg.stub import StubProcess

    with StubProcess(args) as stub:
        yield stub


def sdk_reader(base_url: str, http: Any) -> Reader:
    """The anthropic SDK used directly: one reused AsyncAnthropic on its own client."""
    import anthropic

    client = anthropic.AsyncAnthropic(
        api_key=KEY, base_url=base_url, http_client=http, max_retries=0
    )

    async def read(model: str, at_first: Callable[[], None] | None) -> tuple[float, float, int]:
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
        return first, time.perf_counter() - start, count

    return read


def provider_reader(provider: Any) -> Reader:
    """A provcfg provider's ``stream()``, counting text chunks."""

    async def read(model: str, at_first: Callable[[], None] | None) -> tuple[float, float, int]:
        start = time.perf_counter()
        first = 0.0
        count = 0
        async for chunk in provider.stream("hi", model=model):
            if chunk.type == "text":
                if not count:
                    if at_first is not None:
                        at_first()
                    first = time.perf_counter() - start
                count += 1
        return first, time.perf_counter() - start, count

    return read


def raw_reader(base_url: str, http: Any) -> Reader:
    """Raw httpx2: POST, ``aiter_bytes()``, count text deltas (the floor of any client)."""
    headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01", "accept": "text/event-stream"}

    async def read(model: str, at_first: Callable[[], None] | None) -> tuple[float, float, int]:
        body = {
            "model": model,
            "max_tokens": 1024,
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
        }
        start = time.perf_counter()
        first = 0.0
        count = 0
        async with http.stream("POST", base_url + "/v1/messages", json=body, headers=headers) as r:
            async for raw in r.aiter_bytes():
                n = raw.count(b'"text_delta"')
                if n and not count:
                    first = time.perf_counter() - start
                count += n
        return first, time.perf_counter() - start, count

    return read


@dataclass
class Readers:
    """The five readers of one case, on separate HTTP clients."""

    sdk: Reader
    sdk_again: Reader
    provcfg_sdk: Reader
    provcfg_fast: Reader
    raw: Reader


@asynccontextmanager
async def readers(base_url: str, *, connections: int = 20) -> AsyncIterator[Readers]:
    """Readers of ``base_url``; provcfg's built from a manifest by :func:`provcfg.load`."""
    import httpx2

    import provcfg

    limits = httpx2.Limits(max_connections=connections, max_keepalive_connections=connections)
    clients = [httpx2.AsyncClient(timeout=120, limits=limits) for _ in range(3)]
    with scratch() as folder:
        pools = "".join(
            f"  p{n}: {{max_connections: {connections}, "
            f"max_keepalive_connections: {connections}, "
            "timeouts: {connect: 60s, read: 120s, pool: 120s}}\n"
            for n in ("sdk", "fast")
        )
        providers = "".join(
            f"  {n}: {{kind: anthropic-api, base_url: '{base_url}', api_key: {KEY}, "
            f"pool: p{n}, transport: {n}, max_retries: 0, model: {MODEL}, max_tokens: 1024}}\n"
            for n in ("sdk", "fast")
        )
        text = f"version: 1\npools:\n{pools}providers:\n{providers}"
        rt = provcfg.load(write(folder, "providers.yaml", text))
        try:
            yield Readers(
                sdk=sdk_reader(base_url, clients[0]),
                sdk_again=sdk_reader(base_url, clients[1]),
                provcfg_sdk=provider_reader(rt.provider("sdk")),
                provcfg_fast=provider_reader(rt.provider("fast")),
                raw=raw_reader(base_url, clients[2]),
            )
        finally:
            await rt.aclose()
            for client in clients:
                await client.aclose()
