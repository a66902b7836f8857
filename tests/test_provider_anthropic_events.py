"""sdk vs fast parity for every event type of the Messages streaming spec, on hand-made streams.

The stub sends one block kind per scenario; these streams mix them in one message
(thinking with a signature, text, a redacted thinking block, a tool_use whose input
arrives in many partial_json pieces, pings) and end with an error event, and each
transport's chunks are checked against the expected list, not only against each other.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from provcfg._errors import ProviderError
from provcfg.plugin import Chunk, Usage
from tests.support_anthropic import TRANSPORTS, ScriptedServer, http_reply, make, sse

TOOL_INPUT = {"location": "San Francisco, CA", "unit": "celsius", "days": [1, 2, 3], "note": "é"}


def _message_start() -> tuple[str, dict[str, Any]]:
    usage = {
        "input_tokens": 21,
        "output_tokens": 1,
        "cache_read_input_tokens": 7,
        "cache_creation_input_tokens": 3,
    }
    message = {
        "id": "msg_parity",
        "type": "message",
        "role": "assistant",
        "model": "claude-parity",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage,
    }
    return "message_start", {"type": "message_start", "message": message}


def _block(index: int, block: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return "content_block_start", {
        "type": "content_block_start",
        "index": index,
        "content_block": block,
    }


def _delta(index: int, delta: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}


def _stop(index: int) -> tuple[str, dict[str, Any]]:
    return "content_block_stop", {"type": "content_block_stop", "index": index}


PING = ("ping", {"type": "ping"})


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def _full_message() -> bytes:
    """thinking (+signature), text, redacted thinking, tool_use in 1-3 char pieces, pings."""
    raw_input = json.dumps(TOOL_INPUT, ensure_ascii=False)
    pieces = _pieces(raw_input, 1)[:5] + _pieces(raw_input[5:], 3)
    assert "".join(pieces) == raw_input
    events = [
        _message_start(),
        _block(0, {"type": "thinking", "thinking": "", "signature": ""}),
        PING,
        _delta(0, {"type": "thinking_delta", "thinking": "Let me "}),
        _delta(0, {"type": "thinking_delta", "thinking": "think."}),
        _delta(0, {"type": "signature_delta", "signature": "c2lnbmF0dXJl"}),
        _stop(0),
        _block(1, {"type": "text", "text": ""}),
        _delta(1, {"type": "text_delta", "text": "Checking "}),
        PING,
        _delta(1, {"type": "text_delta", "text": 'the weather \u2600 "now"\n'}),
        _stop(1),
        _block(2, {"type": "redacted_thinking", "data": "ZW5jcnlwdGVk"}),
        _stop(2),
        _block(3, {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}),
        _delta(3, {"type": "input_json_delta", "partial_json": ""}),
        *(_delta(3, {"type": "input_json_delta", "partial_json": p}) for p in pieces),
        _stop(3),
        _block(4, {"type": "tool_use", "id": "toolu_2", "name": "no_args", "input": {}}),
        _stop(4),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                "usage": {"output_tokens": 42},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    assert len(pieces) > 20
    return sse(*events)


EXPECTED = [
    Chunk("thinking", "Let me "),
    Chunk("thinking", "think."),
    Chunk("text", "Checking "),
    Chunk("text", 'the weather \u2600 "now"\n'),
    Chunk("tool_use", data={"id": "toolu_1", "name": "get_weather", "input": TOOL_INPUT}),
    Chunk("tool_use", data={"id": "toolu_2", "name": "no_args", "input": {}}),
]


async def _stream(base_url: str, transport: str) -> list[Chunk]:
    handle = make(base_url, transport, max_retries=0)
    try:
        return [c async for c in handle.provider.stream("hi", model="m")]
    finally:
        await handle.aclose()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_multi_block_message_gives_the_expected_chunks(transport: str) -> None:
    """thinking, text, redacted thinking and two tool_use blocks become exactly these chunks."""
    async with ScriptedServer([http_reply(200, _full_message())]) as server:
        chunks = await _stream(server.base_url, transport)
    assert chunks[:-1] == EXPECTED
    final = chunks[-1]
    assert final.type == "result"
    assert final.data is not None
    assert final.data["usage"] == Usage(
        input_tokens=21, output_tokens=42, cache_read_input_tokens=7, cache_creation_input_tokens=3
    )
    assert final.data["stop_reason"] == "tool_use"
    assert final.data["model"] == "claude-parity"
    assert final.data["session_id"] == "msg_parity"
    assert "c2lnbmF0dXJl" not in repr(chunks)
    assert "ZW5jcnlwdGVk" not in repr(chunks)


@pytest.mark.parametrize("sdk_objects", [False, True], ids=["sdk-json", "sdk-objects"])
async def test_multi_block_message_is_identical_on_both_transports(
    sdk_objects: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both transports give equal chunks and result data (timings aside) for the same bytes:
    the sdk transport reading the SDK's decoded JSON (today's SDK), and reading the SDK's
    event objects, as it does on an SDK whose event step it does not know."""
    if sdk_objects:
        import provcfg._providers.anthropic_api as api

        monkeypatch.setattr(api, "_PROCESS_PARAMS", ("an", "unknown", "shape"))
        monkeypatch.setattr(api, "_JSON_STEPS", {})
    got: dict[str, list[Chunk]] = {}
    for transport in TRANSPORTS:
        async with ScriptedServer([http_reply(200, _full_message())]) as server:
            got[transport] = await _stream(server.base_url, transport)
    sdk, fast = got["sdk"], got["fast"]
    assert sdk[:-1] == fast[:-1]
    assert sdk[-1].data is not None and fast[-1].data is not None
    for key in ("usage", "stop_reason", "model", "session_id", "cost_usd"):
        assert sdk[-1].data[key] == fast[-1].data[key], key


