"""Every wait has a finite, documented default, and ``none`` is the explicit opt-out.

The defaults are read from the models themselves; the behaviour is shown with small
values set in a manifest: a silent CLI (a real process) and an API server that accepts
the connection and never answers (a real loopback socket) both end in ``timeout``. A
request queued for a pooled connection is not cut by the first-byte limit: that clock
starts when its headers go out.
"""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any

import pytest

import provcfg
from provcfg._errors import ProviderError
from provcfg._manifest import (
    AnthropicApiSpec,
    ClaudeCodeSpec,
    CodexSpec,
    OpenCodeSpec,
    PoolSpec,
    TimeoutsSpec,
)
from tests.support_fake_cli import fake_cli, scenario
from tests.support_hostile_servers import (
    TRANSPORTS,
    HostileServer,
    Seen,
    failure,
    head,
    outcome,
    pool_of,
    pooled,
    sse_events,
)
from tests.support_manifest import load_text

ROOT = Path(__file__).resolve().parent.parent
CLI_SPECS = (ClaudeCodeSpec, OpenCodeSpec, CodexSpec)


def _default(model: type[Any], field: str) -> Any:
    return model.model_fields[field].default


def test_every_wait_has_a_finite_default() -> None:
    """CLI total 4h and idle 30m; API total 1h and first byte 60s; pool connect 5s, read
    10m, write 30s; the pool wait has no timer of its own and is bounded by the API's
    finite total deadline."""
    for spec in CLI_SPECS:
        assert _default(spec, "timeout") == 4 * 3600
        assert _default(spec, "idle_timeout") == 30 * 60
    assert _default(AnthropicApiSpec, "timeout") == 3600
    assert _default(AnthropicApiSpec, "first_byte_timeout") == 60
    timeouts = TimeoutsSpec()
    assert (timeouts.connect, timeouts.read, timeouts.write) == (5, 600, 30)
    assert timeouts.pool is None  # bounded by the request's deadline (above)
    assert PoolSpec().timeouts == timeouts
    for value in (*[_default(s, f) for s in CLI_SPECS for f in ("timeout", "idle_timeout")],
                  _default(AnthropicApiSpec, "timeout"),
                  _default(AnthropicApiSpec, "first_byte_timeout")):  # fmt: skip
        assert isinstance(value, float) and math.isfinite(value)


@pytest.mark.parametrize("spelling", ["none", "None", "NONE", "null", "~"])
def test_none_switches_each_wait_off_in_the_manifest(spelling: str) -> None:
    """``none`` (any case) or null on each wait gives None: no limit of its own."""
    manifest = load_text(
        f"""
version: 1
pools:
  p: {{timeouts: {{connect: {spelling}, read: {spelling}, write: {spelling}, pool: {spelling}}}}}
providers:
  c: {{kind: claude-code, model: claude-x-1, timeout: {spelling}, idle_timeout: {spelling}}}
  a: {{kind: anthropic-api, pool: p, model: claude-x-1, timeout: {spelling},
      first_byte_timeout: {spelling}}}
"""
    )
    c, a = manifest.providers["c"], manifest.providers["a"]
    assert isinstance(c, ClaudeCodeSpec) and isinstance(a, AnthropicApiSpec)
    assert (c.timeout, c.idle_timeout, a.timeout, a.first_byte_timeout) == (None,) * 4
    t = manifest.pools["p"].timeouts
    assert (t.connect, t.read, t.write, t.pool) == (None,) * 4


def test_the_schema_and_the_docs_say_none_is_the_opt_out() -> None:
    """The JSON Schema accepts ``none`` for each wait, and docs/manifest.md says so."""
    schema = json.loads((ROOT / "schemas" / "providers.schema.json").read_text())
    defs = schema["$defs"]
    for model, field in (
        ("ClaudeCodeSpec", "idle_timeout"),
        ("ClaudeCodeSpec", "timeout"),
        ("AnthropicApiSpec", "first_byte_timeout"),
        ("TimeoutsSpec", "pool"),
    ):
        options = defs[model]["properties"][field]["anyOf"]
        assert {"const": "none", "description": "no limit of its own"} in options, (model, field)
    docs = (ROOT / "docs" / "manifest.md").read_text()
    assert "`none`" in docs and "first_byte_timeout" in docs and "idle_timeout" in docs


def test_none_is_written_back_as_none() -> None:
    """``provcfg show`` (a JSON dump) writes a switched-off wait as ``none``, which reads back."""
    spec = AnthropicApiSpec(kind="anthropic-api", timeout="none")  # type: ignore[arg-type]
    dumped = json.loads(spec.model_dump_json())
    assert dumped["timeout"] == "none"
    assert AnthropicApiSpec.model_validate(dumped).timeout is None


