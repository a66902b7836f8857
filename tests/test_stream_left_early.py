"""A stream left early closes what it opened at once, leaving no more to the collector
than the library under it does when used directly.

An async generator dropped while suspended is finalized through the event loop's
asyncgen hook (``aclose()`` scheduled with ``call_soon_threadsafe``, a write to the
loop's self-pipe), one per nested generator. provcfg's own chain (the SDK's event
iterator it reads directly, the byte iterator of the fast transport, the byte-stream
guard) used to be left to the collector: four to ten hook calls per request the
caller stopped reading, more than half of what provcfg added to such a request. Each
transport now closes its iterator before the response; what remains is the
libraries' own (httpx2's and httpcore2's byte iterators, the SDK's decoder), which the
SDK or httpx2 used directly leave the same way.
"""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import anthropic
import httpx2
import pytest

from provcfg.stub import StubConfig
from provcfg.stub.server import StubServer
from tests.support_anthropic import MODEL, SECRET, TRANSPORTS, make

REQUESTS = 20


@pytest.fixture(scope="module")
def long_stub() -> Iterator[StubServer]:
    """A stub whose answer is long (many chunks), so a reader can stop early."""
    config = StubConfig(text="many words " * 200, chunk_size=4)
    with StubServer(config=config).running_in_thread() as server:
        yield server


async def _finalized(one: Callable[[], Awaitable[None]]) -> int:
    """How many async generators the collector finalized over REQUESTS calls of ``one``."""
    loop = asyncio.get_running_loop()
    original = sys.get_asyncgen_hooks()
    finalized = 0

    def finalizer(agen: AsyncIterator[object]) -> None:
        nonlocal finalized
        finalized += 1
        loop._asyncgen_finalizer_hook(agen)  # type: ignore[attr-defined]

    for _ in range(3):  # warm: clients, connections, imports
        await one()
    gc.collect()
    sys.set_asyncgen_hooks(firstiter=original.firstiter, finalizer=finalizer)
    try:
        for _ in range(REQUESTS):
            await one()
        gc.collect()
        await asyncio.sleep(0)
    finally:
        sys.set_asyncgen_hooks(*original)
    return finalized


async def _direct(server: StubServer, transport: str, http: httpx2.AsyncClient) -> int:
    """The same early stop with the SDK (sdk) or httpx2 (fast) used directly."""
    client = anthropic.AsyncAnthropic(
        api_key=SECRET, base_url=server.base_url, http_client=http, max_retries=0
    )
    body = {"model": MODEL, "max_tokens": 1024, "messages": [{"role": "user", "content": "hi"}]}

    async def sdk() -> None:
        stream = await client.messages.create(**body, stream=True)  # type: ignore[call-overload]
        async for event in stream:
            if event.type == "content_block_delta":
                break
        await stream.close()

    async def raw() -> None:
        headers = {"x-api-key": SECRET, "anthropic-version": "2023-06-01"}
        url = f"{server.base_url}/v1/messages"
        async with http.stream("POST", url, json={**body, "stream": True}, headers=headers) as r:
            async for piece in r.aiter_bytes():
                if b"content_block_delta" in piece:
                    break

    return await _finalized(sdk if transport == "sdk" else raw)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_stream_left_early_leaves_the_collector_no_more_than_the_library(
    long_stub: StubServer, transport: str
) -> None:
    """Stopped after the first text chunk and closed: provcfg leaves the collector at
    most what the SDK or httpx2 used directly leave it."""
    handle = make(long_stub.base_url, transport)

    async def ours() -> None:
        chunks = handle.provider.stream("Say hello.")
        async for chunk in chunks:
            if chunk.type == "text":
                break
        await chunks.aclose()

    try:
        provcfg_count = await _finalized(ours)
        direct_count = await _direct(long_stub, transport, handle.client())
    finally:
        await handle.aclose()
    assert provcfg_count <= direct_count, (provcfg_count, direct_count)
