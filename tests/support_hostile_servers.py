"""Hostile servers on real loopback sockets, and providers on a real provcfg Pool.

:class:`HostileServer` is an HTTP/1.1 server on 127.0.0.1 whose answers are written by
the test (a coroutine that gets the parsed request and the socket's writer), so a test
can send what no well-behaved server sends: a redirect anywhere, headers one byte at a
time, a body that never ends. Every request it receives is recorded with its headers,
so a test can prove what did, or did not, reach it.

:func:`pooled` builds an anthropic-api provider on a real :class:`provcfg._pools.Pool`
(the pool's hooks, limits and timeouts are part of what is tested).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provcfg._errors import ProviderError
from provcfg._manifest import AnthropicApiSpec, PoolSpec
from provcfg._metrics import Metrics
from provcfg._pools import Pool, SSLContextCache
from provcfg._providers.anthropic_api import AnthropicApiProvider
from provcfg._providers.base import Chunk
from provcfg.testing import make_context

KEY = "sk-ant-HOSTILE-key-0123456789"
MODEL = "claude-sonnet-4-5-20250929"
TRANSPORTS = ("sdk", "fast")
# Far longer than any test needs: reaching it means something hung.
HANG = 60.0


@dataclass
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    connection: int


Answer = Callable[[Seen, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class HostileServer:
    """A loopback HTTP/1.1 server answering each request with ``answer(seen, writer)``.

    ``answer`` writes whatever it likes; the connection closes when it returns, unless it
    returns after a complete ``content-length`` answer without ``connection: close`` (then
    the next request on the connection is read).
    """

    answer: Answer
    keep_alive: bool = False
    requests: list[Seen] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _connections: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._connections += 1
        number = self._connections
        try:
            while True:
                seen = await _read_request(reader, number)
                if seen is None:
                    break
                self.requests.append(seen)
                await self.answer(seen, writer)
                await writer.drain()
                if not self.keep_alive:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)

    async def __aenter__(self) -> HostileServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()


async def _read_request(reader: asyncio.StreamReader, connection: int) -> Seen | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Seen(method, path, headers, body, connection)


def sse_events(text: str = "Hello") -> bytes:
    """A complete, valid Messages API event stream answering ``text``."""
    events = [
        ("message_start", {"type": "message_start", "message": {"id": "msg_1", "model": MODEL,
                                                                "usage": {"input_tokens": 3}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": text}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                           "usage": {"output_tokens": 1}}),
        ("message_stop", {"type": "message_stop"}),
    ]  # fmt: skip
    return b"".join(
        f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events
    )


def head(status: int, headers: dict[str, str] | None = None) -> bytes:
    """A response head (status line and headers, then the blank line)."""
    lines = [f"HTTP/1.1 {status} X", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def whole(status: int, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    """A whole response with a content-length that closes its connection."""
    kind = "text/event-stream" if status == 200 else "application/json"
    extra = {"content-type": kind, "content-length": str(len(body)), "connection": "close"}
    return head(status, {**extra, **(headers or {})}) + body


def pool_of(**spec: Any) -> Pool:
    """A real pool (the hooks, limits and timeouts provcfg builds) with ``spec`` settings."""
    return Pool("hostile", PoolSpec(**spec), ssl=SSLContextCache(), metrics=Metrics())


@contextlib.asynccontextmanager
async def pooled(
    base_url: str,
    transport: str,
    *,
    pool: Pool | None = None,
    name: str = "api",
    **spec: Any,
) -> AsyncIterator[AnthropicApiProvider]:
    """An anthropic-api provider of ``transport`` against ``base_url`` on a real pool.

    The provider (and the pool, unless one was passed in) is closed on the way out.
    """
    values: dict[str, Any] = {
        "kind": "anthropic-api",
        "base_url": base_url,
        "api_key": KEY,
        "transport": transport,
        "model": MODEL,
        "max_retries": 0,
        **spec,
    }
    the_pool = pool if pool is not None else pool_of()
    ctx = make_context(AnthropicApiSpec(**values), name=name, pool=the_pool, metrics=Metrics())
    provider = AnthropicApiProvider(ctx)
    try:
        yield provider
    finally:
        await provider.aclose()
        if pool is None:
            await the_pool.aclose()


async def outcome(stream: AsyncIterator[Chunk]) -> list[Chunk] | ProviderError:
    """Every chunk of ``stream``, or the ProviderError it raised; fails on a hang."""
    chunks: list[Chunk] = []

    async def read() -> None:
        async for chunk in stream:
            chunks.append(chunk)

    try:
        await asyncio.wait_for(read(), HANG)
    except ProviderError as error:
        return error
    return chunks


async def failure(stream: AsyncIterator[Chunk]) -> ProviderError:
    """The ProviderError ``stream`` ends with (the test fails if it succeeds or hangs)."""
    result = await outcome(stream)
    assert isinstance(result, ProviderError), f"expected a ProviderError, got {result!r}"
    return result


def reset_peak_rss() -> None:
    """Reset this process's peak resident set size (Linux ``clear_refs``)."""
    Path("/proc/self/clear_refs").write_text("5")


def peak_rss() -> int:
    """This process's peak resident set size since the last reset, in bytes."""
    status = Path("/proc/self/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    assert match is not None
    return int(match.group(1)) * 1024


def rss() -> int:
    """This process's resident set size now, in bytes."""
    status = Path("/proc/self/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert match is not None
    return int(match.group(1)) * 1024