async def test_a_silent_cli_ends_with_timeout(tmp_path: Path) -> None:
    """A CLI that starts and then prints nothing ends in timeout (idle) under the
    manifest's idle_timeout, through a real runtime and a real process."""
    cli = fake_cli(tmp_path)
    script = scenario(tmp_path, "#!hang\n")
    manifest = tmp_path / "providers.yaml"
    manifest.write_text(
        "version: 1\nproviders:\n"
        f"  c: {{kind: claude-code, path: '{cli}', model: claude-x-1, idle_timeout: 400ms,\n"
        f"      kill_grace: 200ms, env: {{FAKE_SCENARIO: '{script}'}}}}\n"
    )
    async with provcfg.load(manifest) as rt:
        error = await failure(rt.provider("c").stream("hi"))
    assert error.kind == "timeout"
    assert error.details["timeout"] == "idle"
    assert "providers.c.idle_timeout" in error.message


async def _never(seen: Seen, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(3600)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_api_server_that_accepts_and_never_answers_ends_with_timeout(
    tmp_path: Path, transport: str
) -> None:
    """A server that takes the request and sends nothing ends in timeout (first_byte)
    under the manifest's first_byte_timeout, long before the total deadline."""
    async with HostileServer(_never) as server:
        manifest = tmp_path / "providers.yaml"
        manifest.write_text(
            "version: 1\nproviders:\n"
            f"  a: {{kind: anthropic-api, base_url: '{server.base_url}', api_key: k,\n"
            f"      model: claude-x-1, transport: {transport}, first_byte_timeout: 400ms}}\n"
        )
        async with provcfg.load(manifest) as rt:
            error = await failure(rt.provider("a").stream("hi"))
    assert error.kind == "timeout"
    assert error.details["timeout"] == "first_byte"
    assert "providers.a.first_byte_timeout" in error.message
    assert len(server.requests) == 1  # a timeout is not retried


async def _done_after_a_second(writer: asyncio.StreamWriter) -> None:
    """Answer "done", holding the connection for a second before the message ends."""
    body = sse_events("done")
    cut = body.index(b"event: content_block_stop")
    writer.write(head(200, {"content-type": "text/event-stream", "connection": "close"}))
    writer.write(body[:cut])
    await writer.drain()
    await asyncio.sleep(1.0)  # the connection stays busy for a second
    writer.write(body[cut:])


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_waiting_for_a_pooled_connection_does_not_count_as_first_byte(
    transport: str,
) -> None:
    """With one connection and first_byte_timeout 300ms, a request queued for a second
    behind a slow stream still succeeds: its first-byte clock starts when it is sent."""

    async def answer(seen: Seen, writer: asyncio.StreamWriter) -> None:
        await _done_after_a_second(writer)

    pool = pool_of(max_connections=1, max_keepalive_connections=1)
    try:
        async with (
            HostileServer(answer) as server,
            pooled(server.base_url, transport, pool=pool, first_byte_timeout=0.3) as provider,
        ):
            results = await asyncio.gather(
                outcome(provider.stream("one")), outcome(provider.stream("two"))
            )
    finally:
        await pool.aclose()
    for result in results:
        assert not isinstance(result, ProviderError), result
        assert "".join(c.text for c in result if c.type == "text") == "done"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_queued_request_gets_its_first_byte_limit_once_it_is_sent(
    transport: str,
) -> None:
    """Queued for a second behind a slow stream (longer than first_byte_timeout), a
    request that then goes out to a server that never answers still ends in
    ``first_byte`` (the limit counted from its sending), not at the total deadline."""

    async def answer(seen: Seen, writer: asyncio.StreamWriter) -> None:
        if len(server.requests) > 1:
            await asyncio.sleep(3600)  # the second request: never answered
        await _done_after_a_second(writer)

    pool = pool_of(max_connections=1, max_keepalive_connections=1)
    try:
        async with (
            HostileServer(answer) as server,
            pooled(
                server.base_url, transport, pool=pool, first_byte_timeout=0.3, timeout=30.0
            ) as provider,
        ):
            first, second = await asyncio.gather(
                outcome(provider.stream("one")), outcome(provider.stream("two"))
            )
    finally:
        await pool.aclose()
    assert not isinstance(first, ProviderError), first
    assert isinstance(second, ProviderError), second
    assert second.kind == "timeout"
    assert second.details["timeout"] == "first_byte"
    assert len(server.requests) == 2  # it was sent, and cut 0.3 s later


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_cancellation_from_elsewhere_stays_the_callers(transport: str) -> None:
    """While a request waits for its headers (under provcfg's own limits), the caller's
    own timeout and a plain task cancellation stay theirs: ``TimeoutError`` from the
    caller's ``asyncio.timeout`` and ``CancelledError``, never a ProviderError, and the
    task's cancellation count is left as the caller made it."""

    async def never(seen: Seen, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(3600)

    async def read(stream: Any) -> None:
        async for _chunk in stream:
            pass

    async with (
        HostileServer(never) as server,
        pooled(server.base_url, transport, first_byte_timeout=30.0, timeout=60.0) as provider,
    ):
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await read(provider.stream("hi"))
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 0

        reader = asyncio.create_task(read(provider.stream("hi")))
        await asyncio.sleep(0.2)
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
        assert reader.cancelled()
