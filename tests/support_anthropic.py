"""Fixtures for the anthropic-api tests: a stub server and providers on a real httpx2 pool."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest

from provcfg._manifest import AnthropicApiSpec
from provcfg._metrics import Metrics
from provcfg._providers.anthropic_api import AnthropicApiProvider
from provcfg.stub.server import StubServer
from provcfg.testing import make_context

SECRET = "sk-test-SECRET123"
MODEL = "claude-sonnet-4-5-20250929"
TRANSPORTS = ("sdk", "fast")


@dataclass
class Handle:
    """A provider plus the pooled client it streams over (created lazily, in the test's loop)."""

    provider: AnthropicApiProvider
    metrics: Metrics
    limits: httpx2.Limits
    timeout: httpx2.Timeout
    clients: list[httpx2.AsyncClient] = field(default_factory=list)

    def client(self) -> httpx2.AsyncClient:
        if not self.clients:
            self.clients.append(httpx2.AsyncClient(limits=self.limits, timeout=self.timeout))
        return self.clients[0]

    def connections(self) -> list[Any]:
        """The pool's connections (httpcore-level objects), for leak checks."""
        if not self.clients:
            return []
        pool = self.clients[0]._transport._pool  # type: ignore[attr-defined]
        return list(pool.connections)

    def busy(self) -> int:
        """Connections that are serving a request right now (not idle, not closed)."""
        return sum(1 for c in self.connections() if not (c.is_idle() or c.is_closed()))

    async def aclose(self) -> None:
        await self.provider.aclose()
        for client in self.clients:
            await client.aclose()


def make(
    base_url: str,
    transport: str = "fast",
    *,
    api_key: str | None = SECRET,
    max_connections: int = 10,
    pool_timeout: float = 5.0,
    read_timeout: float = 10.0,
    name: str = "api",
    **spec: Any,
) -> Handle:
    """Build a provider of the given transport against ``base_url``."""
    values: dict[str, Any] = {
        "kind": "anthropic-api",
        "base_url": base_url,
        "transport": transport,
        "max_tokens": 1024,
        "retry_max_wait": 0.01,
        "model": MODEL,
        **spec,
    }
    if api_key is not None:
        values["api_key"] = api_key
    model = AnthropicApiSpec(**values)
    metrics = Metrics()
    holder: list[Handle] = []

    def http_client() -> httpx2.AsyncClient:
        return holder[0].client()

    ctx = make_context(model, name=name, http_client=http_client, metrics=metrics)
    handle = Handle(
        AnthropicApiProvider(ctx),
        metrics,
        httpx2.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        httpx2.Timeout(5.0, read=read_timeout, pool=pool_timeout),
    )
    holder.append(handle)
    return handle


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    """One stub server in its own thread for the module; faults are reset per use."""
    with StubServer().running_in_thread() as server:
        yield server


@pytest.fixture
async def fresh_stub(stub: StubServer) -> AsyncIterator[StubServer]:
    """The module's stub with no recorded request and no queued fault."""
    stub.reset()
    yield stub
    stub.reset()


def sse(*events: tuple[str, dict[str, Any]]) -> bytes:
    """A Messages API event stream: one ``event:``/``data:`` pair per event."""
    return b"".join(
        f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()
        for name, data in events
    )


def http_reply(status: int, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    """One whole HTTP/1.1 response that closes its connection."""
    content_type = "text/event-stream" if status == 200 else "application/json"
    head = {"content-type": content_type, **(headers or {})}
    lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in head.items()]
    lines += [f"content-length: {len(body)}", "connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class ScriptedServer:
    """A loopback HTTP server answering request N with ``replies[N]`` (the last one repeats).

    For what the stub cannot send: hand-made event streams and ``retry-after``
    headers in one form only (the stub always sends ``retry-after-ms`` too).
    """

    def __init__(self, replies: list[bytes]) -> None:
        self.replies = replies
        self.requests = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._serve(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self._handlers.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer one connection (override for other behaviours; the socket is closed after)."""
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        await reader.readexactly(length)
        reply = self.replies[min(self.requests, len(self.replies) - 1)]
        self.requests += 1
        writer.write(reply)
        await writer.drain()

    async def __aenter__(self) -> ScriptedServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()
