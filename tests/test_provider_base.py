"""BaseProvider's shared guarantees: lazy init, in-flight counting, clean cancellation."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from provcfg._errors import RuntimeClosedError
from provcfg._manifest import AnthropicApiSpec
from provcfg._metrics import Metrics
from provcfg.plugin import BaseProvider, Chunk, ProviderContext, Usage
from provcfg.testing import make_context


class Counting(BaseProvider):
    """A provider whose stream yields n text chunks then a result; records lifecycle."""

    kind = "test"

    def __init__(self, ctx: ProviderContext) -> None:
        super().__init__(ctx)
        self.prepared = 0
        self.closed_inner = 0
        self.gate = asyncio.Event()

    def prepare(self) -> None:
        self.prepared += 1

    async def stream(self, prompt: str, **kwargs: Any) -> AsyncIterator[Chunk]:
        try:
            for i in range(int(kwargs.get("n", 3))):
                if kwargs.get("wait") and i == 1:
                    await self.gate.wait()
                yield Chunk("text", f"{prompt}{i}")
            yield Chunk("result", data={"usage": Usage(1, 2), "stop_reason": "end_turn"})
        finally:
            self.closed_inner += 1


def make() -> Counting:
    ctx = make_context(
        AnthropicApiSpec(kind="anthropic-api"),
        name="t",
        cli_path=Path("/bin/true"),
        metrics=Metrics(),
    )
    return Counting(ctx)


async def test_lazy_prepare_runs_once_on_first_stream() -> None:
    """prepare() runs on the first stream only, and complete() folds the chunks."""
    p = make()
    assert p.prepared == 0
    result = await p.complete("x")
    await p.complete("y")
    assert p.prepared == 1
    assert result.text == "x0x1x2"
    assert result.usage == Usage(1, 2)
    assert result.stop_reason == "end_turn"


async def test_concurrent_initialize_shares_one_prepare() -> None:
    """20 tasks starting at once prepare the provider exactly once."""
    p = make()
    await asyncio.gather(*(p.complete("z") for _ in range(20)))
    assert p.prepared == 1


async def test_break_closes_inner_generator_and_inflight_returns_to_zero() -> None:
    """Breaking out of async for closes the inner generator and ends the in-flight count."""
    p = make()
    stream = p.stream("a", n=10)
    await anext(stream)  # not a loop that a stream without chunks would skip
    assert p.inflight == 1
    await stream.aclose()  # type: ignore[attr-defined]
    assert p.inflight == 0
    assert p.closed_inner == 1


async def test_wait_idle_returns_when_stream_finishes() -> None:
    """wait_idle blocks while a stream is running and returns after it ends."""
    p = make()
    got: list[str] = []

    async def consume() -> None:
        async for chunk in p.stream("b", n=3, wait=True):
            got.append(chunk.type)

    task = asyncio.create_task(consume())
    while p.inflight == 0:
        await asyncio.sleep(0)
    waiter = asyncio.create_task(p.wait_idle(poll=0.001))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    p.gate.set()
    await asyncio.wait_for(waiter, 5)
    await task
    assert got[-1] == "result"


async def test_closed_provider_refuses_new_streams() -> None:
    """After aclose, stream() raises RuntimeClosedError naming the provider."""
    p = make()
    await p.aclose()
    with pytest.raises(RuntimeClosedError, match="'t'"):
        await p.complete("c")


def test_prepare_now_failure_shared_then_retried() -> None:
    """A failing prepare is raised to concurrent callers once and retried by a later call."""
    p = make()
    calls = 0
    gate = threading.Event()

    def failing() -> None:
        nonlocal calls
        calls += 1
        gate.wait(5)
        raise OSError("no cli")

    p.prepare = failing  # type: ignore[method-assign]
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            p.prepare_now()
        except OSError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    import time

    # Not a fixed sleep: a thread starting late would find the failure over and run again.
    deadline = time.monotonic() + 10
    while (
        p._prepare_future is None or len(p._prepare_future._condition._waiters) < 7  # type: ignore[attr-defined]
    ):
        assert time.monotonic() < deadline, "callers never reached the running prepare"
        time.sleep(0.001)
    gate.set()
    for t in threads:
        t.join(5)
    assert calls == 1 and len(errors) == 8
    p.prepare = lambda: None  # type: ignore[method-assign]
    p.prepare_now()
    assert p._prepared
