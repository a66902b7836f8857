"""The stub's Messages API, driven by the real anthropic SDK (AsyncAnthropic on httpx2)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx2
import pytest

from provcfg.stub import StubConfig, StubServer
from provcfg.stub.anthropic import SIGNATURE, THINKING
from provcfg.stub.config import TOOL_INPUT
from tests.support_stub import stub  # noqa: F401

MESSAGES: list[Any] = [{"role": "user", "content": "Say hello"}]
REPLY = StubConfig().reply_text()


@pytest.fixture
async def client(stub: StubServer) -> AsyncIterator[anthropic.AsyncAnthropic]:  # noqa: F811
    """A real AsyncAnthropic on its own httpx2 pool, SDK retries off."""
    async with httpx2.AsyncClient() as http:
        yield anthropic.AsyncAnthropic(
            base_url=stub.base_url, api_key="sk-test-secret", http_client=http, max_retries=0
        )


async def _events(client: anthropic.AsyncAnthropic, model: str, **kw: Any) -> list[Any]:
    stream = await client.messages.create(
        model=model, max_tokens=64, messages=kw.pop("messages", MESSAGES), stream=True, **kw
    )
    return [event async for event in stream]


def _deltas(events: list[Any], kind: str) -> list[str]:
    out = []
    for e in events:
        if e.type == "content_block_delta" and e.delta.type == kind:
            out.append(
                {
                    "text_delta": lambda d: d.text,
                    "thinking_delta": lambda d: d.thinking,
                    "input_json_delta": lambda d: d.partial_json,
                    "signature_delta": lambda d: d.signature,
                }[kind](e.delta)
            )
    return out


async def test_text_stream_follows_the_spec(client: anthropic.AsyncAnthropic) -> None:
    """A plain stream has the spec's event order, the reply text, the model and usage."""
    events = await _events(client, "claude-test-1")
    types = [e.type for e in events]
    n = len(_deltas(events, "text_delta"))
    assert types == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * n,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert n == 4
    assert "".join(_deltas(events, "text_delta")) == REPLY
    assert events[0].message.model == "claude-test-1"
    assert events[0].message.usage.input_tokens > 0
    assert events[-2].delta.stop_reason == "end_turn"
    assert events[-2].usage.output_tokens == n


async def test_ping_is_sent_after_the_first_block_start(stub: StubServer) -> None:  # noqa: F811
    """The raw stream holds a ping event right after the first content_block_start."""
    async with httpx2.AsyncClient() as http:
        body = {"model": "m", "max_tokens": 5, "messages": MESSAGES, "stream": True}
        response = await http.post(f"{stub.base_url}/v1/messages", json=body)
    names = [line[7:] for line in response.text.splitlines() if line.startswith("event: ")]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert response.headers["content-type"].startswith("text/event-stream")


async def test_thinking_stream_has_thinking_and_signature_deltas(
    client: anthropic.AsyncAnthropic,
) -> None:
    """stub-thinking streams a thinking block (thinking + signature deltas) before the text."""
    events = await _events(client, "stub-thinking")
    starts = [e.content_block.type for e in events if e.type == "content_block_start"]
    assert starts == ["thinking", "text"]
    assert "".join(_deltas(events, "thinking_delta")) == THINKING
    assert _deltas(events, "signature_delta") == [SIGNATURE]
    assert "".join(_deltas(events, "text_delta")) == REPLY
    assert events[-1].type == "message_stop"


async def test_tool_use_stream_has_input_json_deltas(client: anthropic.AsyncAnthropic) -> None:
    """stub-tool-use streams a tool_use block whose partial_json pieces join to the input."""
    events = await _events(client, "stub-tool-use")
    blocks = [e.content_block for e in events if e.type == "content_block_start"]
    assert [b.type for b in blocks] == ["text", "tool_use"]
    assert blocks[1].name == "get_weather"
    assert len(_deltas(events, "input_json_delta")) > 1
    assert json.loads("".join(_deltas(events, "input_json_delta"))) == TOOL_INPUT
    message_delta = next(e for e in events if e.type == "message_delta")
    assert message_delta.delta.stop_reason == "tool_use"


