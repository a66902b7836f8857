"""The anthropic-api provider against the loopback stub: parity, faults, retries, leaks."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import textwrap
import tracemalloc
from typing import Any

import pytest
from structlog.testing import capture_logs

from provcfg._errors import ProviderError
from provcfg.plugin import Chunk, Timings, Usage
from provcfg.stub import StubProcess
from provcfg.stub.server import StubServer
from tests.support_anthropic import SECRET, TRANSPORTS, Handle, fresh_stub, make, stub
from tests.support_stub import stub_process

__all__ = ["fresh_stub", "stub", "stub_process"]  # fixtures re-exported for pytest


async def _run(handle: Handle, model: str, **options: Any) -> list[Chunk]:
    return [c async for c in handle.provider.stream("hi", model=model, **options)]


async def _both(stub: StubServer, model: str, **spec: Any) -> dict[str, list[Chunk]]:
    out: dict[str, list[Chunk]] = {}
    for transport in TRANSPORTS:
        handle = make(stub.base_url, transport, **spec)
        try:
            out[transport] = await _run(handle, model)
        finally:
            await handle.aclose()
    return out


async def _failure(stub: StubServer, transport: str, model: str, **spec: Any) -> ProviderError:
    handle = make(stub.base_url, transport, max_retries=0, **spec)
    try:
        with pytest.raises(ProviderError) as caught:
            await _run(handle, model)
        assert handle.busy() == 0
    finally:
        await handle.aclose()
    return caught.value


def _comparable(chunks: list[Chunk]) -> list[tuple[str, str, Any]]:
    # Timings and message ids differ between runs; everything else must be identical.
    return [
        (
            c.type,
            c.text,
            {k: v for k, v in (c.data or {}).items() if k not in ("timings", "session_id", "id")},
        )
        for c in chunks
    ]


@pytest.mark.parametrize(
    "model",
    [
        "stub-text",
        "stub-tool-use",
        "stub-thinking",
        "stub-garbage",
        "stub-thinking-chunk-size-1",
        "stub-tool-use-chunk-size-3-garbage",
        "stub-length-0",
    ],
)
async def test_sdk_and_fast_give_identical_chunks(fresh_stub: StubServer, model: str) -> None:
    """Both transports yield the same chunks, usage, ids and stop reason for every event type."""
    got = await _both(fresh_stub, model)
    assert _comparable(got["sdk"]) == _comparable(got["fast"])
    final = got["fast"][-1]
    assert final.type == "result"
    assert final.data is not None
    assert isinstance(final.data["usage"], Usage)
    assert final.data["usage"].output_tokens > 0 or model == "stub-length-0"
    assert str(final.data["session_id"]).startswith("msg_stub_")
    assert final.data["cost_usd"] is None
    assert isinstance(final.data["timings"], Timings)
    assert [c.type for c in got["fast"]].count("result") == 1


async def test_tool_use_chunk_carries_assembled_input(fresh_stub: StubServer) -> None:
    """A tool_use block becomes one chunk whose input is the joined input_json_delta JSON."""
    got = await _both(fresh_stub, "stub-tool-use-chunk-size-2")
    for chunks in got.values():
        tools = [c.data for c in chunks if c.type == "tool_use"]
        assert len(tools) == 1 and tools[0] is not None
        assert str(tools[0]["id"]).startswith("toolu_stub_")
        assert tools == [
            {
                "id": tools[0]["id"],
                "name": "get_weather",
                "input": {"location": "San Francisco, CA", "unit": "celsius"},
            }
        ]
        assert chunks[-1].data is not None
        assert chunks[-1].data["stop_reason"] == "tool_use"


async def test_thinking_deltas_become_thinking_chunks(fresh_stub: StubServer) -> None:
    """Thinking deltas arrive as thinking chunks before the text; signatures are not text."""
    got = await _both(fresh_stub, "stub-thinking")
    for chunks in got.values():
        kinds = [c.type for c in chunks]
        assert kinds.index("thinking") < kinds.index("text")
        thinking = "".join(c.text for c in chunks if c.type == "thinking")
        assert thinking.startswith("The user wants a reply")
        assert "c3R1Yi1zaWduYXR1cmU" not in "".join(c.text for c in chunks)


FAULTS = [
    ("stub-fault-401", "authentication", 401),
    ("stub-fault-402", "permission", 402),
    ("stub-fault-403", "permission", 403),
    ("stub-fault-404", "model_not_found", 404),
    ("stub-fault-400", "invalid_request", 400),
    ("stub-fault-413", "invalid_request", 413),
    ("stub-fault-422", "invalid_request", 422),
    ("stub-fault-429", "rate_limit", 429),
    ("stub-fault-529", "overloaded", 529),
    ("stub-fault-500", "server_error", 500),
    ("stub-fault-502", "server_error", 502),
    ("stub-fault-503", "server_error", 503),
    ("stub-no-stop", "stream_incomplete", None),
    ("stub-drop-2", "stream_incomplete", None),
    ("stub-drop-0", "stream_incomplete", None),
    ("stub-error-2", "overloaded", None),
    ("stub-bad-json-1", "server_error", None),
]


@pytest.mark.parametrize(("model", "kind", "status"), FAULTS)
async def test_faults_map_to_the_same_error_on_both_transports(
    fresh_stub: StubServer, model: str, kind: str, status: int | None
) -> None:
    """Each fault maps to its kind and status, and both transports raise the same error text."""
    errors = {t: await _failure(fresh_stub, t, model) for t in TRANSPORTS}
    for error in errors.values():
        assert error.kind == kind, str(error)
        assert error.status == status
        assert error.provider == "api"
        assert f"{fresh_stub.base_url}/v1/messages" in str(error)
    assert str(errors["sdk"]) == str(errors["fast"])


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_rate_limit_carries_retry_after(fresh_stub: StubServer, transport: str) -> None:
    """A 429 with retry-after headers gives rate_limit with retry_after in seconds."""
    error = await _failure(fresh_stub, transport, "stub-fault-429-retry-after-2.5")
    assert error.kind == "rate_limit"
    assert error.retry_after == pytest.approx(2.5)
    assert "retry after 2.5s" in str(error)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_retries_until_success_before_first_chunk(
    fresh_stub: StubServer, transport: str
) -> None:
    """429 and 529 answers are retried (retry-after capped by retry_max_wait), then it succeeds."""
    fresh_stub.enqueue_fault("429-retry-after-30")
    fresh_stub.enqueue_fault("529")
    handle = make(fresh_stub.base_url, transport, max_retries=2, retry_max_wait=0.01)
    try:
        with capture_logs() as logs:
            chunks = await _run(handle, "m")
    finally:
        await handle.aclose()
    assert chunks[-1].type == "result"
    assert [r.status for r in fresh_stub.requests] == [429, 529, 200]
    retries = [e for e in logs if e["event"] == "provider.retry"]
    assert [e["kind"] for e in retries] == ["rate_limit", "overloaded"]
    assert handle.metrics.counter("retries", "api") == 2
    assert SECRET not in repr(logs)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_retries_are_bounded_by_max_retries(fresh_stub: StubServer, transport: str) -> None:
    """After max_retries retries the last error is raised."""
    fresh_stub.enqueue_fault("503", times=5)
    handle = make(fresh_stub.base_url, transport, max_retries=2)
    try:
        with pytest.raises(ProviderError) as caught:
            await _run(handle, "m")
    finally:
        await handle.aclose()
    assert caught.value.kind == "server_error"
    assert len(fresh_stub.requests) == 3
    assert handle.metrics.counter("errors", "api") == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("fault", ["401", "400", "404"])
async def test_client_errors_are_not_retried(
    fresh_stub: StubServer, transport: str, fault: str
) -> None:
    """4xx answers other than 429 fail at once, whatever max_retries says."""
    fresh_stub.enqueue_fault(fault, times=5)
    handle = make(fresh_stub.base_url, transport, max_retries=3)
    try:
        with pytest.raises(ProviderError):
            await _run(handle, "m")
    finally:
        await handle.aclose()
    assert len(fresh_stub.requests) == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_no_retry_after_a_chunk_reached_the_caller(
    fresh_stub: StubServer, transport: str
) -> None:
    """An overloaded error event after text was yielded is raised, never retried."""
    handle = make(fresh_stub.base_url, transport, max_retries=3)
    seen: list[Chunk] = []
    try:
        with pytest.raises(ProviderError) as caught:
            async for chunk in handle.provider.stream("hi", model="stub-error-2"):
                seen.append(chunk)
    finally:
        await handle.aclose()
    assert caught.value.kind == "overloaded"
    assert [c.type for c in seen] == ["text", "text"]
    assert len(fresh_stub.requests) == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_error_event_before_any_chunk_is_retried(
    fresh_stub: StubServer, transport: str
) -> None:
    """An overloaded error event before the first chunk counts as retryable."""
    fresh_stub.enqueue_fault("error-0")
    handle = make(fresh_stub.base_url, transport, max_retries=1)
    try:
        chunks = await _run(handle, "m")
    finally:
        await handle.aclose()
    assert chunks[-1].type == "result"
    assert len(fresh_stub.requests) == 2


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_connection_refused_is_network(transport: str) -> None:
    """Nothing listening on the port gives kind network, naming base_url as the fix."""
    handle = make(f"http://127.0.0.1:{_closed_port()}", transport, max_retries=1)
    try:
        with pytest.raises(ProviderError) as caught:
            await _run(handle, "m")
    finally:
        await handle.aclose()
    assert caught.value.kind == "network"
    assert "providers.api.base_url" in str(caught.value)
    assert handle.metrics.counter("retries", "api") == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("model", ["stub-hang", "stub-stall-2", "stub-headers-delay-30"])
async def test_total_deadline_gives_timeout(
    fresh_stub: StubServer, transport: str, model: str
) -> None:
    """A server that hangs or stalls hits the per-call deadline: kind timeout, nothing held."""
    handle = make(fresh_stub.base_url, transport, max_retries=2)
    try:
        with pytest.raises(ProviderError) as caught:
            await _run(handle, model, timeout=0.3)
        assert caught.value.kind == "timeout"
        assert handle.busy() == 0
    finally:
        await handle.aclose()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_spec_timeout_is_the_default_deadline(fresh_stub: StubServer, transport: str) -> None:
    """The spec's timeout applies when the call gives none."""
    handle = make(fresh_stub.base_url, transport, timeout=0.3)
    try:
        with pytest.raises(ProviderError) as caught:
            await _run(handle, "stub-stall-1")
    finally:
        await handle.aclose()
    assert caught.value.kind == "timeout"
    assert "providers.api.timeout" in str(caught.value)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_pool_exhausted_is_distinct_and_not_retried(
    fresh_stub: StubServer, transport: str
) -> None:
    """With the only connection busy, a second stream fails fast with pool_exhausted."""
    handle = make(
        fresh_stub.base_url, transport, max_connections=1, pool_timeout=0.2, max_retries=3
    )
    try:
        holder = handle.provider.stream("hi", model="stub-stall-1")
        assert (await holder.__anext__()).type == "text"
        with pytest.raises(ProviderError) as caught:
            await _run(handle, "m")
        assert caught.value.kind == "pool_exhausted"
        assert "max_connections" in str(caught.value)
        assert handle.metrics.counter("retries", "api") == 0
        await holder.aclose()  # type: ignore[attr-defined]
        assert handle.busy() == 0
        assert (await _run(handle, "m"))[-1].type == "result"
    finally:
        await handle.aclose()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_break_returns_the_connection(fresh_stub: StubServer, transport: str) -> None:
    """Leaving a long stream early closes its response; the pool has no busy connection."""
    handle = make(fresh_stub.base_url, transport)
    try:
        stream = handle.provider.stream("hi", model="stub-deltas-5000")
        await anext(stream)  # not a loop that a stream without chunks would skip
        assert handle.busy() == 1
        await stream.aclose()  # type: ignore[attr-defined]
        assert handle.busy() == 0
        assert handle.provider.inflight == 0
    finally:
        await handle.aclose()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_completed_stream_keeps_the_connection_alive(
    fresh_stub: StubServer, transport: str
) -> None:
    """Two sequential requests reuse one TCP connection (the body is drained after message_stop)."""
    handle = make(fresh_stub.base_url, transport)
    try:
        await _run(handle, "m")
        await _run(handle, "m")
    finally:
        await handle.aclose()
    first, second = fresh_stub.requests
    assert first.connection == second.connection


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_secret_never_appears_in_errors_or_logs(
    fresh_stub: StubServer, transport: str
) -> None:
    """The API key is in no error's str, repr or details, and in no log line, for any fault."""
    models = [m for m, _, _ in FAULTS] + ["stub-hang"]
    fresh_stub.enqueue_fault("429", times=2)
    with capture_logs() as logs:
        for model in models:
            handle = make(fresh_stub.base_url, transport, max_retries=1)
            try:
                with pytest.raises(ProviderError) as caught:
                    await _run(handle, model, timeout=2.0)
            finally:
                await handle.aclose()
            error = caught.value
            for text in (str(error), repr(error), repr(error.details), repr(error.args)):
                assert SECRET not in text
    assert logs
    assert SECRET not in repr(logs)


