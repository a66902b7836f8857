"""The stub's OpenAI Responses and Chat Completions dialects, read by a real httpx2 client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest

from provcfg.stub import StubConfig, StubServer
from tests.support_stub import stub  # noqa: F401

REPLY = StubConfig().reply_text()
RESPONSES_ORDER = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


async def _sse(response: httpx2.Response) -> AsyncIterator[tuple[str | None, str]]:
    """Yield (event, data) per SSE block, skipping comments and unknown fields."""
    event: str | None = None
    data: list[str] = []
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = None, []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())


async def _read(
    base_url: str, path: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> tuple[int, list[tuple[str | None, str]]]:
    async with (
        httpx2.AsyncClient() as http,
        http.stream("POST", base_url + path, json=body, headers=headers) as response,
    ):
        return response.status_code, [item async for item in _sse(response)]


async def test_responses_stream_follows_the_spec(stub: StubServer) -> None:  # noqa: F811
    """A Responses stream has the spec's event order, sequence numbers, text and usage."""
    body = {"model": "gpt-test", "input": "Say hello", "stream": True}
    status, events = await _read(stub.base_url, "/v1/responses", body)
    assert status == 200
    names = [name for name, _ in events]
    deduped = [n for i, n in enumerate(names) if i == 0 or n != names[i - 1]]
    assert deduped == RESPONSES_ORDER
    payloads = [json.loads(data) for _, data in events]
    assert [p["type"] for p in payloads] == names
    assert [p["sequence_number"] for p in payloads] == list(range(len(payloads)))
    text = "".join(p["delta"] for p in payloads if p["type"] == "response.output_text.delta")
    assert text == REPLY
    completed = payloads[-1]["response"]
    assert completed["status"] == "completed"
    assert completed["model"] == "gpt-test"
    assert completed["output"][0]["content"][0]["text"] == REPLY
    assert completed["usage"]["output_tokens"] == names.count("response.output_text.delta")
    assert completed["usage"]["total_tokens"] == (
        completed["usage"]["input_tokens"] + completed["usage"]["output_tokens"]
    )


async def test_responses_path_without_v1_prefix(stub: StubServer) -> None:  # noqa: F811
    """A client whose base URL already ends in /v1 may post to /responses directly."""
    body = {"model": "gpt-test", "input": "hi", "stream": True}
    _, events = await _read(stub.base_url, "/responses", body)
    assert events[-1][0] == "response.completed"
    assert stub.requests[-1].path == "/v1/responses"


async def test_responses_non_stream(stub: StubServer) -> None:  # noqa: F811
    """Without stream, /v1/responses returns the completed Response object."""
    async with httpx2.AsyncClient() as http:
        response = await http.post(
            f"{stub.base_url}/v1/responses", json={"model": "g", "input": "x"}
        )
    body = response.json()
    assert body["object"] == "response"
    assert body["output"][0]["content"][0]["text"] == REPLY


async def test_responses_faults(stub: StubServer) -> None:  # noqa: F811
    """error-2 ends with response.failed; no-stop ends without response.completed."""
    _, events = await _read(
        stub.base_url, "/v1/responses", {"model": "stub-error-2", "stream": True}
    )
    names = [n for n, _ in events]
    assert names.count("response.output_text.delta") == 2
    assert names[-1] == "response.failed"
    assert json.loads(events[-1][1])["response"]["error"]["code"] == "server_error"
    _, events = await _read(
        stub.base_url, "/v1/responses", {"model": "stub-no-stop", "stream": True}
    )
    assert [n for n, _ in events][-1] == "response.output_item.done"


@pytest.mark.parametrize("include_usage", [True, False])
async def test_chat_completions_stream(stub: StubServer, include_usage: bool) -> None:  # noqa: F811
    """Chat chunks arrive as bare data lines, usage last when asked for, then [DONE]."""
    body = {
        "model": "gpt-test",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": include_usage},
    }
    status, events = await _read(stub.base_url, "/v1/chat/completions", body)
    assert status == 200
    assert all(name is None for name, _ in events)
    assert events[-1][1] == "[DONE]"
    chunks = [json.loads(data) for _, data in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert {c["model"] for c in chunks} == {"gpt-test"}
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == REPLY
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finish[-1] == "stop"
    assert finish[:-1] == [None] * (len(finish) - 1)
    if include_usage:
        assert chunks[-1]["choices"] == []
        assert chunks[-1]["usage"]["completion_tokens"] == len(finish) - 2
    else:
        assert "usage" not in chunks[-1]


async def test_chat_completions_non_stream(stub: StubServer) -> None:  # noqa: F811
    """Without stream, chat completions return one chat.completion object."""
    async with httpx2.AsyncClient() as http:
        body = {"model": "g", "messages": [{"role": "user", "content": "x"}]}
        response = await http.post(f"{stub.base_url}/v1/chat/completions", json=body)
    completion = response.json()
    assert completion["object"] == "chat.completion"
    assert completion["choices"][0]["message"]["content"] == REPLY


async def test_chat_completions_faults(stub: StubServer) -> None:  # noqa: F811
    """error-1 sends an error data line; no-stop leaves out [DONE]; drop cuts the body."""
    _, events = await _read(
        stub.base_url, "/v1/chat/completions", {"model": "stub-error-1", "stream": True}
    )
    assert json.loads(events[-1][1])["error"]["type"] == "server_error"
    _, events = await _read(
        stub.base_url, "/v1/chat/completions", {"model": "stub-no-stop", "stream": True}
    )
    assert json.loads(events[-1][1])["choices"][0]["finish_reason"] == "stop"
    with pytest.raises(httpx2.RemoteProtocolError):
        await _read(stub.base_url, "/v1/chat/completions", {"model": "stub-drop-2", "stream": True})


@pytest.mark.parametrize(
    ("status", "kind", "code"),
    [
        (400, "invalid_request_error", None),
        (401, "invalid_request_error", "invalid_api_key"),
        (404, "invalid_request_error", "model_not_found"),
        (429, "requests", "rate_limit_exceeded"),
        (500, "server_error", None),
    ],
)
@pytest.mark.parametrize("path", ["/v1/responses", "/v1/chat/completions"])
async def test_openai_error_shape(
    stub: StubServer,  # noqa: F811
    path: str,
    status: int,
    kind: str,
    code: str | None,
) -> None:
    """Status faults on OpenAI routes answer {"error": {message, type, code}}."""
    async with httpx2.AsyncClient() as http:
        body = {"model": "gpt", "stream": True, "messages": []}
        response = await http.post(
            stub.base_url + path, json=body, headers={"x-stub-fault": f"{status}; retry-after-2"}
        )
    assert response.status_code == status
    error = response.json()["error"]
    assert (error["type"], error["code"]) == (kind, code)
    assert error["message"]
    assert response.headers["retry-after"] == "2"


async def test_long_stream_reads_completely() -> None:
    """A 10,000-delta Chat stream arrives whole and in order."""
    async with StubServer(config=StubConfig(text="abcd", deltas=10_000, chunk_size=4)) as server:
        body = {"model": "g", "messages": [], "stream": True}
        _, events = await _read(server.base_url, "/v1/chat/completions", body)
    pieces = [json.loads(d)["choices"][0]["delta"].get("content") for _, d in events[1:-2]]
    assert len(pieces) == 10_000
    assert set(pieces) == {"abcd"}