async def test_tool_result_turn_answers_with_text(client: anthropic.AsyncAnthropic) -> None:
    """After a tool_result the tool-use scenario replies with text, so agent loops end."""
    messages = [
        *MESSAGES,
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "x", "input": {}}],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}],
        },
    ]
    message = await client.messages.create(model="stub-tool-use", max_tokens=5, messages=messages)
    assert [b.type for b in message.content] == ["text"]
    assert message.stop_reason == "end_turn"


async def test_scenario_header_selects_the_scenario(client: anthropic.AsyncAnthropic) -> None:
    """The x-stub-scenario header picks the scenario when the model name cannot."""
    events = await _events(client, "m", extra_headers={"x-stub-scenario": "thinking"})
    assert _deltas(events, "thinking_delta")


@pytest.mark.parametrize(
    ("model", "blocks", "stop"),
    [
        ("claude-x", ["text"], "end_turn"),
        ("stub-thinking", ["thinking", "text"], "end_turn"),
        ("stub-tool-use", ["text", "tool_use"], "tool_use"),
    ],
)
async def test_non_streaming_message(
    client: anthropic.AsyncAnthropic, model: str, blocks: list[str], stop: str
) -> None:
    """Without stream the stub returns a Message object with the scenario's blocks."""
    message = await client.messages.create(model=model, max_tokens=64, messages=MESSAGES)
    assert [b.type for b in message.content] == blocks
    assert message.model == model
    assert message.stop_reason == stop
    assert message.usage.output_tokens > 0
    text = next(b for b in message.content if b.type == "text")
    assert text.text == REPLY


@pytest.mark.parametrize("model", ["claude-x", "stub-thinking", "stub-tool-use"])
async def test_stream_helper_accumulates_the_message(
    client: anthropic.AsyncAnthropic, model: str
) -> None:
    """messages.stream() accumulates the same message as the non-streaming call."""
    async with client.messages.stream(model=model, max_tokens=64, messages=MESSAGES) as stream:
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    direct = await client.messages.create(model=model, max_tokens=64, messages=MESSAGES)
    assert text == REPLY

    def blocks(message: anthropic.types.Message) -> list[dict[str, Any]]:
        return [b.model_dump(exclude={"id"}) for b in message.content]

    assert blocks(final) == blocks(direct)
    assert final.usage.output_tokens == direct.usage.output_tokens


async def test_count_tokens_and_models(client: anthropic.AsyncAnthropic) -> None:
    """count_tokens answers input_tokens and models.list lists models."""
    counted = await client.messages.count_tokens(model="claude-x", messages=MESSAGES)
    assert counted.input_tokens > 0
    page = await client.models.list()
    assert "claude-sonnet-4-5-20250929" in [m.id for m in page.data]
    model = await client.models.retrieve("claude-x")
    assert model.id == "claude-x"


async def test_reply_size_is_configurable() -> None:
    """StubConfig sets the total length and chunking, a header overrides it per request."""
    config = StubConfig(text="ab", length=9, chunk_size=2)
    async with StubServer(config=config) as server, httpx2.AsyncClient() as http:
        sdk = anthropic.AsyncAnthropic(
            base_url=server.base_url, api_key="k", http_client=http, max_retries=0
        )
        events = await _events(sdk, "m")
        assert _deltas(events, "text_delta") == ["ab", "ab", "ab", "ab", "a"]
        reply = {"x-stub-reply": "deltas-3-chunk-size-1"}
        events = await _events(sdk, "m", extra_headers=reply)
        assert _deltas(events, "text_delta") == ["a", "b", "a"]
        events = await _events(sdk, "stub-length-4")
        assert "".join(_deltas(events, "text_delta")) == "abab"


STATUS_FAULTS = [
    ("stub-fault-400", anthropic.BadRequestError, "invalid_request_error"),
    ("stub-fault-401", anthropic.AuthenticationError, "authentication_error"),
    ("stub-fault-403", anthropic.PermissionDeniedError, "permission_error"),
    ("stub-fault-404", anthropic.NotFoundError, "not_found_error"),
    ("stub-fault-429-retry-after-1", anthropic.RateLimitError, "rate_limit_error"),
    ("stub-fault-500", anthropic.InternalServerError, "api_error"),
    ("stub-fault-529", anthropic.OverloadedError, "overloaded_error"),
]