@pytest.mark.parametrize("size", [1, 7, 4096])
async def test_network_reads_of_any_size_give_the_same_chunks(size: int) -> None:
    """The fast transport's chunks do not depend on where the network splits the bytes."""
    body = _full_message()
    reply = http_reply(200, body)
    head, _, _ = reply.partition(b"\r\n\r\n")

    class Trickle(ScriptedServer):
        async def _serve(self, reader: Any, writer: Any) -> None:
            await reader.readuntil(b"\r\n\r\n")
            self.requests += 1
            writer.write(head + b"\r\n\r\n")
            for i in range(0, len(body), size):
                writer.write(body[i : i + size])
                await writer.drain()

    async with Trickle([]) as server:
        chunks = await _stream(server.base_url, "fast")
    assert chunks[:-1] == EXPECTED


ERRORS = [
    ("overloaded_error", "overloaded"),
    ("api_error", "server_error"),
    ("rate_limit_error", "rate_limit"),
    ("invalid_request_error", "invalid_request"),
]


@pytest.mark.parametrize(("error_type", "kind"), ERRORS)
async def test_error_event_mid_stream_is_the_same_error_on_both_transports(
    error_type: str, kind: str
) -> None:
    """An error event after text raises the same kind and message on both transports."""
    body = sse(
        _message_start(),
        _block(0, {"type": "text", "text": ""}),
        _delta(0, {"type": "text_delta", "text": "partial"}),
        ("error", {"type": "error", "error": {"type": error_type, "message": "went wrong"}}),
    )
    errors: dict[str, ProviderError] = {}
    seen: dict[str, list[Chunk]] = {}
    async with ScriptedServer([http_reply(200, body)]) as server:
        for transport in TRANSPORTS:
            handle = make(server.base_url, transport, max_retries=3)
            seen[transport] = []
            try:
                with pytest.raises(ProviderError) as caught:
                    async for chunk in handle.provider.stream("hi", model="m"):
                        seen[transport].append(chunk)
            finally:
                await handle.aclose()
            errors[transport] = caught.value
    assert server.requests == 2  # one per transport: a chunk had reached the caller, no retry
    assert seen["sdk"] == seen["fast"] == [Chunk("text", "partial")]
    assert errors["sdk"].kind == errors["fast"].kind == kind
    assert str(errors["sdk"]) == str(errors["fast"])
    assert "went wrong" in str(errors["fast"])


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_body_left_open_after_message_stop_still_gives_the_result(transport: str) -> None:
    """A server that sends message_stop but never ends the body: the answer completes anyway."""
    body = _full_message()

    class Linger(ScriptedServer):
        async def _serve(self, reader: Any, writer: Any) -> None:
            await reader.readuntil(b"\r\n\r\n")
            self.requests += 1
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"transfer-encoding: chunked\r\n\r\n"
                + f"{len(body):x}\r\n".encode()
                + body
                + b"\r\n"  # and no terminating 0-length chunk
            )
            await writer.drain()
            await reader.read()  # until the client gives the connection up

    async with Linger([]) as server:
        # Read timeout 30 s: without the bounded drain this failed with kind timeout.
        handle = make(server.base_url, transport, read_timeout=30.0)
        try:
            chunks = [c async for c in handle.provider.stream("hi", model="m")]
            # The half-read connection is dropped, never handed to the next request.
            assert all(c.is_closed() for c in handle.connections())
        finally:
            await handle.aclose()
    assert chunks[:-1] == EXPECTED
    assert chunks[-1].type == "result"
