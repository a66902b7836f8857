"""The anthropic-api retry policy end to end: waits, caps, jitter, deadline, SDK retries off.

Waits are read from the ``provider.retry`` log line (``wait``, rounded to 1 ms), never
from the clock, so these tests assert what the policy decided, not how long it took.
"""

from __future__ import annotations

import email.utils
import time
from typing import Any

import pytest
from structlog.testing import capture_logs

from provcfg._errors import ProviderError
from provcfg.plugin import Chunk
from provcfg.stub.server import StubServer
from tests.support_anthropic import (
    TRANSPORTS,
    ScriptedServer,
    fresh_stub,
    http_reply,
    make,
    sse,
    stub,
)

__all__ = ["fresh_stub", "stub"]  # fixtures re-exported for pytest

RATE_LIMITED = b'{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}'
OK_STREAM = sse(
    (
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "m",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 1, "output_tokens": 1},
            },
        },
    ),
    (
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ),
    (
        "content_block_delta",
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "ok"}},
    ),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 1},
        },
    ),
    ("message_stop", {"type": "message_stop"}),
)


def _waits(logs: list[dict[str, Any]]) -> list[float]:
    return [e["wait"] for e in logs if e["event"] == "provider.retry"]


async def _run(base_url: str, transport: str, **spec: Any) -> tuple[list[Chunk], list[float]]:
    handle = make(base_url, transport, **spec)
    try:
        with capture_logs() as logs:
            chunks = [c async for c in handle.provider.stream("hi", model="m")]
    finally:
        await handle.aclose()
    return chunks, _waits(logs)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("headers", "cap", "wait"),
    [
        ({"retry-after": "0.05"}, 1.0, 0.05),  # seconds, under the cap
        ({"retry-after": "30"}, 0.02, 0.02),  # seconds, capped by retry_max_wait
        ({"retry-after-ms": "20", "retry-after": "5"}, 1.0, 0.02),  # -ms wins over seconds
        ({"retry-after": "Thu, 01 Jan 2015 00:00:00 GMT"}, 1.0, 0.0),  # a date in the past
    ],
)
async def test_retry_after_forms_decide_the_wait(
    transport: str, headers: dict[str, str], cap: float, wait: float
) -> None:
    """retry-after (seconds or a date) or retry-after-ms sets the wait, capped by retry_max_wait."""
    replies = [http_reply(429, RATE_LIMITED, headers), http_reply(200, OK_STREAM)]
    async with ScriptedServer(replies) as server:
        chunks, waits = await _run(server.base_url, transport, max_retries=1, retry_max_wait=cap)
    assert chunks[0] == Chunk("text", "ok")
    assert waits == [wait]
    assert server.requests == 2


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_http_date_retry_after_is_parsed_and_capped(transport: str) -> None:
    """A future HTTP date gives retry_after in seconds from now; the wait taken is still capped."""
    when = email.utils.formatdate(time.time() + 3600, usegmt=True)
    limited = http_reply(429, RATE_LIMITED, {"retry-after": when})
    async with ScriptedServer([limited]) as server:
        handle = make(server.base_url, transport, max_retries=0)
        try:
            with pytest.raises(ProviderError) as caught:
                await handle.provider.complete("hi", model="m")
        finally:
            await handle.aclose()
    assert caught.value.retry_after == pytest.approx(3600, abs=5)
    async with ScriptedServer([limited, http_reply(200, OK_STREAM)]) as server:
        chunks, waits = await _run(server.base_url, transport, max_retries=1, retry_max_wait=0.03)
    assert waits == [0.03]
    assert chunks[0] == Chunk("text", "ok")


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_backoff_without_retry_after_is_jittered_and_capped(
    fresh_stub: StubServer, transport: str
) -> None:
    """Without retry-after, a wait at the cap is jittered within [cap/2, cap] and varies."""
    fresh_stub.enqueue_fault("503", times=6)
    chunks, waits = await _run(fresh_stub.base_url, transport, max_retries=6, retry_max_wait=0.04)
    assert chunks[-1].type == "result"
    assert len(waits) == 6
    assert all(0.02 <= w <= 0.04 for w in waits), waits
    assert len(set(waits)) > 1, waits  # equal jitter: six equal draws would be a broken RNG


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_sdk_retries_are_off(fresh_stub: StubServer, transport: str) -> None:
    """With max_retries 0 a 429, a 529 and a 503 each cost exactly one request (no SDK retry)."""
    for fault in ("429", "529", "503"):
        fresh_stub.reset()
        fresh_stub.enqueue_fault(fault, times=5)
        handle = make(fresh_stub.base_url, transport, max_retries=0)
        try:
            with pytest.raises(ProviderError):
                await handle.provider.complete("hi", model="m")
        finally:
            await handle.aclose()
        assert len(fresh_stub.requests) == 1, fault
        assert fresh_stub.requests[0].header("x-stainless-retry-count") in (None, "0")


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_total_deadline_bounds_the_retries(fresh_stub: StubServer, transport: str) -> None:
    """A wait that would pass the request's deadline is not taken: the error is raised instead."""
    # Deadline 2 s, retry-after 1.2 s (under the cap), 5 retries allowed: the first wait
    # fits, the second would end past the deadline, so exactly two requests are made.
    handle = make(fresh_stub.base_url, transport, max_retries=5, retry_max_wait=10)
    try:
        await handle.provider.complete("warm-up", model="stub-length-5")
        fresh_stub.reset()
        fresh_stub.enqueue_fault("429-retry-after-1.2", times=6)
        with capture_logs() as logs, pytest.raises(ProviderError) as caught:
            await handle.provider.complete("hi", model="m", timeout=2.0)
    finally:
        await handle.aclose()
    assert caught.value.kind == "rate_limit"
    assert _waits(logs) == [1.2]
    assert len(fresh_stub.requests) == 2
    assert handle.metrics.counter("errors", "api") == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_deadline_passing_during_a_retry_gives_timeout(
    fresh_stub: StubServer, transport: str
) -> None:
    """A retried request whose next attempt hangs ends with timeout at the total deadline."""
    fresh_stub.enqueue_fault("529")
    fresh_stub.enqueue_fault("hang")
    handle = make(fresh_stub.base_url, transport, max_retries=3)
    try:
        with pytest.raises(ProviderError) as caught:
            await handle.provider.complete("hi", model="m", timeout=0.5)
        assert handle.busy() == 0
    finally:
        await handle.aclose()
    assert caught.value.kind == "timeout"
    assert [r.status for r in fresh_stub.requests][:1] == [529]
    assert len(fresh_stub.requests) == 2


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_failure_after_a_tool_chunk_is_not_retried(
    fresh_stub: StubServer, transport: str
) -> None:
    """Once any chunk (here text and a tool_use) reached the caller, a later cut is raised."""
    handle = make(fresh_stub.base_url, transport, max_retries=3)
    seen: list[str] = []
    try:
        with pytest.raises(ProviderError) as caught:
            async for chunk in handle.provider.stream("hi", model="stub-tool-use-no-stop"):
                seen.append(chunk.type)
    finally:
        await handle.aclose()
    assert caught.value.kind == "stream_incomplete"
    assert "tool_use" in seen
    assert len(fresh_stub.requests) == 1