@pytest.mark.parametrize(("model", "error", "kind"), STATUS_FAULTS)
@pytest.mark.parametrize("stream", [True, False])
async def test_status_faults_raise_the_sdk_error(
    client: anthropic.AsyncAnthropic, model: str, error: type[Exception], kind: str, stream: bool
) -> None:
    """A status fault reaches the SDK as the matching anthropic.*Error with the API's body."""
    with pytest.raises(error) as caught:
        await client.messages.create(model=model, max_tokens=5, messages=MESSAGES, stream=stream)
    assert isinstance(caught.value, anthropic.APIStatusError)
    assert caught.value.body["error"]["type"] == kind  # type: ignore[index]
    if "retry-after" in model:
        assert caught.value.response.headers["retry-after"] == "1"
        assert caught.value.response.headers["retry-after-ms"] == "1000"


async def test_error_event_mid_stream(client: anthropic.AsyncAnthropic) -> None:
    """error-2 sends two text deltas, then an overloaded_error event the SDK raises."""
    seen: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as caught:
        async for event in await client.messages.create(
            model="stub-error-2", max_tokens=5, messages=MESSAGES, stream=True
        ):
            if event.type == "content_block_delta":
                seen.append(event.delta.text)  # type: ignore[union-attr]
    assert len(seen) == 2
    assert caught.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]


async def test_error_fault_without_stream_is_a_529(client: anthropic.AsyncAnthropic) -> None:
    """Without streaming, the error fault becomes an overloaded (529) response."""
    with pytest.raises(anthropic.OverloadedError):
        await client.messages.create(model="stub-error", max_tokens=5, messages=MESSAGES)


async def test_drop_mid_stream(client: anthropic.AsyncAnthropic) -> None:
    """drop-3 delivers three deltas, then the connection closes with the body unfinished."""
    seen: list[str] = []
    with pytest.raises(httpx2.RemoteProtocolError):
        async for event in await client.messages.create(
            model="stub-drop-3", max_tokens=5, messages=MESSAGES, stream=True
        ):
            if event.type == "content_block_delta":
                seen.append(event.delta.text)  # type: ignore[union-attr]
    assert len(seen) == 3


async def test_drop_without_stream(client: anthropic.AsyncAnthropic) -> None:
    """A dropped non-streaming reply reaches the SDK as a connection error."""
    with pytest.raises(anthropic.APIConnectionError):
        await client.messages.create(model="stub-drop", max_tokens=5, messages=MESSAGES)


async def test_no_stop_ends_without_message_stop(client: anthropic.AsyncAnthropic) -> None:
    """no-stop ends the stream cleanly after message_delta: the SDK itself does not notice."""
    events = await _events(client, "stub-fault-no-stop")
    assert [e.type for e in events][-2:] == ["content_block_stop", "message_delta"]
    assert "".join(_deltas(events, "text_delta")) == REPLY


async def test_garbage_lines_are_skipped_by_a_conforming_parser(
    client: anthropic.AsyncAnthropic,
    stub: StubServer,  # noqa: F811
) -> None:
    """garbage adds comment and unknown-field lines the SDK's SSE decoder skips."""
    clean = await _events(client, "stub-thinking")
    noisy = await _events(client, "stub-thinking-garbage")
    assert [e.type for e in noisy] == [e.type for e in clean]
    async with httpx2.AsyncClient() as http:
        body = {"model": "stub-garbage", "max_tokens": 5, "messages": MESSAGES, "stream": True}
        raw = (await http.post(f"{stub.base_url}/v1/messages", json=body)).text
    assert ": stub garbage" in raw
    assert "x-stub-noise:" in raw


async def test_bad_json_line_fails_the_sdk(client: anthropic.AsyncAnthropic) -> None:
    """bad-json-1 sends a data line that is not JSON; the SDK's parse fails on it."""
    with pytest.raises(json.JSONDecodeError):
        await _events(client, "stub-bad-json-1")