async def test_server_echoing_the_key_is_scrubbed() -> None:
    """A server whose error message echoes the key sees it replaced in the raised error."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        body = (
            b'{"type":"error","error":{"type":"authentication_error",'
            b'"message":"invalid x-api-key ' + SECRET.encode() + b'"}}'
        )
        writer.write(
            b"HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        for transport in TRANSPORTS:
            handle = make(f"http://127.0.0.1:{port}", transport)
            try:
                with pytest.raises(ProviderError) as caught:
                    await _run(handle, "m")
            finally:
                await handle.aclose()
            assert caught.value.kind == "authentication"
            assert "invalid x-api-key" in str(caught.value)
            assert SECRET not in str(caught.value)
            assert SECRET not in repr(caught.value)
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_missing_api_key_fails_before_any_request(
    fresh_stub: StubServer, transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No api_key and no ANTHROPIC_API_KEY gives authentication without contacting the API."""
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    handle = make(fresh_stub.base_url, transport, api_key=None)
    try:
        with pytest.raises(ProviderError) as caught:
            await _run(handle, "m")
    finally:
        await handle.aclose()
    assert caught.value.kind == "authentication"
    assert "providers.api.api_key" in str(caught.value)
    assert fresh_stub.requests == []


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_request_carries_options_system_and_headers(
    fresh_stub: StubServer, transport: str
) -> None:
    """system, max_tokens and kind options reach the body; the key and version headers are sent."""
    handle = make(fresh_stub.base_url, transport, anthropic_version="2023-06-01")
    try:
        await _run(handle, "m", system="be brief", max_tokens=77, temperature=0.5)
    finally:
        await handle.aclose()
    (request,) = fresh_stub.requests
    assert request.body["system"] == "be brief"
    assert request.body["max_tokens"] == 77
    assert request.body["temperature"] == 0.5
    assert request.body["stream"] is True
    assert request.body["messages"] == [{"role": "user", "content": "hi"}]
    # The SDK (2.x) sends the key as a bearer token; the fast transport as x-api-key.
    key_header = "authorization" if transport == "sdk" else "x-api-key"
    assert request.header(key_header) == "<redacted>"
    assert request.header("anthropic-version") == "2023-06-01"


