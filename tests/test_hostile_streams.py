"""Every transport honours the total timeout and a cap on one event's size, with memory bounded.

Hostile servers on real loopback sockets (and fake agent CLIs in real subprocesses)
that never complete what they start: bytes trickled one every 100 ms without ending an
event, response headers trickled the same way, headers and then silence, an endless
unterminated ``data:`` line at full speed, an error body that never ends. Each must end
in ``timeout`` or a clear ProviderError on both anthropic-api transports, and the
process's peak memory must stay far below what reading such a stream whole would take.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from provcfg._errors import ProviderError
from provcfg._manifest import ClaudeCodeSpec
from provcfg._providers.claude_code import ClaudeCodeProvider
from tests.support_fake_cli import make_provider
from tests.support_hostile_servers import (
    TRANSPORTS,
    HostileServer,
    Seen,
    failure,
    head,
    outcome,
    peak_rss,
    pooled,
    reset_peak_rss,
    rss,
    sse_events,
)

MiB = 1024 * 1024
# Reading the hostile streams below whole would take hundreds of MiB within the test's
# time; the caps (8 MiB per event, 1 MiB of an error body, 1 MiB lines here) keep the
# peak growth to a few copies of the cap.
MEMORY_BOUND = 96 * MiB
SSE_HEAD = head(200, {"content-type": "text/event-stream", "connection": "close"})
START = sse_events("x").split(b"event: content_block_delta")[0]  # message_start, block start

Answer = Callable[[Seen, asyncio.StreamWriter], Awaitable[None]]


async def _trickle_body(seen: Seen, writer: asyncio.StreamWriter) -> None:
    writer.write(SSE_HEAD + b"event: content_block_delta\ndata: ")
    while True:
        await writer.drain()
        writer.write(b"a")
        await asyncio.sleep(0.1)


async def _trickle_headers(seen: Seen, writer: asyncio.StreamWriter) -> None:
    for byte in b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nx-slow: " + b"z" * 10_000:
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(0.1)


async def _silent_after_headers(seen: Seen, writer: asyncio.StreamWriter) -> None:
    writer.write(SSE_HEAD)
    await writer.drain()
    await asyncio.sleep(3600)


async def _never_answers(seen: Seen, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(3600)


def _endless(prefix: bytes) -> Answer:
    async def answer(seen: Seen, writer: asyncio.StreamWriter) -> None:
        writer.write(prefix)
        block = b"a" * 65536
        while True:
            writer.write(block)
            await writer.drain()

    return answer


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    "answer",
    [_trickle_body, _trickle_headers, _silent_after_headers],
    ids=["one-byte-per-100ms", "headers-one-byte-per-100ms", "headers-then-nothing"],
)
async def test_a_stalling_server_cannot_outlast_the_total_timeout(
    transport: str, answer: Answer
) -> None:
    """However the server stalls (bytes trickled without ending an event, headers trickled,
    or silence after the headers), the request ends with kind timeout at its deadline."""
    async with (
        HostileServer(answer) as server,
        pooled(server.base_url, transport, timeout=1.0) as provider,
    ):
        error = await failure(provider.stream("hi"))
    assert error.kind == "timeout", error
    assert "1s" in error.message
    assert "providers.api.timeout" in error.message


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_stream_that_stalls_after_its_first_chunk_ends_at_the_deadline(
    transport: str,
) -> None:
    """Text already reached the caller, then the server trickles: still a timeout."""

    async def answer(seen: Seen, writer: asyncio.StreamWriter) -> None:
        first = sse_events("first").split(b"event: content_block_stop")[0]
        writer.write(SSE_HEAD + first + b"event: content_block_delta\ndata: ")
        while True:
            await writer.drain()
            writer.write(b"a")
            await asyncio.sleep(0.1)

    chunks = []
    async with (
        HostileServer(answer) as server,
        pooled(server.base_url, transport, timeout=1.5) as provider,
    ):
        with pytest.raises(ProviderError) as info:
            async for chunk in provider.stream("hi"):
                chunks.append(chunk)
    assert [c.text for c in chunks if c.type == "text"] == ["first"]
    assert info.value.kind == "timeout"


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("where", ["before-the-first-chunk", "after-the-first-chunk"])
async def test_an_endless_event_at_full_speed_is_capped_with_memory_bounded(
    transport: str, where: str
) -> None:
    """An unterminated ``data:`` line sent as fast as the socket takes it ends as a
    server_error naming the 8 MiB cap, long before the (generous) timeout, and the peak
    memory stays bounded."""
    first_chunk = sse_events("first").split(b"event: content_block_stop")[0]
    start = START if where == "before-the-first-chunk" else first_chunk
    prefix = SSE_HEAD + start + b'event: content_block_delta\ndata: {"text": "'
    async with (
        HostileServer(_endless(prefix)) as server,
        pooled(server.base_url, transport, timeout=60.0) as provider,
    ):
        before = rss()
        reset_peak_rss()
        error = await failure(provider.stream("hi"))
        grew = peak_rss() - before
    assert error.kind == "server_error", error
    assert str(8 * MiB) in error.message
    assert grew < MEMORY_BOUND, f"peak memory grew by {grew / MiB:.0f} MiB"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_endless_error_body_is_cut_and_the_error_still_reported(transport: str) -> None:
    """A 400 whose body never ends is read up to a cap (the SDK reads error bodies whole):
    the caller gets invalid_request promptly, with memory bounded, not a wait for the
    deadline while memory grows."""
    prefix = head(400, {"content-type": "application/json", "connection": "close"})
    prefix += b'{"type":"error","error":{"type":"invalid_request_error","message":"' + b"m" * 100
    async with (
        HostileServer(_endless(prefix)) as server,
        pooled(server.base_url, transport) as provider,
    ):
        before = rss()
        reset_peak_rss()
        error = await failure(provider.stream("hi"))
        grew = peak_rss() - before
    assert error.kind == "invalid_request", error
    assert error.status == 400
    assert grew < MEMORY_BOUND, f"peak memory grew by {grew / MiB:.0f} MiB"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_endless_redirect_body_is_cut_too(transport: str) -> None:
    """A same-origin redirect whose body never ends: httpx2 reads a redirect's body before
    following it, so the cap applies there as well and the redirect is followed."""

    async def answer(seen: Seen, writer: asyncio.StreamWriter) -> None:
        if seen.path != "/v1/messages":
            writer.write(SSE_HEAD + sse_events("after the redirect"))
            return
        writer.write(head(307, {"location": "/next/v1/messages", "connection": "close"}))
        block = b"r" * 65536
        while True:
            writer.write(block)
            await writer.drain()

    async with HostileServer(answer) as server, pooled(server.base_url, transport) as provider:
        result = await outcome(provider.stream("hi"))
    assert not isinstance(result, ProviderError), result
    assert "".join(c.text for c in result if c.type == "text") == "after the redirect"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_the_event_cap_is_the_spec_s_and_counts_one_event_not_the_stream(
    transport: str,
) -> None:
    """With max_event_bytes: 64 KiB, a stream of many small events (three times the cap in
    all) whose blank lines are split across network reads streams whole; one event of
    200 KB is refused with the configured cap in the message."""
    deltas = [
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":"' + b"%03d" % i + b"p" * 2000 + b'"}}\n\n'
        for i in range(100)
    ]
    tail = b"event: content_block_stop" + sse_events().split(b"event: content_block_stop")[1]

    async def split(seen: Seen, writer: asyncio.StreamWriter) -> None:
        writer.write(SSE_HEAD + START)
        for delta in deltas:  # each blank line split across two reads: "\n" | "\n"
            for part in (delta[:-1], delta[-1:]):
                writer.write(part)
                await writer.drain()
                await asyncio.sleep(0.003)
        writer.write(tail)

    async def big(seen: Seen, writer: asyncio.StreamWriter) -> None:
        event = {"type": "content_block_delta", "index": 0,
                 "delta": {"type": "text_delta", "text": "b" * 200_000}}  # fmt: skip
        writer.write(SSE_HEAD + START + b"event: content_block_delta\ndata: ")
        writer.write(json.dumps(event).encode() + b"\n\n" + sse_events("x")[-200:])

    async with (
        HostileServer(split) as server,
        pooled(server.base_url, transport, max_event_bytes=65536) as provider,
    ):
        result = await outcome(provider.stream("hi"))
    assert not isinstance(result, ProviderError), result
    assert len([c for c in result if c.type == "text"]) == 100
    async with (
        HostileServer(big) as server,
        pooled(server.base_url, transport, max_event_bytes=65536) as provider,
    ):
        error = await failure(provider.stream("hi"))
    assert error.kind == "server_error"
    assert "65536 bytes" in error.message


# ----------------------------------------------------------------------------- CLI kinds


async def test_a_cli_printing_a_never_ending_line_is_stopped_with_memory_bounded(
    tmp_path: Path,
) -> None:
    """A CLI that prints one line for ever, at full speed, is stopped at line_limit with
    cli_failed naming the setting, and memory stays bounded."""
    provider, _ = make_provider(
        ClaudeCodeProvider, ClaudeCodeSpec, "claude-code", tmp_path, "#!endless_line\n",
        line_limit=4 * MiB, timeout=60.0,
    )  # fmt: skip
    before = rss()
    reset_peak_rss()
    error = await failure(provider.stream("hi"))
    grew = peak_rss() - before
    await provider.aclose()
    assert error.kind == "cli_failed", error
    assert "line_limit" in error.message
    assert grew < MEMORY_BOUND, f"peak memory grew by {grew / MiB:.0f} MiB"


async def test_a_cli_trickling_bytes_cannot_outlast_the_total_timeout(tmp_path: Path) -> None:
    """A CLI writing one byte every 100 ms (so never silent, never a whole line) ends with
    timeout at the request's deadline."""
    provider, _ = make_provider(
        ClaudeCodeProvider, ClaudeCodeSpec, "claude-code", tmp_path, "#!trickle 0.1\n",
        timeout=1.0,
    )  # fmt: skip
    error = await failure(provider.stream("hi"))
    await provider.aclose()
    assert error.kind == "timeout"
    assert error.details["timeout"] == "total"