async def test_hang_until_the_client_gives_up(stub: StubServer) -> None:  # noqa: F811
    """hang never sends headers: the client's timeout fires (APITimeoutError)."""
    async with httpx2.AsyncClient(timeout=httpx2.Timeout(0.2)) as http:
        sdk = anthropic.AsyncAnthropic(
            base_url=stub.base_url, api_key="k", http_client=http, max_retries=0, timeout=0.2
        )
        with pytest.raises(anthropic.APITimeoutError):
            await sdk.messages.create(model="stub-hang", max_tokens=5, messages=MESSAGES)


async def test_stall_after_deltas_times_out_the_read(stub: StubServer) -> None:  # noqa: F811
    """stall-2 sends two deltas then nothing more on an open connection: a read timeout."""
    async with httpx2.AsyncClient() as http:
        sdk = anthropic.AsyncAnthropic(
            base_url=stub.base_url, api_key="k", http_client=http, max_retries=0, timeout=0.3
        )
        seen = 0
        with pytest.raises(httpx2.ReadTimeout):
            async for event in await sdk.messages.create(
                model="stub-stall-2", max_tokens=5, messages=MESSAGES, stream=True
            ):
                seen += event.type == "content_block_delta"
        assert seen == 2


async def test_headers_delay_beyond_the_timeout(stub: StubServer) -> None:  # noqa: F811
    """headers-delay-S holds the response headers back for S seconds."""
    async with httpx2.AsyncClient() as http:
        sdk = anthropic.AsyncAnthropic(
            base_url=stub.base_url, api_key="k", http_client=http, max_retries=0, timeout=0.2
        )
        with pytest.raises(anthropic.APITimeoutError):
            await sdk.messages.create(
                model="stub-headers-delay-30", max_tokens=5, messages=MESSAGES
            )
        fast = await sdk.messages.create(
            model="stub-headers-delay-0.01", max_tokens=5, messages=MESSAGES
        )
        assert fast.content


async def test_delay_between_events_beyond_the_timeout(stub: StubServer) -> None:  # noqa: F811
    """delay-S spaces the events S seconds apart: a short read timeout fires mid-stream."""
    async with httpx2.AsyncClient() as http:
        sdk = anthropic.AsyncAnthropic(
            base_url=stub.base_url, api_key="k", http_client=http, max_retries=0, timeout=0.2
        )
        with pytest.raises(httpx2.ReadTimeout):
            await _events(sdk, "stub-delay-30")
        events = await _events(sdk, "stub-delay-0.001")
        assert events[-1].type == "message_stop"


async def test_queued_fault_hits_the_next_request_only(
    client: anthropic.AsyncAnthropic,
    stub: StubServer,  # noqa: F811
) -> None:
    """enqueue_fault breaks exactly the next request; the records show the retry."""
    stub.enqueue_fault("429-retry-after-0", path="/v1/messages")
    with pytest.raises(anthropic.RateLimitError):
        await client.messages.create(model="claude-x", max_tokens=5, messages=MESSAGES)
    message = await client.messages.create(model="claude-x", max_tokens=5, messages=MESSAGES)
    assert message.content
    records = stub.requests
    assert [r.status for r in records] == [429, 200]
    assert records[0].directives == ("queued: 429-retry-after-0",)
    assert records[1].directives == ()


async def test_records_redact_credentials(
    client: anthropic.AsyncAnthropic,
    stub: StubServer,  # noqa: F811
) -> None:
    """Recorded requests keep header names but never the API key's value."""
    await client.messages.create(model="claude-x", max_tokens=5, messages=MESSAGES)
    record = stub.requests[-1]
    # The SDK sends the key as x-api-key or as a bearer token, depending on its version.
    assert "<redacted>" in {record.header("x-api-key"), record.header("authorization")}
    assert record.header("anthropic-version")
    assert record.model == "claude-x"
    assert record.body["max_tokens"] == 5
    assert "sk-test-secret" not in json.dumps([r.to_json() for r in stub.requests])
