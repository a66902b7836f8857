"""Every provider kind reports each request once, the same way: requests, errors by kind,
retries, and a first-chunk time taken at the first *content* chunk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from provcfg._errors import ProviderError
from provcfg._manifest import ClaudeCodeSpec
from provcfg._metrics import Metrics, RequestRecord
from provcfg._providers.claude_code import ClaudeCodeProvider
from provcfg.plugin import BaseProvider, Chunk, Usage
from provcfg.stub import StubServer
from provcfg.testing import make_context
from tests.support_anthropic import make
from tests.support_fake_cli import make_provider


def _records(metrics: Metrics) -> list[RequestRecord]:
    seen: list[RequestRecord] = []
    metrics.add_request_observer(seen.append)
    return seen


@pytest.mark.parametrize("transport", ["fast", "sdk"])
async def test_anthropic_api_reports_success_and_failure(transport: str) -> None:
    """One record per request on both transports: ok with chunks and tokens, or the error kind."""
    async with StubServer() as stub:
        handle = make(stub.base_url, transport)
        records = _records(handle.metrics)
        try:
            result = await handle.provider.complete("one two three", model="stub-deltas-3")
            with pytest.raises(ProviderError):
                await handle.provider.complete("x", model="stub-fault-429")
        finally:
            await handle.aclose()
    ok, failed = records
    assert ok.ok and ok.kind == "anthropic-api" and ok.provider == "api"
    assert ok.chunks == 3 and ok.output_tokens == result.usage.output_tokens
    assert ok.first_chunk_s is not None and ok.first_chunk_s < ok.total_s
    assert ok.connect_s is not None and ok.connect_s <= ok.first_chunk_s
    assert not failed.ok and failed.error_kind == "rate_limit"
    assert handle.metrics.counter("requests", "api") == 2
    assert handle.metrics.counter("errors", "api") == 1


class _Slow(BaseProvider):
    """A plugin kind that sends a non-content chunk well before its first text."""

    kind = "slow"

    async def stream(self, prompt: str, **options: Any) -> Any:
        import asyncio

        yield Chunk("system", data={"note": "warming up"})
        await asyncio.sleep(0.05)
        yield Chunk("text", prompt)
        yield Chunk("result", data={"usage": Usage(1, 2), "cost_usd": 0.5})


async def test_plugin_kind_is_reported_and_first_chunk_means_first_content() -> None:
    """A plugin's stream is reported like the built-ins; a system chunk does not stop the
    first-chunk clock, the first text does."""
    from provcfg._manifest import AnthropicApiSpec

    metrics = Metrics()
    records = _records(metrics)
    provider = _Slow(make_context(AnthropicApiSpec(kind="anthropic-api"), metrics=metrics))
    await provider.complete("hello")
    (record,) = records
    assert record.ok and record.chunks == 3 and record.output_tokens == 2
    assert record.cost_usd == 0.5
    assert record.first_chunk_s is not None and record.first_chunk_s >= 0.04


async def test_cli_kind_first_chunk_is_the_first_text_not_the_init_line(tmp_path: Path) -> None:
    """claude-code's init (system) line is not content: the first chunk time waits for text."""
    init = {"type": "system", "subtype": "init", "session_id": "s", "model": "m", "tools": []}
    text = {
        "type": "assistant",
        "message": {"id": "m1", "content": [{"type": "text", "text": "hi"}]},
    }
    result = {"type": "result", "subtype": "success", "is_error": False, "session_id": "s"}
    script = (
        json.dumps(init) + "\n#!sleep 0.2\n" + json.dumps(text) + "\n" + json.dumps(result) + "\n"
    )
    provider, _ = make_provider(ClaudeCodeProvider, ClaudeCodeSpec, "claude-code", tmp_path, script)
    records = _records(provider.ctx.metrics)
    try:
        await provider.complete("hi")
    finally:
        await provider.aclose()
    (record,) = records
    assert record.kind == "claude-code" and record.ok
    assert record.first_chunk_s is not None and record.first_chunk_s >= 0.15
    assert provider.ctx.metrics.counter("requests", "agent") == 1


async def test_cli_kind_counts_errors_by_kind(tmp_path: Path) -> None:
    """A CLI failure is one record with the error's kind, and counts under errors."""
    provider, _ = make_provider(
        ClaudeCodeProvider, ClaudeCodeSpec, "claude-code", tmp_path, "#!exit 3\n"
    )
    records = _records(provider.ctx.metrics)
    try:
        with pytest.raises(ProviderError):
            await provider.complete("hi")
    finally:
        await provider.aclose()
    (record,) = records
    assert not record.ok and record.error_kind == "cli_failed"
    assert provider.ctx.metrics.counter("errors", "agent") == 1


async def test_leaving_a_stream_early_is_cancelled_not_an_error() -> None:
    """A caller that stops reading counts as cancelled, not as a provider error."""
    from provcfg._manifest import AnthropicApiSpec

    metrics = Metrics()
    records = _records(metrics)
    provider = _Slow(make_context(AnthropicApiSpec(kind="anthropic-api"), metrics=metrics))
    stream = provider.stream("x")
    await anext(stream)
    await stream.aclose()  # type: ignore[attr-defined]
    (record,) = records
    assert record.error_kind == "cancelled"
    assert metrics.counter("errors", "test") == 0
    assert metrics.counter("cancelled", "test") == 1