async def test_sdk_client_is_made_once_per_loop(fresh_stub: StubServer) -> None:
    """The sdk transport reuses one AsyncAnthropic on the pooled client within a loop."""
    handle = make(fresh_stub.base_url, "sdk")
    try:
        await _run(handle, "m")
        first = dict(handle.provider._sdk_clients)
        await _run(handle, "m")
        assert handle.provider._sdk_clients == first
        ((http, sdk),) = first.values()
        assert http is handle.client()
        assert sdk.max_retries == 0
    finally:
        await handle.aclose()


async def test_sdk_transport_builds_no_sdk_event_objects(
    fresh_stub: StubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the sdk transport the SDK decodes the stream and each event's JSON, and builds
    no event object from it, however many deltas there are: provcfg reads the JSON. The
    chunks are the fast transport's (compared above and in test_provider_anthropic_events)."""
    import anthropic._base_client as sdk_base

    built: list[str] = []
    construct = sdk_base.construct_type  # type: ignore[attr-defined]

    def counting(*, type_: Any, value: Any) -> Any:
        built.append(value["type"])
        return construct(type_=type_, value=value)

    monkeypatch.setattr(sdk_base, "construct_type", counting)
    handle = make(fresh_stub.base_url, "sdk")
    try:
        for deltas in (50, 500):
            chunks = await _run(handle, f"stub-deltas-{deltas}")
            assert sum(c.type == "text" for c in chunks) == deltas
            assert chunks[-1].type == "result"
            assert chunks[-1].data is not None and chunks[-1].data["usage"].output_tokens > 0
        assert built == []
    finally:
        await handle.aclose()


async def test_an_sdk_with_another_event_step_keeps_it() -> None:
    """provcfg reads the events' JSON only where the SDK's step has the shape it knows; a
    client whose step takes other arguments is left as it is. On today's SDK the step
    turns a text delta with a string into its chunk, hands any other Messages event over
    as its JSON (a number for the text too: provcfg's checks reject it), and gives an
    event of an unknown type, or of none, the SDK's own object."""
    import anthropic
    from anthropic.types import RawMessageStreamEvent

    from provcfg._providers.anthropic_api import _read_json_events

    class Changed(anthropic.AsyncAnthropic):
        def _process_response_data(
            self, *, data: Any, cast_to: Any, response: Any, stream: bool = False
        ) -> Any:
            return super()._process_response_data(data=data, cast_to=cast_to, response=response)

    def delta(kind: str, key: str, value: object) -> dict[str, Any]:
        body = {"type": kind, key: value}
        return {"type": "content_block_delta", "index": 0, "delta": body}

    changed = Changed(api_key="k", base_url="http://127.0.0.1:9")
    plain = anthropic.AsyncAnthropic(api_key="k", base_url="http://127.0.0.1:9")
    try:
        _read_json_events(changed)
        _read_json_events(plain)
        assert "_process_response_data" not in vars(changed)
        step: Any = plain._process_response_data  # SDK-private: typed for its own events
        other_step: Any = changed._process_response_data
        event: Any = RawMessageStreamEvent

        text = delta("text_delta", "text", "hi")
        assert not isinstance(other_step(data=text, cast_to=event, response=None), Chunk)
        assert step(data=text, cast_to=event, response=None) == Chunk("text", "hi")
        for as_json in (
            delta("text_delta", "text", 7),
            delta("thinking_delta", "thinking", "hm"),
            delta("input_json_delta", "partial_json", "{"),
            {"type": "message_start", "message": {"id": "m"}},
            {"type": "message_stop"},
        ):
            assert step(data=as_json, cast_to=event, response=None) is as_json
        for other in ({"type": "mystery_event"}, {"index": 0}, {"type": ["message_stop"]}):
            built = step(data=other, cast_to=event, response=None)
            assert built is not other and not isinstance(built, Chunk | dict)
    finally:
        await changed.close()
        await plain.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_concurrent_streams_share_the_pool(fresh_stub: StubServer, transport: str) -> None:
    """Twenty concurrent streams on one provider all finish with the full text."""
    handle = make(fresh_stub.base_url, transport, max_connections=5)
    try:
        results = await asyncio.gather(
            *(handle.provider.complete("hi", model="stub-length-300") for _ in range(20))
        )
    finally:
        await handle.aclose()
    assert {len(r.text) for r in results} == {300}
    assert len({r.session_id for r in results}) == 20


def test_fast_transport_never_imports_anthropic(stub: StubServer) -> None:
    """A fast-transport stream runs in a fresh process without importing the anthropic SDK."""
    code = textwrap.dedent(
        f"""
        import asyncio, sys
        from tests.support_anthropic import make

        async def main():
            h = make({stub.base_url!r}, "fast")
            r = await h.provider.complete("hi", model="m")
            await h.aclose()
            assert r.text, r
            assert "anthropic" not in sys.modules, "anthropic was imported"
            print("ok")

        asyncio.run(main())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


async def _peak_while_streaming(base_url: str, transport: str, deltas: int) -> int:
    """Peak traced allocation (bytes) while a ``deltas``-delta stream is read to the end."""
    handle = make(base_url, transport)
    count = 0
    try:
        await _run(handle, "stub-length-10")  # the SDK import and first client are not the stream
        tracemalloc.start()
        try:
            async for chunk in handle.provider.stream("hi", model=f"stub-deltas-{deltas}"):
                count += chunk.type == "text"
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    finally:
        await handle.aclose()
    assert count == deltas
    return peak


@pytest.mark.slow
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_memory_stays_flat_over_100k_chunks(
    stub_process: StubProcess, transport: str
) -> None:
    """Peak memory over a 100,000-delta stream is no higher than over 10,000: nothing buffers."""
    # The stub runs in its own process, so tracemalloc sees only the client side.
    short = await _peak_while_streaming(stub_process.base_url, transport, 10_000)
    long = await _peak_while_streaming(stub_process.base_url, transport, 100_000)
    # The reply is ~800 KB of text and ~10 MB of SSE; 100,000 kept chunks would be >10 MB.
    # Measured here: ~0.65 MB for both lengths on both transports.
    assert long < short + 256 * 1024, (short, long)
    assert long < 2_000_000, long
